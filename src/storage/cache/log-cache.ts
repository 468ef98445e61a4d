// The log cache: recently appended batches of every stream, in memory, so that tailing reads
// need no I/O and uploads need no WAL reads.
//
// Per stream, batches sit in arrays in offset order (base and end offsets beside them for binary
// search), as copies in slabs of a pool allocated once (slabs.ts says why, and how reads pin
// them until released). A batch is first
// *unuploaded*: it is not evicted, whatever the size, until markUploaded() says an object holding
// it is committed (stream storage keeps unuploaded bytes within capacityBytes: appends wait for
// uploads when they would pass it). Uploaded batches are evicted first-in first-out across
// streams once the cache holds more than capacityBytes.
//
// The FIFO is one array of per-stream references in append order: the k-th reference to a stream
// stands for that stream's k-th oldest batch still cached, so eviction pops a reference and drops
// that stream's oldest batch. Dropping a whole stream detaches its entries object; its remaining
// references are skipped when they reach the front. When the oldest batch is not uploaded yet
// (another stream's upload committed first), eviction goes on with the uploaded batches of the
// other streams, oldest first within each; a stream's references are then ahead of its batches
// by as many (skippedRefs), and those first references are skipped when they reach the front.

import type { ReadLease } from '../stream.ts';
import { reportLogCache } from '../storage-metrics.ts';
import { copyOf, SlabPool, type Slab } from './slabs.ts';

export const DEFAULT_LOG_CACHE_BYTES = 512 * 1024 * 1024;

/** Unuploaded batches of one stream, taken for an upload. Arrays are parallel. */
export interface UnuploadedRange {
  streamId: number;
  startOffset: number;
  endOffset: number;
  baseOffsets: number[];
  endOffsets: number[];
  batches: Buffer[];
  sizeBytes: number;
}

export interface CacheReadResult {
  batches: Buffer[];
  nextOffset: number;
  /** Pins the batches' memory: release it when done with them. */
  lease: ReadLease;
}

class StreamEntries {
  readonly streamId: number;
  detached = false;
  baseOffsets: number[] = [];
  endOffsets: number[] = [];
  batches: (Buffer | undefined)[] = [];
  slabs: (Slab | undefined)[] = [];
  /** First cached index (earlier ones were evicted). */
  head = 0;
  /** Entries [head, uploadedTo) are uploaded; [uploadedTo, length) are not. */
  uploadedTo = 0;
  unuploadedBytes = 0;
  /** FIFO references standing for batches already evicted out of FIFO order. */
  skippedRefs = 0;

  constructor(streamId: number) {
    this.streamId = streamId;
  }

  get length(): number {
    return this.baseOffsets.length;
  }

  startOffset(): number | undefined {
    return this.head < this.length ? this.baseOffsets[this.head] : undefined;
  }

  endOffset(): number | undefined {
    return this.head < this.length ? this.endOffsets[this.length - 1] : undefined;
  }

