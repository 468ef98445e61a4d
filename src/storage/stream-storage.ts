// StreamStorage on a WAL, the log cache and data objects (DESIGN.md, Data flow).
//
// Append: offsets advance synchronously; the batch goes into the log cache (unuploaded) and the
// WAL; the append resolves when the WAL has it durable. The WAL resolves appends in order, all
// of one write in one synchronous loop, and each append's first reaction is onDurable, so the
// set of confirmed records is always a prefix of the WAL (the trim rule below relies on it).
//
// Admission (backpressure): the log cache's unuploaded bytes are bounded by the cache's size
// (unuploaded data cannot be evicted). An append that finds no room, or finds appends already
// waiting, waits in one FIFO across streams, its offsets assigned but neither cached nor written
// to the WAL, and asks for an upload; each commit of an upload admits the waiting appends that
// fit, in order. Its produce is answered later, so Kafka producers, which bound their in-flight
// requests, slow down instead of queuing without bound. (The WAL's capacity bounds the same data
// from its side: a WAL write that does not fit waits too.)
//
// Upload: when the durable unuploaded bytes pass uploadSizeBytes, every uploadIntervalMs, when
// the WAL is under pressure, when appends wait for room in the cache, and on flush(): one round at a time freezes the durable unuploaded
// batches of every stream, writes them as data objects (upload.ts: a stream with at least
// streamSplitSizeBytes gets stream objects of its own, the rest share a stream set object; each
// object at most maxObjectBytes), commits them in order (fenced by epoch), marks them uploaded in
// the cache and finally trims the WAL to the end of the last record confirmed before the freeze.
// A failed round leaves everything in place for the next one. A commit refused because a stream
// was re-opened elsewhere (or deleted) fences that stream here: its cached data is dropped, its
// appends and reads reject, and the round is retried without it.
//
// Read: from the log cache when it holds the offset (tailing reads: no I/O), else a catch-up
// read from the objects listed by metadata, through the block cache with read-ahead and on a
// budget of its own (cache/read-ahead.ts), paced by the tail guard while it slows appends
// (tail-guard.ts, fed with every append's time to durable); never past confirmedOffset.
//
// Recovery (start): replays the WAL from its trim offset. Each stream found is opened by this
// node (epoch + 1); records below its committed end are skipped, the rest go back into the log
// cache; they are uploaded (in rounds of uploadSizeBytes while replaying, so memory stays
// bounded), the WAL is trimmed past them and the streams are closed again. Their batches stay
// in the cache (uploaded) for the owner that opens them next.

import { log } from '../metrics/log.ts';
import { readBaseOffset, readOffsetCount } from '../protocol/records.ts';
import { LogCache } from './cache/log-cache.ts';
import type { UnuploadedRange } from './cache/log-cache.ts';
import { CatchUpReader } from './cache/read-ahead.ts';
import { StreamFencedError } from './metadata.ts';
import { TailGuard, type TailGuardOptions } from './tail-guard.ts';
import type { StreamMetadata, StreamState } from './metadata.ts';
import type { ObjectStore } from './objectstore/objectstore.ts';
import { streamAppendWaitBytesTotal, streamAppendWaitsTotal, streamAppendBytesTotal, uploadFailuresTotal } from './storage-metrics.ts';
import { OffsetOutOfRangeError } from './stream.ts';
import type { AppendRequest, ReadResult, Stream, StreamStorage } from './stream.ts';
import { DEFAULT_STREAM_SPLIT_SIZE_BYTES, planObjects, uploadObjects } from './upload.ts';
import type { ObjectUploadContext } from './upload.ts';
import type { WriteAheadLog } from './wal/wal.ts';

export const DEFAULT_UPLOAD_INTERVAL_MS = 5_000;
export const DEFAULT_UPLOAD_SIZE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_OBJECT_READER_CACHE_SIZE = 4096;
export const DEFAULT_PREPARE_TTL_MS = 10 * 60 * 1000;
/** Attempts of one upload round after commit conflicts (fencing, offset mismatch). */
const UPLOAD_CONFLICT_ATTEMPTS = 4;
/** Upload attempts while recovering before start() gives up (the WAL keeps the data). */
const RECOVERY_UPLOAD_ATTEMPTS = 5;
const RECOVERY_RETRY_BASE_MS = 100;

