// Encodes records into Kafka record batches v2 (uncompressed), for producers inside Wharf
// (connectors). Records are held as columns (RecordColumns): a connector that makes thousands
// of records of one request (remote write: one per series) fills them without an object per
// record, and the encoder writes each key and value straight from where it lies (the request,
// a key cache) into the batch. One pass computes every record's size and splits the records
// into batches of at most maxBatchBytes; a second writes each batch into a buffer of its exact
// size; the CRC is computed once per batch.
//
//   batch header (61 bytes, see records.ts), then per record:
//   length varint | attributes int8 (0) | timestampDelta varlong | offsetDelta varint
//   | keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value
//   | headerCount varint | per header: keyLength varint | key utf8 | valueLength varint | value
//
// (every varint zigzag-encoded: a length n >= 0 is written as 2n, -1 as 1).

import { allocFreeable } from '../storage/buffers.ts';
import { BATCH_HEADER_BYTES, NO_PRODUCER_ID, computeBatchCrc } from './records.ts';

export interface RecordHeader {
  key: string;
  value: Buffer | null;
}

export interface EncodableRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers?: readonly RecordHeader[];
  /** CreateTime of the record; defaults to the time of the send. */
  timestampMs?: number;
}

export interface EncodedBatch {
  batch: Buffer;
  recordCount: number;
}

const INITIAL_CAPACITY = 64;
/** The numbers of a record, at record * RECORD_INTS in RecordColumns.ranges. */
const R = { KEY_START: 0, KEY_END: 1, VALUE_START: 2, VALUE_END: 3, PARTITION_HASH: 4 } as const;
const RECORD_INTS = 5;

/**
 * Records as columns, keys and values as ranges: record i has as key the bytes [keyStart(i),
 * keyEnd(i)) of keySources[i] and as value [valueStart(i), valueEnd(i)) of valueSources[i] (a
 * null source: a null key or value). A key or value can so stay where it lies, in a request or
 * a cache, without a Buffer object of its own. partitionHash(i) is the key's murmur2 made
 * positive (the partition is it modulo the partition count), -1 without a key. The numbers of a
 * record lie side by side in one Int32Array. Headers and timestamps of their own are rare: kept
 * by record index, only for the records that have them.
 */
export class RecordColumns {
  length = 0;
  keySources: (Buffer | null)[] = [];
  valueSources: (Buffer | null)[] = [];
  ranges: Int32Array;
  headers: Map<number, readonly RecordHeader[]> | undefined;
  timestamps: Map<number, number> | undefined;

  /** `capacity`: the records expected (more are taken, at the cost of growing). */
  constructor(capacity = INITIAL_CAPACITY) {
    this.ranges = new Int32Array(Math.max(1, capacity) * RECORD_INTS);
  }

  /** The records, as columns (keys and values are not copied). */
  static of(records: readonly EncodableRecord[]): RecordColumns {
    const columns = new RecordColumns(records.length);
    for (const r of records) {
      const i = columns.add(r.key, r.value);
      if (r.headers !== undefined && r.headers.length > 0) columns.setHeaders(i, r.headers);
      if (r.timestampMs !== undefined) (columns.timestamps ??= new Map()).set(i, r.timestampMs);
    }
    return columns;
  }

  /** Adds a record keyed by all of `key`, its value valueSource[valueStart, valueEnd) (all of it by default); returns its index. */
  add(key: Buffer | null, valueSource: Buffer | null, valueStart = 0, valueEnd = valueSource === null ? 0 : valueSource.length): number {
    return this.addRanges(key, 0, key === null ? 0 : key.length, key === null ? -1 : partitionHash(key), valueSource, valueStart, valueEnd);
  }

  /**
   * Adds a record whose key is keySource[keyStart, keyEnd) and value valueSource[valueStart,
   * valueEnd); returns its index. keyPartitionHash is partitionHash() of the key's bytes (callers
   * that keep keys compute it once per key), -1 without a key.
   */
  addRanges(
    keySource: Buffer | null, keyStart: number, keyEnd: number, keyPartitionHash: number,
    valueSource: Buffer | null, valueStart: number, valueEnd: number,
  ): number {
    const i = this.length;
    const at = i * RECORD_INTS;
    if (at === this.ranges.length) this.grow();
    const ranges = this.ranges;
    this.keySources.push(keySource);
    this.valueSources.push(valueSource);
    ranges[at + R.KEY_START] = keyStart;
    ranges[at + R.KEY_END] = keyEnd;
    ranges[at + R.VALUE_START] = valueStart;
    ranges[at + R.VALUE_END] = valueEnd;
    ranges[at + R.PARTITION_HASH] = keyPartitionHash;
    this.length = i + 1;
    return i;
  }

  keyStart(index: number): number {
    return this.ranges[index * RECORD_INTS + R.KEY_START]!;
  }

  keyEnd(index: number): number {
    return this.ranges[index * RECORD_INTS + R.KEY_END]!;
  }

