// The data object format: stream set objects and stream objects alike. Big-endian throughout.
//
//   +--------------+--------------+-----+--------------+---------------------+---------------+
//   | data block 0 | data block 1 | ... | data block N | index (36 B × N+1)  | footer (48 B) |
//   +--------------+--------------+-----+--------------+---------------------+---------------+
//   0                                                  indexPosition                 sizeBytes
//
// Data block: whole Kafka record batches (v2) of ONE stream, in offset order, byte for byte as
// produced (base offset already assigned). No extra framing: a batch frames itself,
//
//     0 int64 baseOffset   8 int32 batchLength (bytes after this field)   23 int32 lastOffsetDelta
//
// so a batch is 12 + batchLength bytes and covers offsets [baseOffset, baseOffset+lastOffsetDelta].
// A block is closed before the batch that would take it past the target size (1 MiB by
// default); a batch larger than the target gets a block of its own. Blocks are laid out in
// index order: by stream id, then offset; a stream's blocks are adjacent.
//
// Index entry, one per data block, sorted by (stream id, start offset):
//
//      0 u64 stream id
//      8 u64 start offset        baseOffset of the block's first batch
//     16 u32 end offset delta    endOffset - startOffset; endOffset (exclusive) is the last
//                                batch's baseOffset + lastOffsetDelta + 1
//     20 u32 record count        the number of Kafka BATCHES in the block (a stored "record" is
//                                one batch; Kafka records inside are never counted or decoded)
//     24 u64 block position      byte position of the block in the object
//     32 u32 block size          bytes
//
// Footer, the last 48 bytes:
//
//      0 u64 index position      == sizeBytes - 48 - index length (the index ends at the footer)
//      8 u32 index length        36 × block count
//     12 28 bytes padding        zero; reserved
//     40 u64 magic               0x57 0x48 0x41 0x52 0x46 0x44 0x4F 0x31 = ASCII "WHARFDO1"
//
// Offsets within a block may have gaps (compacted streams); blocks never overlap in offsets.
// A reader fetches the object's tail once (footer and, usually, the whole index), binary-searches
// the index, then issues ranged GETs for the blocks it needs.

import { readParts, type ObjectStore } from '../objectstore/objectstore.ts';

export const DATA_OBJECT_MAGIC = 0x5748415246444f31n; // "WHARFDO1"
export const FOOTER_SIZE_BYTES = 48;
export const INDEX_ENTRY_SIZE_BYTES = 36;
export const DEFAULT_BLOCK_SIZE_BYTES = 1024 * 1024;
/** How much of the tail open() reads at once: the footer plus an index of up to ~1800 blocks. */
export const DEFAULT_TAIL_READ_BYTES = 64 * 1024;

const MAGIC_HI = Number(DATA_OBJECT_MAGIC >> 32n);
const MAGIC_LO = Number(DATA_OBJECT_MAGIC & 0xffffffffn);
const U32_MAX = 0xffffffff;
const TWO_POW_32 = 2 ** 32;
/** Smallest v2 record batch: the 61-byte header with no records. */
const MIN_BATCH_SIZE_BYTES = 61;
const BATCH_LENGTH_FIELD_END = 12;
const LAST_OFFSET_DELTA_POSITION = 23;
/** Memory of a parsed index: 4 Float64Array + 2 Uint32Array slots per block, and the object. */
const PARSED_ENTRY_BYTES = 4 * 8 + 2 * 4;
const READER_OVERHEAD_BYTES = 512;

export interface StreamRange {
  streamId: number;
  startOffset: number;
  /** Exclusive. */
  endOffset: number;
}

export interface IndexEntry {
  streamId: number;
  startOffset: number;
  /** Exclusive. */
  endOffset: number;
  /** Kafka batches in the block (the format's "record count"). */
  batchCount: number;
  position: number;
  sizeBytes: number;
}

export interface FinishedDataObject {
  /** The object's bytes in order: the batches themselves (not copied), the index, the footer. */
  chunks: Buffer[];
  sizeBytes: number;
  /** One range per stream, by stream id. */
  ranges: StreamRange[];
  blockCount: number;
}

