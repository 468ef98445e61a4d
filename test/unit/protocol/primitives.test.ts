import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../../src/protocol/errors.ts';
import { Reader, REFERENCE_MIN_BYTES, Writer, ZERO_UUID } from '../../../src/protocol/primitives.ts';

function bytesOf(write: (w: Writer) => void): Buffer {
  const w = new Writer(8);
  write(w);
  return w.toBuffer();
}

describe('varints', () => {
  it('encode unsigned varints low 7 bits first, as in the Kafka spec', () => {
    expect(bytesOf((w) => w.uvarint(0))).toEqual(Buffer.from([0x00]));
    expect(bytesOf((w) => w.uvarint(1))).toEqual(Buffer.from([0x01]));
    expect(bytesOf((w) => w.uvarint(127))).toEqual(Buffer.from([0x7f]));
    expect(bytesOf((w) => w.uvarint(128))).toEqual(Buffer.from([0x80, 0x01]));
    expect(bytesOf((w) => w.uvarint(300))).toEqual(Buffer.from([0xac, 0x02]));
    expect(bytesOf((w) => w.uvarint(0xffffffff))).toEqual(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]));
  });

  it('zigzag-encode signed varints and varlongs', () => {
    expect(bytesOf((w) => w.varint(0))).toEqual(Buffer.from([0x00]));
    expect(bytesOf((w) => w.varint(-1))).toEqual(Buffer.from([0x01]));
    expect(bytesOf((w) => w.varint(1))).toEqual(Buffer.from([0x02]));
    expect(bytesOf((w) => w.varint(-64))).toEqual(Buffer.from([0x7f]));
    expect(bytesOf((w) => w.varint(64))).toEqual(Buffer.from([0x80, 0x01]));
    expect(bytesOf((w) => w.varlong(-1))).toEqual(Buffer.from([0x01]));
    expect(bytesOf((w) => w.varlongBig(-1n))).toEqual(Buffer.from([0x01]));
  });

  it('read back what they write, across the 32- and 53-bit ranges', () => {
    const ints = [0, 1, -1, 63, -64, 64, 2 ** 31 - 1, -(2 ** 31)];
    const longs = [0, -1, 1, 2 ** 40 + 5, -(2 ** 40) - 5, 2 ** 52 - 1, -(2 ** 52)];
    const bigs = [0n, -1n, 2n ** 63n - 1n, -(2n ** 63n)];
    const w = new Writer(4);
    for (const v of ints) w.varint(v);
    for (const v of longs) w.varlong(v);
    for (const v of bigs) w.varlongBig(v);
    const r = new Reader(w.toBuffer());
    for (const v of ints) expect(r.varint()).toBe(v);
    for (const v of longs) expect(r.varlong()).toBe(v);
    for (const v of bigs) expect(r.varlongBig()).toBe(v);
    expect(r.remaining).toBe(0);
  });

  it('reject a varint that does not end within 5 bytes', () => {
    const r = new Reader(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01]));
    expect(() => r.uvarint()).toThrow(ProtocolError);
  });
});

describe('fixed-width integers', () => {
  it('read int64 as an exact number for offsets and the -1 sentinel', () => {
    const w = new Writer();
    for (const v of [-1, 0, 1, 2 ** 53 - 1, -(2 ** 53) + 1, 1_700_000_000_000]) w.int64(v);
    const r = new Reader(w.toBuffer());
    expect(r.int64()).toBe(-1);
    expect(r.int64()).toBe(0);
    expect(r.int64()).toBe(1);
    expect(r.int64()).toBe(2 ** 53 - 1);
    expect(r.int64()).toBe(-(2 ** 53) + 1);
    expect(r.int64()).toBe(1_700_000_000_000);
  });

  it('write int64 -1 as eight 0xff bytes, and take bigints', () => {
    expect(bytesOf((w) => w.int64(-1))).toEqual(Buffer.alloc(8, 0xff));
    expect(bytesOf((w) => w.int64(2n ** 63n - 1n))).toEqual(Buffer.from('7fffffffffffffff', 'hex'));
    expect(new Reader(Buffer.from('7fffffffffffffff', 'hex')).int64Big()).toBe(2n ** 63n - 1n);
  });

  it('refuse to write an int64 that is not a safe integer', () => {
    expect(() => bytesOf((w) => w.int64(2 ** 60))).toThrow(ProtocolError);
  });
});