  valueStart(index: number): number {
    return this.ranges[index * RECORD_INTS + R.VALUE_START]!;
  }

  valueEnd(index: number): number {
    return this.ranges[index * RECORD_INTS + R.VALUE_END]!;
  }

  partitionHash(index: number): number {
    return this.ranges[index * RECORD_INTS + R.PARTITION_HASH]!;
  }

  setValue(index: number, source: Buffer | null, start: number, end: number): void {
    this.valueSources[index] = source;
    this.ranges[index * RECORD_INTS + R.VALUE_START] = start;
    this.ranges[index * RECORD_INTS + R.VALUE_END] = end;
  }

  setHeaders(index: number, headers: readonly RecordHeader[]): void {
    (this.headers ??= new Map()).set(index, headers);
  }

  /** Record i as an object, its key and value views into their sources (tests and tools: it allocates). */
  record(index: number): EncodableRecord {
    const keySource = this.keySources[index]!;
    const valueSource = this.valueSources[index]!;
    const record: EncodableRecord = {
      key: keySource === null ? null : keySource.subarray(this.keyStart(index), this.keyEnd(index)),
      value: valueSource === null ? null : valueSource.subarray(this.valueStart(index), this.valueEnd(index)),
    };
    const headers = this.headers?.get(index);
    if (headers !== undefined) record.headers = headers;
    const timestampMs = this.timestamps?.get(index);
    if (timestampMs !== undefined) record.timestampMs = timestampMs;
    return record;
  }

  /** Every record as an object (see record()). */
  toRecords(): EncodableRecord[] {
    return Array.from({ length: this.length }, (_, i) => this.record(i));
  }

  private grow(): void {
    const grown = new Int32Array(this.ranges.length * 2);
    grown.set(this.ranges);
    this.ranges = grown;
  }
}

function uvarintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

function writeUvarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[pos++] = n;
  return pos;
}

