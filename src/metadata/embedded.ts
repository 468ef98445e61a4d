// EmbeddedMetadataStore: the single-node MetadataStore. State lives in memory; every change is
// appended to a log file (embedded-format.ts) and fdatasynced before the call resolves.
//
// - Group commit: changes are applied to memory at once (so transactions serialize in call
//   order), their records queue up, and one flush writes every queued record with one write and
//   one fdatasync. Calls resolve, and watchers hear of changes, only once durable. Reads wait
//   until everything they could have seen is durable, so nothing undurable leaks out.
// - Snapshots: when the log passes `snapshotLogBytes`, the state is written to a snapshot file
//   (temp + fsync + rename + directory fsync) and a new log generation starts.
// - Recovery: load the snapshot, replay its log generation, truncate at the first torn record.
// - Leases: in-memory timers; after a restart every lease gets its full TTL again (as etcd).
// - A failed write or fsync fails the store for good: memory may be ahead of disk.
// - One process per directory; nothing locks it.

import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { log as processLog } from '../metrics/log.ts';
import { freeIfOwned } from '../storage/buffers.ts';
import {
  decodeSnapshot,
  encodeLogHeader,
  encodeRecord,
  encodeSnapshot,
  LOG_HEADER_BYTES,
  logFileName,
  scanLog,
} from './embedded-format.ts';
import type { LogOp, LogRecord, SnapshotContent } from './embedded-format.ts';
import {
  compareKeys,
  InvalidTxnError,
  LeaseNotFoundError,
  MetadataStoreClosedError,
  toBuffer,
  WatchCompactedError,
} from './store.ts';
import type {
  Compare,
  KeyValue,
  LeaseId,
  MetadataStore,
  MetadataStoreLimits,
  RangeOptions,
  RangeResult,
  TxnOp,
  TxnOpResponse,
  TxnRequest,
  TxnResult,
  WatchCallback,
  WatchCancel,
  WatchEvent,
} from './store.ts';

const log = processLog.child({ component: 'metadata-embedded' });

const SNAPSHOT_FILE = 'snapshot';
const SNAPSHOT_TEMP_FILE = 'snapshot.tmp';
/** Hard bound on one log record (a prefix delete is logged key by key, so it can pass maxTxnBytes). */
const MAX_RECORD_BYTES = 256 * 1024 * 1024;

export interface EmbeddedMetadataStoreOptions {
  /** Snapshot and start a new log once the log is this large. Default 64 MiB. */
  snapshotLogBytes?: number;
  /** Ops per transaction branch, and compares (etcd --max-txn-ops must be at least this). Default 1024. */
  maxTxnOps?: number;
  /** Keys and values in one request (etcd --max-request-bytes must be at least this). Default 1.5 MiB. */
  maxTxnBytes?: number;
  /** Bytes written per group commit at most. Default 8 MiB. */
  maxGroupBytes?: number;
  /** Records waiting for the disk; beyond it, writers wait. Default 10 000. */
  maxPendingRecords?: number;
  /** Watch events kept in memory for watches from a past revision. Default 10 000. */
  watchHistoryEvents?: number;
  /** Live leases at most. Default 100 000. */
  maxLeases?: number;
}

export interface EmbeddedMetadataStoreStats {
  /** fdatasync calls on the log (one per group commit). */
  logSyncs: number;
  /** Records appended to the log. */
  logRecords: number;
  snapshots: number;
  logBytes: number;
}

interface Entry {
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: LeaseId | undefined;
}

interface LeaseState {
  ttlMs: number;
  keys: Set<string>;
  timer: NodeJS.Timeout | undefined;
}

interface PendingRecord {
  seq: number;
  bytes: Buffer;
  revision: number;
  events: WatchEvent[];
}

interface DurableWaiter {
  seq: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

interface Watcher {
  prefix: string;
  onEvents: WatchCallback;
  onError: ((error: Error) => void) | undefined;
  cancelled: boolean;
}

interface HistoryBatch {
  revision: number;
  events: WatchEvent[];
}

export class EmbeddedMetadataStore implements MetadataStore {
  readonly dir: string;
  readonly limits: MetadataStoreLimits;
  private readonly snapshotLogBytes: number;
  private readonly maxGroupBytes: number;
  private readonly maxPendingRecords: number;
  private readonly watchHistoryEvents: number;
  private readonly maxLeases: number;

