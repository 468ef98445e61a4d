// Protobuf reading for the converters: a field iterator over one message and a scan that finds
// each field of a message by number, so rows are written in column order whatever order the
// fields came in. No objects per field or per row; 64-bit values are kept as two uint32 halves.
//
//   tag = varint(field << 3 | wire type); wire 0 varint, 1 eight bytes LE, 2 varint length +
//   bytes, 5 four bytes LE (groups, wire 3/4, are refused).

export const Wire = { VARINT: 0, I64: 1, LEN: 2, I32: 5 } as const;

/** Bytes that are not the protobuf message they should be. */
export class ProtoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtoError';
  }
}

const EMPTY = Buffer.alloc(0);
const TWO_POW_32 = 4294967296;

/** Iterates the fields of the message in [start, end): `while (f.next()) switch (f.field) ...`. */
export class Fields {
  buf: Buffer = EMPTY;
  pos = 0;
  end = 0;
  field = 0;
  wire = 0;
  /** LEN: the bytes; I64 / I32: the fixed-size value; VARINT: the varint's bytes. */
  start = 0;
  stop = 0;
  /** VARINT: the value's low and high 32 bits, unsigned. */
  lo = 0;
  hi = 0;
  /** Where the current field's tag is. */
  tagStart = 0;
  /** only() / nextOf(): the field wanted and how many of it are still ahead. */
  private wanted = 0;
  private remaining = 0;

  reset(buf: Buffer, start: number, end: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    return this;
  }

  /**
   * Prepares to visit the occurrences of one (repeated) field the scan of message [.., end)
   * counted, with `while (f.nextOf())`: starts at the first one and stops after the last, so
   * the rest of the message is not read again.
   */
  only(scan: Scan, field: number, end: number): this {
    this.wanted = field;
    this.remaining = scan.count[field]!;
    return this.reset(scan.buf, this.remaining > 0 ? scan.first[field]! : end, end);
  }

  nextOf(): boolean {
    while (this.remaining > 0 && this.next()) {
      if (this.field === this.wanted) {
        this.remaining--;
        return true;
      }
    }
    return false;
  }

  next(): boolean {
    const tagAt = this.pos;
    const end = this.end;
    if (tagAt >= end) return false;
    this.tagStart = tagAt;
    const buf = this.buf;
    // One-byte tags and lengths (fields below 16, values below 128 bytes) are read inline.
    const first = buf[tagAt]!;
    let tag = first;
    if (first < 0x80) this.pos = tagAt + 1;
    else tag = this.varint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    this.field = field;
    this.wire = wire;
    if (field === 0) throw new ProtoError(`field number 0 at byte ${tagAt}`);
    let pos = this.pos;
    let start = pos;
    switch (wire) {
      case Wire.VARINT: this.varint64(); pos = this.pos; break;
      case Wire.I64: pos += 8; break;
      case Wire.I32: pos += 4; break;
      case Wire.LEN: {
        const lengthByte = buf[pos];
        let length: number;
        if (lengthByte !== undefined && lengthByte < 0x80 && pos < end) {
          length = lengthByte;
          pos++;
        } else {
          length = this.varint32();
          pos = this.pos;
        }
        start = pos;
        pos += length;
        break;
      }
      default: throw new ProtoError(`wire type ${wire} at byte ${tagAt}`);
    }
    if (pos > end) throw new ProtoError(`field ${field} at byte ${tagAt} runs past its message (byte ${end})`);
    this.pos = pos;
    this.start = start;
    this.stop = pos;
    return true;
  }

  /** A varint of at most 32 bits (tags, lengths). */
  private varint32(): number {
    const buf = this.buf;
    const first = buf[this.pos];
    if (first !== undefined && first < 0x80 && this.pos < this.end) {
      this.pos++;
      return first;
    }
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) throw new ProtoError(`truncated varint at byte ${this.pos}`);
      const b = buf[this.pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value > 0xffffffff ? this.fail(`varint ${value} at byte ${this.pos} exceeds 32 bits`) : value;
    }
    return this.fail(`varint longer than 5 bytes at byte ${this.pos - 5}`);
  }

  /** A varint of up to 64 bits into lo / hi. */
  private varint64(): void {
    readVarint64(this);
  }

  private fail(message: string): never {
    throw new ProtoError(message);
  }

  /** Throws unless the current field has this wire type. */
  expect(wire: number): void {
    if (this.wire !== wire) throw new ProtoError(`field ${this.field} at byte ${this.start} has wire type ${this.wire}, want ${wire}`);
  }
}

interface VarintCursor {
  buf: Buffer;
  pos: number;
  end: number;
  lo: number;
  hi: number;
}

/** Reads a varint of up to 64 bits at cursor.pos into cursor.lo / hi (unsigned halves). */
function readVarint64(c: VarintCursor): void {
  const buf = c.buf;
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < 10; i++) {
    if (c.pos >= c.end) throw new ProtoError(`truncated varint at byte ${c.pos}`);
    const b = buf[c.pos++]!;
    if (i < 4) lo |= (b & 0x7f) << (7 * i);
    else if (i === 4) {
      lo |= (b & 0x0f) << 28;
      hi |= (b & 0x7f) >>> 4;
    } else hi |= (b & 0x7f) << (7 * i - 32);
    if (b < 0x80) {
      c.lo = lo >>> 0;
      c.hi = hi >>> 0;
      return;
    }
  }
  throw new ProtoError(`varint longer than 10 bytes at byte ${c.pos - 10}`);
}

/** Iterates the varints of a packed repeated field's bytes: `while (v.next()) use(v.lo, v.hi)`. */
export class PackedVarints {
  buf: Buffer = EMPTY;
  pos = 0;
  end = 0;
  lo = 0;
  hi = 0;

