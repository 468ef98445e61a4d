// One Kafka partition on one stream: validates produced batches, assigns offsets, keeps the
// idempotent producer state, serves reads up to the high watermark, long polls and
// ListOffsets by timestamp. Records stay opaque bytes: only batch headers are read, except by
// offsetForTimestamp, which looks inside the one batch that holds the answer.
//
// Ordering: append does everything up to issuing its stream appends synchronously (validation,
// sequence checks, offset assignment, producer state), so appends called in order get offsets
// in order and each is checked against all earlier ones, durable or not.
//
// Restart: producer state (and the sparse time index) is snapshotted through a
// ProducerStateStore every snapshotIntervalBytes of appends and on close, with the offset it
// covers; open() loads the snapshot and replays the batch headers of the stream from that
// offset (from the log start when there is no snapshot), so retries after a crash are still
// recognised as duplicates. The replay after a kill -9 is bounded by snapshotIntervalBytes.

import { log as rootLog } from '../metrics/log.ts';
import {
  batchSizeAt,
  findRecordByTimestamp,
  forEachBatch,
  isControlBatch,
  lastSequenceOf,
  readBaseOffset,
  readBaseSequence,
  readCrc,
  readLastOffsetDelta,
  readMaxTimestamp,
  readProducerEpoch,
  readProducerId,
  setBaseOffset,
  setLogAppendTime,
  setPartitionLeaderEpoch,
  validateProducedBatch,
  type TimestampAndOffset,
} from '../protocol/records.ts';
import { OffsetOutOfRangeError, type ReadLease, type Stream } from '../storage/stream.ts';
import { ErrorCode } from '../protocol/errors.ts';
import {
  checkSequence,
  ProducerStateTable,
  withBatch,
  type ProducerBatch,
  type ProducerEntry,
  type ProducerStateSnapshot,
} from './producer-state.ts';
import { TimeIndex } from './time-index.ts';

export type { ProducerStateSnapshot } from './producer-state.ts';

/** ListOffsets special timestamps. */
export const ListOffsetsTimestamp = { LATEST: -1, EARLIEST: -2, MAX_TIMESTAMP: -3, EARLIEST_LOCAL: -4 } as const;

/** Where producer state snapshots live; the broker wires it to the metadata store. */
export interface ProducerStateStore {
  load(topic: string, partition: number): Promise<ProducerStateSnapshot | undefined>;
  save(topic: string, partition: number, snapshot: ProducerStateSnapshot): Promise<void>;
}

export interface PartitionLogOptions {
  topic: string;
  partition: number;
  /** Where producer state snapshots are kept; without one, open() replays the whole stream. */
  producerStateStore?: ProducerStateStore;
  /** Stamped into every appended batch's partitionLeaderEpoch when set (Kafka's leader does). */
  leaderEpoch?: number;
  /** Topic max.message.bytes: a larger batch is refused with MESSAGE_TOO_LARGE. */
  maxMessageBytes?: number;
  /** Kafka's producer.id.expiration.ms: producers idle for longer are forgotten. */
  producerIdExpirationMs?: number;
  /** Bound on producer ids kept; the least recently written are forgotten first. */
  maxProducerIds?: number;
  /** Appended bytes between producer state snapshots (bounds the replay after a crash). */
  snapshotIntervalBytes?: number;
  /** Bound on concurrent waitForData calls; more return false at once. */
  maxWaiters?: number;
  timeIndexIntervalBytes?: number;
  timeIndexMaxEntries?: number;
  /** Bytes per stream read when replaying on open and when searching by timestamp. */
  scanReadBytes?: number;
  /** Clock for expiring producers on open. */
  nowMs?: number;
}

export interface AppendOptions {
  /** The topic's message.timestamp.type is LogAppendTime. */
  logAppendTime: boolean;
  nowMs: number;
}

