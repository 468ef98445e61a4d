// Series identity: the record key text for the label sets that need care (quoting, escaping,
// labels sorting before __name__, non-ASCII), and finding repeated keys even when hashes collide.

import { describe, expect, it } from 'vitest';
import { ByteArena } from '../../../connectors/prometheus/protobuf.ts';
import { InvalidWriteError } from '../../../connectors/prometheus/decoded-write.ts';
import { KeyIndex, LabelRanges, SeriesKeyWriter } from '../../../connectors/prometheus/series-identity.ts';

/** Lays the labels out in one buffer and writes their key. */
function keyOf(pairs: [string | Buffer, string | Buffer][]): string {
  const parts: Buffer[] = [];
  const labels = new LabelRanges();
  let pos = 0;
  for (const [name, value] of pairs) {
    const n = Buffer.from(name);
    const v = Buffer.from(value);
    labels.push(pos, pos + n.length, pos + n.length, pos + n.length + v.length);
    parts.push(n, v);
    pos += n.length + v.length;
  }
  const key = new SeriesKeyWriter().write(new ByteArena(64), Buffer.concat(parts), labels, 0);
  return key.toString('utf8');
}

describe('series keys', () => {
  it('write __name__ first, the other labels in order, PromQL-escaped', () => {
    expect(keyOf([['Zone', 'a'], ['__name__', 'x'], ['z', 'tab\tquote"back\\slash\nnl']])).toBe('x{Zone="a",z="tab\tquote\\"back\\\\slash\\nnl"}');
    expect(keyOf([['__name__', 'only_name']])).toBe('only_name{}');
  });

  it('quote names outside the classic character sets', () => {
    expect(keyOf([['__name__', 'a.b"c'], ['job', 'j']])).toBe('{"a.b\\"c",job="j"}');
    expect(keyOf([['9lives', 'v'], ['__name__', 'ok:name'], ['dotted.name', 'w']])).toBe('ok:name{"9lives"="v","dotted.name"="w"}');
    expect(keyOf([['__name__', 'héllo'], ['ünït', 'wert']])).toBe('{"héllo","ünït"="wert"}');
  });

  it('refuse bytes that are not UTF-8', () => {
    expect(() => keyOf([['__name__', 'x'], ['job', Buffer.from([0x61, 0xc3])]])).toThrow(InvalidWriteError);
    expect(() => keyOf([['__name__', 'x'], ['job', Buffer.from([0x61, 0xc3])]])).toThrow(/label 1 is not valid UTF-8/);
  });

  it('are found again by KeyIndex, hash collisions included', () => {
    const index = new KeyIndex();
    const a = Buffer.from('a{}');
    const b = Buffer.from('b{}');
    expect(index.findOrAdd(a, 7, 0)).toBe(-1);
    expect(index.findOrAdd(b, 7, 1)).toBe(-1); // same hash, other key
    expect(index.findOrAdd(Buffer.from('a{}'), 7, 2)).toBe(0);
    expect(index.findOrAdd(Buffer.from('b{}'), 7, 3)).toBe(1);
    expect(index.findOrAdd(Buffer.from('c{}'), 8, 4)).toBe(-1);
  });
});
