// The object WAL: the write-ahead log is the object store itself (DESIGN.md, Formats: Object WAL).
// A broker in this mode keeps no WAL on local disk.
//
// Objects. Appends are batched into one object per batch, written with one PUT:
//
//   key:   <keyPrefix>wal/<node id>/<node epoch, 10 digits>/<sequence, 16 digits>
//   bytes: WAL records exactly as in the file WAL (format.ts: 24-byte header + body), back to
//          back, no pads. The sequence is the logical WAL offset of the object's first record,
//          so an object holds logical [sequence, sequence + size), a listing is in (epoch,
//          sequence) order and the objects of one node tile the logical offsets.
//
// Batching. At most one object per interval: a batch is PUT intervalMs after the previous PUT
// started (at once when that was longer ago: an idle WAL adds no wait), or as soon as it reaches
// maxObjectBytes, whichever comes first. One PUT is in flight at a time; appends arriving
// meanwhile form the next batch. So a record waits at most intervalMs (or the PUT in flight, when
// that takes longer) before its PUT starts, and the WAL makes at most one PUT per interval unless
// batches fill maxObjectBytes. Appends made together (one produce request, or the requests read in
// one I/O turn) share an object. All appends of a batch resolve, in order and in one synchronous
// loop, once the PUT succeeded and the owner check below passed.
//
// Why not "intervalMs after the batch's first append": under load, clients send their next
// requests right when the previous PUT answers them, so that rule adds the PUT's duration to every
// cycle (interval + PUT) for the same number of PUTs; spacing PUT starts keeps the cycle at the
// interval. Note that idempotent Kafka producers keep at most 5 requests in flight per connection:
// a producer's throughput is then bounded by 5 requests per cycle (bench/object-wal.ts).
//
// Space and backpressure. capacityBytes bounds the bytes of objects not yet released by trim()
// (and with it the log cache's unuploaded data). A batch takes queued records only while they fit
// maxObjectBytes and the free capacity; the rest waits, and the pressure listener is called (as
// it is when use passes pressureRatio of the capacity) so that stream storage uploads and trims.
// What waits is bounded by the connections' in-flight bytes, as with the file WAL.
//
// Failures. PUTs go through the ObjectStore decorators (bounded retries with backoff, timeouts).
// When a PUT still fails, its appends and every queued one reject and the WAL stops for good
// (fail-stop, like the file WAL): continuing with the next sequence could leave a rejected batch
// that lands late (an abandoned attempt) in the middle of acknowledged ones, where a later
// recovery would replay it. A restart recovers.
//
// Epochs and fencing (wal-owners.ts). open() takes the node's next epoch with a compare-and-swap
// on the owner record. After each PUT, and before each trim's DELETE, the writer reads the owner
// record; if the epoch is no longer its own it stops for good without acknowledging. Guarantee:
// every acknowledged record is replayed by the next owner's recovery. The ack follows PUT then
// check; the next owner lists after its claim; so if the check saw the old epoch, the PUT
// preceded the claim and the listing (strongly consistent LIST, as on S3) shows the object.
// Objects a fenced writer PUT after the listing were never acknowledged: the recovery seals
// what it listed (sealedBelow/sealed) and later recoveries delete those leftovers unread.
//
// Recovery. recover() lists the node's objects, keeps those of epochs below its own that the
// owner record allows (see wal-owners.ts), seals them, deletes the leftovers, and replays the
// rest in (epoch, sequence) order, reading one object ahead. Within an object it stops at the
// first record whose header, logical offset or body CRC is wrong (a torn or corrupt object: PUTs
// are atomic, so this is damage, logged as an error) and goes on with the next object; stream
// storage drops a stream whose records stop being contiguous. An object that disappeared
// between the listing and the GET was trimmed by a writer that had uploaded it, and is skipped.
// New objects start at the end of the last replayed object.

