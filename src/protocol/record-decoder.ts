// Reads the records of Kafka v2 record batches, as a Fetch returns them (several batches back to
// back, the last one possibly cut short), for consumers inside Wharf (the table writer). Batch
// layout: see records.ts. The records section, after decompression, holds recordCount records:
//
//   length varint | attributes int8 | timestampDelta varlong | offsetDelta varint
//   | keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value
//   | headerCount varint | per header: keyLength varint | key (utf8) | valueLength varint | value
//
// (every varint zigzag-encoded). One DecodedRecord object is reused for every record: it is
// valid only during the visit. Key, value and headers are positions in `buf`: the fetched bytes
// themselves for an uncompressed batch (no copy), else the batch's decompressed records.
// CRCs are not checked (storage checked them when the batches were written).

import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { uncompressSync as snappyUncompress } from 'snappy';
import {
  BATCH_HEADER_BYTES, CompressionType, MAGIC_V2, batchSizeAt, isControlBatch, isLogAppendTime, readBaseOffset,
  readBaseTimestamp, readCompressionType, readLastOffsetDelta, readMagic, readMaxTimestamp, readRecordCount,
} from './records.ts';

/** Default bound on one batch's decompressed records. */
export const DEFAULT_MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024;

const EMPTY = Buffer.alloc(0);
const CODEC_NAMES = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];
/** Kafka's Java client (xerial snappy-java) frames snappy as: magic, version, compatible version, then blocks. */
const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_HEADER_BYTES = 16;

/** A batch compressed with a codec this decoder cannot read. */
export class UnsupportedCompressionError extends Error {
  readonly codec: string;
  constructor(codec: string) {
    super(`record batch compressed with ${codec}: Wharf cannot decompress ${codec} (no ${codec} codec available)`);
    this.name = 'UnsupportedCompressionError';
    this.codec = codec;
  }
}

/** Bytes that are not a well-formed v2 batch or record. */
export class RecordDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordDecodeError';
  }
}

/** Called per header: positions in the record's buf; valueStart is -1 for a null value. */
export type HeaderVisitor = (buf: Buffer, keyStart: number, keyEnd: number, valueStart: number, valueEnd: number) => void;

// Position after the last varint read (avoids returning pairs).
let varintEnd = 0;

/** A zigzag varint of up to 10 bytes as a number (exact within 2^53); sets varintEnd. */
function readZigzag(buf: Buffer, at: number, end: number): number {
  let raw = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (at >= end) throw new RecordDecodeError(`truncated varint at byte ${at}`);
    const byte = buf[at++]!;
    raw += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      varintEnd = at;
      const half = Math.floor(raw / 2);
      return raw % 2 === 0 ? half : -half - 1;
    }
    scale *= 128;
  }
  throw new RecordDecodeError(`varint longer than 10 bytes at byte ${at - 10}`);
}

/** One record, reused from record to record: copy what must outlive the visit. */
export class DecodedRecord {
  /** Set by the caller (forEachRecord's options); -1 when not given. */
  partition = -1;
  offset = 0;
  timestampMs = 0;
  /** The bytes key, value and headers lie in. */
  buf: Buffer = EMPTY;
  /** -1 for a null key. */
  keyStart = -1;
  keyEnd = -1;
  /** -1 for a null value. */
  valueStart = -1;
  valueEnd = -1;
  headerCount = 0;
  /** Where the first header starts; headers end at headersEnd (the record's end). */
  headersStart = 0;
  headersEnd = 0;

  /** The key as a view into buf (allocates a Buffer object, not the bytes). */
  get key(): Buffer | null {
    return this.keyStart < 0 ? null : this.buf.subarray(this.keyStart, this.keyEnd);
  }

  /** The value as a view into buf (allocates a Buffer object, not the bytes). */
  get value(): Buffer | null {
    return this.valueStart < 0 ? null : this.buf.subarray(this.valueStart, this.valueEnd);
  }

  /**
   * Visits the headers. An own property (not a method), so that a copy of the record made by
   * spreading it during the visit ({ ...record }) still reads them.
   */
  readonly forEachHeader = (visit: HeaderVisitor): void => {
    const buf = this.buf;
    const end = this.headersEnd;
    let at = this.headersStart;
    for (let i = 0; i < this.headerCount; i++) {
      const keyLength = readZigzag(buf, at, end);
      const keyStart = varintEnd;
      const keyEnd = keyStart + keyLength;
      if (keyLength < 0 || keyEnd > end) throw new RecordDecodeError(`header ${i} key runs past its record (byte ${keyStart})`);
      const valueLength = readZigzag(buf, keyEnd, end);
      const valueStart = varintEnd;
      if (valueLength < -1 || valueStart + valueLength > end) throw new RecordDecodeError(`header ${i} value runs past its record (byte ${valueStart})`);
      if (valueLength < 0) {
        visit(buf, keyStart, keyEnd, -1, -1);
        at = valueStart;
      } else {
        visit(buf, keyStart, keyEnd, valueStart, valueStart + valueLength);
        at = valueStart + valueLength;
      }
    }
  };