export interface AppendResult {
  errorCode: number;
  /** Offset of the first record appended (or of the original, for a duplicate); -1 on error. */
  baseOffset: number;
  /** The broker time stamped into the batches for LogAppendTime topics, else -1. */
  logAppendTimeMs: number;
  /** -1 on error, like Kafka. */
  logStartOffset: number;
}

export interface LogReadResult {
  errorCode: number;
  /** Whole stored batches (slices); the first holds fetchOffset. */
  batches: Buffer[];
  highWatermark: number;
  logStartOffset: number;
  /** See ReadResult.lease: release it once the batches are written or copied. */
  lease?: ReadLease;
}

export interface OffsetForTimestampResult {
  errorCode: number;
  /** -1 when no record has a timestamp >= the target. */
  offset: number;
  /** The found record's timestamp; -1 for EARLIEST/LATEST and when not found. */
  timestampMs: number;
}

const DEFAULTS = {
  maxMessageBytes: 1_048_588,
  producerIdExpirationMs: 86_400_000,
  maxProducerIds: 100_000,
  snapshotIntervalBytes: 16 * 1024 * 1024,
  maxWaiters: 1024,
  timeIndexIntervalBytes: 4096,
  timeIndexMaxEntries: 1024,
  scanReadBytes: 1024 * 1024,
} as const;

interface Waiter {
  offset: number;
  resolve: (advanced: boolean) => void;
  timer: NodeJS.Timeout;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const DONE: Promise<number> = Promise.resolve(ErrorCode.NONE);

function failed(errorCode: number): AppendResult {
  return { errorCode, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1 };
}

function errorCodeOf(err: unknown): number {
  return err instanceof Error && err.name === 'StreamFencedError'
    ? ErrorCode.NOT_LEADER_OR_FOLLOWER
    : ErrorCode.KAFKA_STORAGE_ERROR;
}

export class PartitionLog {
  readonly topic: string;
  readonly partition: number;
  private readonly stream: Stream;
  private readonly stateStore: ProducerStateStore | undefined;
  private readonly leaderEpoch: number | undefined;
  private readonly maxMessageBytes: number;
  private readonly producerIdExpirationMs: number;
  private readonly snapshotIntervalBytes: number;
  private readonly maxWaiters: number;
  private readonly scanReadBytes: number;
  private readonly producers: ProducerStateTable;
  private readonly timeIndex: TimeIndex;
  private readonly waiters = new Set<Waiter>();
  private readonly logger: typeof rootLog;
  /** Resolves when the latest issued append settles (appends settle in offset order). */
  private lastAppend: Promise<number> = DONE;
  private failedAppends = 0;
  private bytesSinceSnapshot = 0;
  private snapshotInFlight: Promise<void> | undefined;
  private lastNowMs = 0;
  private closed = false;

  /** A log on a stream, with empty producer state: use open() for a stream that has data. */
  constructor(stream: Stream, options: PartitionLogOptions) {
    this.topic = options.topic;
    this.partition = options.partition;
    this.stream = stream;
    this.stateStore = options.producerStateStore;
    this.leaderEpoch = options.leaderEpoch;
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULTS.maxMessageBytes;
    this.producerIdExpirationMs = options.producerIdExpirationMs ?? DEFAULTS.producerIdExpirationMs;
    this.snapshotIntervalBytes = options.snapshotIntervalBytes ?? DEFAULTS.snapshotIntervalBytes;
    this.maxWaiters = options.maxWaiters ?? DEFAULTS.maxWaiters;
    this.scanReadBytes = options.scanReadBytes ?? DEFAULTS.scanReadBytes;
    this.producers = new ProducerStateTable(options.maxProducerIds ?? DEFAULTS.maxProducerIds);
    this.timeIndex = new TimeIndex(
      options.timeIndexIntervalBytes ?? DEFAULTS.timeIndexIntervalBytes,
      options.timeIndexMaxEntries ?? DEFAULTS.timeIndexMaxEntries,
    );
    this.timeIndex.reset(stream.nextOffset());
    this.logger = rootLog.child({ component: 'log', topic: this.topic, partition: this.partition, streamId: stream.streamId });
  }

