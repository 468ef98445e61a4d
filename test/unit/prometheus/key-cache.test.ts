// The series key cache: exact hits only, bounded, dropped whole between requests once full.

import { describe, expect, it } from 'vitest';
import { SeriesKeyCache, labelsHash } from '../../../connectors/prometheus/key-cache.ts';

function view(bytes: Buffer): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
}

describe('the series key cache', () => {
  it('finds a label set by its exact bytes, not by its hash alone', () => {
    const cache = new SeriesKeyCache(16, 1 << 20);
    const a = Buffer.from('xx labels-of-a yy');
    const entry = cache.add(a, 3, 14, 5, Buffer.from('a{}'), 99);
    expect(entry).toBeGreaterThanOrEqual(0);
    expect(cache.key(entry).toString()).toBe('a{}');
    expect(cache.keyHashOf(entry)).toBe(99);
    const probe = Buffer.from('labels-of-a');
    expect(cache.find(view(probe), 0, probe.length, 5)).toBe(entry);
    const other = Buffer.from('labels-of-b');
    expect(cache.find(view(other), 0, other.length, 5), 'same hash, other bytes').toBe(-1);
    expect(cache.find(view(probe), 0, probe.length - 1, 5), 'same hash, shorter').toBe(-1);
    expect(labelsHash(view(probe), 0, probe.length)).toBe(labelsHash(view(a), 3, 14));
  });

  it('stops adding when full and is dropped before the next request', () => {
    const cache = new SeriesKeyCache(2, 1 << 30);
    const bytes = Buffer.from('aaaabbbbcccc');
    expect(cache.add(bytes, 0, 4, 1, Buffer.from('a{}'), 1)).toBe(0);
    expect(cache.add(bytes, 4, 8, 2, Buffer.from('b{}'), 2)).toBe(1);
    expect(cache.add(bytes, 8, 12, 3, Buffer.from('c{}'), 3)).toBe(-1);
    expect(cache.find(view(bytes), 0, 4, 1), 'kept until the request ends').toBe(0);
    cache.beginRequest();
    expect(cache.resets).toBe(1);
    expect(cache.find(view(bytes), 0, 4, 1)).toBe(-1);
    expect(cache.add(bytes, 8, 12, 3, Buffer.from('c{}'), 3)).toBe(0);
  });
});
