// Hand-written Kafka wire encoding for tests that talk to the broker over a raw socket
// (bad input, and looking at stored batches). Independent of src/protocol on purpose: a
// codec bug shared by broker and test would hide itself.
//
// Framing: every request and response is int32 size (big-endian, bytes that follow) + bytes.
// Request header v1: api_key int16, api_version int16, correlation_id int32,
//                    client_id nullable string (int16 length, -1 = null).
// Request header v2: header v1 + tagged fields (unsigned varint count; 0 = none).
// Response header v0: correlation_id int32.  (v1 adds tagged fields; not used here.)

import { Socket, connect } from 'node:net';

// ---------------------------------------------------------------------------------------
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as record batches v2 use.

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = CRC32C_TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------------------------------
// Writer / reader of big-endian Kafka primitives.

export class WireWriter {
  private parts: Buffer[] = [];

  int8(v: number): this {
    const b = Buffer.alloc(1);
    b.writeInt8(v);
    return this.raw(b);
  }
  int16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    return this.raw(b);
  }
  int32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    return this.raw(b);
  }
  uint32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    return this.raw(b);
  }
  int64(v: bigint | number): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt(v));
    return this.raw(b);
  }
  /** string: int16 length + UTF-8 bytes; null as length -1. */
  string(v: string | null): this {
    if (v === null) return this.int16(-1);
    const bytes = Buffer.from(v, 'utf8');
    return this.int16(bytes.length).raw(bytes);
  }
  /** bytes: int32 length + bytes; null as length -1. */
  bytes(v: Buffer | null): this {
    if (v === null) return this.int32(-1);
    return this.int32(v.length).raw(v);
  }
  /** array: int32 count + items. */
  array<T>(items: readonly T[], writeItem: (w: this, item: T) => void): this {
    this.int32(items.length);
    for (const item of items) writeItem(this, item);
    return this;
  }
  /** Unsigned varint (LEB128), as flexible versions and tagged fields use. */
  uvarint(v: number): this {
    const out: number[] = [];
    let n = v >>> 0;
    while (n >= 0x80) {
      out.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    out.push(n);
    return this.raw(Buffer.from(out));
  }
  /** Signed zigzag varint (records use these for lengths and deltas). */
  varint(v: number): this {
    return this.uvarint(((v << 1) ^ (v >> 31)) >>> 0);
  }
  /** Signed zigzag varlong. */
  varlong(v: bigint | number): this {
    let n = BigInt.asUintN(64, (BigInt(v) << 1n) ^ (BigInt(v) >> 63n));
    const out: number[] = [];
    while (n >= 0x80n) {
      out.push(Number(n & 0x7fn) | 0x80);
      n >>= 7n;
    }
    out.push(Number(n));
    return this.raw(Buffer.from(out));
  }
  /** compact string: uvarint (length + 1) + UTF-8 bytes; 0 = null. */
  compactString(v: string | null): this {
    if (v === null) return this.uvarint(0);
    const bytes = Buffer.from(v, 'utf8');
    return this.uvarint(bytes.length + 1).raw(bytes);
  }
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export class WireReader {
  private pos = 0;
  private readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  get offset(): number {
    return this.pos;
  }
  remaining(): number {
    return this.buf.length - this.pos;
  }
  private need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw new Error(`response truncated: need ${n} bytes at ${this.pos}, have ${this.buf.length - this.pos}`);
    }
  }
  int8(): number {
    this.need(1);
    return this.buf.readInt8(this.pos++);
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  int64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  string(): string | null {
    const len = this.int16();
    if (len < 0) return null;
    this.need(len);
    const v = this.buf.toString('utf8', this.pos, this.pos + len);
    this.pos += len;
    return v;
  }
  bytes(): Buffer | null {
    const len = this.int32();
    if (len < 0) return null;
    this.need(len);
    const v = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return v;
  }
  array<T>(readItem: (r: WireReader) => T): T[] | null {
    const count = this.int32();
    if (count < 0) return null;
    if (count > this.remaining()) throw new Error(`implausible array count ${count}`);
    const items: T[] = [];
    for (let i = 0; i < count; i++) items.push(readItem(this));
    return items;
  }
}

