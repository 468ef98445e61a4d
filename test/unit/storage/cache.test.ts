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

    // Upload stream 1 up to offset 2: the FIFO drains 1@0; 2@0 is next and unuploaded, so
    // eviction takes stream 1's uploaded 1@1 behind it.
    cache.markUploaded(1, 2);
    expect(cache.sizeBytes()).toBe(600);
    expect(cache.startOffset(1)).toBe(2);
    expect(cache.startOffset(2)).toBe(0);

    // Stream 2's first batch heads the FIFO and is unuploaded: the cache is full of unuploaded
    // data (600 > 500) and keeps it all.
    expect(cache.unuploadedBytes()).toBe(600);
    cache.markUploaded(2, 4);
    // Now 2@0 goes, back within capacity.
    expect(cache.sizeBytes()).toBe(500);
    expect(cache.startOffset(2)).toBe(1);
    expect(cache.read(1, 2, 1000, 4)!.batches.map((b) => b[0])).toEqual([2, 3]);
    expect(cache.read(2, 1, 1000, 4)!.batches.map((b) => b[0])).toEqual([11, 12, 13]);
  });

  it('evicts uploaded batches behind an unuploaded one, and keeps FIFO order afterwards', () => {
    const cache = new LogCache({ capacityBytes: 500 });
    for (let i = 0; i < 4; i++) {
      cache.append(1, i, i + 1, batch(i));
      cache.append(2, i, i + 1, batch(10 + i));
    }
    // Stream 2's upload commits first; stream 1's oldest batch heads the FIFO, unuploaded. The
    // cache still gets back within capacity by evicting stream 2's oldest batches.
    cache.markUploaded(2, 4);
    expect(cache.sizeBytes()).toBe(500);
    expect(cache.startOffset(1)).toBe(0);
    expect(cache.startOffset(2)).toBe(3);
    expect(cache.read(2, 3, 1000, 4)!.batches.map((b) => b[0])).toEqual([13]);

    // Later appends and uploads evict in append order again, skipping what went early.
    cache.markUploaded(1, 4);
    for (let i = 4; i < 6; i++) cache.append(2, i, i + 1, batch(10 + i));
    // 700 bytes: 1@0 and 1@1 (the oldest still cached) go.
    expect(cache.sizeBytes()).toBe(500);
    expect(cache.startOffset(1)).toBe(2);
    expect(cache.startOffset(2)).toBe(3);
    cache.markUploaded(2, 6);
    for (let i = 4; i < 8; i++) cache.append(1, i, i + 1, batch(i));
    // Next in the FIFO: 1@2, 1@3, then 2@3 (its skipped references pass first), then 2@4.
    expect(cache.sizeBytes()).toBe(500);
    expect(cache.startOffset(1)).toBe(4);
    expect(cache.startOffset(2)).toBe(5);
    cache.markUploaded(1, 8);
    for (let i = 6; i < 11; i++) cache.append(2, i, i + 1, batch(10 + i));
    expect(cache.sizeBytes()).toBeLessThanOrEqual(500);
    expect(cache.read(2, 6, 10_000, 11)!.batches.map((b) => b[0])).toEqual([16, 17, 18, 19, 20]);
    expect(cache.startOffset(1)).toBeUndefined();
  });

  it('stays within capacity and serves exactly the batches it holds, under random appends, uploads and drops', () => {
    let seed = 12345;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const capacity = 5_000;
    const cache = new LogCache({ capacityBytes: capacity });
    const next = new Map<number, number>(); // stream -> next offset
    const uploaded = new Map<number, number>(); // stream -> uploaded end
    for (let op = 0; op < 5_000; op++) {
      const stream = random(6);
      const choice = random(100);
      if (choice < 70) {
        const base = next.get(stream) ?? 0;
        cache.append(stream, base, base + 1, batch((stream * 31 + base) & 0xff, 50 + random(400)));
        next.set(stream, base + 1);
      } else if (choice < 98) {
        const end = next.get(stream) ?? 0;
        const from = uploaded.get(stream) ?? 0;
        const to = from + random(end - from + 1);
        cache.markUploaded(stream, to);
        uploaded.set(stream, to);
      } else {
        cache.dropStream(stream);
        next.delete(stream);
        uploaded.delete(stream);
      }
      if (cache.unuploadedBytes() <= capacity) expect(cache.sizeBytes()).toBeLessThanOrEqual(capacity);
      // Each stream holds a contiguous run of its latest batches, unuploaded ones all kept.
      let total = 0;
      for (const [id, end] of next) {
        const start = cache.startOffset(id);
        if (start === undefined) {
          expect(uploaded.get(id) ?? 0).toBe(end);
          continue;
        }
        expect(start).toBeLessThanOrEqual(uploaded.get(id) ?? 0);
        const read = cache.read(id, start, Number.MAX_SAFE_INTEGER, end)!;
        expect(read.nextOffset).toBe(end);
        read.batches.forEach((b, i) => expect(b[0]).toBe((id * 31 + start + i) & 0xff));
        total += read.batches.reduce((n, b) => n + b.length, 0);
      }
      expect(total).toBe(cache.sizeBytes());
    }
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

describe('log cache memory (slabs)', () => {
  const KiB = 1024;

  /** A batch whose every byte depends on its stream and offset, so overwritten memory shows. */
  function stamped(streamId: number, offset: number, length: number): Buffer {
    const b = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) b[i] = (streamId * 31 + offset * 7 + i) & 0xff;
    return b;
  }

  /** Appends one uploaded batch per stream in turn, reading and releasing each, n rounds. */
  function churn(cache: LogCache, streams: number, from: number, rounds: number, length: number): void {
    for (let offset = from; offset < from + rounds; offset++) {
      for (let s = 1; s <= streams; s++) {
        cache.append(s, offset, offset + 1, stamped(s, offset, length));
        cache.markUploaded(s, offset + 1);
        const read = cache.read(s, offset, length, offset + 1)!;
        expect(read.batches[0]!.equals(stamped(s, offset, length))).toBe(true);
        read.lease.release();
      }
    }
  }

  it('keeps a copy: the appender may reuse its buffer at once', () => {
    const cache = new LogCache({ capacityBytes: 1 << 20 });
    const source = stamped(1, 0, 500);
    cache.append(1, 0, 1, source);
    source.fill(0);
    expect(cache.read(1, 0, 1000, 1)!.batches[0]!.equals(stamped(1, 0, 500))).toBe(true);
  });

  it('reuses its slabs: memory stays bounded while many times its capacity passes through', () => {
    const capacity = 1 << 20;
    const cache = new LogCache({ capacityBytes: capacity });
    const allocatedAtStart = cache.memoryBytes();
    expect(allocatedAtStart).toBeGreaterThanOrEqual(capacity);
    churn(cache, 3, 0, 700, 10 * KiB); // 21 MiB through a 1 MiB cache
    const afterFirstPass = cache.memoryBytes();
    expect(cache.sizeBytes()).toBeLessThanOrEqual(capacity);
    // Slab tails (a 10 KiB batch that does not fit starts a new slab) and the slab being filled.
    expect(afterFirstPass).toBeLessThanOrEqual(capacity * 1.25 + 2 * 64 * KiB);
    churn(cache, 3, 700, 700, 10 * KiB);
    expect(cache.memoryBytes()).toBe(afterFirstPass);
  });

  it('never reuses memory a read still holds, and gives back what it took meanwhile once released', () => {
    const capacity = 256 * KiB;
    const slabBytes = 64 * KiB; // a 256 KiB cache's slabs
    const cache = new LogCache({ capacityBytes: capacity });
    // 16 KiB batches, four to a slab: every fourth read is held, one per slab.
    const held: Array<{ offset: number; view: Buffer; lease: { release(): void } }> = [];
    for (let offset = 0; offset < 128; offset++) {
      cache.append(1, offset, offset + 1, stamped(1, offset, 16 * KiB));
      cache.markUploaded(1, offset + 1);
      const read = cache.read(1, offset, 16 * KiB, offset + 1)!;
      if (offset % 4 === 0 && held.length < 8) held.push({ offset, view: read.batches[0]!, lease: read.lease });
      else read.lease.release();
    }
    expect(cache.startOffset(1)).toBeGreaterThan(held.at(-1)!.offset); // all evicted
    for (const h of held) expect(h.view.equals(stamped(1, h.offset, 16 * KiB))).toBe(true);
    // The held slabs could not be reused: new ones were allocated beside them.
    expect(cache.memoryBytes()).toBeGreaterThanOrEqual(capacity + held.length * slabBytes);

    for (const h of held) h.lease.release();
    churn(cache, 1, 128, 64, 16 * KiB);
    expect(cache.memoryBytes()).toBeLessThanOrEqual(capacity * 1.25 + 2 * slabBytes);
  });

  it('does not reuse the memory of a dropped stream\'s unuploaded batches, which an upload may be reading', () => {
    const cache = new LogCache({ capacityBytes: 256 * KiB });
    for (let offset = 0; offset < 4; offset++) cache.append(9, offset, offset + 1, stamped(9, offset, 4 * KiB));
    const uploading = cache.unuploaded(9, 4)!; // what an upload round takes
    cache.dropStream(9); // fenced while the upload is in flight
    churn(cache, 2, 0, 400, 4 * KiB);
    uploading.batches.forEach((b, i) => expect(b.equals(stamped(9, i, 4 * KiB))).toBe(true));
  });

  it('does not reuse the memory of batches an abandoned PUT attempt may still read', () => {
    const cache = new LogCache({ capacityBytes: 256 * KiB });
    for (let offset = 0; offset < 4; offset++) cache.append(9, offset, offset + 1, stamped(9, offset, 4 * KiB));
    const uploaded = cache.unuploaded(9, 4)!; // the PUT's body
    cache.markUploaded(9, 4, true); // committed, but an abandoned attempt may still be running
    churn(cache, 2, 0, 400, 4 * KiB);
    expect(cache.startOffset(9)).toBeUndefined(); // evicted long ago
    uploaded.batches.forEach((b, i) => expect(b.equals(stamped(9, i, 4 * KiB))).toBe(true));
  });

  it('gives a large batch memory of its own and frees it once evicted and released', () => {
    const cache = new LogCache({ capacityBytes: 1 << 20 });
    const before = cache.memoryBytes();
    const large = stamped(1, 0, 300 * KiB); // more than a quarter of a 64 KiB slab
    cache.append(1, 0, 1, large);
    expect(cache.memoryBytes()).toBe(before + large.length);
    cache.markUploaded(1, 1);
    const read = cache.read(1, 0, large.length, 1)!;
    expect(read.batches[0]!.equals(large)).toBe(true);
    churn(cache, 1, 1, 200, 8 * KiB); // evicts it
    expect(cache.startOffset(1)).toBeGreaterThan(0);
    expect(cache.memoryBytes()).toBeGreaterThanOrEqual(before + large.length); // still read
    read.lease.release();
    expect(cache.memoryBytes()).toBeLessThan(before + large.length);
  });
});