  // State.
  private readonly entries = new Map<string, Entry>();
  private readonly sortedKeys: string[] = [];
  private currentRevision = 0;
  private readonly leases = new Map<LeaseId, LeaseState>();
  private nextLeaseId = 1;

  // Log and group commit.
  private logFile: FileHandle | undefined;
  private logGeneration = 0;
  private logBytes = 0;
  private pending: PendingRecord[] = [];
  private appliedSeq = 0;
  private durableSeq = 0;
  private durableWaiters: DurableWaiter[] = [];
  private admissionWaiters: Array<() => void> = [];
  private flushing = false;
  private failure: Error | undefined;
  private closed = false;
  private readonly counters = { logSyncs: 0, logRecords: 0, snapshots: 0 };

  // Watches.
  private readonly watchers = new Set<Watcher>();
  private history: HistoryBatch[] = [];
  private historyEvents = 0;
  /** History holds every revision after this one. */
  private compactRevision = 0;

  private constructor(dir: string, options: EmbeddedMetadataStoreOptions) {
    this.dir = dir;
    this.limits = {
      maxTxnOps: options.maxTxnOps ?? 1024,
      maxTxnBytes: options.maxTxnBytes ?? 1536 * 1024,
    };
    this.snapshotLogBytes = options.snapshotLogBytes ?? 64 * 1024 * 1024;
    this.maxGroupBytes = options.maxGroupBytes ?? 8 * 1024 * 1024;
    this.maxPendingRecords = options.maxPendingRecords ?? 10_000;
    this.watchHistoryEvents = options.watchHistoryEvents ?? 10_000;
    this.maxLeases = options.maxLeases ?? 100_000;
  }

  /** Opens (creating if needed) the store in dir and recovers its state. */
  static async open(dir: string, options: EmbeddedMetadataStoreOptions = {}): Promise<EmbeddedMetadataStore> {
    await mkdir(dir, { recursive: true });
    const store = new EmbeddedMetadataStore(dir, options);
    await store.recover();
    return store;
  }

  stats(): EmbeddedMetadataStoreStats {
    return { ...this.counters, logBytes: this.logBytes };
  }

  // ---- reads ----

  async revision(): Promise<number> {
    this.checkUsable();
    const revision = this.currentRevision;
    await this.waitDurable(this.appliedSeq);
    return revision;
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.checkUsable();
    const kv = this.keyValue(key);
    await this.waitDurable(this.appliedSeq);
    return kv;
  }

  async range(prefix: string, options: RangeOptions = {}): Promise<RangeResult> {
    this.checkUsable();
    const { kvs, more } = this.rangeNow(prefix, options);
    const revision = this.currentRevision;
    await this.waitDurable(this.appliedSeq);
    return { kvs, more, revision };
  }

  // ---- writes ----

  async put(key: string, value: Buffer | string, options: { lease?: LeaseId } = {}): Promise<{ revision: number }> {
    const result = await this.txn({ compare: [], success: [{ type: 'put', key, value, lease: options.lease }] });
    return { revision: result.revision };
  }

  async delete(key: string, options: { prefix?: boolean } = {}): Promise<{ deleted: number; revision: number }> {
    const result = await this.txn({ compare: [], success: [{ type: 'delete', key, prefix: options.prefix }] });
    const response = result.responses[0];
    if (response?.type !== 'delete') throw new Error('delete: missing delete response');
    return { deleted: response.deleted, revision: result.revision };
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    this.checkUsable();
    this.validateTxn(request);
    await this.admission();
    const { result, seq } = this.executeTxn(request);
    await this.waitDurable(seq);
    return result;
  }

  // ---- leases ----

  async grantLease(ttlMs: number): Promise<LeaseId> {
    this.checkUsable();
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new RangeError(`lease TTL must be a positive integer (ms): ${ttlMs}`);
    if (this.leases.size >= this.maxLeases) throw new Error(`too many leases (bound ${this.maxLeases})`);
    await this.admission();
    const lease = String(this.nextLeaseId);
    const op: LogOp = { type: 'grant', lease, ttlMs };
    this.applyOp(op, this.currentRevision);
    this.startLeaseTimer(lease);
    const seq = this.enqueue({ revision: this.currentRevision, ops: [op] }, []);
    await this.waitDurable(seq);
    return lease;
  }

