// The little of the protocol-buffers wire format remote write needs, over one Buffer with
// explicit bounds: field keys, varints, length-delimited ranges, skipping unknown fields; and on
// the writing side varint sizes, varint writes and an arena that record keys and values are cut
// from. Decoders hold positions into the request buffer, never copies.
//
//   message := (key value)*           key := varint(field_number << 3 | wire_type)
//   wire type 0 VARINT: up to 10 bytes, 7 bits each, low first, high bit = more
//   wire type 1 I64: 8 bytes little-endian     wire type 5 I32: 4 bytes little-endian
//   wire type 2 LEN: varint length, then that many bytes (strings, bytes, messages, packed)
//   wire types 3/4 (groups) are proto2-only and refused.

import { isUtf8 } from 'node:buffer';

const EMPTY = Buffer.alloc(0);

export const WireType = { VARINT: 0, I64: 1, LEN: 2, START_GROUP: 3, END_GROUP: 4, I32: 5 } as const;

const MAX_VARINT_BYTES = 10;

/** Malformed protobuf bytes: truncated, wrong wire type, bad length. Carries the byte offset. */
export class ProtobufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtobufError';
  }
}

/** A cursor over a Buffer. Every read is checked against the `end` of the enclosing message. */
export class ProtoReader {
  readonly buf: Buffer;
  pos: number;

  constructor(buf: Buffer, pos = 0) {
    this.buf = buf;
    this.pos = pos;
  }

  /** A field key: field number << 3 | wire type. Refuses field number 0. */
  key(end: number): number {
    const at = this.pos;
    const key = this.uint32(end);
    if (key >>> 3 === 0) throw new ProtobufError(`field number 0 at byte ${at}`);
    return key;
  }

  /** A varint's low 32 bits, unsigned (int32/uint32/enum fields; longer encodings are read to their end). */
  uint32(end: number): number {
    const buf = this.buf;
    let pos = this.pos;
    if (pos >= end) throw truncated('varint', pos, end);
    let b = buf[pos++]!;
    if (b < 0x80) {
      this.pos = pos;
      return b;
    }
    let value = b & 0x7f;
    for (let shift = 7; shift < 35; shift += 7) {
      if (pos >= end) throw truncated('varint', this.pos, end);
      b = buf[pos++]!;
      value |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        return value >>> 0;
      }
    }
    this.pos = pos;
    this.skipVarintTail(this.pos - 5, end);
    return value >>> 0;
  }

  /** An int64/uint64 varint as a bigint (rare fields only; the hot path skips or copies them). */
  int64(end: number): bigint {
    const start = this.pos;
    this.skipVarint(end);
    let value = 0n;
    for (let i = this.pos - 1; i >= start; i--) value = (value << 7n) | BigInt(this.buf[i]! & 0x7f);
    return BigInt.asIntN(64, value);
  }

  skipVarint(end: number): void {
    const buf = this.buf;
    let pos = this.pos;
    const limit = Math.min(end, pos + MAX_VARINT_BYTES);
    while (pos < limit) {
      if (buf[pos++]! < 0x80) {
        this.pos = pos;
        return;
      }
    }
    if (limit === end) throw truncated('varint', this.pos, end);
    throw new ProtobufError(`varint longer than ${MAX_VARINT_BYTES} bytes at byte ${this.pos}`);
  }

  private skipVarintTail(start: number, end: number): void {
    const buf = this.buf;
    while (this.pos < end && this.pos - start < MAX_VARINT_BYTES) {
      if (buf[this.pos++]! < 0x80) return;
    }
    if (this.pos >= end) throw truncated('varint', start, end);
    throw new ProtobufError(`varint longer than ${MAX_VARINT_BYTES} bytes at byte ${start}`);
  }

  /** Reads a length prefix; returns the end of the bytes it covers (the cursor is at their start). */
  lenEnd(end: number): number {
    const at = this.pos;
    const length = this.uint32(end);
    const stop = this.pos + length;
    if (length > 0x7fffffff || stop > end) {
      throw new ProtobufError(`length ${length} at byte ${at} runs past the end of its message (byte ${end})`);
    }
    return stop;
  }

  /** Moves past one value of the wire type. */
  skip(wireType: number, end: number): void {
    switch (wireType) {
      case WireType.VARINT:
        this.skipVarint(end);
        return;
      case WireType.I64:
        this.advance(8, end);
        return;
      case WireType.LEN:
        this.pos = this.lenEnd(end);
        return;
      case WireType.I32:
        this.advance(4, end);
        return;
      default:
        throw new ProtobufError(`wire type ${wireType} at byte ${this.pos} is not supported (proto3 has no groups)`);
    }
  }

  advance(bytes: number, end: number): void {
    if (this.pos + bytes > end) throw truncated(`${bytes}-byte value`, this.pos, end);
    this.pos += bytes;
  }
}