  /**
   * Opens a partition on an opened stream: loads the producer state snapshot, then replays the
   * batch headers from max(logStartOffset, snapshot offset) to the end of the stream (rebuilding
   * producer state and the time index).
   */
  static async open(stream: Stream, options: PartitionLogOptions): Promise<PartitionLog> {
    const partitionLog = new PartitionLog(stream, options);
    await partitionLog.recover(options.nowMs ?? Date.now());
    return partitionLog;
  }

  highWatermark(): number {
    return this.stream.confirmedOffset();
  }

  logStartOffset(): number {
    return this.stream.startOffset();
  }

  /** Offset the next append takes (appends in flight included). */
  logEndOffset(): number {
    return this.stream.nextOffset();
  }

  /** Number of producer ids with state (for metrics and tests). */
  producerCount(): number {
    return this.producers.size;
  }

  // ---- produce ----

  /**
   * Appends a Produce request's records for this partition. Validates every batch (header, CRC,
   * size, producer sequence) before changing anything: any failure refuses all of them and
   * stores nothing. A retry of one of a producer's last 5 batches stores nothing and answers with
   * the original offsets (once the original is durable). Resolves when every batch is durable.
   */
  async append(records: Buffer, options: AppendOptions): Promise<AppendResult> {
    if (this.closed) return failed(ErrorCode.NOT_LEADER_OR_FOLLOWER);
    const errorCode = this.validate(records);
    if (errorCode !== ErrorCode.NONE) return failed(errorCode);

    // Sequence checks against state that includes appends still in flight, staged per producer.
    let staged: Map<number, ProducerEntry> | undefined;
    const newBatches: ProducerBatch[] = [];
    let offset = this.stream.nextOffset();
    for (let pos = 0; pos < records.length; pos += batchSizeAt(records, pos)) {
      const offsetCount = readLastOffsetDelta(records, pos) + 1;
      const producerId = readProducerId(records, pos);
      if (producerId >= 0) {
        const epoch = readProducerEpoch(records, pos);
        const firstSeq = readBaseSequence(records, pos);
        const lastOffsetDelta = offsetCount - 1;
        const lastSeq = lastSequenceOf(firstSeq, lastOffsetDelta);
        const current = staged?.get(producerId) ?? this.producers.get(producerId);
        const verdict = checkSequence(current, epoch, firstSeq, lastSeq);
        if (verdict.kind === 'reject') return failed(verdict.errorCode);
        if (verdict.kind === 'duplicate') return this.answerDuplicate(verdict.batch, options);
        const timestampMs = options.logAppendTime ? options.nowMs : readMaxTimestamp(records, pos);
        const batch: ProducerBatch = { firstSeq, lastSeq, baseOffset: offset, lastOffsetDelta, timestampMs, durable: undefined };
        newBatches.push(batch);
        staged ??= new Map();
        staged.set(producerId, withBatch(current, producerId, epoch, batch, options.nowMs, this.producers.get(producerId)));
      }
      offset += offsetCount;
    }
    return this.issueAppends(records, options, staged, newBatches);
  }

  /** Header, CRC and size of every batch; INVALID_RECORD when there is none. */
  private validate(records: Buffer): number {
    let batchCount = 0;
    for (let pos = 0; pos < records.length; ) {
      const sizeBytes = batchSizeAt(records, pos);
      if (sizeBytes < 0) return ErrorCode.CORRUPT_MESSAGE;
      if (sizeBytes > this.maxMessageBytes) return ErrorCode.MESSAGE_TOO_LARGE;
      const errorCode = validateProducedBatch(records, pos);
      if (errorCode !== ErrorCode.NONE) return errorCode;
      batchCount++;
      pos += sizeBytes;
    }
    return batchCount === 0 ? ErrorCode.INVALID_RECORD : ErrorCode.NONE;
  }

