import { describe, expect, it } from 'vitest';
import { BlockCache, blockKey, BlockLease, ObjectIndexCache } from '../../../src/storage/cache/block-cache.ts';
import type { ReadAheadOwner } from '../../../src/storage/cache/block-cache.ts';
import { DataObjectReader, DataObjectWriter } from '../../../src/storage/objects/format.ts';
import type { ObjectBody, ObjectInfo, ObjectStore } from '../../../src/storage/objectstore/objectstore.ts';

function block(sizeBytes: number, fill: number): Buffer {
  return Buffer.alloc(sizeBytes, fill);
}

/** Resolvable from outside: a GET that has not answered yet. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (err: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('block cache', () => {
  it('never holds more bytes than its bound, evicting the least recently used first', () => {
    const cache = new BlockCache({ capacityBytes: 1000 });
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 2000; i++) {
      const key = blockKey('objects/1', random(50));
      if (random(3) === 0) cache.get(key);
      else cache.insert(key, block(1 + random(400), i & 0xff));
      expect(cache.sizeBytes()).toBeLessThanOrEqual(1000);
    }
    expect(cache.stats().evictions).toBeGreaterThan(0);

    const lru = new BlockCache({ capacityBytes: 300 });
    lru.insert('a', block(100, 1));
    lru.insert('b', block(100, 2));
    lru.insert('c', block(100, 3));
    lru.get('a'); // b is now the least recently used
    lru.insert('d', block(100, 4));
    expect([lru.has('a'), lru.has('b'), lru.has('c'), lru.has('d')]).toEqual([true, false, true, true]);
  });

  it('does not cache a block larger than the whole cache, and stores slices as buffers of their own', () => {
    const cache = new BlockCache({ capacityBytes: 100 });
    expect(cache.insert('big', block(101, 1)).length).toBe(101);
    expect(cache.has('big')).toBe(false);
    const span = block(200, 9);
    const stored = cache.insert('slice', span.subarray(50, 100));
    expect(stored.buffer.byteLength).toBe(50);
    expect(stored.equals(span.subarray(50, 100))).toBe(true);
  });

  it('shares one fetch between concurrent loads of a block (single flight)', async () => {
    const cache = new BlockCache({ capacityBytes: 10_000 });
    const get = deferred<Buffer[]>();
    let fetches = 0;
    const [first, second] = cache.load(['k1', 'k2'], () => {
      fetches++;
      return get.promise;
    }, [undefined, undefined]);
    const lease = new BlockLease(cache);
    expect(cache.waitFor('k1', lease)).toBe(first);
    expect(cache.isPresent('k2')).toBe(true);
    const secondReader = cache.waitFor('k2', lease)!; // a second reader of k2 waits for the same GET
    expect(secondReader).toBe(second);
    expect(() => cache.load(['k2'], async () => [block(1, 1)], [undefined])).toThrow(/already/);
    get.resolve([block(10, 1), block(20, 2)]);
    expect((await first!).length).toBe(10);
    expect((await secondReader).length).toBe(20);
    expect(fetches).toBe(1);
    expect(cache.waitFor('k1', lease)).toBeUndefined();
    expect(cache.get('k1')!.length).toBe(10);
  });

  it('frees an evicted block at once unless a read pins it, and then on its release', () => {
    const cache = new BlockCache({ capacityBytes: 250 });
    const a = cache.insert('a', block(100, 1));
    const b = cache.insert('b', block(100, 2));
    const lease = new BlockLease(cache);
    expect(cache.get('b', lease)).toBe(b);
    cache.insert('c', block(100, 3)); // evicts a: nobody reads it
    expect(cache.has('a')).toBe(false);
    expect(a.length).toBe(0); // freed (detached), not left for the GC
    cache.insert('d', block(100, 4)); // evicts b: pinned by the read
    expect(cache.has('b')).toBe(false);
    expect(cache.sizeBytes()).toBe(200);
    expect(b.length).toBe(100);
    expect(b.every((byte) => byte === 2)).toBe(true);
    lease.release();
    expect(b.length).toBe(0);
    lease.release(); // a second release does nothing
    expect(cache.get('c')!.every((byte) => byte === 3)).toBe(true);
  });

  it('pins a block for the reads waiting for its load, even when evicted before they resume', async () => {
    const cache = new BlockCache({ capacityBytes: 150 });
    const get = deferred<Buffer[]>();
    cache.load(['k1', 'k2'], () => get.promise, [undefined, undefined]);
    const waiting = new BlockLease(cache);
    const gaveUp = new BlockLease(cache);
    const k1 = cache.waitFor('k1', waiting)!;
    cache.waitFor('k2', gaveUp);
    gaveUp.release(); // that read failed before the block came
    get.resolve([block(100, 7), block(100, 8)]); // caching k2 evicts k1 at once
    const bytes = await k1;
    expect(cache.has('k1')).toBe(false);
    expect(bytes.length).toBe(100);
    expect(bytes.every((byte) => byte === 7)).toBe(true);
    waiting.release();
    expect(bytes.length).toBe(0);
    const k2 = cache.get('k2')!;
    cache.insert('k3', block(100, 9));
    expect(k2.length).toBe(0); // nobody pins k2: the released lease did not keep it
  });

  it('forgets a failed load: every waiter sees the error and the next read loads again', async () => {
    const cache = new BlockCache({ capacityBytes: 10_000 });
    const [failed] = cache.load(['k'], () => Promise.reject(new Error('503 SlowDown')), [undefined]);
    await expect(failed).rejects.toThrow(/SlowDown/);
    expect(cache.isPresent('k')).toBe(false);
    const [again] = cache.load(['k'], async () => [block(5, 5)], [undefined]);
    expect((await again!).length).toBe(5);
  });

  it('tells the owner of a read-ahead block evicted unread, and nobody once the block was read', () => {
    const cache = new BlockCache({ capacityBytes: 200 });
    const evicted: number[] = [];
    const owner: ReadAheadOwner = { onEvictedUnread: (sizeBytes) => evicted.push(sizeBytes) };
    cache.insert('read', block(100, 1), owner);
    cache.insert('unread', block(90, 2), owner);
    cache.get('read'); // read: no longer the owner's business (and now the most recently used)
    cache.insert('new', block(100, 3));
    expect(cache.has('unread')).toBe(false);
    expect(evicted).toEqual([90]);
    cache.insert('newer', block(150, 4));
    expect(cache.has('read')).toBe(false);
    expect(evicted).toEqual([90]);
    expect(cache.stats().evictedUnread).toBe(1);
  });
});

/** A store holding one object in memory, counting GETs. */
class OneObjectStore implements ObjectStore {
  gets = 0;
  private readonly objects = new Map<string, Buffer>();

