// Catch-up reads: what a read that misses the log cache does (DESIGN.md, Fetch). It finds the
// stream's blocks through the objects metadata lists and their indexes (ObjectIndexCache), takes
// them from the block cache or loads them with ranged GETs, and reads ahead for sequential
// readers. Every object-store GET on this path runs through the catch-up limiter, a budget of
// its own (concurrent GETs, bytes in flight), so replaying old data cannot crowd out the tail:
// tailing reads are answered from the log cache and never reach this file.
//
// Sequential readers. A reader is known by where it will read next: a read that starts where an
// earlier read of the stream ended continues that reader (and its window); any other read starts
// a new one. Bounded: the least recently used readers are forgotten.
//
// Read-ahead window (bytes of the stream's blocks past what the read itself needs):
//   - 0 for a new reader; a sequential reader starts at initialBytes (hundreds of KiB);
//   - a round fetches every block of the window that is neither cached nor loading. A round
//     runs when the read itself had to wait for a block (a miss), or when half of the doubled
//     window is missing (the reader is half-way through what it read ahead); each round doubles
//     the window, up to maxBytes (tens of MiB), so a reader that keeps reading keeps growing it;
//   - a block read ahead and evicted unread drops the window back to 0 (so initialBytes again)
//     and halves what it may grow to: the cache cannot hold that much read-ahead next to the
//     other readers' (8 readers with 32 MiB windows and a 192 MiB cache evicted 60% of what they
//     read ahead, unread); 16 rounds at the lowered cap without a drop double it again;
//   - adjacent blocks of one object are fetched with one ranged GET (runs up to maxGetBytes);
//     the window may span the stream's next objects: those not opened yet are opened (and read)
//     in the background, the reader does not wait for them;
//   - an object no larger than the window, whose bytes are mostly this stream's (estimated from
//     the stream's bytes per offset so far), is read whole with its index: one GET, not two.
//
// Limiter: GETs wait for a free slot (maxConcurrentGets) and for room in maxInflightBytes (a GET
// larger than the budget runs alone). Reads waiting for their own blocks go before read-ahead;
// read-ahead is skipped while too many rounds already wait. A pace (bytes per second, none by
// default) may hold GETs back further: a token bucket that lets a GET start while it is not in
// debt and charges its bytes; the tail guard (tail-guard.ts) sets it while produce latency
// suffers from catch-up reads.

import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Counter, Gauge, register } from 'prom-client';
import { log } from '../../metrics/log.ts';
import type { ObjectRef, StreamMetadata } from '../metadata.ts';
import { DataObjectReader, DEFAULT_TAIL_READ_BYTES } from '../objects/format.ts';
import { COPY_YIELD_BYTES, type ObjectStore } from '../objectstore/objectstore.ts';
import { isObjectNotFound } from '../objectstore/util.ts';
import type { ReadResult } from '../stream.ts';
import { BlockCache, blockKey, BlockLease, ObjectIndexCache } from './block-cache.ts';
import type { ReadAheadOwner } from './block-cache.ts';

export const DEFAULT_READ_AHEAD_INITIAL_BYTES = 512 * 1024;
export const DEFAULT_READ_AHEAD_MAX_BYTES = 32 * 1024 * 1024;
export const DEFAULT_CATCH_UP_MAX_CONCURRENT_GETS = 8;
export const DEFAULT_CATCH_UP_MAX_INFLIGHT_BYTES = 64 * 1024 * 1024;
/** Sequential readers remembered (by stream and next offset). */
export const DEFAULT_MAX_TRACKED_READERS = 4096;
/** Read-ahead rounds allowed to wait for the limiter; more are skipped. */
const MAX_QUEUED_READ_AHEAD = 256;
/** Objects asked of metadata per read: how far one read (and its read-ahead) can reach. */
const OBJECTS_PER_READ = 8;

// ---------------------------------------------------------------------------------------------
// Read-ahead windows and sequential readers