  /** Rewrites offsets (and timestamps), issues one stream append per batch, commits state. */
  private async issueAppends(
    records: Buffer,
    options: AppendOptions,
    staged: Map<number, ProducerEntry> | undefined,
    newBatches: ProducerBatch[],
  ): Promise<AppendResult> {
    const baseOffset = this.stream.nextOffset();
    let offset = baseOffset;
    let maxTimestamp = Number.NEGATIVE_INFINITY;
    const appends: Promise<void>[] = [];
    let issueError: unknown;
    for (let pos = 0; pos < records.length; ) {
      const sizeBytes = batchSizeAt(records, pos);
      const offsetCount = readLastOffsetDelta(records, pos) + 1;
      setBaseOffset(records, pos, offset);
      if (this.leaderEpoch !== undefined) setPartitionLeaderEpoch(records, pos, this.leaderEpoch);
      if (options.logAppendTime) setLogAppendTime(records, pos, options.nowMs);
      maxTimestamp = Math.max(maxTimestamp, readMaxTimestamp(records, pos));
      try {
        // validate() checked the CRC against the bytes (setLogAppendTime wrote a new one).
        const batchCrc = readCrc(records, pos);
        appends.push(this.stream.append({ baseOffset: offset, offsetCount, batch: records.subarray(pos, pos + sizeBytes), batchCrc }));
      } catch (err) {
        issueError = err;
        break;
      }
      offset += offsetCount;
      pos += sizeBytes;
    }
    if (appends.length === 0) {
      this.logger.error({ err: issueError }, 'stream append refused');
      return failed(errorCodeOf(issueError));
    }
    // Settled only once every append has (a failed one does not answer while others still hold
    // the request's bytes: the router frees the frame once the request is answered).
    const durable: Promise<number> = Promise.allSettled(appends).then((settled) => {
      const failure = settled.find((s) => s.status === 'rejected');
      if (failure === undefined) return issueError === undefined ? ErrorCode.NONE : errorCodeOf(issueError);
      this.logger.error({ err: failure.reason, baseOffset }, 'stream append failed');
      return errorCodeOf(failure.reason);
    });
    for (const batch of newBatches) batch.durable = durable;
    if (staged !== undefined) for (const entry of staged.values()) this.producers.commit(entry);
    this.lastAppend = durable;
    this.lastNowMs = options.nowMs;

    const errorCode = await durable;
    for (const batch of newBatches) batch.durable = undefined;
    if (errorCode !== ErrorCode.NONE) {
      this.failedAppends++;
      if (staged !== undefined) for (const entry of staged.values()) this.producers.rollback(entry);
      return failed(errorCode);
    }
    if (staged !== undefined) for (const entry of staged.values()) this.producers.settle(entry);
    this.timeIndex.observe(baseOffset, offset, maxTimestamp, records.length);
    this.wakeWaiters();
    this.bytesSinceSnapshot += records.length;
    if (this.bytesSinceSnapshot >= this.snapshotIntervalBytes) void this.saveSnapshot();
    return {
      errorCode: ErrorCode.NONE,
      baseOffset,
      logAppendTimeMs: options.logAppendTime ? options.nowMs : -1,
      logStartOffset: this.stream.startOffset(),
    };
  }

  private async answerDuplicate(batch: ProducerBatch, options: AppendOptions): Promise<AppendResult> {
    if (batch.durable !== undefined) {
      const errorCode = await batch.durable;
      if (errorCode !== ErrorCode.NONE) return failed(errorCode);
    }
    return {
      errorCode: ErrorCode.NONE,
      baseOffset: batch.baseOffset,
      logAppendTimeMs: options.logAppendTime ? batch.timestampMs : -1,
      logStartOffset: this.stream.startOffset(),
    };
  }

  // ---- fetch ----