import { log } from '../../metrics/log.ts';
import { allocFreeable, freeIfOwned } from '../buffers.ts';
import { abandonedPutAttempts } from '../objectstore/retrying.ts';
import { isObjectNotFound } from '../objectstore/util.ts';
import { objectWalDeletedObjectsTotal, objectWalPutBytesTotal, objectWalPutDurationSeconds } from '../storage-metrics.ts';
import type { ObjectStore } from '../objectstore/objectstore.ts';
import {
  PAD_MAGIC,
  RECORD_HEADER_BYTES,
  decodeRecord,
  decodeRecordHeader,
  encodeRecord,
  recordBytes,
} from './format.ts';
import { recordRefusal, walRefusal } from './wal.ts';
import type { PendingAppend, WalRecord, WalRecoveryState, WalStats, WriteAheadLog } from './wal.ts';
import { WalFencedError } from './wal-owners.ts';
import type { VersionedWalOwnerRecord, WalOwnerRecord, WalOwnerStore } from './wal-owners.ts';

const MiB = 1024 * 1024;
export const DEFAULT_OBJECT_WAL_INTERVAL_MS = 250;
export const DEFAULT_OBJECT_WAL_MAX_OBJECT_BYTES = 8 * MiB;
export const DEFAULT_OBJECT_WAL_CAPACITY_BYTES = 512 * MiB;
export const DEFAULT_OBJECT_WAL_PRESSURE_RATIO = 0.5;
const EPOCH_DIGITS = 10;
const SEQUENCE_DIGITS = 16;
const MAX_EPOCH = 10 ** EPOCH_DIGITS - 1;
/** Attempts of the owner-record claim (CAS conflicts) and of reads of it (metadata errors). */
const OWNER_ATTEMPTS = 5;
/** Attempts of recovery's LIST and GETs on top of the store's own retries (throttling). */
const RECOVERY_ATTEMPTS = 5;
const RETRY_BASE_MS = 100;

export interface ObjectWalOptions {
  objectStore: ObjectStore;
  /** Where the node's WAL epoch and seals are kept, with compare-and-swap. */
  owners: WalOwnerStore;
  nodeId: number;
  /** Prepended to object keys (e.g. "cluster-a/"); default "". */
  keyPrefix?: string;
  /** Longest an append waits for its batch's PUT to start; default 250 ms. */
  intervalMs?: number;
  /** Size at which a batch is PUT at once; also bounds one record. Default 8 MiB. */
  maxObjectBytes?: number;
  /** Bound of the bytes in objects not yet released by trim(); default 512 MiB. */
  capacityBytes?: number;
  /** Fraction of the capacity in use past which the pressure listener is called. */
  pressureRatio?: number;
}

/** A WAL object not yet deleted by trim(). */
interface LiveObject {
  key: string;
  startOffset: number;
  endOffset: number;
  /** trim() at or past this offset deletes the object (end of its last valid record). */
  releaseOffset: number;
}

interface ListedObject {
  key: string;
  epoch: number;
  sequence: number;
  sizeBytes: number;
}

export class ObjectWal implements WriteAheadLog {
  readonly nodeId: number;
  /** The node epoch this writer took at open(). */
  readonly epoch: number;
  private readonly store: ObjectStore;
  private readonly owners: WalOwnerStore;
  private readonly keyPrefix: string;
  private readonly intervalMs: number;
  private readonly maxObjectBytes: number;
  private readonly capacity: number;
  private readonly pressureRatio: number;
  /** The owner record as this writer claimed it (recovery seals against it). */
  private readonly claimed: VersionedWalOwnerRecord;

  private recoveryState: WalRecoveryState = 'pending';
  /** Logical offset where the next object starts (the end of the last one written). */
  private nextOffset = 0;
  private live: LiveObject[] = [];
  private liveBytes = 0;
  private inflightBytes = 0;
  /** performance.now() when the last PUT started: the next one starts intervalMs later at the earliest. */
  private lastPutStartedAtMs = -Infinity;
  private trimmedTo = 0;
  private trimTail: Promise<void> = Promise.resolve();

  private queue: PendingAppend[] = [];
  private queueHead = 0;
  private queueBytes = 0;
  private loopRunning = false;
  private loopDone: Promise<void> = Promise.resolve();
  private wakeUp: (() => void) | undefined;
  private failure: Error | undefined;
  private closed = false;
  private pressureListener: (() => void) | undefined;
  private pressureSignaled = false;
  private readonly counters: WalStats = { writes: 0, fsyncs: 0, records: 0, bytesWritten: 0 };

