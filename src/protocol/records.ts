// Kafka record batch v2 (magic 2): header parse, validation (CRC-32C) and in-place rewrites.
// Batches stay opaque bytes: nothing here allocates per record on the produce or fetch path.
// A produced `records` field holds one or more concatenated batches.
//
//   pos+  size  field                 covered by CRC
//    0     8    baseOffset   int64    no   (the broker assigns it)
//    8     4    batchLength  int32    no   (bytes after this field: size = 12 + batchLength)
//   12     4    partitionLeaderEpoch  no   (the leader stamps it)
//   16     1    magic        int8     no   (= 2)
//   17     4    crc          uint32   no   CRC-32C of bytes [pos+21, pos+size)
//   21     2    attributes   int16    yes  bits 0-2 compression, 3 timestamp type (1 = LogAppendTime),
//                                          4 transactional, 5 control, 6 delete horizon
//   23     4    lastOffsetDelta       yes
//   27     8    baseTimestamp         yes
//   35     8    maxTimestamp          yes
//   43     8    producerId            yes  (-1: not idempotent)
//   51     2    producerEpoch         yes
//   53     4    baseSequence          yes
//   57     4    recordCount           yes
//   61     ...  records (compressed as a whole when compression != 0)
//
// Record (inside the records section, uncompressed):
//   length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
//   key (varint length + bytes), value (varint length + bytes), headers (varint count + ...)

import { crc32c } from '@node-rs/crc32';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { ErrorCode } from './errors.ts';

/** Bytes before batchLength's payload: baseOffset + batchLength. */
export const LOG_OVERHEAD_BYTES = 12;
/** Size of a v2 batch header; the smallest possible batch. */
export const BATCH_HEADER_BYTES = 61;
export const MAGIC_V2 = 2;
export const NO_PRODUCER_ID = -1;
export const NO_SEQUENCE = -1;
export const NO_TIMESTAMP = -1;

const CRC_AT = 17;
const ATTRIBUTES_AT = 21;
/** Where a batch's CRC-32C starts: it covers the attributes to the end of the batch. */
export const BATCH_CRC_FROM = ATTRIBUTES_AT;
const MAX_TIMESTAMP_AT = 35;
const INT32_MAX = 0x7fffffff;
const TWO_POW_32 = 0x1_0000_0000;
/** Decompression bound when looking inside a compressed batch (ListOffsets by timestamp). */
const MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024;

export const Attribute = {
  COMPRESSION_MASK: 0x07,
  LOG_APPEND_TIME: 0x08,
  TRANSACTIONAL: 0x10,
  CONTROL: 0x20,
  DELETE_HORIZON: 0x40,
} as const;

export const CompressionType = { NONE: 0, GZIP: 1, SNAPPY: 2, LZ4: 3, ZSTD: 4 } as const;

/** One object per batch (never per record), for code that wants all header fields at once. */
export interface BatchHeader {
  /** Position of the batch in its buffer. */
  pos: number;
  sizeBytes: number;
  baseOffset: number;
  partitionLeaderEpoch: number;
  magic: number;
  crc: number;
  attributes: number;
  lastOffsetDelta: number;
  baseTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  recordCount: number;
}

export interface TimestampAndOffset {
  offset: number;
  timestampMs: number;
}

// ---- int64 as number (offsets, timestamps and producer ids fit in 2^53) ----

function readInt64(buf: Buffer, at: number): number {
  return buf.readInt32BE(at) * TWO_POW_32 + buf.readUInt32BE(at + 4);
}

function writeInt64(buf: Buffer, at: number, value: number): void {
  if (!Number.isSafeInteger(value)) throw new RangeError(`int64 value ${value} is not a safe integer`);
  const high = Math.floor(value / TWO_POW_32);
  buf.writeInt32BE(high, at);
  buf.writeUInt32BE(value - high * TWO_POW_32, at + 4);
}

// ---- field readers ----