// ---------------------------------------------------------------------------------------
// Requests.

export const ApiKey = {
  Produce: 0,
  Fetch: 1,
  ApiVersions: 18,
} as const;

export interface RequestHeader {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  clientId?: string | null;
  /** 1 (classic) or 2 (flexible: adds an empty tagged-field section). */
  headerVersion?: 1 | 2;
}

/** A whole frame: int32 size + request header + body. */
export function encodeRequest(header: RequestHeader, body: Buffer = Buffer.alloc(0)): Buffer {
  const w = new WireWriter()
    .int16(header.apiKey)
    .int16(header.apiVersion)
    .int32(header.correlationId)
    .string(header.clientId === undefined ? 'wharf-wire-test' : header.clientId);
  if ((header.headerVersion ?? 1) === 2) w.uvarint(0);
  const payload = w.raw(body).toBuffer();
  const size = Buffer.alloc(4);
  size.writeInt32BE(payload.length);
  return Buffer.concat([size, payload]);
}

/**
 * ApiVersions body. v0–v2: empty. v3+ (flexible): client_software_name compact string,
 * client_software_version compact string, tagged fields.
 */
export function apiVersionsBody(version: number): Buffer {
  if (version < 3) return Buffer.alloc(0);
  return new WireWriter().compactString('wharf-wire-test').compactString('1.0').uvarint(0).toBuffer();
}

export interface ApiVersionRange {
  apiKey: number;
  minVersion: number;
  maxVersion: number;
}

/**
 * ApiVersions response v0 body (after the v0 response header): error_code int16,
 * api_keys array of {api_key int16, min_version int16, max_version int16}.
 * (This is also the shape Kafka answers an unsupported ApiVersions version with.)
 */
export function parseApiVersionsV0(body: Buffer): { errorCode: number; apis: ApiVersionRange[] } {
  const r = new WireReader(body);
  const errorCode = r.int16();
  const apis =
    r.array((a) => ({ apiKey: a.int16(), minVersion: a.int16(), maxVersion: a.int16() })) ?? [];
  return { errorCode, apis };
}

export interface ProduceTopicData {
  name: string;
  partitions: Array<{ index: number; records: Buffer }>;
}

/**
 * Produce v3 body: transactional_id nullable string, acks int16, timeout_ms int32,
 * topics array of {name string, partitions array of {index int32, records bytes}}.
 */
export function produceV3Body(opts: { acks: number; timeoutMs: number; topics: ProduceTopicData[] }): Buffer {
  return new WireWriter()
    .string(null)
    .int16(opts.acks)
    .int32(opts.timeoutMs)
    .array(opts.topics, (w, topic) =>
      w.string(topic.name).array(topic.partitions, (pw, p) => pw.int32(p.index).bytes(p.records)),
    )
    .toBuffer();
}

export interface ProducePartitionResult {
  topic: string;
  partition: number;
  errorCode: number;
  baseOffset: bigint;
}

/**
 * Produce response v3 body: responses array of {name string, partitions array of
 * {index int32, error_code int16, base_offset int64, log_append_time_ms int64}},
 * throttle_time_ms int32.
 */
export function parseProduceV3(body: Buffer): ProducePartitionResult[] {
  const r = new WireReader(body);
  const results: ProducePartitionResult[] = [];
  r.array((t) => {
    const topic = t.string() ?? '';
    t.array((p) => {
      const partition = p.int32();
      const errorCode = p.int16();
      const baseOffset = p.int64();
      p.int64();
      results.push({ topic, partition, errorCode, baseOffset });
    });
  });
  r.int32();
  return results;
}

