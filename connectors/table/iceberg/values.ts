// Iceberg single values: the binary single-value serialization (table spec, "Appendix D:
// Single-value serialization"), used for column bounds in manifests and partition bounds in
// manifest lists, and the order of values used to compute those bounds.
//
//   int, date                 4 bytes little-endian
//   long, time, timestamp(tz) 8 bytes little-endian (micros for time and timestamps)
//   float / double            4 / 8 bytes little-endian IEEE 754
//   boolean                   0x00 false, 0x01 true
//   string                    UTF-8 bytes, no length
//   binary                    the bytes, no length

import type { IcebergPrimitive } from './types.ts';

/** A partition value or column bound as JS holds it: numbers for int/long/date/time/timestamps. */
export type SingleValue = number | string | boolean | Buffer;

export function toSingleValueBinary(type: IcebergPrimitive, value: SingleValue): Buffer {
  switch (type) {
    case 'int':
    case 'date': {
      const out = Buffer.allocUnsafe(4);
      out.writeInt32LE(asNumber(value, type));
      return out;
    }
    case 'long':
    case 'time':
    case 'timestamp':
    case 'timestamptz': {
      const out = Buffer.allocUnsafe(8);
      out.writeBigInt64LE(BigInt(asSafeInteger(value, type)));
      return out;
    }
    case 'float': {
      const out = Buffer.allocUnsafe(4);
      out.writeFloatLE(asNumber(value, type));
      return out;
    }
    case 'double': {
      const out = Buffer.allocUnsafe(8);
      out.writeDoubleLE(asNumber(value, type));
      return out;
    }
    case 'boolean':
      return Buffer.from([value === true ? 1 : 0]);
    case 'string':
      if (typeof value !== 'string') throw new TypeError(`string value expected, got ${typeof value}`);
      return Buffer.from(value, 'utf8');
    case 'binary':
      if (!Buffer.isBuffer(value)) throw new TypeError('binary value expected');
      return value;
    case 'uuid':
      throw new TypeError('uuid single values are not supported');
  }
}

export function fromSingleValueBinary(type: IcebergPrimitive, bytes: Buffer): SingleValue {
  switch (type) {
    case 'int':
    case 'date':
      return bytes.readInt32LE(0);
    case 'long':
    case 'time':
    case 'timestamp':
    case 'timestamptz':
      return Number(bytes.readBigInt64LE(0));
    case 'float':
      return bytes.readFloatLE(0);
    case 'double':
      return bytes.readDoubleLE(0);
    case 'boolean':
      return bytes[0] !== 0;
    case 'string':
      return bytes.toString('utf8');
    case 'binary':
      return bytes;
    case 'uuid':
      throw new TypeError('uuid single values are not supported');
  }
}

/**
 * Orders two non-null values of one type: numbers numerically, strings by UTF-8 bytes (= code
 * point order, as Iceberg compares them), booleans false < true, binary unsigned bytewise.
 */
export function compareValues(a: SingleValue, b: SingleValue): number {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'string' && typeof b === 'string') return compareUtf8(a, b);
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return Buffer.compare(a, b);
  throw new TypeError(`cannot compare ${typeof a} with ${typeof b}`);
}

// UTF-16 code unit order differs from code point order only for surrogates against U+E000..U+FFFF.
function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return a.length - b.length;
}

function rank(codeUnit: number): number {
  if (codeUnit >= 0xd800 && codeUnit <= 0xdfff) return codeUnit + 0x2000;
  if (codeUnit >= 0xe000) return codeUnit - 0x800;
  return codeUnit;
}

function asNumber(value: SingleValue, type: string): number {
  if (typeof value !== 'number') throw new TypeError(`${type} value expected, got ${typeof value}`);
  return value;
}

function asSafeInteger(value: SingleValue, type: string): number {
  const n = asNumber(value, type);
  if (!Number.isSafeInteger(n)) throw new RangeError(`${type} value ${n} is not a safe integer`);
  return n;
}
