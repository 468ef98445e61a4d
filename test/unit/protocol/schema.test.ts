import { describe, expect, it } from 'vitest';
import { ErrorCode, ProtocolError } from '../../../src/protocol/errors.ts';
import { Reader, Writer } from '../../../src/protocol/primitives.ts';
import { compileMessage, parseVersions, type MessageSpec } from '../../../src/protocol/schema.ts';

const toy: MessageSpec = {
  name: 'ToyRequest',
  apiKey: 1000,
  type: 'request',
  validVersions: '0-3',
  flexibleVersions: '2+',
  fields: [
    { name: 'id', type: 'int32', versions: '0+' },
    { name: 'label', type: 'string', versions: '1+', nullableVersions: '2+', default: 'none' },
    { name: 'items', type: '[]Item', versions: '0+', fields: [
      { name: 'n', type: 'int16', versions: '0+' },
      { name: 'note', type: 'string', versions: '3+', default: '' },
    ] },
    { name: 'ids', type: '[]int64', versions: '0+', nullableVersions: '1+' },
    { name: 'hint', type: 'int32', versions: '2+', taggedVersions: '2+', tag: 3, default: -1 },
    { name: 'extra', type: 'Extra', versions: '2+', taggedVersions: '2+', tag: 1, fields: [
      { name: 'a', type: 'int32', versions: '2+', default: -1 },
    ] },
    { name: 'records', type: 'records', versions: '0+', nullableVersions: '0+' },
  ],
};
const codec = compileMessage(toy);

function encode(version: number, value: Record<string, unknown>): Buffer {
  const w = new Writer(16);
  codec.encode(version, w, value);
  return w.toBuffer();
}

function decode(version: number, bytes: Buffer): Record<string, unknown> {
  return codec.decode(version, new Reader(bytes));
}

describe('version ranges', () => {
  it('parse the forms used in Kafka message definitions', () => {
    expect(parseVersions('0+')).toEqual({ min: 0, max: Infinity });
    expect(parseVersions('3-7')).toEqual({ min: 3, max: 7 });
    expect(parseVersions('5')).toEqual({ min: 5, max: 5 });
    expect(parseVersions('none').max).toBeLessThan(parseVersions('none').min);
    expect(() => parseVersions('x')).toThrow();
  });
});

describe('a compiled message', () => {
  it('leaves fields out of versions that lack them and decodes them as defaults', () => {
    const bytes = encode(0, { id: 7, label: 'dropped', items: [{ n: 1, note: 'dropped' }], ids: [5], records: null });
    // v0: int32 id, array(1){int16}, array(1){int64}, records null
    expect(bytes).toEqual(Buffer.from([0, 0, 0, 7, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff]));
    expect(decode(0, bytes)).toEqual({ id: 7, label: 'none', items: [{ n: 1, note: '' }], ids: [5], hint: -1, extra: { a: -1 }, records: null });
  });

  it('uses compact types and tagged-field sections in flexible versions', () => {
    const bytes = encode(2, { id: 1, label: null, items: [], ids: null, records: Buffer.from([9]) });
    expect(bytes).toEqual(Buffer.from([
      0, 0, 0, 1, // id
      0, // label: compact null
      1, // items: compact empty
      0, // ids: compact null
      2, 9, // records: compact bytes of 1
      0, // tagged fields: none (all defaults)
    ]));
  });

  it('writes non-default tagged fields in ascending tag order and reads them back', () => {
    const bytes = encode(2, { id: 1, label: 'x', items: [], ids: [], hint: 42, extra: { a: 5 }, records: null });
    const tail = bytes.subarray(bytes.length - 14);
    expect(tail).toEqual(Buffer.from([
      2, // two tagged fields
      1, 5, 0, 0, 0, 5, 0, // tag 1 (extra): 5 bytes = int32 a, then its own empty tagged section
      3, 4, 0, 0, 0, 42, // tag 3 (hint): 4 bytes = int32
    ]));
    const back = decode(2, bytes);
    expect(back.hint).toBe(42);
    expect(back.extra).toEqual({ a: 5 });
  });

  it('skips unknown tags when decoding', () => {
    const bytes = encode(2, { id: 1, label: 'x', items: [], ids: [], records: null });
    const withUnknown = Buffer.concat([bytes.subarray(0, bytes.length - 1), Buffer.from([1, 9, 2, 0xaa, 0xbb])]);
    expect(decode(2, withUnknown).id).toBe(1);
  });

  it('writes undefined fields as their defaults and null in non-nullable versions as the non-null default', () => {
    const a = decode(1, encode(1, { id: 3, label: null, ids: null }));
    expect(a).toMatchObject({ id: 3, label: 'none', items: [], ids: null });
    const b = decode(0, encode(0, { id: 3, ids: null }));
    expect(b.ids).toEqual([]);
  });

  it('sends a list of record buffers as one bytes field without joining them', () => {
    const batchA = Buffer.alloc(3000, 1);
    const batchB = Buffer.alloc(1500, 2);
    const w = new Writer();
    codec.encode(3, w, { id: 1, records: [batchA, batchB] });
    const chunks = w.finish();
    expect(chunks).toContain(batchA);
    expect(chunks).toContain(batchB);
    const back = decode(3, Buffer.concat(chunks));
    expect(back.records).toEqual(Buffer.concat([batchA, batchB]));
  });

  it('reports versions outside validVersions as UNSUPPORTED_VERSION', () => {
    expect(codec.supports(3)).toBe(true);
    expect(codec.supports(4)).toBe(false);
    expect(codec.isFlexible(4)).toBe(true);
    let caught: unknown;
    try {
      decode(4, Buffer.alloc(10));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ProtocolError);
    expect((caught as ProtocolError).errorCode).toBe(ErrorCode.UNSUPPORTED_VERSION);
  });

  it('names the message and version in decode errors', () => {
    expect(() => decode(1, Buffer.from([0, 0, 0, 1, 0]))).toThrow(/ToyRequest v1: truncated/);
  });

  it('rejects malformed specs when compiled', () => {
    expect(() =>
      compileMessage({ ...toy, fields: [{ name: 'x', type: '[]Thing', versions: '0+' }] }),
    ).toThrow(/needs fields/);
    expect(() =>
      compileMessage({ ...toy, fields: [{ name: 'x', type: 'int8', versions: '0+', tag: 1 }] }),
    ).toThrow(/taggedVersions/);
  });
});