export class ReadAheadWindow implements ReadAheadOwner {
  readonly initialBytes: number;
  readonly maxBytes: number;
  /** Bytes to keep read ahead; 0 until the reader proves sequential (or after a drop). */
  windowBytes = 0;
  /** A background round (objects not opened yet) is running. */
  backgroundRound = false;
  /** The stream's bytes per offset, as seen in its blocks (estimates object shares). */
  bytesPerOffset = 0;
  drops = 0;
  /**
   * What the window may grow to: maxBytes, halved from the window's size at each drop (the cache
   * could not hold that much of this reader's read-ahead next to the others'), doubled again
   * after ROUNDS_TO_REGROW rounds at it without a drop.
   */
  capBytes: number;
  private roundsAtCap = 0;

  constructor(initialBytes: number, maxBytes: number) {
    this.initialBytes = initialBytes;
    this.maxBytes = maxBytes;
    this.capBytes = maxBytes;
  }

  /** The window after one more round. */
  next(): number {
    return this.windowBytes === 0 ? this.initialBytes : Math.min(2 * this.windowBytes, this.capBytes);
  }

  /** A round ran with the window at next(). */
  advance(): void {
    this.windowBytes = this.next();
    if (this.windowBytes < this.capBytes || this.capBytes >= this.maxBytes) return;
    if (++this.roundsAtCap >= ROUNDS_TO_REGROW) {
      this.roundsAtCap = 0;
      this.capBytes = Math.min(this.maxBytes, 2 * this.capBytes);
    }
  }

  onEvictedUnread(): void {
    if (this.windowBytes > 0) {
      this.drops++;
      this.capBytes = Math.max(this.initialBytes, Math.floor(this.windowBytes / 2));
      this.roundsAtCap = 0;
    }
    this.windowBytes = 0;
  }
}

/** Rounds a window runs at its lowered cap without a drop before the cap doubles again. */
const ROUNDS_TO_REGROW = 16;

/** Readers by (stream, offset of their next read), least recently used first. */
export class SequentialReaders {
  readonly maxReaders: number;
  private readonly initialBytes: number;
  private readonly maxBytes: number;
  private readonly byPosition = new Map<string, ReadAheadWindow>();

  constructor(options: { initialBytes: number; maxBytes: number; maxReaders?: number }) {
    this.initialBytes = options.initialBytes;
    this.maxBytes = options.maxBytes;
    this.maxReaders = options.maxReaders ?? DEFAULT_MAX_TRACKED_READERS;
    if (!(this.initialBytes > 0 && this.maxBytes >= this.initialBytes)) {
      throw new RangeError(`read-ahead bytes: initial ${this.initialBytes}, max ${this.maxBytes}`);
    }
  }

  /** The reader that left off at (stream, offset), taken out; or a new one. */
  take(streamId: number, offset: number): { window: ReadAheadWindow; sequential: boolean } {
    const key = `${streamId}:${offset}`;
    const window = this.byPosition.get(key);
    if (window === undefined) return { window: new ReadAheadWindow(this.initialBytes, this.maxBytes), sequential: false };
    this.byPosition.delete(key);
    return { window, sequential: true };
  }

  /** Remembers that the reader will read (stream, nextOffset) next. */
  park(streamId: number, nextOffset: number, window: ReadAheadWindow): void {
    const key = `${streamId}:${nextOffset}`;
    this.byPosition.delete(key);
    this.byPosition.set(key, window);
    while (this.byPosition.size > this.maxReaders) this.byPosition.delete(this.byPosition.keys().next().value!);
  }

  size(): number {
    return this.byPosition.size;
  }
}

// ---------------------------------------------------------------------------------------------
// Catch-up limiter

export const Priority = { read: 'read', readAhead: 'readAhead' } as const;
export type Priority = (typeof Priority)[keyof typeof Priority];

interface LimiterWaiter {
  bytes: number;
  admit: () => void;
}

export interface CatchUpLimiterStats {
  activeGets: number;
  inflightBytes: number;
  queuedReads: number;
  queuedReadAhead: number;
  /** Highest activeGets and inflightBytes seen. */
  peakGets: number;
  peakInflightBytes: number;
}