export interface StreamStorageOptions {
  nodeId: number;
  wal: WriteAheadLog;
  metadata: StreamMetadata;
  objectStore: ObjectStore;
  /**
   * Bound of the log cache, default 512 MiB: uploaded data is evicted past it, and appends wait
   * for uploads when unuploaded data alone would pass it.
   */
  logCacheSizeBytes?: number;
  /** Upload at least this often when there is data; default 5 s. */
  uploadIntervalMs?: number;
  /** Upload as soon as this many durable bytes wait; default 64 MiB. */
  uploadSizeBytes?: number;
  /** Largest object one upload writes (a round may write several); default 2 × uploadSizeBytes. */
  maxObjectBytes?: number;
  /** Streams with at least this many bytes in a round get stream objects of their own; default 16 MiB. */
  streamSplitSizeBytes?: number;
  /** Prepended to object keys (e.g. "cluster-a/"); default "". */
  objectKeyPrefix?: string;
  /** Data block size inside objects; default the format's (1 MiB). */
  objectBlockSizeBytes?: number;
  /** Opened objects (their parsed indexes) kept for reads; default 4096. */
  objectReaderCacheSize?: number;
  /** Bound of the parsed object indexes kept; default 16 MiB. */
  objectIndexCacheSizeBytes?: number;
  /** Bound of the block cache (data blocks of objects, for catch-up reads); default 256 MiB. */
  blockCacheSizeBytes?: number;
  /** Read-ahead window of a sequential catch-up reader: first size (default 512 KiB) and cap (default 32 MiB). */
  readAheadInitialBytes?: number;
  readAheadMaxBytes?: number;
  /** Catch-up budget: object-store GETs at once (default 8) and their bytes in flight (default 64 MiB). */
  catchUpMaxConcurrentGets?: number;
  catchUpMaxInflightBytes?: number;
  prepareTtlMs?: number;
  /** Pacing of catch-up reads while they slow appends (targetMs 0 turns it off). */
  tailGuard?: TailGuardOptions;
}

export class StreamStorageImpl implements StreamStorage {
  readonly nodeId: number;
  /** Exposed for tests and diagnostics. */
  readonly cache: LogCache;
  private readonly wal: WriteAheadLog;
  private readonly metadata: StreamMetadata;
  private readonly objectStore: ObjectStore;
  private readonly uploadIntervalMs: number;
  private readonly uploadSizeBytes: number;
  private readonly maxObjectBytes: number;
  private readonly streamSplitSizeBytes: number;
  private readonly uploadContext: ObjectUploadContext;

  /** Streams owned here (open, or being recovered). */
  private readonly streams = new Map<number, StreamImpl>();
  private readonly opening = new Set<number>();
  /** Reads that miss the log cache: block cache, read-ahead, catch-up budget. Exposed for tests. */
  readonly catchUp: CatchUpReader;
  /** @internal */
  readonly tailGuard: TailGuard;
  private state: 'new' | 'recovering' | 'running' | 'stopped' = 'new';
  private timer: NodeJS.Timeout | undefined;
  /** End of the last WAL record confirmed durable (any stream). */
  private confirmedWalEnd = 0;
  private trimmedWalTo = 0;

  private uploadRequested = false;
  private uploaderActive = false;
  private uploaderIdle: Promise<void> = Promise.resolve();
  private uploadWaiters: { resolve: (fenced: Error[]) => void; reject: (err: unknown) => void }[] = [];
  /** Appends waiting for room in the log cache, in arrival order (see Admission above). */
  private admissionQueue: PendingAdmission[] = [];