/**
 * Fetch body, versions 4–11 (none flexible):
 *   replica_id int32 (-1), max_wait_ms int32, min_bytes int32, max_bytes int32,
 *   isolation_level int8, [v7+ session_id int32, session_epoch int32],
 *   topics array of {topic string, partitions array of {partition int32,
 *     [v9+ current_leader_epoch int32], fetch_offset int64, [v5+ log_start_offset int64],
 *     partition_max_bytes int32}},
 *   [v7+ forgotten_topics_data array of {topic string, partitions array of int32}],
 *   [v11+ rack_id string]
 */
export function fetchBody(
  version: number,
  opts: { topic: string; partition: number; offset: number; maxWaitMs?: number; maxBytes?: number },
): Buffer {
  if (version < 4 || version > 11) throw new Error(`fetchBody supports v4–v11, not v${version}`);
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  const w = new WireWriter()
    .int32(-1)
    .int32(opts.maxWaitMs ?? 100)
    .int32(1)
    .int32(maxBytes)
    .int8(0);
  if (version >= 7) w.int32(0).int32(-1);
  w.array([opts.topic], (tw, topic) =>
    tw.string(topic).array([opts.partition], (pw, partition) => {
      pw.int32(partition);
      if (version >= 9) pw.int32(-1);
      pw.int64(opts.offset);
      if (version >= 5) pw.int64(-1);
      pw.int32(maxBytes);
    }),
  );
  if (version >= 7) w.int32(0);
  if (version >= 11) w.string('');
  return w.toBuffer();
}

export interface FetchPartitionResult {
  topic: string;
  partition: number;
  errorCode: number;
  highWatermark: bigint;
  records: Buffer | null;
}

/**
 * Fetch response body, versions 4–11: throttle_time_ms int32, [v7+ error_code int16,
 * session_id int32], responses array of {topic string, partitions array of
 * {partition int32, error_code int16, high_watermark int64, last_stable_offset int64,
 * [v5+ log_start_offset int64], aborted_transactions nullable array of {producer_id int64,
 * first_offset int64}, [v11+ preferred_read_replica int32], records nullable bytes}}.
 */
export function parseFetch(version: number, body: Buffer): { errorCode: number; partitions: FetchPartitionResult[] } {
  const r = new WireReader(body);
  r.int32();
  let errorCode = 0;
  if (version >= 7) {
    errorCode = r.int16();
    r.int32();
  }
  const partitions: FetchPartitionResult[] = [];
  r.array((t) => {
    const topic = t.string() ?? '';
    t.array((p) => {
      const partition = p.int32();
      const partitionError = p.int16();
      const highWatermark = p.int64();
      p.int64();
      if (version >= 5) p.int64();
      p.array((a) => [a.int64(), a.int64()]);
      if (version >= 11) p.int32();
      const records = p.bytes();
      partitions.push({ topic, partition, errorCode: partitionError, highWatermark, records });
    });
  });
  return { errorCode, partitions };
}

// ---------------------------------------------------------------------------------------
// Record batches (magic 2).
//
//  0 baseOffset int64 | 8 batchLength int32 (bytes after this field) |
// 12 partitionLeaderEpoch int32 | 16 magic int8 (2) | 17 crc uint32 (CRC-32C of bytes 21..end) |
// 21 attributes int16 (bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control) |
// 23 lastOffsetDelta int32 | 27 baseTimestamp int64 | 35 maxTimestamp int64 |
// 43 producerId int64 | 51 producerEpoch int16 | 53 baseSequence int32 | 57 records count int32 |
// 61 records: each = length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
//    keyLength varint (-1 = null), key, valueLength varint, value,
//    headers count varint, headers: {keyLength varint, key, valueLength varint, value}

export const BATCH_HEADER_BYTES = 61;
export const BATCH_CRC_OFFSET = 17;
export const BATCH_ATTRIBUTES_OFFSET = 21;