export const readBaseOffset = (buf: Buffer, pos: number): number => readInt64(buf, pos);
export const readBatchLength = (buf: Buffer, pos: number): number => buf.readInt32BE(pos + 8);
export const readPartitionLeaderEpoch = (buf: Buffer, pos: number): number => buf.readInt32BE(pos + 12);
export const readMagic = (buf: Buffer, pos: number): number => buf.readInt8(pos + 16);
export const readCrc = (buf: Buffer, pos: number): number => buf.readUInt32BE(pos + CRC_AT);
export const readAttributes = (buf: Buffer, pos: number): number => buf.readInt16BE(pos + ATTRIBUTES_AT);
export const readLastOffsetDelta = (buf: Buffer, pos: number): number => buf.readInt32BE(pos + 23);
export const readBaseTimestamp = (buf: Buffer, pos: number): number => readInt64(buf, pos + 27);
export const readMaxTimestamp = (buf: Buffer, pos: number): number => readInt64(buf, pos + MAX_TIMESTAMP_AT);
export const readProducerId = (buf: Buffer, pos: number): number => readInt64(buf, pos + 43);
export const readProducerEpoch = (buf: Buffer, pos: number): number => buf.readInt16BE(pos + 51);
export const readBaseSequence = (buf: Buffer, pos: number): number => buf.readInt32BE(pos + 53);
export const readRecordCount = (buf: Buffer, pos: number): number => buf.readInt32BE(pos + 57);

export const readCompressionType = (buf: Buffer, pos: number): number =>
  readAttributes(buf, pos) & Attribute.COMPRESSION_MASK;
export const isTransactional = (buf: Buffer, pos: number): boolean =>
  (readAttributes(buf, pos) & Attribute.TRANSACTIONAL) !== 0;
export const isControlBatch = (buf: Buffer, pos: number): boolean =>
  (readAttributes(buf, pos) & Attribute.CONTROL) !== 0;
export const isLogAppendTime = (buf: Buffer, pos: number): boolean =>
  (readAttributes(buf, pos) & Attribute.LOG_APPEND_TIME) !== 0;
/** Offsets the batch takes: lastOffsetDelta + 1. */
export const readOffsetCount = (buf: Buffer, pos: number): number => readLastOffsetDelta(buf, pos) + 1;

/** Sequence of the batch's last record; sequences wrap from int32 max to 0 (Kafka's rule). */
export function lastSequenceOf(baseSequence: number, lastOffsetDelta: number): number {
  if (baseSequence === NO_SEQUENCE) return NO_SEQUENCE;
  return baseSequence > INT32_MAX - lastOffsetDelta
    ? lastOffsetDelta - (INT32_MAX - baseSequence) - 1
    : baseSequence + lastOffsetDelta;
}

export function readBatchHeader(buf: Buffer, pos: number): BatchHeader {
  return {
    pos,
    sizeBytes: LOG_OVERHEAD_BYTES + readBatchLength(buf, pos),
    baseOffset: readBaseOffset(buf, pos),
    partitionLeaderEpoch: readPartitionLeaderEpoch(buf, pos),
    magic: readMagic(buf, pos),
    crc: readCrc(buf, pos),
    attributes: readAttributes(buf, pos),
    lastOffsetDelta: readLastOffsetDelta(buf, pos),
    baseTimestamp: readBaseTimestamp(buf, pos),
    maxTimestamp: readMaxTimestamp(buf, pos),
    producerId: readProducerId(buf, pos),
    producerEpoch: readProducerEpoch(buf, pos),
    baseSequence: readBaseSequence(buf, pos),
    recordCount: readRecordCount(buf, pos),
  };
}

// ---- iteration ----

/**
 * Size in bytes of the batch at pos (12 + batchLength), or -1 when the buffer does not hold a
 * whole batch there (truncated, or a length below the v2 header size).
 */
export function batchSizeAt(buf: Buffer, pos: number): number {
  if (buf.length - pos < LOG_OVERHEAD_BYTES) return -1;
  const sizeBytes = LOG_OVERHEAD_BYTES + buf.readInt32BE(pos + 8);
  if (sizeBytes < BATCH_HEADER_BYTES || sizeBytes > buf.length - pos) return -1;
  return sizeBytes;
}

/**
 * Calls visit(pos, sizeBytes) for each batch in buf, in order; visit may return false to stop.
 * Returns CORRUPT_MESSAGE when a batch is truncated or undersized (batches before it were
 * visited), NONE otherwise. Headers are not validated: see validateBatch.
 */