  constructor(options: StreamStorageOptions) {
    this.nodeId = options.nodeId;
    this.wal = options.wal;
    this.metadata = options.metadata;
    this.objectStore = options.objectStore;
    this.cache = new LogCache({ capacityBytes: options.logCacheSizeBytes });
    this.uploadIntervalMs = options.uploadIntervalMs ?? DEFAULT_UPLOAD_INTERVAL_MS;
    this.uploadSizeBytes = options.uploadSizeBytes ?? DEFAULT_UPLOAD_SIZE_BYTES;
    this.maxObjectBytes = options.maxObjectBytes ?? 2 * this.uploadSizeBytes;
    this.streamSplitSizeBytes = options.streamSplitSizeBytes ?? DEFAULT_STREAM_SPLIT_SIZE_BYTES;
    this.catchUp = new CatchUpReader({
      metadata: options.metadata,
      objectStore: options.objectStore,
      blockCacheSizeBytes: options.blockCacheSizeBytes,
      indexCacheSizeBytes: options.objectIndexCacheSizeBytes,
      indexCacheMaxObjects: options.objectReaderCacheSize ?? DEFAULT_OBJECT_READER_CACHE_SIZE,
      readAheadInitialBytes: options.readAheadInitialBytes,
      readAheadMaxBytes: options.readAheadMaxBytes,
      maxConcurrentGets: options.catchUpMaxConcurrentGets,
      maxInflightBytes: options.catchUpMaxInflightBytes,
    });
    this.tailGuard = new TailGuard(this.catchUp.limiter, options.tailGuard);
    this.uploadContext = {
      metadata: options.metadata,
      objectStore: options.objectStore,
      objectKeyPrefix: options.objectKeyPrefix ?? '',
      blockSizeBytes: options.objectBlockSizeBytes,
      prepareTtlMs: options.prepareTtlMs ?? DEFAULT_PREPARE_TTL_MS,
    };
    if (this.uploadSizeBytes <= 0 || this.maxObjectBytes <= 0 || this.uploadIntervalMs <= 0 || this.streamSplitSizeBytes <= 0) {
      throw new RangeError('uploadSizeBytes, maxObjectBytes, streamSplitSizeBytes and uploadIntervalMs must be positive');
    }
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('StreamStorage.start called twice');
    this.state = 'recovering';
    await this.recover();
    this.state = 'running';
    this.wal.setPressureListener(() => this.triggerUpload());
    this.tailGuard.start();
    this.timer = setInterval(() => {
      if (this.cache.unuploadedBytes() > 0) this.triggerUpload();
    }, this.uploadIntervalMs);
    this.timer.unref();
  }

  async createStream(): Promise<Stream> {
    const created = await this.metadata.createStream();
    return this.openStream(created.streamId);
  }

  async openStream(streamId: number): Promise<Stream> {
    if (this.state !== 'running') throw new Error(`StreamStorage is ${this.state}`);
    if (this.streams.has(streamId) || this.opening.has(streamId)) {
      throw new Error(`stream ${streamId} is already open on node ${this.nodeId}`);
    }
    this.opening.add(streamId);
    try {
      const state = await this.metadata.openStream(streamId, this.nodeId);
      // Batches cached from an earlier ownership are kept only if they end where metadata does
      // (they are all uploaded by then); anything else is stale.
      if (this.cache.endOffset(streamId) !== undefined && this.cache.endOffset(streamId) !== state.endOffset) {
        this.cache.dropStream(streamId);
      }
      const stream = new StreamImpl(this, state);
      this.streams.set(streamId, stream);
      return stream;
    } finally {
      this.opening.delete(streamId);
    }
  }

  async flush(): Promise<void> {
    const fenced = await this.flushAll();
    if (fenced.length > 0) throw fenced[0];
  }

  async shutdown(): Promise<void> {
    if (this.state === 'stopped') return;
    try {
      if (this.state === 'running') await this.flush();
    } catch (err) {
      log.error({ err }, 'StreamStorage shutdown: flush failed; the WAL keeps the data');
    }
    this.halt();
    await this.uploaderIdle;
    for (const stream of this.streams.values()) stream.markClosed();
    this.streams.clear();
    await this.wal.close();
  }

  /** Stops background work at once, without flushing or closing the WAL (what a crash does). */
  halt(): void {
    this.state = 'stopped';
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.tailGuard.stop();
    this.wal.setPressureListener(() => {});
    const waiting = this.admissionQueue;
    this.admissionQueue = [];
    for (const pending of waiting) pending.reject(new Error('StreamStorage is stopped'));
  }

  // ---- used by StreamImpl ----

  /** @internal */
  appendToWal(stream: StreamImpl, request: AppendRequest): Promise<number> {
    streamAppendBytesTotal.inc(request.batch.length);
    return this.wal.append(stream.streamId, stream.epoch, request.baseOffset, request.offsetCount, request.batch, request.batchCrc);
  }

  /**
   * @internal Whether an append of bytes may go ahead now: the log cache has room for that much
   * more unuploaded data and no append waits before it. A batch larger than the whole cache is
   * admitted into an empty one.
   */
  admitsNow(bytes: number): boolean {
    return this.admissionQueue.length === 0 && this.cacheHasRoom(bytes);
  }