  private constructor(options: ObjectWalOptions, claimed: VersionedWalOwnerRecord) {
    this.nodeId = options.nodeId;
    this.epoch = claimed.record.epoch;
    this.claimed = claimed;
    this.store = options.objectStore;
    this.owners = options.owners;
    this.keyPrefix = options.keyPrefix ?? '';
    this.intervalMs = options.intervalMs ?? DEFAULT_OBJECT_WAL_INTERVAL_MS;
    this.maxObjectBytes = options.maxObjectBytes ?? DEFAULT_OBJECT_WAL_MAX_OBJECT_BYTES;
    this.capacity = options.capacityBytes ?? DEFAULT_OBJECT_WAL_CAPACITY_BYTES;
    this.pressureRatio = options.pressureRatio ?? DEFAULT_OBJECT_WAL_PRESSURE_RATIO;
  }

  /** Takes the node's next WAL epoch (fencing the previous owner). Call recover() next. */
  static async open(options: ObjectWalOptions): Promise<ObjectWal> {
    checkOptions(options);
    const claimed = await claimEpoch(options.owners, options.nodeId);
    log.info({ nodeId: options.nodeId, epoch: claimed.record.epoch }, 'object WAL epoch taken');
    return new ObjectWal(options, claimed);
  }

  /** How many WAL objects of the node the store holds (a non-zero count means records may wait). */
  static async pendingObjectCount(store: ObjectStore, nodeId: number, keyPrefix = ''): Promise<number> {
    const prefix = walNodePrefix(keyPrefix, nodeId);
    return (await store.list(prefix)).filter((info) => parseWalObjectKey(prefix, info.key) !== undefined).length;
  }

  /** The key prefix of every WAL object of this node. */
  nodePrefix(): string {
    return walNodePrefix(this.keyPrefix, this.nodeId);
  }

  async *recover(): AsyncGenerator<WalRecord, void, undefined> {
    if (this.recoveryState !== 'pending') throw new Error('WAL recovery runs once');
    this.recoveryState = 'running';
    const replay = await this.planRecovery();
    let records = 0;
    let previousEnd = 0;
    let next = replay.length > 0 ? this.fetchObject(replay[0]!) : undefined;
    for (let i = 0; i < replay.length; i++) {
      const object = replay[i]!;
      const bytes = await next!;
      next = i + 1 < replay.length ? this.fetchObject(replay[i + 1]!) : undefined;
      next?.catch(() => {}); // awaited on the next turn; not an unhandled rejection meanwhile
      if (bytes === undefined) {
        log.warn({ key: object.key }, 'object WAL recovery: object deleted since the listing (trimmed); skipping it');
        continue;
      }
      if (object.sequence < previousEnd) {
        throw new Error(`object WAL ${object.key} starts at ${object.sequence}, inside the previous object (ends at ${previousEnd})`);
      }
      const scan = scanWalObject(bytes, object.sequence);
      if (scan.problem !== undefined) {
        log.error({ key: object.key, validBytes: scan.endOffset - object.sequence, sizeBytes: bytes.length, problem: scan.problem },
          'object WAL recovery: damaged object; replaying its records before the damage only');
      }
      this.addLive({ key: object.key, startOffset: object.sequence, endOffset: object.sequence + bytes.length, releaseOffset: scan.endOffset });
      previousEnd = object.sequence + bytes.length;
      for (const record of scan.records) {
        records++;
        yield record;
      }
    }
    this.nextOffset = Math.max(this.nextOffset, previousEnd);
    log.info({ nodeId: this.nodeId, epoch: this.epoch, objects: replay.length, records, nextOffset: this.nextOffset },
      'object WAL recovered');
    this.recoveryState = 'done';
    this.kick();
  }