export function forEachBatch(buf: Buffer, visit: (pos: number, sizeBytes: number) => boolean | void): number {
  let pos = 0;
  while (pos < buf.length) {
    const sizeBytes = batchSizeAt(buf, pos);
    if (sizeBytes < 0) return ErrorCode.CORRUPT_MESSAGE;
    if (visit(pos, sizeBytes) === false) return ErrorCode.NONE;
    pos += sizeBytes;
  }
  return ErrorCode.NONE;
}

// ---- validation ----

/** CRC-32C of the CRC-covered part of the batch at pos (attributes to the end). */
export function computeBatchCrc(buf: Buffer, pos: number, sizeBytes: number = batchSizeAt(buf, pos)): number {
  if (sizeBytes < 0) throw new RangeError(`no whole batch at position ${pos}`);
  return crc32c(buf.subarray(pos + ATTRIBUTES_AT, pos + sizeBytes)) >>> 0;
}

/**
 * Structural validation of the batch at pos, as Kafka does it: a truncated batch, a length below
 * the header size, a CRC mismatch or an unknown compression codec → CORRUPT_MESSAGE (2); magic
 * other than 2 → INVALID_RECORD (87, what ProduceRequest v3+ answers); recordCount <= 0,
 * lastOffsetDelta < 0 or recordCount != lastOffsetDelta + 1 → INVALID_RECORD (87, LogValidator).
 * Returns 0 when the batch is sound.
 */
export function validateBatch(buf: Buffer, pos: number): number {
  if (buf.length - pos < BATCH_HEADER_BYTES) return ErrorCode.CORRUPT_MESSAGE;
  const sizeBytes = batchSizeAt(buf, pos);
  if (sizeBytes < 0) return ErrorCode.CORRUPT_MESSAGE;
  if (readMagic(buf, pos) !== MAGIC_V2) return ErrorCode.INVALID_RECORD;
  if (computeBatchCrc(buf, pos, sizeBytes) !== readCrc(buf, pos)) return ErrorCode.CORRUPT_MESSAGE;
  if (readCompressionType(buf, pos) > CompressionType.ZSTD) return ErrorCode.CORRUPT_MESSAGE;
  const lastOffsetDelta = readLastOffsetDelta(buf, pos);
  const recordCount = readRecordCount(buf, pos);
  if (lastOffsetDelta < 0 || recordCount <= 0 || recordCount !== lastOffsetDelta + 1) {
    return ErrorCode.INVALID_RECORD;
  }
  return ErrorCode.NONE;
}

/**
 * validateBatch plus the rules Kafka applies to batches coming from a producer client: the
 * base offset must be 0, control batches are refused, and an idempotent batch (producerId >= 0)
 * needs a sequence >= 0. Each of those → INVALID_RECORD (87).
 */
export function validateProducedBatch(buf: Buffer, pos: number): number {
  const errorCode = validateBatch(buf, pos);
  if (errorCode !== ErrorCode.NONE) return errorCode;
  if (readBaseOffset(buf, pos) !== 0) return ErrorCode.INVALID_RECORD;
  if (isControlBatch(buf, pos)) return ErrorCode.INVALID_RECORD;
  if (readProducerId(buf, pos) >= 0 && readBaseSequence(buf, pos) < 0) return ErrorCode.INVALID_RECORD;
  return ErrorCode.NONE;
}

// ---- rewrites ----

/** Sets the base offset. Not covered by the CRC: no recomputation. */
export function setBaseOffset(buf: Buffer, pos: number, offset: number): void {
  if (offset < 0) throw new RangeError(`negative base offset ${offset}`);
  writeInt64(buf, pos, offset);
}

/** Sets the partition leader epoch. Not covered by the CRC: no recomputation. */
export function setPartitionLeaderEpoch(buf: Buffer, pos: number, leaderEpoch: number): void {
  buf.writeInt32BE(leaderEpoch, pos + 12);
}

/**
 * Marks the batch LogAppendTime with the broker's timestamp: sets the timestamp-type attribute
 * bit and maxTimestamp, then recomputes the CRC (both fields are covered). Consumers read every
 * record's timestamp as maxTimestamp for such batches.
 */