  reset(buf: Buffer, start: number, end: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    return this;
  }

  next(): boolean {
    if (this.pos >= this.end) return false;
    readVarint64(this);
    return true;
  }
}

/** Up to this field number a Scan remembers fields (every field Wharf reads is below it). */
const SCAN_FIELDS = 32;

/** Where each field of one message is (the last occurrence of each); repeated fields: iterate with Fields. */
export class Scan {
  buf: Buffer = EMPTY;
  readonly wire = new Int8Array(SCAN_FIELDS);
  readonly start = new Int32Array(SCAN_FIELDS);
  readonly stop = new Int32Array(SCAN_FIELDS);
  readonly lo = new Uint32Array(SCAN_FIELDS);
  readonly hi = new Uint32Array(SCAN_FIELDS);
  /** Where the first occurrence's tag is, and how many occurrences there are (repeated fields). */
  readonly first = new Int32Array(SCAN_FIELDS);
  readonly count = new Int32Array(SCAN_FIELDS);
  private readonly fields = new Fields();

  scan(buf: Buffer, start: number, end: number): this {
    this.buf = buf;
    this.wire.fill(-1);
    this.count.fill(0);
    const f = this.fields.reset(buf, start, end);
    const { count, first, wire, start: starts, stop, lo, hi } = this;
    while (f.next()) {
      const n = f.field;
      if (n >= SCAN_FIELDS) continue;
      if (count[n]++ === 0) first[n] = f.tagStart;
      wire[n] = f.wire;
      starts[n] = f.start;
      stop[n] = f.stop;
      lo[n] = f.lo;
      hi[n] = f.hi;
    }
    return this;
  }

  has(field: number): boolean {
    return this.wire[field] !== -1;
  }

  /** True when the field is present with this wire type; throws for another wire type. */
  is(field: number, wire: number): boolean {
    const w = this.wire[field]!;
    if (w === -1) return false;
    if (w !== wire) throw new ProtoError(`field ${field} at byte ${this.start[field]} has wire type ${w}, want ${wire}`);
    return true;
  }

  /** uint32 / enum / int32 / bool fields (the low 32 bits); 0 when absent. */
  uint32(field: number): number {
    return this.is(field, Wire.VARINT) ? this.lo[field]! : 0;
  }

  int32(field: number): number {
    return this.uint32(field) | 0;
  }

  sint32(field: number): number {
    const raw = this.uint32(field);
    return (raw >>> 1) ^ -(raw & 1);
  }

  fixed32(field: number): number {
    return this.is(field, Wire.I32) ? this.buf.readUInt32LE(this.start[field]!) : 0;
  }

  double(field: number): number {
    return this.is(field, Wire.I64) ? this.buf.readDoubleLE(this.start[field]!) : 0;
  }

  /** A fixed64 nanosecond time as microseconds; 0 when absent or 0. */
  timeMicros(field: number): number {
    if (!this.is(field, Wire.I64)) return 0;
    const at = this.start[field]!;
    return nanosToMicros(this.buf.readUInt32LE(at), this.buf.readUInt32LE(at + 4));
  }

  /** fixed64 as a long column value. */
  fixed64(field: number): number | bigint {
    if (!this.is(field, Wire.I64)) return 0;
    const at = this.start[field]!;
    return uint64Value(this.buf.readUInt32LE(at), this.buf.readUInt32LE(at + 4));
  }

  /** A LEN field's length, or -1 when absent. */
  lenOf(field: number): number {
    return this.is(field, Wire.LEN) ? this.stop[field]! - this.start[field]! : -1;
  }
}

const INT64_MAX = 2n ** 63n - 1n;

/**
 * Nanoseconds (two uint32 halves) as whole microseconds (2^32 = 4294967 * 1000 + 296); 0 — as
 * for an absent time — past 2^53 microseconds (year 2255), which a timestamp column cannot hold.
 */
export function nanosToMicros(lo: number, hi: number): number {
  const micros = hi * 4294967 + Math.floor((hi * 296 + lo) / 1000);
  return micros <= Number.MAX_SAFE_INTEGER ? micros : 0;
}

/** Milliseconds as microseconds, clamped to what a timestamp column holds (±2^53 µs). */
export function msToMicros(ms: number): number {
  const micros = ms * 1000;
  if (micros > Number.MAX_SAFE_INTEGER) return Number.MAX_SAFE_INTEGER;
  if (micros < Number.MIN_SAFE_INTEGER) return Number.MIN_SAFE_INTEGER;
  return Math.trunc(micros);
}

/** An unsigned 64-bit value for a long column: a number when exact, else a bigint; clamped to 2^63 - 1. */
export function uint64Value(lo: number, hi: number): number | bigint {
  if (hi < 0x200000) return hi * TWO_POW_32 + lo;
  if (hi >= 0x80000000) return INT64_MAX;
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** A signed (two's complement) 64-bit value: a number when exact, else a bigint. */
export function int64Value(lo: number, hi: number): number | bigint {
  if (hi < 0x200000) return hi * TWO_POW_32 + lo;
  if (hi >= 0xffe00000) return (hi - TWO_POW_32) * TWO_POW_32 + lo;
  return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
}

/** A signed 64-bit value as the nearest double. */
export function int64Double(lo: number, hi: number): number {
  return hi >= 0x80000000 ? (hi - TWO_POW_32) * TWO_POW_32 + lo : hi * TWO_POW_32 + lo;
}

/** A zigzag-encoded 64-bit value (sint64) as the nearest number. */
export function zigzag64(lo: number, hi: number): number {
  const raw = hi * TWO_POW_32 + lo;
  const half = Math.floor(raw / 2);
  return lo & 1 ? -half - 1 : half;
}