  async keepAlive(lease: LeaseId): Promise<number> {
    this.checkUsable();
    const state = this.leases.get(lease);
    if (state === undefined) throw new LeaseNotFoundError(lease);
    state.timer?.refresh();
    return state.ttlMs;
  }

  async revokeLease(lease: LeaseId): Promise<void> {
    this.checkUsable();
    if (!this.leases.has(lease)) throw new LeaseNotFoundError(lease);
    await this.admission();
    if (!this.leases.has(lease)) throw new LeaseNotFoundError(lease);
    await this.waitDurable(this.revokeNow(lease));
  }

  // ---- watches ----

  watch(
    prefix: string,
    fromRevision: number | undefined,
    onEvents: WatchCallback,
    onError?: (error: Error) => void,
  ): WatchCancel {
    const watcher: Watcher = { prefix, onEvents, onError, cancelled: false };
    const cancel = (): void => {
      watcher.cancelled = true;
      this.watchers.delete(watcher);
    };
    if (this.closed || this.failure !== undefined) {
      this.notifyError(watcher, this.failure ?? new MetadataStoreClosedError());
      return cancel;
    }
    if (fromRevision !== undefined) {
      if (fromRevision <= this.compactRevision) {
        this.notifyError(watcher, new WatchCompactedError(fromRevision, this.compactRevision));
        return cancel;
      }
      for (const batch of this.history) {
        if (batch.revision >= fromRevision) this.deliver(watcher, batch.events);
      }
    }
    this.watchers.add(watcher);
    return cancel;
  }

  // ---- lifecycle ----

  /** Waits for queued writes to be durable, stops lease timers, ends watches, closes the log. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const state of this.leases.values()) clearTimeout(state.timer);
    try {
      await this.waitDurable(this.appliedSeq);
    } catch {
      // The failure was logged when it happened; closing still releases the file.
    }
    while (this.flushing) await new Promise((resolve) => setImmediate(resolve));
    for (const watcher of this.watchers) this.notifyError(watcher, new MetadataStoreClosedError());
    this.watchers.clear();
    for (const wake of this.admissionWaiters.splice(0)) wake();
    await this.logFile?.close();
    this.logFile = undefined;
  }

  // ---- transaction execution (synchronous: this is where transactions serialize) ----

  private validateTxn(request: TxnRequest): void {
    const { maxTxnOps, maxTxnBytes } = this.limits;
    const failure = request.failure ?? [];
    if (request.compare.length > maxTxnOps || request.success.length > maxTxnOps || failure.length > maxTxnOps) {
      throw new InvalidTxnError(`too many operations in txn (bound ${maxTxnOps})`);
    }
    let bytes = 0;
    for (const compare of request.compare) {
      bytes += compare.key.length + (compare.target === 'value' ? compare.value.length : 8);
    }
    for (const op of [...request.success, ...failure]) {
      bytes += (op.type === 'range' ? op.prefix.length : op.key.length) + (op.type === 'put' ? op.value.length : 0);
    }
    if (bytes > maxTxnBytes) throw new InvalidTxnError(`txn of about ${bytes} bytes over the bound ${maxTxnBytes}`);
    checkBranch(request.success);
    checkBranch(failure);
  }

  private executeTxn(request: TxnRequest): { result: TxnResult; seq: number } {
    const succeeded = request.compare.every((compare) => this.holds(compare));
    const ops = succeeded ? request.success : (request.failure ?? []);
    for (const op of ops) {
      if (op.type === 'put' && op.lease !== undefined && !this.leases.has(op.lease)) {
        throw new LeaseNotFoundError(op.lease);
      }
    }
    const revision = this.currentRevision + 1;
    const logOps: LogOp[] = [];
    const events: WatchEvent[] = [];
    const responses = ops.map((op) => this.executeOp(op, revision, logOps, events));
    let seq = this.appliedSeq;
    if (logOps.length > 0) {
      this.currentRevision = revision;
      seq = this.enqueue({ revision, ops: logOps }, events);
    }
    return { result: { succeeded, responses, revision: this.currentRevision }, seq };
  }

  private executeOp(op: TxnOp, revision: number, logOps: LogOp[], events: WatchEvent[]): TxnOpResponse {
    switch (op.type) {
      case 'put': {
        const logOp: LogOp = { type: 'put', key: op.key, value: toBuffer(op.value), lease: op.lease };
        this.applyOp(logOp, revision);
        logOps.push(logOp);
        events.push({ type: 'put', key: op.key, value: logOp.value, modRevision: revision });
        return { type: 'put' };
      }
      case 'delete': {
        const keys = op.prefix === true ? this.rangeKeys(op.key, {}) : this.entries.has(op.key) ? [op.key] : [];
        for (const key of keys) {
          const logOp: LogOp = { type: 'delete', key };
          this.applyOp(logOp, revision);
          logOps.push(logOp);
          events.push({ type: 'delete', key, value: Buffer.alloc(0), modRevision: revision });
        }
        return { type: 'delete', deleted: keys.length };
      }
      case 'get':
        return { type: 'get', kv: this.keyValue(op.key) };
      case 'range':
        return { type: 'range', ...this.rangeNow(op.prefix, op) };
    }
  }

  private holds(compare: Compare): boolean {
    const entry = this.entries.get(compare.key);
    if (compare.target === 'value') {
      if (entry === undefined) return false;
      return compareResult(Buffer.compare(entry.value, toBuffer(compare.value)), compare.op);
    }
    const actual = entry === undefined ? 0 : entry[compare.target];
    return compareResult(Math.sign(actual - compare.value), compare.op);
  }

  /** Revokes a lease now, deleting its keys; returns the sequence number to wait for. */
  private revokeNow(lease: LeaseId): number {
    const state = this.leases.get(lease);
    if (state === undefined) throw new LeaseNotFoundError(lease);
    const keys = [...state.keys].sort(compareKeys);
    const revision = keys.length > 0 ? this.currentRevision + 1 : this.currentRevision;
    const ops: LogOp[] = keys.map((key) => ({ type: 'delete', key }));
    ops.push({ type: 'revoke', lease });
    for (const op of ops) this.applyOp(op, revision);
    this.currentRevision = revision;
    const events: WatchEvent[] = keys.map((key) => ({ type: 'delete', key, value: Buffer.alloc(0), modRevision: revision }));
    return this.enqueue({ revision, ops }, events);
  }