export interface DataObjectReadResult {
  /** Whole batches in offset order, the first holding startOffset (or the first after it). */
  batches: Buffer[];
  /** Offset after the last batch returned; startOffset when none was. */
  nextOffset: number;
  /** The bytes read, which the batches are views of (absent when nothing was read). */
  span?: Buffer;
}

export class CorruptDataObjectError extends Error {
  readonly key: string;
  constructor(key: string, detail: string) {
    super(`corrupt data object ${key}: ${detail}`);
    this.name = 'CorruptDataObjectError';
    this.key = key;
  }
}

// ---------------------------------------------------------------------------------------------
// Batches

/** Offsets [baseOffset, endOffset) of the batch at position `at`, and its size. */
interface BatchFrame {
  baseOffset: number;
  endOffset: number;
  sizeBytes: number;
}

function readBatchFrame(buf: Buffer, at: number, fail: (detail: string) => never): BatchFrame {
  if (buf.length - at < MIN_BATCH_SIZE_BYTES) fail(`truncated batch header at byte ${at}`);
  const baseOffset = readU64(buf, at, fail);
  const sizeBytes = BATCH_LENGTH_FIELD_END + buf.readInt32BE(at + 8);
  if (sizeBytes < MIN_BATCH_SIZE_BYTES || sizeBytes > buf.length - at) {
    fail(`batch at byte ${at} claims ${sizeBytes} bytes, ${buf.length - at} remain`);
  }
  const lastOffsetDelta = buf.readInt32BE(at + LAST_OFFSET_DELTA_POSITION);
  if (lastOffsetDelta < 0) fail(`batch at byte ${at} has lastOffsetDelta ${lastOffsetDelta}`);
  return { baseOffset, endOffset: baseOffset + lastOffsetDelta + 1, sizeBytes };
}

/**
 * Walks the Kafka batches laid end to end in `block`, in order, calling visit with each batch
 * (a slice, not a copy) and its offsets [baseOffset, endOffset). visit returns false to stop.
 * Throws on a truncated or malformed frame and on offsets that go backwards.
 */
export function forEachBatch(
  block: Buffer,
  visit: (batch: Buffer, baseOffset: number, endOffset: number) => boolean | void,
): void {
  const fail = (detail: string): never => {
    throw new Error(`malformed batches: ${detail}`);
  };
  let previousEnd = -1;
  for (let at = 0; at < block.length; ) {
    const frame = readBatchFrame(block, at, fail);
    if (frame.baseOffset < previousEnd) fail(`offset ${frame.baseOffset} after ${previousEnd} at byte ${at}`);
    previousEnd = frame.endOffset;
    if (visit(block.subarray(at, at + frame.sizeBytes), frame.baseOffset, frame.endOffset) === false) return;
    at += frame.sizeBytes;
  }
}

// ---------------------------------------------------------------------------------------------
// Writer

/** A stream's batches in an object being built, cut into blocks as they come (positions at finish). */
interface PendingStream {
  startOffset: number;
  endOffset: number;
  blocks: IndexEntry[];
  batches: Buffer[];
}

/**
 * Builds one data object in memory. Batches of many streams may be added in any interleaving;
 * within a stream they must come in offset order. add() cuts each stream into blocks; finish()
 * sorts the streams by id and lays them out. Batch buffers are referenced, never copied, so they
 * must not be reused until the object is written.
 */
export class DataObjectWriter {
  private readonly blockSizeBytes: number;
  private readonly streams = new Map<number, PendingStream>();
  private batchBytes = 0;
  private finished = false;

  constructor(options: { blockSizeBytes?: number } = {}) {
    this.blockSizeBytes = blockSizeOf(options);
  }

  /** Bytes of batches added so far (the object adds an index and a footer). */
  get batchSizeBytes(): number {
    return this.batchBytes;
  }