/** Concurrency and byte budget of catch-up GETs; reads first, then read-ahead, FIFO within each. */
export class CatchUpLimiter {
  readonly maxConcurrentGets: number;
  readonly maxInflightBytes: number;
  private active = 0;
  private inflight = 0;
  private peakGets = 0;
  private peakInflight = 0;
  private readonly reads: LimiterWaiter[] = [];
  private readonly readAhead: LimiterWaiter[] = [];
  /** Bytes per second GETs may start at; Infinity: no pace. */
  private pace = Infinity;
  /** Token bucket of the pace: bytes GETs may still take (negative: debt), as of tokensAtMs. */
  private tokens = 0;
  private tokensAtMs = 0;
  private paceTimer: NodeJS.Timeout | undefined;
  /** Bytes of the GETs admitted since the last takeAdmittedBytes(). */
  private admittedBytes = 0;

  constructor(options: { maxConcurrentGets?: number; maxInflightBytes?: number } = {}) {
    this.maxConcurrentGets = options.maxConcurrentGets ?? DEFAULT_CATCH_UP_MAX_CONCURRENT_GETS;
    this.maxInflightBytes = options.maxInflightBytes ?? DEFAULT_CATCH_UP_MAX_INFLIGHT_BYTES;
    if (!(this.maxConcurrentGets >= 1 && this.maxInflightBytes >= 1)) {
      throw new RangeError(`catch-up limits: ${this.maxConcurrentGets} GETs, ${this.maxInflightBytes} bytes`);
    }
    reportLimiter(this);
  }

  /** Runs fn (one GET of about `bytes`) once the budget admits it. */
  async run<T>(bytes: number, priority: Priority, fn: () => Promise<T>): Promise<T> {
    await this.admit(bytes, priority);
    try {
      return await fn();
    } finally {
      this.active--;
      this.inflight -= bytes;
      this.pump();
    }
  }

  /** Sets the pace (bytes per second; Infinity for none). */
  setPace(bytesPerSecond: number): void {
    if (!(bytesPerSecond > 0)) throw new RangeError(`catch-up pace ${bytesPerSecond}`);
    if (this.pace === Infinity && bytesPerSecond !== Infinity) {
      this.tokens = 0;
      this.tokensAtMs = performance.now();
    }
    this.pace = bytesPerSecond;
    this.pump();
  }

  paceBytesPerSecond(): number {
    return this.pace;
  }

  /** Bytes of the GETs admitted since the previous call. */
  takeAdmittedBytes(): number {
    const bytes = this.admittedBytes;
    this.admittedBytes = 0;
    return bytes;
  }

  /** Whether catch-up GETs run or wait (for the budget or the pace). */
  hasDemand(): boolean {
    return this.active > 0 || this.reads.length > 0 || this.readAhead.length > 0;
  }

  /** Whether read-ahead should be skipped: too many rounds already wait. */
  readAheadSaturated(): boolean {
    return this.readAhead.length >= MAX_QUEUED_READ_AHEAD;
  }

  stats(): CatchUpLimiterStats {
    return {
      activeGets: this.active,
      inflightBytes: this.inflight,
      queuedReads: this.reads.length,
      queuedReadAhead: this.readAhead.length,
      peakGets: this.peakGets,
      peakInflightBytes: this.peakInflight,
    };
  }

  private admit(bytes: number, priority: Priority): Promise<void> {
    const queue = priority === Priority.read ? this.reads : this.readAhead;
    const ahead = priority === Priority.read ? this.reads.length : this.reads.length + this.readAhead.length;
    if (ahead === 0 && this.fits(bytes)) {
      this.take(bytes);
      return Promise.resolve();
    }
    return new Promise((resolve) => queue.push({ bytes, admit: resolve }));
  }

  private fits(bytes: number): boolean {
    return this.active < this.maxConcurrentGets && (this.active === 0 || this.inflight + bytes <= this.maxInflightBytes) && this.paced();
  }

  /** Whether the pace lets a GET start now; if not, pumps again once it does. */
  private paced(): boolean {
    if (this.pace === Infinity) return true;
    const nowMs = performance.now();
    // At most a tenth of a second of unused pace is saved up.
    this.tokens = Math.min(this.pace / 10, this.tokens + ((nowMs - this.tokensAtMs) * this.pace) / 1000);
    this.tokensAtMs = nowMs;
    if (this.tokens >= 0) return true;
    if (this.paceTimer === undefined) {
      this.paceTimer = setTimeout(() => {
        this.paceTimer = undefined;
        this.pump();
      }, Math.ceil((-this.tokens / this.pace) * 1000));
      this.paceTimer.unref();
    }
    return false;
  }