  // ---- state changes (shared by live writes and replay) ----

  private applyOp(op: LogOp, revision: number): void {
    switch (op.type) {
      case 'put':
        return this.applyPut(op.key, op.value, op.lease, revision);
      case 'delete':
        return this.applyDelete(op.key);
      case 'grant':
        this.leases.set(op.lease, { ttlMs: op.ttlMs, keys: new Set(), timer: undefined });
        this.nextLeaseId = Math.max(this.nextLeaseId, Number(op.lease) + 1);
        return;
      case 'revoke': {
        const state = this.leases.get(op.lease);
        if (state === undefined) throw new Error(`metadata: revoke of unknown lease ${op.lease}`);
        if (state.keys.size !== 0) throw new Error(`metadata: lease ${op.lease} revoked with keys attached`);
        clearTimeout(state.timer);
        this.leases.delete(op.lease);
        return;
      }
    }
  }

  private applyPut(key: string, value: Buffer, lease: LeaseId | undefined, revision: number): void {
    const previous = this.entries.get(key);
    if (previous === undefined) {
      this.sortedKeys.splice(this.lowerBound(key), 0, key);
    } else if (previous.lease !== undefined) {
      this.leases.get(previous.lease)?.keys.delete(key);
    }
    if (lease !== undefined) {
      const state = this.leases.get(lease);
      if (state === undefined) throw new Error(`metadata: put ${key} on unknown lease ${lease}`);
      state.keys.add(key);
    }
    this.entries.set(key, {
      value,
      createRevision: previous?.createRevision ?? revision,
      modRevision: revision,
      version: (previous?.version ?? 0) + 1,
      lease,
    });
  }

  private applyDelete(key: string): void {
    const previous = this.entries.get(key);
    if (previous === undefined) throw new Error(`metadata: delete of missing key ${key}`);
    if (previous.lease !== undefined) this.leases.get(previous.lease)?.keys.delete(key);
    this.entries.delete(key);
    const index = this.lowerBound(key);
    if (this.sortedKeys[index] !== key) throw new Error(`metadata: key index out of step at ${key}`);
    this.sortedKeys.splice(index, 1);
  }

  private startLeaseTimer(lease: LeaseId): void {
    const state = this.leases.get(lease);
    if (state === undefined) return;
    state.timer = setTimeout(() => this.expireLease(lease), state.ttlMs);
    state.timer.unref();
  }

