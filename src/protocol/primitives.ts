// Kafka's primitive wire types: a bounds-checked Reader over a Buffer and a Writer that emits a
// list of Buffer chunks.
//
// All integers are big-endian. The variable-length forms:
//
//   unsigned varint   7 bits a byte, low bits first, high bit set on every byte but the last
//   varint / varlong  zigzag ((n << 1) ^ (n >> 31|63)) then unsigned varint
//   string            int16 length (-1 = null) + UTF-8 bytes
//   compact string    unsigned varint length+1 (0 = null) + UTF-8 bytes
//   bytes             int32 length (-1 = null) + bytes
//   compact bytes     unsigned varint length+1 (0 = null) + bytes
//   array             int32 count (-1 = null) + elements
//   compact array     unsigned varint count+1 (0 = null) + elements
//   uuid              16 bytes (decoded as 32 lowercase hex digits)
//   tagged fields     unsigned varint count, then per field: uvarint tag, uvarint size, size bytes
//
// int64 is read as a JS number (`int64()`): offsets, timestamps and producer ids stay far below
// 2^53, and -1/-2 sentinels are exact. A value beyond ±2^53 decodes to the nearest double; use
// `int64Big()` where all 64 bits matter.
//
// The Reader never reads past `end`: a short buffer raises ProtocolError. Byte fields decode as
// slices of the input (`subarray`), never copies, so a decoded Produce request holds its record
// batches by reference into the request frame.
//
// The Writer fills a scratch buffer; when it is full the filled part becomes a chunk (a slice, no
// copy) and a new scratch buffer is taken. Large byte fields (`raw()` of at least
// REFERENCE_MIN_BYTES) are not copied at all: they join the chunk list by reference, so a Fetch
// response passes stored record batches straight to `socket.writev`/cork.

import { ProtocolError } from './errors.ts';

/** Byte fields at least this long are emitted by reference instead of copied. */
export const REFERENCE_MIN_BYTES = 1024;

const TWO_POW_32 = 4294967296;
const MAX_SCRATCH_BYTES = 64 * 1024;
const INT16_MAX = 32767;
const INT32_MAX = 2147483647;

export const ZERO_UUID = '00000000000000000000000000000000';
const UUID_HEX = /^[0-9a-f]{32}$/;

export class Reader {
  readonly buf: Buffer;
  /** Next byte to read. */
  pos: number;
  /** One past the last readable byte. */
  readonly end: number;

  constructor(buf: Buffer, offset = 0, end = buf.length) {
    if (offset < 0 || end > buf.length || offset > end) {
      throw new RangeError(`reader range [${offset}, ${end}) outside buffer of ${buf.length}`);
    }
    this.buf = buf;
    this.pos = offset;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** Throws ProtocolError unless `n` more bytes are readable. */
  need(n: number): void {
    if (n > this.end - this.pos) {
      throw new ProtocolError(`truncated: need ${n} bytes at offset ${this.pos}, ${this.end - this.pos} left`);
    }
  }

  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }

  int8(): number {
    this.need(1);
    return this.buf.readInt8(this.pos++);
  }

  uint8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  uint16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** int64 as a number: exact within ±2^53 (see the file comment). */
  int64(): number {
    this.need(8);
    const hi = this.buf.readInt32BE(this.pos);
    const lo = this.buf.readUInt32BE(this.pos + 4);
    this.pos += 8;
    return hi * TWO_POW_32 + lo;
  }

