// Retry decorator: bounded attempts, exponential backoff with full jitter, per-attempt timeout.
//
// An attempt that outlives its timeout is abandoned (the interface has no AbortSignal): its
// promise keeps running and its outcome is ignored. Every ObjectStore operation is idempotent
// (put of the same key and body, delete of a missing key), so a retry racing an abandoned
// attempt is harmless.
//
// Not retried: ObjectNotFoundError, argument errors (RangeError, TypeError), HTTP 4xx other than
// 408/429, and errors that say `retryable: false`. Throttling (429, 503 SlowDown) backs off
// slowDownFactor times longer.

import { bodyLength, readParts, wrapUploads } from './objectstore.ts';
import type { MultipartUploads, ObjectBody, ObjectInfo, ObjectStore } from './objectstore.ts';
import { httpStatusOf, isObjectNotFound, sleep } from './util.ts';

let abandonedPuts = 0;

/**
 * PUT attempts abandoned on their timeout so far, in this process. Such an attempt may go on
 * reading its body after the call has returned: a caller whose PUT saw this count move must not
 * reuse the body's memory (the log cache then leaves those slabs to the GC).
 */
export function abandonedPutAttempts(): number {
  return abandonedPuts;
}

export interface RetryOptions {
  /** Attempts per call, the first included. Default 5. */
  maxAttempts?: number;
  /** Backoff cap before the first retry; doubles per retry. Default 50. */
  baseDelayMs?: number;
  /** Backoff cap. Default 2000. */
  maxDelayMs?: number;
  /** Multiplier of the backoff after a throttling answer. Default 4. */
  slowDownFactor?: number;
  /** Per-attempt timeout for a call moving no data. Default 10000; 0 disables timeouts. */
  timeoutMs?: number;
  /** Added to the timeout per MiB put or ranged-get (a floor of 1 MiB/s at 1000). Default 1000. */
  timeoutMsPerMiB?: number;
  /** Source of jitter in [0, 1). Default Math.random. */
  random?: () => number;
  /** Called before each retry (logging, tests). */
  onRetry?: (op: string, attempt: number, err: unknown, delayMs: number) => void;
}

export class ObjectStoreTimeoutError extends Error {
  readonly op: string;
  readonly timeoutMs: number;
  constructor(op: string, timeoutMs: number) {
    super(`object store ${op} timed out after ${timeoutMs} ms`);
    this.name = 'ObjectStoreTimeoutError';
    this.op = op;
    this.timeoutMs = timeoutMs;
  }
}

const MiB = 1024 * 1024;

export class RetryingObjectStore implements ObjectStore {
  private readonly inner: ObjectStore;
  readonly readsPartsInPlace: boolean;
  readonly uploads: MultipartUploads | undefined;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly slowDownFactor: number;
  private readonly timeoutMs: number;
  private readonly timeoutMsPerMiB: number;
  private readonly random: () => number;
  private readonly onRetry: RetryOptions['onRetry'];

  constructor(inner: ObjectStore, options: RetryOptions = {}) {
    this.inner = inner;
    this.readsPartsInPlace = inner.readsPartsInPlace === true;
    this.uploads = wrapUploads(inner.uploads, (bytes, call) => this.run('put', bytes, call));
    this.maxAttempts = options.maxAttempts ?? 5;
    this.baseDelayMs = options.baseDelayMs ?? 50;
    this.maxDelayMs = options.maxDelayMs ?? 2_000;
    this.slowDownFactor = options.slowDownFactor ?? 4;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.timeoutMsPerMiB = options.timeoutMsPerMiB ?? 1_000;
    this.random = options.random ?? Math.random;
    this.onRetry = options.onRetry;
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1 || this.maxAttempts > 100) {
      throw new RangeError(`maxAttempts must be an integer in [1, 100], got ${this.maxAttempts}`);
    }
  }

  put(key: string, body: ObjectBody): Promise<void> {
    return this.run('put', bodyLength(body), () => this.inner.put(key, body));
  }

  get(key: string, range?: { start: number; endExclusive: number }): Promise<Buffer> {
    const bytes = range === undefined ? 0 : range.endExclusive - range.start;
    return this.run('get', bytes, () => this.inner.get(key, range));
  }

  getParts(key: string, start: number, lengths: readonly number[]): Promise<Buffer[]> {
    return this.run('get', lengths.reduce((sum, length) => sum + length, 0), () => readParts(this.inner, key, start, lengths));
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    return this.run('head', 0, () => this.inner.head(key));
  }

  list(prefix: string): Promise<ObjectInfo[]> {
    return this.run('list', 0, () => this.inner.list(prefix));
  }

  delete(keys: string[]): Promise<void> {
    return this.run('delete', 0, () => this.inner.delete(keys));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async run<T>(op: string, bytes: number, call: () => Promise<T>): Promise<T> {
    const timeoutMs = this.timeoutMs === 0 ? 0 : this.timeoutMs + Math.ceil(bytes / MiB) * this.timeoutMsPerMiB;
    for (let attempt = 1; ; attempt++) {
      try {
        return await withTimeout(op, timeoutMs, call);
      } catch (err) {
        if (op === 'put' && err instanceof ObjectStoreTimeoutError) abandonedPuts++;
        if (attempt >= this.maxAttempts || !isRetryable(err)) throw err;
        const capMs = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (attempt - 1));
        const delayMs = Math.round(this.random() * capMs * (isThrottling(err) ? this.slowDownFactor : 1));
        this.onRetry?.(op, attempt, err, delayMs);
        await sleep(delayMs);
      }
    }
  }
}

function withTimeout<T>(op: string, timeoutMs: number, call: () => Promise<T>): Promise<T> {
  const attempt = call();
  if (timeoutMs === 0) return attempt;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new ObjectStoreTimeoutError(op, timeoutMs)), timeoutMs);
    attempt.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err); // ignored when the timeout already rejected
      },
    );
  });
}

export function isRetryable(err: unknown): boolean {
  if (isObjectNotFound(err) || err instanceof RangeError || err instanceof TypeError) return false;
  if (typeof err === 'object' && err !== null && (err as { retryable?: unknown }).retryable === false) return false;
  const status = httpStatusOf(err);
  if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) return false;
  return true;
}

function isThrottling(err: unknown): boolean {
  const status = httpStatusOf(err);
  const name = typeof err === 'object' && err !== null ? (err as { name?: unknown }).name : undefined;
  return status === 429 || status === 503 || name === 'SlowDown' || name === 'ThrottlingException';
}