  private expireLease(lease: LeaseId): void {
    if (this.closed || this.failure !== undefined || !this.leases.has(lease)) return;
    try {
      this.revokeNow(lease);
    } catch (error) {
      log.error({ err: error, lease }, 'metadata: lease expiry failed');
    }
  }

  // ---- sorted key index ----

  private keyValue(key: string): KeyValue | undefined {
    const entry = this.entries.get(key);
    return entry === undefined ? undefined : { key, ...entry };
  }

  private rangeNow(prefix: string, options: RangeOptions): { kvs: KeyValue[]; more: boolean } {
    let keys = this.rangeKeys(prefix, options);
    if (options.order === 'descend') keys = keys.reverse();
    const limit = options.limit ?? 0;
    const more = limit > 0 && keys.length > limit;
    if (more) keys = keys.slice(0, limit);
    return { kvs: keys.map((key) => ({ key, ...(this.entries.get(key) as Entry) })), more };
  }

  /** Keys with the prefix in [startKey, endKey), ascending. */
  private rangeKeys(prefix: string, options: RangeOptions): string[] {
    const start = options.startKey !== undefined && compareKeys(options.startKey, prefix) > 0 ? options.startKey : prefix;
    const low = this.lowerBound(start);
    const endKey = options.endKey;
    const inRange = (key: string): boolean =>
      key.startsWith(prefix) && (endKey === undefined || compareKeys(key, endKey) < 0);
    let lo = low;
    let hi = this.sortedKeys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (inRange(this.sortedKeys[mid] as string)) lo = mid + 1;
      else hi = mid;
    }
    return this.sortedKeys.slice(low, lo);
  }