/** Zigzag of a safe integer, as a non-negative number (exact below 2^52). */
function zigzag(n: number): number {
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

/** Bytes of a length-prefixed field of `length` bytes (-1: null). */
function bytesFieldSize(length: number): number {
  return length < 0 ? 1 : uvarintSize(length * 2) + length;
}

/** Writes a length-prefixed field holding source[start, end) (source null: a null field). */
function writeBytes(buf: Buffer, pos: number, source: Buffer | null, start: number, end: number): number {
  if (source === null) {
    buf[pos] = 1;
    return pos + 1;
  }
  pos = writeUvarint(buf, pos, (end - start) * 2);
  // A plain Uint8Array view and set(): a third cheaper than source.copy() for the short keys and
  // values that most records have (no Buffer species lookup, no call into C++).
  buf.set(new Uint8Array(source.buffer, source.byteOffset + start, end - start), pos);
  return pos + end - start;
}

function headersSize(headers: readonly RecordHeader[] | undefined): number {
  if (headers === undefined) return 1;
  let bytes = uvarintSize(headers.length * 2);
  for (const h of headers) bytes += bytesFieldSize(Buffer.byteLength(h.key, 'utf8')) + bytesFieldSize(h.value === null ? -1 : h.value.length);
  return bytes;
}

function writeHeaders(buf: Buffer, pos: number, headers: readonly RecordHeader[] | undefined): number {
  if (headers === undefined) {
    buf[pos] = 0;
    return pos + 1;
  }
  pos = writeUvarint(buf, pos, headers.length * 2);
  for (const h of headers) {
    pos = writeUvarint(buf, pos, Buffer.byteLength(h.key, 'utf8') * 2);
    pos += buf.write(h.key, pos, 'utf8');
    pos = writeBytes(buf, pos, h.value, 0, h.value === null ? 0 : h.value.length);
  }
  return pos;
}

/** Record sizes (everything after a record's length varint), by position in `order`; grown on need. */
let bodySizes = new Int32Array(1024);

/**
 * Encodes records order[from, to) of `records` (order null: records from, from + 1, ...) into
 * batches of at most maxBatchBytes each, in that order. A record too large for a batch of its
 * own still gets one: the caller tells it by its size. Records without a timestamp of their own
 * get nowMs. Base offsets are 0, no producer id.
 */
export function encodeRecordBatches(
  records: RecordColumns, order: Int32Array | null, from: number, to: number, nowMs: number, maxBatchBytes: number,
): EncodedBatch[] {
  if (to > bodySizes.length) bodySizes = new Int32Array(Math.max(to, bodySizes.length * 2));
  const batches: EncodedBatch[] = [];
  const { keySources, valueSources, ranges, headers, timestamps } = records;
  let batchStart = from;
  let batchBytes = BATCH_HEADER_BYTES;
  let baseTimestamp = nowMs;
  for (let k = from; k < to; k++) {
    const i = order === null ? k : order[k]!;
    if (k === batchStart) baseTimestamp = timestamps?.get(i) ?? nowMs;
    const at = i * RECORD_INTS;
    const fixedBytes = 1 + bytesFieldSize(keySources[i] === null ? -1 : ranges[at + R.KEY_END]! - ranges[at + R.KEY_START]!)
      + bytesFieldSize(valueSources[i] === null ? -1 : ranges[at + R.VALUE_END]! - ranges[at + R.VALUE_START]!)
      + headersSize(headers?.get(i));
    const timestampDeltaBytes = timestamps === undefined ? 1 : uvarintSize(zigzag((timestamps.get(i) ?? nowMs) - baseTimestamp));
    let body = fixedBytes + timestampDeltaBytes + uvarintSize((k - batchStart) * 2);
    if (k > batchStart && batchBytes + uvarintSize(body * 2) + body > maxBatchBytes) {
      batches.push(writeBatch(records, order, batchStart, k, nowMs, batchBytes));
      batchStart = k;
      baseTimestamp = timestamps?.get(i) ?? nowMs;
      batchBytes = BATCH_HEADER_BYTES;
      body = fixedBytes + 1 + 1; // timestamp delta and offset delta 0
    }
    bodySizes[k] = body;
    batchBytes += uvarintSize(body * 2) + body;
  }
  if (to > from) batches.push(writeBatch(records, order, batchStart, to, nowMs, batchBytes));
  return batches;
}

/** Writes records order[from, to) as one batch of `size` bytes (their sizes are in bodySizes). */
function writeBatch(records: RecordColumns, order: Int32Array | null, from: number, to: number, nowMs: number, size: number): EncodedBatch {
  const { keySources, valueSources, ranges, headers, timestamps } = records;
  const baseTimestamp = timestamps?.get(order === null ? from : order[from]!) ?? nowMs;
  let maxTimestamp = baseTimestamp;
  const buf = allocFreeable(size); // freed once appended (in-process-producer.ts), or transferred whole
  let pos = BATCH_HEADER_BYTES;
  for (let k = from; k < to; k++) {
    const i = order === null ? k : order[k]!;
    const body = bodySizes[k]!;
    pos = writeUvarint(buf, pos, body * 2);
    const recordEnd = pos + body;
    buf[pos++] = 0; // attributes
    if (timestamps === undefined) {
      buf[pos++] = 0;
    } else {
      const timestampMs = timestamps.get(i) ?? nowMs;
      if (timestampMs > maxTimestamp) maxTimestamp = timestampMs;
      pos = writeUvarint(buf, pos, zigzag(timestampMs - baseTimestamp));
    }
    pos = writeUvarint(buf, pos, (k - from) * 2);
    const at = i * RECORD_INTS;
    pos = writeBytes(buf, pos, keySources[i]!, ranges[at + R.KEY_START]!, ranges[at + R.KEY_END]!);
    pos = writeBytes(buf, pos, valueSources[i]!, ranges[at + R.VALUE_START]!, ranges[at + R.VALUE_END]!);
    pos = writeHeaders(buf, pos, headers?.get(i));
    if (pos !== recordEnd) throw new Error(`record size mismatch: record ${k - from} of a batch ends at ${pos}, expected ${recordEnd}`);
  }
  if (pos !== size) throw new Error(`record batch size mismatch: wrote ${pos} of ${size} bytes`);
  writeBatchHeader(buf, to - from, baseTimestamp, maxTimestamp);
  return { batch: buf, recordCount: to - from };
}

function writeBatchHeader(buf: Buffer, recordCount: number, baseTimestamp: number, maxTimestamp: number): void {
  buf.writeBigInt64BE(0n, 0);
  buf.writeInt32BE(buf.length - 12, 8);
  buf.writeInt32BE(-1, 12);
  buf.writeInt8(2, 16);
  buf.writeInt16BE(0, 21);
  buf.writeInt32BE(recordCount - 1, 23);
  buf.writeBigInt64BE(BigInt(baseTimestamp), 27);
  buf.writeBigInt64BE(BigInt(maxTimestamp), 35);
  buf.writeBigInt64BE(BigInt(NO_PRODUCER_ID), 43);
  buf.writeInt16BE(-1, 51);
  buf.writeInt32BE(-1, 53);
  buf.writeInt32BE(recordCount, 57);
  buf.writeUInt32BE(computeBatchCrc(buf, 0, buf.length), 17);
}

/** One uncompressed v2 batch holding the records, base offset 0, no producer id. */
export function encodeRecordBatch(records: readonly EncodableRecord[], nowMs: number): Buffer {
  if (records.length === 0) throw new RangeError('a record batch holds at least one record');
  return encodeRecordBatches(RecordColumns.of(records), null, 0, records.length, nowMs, Infinity)[0]!.batch;
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

/** The Java client's toPositive(murmur2(key)): the key's partition is this modulo the partition count. */
export function partitionHash(key: Buffer): number {
  return murmur2(key) & 0x7fffffff;
}