  /**
   * @internal Queues append (which caches the batch and writes it to the WAL) until uploads make
   * room for it, after the appends already waiting (when admitsNow said no).
   */
  admitLater(bytes: number, append: () => Promise<void>): Promise<void> {
    if (this.state === 'stopped') return Promise.reject(new Error('StreamStorage is stopped'));
    streamAppendWaitsTotal.inc();
    streamAppendWaitBytesTotal.inc(bytes);
    this.triggerUpload();
    return new Promise((resolve, reject) => {
      this.admissionQueue.push({ bytes, run: () => {
        try {
          append().then(resolve, reject);
        } catch (err) {
          reject(err);
        }
      }, reject });
    });
  }

  /** Appends waiting for room in the log cache (for tests and diagnostics). */
  waitingAppends(): number {
    return this.admissionQueue.length;
  }

  private cacheHasRoom(bytes: number): boolean {
    const unuploaded = this.cache.unuploadedBytes();
    return unuploaded === 0 || unuploaded + bytes <= this.cache.capacityBytes;
  }

  /** Admits the waiting appends that now fit, in order (after an upload commit or a dropped stream). */
  private admitWaiting(): void {
    let admitted = 0;
    while (admitted < this.admissionQueue.length && this.cacheHasRoom(this.admissionQueue[admitted]!.bytes)) {
      // run() caches the batch at once, so the next check sees it.
      this.admissionQueue[admitted++]!.run();
    }
    if (admitted > 0) this.admissionQueue = this.admissionQueue.slice(admitted);
  }

  /** @internal */
  maxBatchBytes(): number {
    return this.wal.maxBatchBytes();
  }

  /** @internal A record of the stream became durable at walEndOffset. */
  noteDurable(walEndOffset: number): void {
    if (walEndOffset > this.confirmedWalEnd) this.confirmedWalEnd = walEndOffset;
    if (this.cache.unuploadedBytes() >= this.uploadSizeBytes || this.admissionQueue.length > 0) this.triggerUpload();
  }

  /** @internal Uploads everything durable once the streams' in-flight appends settle. */
  async flushAll(): Promise<Error[]> {
    if (this.state !== 'running') throw new Error(`StreamStorage is ${this.state}`);
    await Promise.allSettled([...this.streams.values()].map((stream) => stream.lastAppend()));
    return this.requestUpload();
  }

  /** @internal */
  async closeStream(stream: StreamImpl): Promise<void> {
    await this.metadata.closeStream(stream.streamId, stream.epoch);
    this.forget(stream);
  }

  /** @internal */
  forget(stream: StreamImpl): void {
    if (this.streams.get(stream.streamId) === stream) this.streams.delete(stream.streamId);
  }

  /** @internal Marks a stream fenced (or otherwise unusable here) and drops its cached data. */
  fence(stream: StreamImpl, err: Error): void {
    log.warn({ streamId: stream.streamId, epoch: stream.epoch, err: err.message }, 'stream fenced on this node');
    stream.fail(err);
    this.cache.dropStream(stream.streamId);
    this.forget(stream);
    this.admitWaiting();
  }

  /** @internal Trims the stream in metadata (fenced by its epoch). */
  async trimStream(stream: StreamImpl, newStartOffset: number): Promise<void> {
    try {
      await this.metadata.trimStream(stream.streamId, stream.epoch, newStartOffset);
    } catch (err) {
      if (isFenced(err)) this.fence(stream, err as Error);
      throw err;
    }
  }

  /** @internal Whole batches from objects, from the one holding startOffset, none past endLimit. */
  readObjects(stream: StreamImpl, startOffset: number, maxBytes: number, endLimit: number): Promise<ReadResult> {
    return this.catchUp.read(stream.streamId, startOffset, maxBytes, endLimit);
  }

  // ---- upload ----

  private triggerUpload(): void {
    if (this.state !== 'running' && this.state !== 'recovering') return;
    this.uploadRequested = true;
    this.startUploader();
  }

  /** Resolves (with the errors of streams fenced meanwhile) after a round that starts from now. */
  private requestUpload(): Promise<Error[]> {
    return new Promise((resolve, reject) => {
      this.uploadWaiters.push({ resolve, reject });
      this.uploadRequested = true;
      this.startUploader();
    });
  }

  private startUploader(): void {
    if (this.uploaderActive) return;
    this.uploaderActive = true;
    this.uploaderIdle = this.runUploader();
  }