  append(streamId: number, epoch: number, baseOffset: number, offsetCount: number, batch: Buffer, batchCrc?: number): Promise<number> {
    const refused = walRefusal(this.failure, this.closed, this.recoveryState, 'appended to')
      ?? recordRefusal(batch.length, this.maxBatchBytes(), offsetCount);
    if (refused !== undefined) return Promise.reject(refused);
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ streamId, epoch, baseOffset, offsetCount, batch, batchCrc, resolve, reject });
      this.queueBytes += recordBytes(batch.length);
      if (this.loopRunning) {
        if (this.queueBytes >= this.maxObjectBytes) this.wake();
      } else {
        this.kick();
      }
    });
  }

  trim(walOffset: number): Promise<void> {
    const refused = walRefusal(this.failure, this.closed, this.recoveryState, 'trimmed');
    if (refused !== undefined) return Promise.reject(refused);
    if (walOffset > this.nextOffset) {
      return Promise.reject(new RangeError(`WAL trim to ${walOffset} past the written end ${this.nextOffset}`));
    }
    if (walOffset <= this.trimmedTo) return Promise.resolve();
    // Serialized: each trim deletes what the ones before it left.
    const run = this.trimTail.catch(() => {}).then(() => this.release(walOffset));
    this.trimTail = run;
    return run;
  }

  maxBatchBytes(): number {
    return this.maxObjectBytes - recordBytes(0);
  }

  capacityBytes(): number {
    return this.capacity;
  }

  usedBytes(): number {
    return this.liveBytes + this.inflightBytes;
  }

  /** Objects written and not yet deleted (tests, diagnostics). */
  liveObjectKeys(): string[] {
    return this.live.map((object) => object.key);
  }

  setPressureListener(listener: () => void): void {
    this.pressureListener = listener;
  }

  stats(): WalStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake(); // a batch waiting for its interval is PUT now
    await this.loopDone;
    await this.trimTail.catch(() => {});
    this.rejectQueued(new Error('WAL is closed'));
  }

  // ---- writer loop ----

  private kick(): void {
    if (this.loopRunning || this.failure !== undefined || this.recoveryState !== 'done') return;
    if (this.queueHead === this.queue.length) return;
    this.loopRunning = true;
    // Start on the next macrotask: appends of the same produce request (and of the requests read
    // in the same I/O phase) then share the object.
    this.loopDone = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.runLoop());
  }

  private async runLoop(): Promise<void> {
    try {
      for (;;) {
        if (this.failure !== undefined || this.queueHead === this.queue.length) {
          this.loopRunning = false; // same tick as the last check: no wakeup is lost
          return;
        }
        const dueAtMs = this.lastPutStartedAtMs + this.intervalMs;
        if (!this.closed && this.queueBytes < this.maxObjectBytes && performance.now() < dueAtMs) {
          await this.sleep(dueAtMs);
          continue;
        }
        const count = this.batchSize();
        if (count === 0) {
          this.signalPressure(true);
          if (this.closed) {
            this.loopRunning = false;
            return;
          }
          await this.sleep(undefined); // until trim() frees space (or close())
          continue;
        }
        await this.writeBatch(count);
      }
    } catch (err) {
      this.loopRunning = false;
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** How many queued records the next object takes (0 when the capacity lacks room for one). */
  private batchSize(): number {
    const room = this.capacity - this.liveBytes;
    let bytes = 0;
    let count = 0;
    for (let i = this.queueHead; i < this.queue.length; i++) {
      const next = bytes + recordBytes(this.queue[i]!.batch.length);
      if (next > this.maxObjectBytes || next > room) break;
      bytes = next;
      count++;
    }
    return count;
  }

  private async writeBatch(count: number): Promise<void> {
    const batch = this.queue.slice(this.queueHead, this.queueHead + count);
    this.queueHead += count;
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    const start = this.nextOffset;
    let size = 0;
    for (const r of batch) size += recordBytes(r.batch.length);
    this.queueBytes -= size;
    const body = allocFreeable(size); // freed after the PUT
    const ends: number[] = new Array<number>(count);
    let pos = 0;
    for (let i = 0; i < count; i++) {
      const r = batch[i]!;
      pos += encodeRecord(body, pos, start + pos, {
        streamId: r.streamId,
        epoch: r.epoch,
        baseOffset: r.baseOffset,
        lastOffsetDelta: r.offsetCount - 1,
        payloadLength: r.batch.length,
      }, r.batch, r.batchCrc);
      ends[i] = start + pos;
    }
    if (pos !== size) throw new Error(`object WAL encoded ${pos} bytes, expected ${size}`);
    const key = walObjectKey(this.keyPrefix, this.nodeId, this.epoch, start);
    this.inflightBytes = size;
    this.lastPutStartedAtMs = performance.now();
    const abandonedBefore = abandonedPutAttempts();
    try {
      const startedAt = performance.now();
      await this.store.put(key, body);
      objectWalPutDurationSeconds.observe((performance.now() - startedAt) / 1000);
      await this.checkOwner();
    } catch (err) {
      this.inflightBytes = 0;
      const error = err instanceof Error ? err : new Error(String(err));
      for (const r of batch) r.reject(error);
      throw error;
    } finally {
      // Freed now, not at a mark-compact (an object per interval: 20 MiB/s of garbage at 20 MiB/s
      // of produce), unless a PUT attempt abandoned on its timeout may still read it.
      if (abandonedPutAttempts() === abandonedBefore) freeIfOwned(body);
    }
    this.inflightBytes = 0;
    this.nextOffset = start + size;
    this.addLive({ key, startOffset: start, endOffset: start + size, releaseOffset: start + size });
    this.counters.writes++;
    this.counters.fsyncs++;
    this.counters.records += count;
    this.counters.bytesWritten += size;
    objectWalPutBytesTotal.inc(size);
    for (let i = 0; i < count; i++) batch[i]!.resolve(ends[i]!);
    if (this.usedBytes() >= this.pressureRatio * this.capacity) this.signalPressure(false);
  }

  /** Waits until wake(), or until performance.now() reaches untilMs when given. */
  private sleep(untilMs: number | undefined): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        if (this.wakeUp === done) this.wakeUp = undefined;
        resolve();
      };
      this.wakeUp = done;
      if (untilMs !== undefined) timer = setTimeout(done, Math.max(0, untilMs - performance.now()));
    });
  }

  private wake(): void {
    this.wakeUp?.();
  }

  /** Throws WalFencedError unless the owner record still carries this writer's epoch. */
  private async checkOwner(): Promise<void> {
    const current = await withAttempts(OWNER_ATTEMPTS, 'read the WAL owner record', () => this.owners.read(this.nodeId));
    if (current?.record.epoch !== this.epoch) throw new WalFencedError(this.nodeId, this.epoch, current?.record.epoch);
  }

  // ---- trim ----

  private async release(walOffset: number): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    let count = 0;
    while (count < this.live.length && this.live[count]!.releaseOffset <= walOffset) count++;
    if (count > 0) {
      // A fenced writer deletes nothing: the new owner may be reading these objects.
      try {
        await this.checkOwner();
      } catch (err) {
        this.fail(err instanceof Error ? err : new Error(String(err)));
        throw err;
      }
      const released = this.live.slice(0, count);
      await this.store.delete(released.map((object) => object.key));
      this.live = this.live.slice(count);
      for (const object of released) this.liveBytes -= object.endOffset - object.startOffset;
      objectWalDeletedObjectsTotal.inc(count);
    }
    this.trimmedTo = Math.max(this.trimmedTo, walOffset);
    if (this.usedBytes() < this.pressureRatio * this.capacity) this.pressureSignaled = false;
    this.wake(); // a batch waiting for space may fit now
  }

  private addLive(object: LiveObject): void {
    this.live.push(object);
    this.liveBytes += object.endOffset - object.startOffset;
  }

  private signalPressure(waiting: boolean): void {
    if (this.pressureSignaled && !waiting) return;
    this.pressureSignaled = true;
    this.pressureListener?.();
  }

  private fail(err: Error): void {
    if (this.failure !== undefined) return;
    log.error({ err, nodeId: this.nodeId, epoch: this.epoch }, 'object WAL failed; rejecting appends');
    this.failure = err;
    this.rejectQueued(err);
    this.wake();
  }

  private rejectQueued(err: Error): void {
    for (let i = this.queueHead; i < this.queue.length; i++) this.queue[i]!.reject(err);
    this.queue = [];
    this.queueHead = 0;
    this.queueBytes = 0;
  }

  // ---- recovery ----

  /**
   * Lists the node's objects, keeps the replayable ones (wal-owners.ts), seals them in the owner
   * record and deletes the leftovers of fenced writers. Returns the objects to replay, in order.
   */
  private async planRecovery(): Promise<ListedObject[]> {
    const prefix = this.nodePrefix();
    const listed = await withAttempts(RECOVERY_ATTEMPTS, `list ${prefix}`, () => this.store.list(prefix));
    const { record } = this.claimed;
    const seals = new Map(record.sealed);
    const replay: ListedObject[] = [];
    const leftovers: ListedObject[] = [];
    for (const info of listed) {
      const parsed = parseWalObjectKey(prefix, info.key);
      if (parsed === undefined) {
        log.warn({ key: info.key }, 'object WAL recovery: not a WAL object key; ignoring it');
        continue;
      }
      const object = { key: info.key, ...parsed, sizeBytes: info.sizeBytes };
      if (object.epoch >= this.epoch) {
        // Only an owner that claimed after us writes such an object.
        throw new WalFencedError(this.nodeId, this.epoch, object.epoch);
      }
      const sealed = object.epoch >= record.sealedBelow || object.sequence <= (seals.get(object.epoch) ?? -1);
      (sealed ? replay : leftovers).push(object);
    }
    replay.sort((a, b) => a.epoch - b.epoch || a.sequence - b.sequence);
    const lastSequences = new Map<number, number>();
    for (const object of replay) lastSequences.set(object.epoch, object.sequence);
    const seal: WalOwnerRecord = { epoch: this.epoch, sealedBelow: this.epoch, sealed: [...lastSequences] };
    if (!(await this.owners.write(this.nodeId, seal, this.claimed.version))) {
      const current = await this.owners.read(this.nodeId);
      throw new WalFencedError(this.nodeId, this.epoch, current?.record.epoch);
    }
    if (leftovers.length > 0) {
      log.warn({ nodeId: this.nodeId, keys: leftovers.map((o) => o.key).slice(0, 10), count: leftovers.length },
        'object WAL recovery: deleting objects a fenced writer put after an earlier recovery listed its WAL');
      await this.store.delete(leftovers.map((o) => o.key)).catch((err: unknown) => {
        log.warn({ err }, 'object WAL recovery: could not delete leftovers (the next recovery deletes them)');
      });
    }
    return replay;
  }

  /** The object's bytes, or undefined when it no longer exists. */
  private fetchObject(object: ListedObject): Promise<Buffer | undefined> {
    return withAttempts(RECOVERY_ATTEMPTS, `get ${object.key}`, async () => {
      try {
        return await this.store.get(object.key);
      } catch (err) {
        if (isObjectNotFound(err)) return undefined;
        throw err;
      }
    });
  }
}