  /** Index of the cached batch holding offset, or -1. */
  indexOf(offset: number): number {
    let lo = this.head;
    let hi = this.length - 1;
    if (lo > hi || offset < this.baseOffsets[lo]! || offset >= this.endOffsets[hi]!) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.baseOffsets[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Drops the oldest batch (an uploaded one); returns its size. */
  evictOldest(pool: SlabPool): number {
    const size = this.batches[this.head]!.length; // read first: freeing a slab empties its views
    pool.evicted(this.slabs[this.head]!);
    this.batches[this.head] = undefined;
    this.slabs[this.head] = undefined;
    this.head++;
    if (this.head === this.length) {
      this.baseOffsets = [];
      this.endOffsets = [];
      this.batches = [];
      this.slabs = [];
      this.uploadedTo = this.head = 0;
    } else if (this.head > 256 && this.head * 2 > this.length) {
      this.baseOffsets = this.baseOffsets.slice(this.head);
      this.endOffsets = this.endOffsets.slice(this.head);
      this.batches = this.batches.slice(this.head);
      this.slabs = this.slabs.slice(this.head);
      this.uploadedTo -= this.head;
      this.head = 0;
    }
    return size;
  }
}

export class LogCache {
  readonly capacityBytes: number;
  private readonly pool: SlabPool;
  private readonly streams = new Map<number, StreamEntries>();
  /** Streams holding unuploaded batches. */
  private readonly dirty = new Set<StreamEntries>();
  /** Streams that may hold uploaded batches (checked when used). */
  private readonly evictable = new Set<StreamEntries>();
  private fifo: StreamEntries[] = [];
  private fifoHead = 0;
  private detachedRefs = 0;
  private totalBytes = 0;
  private unuploadedTotal = 0;

  constructor(options: { capacityBytes?: number } = {}) {
    this.capacityBytes = options.capacityBytes ?? DEFAULT_LOG_CACHE_BYTES;
    this.pool = new SlabPool(this.capacityBytes);
    reportLogCache(this);
  }

  /** Adds a copy of an unuploaded batch; it must start where the stream's cached batches end. */
  append(streamId: number, baseOffset: number, endOffset: number, batch: Buffer): void {
    if (endOffset <= baseOffset) throw new RangeError(`empty batch [${baseOffset}, ${endOffset})`);
    let entries = this.streams.get(streamId);
    if (entries === undefined) {
      entries = new StreamEntries(streamId);
      this.streams.set(streamId, entries);
    }
    const end = entries.endOffset();
    if (end !== undefined && end !== baseOffset) {
      throw new Error(`stream ${streamId}: cached batches end at ${end}, append at ${baseOffset}`);
    }
    const slab = this.pool.store(batch);
    entries.baseOffsets.push(baseOffset);
    entries.endOffsets.push(endOffset);
    entries.batches.push(copyOf(slab, batch.length));
    entries.slabs.push(slab);
    entries.unuploadedBytes += batch.length;
    this.dirty.add(entries);
    this.fifo.push(entries);
    this.totalBytes += batch.length;
    this.unuploadedTotal += batch.length;
    this.evict();
  }

  /**
   * Whole batches from the one holding startOffset, up to about maxBytes (at least one), none
   * ending past endLimit. Undefined when the cache does not hold startOffset. The batches' memory
   * is reused once evicted and the lease released: release it when done with them.
   */
  read(streamId: number, startOffset: number, maxBytes: number, endLimit: number): CacheReadResult | undefined {
    const entries = this.streams.get(streamId);
    if (entries === undefined) return undefined;
    let i = entries.indexOf(startOffset);
    if (i < 0) return undefined;
    const batches: Buffer[] = [];
    const slabs: Slab[] = [];
    let bytes = 0;
    let nextOffset = startOffset;
    for (; i < entries.length && entries.endOffsets[i]! <= endLimit; i++) {
      const batch = entries.batches[i]!;
      if (batches.length > 0 && bytes + batch.length > maxBytes) break;
      batches.push(batch);
      slabs.push(entries.slabs[i]!);
      bytes += batch.length;
      nextOffset = entries.endOffsets[i]!;
    }
    return { batches, nextOffset, lease: this.pool.lease(slabs) };
  }

  /** First cached offset of the stream, if any batch is cached. */
  startOffset(streamId: number): number | undefined {
    return this.streams.get(streamId)?.startOffset();
  }

  /** Offset after the stream's last cached batch, if any batch is cached. */
  endOffset(streamId: number): number | undefined {
    return this.streams.get(streamId)?.endOffset();
  }

  /** Streams that hold unuploaded batches. */
  dirtyStreamIds(): number[] {
    return [...this.dirty].map((entries) => entries.streamId);
  }

  /** The stream's unuploaded batches that end at or before endLimit (not marked: see markUploaded). */
  unuploaded(streamId: number, endLimit: number): UnuploadedRange | undefined {
    const entries = this.streams.get(streamId);
    if (entries === undefined || entries.uploadedTo >= entries.length) return undefined;
    const from = entries.uploadedTo;
    let to = from;
    let sizeBytes = 0;
    while (to < entries.length && entries.endOffsets[to]! <= endLimit) sizeBytes += entries.batches[to++]!.length;
    if (to === from) return undefined;
    return {
      streamId,
      startOffset: entries.baseOffsets[from]!,
      endOffset: entries.endOffsets[to - 1]!,
      baseOffsets: entries.baseOffsets.slice(from, to),
      endOffsets: entries.endOffsets.slice(from, to),
      batches: entries.batches.slice(from, to) as Buffer[],
      sizeBytes,
    };
  }

  /**
   * Marks the stream's batches ending at or before endOffset uploaded: they become evictable.
   * bodyMayStillBeRead: an abandoned PUT attempt may still read them, so their slabs are left to
   * the GC instead of being reused.
   */
  markUploaded(streamId: number, endOffset: number, bodyMayStillBeRead = false): void {
    const entries = this.streams.get(streamId);
    if (entries === undefined) return;
    while (entries.uploadedTo < entries.length && entries.endOffsets[entries.uploadedTo]! <= endOffset) {
      if (bodyMayStillBeRead) this.pool.abandon(entries.slabs[entries.uploadedTo]!);
      const bytes = entries.batches[entries.uploadedTo++]!.length;
      entries.unuploadedBytes -= bytes;
      this.unuploadedTotal -= bytes;
    }
    if (entries.uploadedTo === entries.length) this.dirty.delete(entries);
    if (entries.head < entries.uploadedTo) this.evictable.add(entries);
    this.evict();
  }

  /** Forgets every cached batch of the stream, unuploaded ones too (a fenced or deleted stream). */
  dropStream(streamId: number): void {
    const entries = this.streams.get(streamId);
    if (entries === undefined) return;
    this.streams.delete(streamId);
    this.dirty.delete(entries);
    this.evictable.delete(entries);
    entries.detached = true;
    for (let i = entries.head; i < entries.length; i++) {
      this.totalBytes -= entries.batches[i]!.length;
      // An upload in flight may still read an unuploaded batch: its slab is not reused.
      if (i < entries.uploadedTo) this.pool.evicted(entries.slabs[i]!);
      else this.pool.abandon(entries.slabs[i]!);
    }
    this.unuploadedTotal -= entries.unuploadedBytes;
    this.detachedRefs += entries.length - entries.head + entries.skippedRefs;
    if (this.detachedRefs > 1024 && this.detachedRefs * 2 > this.fifo.length - this.fifoHead) {
      this.fifo = this.fifo.slice(this.fifoHead).filter((e) => !e.detached);
      this.fifoHead = 0;
      this.detachedRefs = 0;
    }
  }

  sizeBytes(): number {
    return this.totalBytes;
  }

  unuploadedBytes(): number {
    return this.unuploadedTotal;
  }

  uploadedBytes(): number {
    return this.totalBytes - this.unuploadedTotal;
  }

  /** Memory held for batches: allocated slabs, whether in use or pooled. */
  memoryBytes(): number {
    return this.pool.allocatedBytes();
  }

  private evict(): void {
    while (this.totalBytes > this.capacityBytes && this.fifoHead < this.fifo.length) {
      const entries = this.fifo[this.fifoHead]!;
      if (entries.detached) {
        this.detachedRefs--;
      } else if (entries.skippedRefs > 0) {
        entries.skippedRefs--;
      } else if (entries.head < entries.uploadedTo) {
        this.totalBytes -= entries.evictOldest(this.pool);
        if (entries.length === 0) {
          // Nothing left (and no reference either): later appends make a new entries object.
          this.streams.delete(entries.streamId);
          this.evictable.delete(entries);
          entries.detached = true;
        }
      } else {
        this.evictBehindUnuploaded(); // the oldest batch is not uploaded yet
        break;
      }
      this.fifoHead++;
    }
    if (this.fifoHead === this.fifo.length) {
      this.fifo = [];
      this.fifoHead = 0;
    } else if (this.fifoHead > 4096 && this.fifoHead * 2 > this.fifo.length) {
      this.fifo = this.fifo.slice(this.fifoHead);
      this.fifoHead = 0;
    }
  }

  /** Evicts uploaded batches of any stream, each stream's oldest first, until within capacity. */
  private evictBehindUnuploaded(): void {
    for (const entries of this.evictable) {
      while (this.totalBytes > this.capacityBytes && entries.head < entries.uploadedTo) {
        this.totalBytes -= entries.evictOldest(this.pool);
        entries.skippedRefs++;
      }
      if (entries.head >= entries.uploadedTo) this.evictable.delete(entries);
      if (entries.length === 0) {
        // Only skipped references are left: they are dropped as a detached stream's.
        this.streams.delete(entries.streamId);
        entries.detached = true;
        this.detachedRefs += entries.skippedRefs;
        entries.skippedRefs = 0;
      }
      if (this.totalBytes <= this.capacityBytes) return;
    }
  }
}