  private async runUploader(): Promise<void> {
    while (this.uploadRequested) {
      this.uploadRequested = false;
      const waiters = this.uploadWaiters.splice(0);
      try {
        if (this.state === 'stopped') throw new Error('StreamStorage is stopped');
        const fenced = await this.uploadRound();
        for (const waiter of waiters) waiter.resolve(fenced);
      } catch (err) {
        uploadFailuresTotal.inc();
        log.warn({ err }, 'upload failed; the data stays in the WAL and cache for the next round');
        for (const waiter of waiters) waiter.reject(err);
      }
    }
    this.uploaderActive = false;
  }

  /** Uploads every durable unuploaded batch, then trims the WAL. Returns the fencing errors met. */
  private async uploadRound(): Promise<Error[]> {
    const fenced: Error[] = [];
    for (let attempt = 1; ; attempt++) {
      // Every record confirmed up to here is frozen below (or was uploaded or dropped before).
      const trimTo = this.confirmedWalEnd;
      const { ranges, epochs } = this.freeze();
      try {
        const plan = planObjects(ranges, (id) => epochs.get(id)!, {
          maxObjectBytes: this.maxObjectBytes,
          streamSplitSizeBytes: this.streamSplitSizeBytes,
        });
        await uploadObjects(this.uploadContext, plan, (committed, bodyMayStillBeRead) => {
          for (const range of committed.ranges) this.cache.markUploaded(range.streamId, range.endOffset, bodyMayStillBeRead);
          this.admitWaiting();
        });
      } catch (err) {
        if (attempt >= UPLOAD_CONFLICT_ATTEMPTS || !isCommitConflict(err)) throw err;
        log.info({ err: (err as Error).message }, 'upload commit refused; reconciling with metadata');
        fenced.push(...(await this.reconcile(ranges)));
        continue;
      }
      if (this.state !== 'recovering' && trimTo > this.trimmedWalTo) {
        await this.wal.trim(trimTo);
        this.trimmedWalTo = trimTo;
      }
      return fenced;
    }
  }

  /** The durable unuploaded batches of every stream, and the epochs to commit them under. */
  private freeze(): { ranges: UnuploadedRange[]; epochs: Map<number, number> } {
    const ranges: UnuploadedRange[] = [];
    const epochs = new Map<number, number>();
    for (const streamId of this.cache.dirtyStreamIds()) {
      const stream = this.streams.get(streamId);
      if (stream === undefined) throw new Error(`stream ${streamId} has unuploaded data but no owner here`);
      const range = this.cache.unuploaded(streamId, stream.confirmedOffset());
      if (range === undefined) continue;
      ranges.push(range);
      epochs.set(streamId, stream.epoch);
    }
    ranges.sort((a, b) => a.streamId - b.streamId);
    return { ranges, epochs };
  }

  /**
   * After a refused commit: asks metadata about each stream of the round. A stream re-opened
   * elsewhere or deleted is fenced here; one committed further than the cache knows (an earlier
   * commit that reported failure but went through) has those batches marked uploaded.
   */
  private async reconcile(ranges: readonly UnuploadedRange[]): Promise<Error[]> {
    const fenced: Error[] = [];
    for (const range of ranges) {
      const stream = this.streams.get(range.streamId);
      if (stream === undefined) continue;
      const state = await this.metadata.getStream(range.streamId);
      if (state === undefined || state.epoch !== stream.epoch) {
        const err = state === undefined
          ? new Error(`stream ${range.streamId} was deleted`)
          : new StreamFencedError(range.streamId, stream.epoch, state.epoch);
        this.fence(stream, err);
        fenced.push(err);
        continue;
      }
      const pending = this.cache.unuploaded(range.streamId, Number.MAX_SAFE_INTEGER);
      if (pending === undefined || state.endOffset === pending.startOffset) continue;
      if (state.endOffset > pending.startOffset) {
        // Committed by an earlier round, whose PUT attempts are not known here: memory not reused.
        this.cache.markUploaded(range.streamId, state.endOffset, true);
      } else {
        const err = new Error(`stream ${range.streamId}: metadata ends at ${state.endOffset}, unuploaded data starts at ${pending.startOffset}`);
        log.error({ streamId: range.streamId }, err.message);
        this.fence(stream, err);
        fenced.push(err);
      }
    }
    return fenced;
  }

  // ---- recovery ----

