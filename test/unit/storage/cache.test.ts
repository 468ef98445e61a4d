import { describe, expect, it } from 'vitest';
import { LogCache } from '../../../src/storage/cache/log-cache.ts';

function batch(tag: number, length = 100): Buffer {
  return Buffer.alloc(length, tag);
}

describe('log cache', () => {
  it('serves whole batches from the one holding the start offset, bounded by bytes and end limit', () => {
    const cache = new LogCache({ capacityBytes: 1 << 20 });
    for (let i = 0; i < 10; i++) cache.append(1, i * 10, i * 10 + 10, batch(i));
    expect(cache.startOffset(1)).toBe(0);
    expect(cache.endOffset(1)).toBe(100);

    const read = cache.read(1, 35, 250, 100)!;
    expect(read.batches.map((b) => b[0])).toEqual([3, 4]);
    expect(read.nextOffset).toBe(50);
    // At least one batch even when it is larger than maxBytes.
    expect(cache.read(1, 0, 1, 100)!.batches).toHaveLength(1);
    // Never past the end limit (the stream's confirmed offset).
    expect(cache.read(1, 80, 10_000, 95)!.batches.map((b) => b[0])).toEqual([8]);
    expect(cache.read(1, 95, 10_000, 95)!.batches).toEqual([]);
    // Offsets the cache does not hold.
    expect(cache.read(1, 100, 10_000, 100)).toBeUndefined();
    expect(cache.read(2, 0, 10_000, 100)).toBeUndefined();
  });

  it('keeps unuploaded batches past its capacity and evicts uploaded ones oldest first', () => {
    const cache = new LogCache({ capacityBytes: 500 });
    for (let i = 0; i < 4; i++) {
      cache.append(1, i, i + 1, batch(i));
      cache.append(2, i, i + 1, batch(10 + i));
    }
    expect(cache.sizeBytes()).toBe(800);
    expect(cache.unuploadedBytes()).toBe(800);
    expect(cache.startOffset(1)).toBe(0);

    // Upload stream 2 only: its batches go, oldest first, down to the capacity.
    cache.markUploaded(2, 4);
    expect(cache.unuploadedBytes()).toBe(400);
    // Stream 1's first batch is at the front of the FIFO and still unuploaded: nothing moves.
    expect(cache.sizeBytes()).toBe(800);

    cache.markUploaded(1, 2);
    // Now the FIFO drains 1@0, 2@0, 1@1: back within capacity.
    expect(cache.sizeBytes()).toBe(500);
    expect(cache.startOffset(1)).toBe(2);
    expect(cache.startOffset(2)).toBe(1);
    expect(cache.read(1, 2, 1000, 4)!.batches.map((b) => b[0])).toEqual([2, 3]);
  });

  it('hands out the unuploaded batches that are durable, and marks them uploaded', () => {
    const cache = new LogCache();
    cache.append(7, 0, 5, batch(1));
    cache.append(7, 5, 9, batch(2));
    cache.append(7, 9, 12, batch(3));
    expect(cache.dirtyStreamIds()).toEqual([7]);
    const range = cache.unuploaded(7, 9)!;
    expect(range).toMatchObject({ streamId: 7, startOffset: 0, endOffset: 9, baseOffsets: [0, 5], endOffsets: [5, 9], sizeBytes: 200 });
    cache.markUploaded(7, 9);
    expect(cache.unuploadedBytes()).toBe(100);
    expect(cache.unuploaded(7, 100)).toMatchObject({ startOffset: 9, endOffset: 12 });
    cache.markUploaded(7, 12);
    expect(cache.dirtyStreamIds()).toEqual([]);
    expect(cache.unuploaded(7, 100)).toBeUndefined();
  });

  it('rejects a batch that does not continue the stream', () => {
    const cache = new LogCache();
    cache.append(1, 0, 5, batch(1));
    expect(() => cache.append(1, 6, 7, batch(2))).toThrow();
  });

  it('forgets a dropped stream, unuploaded bytes included', () => {
    const cache = new LogCache({ capacityBytes: 250 });
    cache.append(1, 0, 1, batch(1));
    cache.append(2, 0, 1, batch(2));
    cache.append(1, 1, 2, batch(3));
    cache.dropStream(1);
    expect(cache.sizeBytes()).toBe(100);
    expect(cache.unuploadedBytes()).toBe(100);
    expect(cache.read(1, 0, 100, 10)).toBeUndefined();
    // A later append starts the stream afresh; eviction skips the dropped references.
    cache.append(1, 40, 41, batch(4));
    cache.markUploaded(2, 1);
    cache.markUploaded(1, 41);
    cache.append(3, 0, 1, batch(5));
    cache.append(3, 1, 2, batch(6));
    expect(cache.sizeBytes()).toBeLessThanOrEqual(250);
    expect(cache.startOffset(2)).toBeUndefined();
    expect(cache.read(3, 0, 1000, 2)!.batches).toHaveLength(2);
  });
});