// ---- keys and object bytes ----

export function walNodePrefix(keyPrefix: string, nodeId: number): string {
  return `${keyPrefix}wal/${nodeId}/`;
}

export function walObjectKey(keyPrefix: string, nodeId: number, epoch: number, sequence: number): string {
  if (!Number.isSafeInteger(epoch) || epoch < 0 || epoch > MAX_EPOCH) throw new RangeError(`WAL epoch out of range: ${epoch}`);
  if (!Number.isSafeInteger(sequence) || sequence < 0) throw new RangeError(`WAL sequence out of range: ${sequence}`);
  return `${walNodePrefix(keyPrefix, nodeId)}${String(epoch).padStart(EPOCH_DIGITS, '0')}/${String(sequence).padStart(SEQUENCE_DIGITS, '0')}`;
}

/** { epoch, sequence } of a key under nodePrefix, or undefined when it is not a WAL object key. */
export function parseWalObjectKey(nodePrefix: string, key: string): { epoch: number; sequence: number } | undefined {
  if (!key.startsWith(nodePrefix)) return undefined;
  const match = /^(\d{10})\/(\d{16})$/.exec(key.slice(nodePrefix.length));
  if (match === null) return undefined;
  const sequence = Number(match[2]);
  return Number.isSafeInteger(sequence) ? { epoch: Number(match[1]), sequence } : undefined;
}