  /** The headers as objects (copies; for tests and diagnostics, not the hot path). */
  headerList(): { key: string; value: Buffer | null }[] {
    const list: { key: string; value: Buffer | null }[] = [];
    this.forEachHeader((buf, ks, ke, vs, ve) => {
      list.push({ key: buf.toString('utf8', ks, ke), value: vs < 0 ? null : Buffer.from(buf.subarray(vs, ve)) });
    });
    return list;
  }
}

export interface ForEachRecordOptions {
  /** Copied into every DecodedRecord.partition. */
  partition?: number;
  /** Bound on one batch's decompressed records (default 64 MiB). */
  maxDecompressedBytes?: number;
}

export interface ForEachRecordResult {
  /** Records visited. */
  records: number;
  /** Bytes of whole batches read (a truncated trailing batch is not counted). */
  bytesRead: number;
  /** Offset after the last whole batch (control batches included), or -1 when there was none. */
  nextOffset: number;
}

/**
 * Visits every record of every whole batch in `batches`, in order. Control batches are skipped
 * (their offsets still count in nextOffset); a truncated trailing batch is ignored. Records of
 * aborted transactions are not filtered out (that needs the Fetch response's aborted list).
 * Throws RecordDecodeError for malformed bytes and UnsupportedCompressionError for lz4.
 */
export function forEachRecord(batches: Buffer, visit: (record: DecodedRecord) => void, options: ForEachRecordOptions = {}): ForEachRecordResult {
  const record = new DecodedRecord();
  record.partition = options.partition ?? -1;
  const maxBytes = options.maxDecompressedBytes ?? DEFAULT_MAX_DECOMPRESSED_BYTES;
  const result: ForEachRecordResult = { records: 0, bytesRead: 0, nextOffset: -1 };
  let pos = 0;
  for (;;) {
    const sizeBytes = batchSizeAt(batches, pos);
    if (sizeBytes < 0) break;
    if (readMagic(batches, pos) !== MAGIC_V2) throw new RecordDecodeError(`batch at byte ${pos} has magic ${readMagic(batches, pos)}, want 2`);
    result.nextOffset = readBaseOffset(batches, pos) + readLastOffsetDelta(batches, pos) + 1;
    if (!isControlBatch(batches, pos)) result.records += visitBatch(batches, pos, sizeBytes, record, visit, maxBytes);
    pos += sizeBytes;
  }
  result.bytesRead = pos;
  return result;
}

function visitBatch(batch: Buffer, pos: number, sizeBytes: number, record: DecodedRecord, visit: (record: DecodedRecord) => void, maxBytes: number): number {
  const baseOffset = readBaseOffset(batch, pos);
  const baseTimestamp = readBaseTimestamp(batch, pos);
  const logAppendTime = isLogAppendTime(batch, pos) ? readMaxTimestamp(batch, pos) : -1;
  const recordCount = readRecordCount(batch, pos);
  const section = recordsSection(batch, pos, sizeBytes, maxBytes);
  const end = section.length;
  record.buf = section;
  let at = section === batch ? pos + BATCH_HEADER_BYTES : 0;
  const stop = section === batch ? pos + sizeBytes : end;
  for (let i = 0; i < recordCount; i++) {
    at = readRecord(section, at, stop, record, baseOffset, baseTimestamp, logAppendTime);
    visit(record);
  }
  return recordCount;
}

