// Protobuf wire format primitives: a bounds-checked reader over a Buffer and a growable writer.
// No schema knowledge here (walk.ts and json.ts bring the OTLP messages).
//
//   field  = tag value
//   tag    = varint (field number << 3 | wire type)
//   value  = varint                       wire type 0 (int32, int64, uint*, sint*, bool, enum)
//          | 8 bytes little-endian         wire type 1 (fixed64, sfixed64, double)
//          | varint length, then bytes     wire type 2 (string, bytes, messages, packed repeated)
//          | 4 bytes little-endian         wire type 5 (fixed32, sfixed32, float)
//   wire types 3 and 4 (groups) are not used by OTLP and are refused.

export const WireType = { VARINT: 0, I64: 1, LEN: 2, START_GROUP: 3, END_GROUP: 4, I32: 5 } as const;

/** A body that is not valid protobuf (or not a valid OTLP message). Answered with 400 / INVALID_ARGUMENT. */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

const TWO_POW_32 = 4294967296;

export class WireReader {
  readonly buf: Buffer;
  pos: number;
  /** End of the message being read; submessages narrow it and restore it. */
  end: number;

  constructor(buf: Buffer, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  /** An unsigned varint of at most 32 bits (tags, lengths). */
  uint32(): number {
    const buf = this.buf;
    let pos = this.pos;
    if (pos >= this.end) throw new WireError(`truncated varint at byte ${pos}`);
    let b = buf[pos++]!;
    if (b < 0x80) {
      this.pos = pos;
      return b;
    }
    let value = b & 0x7f;
    let shift = 7;
    for (;;) {
      if (pos >= this.end) throw new WireError(`truncated varint at byte ${pos}`);
      b = buf[pos++]!;
      if (shift === 28) {
        if (b > 0x0f) throw new WireError(`varint at byte ${pos - 5} is longer than 32 bits`);
        value += b * 268435456;
        break;
      }
      value |= (b & 0x7f) << shift;
      if (b < 0x80) break;
      shift += 7;
    }
    this.pos = pos;
    return value >>> 0;
  }

  /** Skips a varint of up to 64 bits (10 bytes). */
  skipVarint(): void {
    const buf = this.buf;
    const limit = Math.min(this.end, this.pos + 10);
    for (let pos = this.pos; pos < limit; pos++) {
      if (buf[pos]! < 0x80) {
        this.pos = pos + 1;
        return;
      }
    }
    throw new WireError(this.pos + 10 <= this.end ? `varint at byte ${this.pos} is longer than 10 bytes` : `truncated varint at byte ${this.pos}`);
  }

  /** A varint of up to 64 bits as two's complement 64-bit: [low 32 bits, high 32 bits], both unsigned. */
  varint64(): [number, number] {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    let pos = this.pos;
    for (let i = 0; i < 10; i++) {
      if (pos >= this.end) throw new WireError(`truncated varint at byte ${this.pos}`);
      const b = buf[pos++]!;
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >>> 4;
      } else hi |= (b & 0x7f) << (7 * i - 32);
      if (b < 0x80) {
        this.pos = pos;
        return [lo >>> 0, hi >>> 0];
      }
    }
    throw new WireError(`varint at byte ${this.pos} is longer than 10 bytes`);
  }

  /** Length of a length-delimited field, checked against the enclosing message. */
  length(): number {
    const len = this.uint32();
    if (len > this.end - this.pos) {
      throw new WireError(`length ${len} at byte ${this.pos} runs past the end of its message (${this.end - this.pos} bytes left)`);
    }
    return len;
  }

  need(bytes: number): void {
    if (this.pos + bytes > this.end) throw new WireError(`truncated field at byte ${this.pos}: need ${bytes} bytes`);
  }

  /** Skips a field's value of the given wire type. */
  skip(wireType: number, fieldNo: number): void {
    switch (wireType) {
      case WireType.VARINT: this.skipVarint(); return;
      case WireType.I64: this.need(8); this.pos += 8; return;
      case WireType.LEN: { const len = this.length(); this.pos += len; return; }
      case WireType.I32: this.need(4); this.pos += 4; return;
      default: throw new WireError(`field ${fieldNo} at byte ${this.pos} has wire type ${wireType}, which OTLP does not use`);
    }
  }
}

/** Combines the two halves of a 64-bit value as an unsigned decimal string. */
export function uint64String(lo: number, hi: number): string {
  if (hi === 0) return String(lo);
  if (hi < 0x200000) return String(hi * TWO_POW_32 + lo);
  return ((BigInt(hi) << 32n) | BigInt(lo)).toString();
}

/** Combines the two halves of a 64-bit value as a signed (two's complement) decimal string. */
export function int64String(lo: number, hi: number): string {
  if (hi < 0x80000000) return uint64String(lo, hi);
  return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)).toString();
}

export function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  return 5;
}

/** Writes an unsigned varint of at most 32 bits at `pos`; returns the position after it. */
export function putVarint32(out: Buffer, pos: number, value: number): number {
  while (value >= 0x80) {
    out[pos++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  out[pos++] = value;
  return pos;
}

/** A growable protobuf writer; submessages are written in place and their length prefixed afterwards. */
export class WireWriter {
  private buf: Buffer;
  pos = 0;

  constructor(initialBytes = 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  private ensure(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + bytes));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  tag(fieldNo: number, wireType: number): void {
    this.uint32(fieldNo * 8 + wireType);
  }

  uint32(value: number): void {
    this.ensure(5);
    this.pos = putVarint32(this.buf, this.pos, value >>> 0);
  }

  /** A 64-bit varint from its two's complement halves. */
  varint64(lo: number, hi: number): void {
    this.ensure(10);
    const buf = this.buf;
    while (hi !== 0 || lo >= 0x80) {
      buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[this.pos++] = lo;
  }

  fixed32(value: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(value >>> 0, this.pos);
    this.pos += 4;
  }

  fixed64(lo: number, hi: number): void {
    this.ensure(8);
    this.buf.writeUInt32LE(lo >>> 0, this.pos);
    this.buf.writeUInt32LE(hi >>> 0, this.pos + 4);
    this.pos += 8;
  }

  double(value: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  bytes(value: Uint8Array): void {
    this.uint32(value.length);
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  string(value: string): void {
    const len = Buffer.byteLength(value);
    this.uint32(len);
    this.ensure(len);
    this.pos += this.buf.write(value, this.pos, len, 'utf8');
  }

  /** Starts a length-delimited submessage; returns the mark to pass to endMessage. */
  beginMessage(): number {
    this.ensure(1);
    this.pos += 1; // room for a one-byte length, the common case
    return this.pos;
  }

  endMessage(mark: number): void {
    const len = this.pos - mark;
    const lenBytes = varintSize(len);
    if (lenBytes > 1) {
      this.ensure(lenBytes - 1);
      this.buf.copyWithin(mark + lenBytes - 1, mark, this.pos);
      this.pos += lenBytes - 1;
    }
    putVarint32(this.buf, mark - 1, len);
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}
