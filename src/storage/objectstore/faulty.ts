// Fault-injecting decorator for tests: added latency, internal errors (HTTP 500), throttling
// (HTTP 503 SlowDown) and timeouts (the call hangs, then fails), with an on/off switch.
//
// Each call draws one fault at most, in this order: timeout, slowDown, error. SlowDown is always
// raised before the inner call (the server refused it); errors and timeouts are raised after the
// inner call ran for a `lostResponseFraction` of them (the request took effect, the answer was
// lost), which exercises the idempotency of retries.

import { readParts, wrapUploads, type MultipartUploads, type ObjectBody, type ObjectInfo, type ObjectStore } from './objectstore.ts';
import type { ObjectStoreOp } from './instrumented.ts';

export const FAULT_KINDS = ['error', 'slowDown', 'timeout'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultOptions {
  /** Master switch. Default true. */
  enabled?: boolean;
  /** Probability of an internal error per call. Default 0. */
  errorRate?: number;
  /** Probability of a 503 SlowDown per call. Default 0. */
  slowDownRate?: number;
  /** Probability that a call hangs for hangMs and then fails. Default 0. */
  timeoutRate?: number;
  /** How long a timed-out call hangs. Default 60000. */
  hangMs?: number;
  /** Latency added to every call: fixed, or uniform in [minMs, maxMs]. Default 0. */
  latencyMs?: number | { minMs: number; maxMs: number };
  /** Share of errors and timeouts raised after the inner call ran. Default 0.5. */
  lostResponseFraction?: number;
  /** Operations subject to faults. Default all. */
  ops?: readonly ObjectStoreOp[];
  /** Random source in [0, 1); see seededRandom. Default Math.random. */
  random?: () => number;
}

export class InjectedFaultError extends Error {
  readonly kind: FaultKind;
  readonly op: string;
  /** Shaped like an AWS SDK error so that status-based handling treats it like the real thing. */
  readonly $metadata: { httpStatusCode: number };
  constructor(kind: FaultKind, op: string) {
    const status = kind === 'slowDown' ? 503 : kind === 'timeout' ? 504 : 500;
    super(`injected ${kind} on ${op} (HTTP ${status})`);
    this.name = kind === 'slowDown' ? 'SlowDown' : 'InjectedFaultError';
    this.kind = kind;
    this.op = op;
    this.$metadata = { httpStatusCode: status };
  }
}

export class FaultyObjectStore implements ObjectStore {
  private readonly inner: ObjectStore;
  readonly readsPartsInPlace: boolean;
  readonly uploads: MultipartUploads | undefined;
  private options: Required<Omit<FaultOptions, 'latencyMs' | 'ops'>> & Pick<FaultOptions, 'latencyMs' | 'ops'>;
  /** Faults injected so far, by kind. */
  readonly injected: Record<FaultKind, number> = { error: 0, slowDown: 0, timeout: 0 };

  constructor(inner: ObjectStore, options: FaultOptions = {}) {
    this.inner = inner;
    this.readsPartsInPlace = inner.readsPartsInPlace === true;
    this.uploads = wrapUploads(inner.uploads, (_bytes, call) => this.inject('put', call));
    this.options = withDefaults(options);
  }

  setEnabled(enabled: boolean): void {
    this.options.enabled = enabled;
  }

  /** Changes some options, keeping the others. */
  configure(options: FaultOptions): void {
    this.options = withDefaults({ ...this.options, ...options });
  }

  put(key: string, body: ObjectBody): Promise<void> {
    return this.inject('put', () => this.inner.put(key, body));
  }

  get(key: string, range?: { start: number; endExclusive: number }): Promise<Buffer> {
    return this.inject('get', () => this.inner.get(key, range));
  }

  getParts(key: string, start: number, lengths: readonly number[]): Promise<Buffer[]> {
    return this.inject('get', () => readParts(this.inner, key, start, lengths));
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    return this.inject('head', () => this.inner.head(key));
  }

  list(prefix: string): Promise<ObjectInfo[]> {
    return this.inject('list', () => this.inner.list(prefix));
  }

  delete(keys: string[]): Promise<void> {
    return this.inject('delete', () => this.inner.delete(keys));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async inject<T>(op: ObjectStoreOp, call: () => Promise<T>): Promise<T> {
    const o = this.options;
    if (!o.enabled || (o.ops !== undefined && !o.ops.includes(op))) return call();
    const latencyMs = this.drawLatencyMs();
    if (latencyMs > 0) await delay(latencyMs, false);
    const kind = this.drawFault();
    if (kind === undefined) return call();
    this.injected[kind]++;
    if (kind !== 'slowDown' && o.random() < o.lostResponseFraction) await call().catch(() => undefined);
    if (kind === 'timeout') await delay(o.hangMs, true);
    throw new InjectedFaultError(kind, op);
  }

  private drawFault(): FaultKind | undefined {
    const o = this.options;
    const draw = o.random();
    if (draw < o.timeoutRate) return 'timeout';
    if (draw < o.timeoutRate + o.slowDownRate) return 'slowDown';
    if (draw < o.timeoutRate + o.slowDownRate + o.errorRate) return 'error';
    return undefined;
  }

  private drawLatencyMs(): number {
    const latency = this.options.latencyMs;
    if (latency === undefined) return 0;
    if (typeof latency === 'number') return latency;
    return latency.minMs + this.options.random() * (latency.maxMs - latency.minMs);
  }
}

function withDefaults(options: FaultOptions): FaultyObjectStore['options'] {
  const resolved = {
    enabled: options.enabled ?? true,
    errorRate: options.errorRate ?? 0,
    slowDownRate: options.slowDownRate ?? 0,
    timeoutRate: options.timeoutRate ?? 0,
    hangMs: options.hangMs ?? 60_000,
    latencyMs: options.latencyMs,
    lostResponseFraction: options.lostResponseFraction ?? 0.5,
    ops: options.ops,
    random: options.random ?? Math.random,
  };
  for (const name of ['errorRate', 'slowDownRate', 'timeoutRate', 'lostResponseFraction'] as const) {
    const rate = resolved[name];
    if (!(rate >= 0 && rate <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${rate}`);
  }
  if (resolved.errorRate + resolved.slowDownRate + resolved.timeoutRate > 1) {
    throw new RangeError('errorRate + slowDownRate + timeoutRate must not exceed 1');
  }
  return resolved;
}

/** A hanging call must not keep the process alive on its own: its timer is unref'd. */
function delay(ms: number, unref: boolean): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (unref) timer.unref();
  });
}

/** Deterministic random source in [0, 1) (mulberry32), for reproducible fault schedules. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