export interface TestRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers?: Array<[string, Buffer]>;
}

export function encodeRecordBatch(records: TestRecord[], opts: { baseTimestampMs?: number } = {}): Buffer {
  const baseTimestamp = BigInt(opts.baseTimestampMs ?? Date.now());
  const encodedRecords = records.map((record, index) => {
    const body = new WireWriter().int8(0).varlong(0).varint(index);
    if (record.key === null) body.varint(-1);
    else body.varint(record.key.length).raw(record.key);
    if (record.value === null) body.varint(-1);
    else body.varint(record.value.length).raw(record.value);
    const headers = record.headers ?? [];
    body.varint(headers.length);
    for (const [name, value] of headers) {
      const nameBytes = Buffer.from(name, 'utf8');
      body.varint(nameBytes.length).raw(nameBytes).varint(value.length).raw(value);
    }
    const bodyBytes = body.toBuffer();
    return new WireWriter().varint(bodyBytes.length).raw(bodyBytes).toBuffer();
  });
  // Everything the CRC covers: attributes .. end.
  const covered = new WireWriter()
    .int16(0)
    .int32(records.length - 1)
    .int64(baseTimestamp)
    .int64(baseTimestamp)
    .int64(-1)
    .int16(-1)
    .int32(-1)
    .int32(records.length)
    .raw(Buffer.concat(encodedRecords))
    .toBuffer();
  return new WireWriter()
    .int64(0)
    .int32(4 + 1 + 4 + covered.length)
    .int32(-1)
    .int8(2)
    .uint32(crc32c(covered))
    .raw(covered)
    .toBuffer();
}

/** Splits a fetched records blob into whole batches (a trailing partial batch is dropped). */
export function splitBatches(records: Buffer): Buffer[] {
  const batches: Buffer[] = [];
  let pos = 0;
  while (pos + 12 <= records.length) {
    const size = 12 + records.readInt32BE(pos + 8);
    if (pos + size > records.length) break;
    batches.push(records.subarray(pos, pos + size));
    pos += size;
  }
  return batches;
}

export function batchBaseOffset(batch: Buffer): bigint {
  return batch.readBigInt64BE(0);
}

export function batchRecordCount(batch: Buffer): number {
  return batch.readInt32BE(57);
}

/** Compression codec id of a batch: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd. */
export function batchCompression(batch: Buffer): number {
  return batch.readInt16BE(BATCH_ATTRIBUTES_OFFSET) & 0x07;
}

// ---------------------------------------------------------------------------------------
// A raw connection: send frames, read response frames, notice when the broker closes.

