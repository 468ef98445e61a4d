// Encodes records into one Kafka record batch v2 (uncompressed), for producers inside Wharf
// (connectors). Sizes are computed first, then everything is written into one buffer.
//
//   batch header (61 bytes, see records.ts), then per record:
//   length varint | attributes int8 (0) | timestampDelta varlong | offsetDelta varint
//   | keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value
//   | headerCount varint | per header: keyLength varint | key utf8 | valueLength varint | value

import { BATCH_HEADER_BYTES, computeBatchCrc } from './records.ts';

export interface EncodableRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers?: readonly { key: string; value: Buffer | null }[];
  timestampMs?: number;
}

const NO_PRODUCER_ID = -1;

/** Zigzag of a safe integer, as a non-negative number (exact below 2^52). */
function zigzag(n: number): number {
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

function uvarintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeUvarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 128) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

interface Sized {
  bodyBytes: number;
  timestampDelta: number;
  headerKeys: Buffer[];
}

function recordBody(record: EncodableRecord, offsetDelta: number, timestampDelta: number): Sized {
  const headerKeys = (record.headers ?? []).map((h) => Buffer.from(h.key, 'utf8'));
  let bytes = 1 + uvarintSize(zigzag(timestampDelta)) + uvarintSize(zigzag(offsetDelta));
  bytes += record.key === null ? 1 : uvarintSize(zigzag(record.key.length)) + record.key.length;
  bytes += record.value === null ? 1 : uvarintSize(zigzag(record.value.length)) + record.value.length;
  bytes += uvarintSize(zigzag(headerKeys.length));
  (record.headers ?? []).forEach((h, i) => {
    bytes += uvarintSize(zigzag(headerKeys[i]!.length)) + headerKeys[i]!.length;
    bytes += h.value === null ? 1 : uvarintSize(zigzag(h.value.length)) + h.value.length;
  });
  return { bodyBytes: bytes, timestampDelta, headerKeys };
}

function writeBytes(buf: Buffer, pos: number, bytes: Buffer | null): number {
  if (bytes === null) return writeUvarint(buf, pos, zigzag(-1));
  pos = writeUvarint(buf, pos, zigzag(bytes.length));
  bytes.copy(buf, pos);
  return pos + bytes.length;
}

/** Worst-case varint bytes of one record's fixed fields: length, attributes, timestamp delta
 * (varlong), offset delta, key length, value length and header count. */
const RECORD_OVERHEAD_BOUND_BYTES = 5 + 1 + 10 + 5 + 5 + 5 + 5;
/** Worst-case varint bytes of one header's two lengths. */
const HEADER_OVERHEAD_BOUND_BYTES = 5 + 5;

/**
 * An upper bound of recordBatchSize, in one pass with no allocation: what a producer checks
 * first, computing the exact size only when the bound is too large.
 */
export function recordBatchSizeBound(records: readonly EncodableRecord[]): number {
  let size = BATCH_HEADER_BYTES;
  for (const r of records) {
    size += RECORD_OVERHEAD_BOUND_BYTES + (r.key?.length ?? 0) + (r.value?.length ?? 0);
    for (const h of r.headers ?? []) size += HEADER_OVERHEAD_BOUND_BYTES + 3 * h.key.length + (h.value?.length ?? 0);
  }
  return size;
}

/** Size in bytes of the batch encodeRecordBatch would build for these records. */
export function recordBatchSize(records: readonly EncodableRecord[], nowMs: number): number {
  const base = records[0]?.timestampMs ?? nowMs;
  let size = BATCH_HEADER_BYTES;
  records.forEach((r, i) => {
    const { bodyBytes } = recordBody(r, i, (r.timestampMs ?? nowMs) - base);
    size += uvarintSize(zigzag(bodyBytes)) + bodyBytes;
  });
  return size;
}

/** One uncompressed v2 batch holding the records, base offset 0, no producer id. */
export function encodeRecordBatch(records: readonly EncodableRecord[], nowMs: number): Buffer {
  if (records.length === 0) throw new RangeError('a record batch holds at least one record');
  const baseTimestamp = records[0]!.timestampMs ?? nowMs;
  let maxTimestamp = baseTimestamp;
  const sized = records.map((r, i) => {
    const ts = r.timestampMs ?? nowMs;
    if (ts > maxTimestamp) maxTimestamp = ts;
    return recordBody(r, i, ts - baseTimestamp);
  });
  let size = BATCH_HEADER_BYTES;
  for (const s of sized) size += uvarintSize(zigzag(s.bodyBytes)) + s.bodyBytes;
  const buf = Buffer.allocUnsafe(size);
  buf.writeBigInt64BE(0n, 0);
  buf.writeInt32BE(size - 12, 8);
  buf.writeInt32BE(-1, 12);
  buf.writeInt8(2, 16);
  buf.writeInt16BE(0, 21);
  buf.writeInt32BE(records.length - 1, 23);
  buf.writeBigInt64BE(BigInt(baseTimestamp), 27);
  buf.writeBigInt64BE(BigInt(maxTimestamp), 35);
  buf.writeBigInt64BE(BigInt(NO_PRODUCER_ID), 43);
  buf.writeInt16BE(-1, 51);
  buf.writeInt32BE(-1, 53);
  buf.writeInt32BE(records.length, 57);
  let pos = BATCH_HEADER_BYTES;
  records.forEach((r, i) => {
    const s = sized[i]!;
    pos = writeUvarint(buf, pos, zigzag(s.bodyBytes));
    buf[pos++] = 0;
    pos = writeUvarint(buf, pos, zigzag(s.timestampDelta));
    pos = writeUvarint(buf, pos, zigzag(i));
    pos = writeBytes(buf, pos, r.key);
    pos = writeBytes(buf, pos, r.value);
    pos = writeUvarint(buf, pos, zigzag(s.headerKeys.length));
    (r.headers ?? []).forEach((h, j) => {
      pos = writeBytes(buf, pos, s.headerKeys[j]!);
      pos = writeBytes(buf, pos, h.value);
    });
  });
  if (pos !== size) throw new Error(`record batch size mismatch: wrote ${pos} of ${size} bytes`);
  buf.writeUInt32BE(computeBatchCrc(buf, 0, size), 17);
  return buf;
}

/** Kafka's murmur2 (the Java client's partitioner hash, seed 0x9747b28c), as a signed int32. */
export function murmur2(data: Buffer): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = (data[i4]! & 0xff) | ((data[i4 + 1]! & 0xff) << 8) | ((data[i4 + 2]! & 0xff) << 16) | ((data[i4 + 3]! & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const rest = length & 3;
  const tail = length & ~3;
  if (rest === 3) h ^= (data[tail + 2]! & 0xff) << 16;
  if (rest >= 2) h ^= (data[tail + 1]! & 0xff) << 8;
  if (rest >= 1) {
    h ^= data[tail]! & 0xff;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** The Java client's partition for a key: toPositive(murmur2(key)) % partitions. */
export function partitionForKey(key: Buffer, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}