  int64Big(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  float64(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }

  bool(): boolean {
    this.need(1);
    return this.buf[this.pos++] !== 0;
  }

  /** Unsigned varint of at most 32 bits (5 bytes). */
  uvarint(): number {
    const buf = this.buf;
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) throw new ProtocolError(`truncated varint at offset ${this.pos}`);
      const b = buf[this.pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        if (result > 0xffffffff) throw new ProtocolError('unsigned varint exceeds 32 bits');
        return result;
      }
    }
    throw new ProtocolError('unsigned varint longer than 5 bytes');
  }

  /** Zigzag-encoded signed 32-bit varint. */
  varint(): number {
    const u = this.uvarint();
    return (u >>> 1) ^ -(u & 1);
  }

  /** Unsigned varlong as a number: exact below 2^53. */
  uvarlong(): number {
    const buf = this.buf;
    let result = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      if (this.pos >= this.end) throw new ProtocolError(`truncated varlong at offset ${this.pos}`);
      const b = buf[this.pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
    }
    throw new ProtocolError('varlong longer than 10 bytes');
  }

  /** Zigzag-encoded signed 64-bit varint as a number: exact within ±2^52. */
  varlong(): number {
    const z = this.uvarlong();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }

  /** Zigzag-encoded signed 64-bit varint, all 64 bits. */
  varlongBig(): bigint {
    let z = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.end) throw new ProtocolError(`truncated varlong at offset ${this.pos}`);
      const b = this.buf[this.pos++]!;
      z |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return BigInt.asIntN(64, (z >> 1n) ^ -(z & 1n));
    }
    throw new ProtocolError('varlong longer than 10 bytes');
  }

  /** 16 bytes as 32 lowercase hex digits. */
  uuid(): string {
    this.need(16);
    const s = this.buf.toString('hex', this.pos, this.pos + 16);
    this.pos += 16;
    return s;
  }

  /** 16 bytes as a slice of the input. */
  uuidBytes(): Buffer {
    this.need(16);
    const b = this.buf.subarray(this.pos, this.pos + 16);
    this.pos += 16;
    return b;
  }

  private utf8(length: number): string {
    this.need(length);
    const s = this.buf.toString('utf8', this.pos, this.pos + length);
    this.pos += length;
    return s;
  }

  private slice(length: number): Buffer {
    this.need(length);
    const b = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return b;
  }

  nullableString(): string | null {
    const length = this.int16();
    if (length < 0) {
      if (length !== -1) throw new ProtocolError(`invalid string length ${length}`);
      return null;
    }
    return this.utf8(length);
  }

  string(): string {
    const s = this.nullableString();
    if (s === null) throw new ProtocolError('null string in a non-nullable field');
    return s;
  }

  compactNullableString(): string | null {
    const n = this.uvarint();
    if (n === 0) return null;
    return this.utf8(n - 1);
  }

  compactString(): string {
    const s = this.compactNullableString();
    if (s === null) throw new ProtocolError('null compact string in a non-nullable field');
    return s;
  }

  nullableBytes(): Buffer | null {
    const length = this.int32();
    if (length < 0) {
      if (length !== -1) throw new ProtocolError(`invalid bytes length ${length}`);
      return null;
    }
    return this.slice(length);
  }

  bytes(): Buffer {
    const b = this.nullableBytes();
    if (b === null) throw new ProtocolError('null bytes in a non-nullable field');
    return b;
  }

  compactNullableBytes(): Buffer | null {
    const n = this.uvarint();
    if (n === 0) return null;
    return this.slice(n - 1);
  }

  compactBytes(): Buffer {
    const b = this.compactNullableBytes();
    if (b === null) throw new ProtocolError('null compact bytes in a non-nullable field');
    return b;
  }

  /**
   * Array element count, -1 for null. `minElementBytes` (when > 0) rejects counts that cannot
   * fit in what is left, before anyone allocates for them.
   */
  arrayLength(minElementBytes = 1): number {
    const n = this.int32();
    if (n < -1) throw new ProtocolError(`invalid array length ${n}`);
    if (n > 0 && minElementBytes > 0 && n * minElementBytes > this.end - this.pos) {
      throw new ProtocolError(`truncated: array of ${n} elements with ${this.end - this.pos} bytes left`);
    }
    return n;
  }

  /** Compact array element count, -1 for null. */
  compactArrayLength(minElementBytes = 1): number {
    const n = this.uvarint() - 1;
    if (n > 0 && minElementBytes > 0 && n * minElementBytes > this.end - this.pos) {
      throw new ProtocolError(`truncated: array of ${n} elements with ${this.end - this.pos} bytes left`);
    }
    return n;
  }

  /**
   * Reads a tagged-field section. `onTag` gets each field's tag and a Reader bounded to its
   * bytes; whatever it leaves unread (unknown tags) is skipped.
   */
  taggedFields(onTag?: (tag: number, field: Reader) => void): void {
    const count = this.uvarint();
    for (let i = 0; i < count; i++) {
      const tag = this.uvarint();
      const size = this.uvarint();
      this.need(size);
      if (onTag !== undefined) onTag(tag, new Reader(this.buf, this.pos, this.pos + size));
      this.pos += size;
    }
  }
}