  add(streamId: number, baseOffset: number, offsetCount: number, batch: Buffer): void {
    if (this.finished) throw new Error('DataObjectWriter.add after finish');
    let stream = this.streams.get(streamId);
    const endOffset = checkAddedBatch(streamId, baseOffset, offsetCount, batch, stream?.endOffset ?? 0);
    if (stream === undefined) {
      stream = { startOffset: baseOffset, endOffset: 0, blocks: [], batches: [] };
      this.streams.set(streamId, stream);
    }
    let block = stream.blocks.length === 0 ? undefined : stream.blocks[stream.blocks.length - 1]!;
    if (block === undefined || !fitsBlock(block, batch.length, endOffset, this.blockSizeBytes)) {
      block = { streamId, startOffset: baseOffset, endOffset, batchCount: 0, position: 0, sizeBytes: 0 };
      stream.blocks.push(block);
    }
    block.endOffset = endOffset;
    block.batchCount++;
    block.sizeBytes += batch.length;
    stream.endOffset = endOffset;
    stream.batches.push(batch);
    this.batchBytes += batch.length;
  }

  finish(): FinishedDataObject {
    if (this.finished) throw new Error('DataObjectWriter.finish called twice');
    this.finished = true;
    const chunks: Buffer[] = [];
    const entries: IndexEntry[] = [];
    const ranges: StreamRange[] = [];
    let position = 0;
    const streamIds = [...this.streams.keys()].sort((a, b) => a - b);
    for (const streamId of streamIds) {
      const stream = this.streams.get(streamId)!;
      ranges.push({ streamId, startOffset: stream.startOffset, endOffset: stream.endOffset });
      for (const block of stream.blocks) {
        block.position = position;
        position += block.sizeBytes;
        entries.push(block);
      }
      for (const batch of stream.batches) chunks.push(batch);
    }
    this.streams.clear();
    const index = encodeIndex(entries);
    chunks.push(index, encodeFooter(position, index.length));
    return { chunks, sizeBytes: position + index.length + FOOTER_SIZE_BYTES, ranges, blockCount: entries.length };
  }
}

/**
 * Checks a batch added to a writer (its frame, base offset and offset count as given, and that
 * the stream's offsets do not go backwards from previousEnd); returns its end offset.
 */
function checkAddedBatch(streamId: number, baseOffset: number, offsetCount: number, batch: Buffer, previousEnd: number): number {
  assertU64(streamId, 'stream id');
  assertU64(baseOffset, 'base offset');
  const fail = (detail: string): never => {
    throw new Error(`stream ${streamId} batch at offset ${baseOffset}: ${detail}`);
  };
  if (batch.length > U32_MAX) fail(`batch of ${batch.length} bytes is too large`);
  const frame = readBatchFrame(batch, 0, fail);
  if (frame.sizeBytes !== batch.length) fail(`batch length field says ${frame.sizeBytes} bytes, buffer has ${batch.length}`);
  if (frame.baseOffset !== baseOffset) fail(`the batch header says base offset ${frame.baseOffset}`);
  if (frame.endOffset - frame.baseOffset !== offsetCount) {
    fail(`offsetCount ${offsetCount} but the header's lastOffsetDelta covers ${frame.endOffset - frame.baseOffset}`);
  }
  if (baseOffset < previousEnd) fail(`offsets go backwards: the previous batch ended at ${previousEnd}`);
  assertU64(frame.endOffset, 'end offset');
  return frame.endOffset;
}

function blockSizeOf(options: { blockSizeBytes?: number }): number {
  const blockSizeBytes = options.blockSizeBytes ?? DEFAULT_BLOCK_SIZE_BYTES;
  if (!Number.isSafeInteger(blockSizeBytes) || blockSizeBytes < 1 || blockSizeBytes > U32_MAX) {
    throw new RangeError(`blockSizeBytes must be in [1, 2^32), got ${blockSizeBytes}`);
  }
  return blockSizeBytes;
}

/** Whether a batch (of batchBytes, ending at endOffset) may join the block, or needs a new one. */
function fitsBlock(block: IndexEntry, batchBytes: number, endOffset: number, blockSizeBytes: number): boolean {
  return block.sizeBytes + batchBytes <= blockSizeBytes && endOffset - block.startOffset <= U32_MAX && block.batchCount < U32_MAX;
}