export interface WalObjectScan {
  records: WalRecord[];
  /** Logical end of the last valid record (startOffset when none is valid). */
  endOffset: number;
  /** Why the scan stopped before the end of the object; undefined when it read it all. */
  problem: string | undefined;
}

/** The records of one WAL object whose first record sits at logical startOffset. */
export function scanWalObject(bytes: Buffer, startOffset: number): WalObjectScan {
  const records: WalRecord[] = [];
  let pos = 0;
  const stop = (problem: string): WalObjectScan => ({ records, endOffset: startOffset + pos, problem: `${problem} at byte ${pos}` });
  while (pos < bytes.length) {
    if (bytes.length - pos < RECORD_HEADER_BYTES) return stop('truncated record header');
    const header = decodeRecordHeader(bytes, pos);
    if (header === undefined) return stop('bad record header');
    if (header.logicalOffset !== startOffset + pos) return stop(`record at logical offset ${header.logicalOffset}`);
    const bodyStart = pos + RECORD_HEADER_BYTES;
    const end = bodyStart + header.bodyLength;
    if (end > bytes.length) return stop('truncated record body');
    if (header.magic === PAD_MAGIC) {
      pos = end;
      continue;
    }
    const record = decodeRecord(bytes, pos, header, startOffset + pos);
    if (record === undefined) return stop('record body CRC mismatch or inconsistent body');
    records.push(record);
    pos = end;
  }
  return { records, endOffset: startOffset + pos, problem: undefined };
}