/** A 4-byte slot reserved in a Writer's output, filled in later (e.g. a size prefix). */
export interface Int32Slot {
  readonly buf: Buffer;
  readonly offset: number;
}

export class Writer {
  private scratch: Buffer;
  private pos = 0;
  /** Start of the part of `scratch` not yet moved to `chunks`. */
  private segmentStart = 0;
  private nextScratchBytes: number;
  private readonly chunks: Buffer[] = [];
  private chunkBytes = 0;
  private finished = false;

  constructor(initialBytes = 256) {
    this.scratch = Buffer.allocUnsafe(initialBytes);
    this.nextScratchBytes = Math.min(initialBytes * 2, MAX_SCRATCH_BYTES);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.chunkBytes + (this.pos - this.segmentStart);
  }

  private flushSegment(): void {
    if (this.pos > this.segmentStart) {
      this.chunks.push(this.scratch.subarray(this.segmentStart, this.pos));
      this.chunkBytes += this.pos - this.segmentStart;
    }
    this.segmentStart = this.pos;
  }

  private reserve(n: number): void {
    if (this.finished) throw new Error('Writer used after finish()');
    if (this.pos + n <= this.scratch.length) return;
    this.flushSegment();
    const size = Math.max(n, this.nextScratchBytes);
    this.nextScratchBytes = Math.min(this.nextScratchBytes * 2, MAX_SCRATCH_BYTES);
    this.scratch = Buffer.allocUnsafe(size);
    this.pos = 0;
    this.segmentStart = 0;
  }

  int8(v: number): void {
    this.reserve(1);
    this.scratch.writeInt8(v, this.pos);
    this.pos += 1;
  }

  uint8(v: number): void {
    this.reserve(1);
    this.scratch[this.pos++] = v;
  }

  int16(v: number): void {
    this.reserve(2);
    this.scratch.writeInt16BE(v, this.pos);
    this.pos += 2;
  }

  uint16(v: number): void {
    this.reserve(2);
    this.scratch.writeUInt16BE(v, this.pos);
    this.pos += 2;
  }

  int32(v: number): void {
    this.reserve(4);
    this.scratch.writeInt32BE(v, this.pos);
    this.pos += 4;
  }

  uint32(v: number): void {
    this.reserve(4);
    this.scratch.writeUInt32BE(v, this.pos);
    this.pos += 4;
  }

  /** int64 from a safe-integer number (or a bigint). */
  int64(v: number | bigint): void {
    this.reserve(8);
    if (typeof v === 'bigint') {
      this.scratch.writeBigInt64BE(v, this.pos);
    } else {
      if (!Number.isSafeInteger(v)) throw new ProtocolError(`int64 value ${v} is not a safe integer`);
      const hi = Math.floor(v / TWO_POW_32);
      this.scratch.writeInt32BE(hi, this.pos);
      this.scratch.writeUInt32BE(v - hi * TWO_POW_32, this.pos + 4);
    }
    this.pos += 8;
  }

  float64(v: number): void {
    this.reserve(8);
    this.scratch.writeDoubleBE(v, this.pos);
    this.pos += 8;
  }

  bool(v: boolean): void {
    this.reserve(1);
    this.scratch[this.pos++] = v ? 1 : 0;
  }