/**
 * Builds one data object whose bytes are written out as they come, so that it is never held
 * whole in memory (compaction streams its outputs into multipart uploads). Streams must come in
 * increasing id order, each stream's batches together and in offset order: then every block's
 * position is known when it starts. The caller writes each batch right after adding it, in
 * order, and finish()'s chunks (the index and the footer) last.
 */
export class StreamedDataObjectWriter {
  private readonly blockSizeBytes: number;
  private readonly entries: IndexEntry[] = [];
  private readonly streamRanges: StreamRange[] = [];
  private position = 0;
  private finished = false;

  constructor(options: { blockSizeBytes?: number } = {}) {
    this.blockSizeBytes = blockSizeOf(options);
  }

  /** Bytes of batches added so far. */
  get batchSizeBytes(): number {
    return this.position;
  }

  /** Streams added so far. */
  get streamCount(): number {
    return this.streamRanges.length;
  }

  add(streamId: number, baseOffset: number, offsetCount: number, batch: Buffer): void {
    if (this.finished) throw new Error('StreamedDataObjectWriter.add after finish');
    let range = this.streamRanges[this.streamRanges.length - 1];
    if (range !== undefined && streamId < range.streamId) {
      throw new Error(`stream ${streamId} added after stream ${range.streamId}: streams must come in increasing id order`);
    }
    const sameStream = range?.streamId === streamId;
    const endOffset = checkAddedBatch(streamId, baseOffset, offsetCount, batch, sameStream ? range!.endOffset : 0);
    if (!sameStream) {
      range = { streamId, startOffset: baseOffset, endOffset };
      this.streamRanges.push(range);
    }
    let block = sameStream ? this.entries[this.entries.length - 1] : undefined;
    if (block === undefined || !fitsBlock(block, batch.length, endOffset, this.blockSizeBytes)) {
      block = { streamId, startOffset: baseOffset, endOffset, batchCount: 0, position: this.position, sizeBytes: 0 };
      this.entries.push(block);
    }
    block.endOffset = endOffset;
    block.batchCount++;
    block.sizeBytes += batch.length;
    range!.endOffset = endOffset;
    this.position += batch.length;
  }

  /** The object's last bytes (index and footer), its size, and what it holds. */
  finish(): FinishedDataObject {
    if (this.finished) throw new Error('StreamedDataObjectWriter.finish called twice');
    this.finished = true;
    const index = encodeIndex(this.entries);
    return {
      chunks: [index, encodeFooter(this.position, index.length)],
      sizeBytes: this.position + index.length + FOOTER_SIZE_BYTES,
      ranges: this.streamRanges,
      blockCount: this.entries.length,
    };
  }
}

function encodeIndex(entries: IndexEntry[]): Buffer {
  const index = Buffer.alloc(entries.length * INDEX_ENTRY_SIZE_BYTES);
  entries.forEach((entry, i) => {
    const at = i * INDEX_ENTRY_SIZE_BYTES;
    writeU64(index, at, entry.streamId);
    writeU64(index, at + 8, entry.startOffset);
    index.writeUInt32BE(entry.endOffset - entry.startOffset, at + 16);
    index.writeUInt32BE(entry.batchCount, at + 20);
    writeU64(index, at + 24, entry.position);
    index.writeUInt32BE(entry.sizeBytes, at + 32);
  });
  return index;
}

function encodeFooter(indexPosition: number, indexLength: number): Buffer {
  if (indexLength > U32_MAX) throw new RangeError(`index of ${indexLength} bytes does not fit the footer`);
  const footer = Buffer.alloc(FOOTER_SIZE_BYTES); // zeroed: the padding
  writeU64(footer, 0, indexPosition);
  footer.writeUInt32BE(indexLength, 8);
  footer.writeUInt32BE(MAGIC_HI, 40);
  footer.writeUInt32BE(MAGIC_LO, 44);
  return footer;
}

// ---------------------------------------------------------------------------------------------
// Reader

/**
 * Reads one data object through an ObjectStore: open() fetches the tail once and parses the
 * index; reads then fetch only the blocks they need, with ranged GETs.
 */