  private take(bytes: number): void {
    this.active++;
    this.inflight += bytes;
    this.admittedBytes += bytes;
    if (this.pace !== Infinity) this.tokens -= bytes;
    if (this.active > this.peakGets) this.peakGets = this.active;
    if (this.inflight > this.peakInflight) this.peakInflight = this.inflight;
  }

  private pump(): void {
    for (const queue of [this.reads, this.readAhead]) {
      while (queue.length > 0 && this.fits(queue[0]!.bytes)) {
        const waiter = queue.shift()!;
        this.take(waiter.bytes);
        waiter.admit();
      }
      if (queue.length > 0) return; // the head waits for room: nothing behind it may pass
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The catch-up read path

export interface CatchUpReaderOptions {
  metadata: Pick<StreamMetadata, 'getObjects'>;
  objectStore: ObjectStore;
  blockCacheSizeBytes?: number;
  indexCacheSizeBytes?: number;
  indexCacheMaxObjects?: number;
  readAheadInitialBytes?: number;
  readAheadMaxBytes?: number;
  maxConcurrentGets?: number;
  maxInflightBytes?: number;
  maxTrackedReaders?: number;
}

/** A data block of the stream being read, located in its object. */
interface PlannedBlock {
  reader: DataObjectReader;
  index: number;
  key: string;
  sizeBytes: number;
  startOffset: number;
  endOffset: number;
}

const NONE: ReadonlySet<string> = new Set();

/** A block of a read: in hand (cached) or on its way. */
type BlockSource = Buffer | Promise<Buffer>;

export class CatchUpReader {
  readonly blockCache: BlockCache;
  readonly indexCache: ObjectIndexCache;
  readonly limiter: CatchUpLimiter;
  readonly readers: SequentialReaders;
  private readonly metadata: Pick<StreamMetadata, 'getObjects'>;
  private readonly objectStore: ObjectStore;
  /** Largest ranged GET of a run of blocks. */
  private readonly maxGetBytes: number;

  constructor(options: CatchUpReaderOptions) {
    this.metadata = options.metadata;
    this.objectStore = options.objectStore;
    this.blockCache = new BlockCache({ capacityBytes: options.blockCacheSizeBytes });
    this.indexCache = new ObjectIndexCache({ capacityBytes: options.indexCacheSizeBytes, maxObjects: options.indexCacheMaxObjects });
    this.limiter = new CatchUpLimiter({ maxConcurrentGets: options.maxConcurrentGets, maxInflightBytes: options.maxInflightBytes });
    const initialBytes = options.readAheadInitialBytes ?? DEFAULT_READ_AHEAD_INITIAL_BYTES;
    const maxBytes = Math.max(initialBytes, options.readAheadMaxBytes ?? DEFAULT_READ_AHEAD_MAX_BYTES);
    this.readers = new SequentialReaders({ initialBytes, maxBytes, maxReaders: options.maxTrackedReaders });
    this.maxGetBytes = Math.max(1, Math.min(maxBytes, this.limiter.maxInflightBytes));
  }

  /**
   * Whole batches of the stream from the one holding startOffset (or the first after it), up to
   * about maxBytes (at least one batch), none ending past endLimit. Throws when no object holds
   * startOffset.
   */
  async read(streamId: number, startOffset: number, maxBytes: number, endLimit: number): Promise<ReadResult> {
    const { window, sequential } = this.readers.take(streamId, startOffset);
    let result: ReadResult;
    try {
      result = await this.readOnce(streamId, startOffset, maxBytes, endLimit, window, sequential);
    } catch (err) {
      // An object replaced (compaction) and deleted between metadata's answer and our GET: ask again.
      if (!isObjectNotFound(err)) throw err;
      result = await this.readOnce(streamId, startOffset, maxBytes, endLimit, window, sequential);
    }
    this.readers.park(streamId, result.nextOffset, window);
    return result;
  }

  private async readOnce(
    streamId: number,
    startOffset: number,
    maxBytes: number,
    endLimit: number,
    window: ReadAheadWindow,
    sequential: boolean,
  ): Promise<ReadResult> {
    const refs = await this.metadata.getObjects(streamId, startOffset, endLimit, OBJECTS_PER_READ);
    const cursor = new BlockCursor(streamId, refs, startOffset);
    const opener = (ref: ObjectRef): Promise<DataObjectReader> =>
      this.openObject(ref, streamId, Priority.read, sequential ? window : undefined);
    const needed = await this.planNeeded(cursor, opener, startOffset, maxBytes, endLimit);
    if (needed.length === 0) throw new Error(`stream ${streamId}: offset ${startOffset} is neither cached nor in an object`);
    noteBytesPerOffset(window, needed);

    // The read pins its blocks (the lease, released by whoever writes its batches): evicted
    // meanwhile, they are freed only on release. Released here when the read fails.
    const lease = new BlockLease(this.blockCache);
    try {
      const sources: (BlockSource | undefined)[] = needed.map((block) =>
        this.blockCache.get(block.key, lease) ?? this.blockCache.waitFor(block.key, lease));
      const missed = sources.some((source) => !Buffer.isBuffer(source));
      const toFetch = needed.filter((_, i) => sources[i] === undefined);
      if (sequential) this.planReadAhead(cursor, window, missed, toFetch, streamId);
      else this.fetchRuns(toFetch, undefined, new Set(toFetch.map((block) => block.key)));
      for (let i = 0; i < needed.length; i++) sources[i] ??= this.blockCache.waitFor(needed[i]!.key, lease);

      const blocks: Buffer[] = [];
      for (let i = 0; i < needed.length; i++) {
        const source = sources[i];
        if (source === undefined) throw new Error(`block ${needed[i]!.key} was neither cached nor loaded`);
        blocks.push(Buffer.isBuffer(source) ? source : await source);
      }
      return { ...collectBatches(needed, blocks, startOffset, maxBytes, endLimit), lease };
    } catch (err) {
      lease.release();
      throw err;
    }
  }

  /** The blocks a read of maxBytes from startOffset needs (findBlocks' estimate, across objects). */
  private async planNeeded(
    cursor: BlockCursor,
    opener: (ref: ObjectRef) => Promise<DataObjectReader>,
    startOffset: number,
    maxBytes: number,
    endLimit: number,
  ): Promise<PlannedBlock[]> {
    const needed: PlannedBlock[] = [];
    let estimatedBytes = 0;
    while (estimatedBytes < maxBytes) {
      const block = await cursor.next(opener);
      if (block === undefined) break;
      const share = startOffset <= block.startOffset
        ? block.sizeBytes
        : (block.sizeBytes * (block.endOffset - startOffset)) / (block.endOffset - block.startOffset);
      if (needed.length > 0 && estimatedBytes + share > maxBytes) {
        cursor.unread(block);
        break;
      }
      needed.push(block);
      estimatedBytes += share;
      if (block.endOffset >= endLimit) break;
    }
    return needed;
  }

  /**
   * One read-ahead decision for a sequential reader, fetching the read's own missing blocks
   * (toFetch) too: merged with the blocks ahead when they are adjacent.
   */
  private planReadAhead(cursor: BlockCursor, window: ReadAheadWindow, missed: boolean, toFetch: PlannedBlock[], streamId: number): void {
    const nextWindowBytes = window.next();
    const ahead: PlannedBlock[] = [];
    let aheadBytes = 0;
    let missingBytes = 0;
    while (aheadBytes < nextWindowBytes) {
      const block = cursor.nextIfOpen((ref) => this.indexCache.peek(ref.key));
      if (block === undefined) break;
      aheadBytes += block.sizeBytes;
      if (this.blockCache.isPresent(block.key)) continue;
      ahead.push(block);
      missingBytes += block.sizeBytes;
    }
    // Blocks in objects not opened yet are not loaded either.
    const unopened = aheadBytes < nextWindowBytes && cursor.waitingForOpen();
    if (unopened) missingBytes += nextWindowBytes - aheadBytes;
    const round = missed || missingBytes * 2 >= nextWindowBytes || (cursor.exhausted() && missingBytes > 0);
    const forRead = new Set(toFetch.map((block) => block.key));
    if (!round || this.limiter.readAheadSaturated()) {
      this.fetchRuns(toFetch, undefined, forRead);
      return;
    }
    window.advance();
    this.fetchRuns([...toFetch, ...ahead], window, forRead);
    if (unopened && !window.backgroundRound) {
      window.backgroundRound = true;
      this.readAheadInBackground(cursor, window, nextWindowBytes - aheadBytes, streamId)
        .catch((err: unknown) => log.warn({ streamId, err: (err as Error).message }, 'read-ahead failed'))
        .finally(() => {
          window.backgroundRound = false;
        });
    }
  }

  /** The rest of a round, in objects not opened yet: opened here, the reader does not wait. */
  private async readAheadInBackground(cursor: BlockCursor, window: ReadAheadWindow, budgetBytes: number, streamId: number): Promise<void> {
    const opener = (ref: ObjectRef): Promise<DataObjectReader> => this.openObject(ref, streamId, Priority.readAhead, window);
    let pending: PlannedBlock[] = [];
    let remaining = budgetBytes;
    while (remaining > 0 && window.windowBytes > 0) {
      const block = await cursor.next(opener);
      if (block === undefined) break;
      remaining -= block.sizeBytes;
      if (pending.length > 0 && pending[0]!.reader !== block.reader) {
        this.fetchRuns(pending, window, NONE);
        pending = [];
      }
      if (!this.blockCache.isPresent(block.key)) pending.push(block);
    }
    this.fetchRuns(pending, window, NONE);
  }

  /**
   * Loads the blocks not cached or loading yet, in runs of adjacent blocks of one object: one
   * ranged GET per run. Blocks whose keys are in `forRead` are the read's own: not owned by
   * the window, and their runs go first in the limiter; the others are read-ahead.
   */
  private fetchRuns(blocks: readonly PlannedBlock[], window: ReadAheadWindow | undefined, forRead: ReadonlySet<string>): void {
    let run: PlannedBlock[] = [];
    let runBytes = 0;
    const flush = (): void => {
      if (run.length === 0) return;
      const keys = run.map((block) => block.key);
      const owners = keys.map((key) => (forRead.has(key) ? undefined : window));
      const priority = owners.includes(undefined) ? Priority.read : Priority.readAhead;
      const { reader, index: first } = run[0]!;
      const last = run[run.length - 1]!.index;
      const bytes = runBytes;
      readAheadBytesTotal.inc(owners.reduce((sum, owner, i) => (owner === undefined ? sum : sum + run[i]!.sizeBytes), 0));
      this.blockCache.load(keys, () => this.limiter.run(bytes, priority, () => reader.readBlockParts(first, last)), owners);
      run = [];
      runBytes = 0;
    };
    for (const block of blocks) {
      if (this.blockCache.isPresent(block.key)) continue;
      const previous = run[run.length - 1];
      const adjacent = previous !== undefined && previous.reader === block.reader && previous.index + 1 === block.index;
      if (!adjacent || runBytes + block.sizeBytes > this.maxGetBytes) flush();
      run.push(block);
      runBytes += block.sizeBytes;
    }
    flush();
  }

  /**
   * Opens an object through the index cache (one GET of its tail). For a sequential reader, an
   * object no larger than its window and (by estimate) mostly this stream's is read whole: its
   * blocks of the stream are cached, owned by the window. Not on a store that reads parts in
   * place (local): there the tail read and then the blocks as parts, each read into its own
   * buffer, cost one more small read but no second buffer and copy per block.
   */
  private openObject(ref: ObjectRef, streamId: number, priority: Priority, window: ReadAheadWindow | undefined): Promise<DataObjectReader> {
    return this.indexCache.open(ref.key, async () => {
      const whole = window !== undefined && !this.objectStore.readsPartsInPlace && readWhole(ref, window);
      const tailReadBytes = whole ? ref.sizeBytes : DEFAULT_TAIL_READ_BYTES;
      const opened = await this.limiter.run(Math.min(tailReadBytes, ref.sizeBytes), priority, () =>
        DataObjectReader.openWithTail(this.objectStore, ref.key, ref.sizeBytes, { tailReadBytes }));
      if (whole) await this.cacheTailBlocks(opened.reader, opened.tail, opened.tailStart, streamId, window);
      return opened.reader;
    });
  }

  /** Caches the stream's blocks found whole in an object's tail read (as read-ahead). */
  private async cacheTailBlocks(reader: DataObjectReader, tail: Buffer, tailStart: number, streamId: number, owner: ReadAheadOwner): Promise<void> {
    let copied = 0;
    for (let i = reader.findBlock(streamId, 0); i >= 0 && i < reader.blockCount && reader.blockStreamId(i) === streamId; i++) {
      const key = blockKey(reader.key, i);
      const block = reader.blockInTail(i, tail, tailStart);
      if (block === undefined || this.blockCache.isPresent(key)) continue;
      this.blockCache.insert(key, block, owner);
      readAheadBytesTotal.inc(block.length);
      copied += block.length;
      if (copied >= COPY_YIELD_BYTES) {
        copied = 0;
        await yieldToEventLoop();
      }
    }
  }
}

/** Whether to read an object whole for a sequential reader: small, and mostly its stream's. */
function readWhole(ref: ObjectRef, window: ReadAheadWindow): boolean {
  const windowBytes = window.next();
  if (ref.sizeBytes > windowBytes || window.bytesPerOffset <= 0) return false;
  const streamBytes = (ref.endOffset - ref.startOffset) * window.bytesPerOffset;
  return streamBytes * 2 >= ref.sizeBytes;
}

function noteBytesPerOffset(window: ReadAheadWindow, blocks: readonly PlannedBlock[]): void {
  let bytes = 0;
  let offsets = 0;
  for (const block of blocks) {
    bytes += block.sizeBytes;
    offsets += block.endOffset - block.startOffset;
  }
  if (offsets > 0) window.bytesPerOffset = bytes / offsets;
}

/** Whole batches from the needed blocks, in order: from startOffset, about maxBytes, to endLimit. */
function collectBatches(needed: PlannedBlock[], blocks: Buffer[], startOffset: number, maxBytes: number, endLimit: number): ReadResult {
  const batches: Buffer[] = [];
  let bytes = 0;
  let nextOffset = startOffset;
  let full = false;
  for (let i = 0; i < needed.length && !full; i++) {
    needed[i]!.reader.forEachBlockBatch(needed[i]!.index, blocks[i]!, (batch, endOffset) => {
      if (endOffset <= nextOffset) return true;
      if (endOffset > endLimit || (batches.length > 0 && bytes + batch.length > maxBytes)) {
        full = true;
        return false;
      }
      batches.push(batch);
      bytes += batch.length;
      nextOffset = endOffset;
      return true;
    });
  }
  if (batches.length === 0) throw new Error(`no batch at or after offset ${startOffset} in the blocks read`);
  return { batches, nextOffset };
}

/**
 * Walks a stream's blocks across the objects metadata listed (contiguous in offsets), opening
 * objects on the way. Stops at a gap between objects or after the last one listed.
 */
class BlockCursor {
  private readonly streamId: number;
  private readonly refs: readonly ObjectRef[];
  private refIndex = -1;
  private reader: DataObjectReader | undefined;
  private blockIndex = 0;
  private offset: number;
  private pushedBack: PlannedBlock | undefined;
  private done = false;

  constructor(streamId: number, refs: readonly ObjectRef[], startOffset: number) {
    this.streamId = streamId;
    this.refs = refs;
    this.offset = startOffset;
  }

  /** The next block, opening its object if needed. */
  async next(open: (ref: ObjectRef) => Promise<DataObjectReader>): Promise<PlannedBlock | undefined> {
    for (;;) {
      const block = this.nextIfOpen(() => undefined);
      if (block !== undefined || this.done) return block;
      const ref = this.refs[this.refIndex + 1]!;
      this.enter(await open(ref));
    }
  }

  /** The next block, or undefined at the end or when its object is not opened (see waitingForOpen). */
  nextIfOpen(peek: (ref: ObjectRef) => DataObjectReader | undefined): PlannedBlock | undefined {
    if (this.pushedBack !== undefined) {
      const block = this.pushedBack;
      this.pushedBack = undefined;
      return block;
    }
    for (;;) {
      if (this.done) return undefined;
      const reader = this.reader;
      if (reader !== undefined && this.blockIndex < reader.blockCount && reader.blockStreamId(this.blockIndex) === this.streamId) {
        const entry = reader.entry(this.blockIndex);
        const block: PlannedBlock = {
          reader,
          index: this.blockIndex,
          key: blockKey(reader.key, this.blockIndex),
          sizeBytes: entry.sizeBytes,
          startOffset: entry.startOffset,
          endOffset: entry.endOffset,
        };
        this.blockIndex++;
        this.offset = entry.endOffset;
        return block;
      }
      // This object is done (or none entered yet): the next one must hold `offset`.
      while (this.refIndex + 1 < this.refs.length && this.refs[this.refIndex + 1]!.endOffset <= this.offset) this.refIndex++;
      const ref = this.refs[this.refIndex + 1];
      if (ref === undefined || ref.startOffset > this.offset) {
        this.done = true;
        return undefined;
      }
      const opened = peek(ref);
      if (opened === undefined) return undefined;
      this.enter(opened);
    }
  }

  /** Gives back the block last returned; the next call returns it again. */
  unread(block: PlannedBlock): void {
    this.pushedBack = block;
  }

  /** The walk stopped at an object that is not opened yet. */
  waitingForOpen(): boolean {
    return !this.done && this.pushedBack === undefined;
  }

  exhausted(): boolean {
    return this.done;
  }

  private enter(reader: DataObjectReader): void {
    this.refIndex++;
    this.reader = reader;
    this.blockIndex = reader.findBlock(this.streamId, this.offset);
    if (this.blockIndex < 0) {
      // Metadata says the object holds the stream past `offset`; its index disagrees.
      throw new Error(`object ${reader.key}: no block of stream ${this.streamId} past offset ${this.offset}`);
    }
  }
}

// ---- metrics ----
//
//   wharf_read_ahead_bytes_total         bytes of blocks fetched ahead of readers
//   wharf_catchup_inflight_bytes         gauge: bytes of catch-up GETs in flight
//   wharf_catchup_queued_gets{priority}  gauge: catch-up GETs waiting for the budget
//   wharf_catchup_pace_bytes_per_second  gauge: the pace the tail guard set (+Inf: none)

const readAheadBytesTotal =
  (register.getSingleMetric('wharf_read_ahead_bytes_total') as Counter | undefined) ??
  new Counter({ name: 'wharf_read_ahead_bytes_total', help: 'Bytes of data blocks fetched ahead of sequential readers.' });

let limiterSource: CatchUpLimiter | undefined;

function reportLimiter(limiter: CatchUpLimiter): void {
  limiterSource = limiter;
}

if (register.getSingleMetric('wharf_catchup_inflight_bytes') === undefined) {
  new Gauge({
    name: 'wharf_catchup_inflight_bytes',
    help: 'Bytes of catch-up (log-cache miss) GETs in flight.',
    collect() {
      if (limiterSource !== undefined) this.set(limiterSource.stats().inflightBytes);
    },
  });
}

if (register.getSingleMetric('wharf_catchup_pace_bytes_per_second') === undefined) {
  new Gauge({
    name: 'wharf_catchup_pace_bytes_per_second',
    help: 'Pace of catch-up reads set by the tail guard while produce latency suffers (+Inf: not paced).',
    collect() {
      if (limiterSource !== undefined) this.set(limiterSource.paceBytesPerSecond());
    },
  });
}

if (register.getSingleMetric('wharf_catchup_queued_gets') === undefined) {
  new Gauge({
    name: 'wharf_catchup_queued_gets',
    help: 'Catch-up GETs waiting for the catch-up budget, by priority (read, readAhead).',
    labelNames: ['priority'] as const,
    collect() {
      if (limiterSource === undefined) return;
      const stats = limiterSource.stats();
      this.set({ priority: 'read' }, stats.queuedReads);
      this.set({ priority: 'readAhead' }, stats.queuedReadAhead);
    },
  });
}