export function setLogAppendTime(buf: Buffer, pos: number, timestampMs: number): void {
  const sizeBytes = batchSizeAt(buf, pos);
  if (sizeBytes < 0) throw new RangeError(`no whole batch at position ${pos}`);
  const attributes = readAttributes(buf, pos);
  if ((attributes & Attribute.LOG_APPEND_TIME) !== 0 && readMaxTimestamp(buf, pos) === timestampMs) return;
  buf.writeInt16BE(attributes | Attribute.LOG_APPEND_TIME, pos + ATTRIBUTES_AT);
  writeInt64(buf, pos + MAX_TIMESTAMP_AT, timestampMs);
  buf.writeUInt32BE(computeBatchCrc(buf, pos, sizeBytes), pos + CRC_AT);
}

// ---- looking inside a batch (ListOffsets by timestamp only; never on produce or fetch) ----

// Position after the last varint read; avoids allocating a pair per read.
let varintEnd = 0;

/** Reads a zigzag varlong (up to 10 bytes) as a number; sets varintEnd. NaN when malformed. */
function readVarlong(buf: Buffer, at: number, end: number): number {
  let raw = 0;
  let scale = 1;
  for (let i = 0; i < 10 && at < end; i++) {
    const byte = buf[at++];
    raw += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) {
      varintEnd = at;
      const half = Math.floor(raw / 2);
      return raw % 2 === 0 ? half : -half - 1;
    }
  }
  return Number.NaN;
}

/**
 * Walks an uncompressed records section and returns the first record whose timestamp is
 * >= targetTimestampMs; undefined when none is, null when the records are malformed.
 */
function scanRecords(
  records: Buffer,
  recordCount: number,
  baseOffset: number,
  baseTimestamp: number,
  targetTimestampMs: number,
): TimestampAndOffset | undefined | null {
  let at = 0;
  for (let i = 0; i < recordCount; i++) {
    const length = readVarlong(records, at, records.length);
    if (Number.isNaN(length) || length < 1) return null;
    const recordStart = varintEnd;
    const recordEnd = recordStart + length;
    if (recordEnd > records.length) return null;
    const timestampDelta = readVarlong(records, recordStart + 1, recordEnd); // after attributes
    if (Number.isNaN(timestampDelta)) return null;
    const offsetDelta = readVarlong(records, varintEnd, recordEnd);
    if (Number.isNaN(offsetDelta)) return null;
    const timestampMs = baseTimestamp + timestampDelta;
    if (timestampMs >= targetTimestampMs) return { offset: baseOffset + offsetDelta, timestampMs };
    at = recordEnd;
  }
  return undefined;
}

/**
 * The first record of the batch at pos whose timestamp is >= targetTimestampMs (Kafka's
 * ListOffsets semantics), or undefined when the batch has none. LogAppendTime batches answer
 * with their base offset and maxTimestamp (every record carries that time). Uncompressed, gzip
 * and zstd batches are searched record by record; snappy and lz4 (no codec in Node) answer at
 * batch granularity: the base offset and maxTimestamp when maxTimestamp >= target.
 */
export function findRecordByTimestamp(buf: Buffer, pos: number, targetTimestampMs: number): TimestampAndOffset | undefined {
  const sizeBytes = batchSizeAt(buf, pos);
  if (sizeBytes < 0) throw new RangeError(`no whole batch at position ${pos}`);
  const baseOffset = readBaseOffset(buf, pos);
  const maxTimestamp = readMaxTimestamp(buf, pos);
  if (maxTimestamp < targetTimestampMs) return undefined;
  const batchGranularity = { offset: baseOffset, timestampMs: maxTimestamp };
  if (isLogAppendTime(buf, pos)) return batchGranularity;
  let records = buf.subarray(pos + BATCH_HEADER_BYTES, pos + sizeBytes);
  try {
    switch (readCompressionType(buf, pos)) {
      case CompressionType.NONE:
        break;
      case CompressionType.GZIP:
        records = gunzipSync(records, { maxOutputLength: MAX_DECOMPRESSED_BYTES });
        break;
      case CompressionType.ZSTD:
        records = zstdDecompressSync(records, { maxOutputLength: MAX_DECOMPRESSED_BYTES });
        break;
      default:
        return batchGranularity;
    }
  } catch {
    return batchGranularity;
  }
  const found = scanRecords(records, readRecordCount(buf, pos), baseOffset, readBaseTimestamp(buf, pos), targetTimestampMs);
  // null: malformed records; undefined: maxTimestamp lied. Either way the batch is the answer.
  return found ?? batchGranularity;
}