export class DataObjectReader {
  readonly key: string;
  readonly sizeBytes: number;
  private readonly store: ObjectStore;
  // The index, column-wise (compact, and cheap to binary-search).
  private readonly streamIds: Float64Array;
  private readonly startOffsets: Float64Array;
  private readonly endOffsets: Float64Array;
  private readonly batchCounts: Uint32Array;
  private readonly positions: Float64Array;
  private readonly blockSizes: Uint32Array;

  private constructor(store: ObjectStore, key: string, sizeBytes: number, index: Buffer) {
    this.store = store;
    this.key = key;
    this.sizeBytes = sizeBytes;
    const n = index.length / INDEX_ENTRY_SIZE_BYTES;
    this.streamIds = new Float64Array(n);
    this.startOffsets = new Float64Array(n);
    this.endOffsets = new Float64Array(n);
    this.batchCounts = new Uint32Array(n);
    this.positions = new Float64Array(n);
    this.blockSizes = new Uint32Array(n);
    const fail = (detail: string): never => {
      throw new CorruptDataObjectError(key, detail);
    };
    for (let i = 0; i < n; i++) {
      const at = i * INDEX_ENTRY_SIZE_BYTES;
      this.streamIds[i] = readU64(index, at, fail);
      this.startOffsets[i] = readU64(index, at + 8, fail);
      this.endOffsets[i] = this.startOffsets[i]! + index.readUInt32BE(at + 16);
      this.batchCounts[i] = index.readUInt32BE(at + 20);
      this.positions[i] = readU64(index, at + 24, fail);
      this.blockSizes[i] = index.readUInt32BE(at + 32);
    }
    this.validateIndex(sizeBytes - FOOTER_SIZE_BYTES - index.length, fail);
  }

  /**
   * Opens the object `key` of `sizeBytes` bytes: one ranged GET of the last tailReadBytes
   * (default 64 KiB), and a second one only when the index is larger than that.
   */
  static async open(
    store: ObjectStore,
    key: string,
    sizeBytes: number,
    options: { tailReadBytes?: number } = {},
  ): Promise<DataObjectReader> {
    return (await DataObjectReader.openWithTail(store, key, sizeBytes, options)).reader;
  }