  private async recover(): Promise<void> {
    const skipped = new Set<number>();
    /** Committed end of streams seen but not (yet) opened. */
    const committedEnds = new Map<number, number>();
    let lastWalEnd: number | undefined;
    let replayed = 0;
    for await (const record of this.wal.recover()) {
      lastWalEnd = record.walEndOffset;
      if (skipped.has(record.streamId)) continue;
      const endOffset = record.baseOffset + record.offsetCount;
      let stream = this.streams.get(record.streamId);
      if (stream === undefined) {
        // Open (epoch + 1) only a stream that has records to replay.
        let committedEnd = committedEnds.get(record.streamId);
        if (committedEnd === undefined) {
          const state = await this.metadata.getStream(record.streamId);
          if (state === undefined) {
            log.warn({ streamId: record.streamId }, 'WAL recovery: stream no longer exists; skipping its records');
            skipped.add(record.streamId);
            continue;
          }
          committedEnd = state.endOffset;
          committedEnds.set(record.streamId, committedEnd);
        }
        if (endOffset <= committedEnd) continue;
        stream = new StreamImpl(this, await this.metadata.openStream(record.streamId, this.nodeId));
        this.streams.set(record.streamId, stream);
      }
      if (endOffset <= stream.nextOffset()) continue; // committed already
      if (record.baseOffset !== stream.nextOffset()) {
        log.error({ streamId: record.streamId, expected: stream.nextOffset(), found: record.baseOffset },
          'WAL recovery: records of the stream do not continue its committed data; skipping the stream');
        this.cache.dropStream(record.streamId);
        this.forget(stream);
        skipped.add(record.streamId);
        continue;
      }
      this.cache.append(record.streamId, record.baseOffset, endOffset, record.batch);
      stream.restore(endOffset);
      replayed++;
      if (this.cache.unuploadedBytes() >= this.uploadSizeBytes) await this.uploadForRecovery();
    }
    if (this.cache.unuploadedBytes() > 0) await this.uploadForRecovery();
    if (lastWalEnd !== undefined) {
      await this.wal.trim(lastWalEnd);
      this.trimmedWalTo = lastWalEnd;
    }
    for (const stream of [...this.streams.values()]) {
      try {
        await this.metadata.closeStream(stream.streamId, stream.epoch);
      } catch (err) {
        if (!isFenced(err)) throw err;
        log.warn({ streamId: stream.streamId, err: (err as Error).message }, 'WAL recovery: stream taken over meanwhile');
      }
      stream.markClosed();
    }
    this.streams.clear();
    log.info({ nodeId: this.nodeId, replayed, skippedStreams: skipped.size }, 'stream storage recovered');
  }

  /** An upload round during recovery, retried a few times (start() fails after that). */
  private async uploadForRecovery(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.requestUpload();
        return;
      } catch (err) {
        if (attempt >= RECOVERY_UPLOAD_ATTEMPTS) throw err;
        await new Promise((resolve) => setTimeout(resolve, RECOVERY_RETRY_BASE_MS * 2 ** attempt));
      }
    }
  }
}

/** An append waiting for room in the log cache. */
interface PendingAdmission {
  bytes: number;
  run(): void;
  reject(err: Error): void;
}

class StreamImpl implements Stream {
  readonly streamId: number;
  readonly epoch: number;
  private readonly storage: StreamStorageImpl;
  private start: number;
  private next: number;
  private confirmed: number;
  private tail: Promise<unknown> = Promise.resolve();
  private failure: Error | undefined;
  private closing = false;
  private closed = false;

  constructor(storage: StreamStorageImpl, state: StreamState) {
    this.storage = storage;
    this.streamId = state.streamId;
    this.epoch = state.epoch;
    this.start = state.startOffset;
    this.next = state.endOffset;
    this.confirmed = state.endOffset;
  }

  startOffset(): number {
    return this.start;
  }

  nextOffset(): number {
    return this.next;
  }

  confirmedOffset(): number {
    return this.confirmed;
  }