describe('strings, bytes and uuids', () => {
  it('write classic and compact strings, with null markers', () => {
    expect(bytesOf((w) => w.string('ab'))).toEqual(Buffer.from([0, 2, 0x61, 0x62]));
    expect(bytesOf((w) => w.nullableString(null))).toEqual(Buffer.from([0xff, 0xff]));
    expect(bytesOf((w) => w.compactString('ab'))).toEqual(Buffer.from([3, 0x61, 0x62]));
    expect(bytesOf((w) => w.compactNullableString(null))).toEqual(Buffer.from([0]));
    expect(bytesOf((w) => w.compactString(''))).toEqual(Buffer.from([1]));
  });

  it('count string lengths in UTF-8 bytes', () => {
    const b = bytesOf((w) => w.string('é'));
    expect(b).toEqual(Buffer.from([0, 2, 0xc3, 0xa9]));
    expect(new Reader(b).string()).toBe('é');
  });

  it('reject null where a field is not nullable', () => {
    expect(() => new Reader(Buffer.from([0xff, 0xff])).string()).toThrow(ProtocolError);
    expect(() => new Reader(Buffer.from([0])).compactString()).toThrow(ProtocolError);
    expect(() => new Reader(Buffer.from([0xff, 0xff, 0xff, 0xff])).bytes()).toThrow(ProtocolError);
  });

  it('decode bytes as a slice of the input, not a copy', () => {
    const input = Buffer.from([0, 0, 0, 3, 7, 8, 9, 0xaa]);
    const b = new Reader(input).bytes();
    expect(b).toEqual(Buffer.from([7, 8, 9]));
    input[4] = 1;
    expect(b[0]).toBe(1);
  });

  it('read and write uuids as 32 hex digits', () => {
    const id = '0123456789abcdef0123456789abcdef';
    const b = bytesOf((w) => w.uuid(id));
    expect(b).toEqual(Buffer.from(id, 'hex'));
    expect(new Reader(b).uuid()).toBe(id);
    expect(new Reader(Buffer.alloc(16)).uuid()).toBe(ZERO_UUID);
    expect(() => bytesOf((w) => w.uuid('not-a-uuid'))).toThrow(ProtocolError);
  });
});

describe('truncated input', () => {
  it('raises ProtocolError instead of reading past the end', () => {
    expect(() => new Reader(Buffer.alloc(3)).int32()).toThrow(ProtocolError);
    expect(() => new Reader(Buffer.from([0, 5, 0x61])).string()).toThrow(ProtocolError);
    expect(() => new Reader(Buffer.from([0, 0, 0, 9, 1])).bytes()).toThrow(ProtocolError);
    expect(() => new Reader(Buffer.from([0x80])).uvarint()).toThrow(ProtocolError);
  });

  it('respects the end of a sub-range of a larger buffer', () => {
    const r = new Reader(Buffer.from([0, 0, 0, 1, 0, 0, 0, 2]), 0, 6);
    expect(r.int32()).toBe(1);
    expect(() => r.int32()).toThrow(ProtocolError);
  });

  it('rejects an array count larger than the bytes left', () => {
    const r = new Reader(Buffer.from([0x7f, 0xff, 0xff, 0xff, 0, 0]));
    expect(() => r.arrayLength(4)).toThrow(ProtocolError);
  });
});

describe('tagged fields', () => {
  it('skip tags nobody asked for and hand known ones a bounded reader', () => {
    // two fields: tag 0 (2 bytes: int16 7), tag 5 (3 unknown bytes)
    const r = new Reader(Buffer.from([2, 0, 2, 0, 7, 5, 3, 1, 2, 3, 0x42]));
    const seen: number[] = [];
    r.taggedFields((tag, field) => {
      if (tag !== 0) return;
      seen.push(field.int16());
      expect(() => field.int8()).toThrow(ProtocolError);
    });
    expect(seen).toEqual([7]);
    expect(r.int8()).toBe(0x42);
  });
});

describe('Writer output', () => {
  it('passes large buffers through by reference and copies small ones', () => {
    const big = Buffer.alloc(REFERENCE_MIN_BYTES, 1);
    const small = Buffer.alloc(10, 2);
    const w = new Writer();
    w.int32(1);
    w.bytes(big);
    w.bytes(small);
    const chunks = w.finish();
    expect(chunks.some((c) => c === big)).toBe(true);
    expect(chunks.some((c) => c === small)).toBe(false);
    expect(Buffer.concat(chunks).length).toBe(4 + 4 + big.length + 4 + small.length);
  });

  it('grows past its first scratch buffer without losing bytes', () => {
    const w = new Writer(4);
    for (let i = 0; i < 10_000; i++) w.int32(i);
    const r = new Reader(w.toBuffer());
    for (let i = 0; i < 10_000; i++) expect(r.int32()).toBe(i);
  });

  it('fills a reserved slot after the fact (size prefixes)', () => {
    const w = new Writer(4);
    const slot = w.reserveInt32();
    for (let i = 0; i < 100; i++) w.int32(i);
    Writer.patchInt32(slot, w.length - 4);
    const out = w.toBuffer();
    expect(out.readInt32BE(0)).toBe(400);
  });

  it('writes several buffers as one bytes field', () => {
    const a = Buffer.alloc(2000, 1);
    const b = Buffer.from([9, 9]);
    const w = new Writer();
    w.bytesChunks([a, b], false);
    const chunks = w.finish();
    expect(chunks).toContain(a);
    const r = new Reader(Buffer.concat(chunks));
    expect(r.bytes()).toEqual(Buffer.concat([a, b]));
  });
});