  /**
   * open(), also handing back the tail it read: bytes [tailStart, sizeBytes) of the object. A
   * caller that asks for a tail reaching into the data blocks (up to the whole object) gets
   * those blocks with the same GET; blockInTail() cuts them out.
   */
  static async openWithTail(
    store: ObjectStore,
    key: string,
    sizeBytes: number,
    options: { tailReadBytes?: number } = {},
  ): Promise<{ reader: DataObjectReader; tail: Buffer; tailStart: number }> {
    const fail = (detail: string): never => {
      throw new CorruptDataObjectError(key, detail);
    };
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < FOOTER_SIZE_BYTES) fail(`size ${sizeBytes} is smaller than a footer`);
    const tailReadBytes = Math.max(FOOTER_SIZE_BYTES, options.tailReadBytes ?? DEFAULT_TAIL_READ_BYTES);
    const tailStart = Math.max(0, sizeBytes - tailReadBytes);
    const tail = await store.get(key, { start: tailStart, endExclusive: sizeBytes });
    if (tail.length !== sizeBytes - tailStart) fail(`expected ${sizeBytes} bytes, the object is shorter`);
    const { indexPosition, indexLength } = parseFooter(tail.subarray(tail.length - FOOTER_SIZE_BYTES), sizeBytes, fail);
    let index: Buffer;
    if (indexPosition >= tailStart) {
      index = tail.subarray(indexPosition - tailStart, indexPosition - tailStart + indexLength);
    } else {
      index = await store.get(key, { start: indexPosition, endExclusive: indexPosition + indexLength });
      if (index.length !== indexLength) fail(`short read of the index`);
    }
    return { reader: new DataObjectReader(store, key, sizeBytes, index), tail, tailStart };
  }

  get blockCount(): number {
    return this.streamIds.length;
  }

  /** The index entry of block i, in index order. */
  entry(i: number): IndexEntry {
    if (!(i >= 0 && i < this.blockCount)) throw new RangeError(`block ${i} of ${this.blockCount}`);
    return {
      streamId: this.streamIds[i]!,
      startOffset: this.startOffsets[i]!,
      endOffset: this.endOffsets[i]!,
      batchCount: this.batchCounts[i]!,
      position: this.positions[i]!,
      sizeBytes: this.blockSizes[i]!,
    };
  }

  /** The offset range of every stream in the object, by stream id. */
  streamRanges(): StreamRange[] {
    const ranges: StreamRange[] = [];
    for (let i = 0; i < this.blockCount; i++) {
      const last = ranges[ranges.length - 1];
      if (last !== undefined && last.streamId === this.streamIds[i]) last.endOffset = this.endOffsets[i]!;
      else ranges.push({ streamId: this.streamIds[i]!, startOffset: this.startOffsets[i]!, endOffset: this.endOffsets[i]! });
    }
    return ranges;
  }

  /** Stream id of block i. */
  blockStreamId(i: number): number {
    if (!(i >= 0 && i < this.blockCount)) throw new RangeError(`block ${i} of ${this.blockCount}`);
    return this.streamIds[i]!;
  }

  /** About how much memory this reader's parsed index takes (for caches bounded in bytes). */
  get memoryBytes(): number {
    return READER_OVERHEAD_BYTES + this.blockCount * PARSED_ENTRY_BYTES;
  }

  /**
   * The block of the stream holding offset, or else the stream's first block after it; -1 when
   * the stream has no block ending past offset in this object.
   */
  findBlock(streamId: number, offset: number): number {
    const i = this.firstBlockEndingAfter(streamId, offset);
    return i < this.blockCount && this.streamIds[i] === streamId ? i : -1;
  }

  /**
   * Blocks first..last (adjacent in the object) with one ranged read, each in a buffer of its
   * own (readParts), so that the block cache frees each block's memory when it evicts it.
   */
  async readBlockParts(first: number, last: number): Promise<Buffer[]> {
    this.checkBlockRange(first, last);
    const lengths: number[] = [];
    for (let i = first; i <= last; i++) lengths.push(this.blockSizes[i]!);
    const parts = await readParts(this.store, this.key, this.positions[first]!, lengths);
    for (let i = 0; i < parts.length; i++) {
      if (parts[i]!.length !== lengths[i]) {
        throw new CorruptDataObjectError(this.key, `block ${first + i} at ${this.positions[first + i]}: read ${parts[i]!.length} of ${lengths[i]} bytes`);
      }
    }
    return parts;
  }

  /** Blocks first..last (adjacent in the object) with one ranged GET: the bytes, and each block as a view of them. */
  async readBlockSpan(first: number, last: number): Promise<{ span: Buffer; blocks: Buffer[] }> {
    this.checkBlockRange(first, last);
    const start = this.positions[first]!;
    const span = await this.readSpan(start, this.positions[last]! + this.blockSizes[last]!);
    const blocks: Buffer[] = [];
    for (let i = first; i <= last; i++) blocks.push(span.subarray(this.positions[i]! - start, this.positions[i]! - start + this.blockSizes[i]!));
    return { span, blocks };
  }

  /** Block i cut out of a tail read by openWithTail, when the tail holds all of it. */
  blockInTail(i: number, tail: Buffer, tailStart: number): Buffer | undefined {
    if (!(i >= 0 && i < this.blockCount)) throw new RangeError(`block ${i} of ${this.blockCount}`);
    const at = this.positions[i]! - tailStart;
    if (at < 0 || at + this.blockSizes[i]! > tail.length) return undefined;
    return tail.subarray(at, at + this.blockSizes[i]!);
  }

  /**
   * Walks the batches of block i (its bytes as read), checking them against the index entry:
   * framing, order, first offset, and (when walked to the end) batch count and end offset.
   * visit gets each batch (a slice) and its end offset, and returns false to stop.
   */
  forEachBlockBatch(i: number, block: Buffer, visit: (batch: Buffer, endOffset: number) => boolean): void {
    const entry = this.entry(i);
    if (block.length !== entry.sizeBytes) {
      throw new CorruptDataObjectError(this.key, `block at ${entry.position}: ${block.length} bytes, the index says ${entry.sizeBytes}`);
    }
    this.checkedBatches(block, entry, visit);
  }

  /**
   * The blocks to read for up to maxBytes of the stream from startOffset: the block holding
   * startOffset (or the first one after it), then the stream's next blocks as long as they fit
   * in maxBytes together with the first block's share past startOffset (estimated by offsets).
   * Never reads a block that could not be returned whole within maxBytes, so a read may return
   * somewhat less than maxBytes; at least one block when the stream has data at or past
   * startOffset.
   */
  findBlocks(streamId: number, startOffset: number, maxBytes: number): IndexEntry[] {
    const found: IndexEntry[] = [];
    let i = this.firstBlockEndingAfter(streamId, startOffset);
    if (i >= this.blockCount || this.streamIds[i] !== streamId) return found;
    const start = this.startOffsets[i]!;
    const end = this.endOffsets[i]!;
    let estimatedBytes = startOffset <= start ? this.blockSizes[i]! : (this.blockSizes[i]! * (end - startOffset)) / (end - start);
    found.push(this.entry(i));
    for (i++; i < this.blockCount && this.streamIds[i] === streamId; i++) {
      if (estimatedBytes + this.blockSizes[i]! > maxBytes) break;
      found.push(this.entry(i));
      estimatedBytes += this.blockSizes[i]!;
    }
    return found;
  }

  /** One ranged GET of one block. */
  async readBlock(entry: IndexEntry): Promise<Buffer> {
    const block = await this.store.get(this.key, { start: entry.position, endExclusive: entry.position + entry.sizeBytes });
    if (block.length !== entry.sizeBytes) {
      throw new CorruptDataObjectError(this.key, `block at ${entry.position}: read ${block.length} of ${entry.sizeBytes} bytes`);
    }
    return block;
  }

  /**
   * Whole batches of the stream from the one holding startOffset, up to maxBytes (at least one
   * batch when there is any at or past startOffset). The blocks chosen by findBlocks are read
   * with one ranged GET (a stream's blocks are adjacent); the batches are slices of it.
   */
  async readRange(streamId: number, startOffset: number, maxBytes: number): Promise<DataObjectReadResult> {
    const blocks = this.findBlocks(streamId, startOffset, maxBytes);
    const result: DataObjectReadResult = { batches: [], nextOffset: startOffset };
    if (blocks.length === 0) return result;
    const first = blocks[0]!;
    const last = blocks[blocks.length - 1]!;
    const span = await this.readSpan(first.position, last.position + last.sizeBytes);
    result.span = span;
    let bytes = 0;
    for (const entry of blocks) {
      const block = span.subarray(entry.position - first.position, entry.position - first.position + entry.sizeBytes);
      let full = false;
      this.checkedBatches(block, entry, (batch, endOffset) => {
        if (endOffset <= startOffset) return true;
        if (result.batches.length > 0 && bytes + batch.length > maxBytes) {
          full = true;
          return false;
        }
        result.batches.push(batch);
        result.nextOffset = endOffset;
        bytes += batch.length;
        return true;
      });
      if (full) break;
    }
    return result;
  }

  /** Bytes [start, end) of the object with one ranged GET, all of them or CorruptDataObjectError. */
  private async readSpan(start: number, end: number): Promise<Buffer> {
    const span = await this.store.get(this.key, { start, endExclusive: end });
    if (span.length !== end - start) throw new CorruptDataObjectError(this.key, `blocks at ${start}: short read (${span.length} bytes)`);
    return span;
  }

  private checkBlockRange(first: number, last: number): void {
    if (!(first >= 0 && first <= last && last < this.blockCount)) throw new RangeError(`blocks ${first}..${last} of ${this.blockCount}`);
  }

  /** Walks a block's batches (forEachBatch checks their framing and order) against its entry. */
  private checkedBatches(block: Buffer, entry: IndexEntry, visit: (batch: Buffer, endOffset: number) => boolean): void {
    let count = 0;
    let lastEnd = entry.startOffset;
    let stopped = false;
    try {
      forEachBatch(block, (batch, baseOffset, endOffset) => {
        if (count === 0 && baseOffset !== entry.startOffset) {
          throw new Error(`first batch starts at offset ${baseOffset}, the index says ${entry.startOffset}`);
        }
        count++;
        lastEnd = endOffset;
        stopped = !visit(batch, endOffset);
        return !stopped;
      });
    } catch (err) {
      throw new CorruptDataObjectError(this.key, `block at ${entry.position}: ${(err as Error).message}`);
    }
    if (!stopped && (count !== entry.batchCount || lastEnd !== entry.endOffset)) {
      throw new CorruptDataObjectError(
        this.key,
        `block at ${entry.position} holds ${count} batches ending at ${lastEnd}; the index says ${entry.batchCount} ending at ${entry.endOffset}`,
      );
    }
  }

  /** Index of the first block with (streamId, endOffset) > (streamId, offset). */
  private firstBlockEndingAfter(streamId: number, offset: number): number {
    let low = 0;
    let high = this.blockCount;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const midStream = this.streamIds[mid]!;
      if (midStream < streamId || (midStream === streamId && this.endOffsets[mid]! <= offset)) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  private validateIndex(indexPosition: number, fail: (detail: string) => never): void {
    let previousBlockEnd = 0;
    for (let i = 0; i < this.blockCount; i++) {
      const where = `index entry ${i}`;
      if (this.blockSizes[i] === 0 || this.batchCounts[i] === 0 || this.endOffsets[i] === this.startOffsets[i]) {
        fail(`${where} describes an empty block`);
      }
      if (this.positions[i]! < previousBlockEnd) fail(`${where}: block at ${this.positions[i]} overlaps the previous one`);
      previousBlockEnd = this.positions[i]! + this.blockSizes[i]!;
      if (previousBlockEnd > indexPosition) fail(`${where}: block ends at ${previousBlockEnd}, past the index at ${indexPosition}`);
      if (i > 0) {
        const prevStream = this.streamIds[i - 1]!;
        const stream = this.streamIds[i]!;
        if (stream < prevStream || (stream === prevStream && this.startOffsets[i]! < this.endOffsets[i - 1]!)) {
          fail(`${where}: (stream ${stream}, offset ${this.startOffsets[i]}) is out of order or overlaps`);
        }
      }
    }
  }
}