  append(request: AppendRequest): Promise<void> {
    const unusable = this.unusable();
    if (unusable !== undefined) return Promise.reject(unusable);
    if (request.baseOffset !== this.next) {
      throw new Error(`stream ${this.streamId}: append at ${request.baseOffset}, next offset is ${this.next}`);
    }
    if (!Number.isSafeInteger(request.offsetCount) || request.offsetCount < 1) {
      throw new RangeError(`stream ${this.streamId}: bad offset count ${request.offsetCount}`);
    }
    if (request.batch.length > this.storage.maxBatchBytes()) {
      throw new RangeError(`stream ${this.streamId}: batch of ${request.batch.length} bytes exceeds ${this.storage.maxBatchBytes()}`);
    }
    const endOffset = request.baseOffset + request.offsetCount;
    this.next = endOffset;
    const startedMs = performance.now();
    // The common case calls straight through; only an append that must wait makes a closure.
    const durable = this.storage.admitsNow(request.batch.length)
      ? this.appendAdmitted(request, endOffset, startedMs)
      : this.storage.admitLater(request.batch.length, () => this.appendAdmitted(request, endOffset, startedMs));
    this.tail = durable;
    return durable;
  }

  /** Caches the batch and writes it to the WAL: synchronously up to the WAL's promise. */
  private appendAdmitted(request: AppendRequest, endOffset: number, startedMs: number): Promise<void> {
    // A batch that waited for admission may find its stream fenced or failed meanwhile.
    if (this.failure !== undefined) return Promise.reject(this.failure);
    this.storage.cache.append(this.streamId, request.baseOffset, endOffset, request.batch);
    return this.storage.appendToWal(this, request).then(
      (walEndOffset) => {
        // Runs first on the WAL's promise: see the note at the top of this file.
        if (endOffset > this.confirmed) this.confirmed = endOffset;
        this.storage.noteDurable(walEndOffset);
        this.storage.tailGuard.observe(performance.now() - startedMs, request.batch.length);
        if (this.failure !== undefined) throw this.failure;
      },
      (err: unknown) => {
        this.failure ??= err instanceof Error ? err : new Error(String(err));
        throw err;
      },
    );
  }

  async read(startOffset: number, maxBytes: number): Promise<ReadResult> {
    const unusable = this.unusable(true);
    if (unusable !== undefined) throw unusable;
    if (startOffset < this.start || startOffset > this.next) {
      throw new OffsetOutOfRangeError(this.streamId, startOffset, this.start, this.next);
    }
    const endLimit = this.confirmed;
    if (startOffset >= endLimit) return { batches: [], nextOffset: startOffset };
    const cached = this.storage.cache.read(this.streamId, startOffset, maxBytes, endLimit);
    if (cached !== undefined) return cached;
    return this.storage.readObjects(this, startOffset, maxBytes, endLimit);
  }

  async trim(newStartOffset: number): Promise<void> {
    const unusable = this.unusable();
    if (unusable !== undefined) throw unusable;
    if (newStartOffset <= this.start) return;
    if (newStartOffset > this.next) {
      throw new OffsetOutOfRangeError(this.streamId, newStartOffset, this.start, this.next + 1);
    }
    await this.storage.trimStream(this, newStartOffset);
    if (newStartOffset > this.start) this.start = newStartOffset;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closing = true;
    await this.tail.catch(() => {});
    if (this.failure === undefined) {
      await this.storage.flushAll();
      if (this.failure !== undefined) throw this.failure;
      await this.storage.closeStream(this);
    } else {
      this.storage.forget(this);
    }
    this.closed = true;
  }

  // ---- used by StreamStorageImpl ----

  /** @internal */
  lastAppend(): Promise<unknown> {
    return this.tail;
  }

  /** @internal Recovery: a replayed record is durable and cached up to endOffset. */
  restore(endOffset: number): void {
    this.next = endOffset;
    this.confirmed = endOffset;
  }

  /** @internal */
  fail(err: Error): void {
    this.failure ??= err;
  }

  /** @internal */
  markClosed(): void {
    this.closed = true;
  }

  private unusable(forRead = false): Error | undefined {
    if (this.failure !== undefined) return this.failure;
    if (this.closed || (this.closing && !forRead)) return new Error(`stream ${this.streamId} is closed`);
    return undefined;
  }
}

/** Offset after a Kafka v2 record batch. */
function batchEndOffset(batch: Buffer): number {
  return readBaseOffset(batch, 0) + readOffsetCount(batch, 0);
}

function isCommitConflict(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return (
    name === 'StreamFencedError' ||
    name === 'OffsetMismatchError' ||
    name === 'StreamNotFoundError' ||
    name === 'ObjectNotPreparedError'
  );
}

function isFenced(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'StreamFencedError' || name === 'StreamNotFoundError';
}