// ---- helpers ----

async function claimEpoch(owners: WalOwnerStore, nodeId: number): Promise<VersionedWalOwnerRecord> {
  for (let attempt = 1; ; attempt++) {
    const current = await withAttempts(OWNER_ATTEMPTS, 'read the WAL owner record', () => owners.read(nodeId));
    const previous = current?.record ?? { epoch: 0, sealedBelow: 0, sealed: [] };
    if (previous.epoch >= MAX_EPOCH) throw new RangeError(`object WAL of node ${nodeId}: epochs exhausted`);
    const record: WalOwnerRecord = { ...previous, epoch: previous.epoch + 1 };
    if (await owners.write(nodeId, record, current?.version ?? 0)) {
      const written = await owners.read(nodeId);
      if (written === undefined || written.record.epoch !== record.epoch) {
        throw new WalFencedError(nodeId, record.epoch, written?.record.epoch);
      }
      return written;
    }
    if (attempt >= OWNER_ATTEMPTS) throw new Error(`object WAL of node ${nodeId}: the epoch claim lost ${attempt} races`);
  }
}

async function withAttempts<T>(attempts: number, what: string, op: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      if (attempt >= attempts || err instanceof WalFencedError) throw err;
      const delayMs = RETRY_BASE_MS * 2 ** (attempt - 1);
      log.warn({ err, attempt, delayMs }, `object WAL: could not ${what}; retrying`);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

function checkOptions(options: ObjectWalOptions): void {
  const positive = (name: string, value: number | undefined): void => {
    if (value !== undefined && (!Number.isSafeInteger(value) || value <= 0)) {
      throw new RangeError(`object WAL ${name} must be a positive integer, got ${value}`);
    }
  };
  positive('intervalMs', options.intervalMs);
  positive('maxObjectBytes', options.maxObjectBytes);
  positive('capacityBytes', options.capacityBytes);
  const maxObjectBytes = options.maxObjectBytes ?? DEFAULT_OBJECT_WAL_MAX_OBJECT_BYTES;
  const capacityBytes = options.capacityBytes ?? DEFAULT_OBJECT_WAL_CAPACITY_BYTES;
  if (maxObjectBytes <= recordBytes(0)) throw new RangeError(`object WAL maxObjectBytes ${maxObjectBytes} is too small`);
  if (capacityBytes < 2 * maxObjectBytes) {
    throw new RangeError(`object WAL capacity ${capacityBytes} must be at least 2 × maxObjectBytes (${maxObjectBytes})`);
  }
  if (!Number.isSafeInteger(options.nodeId) || options.nodeId < 0) throw new RangeError(`bad node id ${options.nodeId}`);
}