/** Parses and checks a 48-byte footer of an object of sizeBytes bytes. */
function parseFooter(
  footer: Buffer,
  sizeBytes: number,
  fail: (detail: string) => never,
): { indexPosition: number; indexLength: number } {
  if (footer.readUInt32BE(40) !== MAGIC_HI || footer.readUInt32BE(44) !== MAGIC_LO) {
    fail(`bad footer magic 0x${footer.subarray(40).toString('hex')} (expected "WHARFDO1")`);
  }
  const indexPosition = readU64(footer, 0, fail);
  const indexLength = footer.readUInt32BE(8);
  if (indexLength % INDEX_ENTRY_SIZE_BYTES !== 0) fail(`index length ${indexLength} is not a multiple of ${INDEX_ENTRY_SIZE_BYTES}`);
  if (indexPosition + indexLength !== sizeBytes - FOOTER_SIZE_BYTES) {
    fail(`index [${indexPosition}, +${indexLength}) does not end at the footer (object size ${sizeBytes})`);
  }
  return { indexPosition, indexLength };
}

// ---------------------------------------------------------------------------------------------
// u64 as JS numbers (safe up to 2^53)

function writeU64(buf: Buffer, at: number, value: number): void {
  assertU64(value, 'u64 field');
  buf.writeUInt32BE(Math.floor(value / TWO_POW_32), at);
  buf.writeUInt32BE(value % TWO_POW_32, at + 4);
}

function readU64(buf: Buffer, at: number, fail: (detail: string) => never): number {
  const hi = buf.readUInt32BE(at);
  if (hi >= 2 ** 21) fail(`u64 at byte ${at} exceeds 2^53`);
  return hi * TWO_POW_32 + buf.readUInt32BE(at + 4);
}

function assertU64(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${what} ${value} is not a safe non-negative integer`);
}