/** Parses the record at `at` into `record`; returns where the next record starts. */
function readRecord(buf: Buffer, at: number, stop: number, record: DecodedRecord, baseOffset: number, baseTimestamp: number, logAppendTime: number): number {
  const length = readZigzag(buf, at, stop);
  const start = varintEnd;
  const end = start + length;
  if (length < 1 || end > stop) throw new RecordDecodeError(`record at byte ${at} runs past its batch (length ${length})`);
  const timestampDelta = readZigzag(buf, start + 1, end); // after the attributes byte
  const offsetDelta = readZigzag(buf, varintEnd, end);
  record.offset = baseOffset + offsetDelta;
  record.timestampMs = logAppendTime >= 0 ? logAppendTime : baseTimestamp + timestampDelta;
  const keyLength = readZigzag(buf, varintEnd, end);
  record.keyStart = keyLength < 0 ? -1 : varintEnd;
  record.keyEnd = keyLength < 0 ? -1 : varintEnd + keyLength;
  let next = keyLength < 0 ? varintEnd : varintEnd + keyLength;
  const valueLength = readZigzag(buf, next, end);
  record.valueStart = valueLength < 0 ? -1 : varintEnd;
  record.valueEnd = valueLength < 0 ? -1 : varintEnd + valueLength;
  next = valueLength < 0 ? varintEnd : varintEnd + valueLength;
  if (keyLength < -1 || valueLength < -1 || next >= end) throw new RecordDecodeError(`record at byte ${at}: key or value runs past the record`);
  record.headerCount = readZigzag(buf, next, end);
  if (record.headerCount < 0) throw new RecordDecodeError(`record at byte ${at}: negative header count`);
  record.headersStart = varintEnd;
  record.headersEnd = end;
  if (record.headerCount > 0) checkHeaders(buf, record.headersStart, end, record.headerCount, at);
  return end;
}

/** Headers must fill the rest of the record exactly (so that forEachHeader cannot fail later). */
function checkHeaders(buf: Buffer, at: number, end: number, count: number, recordAt: number): void {
  for (let i = 0; i < count; i++) {
    const keyLength = readZigzag(buf, at, end);
    if (keyLength < 0) throw new RecordDecodeError(`record at byte ${recordAt}: header ${i} has no key`);
    const valueLength = readZigzag(buf, varintEnd + keyLength, end);
    if (valueLength < -1) throw new RecordDecodeError(`record at byte ${recordAt}: header ${i} value length ${valueLength}`);
    at = varintEnd + Math.max(valueLength, 0);
  }
  if (at !== end) throw new RecordDecodeError(`record at byte ${recordAt}: headers end at byte ${at}, the record at ${end}`);
}

/** The batch's records: a view into the batch, or a new buffer holding them decompressed. */
function recordsSection(batch: Buffer, pos: number, sizeBytes: number, maxBytes: number): Buffer {
  const compression = readCompressionType(batch, pos);
  if (compression === CompressionType.NONE) return batch;
  const compressed = batch.subarray(pos + BATCH_HEADER_BYTES, pos + sizeBytes);
  try {
    switch (compression) {
      case CompressionType.GZIP: return gunzipSync(compressed, { maxOutputLength: maxBytes });
      case CompressionType.SNAPPY: return snappyDecompress(compressed, maxBytes);
      case CompressionType.ZSTD: return zstdDecompressSync(compressed, { maxOutputLength: maxBytes });
      case CompressionType.LZ4: throw new UnsupportedCompressionError('lz4');
      default: throw new RecordDecodeError(`batch at byte ${pos}: unknown compression codec ${compression}`);
    }
  } catch (err) {
    if (err instanceof UnsupportedCompressionError || err instanceof RecordDecodeError) throw err;
    throw new RecordDecodeError(`batch at byte ${pos}: cannot decompress ${CODEC_NAMES[compression]}: ${(err as Error).message}`);
  }
}

/** Snappy as Kafka clients write it: xerial-framed blocks (Java client) or one raw block (librdkafka, others). */
function snappyDecompress(input: Buffer, maxBytes: number): Buffer {
  if (input.length < XERIAL_HEADER_BYTES || !input.subarray(0, XERIAL_MAGIC.length).equals(XERIAL_MAGIC)) {
    return snappyBlock(input, maxBytes);
  }
  const blocks: Buffer[] = [];
  let total = 0;
  let at = XERIAL_HEADER_BYTES;
  while (at < input.length) {
    if (at + 4 > input.length) throw new RecordDecodeError('truncated snappy block length');
    const blockBytes = input.readUInt32BE(at);
    at += 4;
    if (at + blockBytes > input.length) throw new RecordDecodeError('snappy block runs past the batch');
    const block = snappyBlock(input.subarray(at, at + blockBytes), maxBytes - total);
    total += block.length;
    blocks.push(block);
    at += blockBytes;
  }
  return blocks.length === 1 ? blocks[0]! : Buffer.concat(blocks, total);
}

/** One raw snappy block, its announced size (the leading varint) checked against the bound first. */
function snappyBlock(block: Buffer, maxBytes: number): Buffer {
  let size = 0;
  let scale = 1;
  for (let i = 0; i < 5 && i < block.length; i++) {
    size += (block[i]! & 0x7f) * scale;
    if (block[i]! < 0x80) break;
    scale *= 128;
  }
  if (size > maxBytes) throw new RecordDecodeError(`snappy block of ${size} bytes exceeds the ${maxBytes}-byte bound`);
  return snappyUncompress(block, { asBuffer: true }) as Buffer;
}