export class RawConnection {
  private readonly socket: Socket;
  private buffered = Buffer.alloc(0);
  private frames: Buffer[] = [];
  private waiters: Array<() => void> = [];
  private closedFlag = false;
  private readonly closedPromise: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 4) {
        const size = this.buffered.readInt32BE(0);
        if (this.buffered.length < 4 + size) break;
        this.frames.push(this.buffered.subarray(4, 4 + size));
        this.buffered = this.buffered.subarray(4 + size);
      }
      this.wake();
    });
    socket.on('error', () => {
      // ECONNRESET / EPIPE: the broker closed on us; 'close' follows.
    });
    this.closedPromise = new Promise((resolveClosed) => {
      const onClosed = () => {
        this.closedFlag = true;
        this.wake();
        resolveClosed();
      };
      // 'end': the broker sent FIN (it will send nothing more); finish our side too.
      socket.once('end', () => {
        socket.end();
        onClosed();
      });
      socket.once('close', onClosed);
    });
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawConnection> {
    return new Promise((resolveOpen, reject) => {
      const socket = connect({ port, host, allowHalfOpen: true });
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        resolveOpen(new RawConnection(socket));
      });
      socket.once('error', reject);
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Half-closes our side (FIN): we send nothing more but still read. */
  endWriting(): void {
    this.socket.end();
  }

  /**
   * The next response frame (without its size prefix), or 'closed' if the broker closes the
   * connection first. Throws on timeout.
   */
  async nextFrame(timeoutMs = 10_000): Promise<Buffer | 'closed'> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.frames.shift();
      if (frame) return frame;
      if (this.closedFlag) return 'closed';
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response frame within ${timeoutMs} ms`);
      await new Promise<void>((resolveWait) => {
        const timer = setTimeout(resolveWait, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolveWait();
        });
      });
    }
  }

  /** Sends one request and returns {correlationId, body} of the response (header v0). */
  async request(header: RequestHeader, body?: Buffer, timeoutMs = 10_000): Promise<{ correlationId: number; body: Buffer }> {
    this.write(encodeRequest(header, body));
    const frame = await this.nextFrame(timeoutMs);
    if (frame === 'closed') {
      throw new Error(`broker closed the connection instead of answering api ${header.apiKey} v${header.apiVersion}`);
    }
    return { correlationId: frame.readInt32BE(0), body: frame.subarray(4) };
  }

  /** True if the broker closes the connection within timeoutMs (data it sends is kept). */
  async closesWithin(timeoutMs: number): Promise<boolean> {
    if (this.closedFlag) return true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolveTimeout) => {
      timer = setTimeout(() => resolveTimeout(false), timeoutMs);
    });
    const result = await Promise.race([this.closedPromise.then(() => true as const), timedOut]);
    clearTimeout(timer);
    return result;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Asks the broker which versions it supports and picks the highest Fetch version in 4..11. */
export async function negotiateFetchVersion(conn: RawConnection, correlationId: number): Promise<number> {
  const response = await conn.request({ apiKey: ApiKey.ApiVersions, apiVersion: 0, correlationId });
  const { errorCode, apis } = parseApiVersionsV0(response.body);
  if (errorCode !== 0) throw new Error(`ApiVersions v0 answered error ${errorCode}`);
  const fetchRange = apis.find((a) => a.apiKey === ApiKey.Fetch);
  if (!fetchRange || fetchRange.maxVersion < 4) throw new Error('broker does not advertise Fetch v4+');
  return Math.min(11, fetchRange.maxVersion);
}

/** Reads every batch of one partition from `offset` to the high watermark with raw Fetch requests. */
export async function fetchAllBatches(
  port: number,
  topic: string,
  partition: number,
  offset = 0,
): Promise<{ batches: Buffer[]; highWatermark: bigint }> {
  const conn = await RawConnection.open(port);
  try {
    let correlationId = 1;
    const version = await negotiateFetchVersion(conn, correlationId++);
    const batches: Buffer[] = [];
    let next = BigInt(offset);
    for (;;) {
      const response = await conn.request(
        { apiKey: ApiKey.Fetch, apiVersion: version, correlationId: correlationId++ },
        fetchBody(version, { topic, partition, offset: Number(next) }),
      );
      const parsed = parseFetch(version, response.body);
      const result = parsed.partitions.find((p) => p.topic === topic && p.partition === partition);
      if (!result) throw new Error(`fetch response has no ${topic}/${partition}`);
      if (result.errorCode !== 0) throw new Error(`fetch ${topic}/${partition} answered error ${result.errorCode}`);
      const fetched = splitBatches(result.records ?? Buffer.alloc(0));
      for (const batch of fetched) {
        const lastOffset = batchBaseOffset(batch) + BigInt(batch.readInt32BE(23));
        if (lastOffset >= next) {
          batches.push(batch);
          next = lastOffset + 1n;
        }
      }
      if (next >= result.highWatermark) return { batches, highWatermark: result.highWatermark };
      if (fetched.length === 0) throw new Error(`fetch ${topic}/${partition} at ${next} returned no whole batch`);
    }
  } finally {
    conn.destroy();
  }
}