  /**
   * Reads whole batches from the one holding fetchOffset, about maxBytes (at least one batch when
   * any is available), never past the high watermark. OFFSET_OUT_OF_RANGE when fetchOffset is
   * below the log start or above the high watermark.
   */
  async read(fetchOffset: number, maxBytes: number): Promise<LogReadResult> {
    const logStartOffset = this.stream.startOffset();
    const highWatermark = this.highWatermark();
    if (fetchOffset < logStartOffset || fetchOffset > highWatermark) {
      return { errorCode: ErrorCode.OFFSET_OUT_OF_RANGE, batches: [], highWatermark, logStartOffset };
    }
    if (fetchOffset === highWatermark) return { errorCode: ErrorCode.NONE, batches: [], highWatermark, logStartOffset };
    try {
      const result = await this.stream.read(fetchOffset, maxBytes);
      return {
        errorCode: ErrorCode.NONE,
        batches: result.batches,
        highWatermark: this.highWatermark(),
        logStartOffset: this.stream.startOffset(),
        lease: result.lease,
      };
    } catch (err) {
      if (!(err instanceof OffsetOutOfRangeError)) throw err;
      return {
        errorCode: ErrorCode.OFFSET_OUT_OF_RANGE,
        batches: [],
        highWatermark: this.highWatermark(),
        logStartOffset: this.stream.startOffset(),
      };
    }
  }