  async put(key: string, body: ObjectBody): Promise<void> {
    this.objects.set(key, Buffer.isBuffer(body) ? body : Buffer.concat(body as Buffer[]));
  }

  async get(key: string, range?: { start: number; endExclusive: number }): Promise<Buffer> {
    this.gets++;
    await new Promise((resolve) => setTimeout(resolve, 1));
    const body = this.objects.get(key)!;
    return range === undefined ? body : body.subarray(range.start, range.endExclusive);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const body = this.objects.get(key);
    return body === undefined ? undefined : { key, sizeBytes: body.length };
  }

  async list(): Promise<ObjectInfo[]> {
    return [];
  }

  async delete(): Promise<void> {}

  async close(): Promise<void> {}
}

function batch(baseOffset: number, sizeBytes: number): Buffer {
  const b = Buffer.alloc(sizeBytes, 3);
  b.writeBigInt64BE(BigInt(baseOffset), 0);
  b.writeInt32BE(sizeBytes - 12, 8);
  b.writeInt8(2, 16);
  b.writeInt32BE(0, 23);
  return b;
}

describe('object index cache', () => {
  it('opens an object once for concurrent readers and stays within its bounds', async () => {
    const store = new OneObjectStore();
    const keys: string[] = [];
    let sizeBytes = 0;
    for (let o = 0; o < 5; o++) {
      const writer = new DataObjectWriter({ blockSizeBytes: 200 });
      for (let i = 0; i < 10; i++) writer.add(1, i, 1, batch(i, 100));
      const finished = writer.finish();
      keys.push(`objects/${o}`);
      sizeBytes = finished.sizeBytes;
      await store.put(`objects/${o}`, finished.chunks);
    }
    const open = (key: string) => (): Promise<DataObjectReader> => DataObjectReader.open(store, key, sizeBytes);
    const probe = await DataObjectReader.open(store, keys[0]!, sizeBytes);
    store.gets = 0;

    const cache = new ObjectIndexCache({ capacityBytes: 3 * probe.memoryBytes, maxObjects: 10 });
    const [a, b] = await Promise.all([cache.open(keys[0]!, open(keys[0]!)), cache.open(keys[0]!, open(keys[0]!))]);
    expect(a).toBe(b);
    expect(store.gets).toBe(1);
    for (const key of keys) await cache.open(key, open(key));
    expect(cache.objectCount()).toBe(3);
    expect(cache.sizeBytes()).toBeLessThanOrEqual(3 * probe.memoryBytes);
    expect(cache.peek(keys[0]!)).toBeUndefined(); // the least recently used went first
    expect(cache.peek(keys[4]!)).toBeDefined();

    const byCount = new ObjectIndexCache({ maxObjects: 2 });
    for (const key of keys) await byCount.open(key, open(key));
    expect(byCount.objectCount()).toBe(2);
  });
});