  uvarint(v: number): void {
    if (!(v >= 0 && v <= 0xffffffff)) throw new ProtocolError(`unsigned varint out of range: ${v}`);
    this.reserve(5);
    const buf = this.scratch;
    while (v >= 0x80) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  varint(v: number): void {
    this.uvarint(((v << 1) ^ (v >> 31)) >>> 0);
  }

  /** Unsigned varlong from a number below 2^53. */
  uvarlong(v: number): void {
    if (!(v >= 0 && Number.isSafeInteger(v))) throw new ProtocolError(`unsigned varlong out of range: ${v}`);
    this.reserve(10);
    const buf = this.scratch;
    while (v >= 0x80) {
      buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    buf[this.pos++] = v;
  }

  /** Zigzag varlong from a number within ±2^52. */
  varlong(v: number): void {
    this.uvarlong(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  varlongBig(v: bigint): void {
    let z = BigInt.asUintN(64, (v << 1n) ^ (v >> 63n));
    this.reserve(10);
    while (z >= 0x80n) {
      this.scratch[this.pos++] = Number(z & 0x7fn) | 0x80;
      z >>= 7n;
    }
    this.scratch[this.pos++] = Number(z);
  }

  /** A uuid given as 32 hex digits. */
  uuid(v: string): void {
    if (!UUID_HEX.test(v)) throw new ProtocolError(`uuid must be 32 lowercase hex digits: ${v}`);
    this.reserve(16);
    this.scratch.write(v, this.pos, 16, 'hex');
    this.pos += 16;
  }

  /** Appends bytes: copied when short, referenced when at least REFERENCE_MIN_BYTES. */
  raw(b: Buffer): void {
    if (b.length >= REFERENCE_MIN_BYTES) {
      if (this.finished) throw new Error('Writer used after finish()');
      this.flushSegment();
      this.chunks.push(b);
      this.chunkBytes += b.length;
      return;
    }
    this.reserve(b.length);
    b.copy(this.scratch, this.pos);
    this.pos += b.length;
  }

  private utf8(s: string, byteLength: number): void {
    this.reserve(byteLength);
    this.scratch.write(s, this.pos, byteLength, 'utf8');
    this.pos += byteLength;
  }

  nullableString(s: string | null): void {
    if (s === null) {
      this.int16(-1);
      return;
    }
    const n = Buffer.byteLength(s, 'utf8');
    if (n > INT16_MAX) throw new ProtocolError(`string of ${n} bytes exceeds ${INT16_MAX}`);
    this.int16(n);
    this.utf8(s, n);
  }

  string(s: string): void {
    this.nullableString(s);
  }

  compactNullableString(s: string | null): void {
    if (s === null) {
      this.uvarint(0);
      return;
    }
    const n = Buffer.byteLength(s, 'utf8');
    if (n > INT16_MAX) throw new ProtocolError(`string of ${n} bytes exceeds ${INT16_MAX}`);
    this.uvarint(n + 1);
    this.utf8(s, n);
  }

  compactString(s: string): void {
    this.compactNullableString(s);
  }

  nullableBytes(b: Buffer | null): void {
    if (b === null) {
      this.int32(-1);
      return;
    }
    this.int32(b.length);
    this.raw(b);
  }

  bytes(b: Buffer): void {
    this.nullableBytes(b);
  }

  compactNullableBytes(b: Buffer | null): void {
    if (b === null) {
      this.uvarint(0);
      return;
    }
    this.uvarint(b.length + 1);
    this.raw(b);
  }

  compactBytes(b: Buffer): void {
    this.compactNullableBytes(b);
  }

  /** Several buffers as one bytes field (length = their sum), each passed through `raw()`. */
  bytesChunks(parts: readonly Buffer[], compact: boolean): void {
    let total = 0;
    for (const p of parts) total += p.length;
    if (total > INT32_MAX) throw new ProtocolError(`bytes field of ${total} bytes exceeds ${INT32_MAX}`);
    if (compact) this.uvarint(total + 1);
    else this.int32(total);
    for (const p of parts) this.raw(p);
  }

  arrayLength(n: number): void {
    this.int32(n);
  }

  compactArrayLength(n: number): void {
    this.uvarint(n + 1);
  }

  /** An empty tagged-field section. */
  emptyTaggedFields(): void {
    this.reserve(1);
    this.scratch[this.pos++] = 0;
  }

  /** Reserves 4 bytes to be filled by `patchInt32` once the value is known. */
  reserveInt32(): Int32Slot {
    this.reserve(4);
    const slot = { buf: this.scratch, offset: this.pos };
    this.pos += 4;
    return slot;
  }

  static patchInt32(slot: Int32Slot, v: number): void {
    slot.buf.writeInt32BE(v, slot.offset);
  }

  /** The output as chunks; large byte fields are the caller's buffers, by reference. */
  finish(): Buffer[] {
    if (this.finished) throw new Error('Writer.finish() called twice');
    this.flushSegment();
    this.finished = true;
    return this.chunks;
  }

  /** The output as one buffer (copies; for small messages and tests). */
  toBuffer(): Buffer {
    const chunks = this.finish();
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.chunkBytes);
  }
}

/** Total bytes in a chunk list. */
export function chunksLength(chunks: readonly Buffer[]): number {
  let n = 0;
  for (const c of chunks) n += c.length;
  return n;
}