  /**
   * Resolves true as soon as the high watermark is above `offset` (at once if it already is),
   * false after timeoutMs, on abort, on close, or when maxWaiters are already waiting. A Fetch
   * handler waiting on several partitions races their waits and aborts the rest.
   */
  waitForData(offset: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.highWatermark() > offset) return Promise.resolve(true);
    if (this.closed || timeoutMs <= 0 || signal?.aborted === true || this.waiters.size >= this.maxWaiters) {
      return Promise.resolve(false);
    }
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        offset,
        resolve,
        timer: setTimeout(() => this.finishWaiter(waiter, false), timeoutMs),
        signal,
        onAbort: undefined,
      };
      if (signal !== undefined) {
        waiter.onAbort = () => this.finishWaiter(waiter, false);
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.waiters.add(waiter);
    });
  }

  private finishWaiter(waiter: Waiter, advanced: boolean): void {
    if (!this.waiters.delete(waiter)) return;
    clearTimeout(waiter.timer);
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    waiter.resolve(advanced);
  }

  private wakeWaiters(): void {
    if (this.waiters.size === 0) return;
    const highWatermark = this.highWatermark();
    for (const waiter of this.waiters) if (highWatermark > waiter.offset) this.finishWaiter(waiter, true);
  }

  // ---- ListOffsets ----

  /**
   * ListOffsets: EARLIEST (-2) and EARLIEST_LOCAL (-4) → log start offset; LATEST (-1) → high
   * watermark; a timestamp → the first record whose timestamp is >= it (offset -1 when none),
   * found via the time index and batch maxTimestamps, then inside that one batch.
   * MAX_TIMESTAMP (-3) and other negative values are not supported (UNSUPPORTED_VERSION).
   */
  async offsetForTimestamp(timestampMs: number): Promise<OffsetForTimestampResult> {
    if (timestampMs === ListOffsetsTimestamp.EARLIEST || timestampMs === ListOffsetsTimestamp.EARLIEST_LOCAL) {
      return { errorCode: ErrorCode.NONE, offset: this.stream.startOffset(), timestampMs: -1 };
    }
    if (timestampMs === ListOffsetsTimestamp.LATEST) {
      return { errorCode: ErrorCode.NONE, offset: this.highWatermark(), timestampMs: -1 };
    }
    if (timestampMs < 0) return { errorCode: ErrorCode.UNSUPPORTED_VERSION, offset: -1, timestampMs: -1 };
    let found: TimestampAndOffset | undefined;
    try {
      found = await this.searchByTimestamp(timestampMs);
    } catch (err) {
      if (!(err instanceof OffsetOutOfRangeError)) throw err;
      found = await this.searchByTimestamp(timestampMs); // retention moved the start: once more
    }
    return found === undefined
      ? { errorCode: ErrorCode.NONE, offset: -1, timestampMs: -1 }
      : { errorCode: ErrorCode.NONE, offset: found.offset, timestampMs: found.timestampMs };
  }

  private async searchByTimestamp(targetMs: number): Promise<TimestampAndOffset | undefined> {
    const start = this.stream.startOffset();
    const end = this.highWatermark();
    const covered = Math.max(start, this.timeIndex.coveredFromOffset);
    // Below the index's coverage (data older than the snapshot replayed on open): scan it.
    if (covered > start) {
      const found = await this.scanForTimestamp(start, Math.min(covered, end), targetMs);
      if (found !== undefined) return found;
    }
    return this.scanForTimestamp(Math.max(covered, this.timeIndex.lookup(targetMs)), end, targetMs);
  }

  private async scanForTimestamp(from: number, until: number, targetMs: number): Promise<TimestampAndOffset | undefined> {
    let found: TimestampAndOffset | undefined;
    await this.scanBatches(from, until, (batch, pos) => {
      if (readMaxTimestamp(batch, pos) < targetMs) return true;
      found = findRecordByTimestamp(batch, pos, targetMs);
      return found === undefined;
    });
    return found;
  }

  // ---- retention ----

  /** Moves the log start offset forward (retention, DeleteRecords). */
  async trim(newStartOffset: number): Promise<void> {
    await this.stream.trim(newStartOffset);
    this.timeIndex.truncateBelow(this.stream.startOffset());
  }

  /** Forgets producers idle for longer than producerIdExpirationMs; returns how many. */
  expireProducers(nowMs: number): number {
    return this.producers.expire(nowMs, this.producerIdExpirationMs);
  }

  // ---- producer state persistence ----

  /**
   * Saves a producer state snapshot as of the current end of the log, once every append issued
   * so far is durable. At most one save runs at a time; a call during one returns it.
   */
  saveSnapshot(): Promise<void> {
    const store = this.stateStore;
    if (store === undefined) return Promise.resolve();
    if (this.snapshotInFlight !== undefined) return this.snapshotInFlight;
    if (this.lastNowMs > 0) this.producers.expire(this.lastNowMs, this.producerIdExpirationMs);
    const snapshot = this.producers.toSnapshot(this.stream.nextOffset());
    const issued = this.lastAppend;
    const failuresBefore = this.failedAppends;
    this.bytesSinceSnapshot = 0;
    const save = async (): Promise<void> => {
      const errorCode = await issued;
      // A failed append in between may have been rolled back after the state was copied.
      if (errorCode !== ErrorCode.NONE || this.failedAppends !== failuresBefore) return;
      // The index is copied now: it has seen every batch below snapshot.offset by this point.
      await store.save(this.topic, this.partition, { ...snapshot, timeIndex: this.timeIndex.toState() });
    };
    this.snapshotInFlight = save()
      .catch((err: unknown) => this.logger.warn({ err }, 'producer state snapshot not saved'))
      .finally(() => {
        this.snapshotInFlight = undefined;
      });
    return this.snapshotInFlight;
  }

  private async recover(nowMs: number): Promise<void> {
    const start = this.stream.startOffset();
    const end = this.stream.confirmedOffset();
    let producersFrom = start;
    const snapshot = await this.loadSnapshot();
    if (snapshot !== undefined && snapshot.offset <= end) {
      try {
        this.producers.restore(snapshot);
        producersFrom = Math.max(start, snapshot.offset);
      } catch (err) {
        this.logger.warn({ err }, 'producer state snapshot unusable; replaying the whole stream');
      }
    } else if (snapshot !== undefined) {
      this.logger.warn({ snapshotOffset: snapshot.offset, end }, 'producer state snapshot is past the end of the stream; replaying all');
    }
    const indexFrom = this.restoreTimeIndex(snapshot, start, end, producersFrom);
    const from = Math.min(producersFrom, indexFrom);
    let replayedBytes = 0;
    await this.scanBatches(from, end, (batch, pos, sizeBytes) => {
      this.replayBatch(batch, pos, sizeBytes, producersFrom, nowMs);
      replayedBytes += sizeBytes;
      return true;
    });
    const expired = this.producers.expire(nowMs, this.producerIdExpirationMs);
    this.logger.debug({ from, end, replayedBytes, producers: this.producers.size, expired }, 'partition log opened');
  }

  /** Restores the snapshot's time index when it fits the stream; returns where it needs replay from. */
  private restoreTimeIndex(snapshot: ProducerStateSnapshot | undefined, start: number, end: number, producersFrom: number): number {
    const state = snapshot?.timeIndex;
    if (state !== undefined && state.nextOffset >= start && state.nextOffset <= end && this.timeIndex.restore(state)) {
      this.timeIndex.truncateBelow(start);
      return state.nextOffset;
    }
    this.timeIndex.reset(producersFrom);
    return producersFrom;
  }

  private async loadSnapshot(): Promise<ProducerStateSnapshot | undefined> {
    if (this.stateStore === undefined) return undefined;
    try {
      return await this.stateStore.load(this.topic, this.partition);
    } catch (err) {
      this.logger.warn({ err }, 'producer state snapshot not loaded; replaying the whole stream');
      return undefined;
    }
  }

  /** Feeds one stored batch to the time index, and to producer state from producersFrom on. */
  private replayBatch(batch: Buffer, pos: number, sizeBytes: number, producersFrom: number, nowMs: number): void {
    const baseOffset = readBaseOffset(batch, pos);
    const lastOffsetDelta = readLastOffsetDelta(batch, pos);
    const maxTimestamp = readMaxTimestamp(batch, pos);
    this.timeIndex.observe(baseOffset, baseOffset + lastOffsetDelta + 1, maxTimestamp, sizeBytes);
    if (baseOffset + lastOffsetDelta < producersFrom) return;
    const producerId = readProducerId(batch, pos);
    if (producerId < 0 || isControlBatch(batch, pos)) return;
    const firstSeq = readBaseSequence(batch, pos);
    this.producers.replay(producerId, readProducerEpoch(batch, pos), {
      firstSeq,
      lastSeq: lastSequenceOf(firstSeq, lastOffsetDelta),
      baseOffset,
      lastOffsetDelta,
      timestampMs: maxTimestamp,
      durable: undefined,
    }, nowMs);
  }

  /**
   * Visits every stored batch overlapping [from, until) in offset order until visit returns
   * false. Reads scanReadBytes at a time.
   */
  private async scanBatches(
    from: number,
    until: number,
    visit: (batch: Buffer, pos: number, sizeBytes: number) => boolean,
  ): Promise<void> {
    let offset = from;
    while (offset < until) {
      const result = await this.stream.read(offset, this.scanReadBytes);
      // The visitors read numbers out of the batches and keep no view of them.
      try {
        if (result.batches.length === 0) return;
        for (const buffer of result.batches) {
          let keepGoing = true;
          const errorCode = forEachBatch(buffer, (pos, sizeBytes) => {
            const baseOffset = readBaseOffset(buffer, pos);
            if (baseOffset >= until) return (keepGoing = false);
            if (baseOffset + readLastOffsetDelta(buffer, pos) < from) return true;
            return (keepGoing = visit(buffer, pos, sizeBytes));
          });
          if (errorCode !== ErrorCode.NONE) throw new Error(`stream ${this.stream.streamId} returned a truncated batch near offset ${offset}`);
          if (!keepGoing) return;
        }
      } finally {
        result.lease?.release();
      }
      if (result.nextOffset <= offset) throw new Error(`stream ${this.stream.streamId} read at ${offset} did not advance`);
      offset = result.nextOffset;
    }
  }

  // ---- lifecycle ----

  /**
   * Stops taking appends (NOT_LEADER_OR_FOLLOWER), releases waiters, waits for appends in
   * flight, saves a producer state snapshot and closes the stream.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.waiters) this.finishWaiter(waiter, false);
    await this.lastAppend;
    await this.snapshotInFlight;
    await this.saveSnapshot();
    await this.stream.close();
  }
}