function truncated(what: string, at: number, end: number): ProtobufError {
  return new ProtobufError(`truncated ${what} at byte ${at} (message ends at byte ${end})`);
}

/** The field's wire type must be `expected`; names the field in the error. */
export function expectWireType(key: number, expected: number, field: string, at: number): void {
  if ((key & 7) !== expected) {
    throw new ProtobufError(`${field} has wire type ${key & 7} at byte ${at}, expected ${expected}`);
  }
}

/** Number of varints in a packed repeated field's bytes (checks each one ends in range). */
export function countPackedVarints(buf: Buffer, start: number, end: number, field: string): number {
  let count = 0;
  let run = 0;
  for (let i = start; i < end; i++) {
    if (buf[i]! < 0x80) {
      count++;
      run = 0;
    } else if (++run >= MAX_VARINT_BYTES) {
      throw new ProtobufError(`${field}: varint longer than ${MAX_VARINT_BYTES} bytes at byte ${i}`);
    }
  }
  if (run > 0) throw new ProtobufError(`${field}: truncated packed varint at byte ${end}`);
  return count;
}

/** True when bytes [start, end) are valid UTF-8 (ASCII answered without leaving JS). */
export function isUtf8Range(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    if (buf[i]! >= 0x80) return isUtf8(buf.subarray(start, end));
  }
  return true;
}

/** Bytes of a varint holding n (0 <= n < 2^53). */
export function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let size = 5;
  n = Math.floor(n / 0x800000000);
  while (n > 0) {
    size++;
    n = Math.floor(n / 0x80);
  }
  return size;
}

/** Writes n (0 <= n < 2^53) as a varint at pos; returns the position after it. */
export function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = n >= 0x80000000 ? Math.floor(n / 0x80) : n >>> 7;
  }
  buf[pos++] = n;
  return pos;
}

/**
 * Where record keys and values are written: a run of chunks, each handed out as subarrays that
 * stay valid for as long as they are referenced. One arena per request; nothing is freed.
 */
export class ByteArena {
  private readonly chunkBytes: number;
  private chunk: Buffer = EMPTY;
  pos = 0;

  /** Chunks are allocated on first use (a request whose keys all come from the key cache needs none). */
  constructor(chunkBytes: number) {
    this.chunkBytes = chunkBytes;
  }

  /** Makes room for `bytes` at `pos`; returns the buffer to write into (its `pos` may reset to 0). */
  room(bytes: number): Buffer {
    if (this.pos + bytes > this.chunk.length) {
      this.chunk = Buffer.allocUnsafe(Math.max(this.chunkBytes, bytes));
      this.pos = 0;
    }
    return this.chunk;
  }

  /** The bytes written since `start` (in the current chunk), as a view; `pos` moves to `end`. */
  take(start: number, end: number): Buffer {
    this.pos = end;
    return this.chunk.subarray(start, end);
  }

  /** Keeps what was written up to `end` in the buffer room() returned, without a view of it; `pos` moves to `end`. */
  keep(end: number): void {
    this.pos = end;
  }
}