  private lowerBound(key: string): number {
    let lo = 0;
    let hi = this.sortedKeys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(this.sortedKeys[mid] as string, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // ---- group commit ----

  private checkUsable(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.closed) throw new MetadataStoreClosedError();
  }

  /** Waits while too many records are queued for the disk. */
  private async admission(): Promise<void> {
    while (this.pending.length >= this.maxPendingRecords) {
      await new Promise<void>((resolve) => this.admissionWaiters.push(resolve));
      this.checkUsable();
    }
    this.checkUsable();
  }

  private enqueue(record: LogRecord, events: WatchEvent[]): number {
    const bytes = encodeRecord(record);
    if (bytes.length > MAX_RECORD_BYTES) {
      // Memory already holds the change and the disk cannot: the store cannot go on.
      this.fail(new Error(`metadata: record of ${bytes.length} bytes over the bound ${MAX_RECORD_BYTES}`));
      throw this.failure;
    }
    const seq = ++this.appliedSeq;
    this.pending.push({ seq, bytes, revision: record.revision, events });
    this.scheduleFlush();
    return seq;
  }

  private waitDurable(seq: number): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.durableSeq >= seq) return Promise.resolve();
    return new Promise((resolve, reject) => this.durableWaiters.push({ seq, resolve, reject }));
  }

  private scheduleFlush(): void {
    if (this.flushing) return;
    this.flushing = true;
    // setImmediate rather than a microtask: everything issued in this turn joins the group.
    setImmediate(() => void this.flushLoop());
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.pending.length > 0 && this.failure === undefined) {
        const group = this.takeGroup();
        const bytes = group.length === 1 ? (group[0] as PendingRecord).bytes : Buffer.concat(group.map((r) => r.bytes));
        const file = this.requireLogFile();
        await file.write(bytes);
        await file.datasync();
        this.counters.logSyncs++;
        this.counters.logRecords += group.length;
        this.logBytes += bytes.length;
        // On disk: the encoded bytes are not read again (the records' events are published).
        for (const record of group) freeIfOwned(record.bytes);
        if (group.length > 1) freeIfOwned(bytes);
        this.markDurable(group);
        if (this.logBytes >= this.snapshotLogBytes) await this.snapshotNow();
      }
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.flushing = false;
    }
  }

  private takeGroup(): PendingRecord[] {
    let bytes = 0;
    let count = 0;
    for (const record of this.pending) {
      if (count > 0 && bytes + record.bytes.length > this.maxGroupBytes) break;
      bytes += record.bytes.length;
      count++;
    }
    return this.pending.splice(0, count);
  }

  private markDurable(records: PendingRecord[]): void {
    if (records.length === 0) return;
    const last = records[records.length - 1] as PendingRecord;
    this.durableSeq = last.seq;
    for (const record of records) this.publish(record);
    const waiting = this.durableWaiters;
    this.durableWaiters = [];
    for (const waiter of waiting) {
      if (waiter.seq <= this.durableSeq) waiter.resolve();
      else this.durableWaiters.push(waiter);
    }
    const room = this.maxPendingRecords - this.pending.length;
    for (const wake of this.admissionWaiters.splice(0, Math.max(room, 0))) wake();
  }

  private fail(error: Error): void {
    if (this.failure !== undefined) return;
    log.error({ err: error, dir: this.dir }, 'metadata store failed; it must be reopened');
    this.failure = error;
    for (const waiter of this.durableWaiters.splice(0)) waiter.reject(error);
    for (const wake of this.admissionWaiters.splice(0)) wake();
    for (const state of this.leases.values()) clearTimeout(state.timer);
    for (const watcher of this.watchers) this.notifyError(watcher, error);
    this.watchers.clear();
  }

  private requireLogFile(): FileHandle {
    if (this.logFile === undefined) throw new Error('metadata: log file is not open');
    return this.logFile;
  }

  // ---- watch delivery ----

  private publish(record: PendingRecord): void {
    if (record.events.length === 0) return;
    this.history.push({ revision: record.revision, events: record.events });
    this.historyEvents += record.events.length;
    while (this.historyEvents > this.watchHistoryEvents && this.history.length > 1) {
      const dropped = this.history.shift() as HistoryBatch;
      this.historyEvents -= dropped.events.length;
      this.compactRevision = dropped.revision;
    }
    for (const watcher of this.watchers) this.deliver(watcher, record.events);
  }

  private deliver(watcher: Watcher, events: WatchEvent[]): void {
    const matching = events.filter((event) => event.key.startsWith(watcher.prefix));
    if (matching.length === 0) return;
    queueMicrotask(() => {
      if (watcher.cancelled) return;
      try {
        watcher.onEvents(matching);
      } catch (error) {
        log.error({ err: error, prefix: watcher.prefix }, 'metadata watch callback threw');
      }
    });
  }

  private notifyError(watcher: Watcher, error: Error): void {
    watcher.cancelled = true;
    queueMicrotask(() => {
      if (watcher.onError !== undefined) watcher.onError(error);
      else if (!(error instanceof MetadataStoreClosedError)) log.error({ err: error, prefix: watcher.prefix }, 'metadata watch ended');
    });
  }

  // ---- snapshots and recovery ----

  /**
   * Writes a snapshot of the state as applied now, which covers every queued record too (they
   * become durable with it), then starts a new log generation.
   */
  private async snapshotNow(): Promise<void> {
    const generation = this.logGeneration + 1;
    const bytes = encodeSnapshot(this.captureSnapshot(generation));
    const covered = this.pending.splice(0);
    await this.writeFileDurably(SNAPSHOT_TEMP_FILE, bytes);
    await rename(join(this.dir, SNAPSHOT_TEMP_FILE), join(this.dir, SNAPSHOT_FILE));
    await this.syncDir();
    const previous = this.logGeneration;
    await this.requireLogFile().close();
    this.logFile = undefined;
    await this.openLog(generation, true);
    await rm(join(this.dir, logFileName(previous)), { force: true });
    this.counters.snapshots++;
    this.markDurable(covered);
  }

  private captureSnapshot(logGeneration: number): SnapshotContent {
    const leases = [...this.leases].map(([lease, state]) => ({ lease, ttlMs: state.ttlMs }));
    const kvs = this.sortedKeys.map((key) => ({ key, ...(this.entries.get(key) as Entry) }));
    return { revision: this.currentRevision, logGeneration, nextLeaseId: this.nextLeaseId, leases, kvs };
  }

  private async recover(): Promise<void> {
    const snapshot = await this.readSnapshot();
    if (snapshot !== undefined) this.loadSnapshot(snapshot);
    await rm(join(this.dir, SNAPSHOT_TEMP_FILE), { force: true });
    await this.removeOtherLogs(this.logGeneration);
    const logPath = join(this.dir, logFileName(this.logGeneration));
    const exists = await stat(logPath).then(() => true, () => false);
    if (exists) await this.replayLog(logPath);
    await this.openLog(this.logGeneration, !exists);
    this.compactRevision = this.currentRevision;
    for (const lease of this.leases.keys()) this.startLeaseTimer(lease);
  }

  private async readSnapshot(): Promise<SnapshotContent | undefined> {
    try {
      return decodeSnapshot(await readFile(join(this.dir, SNAPSHOT_FILE)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  private loadSnapshot(snapshot: SnapshotContent): void {
    this.currentRevision = snapshot.revision;
    this.logGeneration = snapshot.logGeneration;
    this.nextLeaseId = snapshot.nextLeaseId;
    for (const { lease, ttlMs } of snapshot.leases) this.leases.set(lease, { ttlMs, keys: new Set(), timer: undefined });
    for (const kv of snapshot.kvs) {
      const { key, ...entry } = kv;
      this.entries.set(key, entry);
      this.sortedKeys.push(key);
      if (entry.lease !== undefined) this.leases.get(entry.lease)?.keys.add(key);
    }
    this.sortedKeys.sort(compareKeys);
  }

  private async removeOtherLogs(generation: number): Promise<void> {
    for (const name of await readdir(this.dir)) {
      const match = /^log-(\d{16})$/.exec(name);
      if (match === null || Number(match[1]) === generation) continue;
      if (Number(match[1]) > generation) throw new Error(`metadata: log ${name} is newer than the snapshot`);
      await rm(join(this.dir, name), { force: true });
    }
  }

  private async replayLog(path: string): Promise<void> {
    const file = await readFile(path);
    const scan = scanLog(file, MAX_RECORD_BYTES);
    for (const record of scan.records) this.replayRecord(record);
    if (scan.tornReason === undefined) return;
    log.warn({ path, reason: scan.tornReason, keptBytes: scan.validBytes, fileBytes: file.length }, 'metadata log: truncating torn tail');
    const handle = await open(path, 'r+');
    try {
      await handle.truncate(scan.validBytes < LOG_HEADER_BYTES ? 0 : scan.validBytes);
      if (scan.validBytes < LOG_HEADER_BYTES) await handle.write(encodeLogHeader(), 0, LOG_HEADER_BYTES, 0);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  private replayRecord(record: LogRecord): void {
    const mutates = record.ops.some((op) => op.type === 'put' || op.type === 'delete');
    const expected = mutates ? this.currentRevision + 1 : this.currentRevision;
    if (record.revision !== expected) {
      throw new Error(`metadata log: record at revision ${record.revision}, expected ${expected}`);
    }
    for (const op of record.ops) this.applyOp(op, record.revision);
    this.currentRevision = record.revision;
  }

  private async openLog(generation: number, create: boolean): Promise<void> {
    const path = join(this.dir, logFileName(generation));
    const handle = await open(path, 'a');
    if (create) {
      await handle.truncate(0);
      await handle.write(encodeLogHeader());
      await handle.sync();
      await this.syncDir();
    }
    this.logFile = handle;
    this.logGeneration = generation;
    this.logBytes = (await handle.stat()).size;
  }

  private async writeFileDurably(name: string, bytes: Buffer): Promise<void> {
    const handle = await open(join(this.dir, name), 'w');
    try {
      await handle.write(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  private async syncDir(): Promise<void> {
    const handle = await open(this.dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

function compareResult(sign: number, op: Compare['op']): boolean {
  switch (op) {
    case '=':
      return sign === 0;
    case '!=':
      return sign !== 0;
    case '<':
      return sign < 0;
    case '>':
      return sign > 0;
  }
}

/** etcd's rules: no key put twice, no put inside a delete of the same branch; keys non-empty. */
function checkBranch(ops: TxnOp[]): void {
  const puts = new Set<string>();
  const deletes: Array<{ key: string; prefix: boolean }> = [];
  for (const op of ops) {
    if (op.type !== 'range' && op.key === '') throw new InvalidTxnError(`txn ${op.type}: empty key`);
    if (op.type === 'put') {
      if (puts.has(op.key)) throw new InvalidTxnError(`duplicate key given in txn request: ${op.key}`);
      puts.add(op.key);
    } else if (op.type === 'delete') {
      deletes.push({ key: op.key, prefix: op.prefix === true });
    }
  }
  for (const del of deletes) {
    for (const key of puts) {
      if (del.prefix ? key.startsWith(del.key) : key === del.key) {
        throw new InvalidTxnError(`duplicate key given in txn request: ${key} is put and deleted`);
      }
    }
  }
}
