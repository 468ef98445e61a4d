// The block cache: data blocks of objects in memory, least recently used evicted first, bounded
// in bytes; beside it, and bounded on its own, the parsed indexes (footer + index block) of the
// objects opened for reading. Catch-up reads (log-cache misses) go through both; see
// read-ahead.ts for who fills them and when.
//
// A data block is keyed by (object key, block index): object keys are never reused (a compacted
// object gets a new id), so a cached block never goes stale; blocks of deleted objects age out.
//
// Single flight: load() registers a promise per block before its GET starts, so a second reader
// of a block being loaded waits for that GET instead of issuing its own. One load may cover a
// run of adjacent blocks (one ranged GET); each block gets its own promise.
//
// Read-ahead: a block loaded ahead of a reader carries its owner until someone reads it. Evicted
// unread, it tells the owner (onEvictedUnread), which drops its read-ahead window: the cache is
// too small for that much read-ahead.
//
// Memory: every cached block is its own buffer. A block cut out of a larger GET (a run of blocks,
// or a whole object read with its index) is copied, so that evicting it frees its bytes; a slice
// would pin the whole run. Batches handed to readers are slices of cached blocks (not copied),
// and a read pins its blocks (BlockLease, released once the batches are written). An evicted
// block is freed at once (transfer(0)) when no read pins it, else on the last release; a lease
// never released leaves its blocks to the GC. Why free them: V8 starts a mark-compact each time
// the memory held by Buffers has grown by 64 MB since the last one (see slabs.ts); blocks left
// to the GC made a catch-up read at 300 MiB/s cost the broker about one mark-compact a second,
// paid by the produce requests next to it, and held up to 64 MB of dead blocks in RSS.

import { Counter, Gauge, register } from 'prom-client';
import type { DataObjectReader } from '../objects/format.ts';
import { freeIfOwned, ownsBuffer } from '../buffers.ts';
import { PinLease } from '../stream.ts';

export const DEFAULT_BLOCK_CACHE_SIZE_BYTES = 256 * 1024 * 1024;
export const DEFAULT_INDEX_CACHE_SIZE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_INDEX_CACHE_MAX_OBJECTS = 4096;

/** Whoever loaded a block ahead of its reader; told when the block is evicted unread. */
export interface ReadAheadOwner {
  onEvictedUnread(sizeBytes: number): void;
}

export interface BlockCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  /** Read-ahead blocks evicted before anyone read them. */
  evictedUnread: number;
}

interface CachedBlock {
  block: Buffer;
  /** Set while the block was loaded ahead and not read yet. */
  owner: ReadAheadOwner | undefined;
  /** Reads (leases) that may still use the block's bytes. */
  pins: number;
  /** Left the cache while pinned: freed on the last release. */
  evicted: boolean;
}

export function blockKey(objectKey: string, blockIndex: number): string {
  return `${objectKey}#${blockIndex}`;
}

/** The blocks one read uses, pinned until release(): their memory is not freed meanwhile. */
export class BlockLease extends PinLease<CachedBlock> {
  constructor(cache: BlockCache) {
    super((entry) => cache.unpin(entry));
  }
}

export class BlockCache {
  readonly capacityBytes: number;
  /** In LRU order: the first entry is the least recently used. */
  private readonly blocks = new Map<string, CachedBlock>();
  private readonly loading = new Map<string, Promise<Buffer>>();
  /** Leases waiting for a block being loaded: pinned when it is cached. */
  private readonly waiting = new Map<string, BlockLease[]>();
  private totalBytes = 0;
  private readonly counts: BlockCacheStats = { hits: 0, misses: 0, evictions: 0, evictedUnread: 0 };

  constructor(options: { capacityBytes?: number } = {}) {
    this.capacityBytes = options.capacityBytes ?? DEFAULT_BLOCK_CACHE_SIZE_BYTES;
    if (!Number.isSafeInteger(this.capacityBytes) || this.capacityBytes < 0) {
      throw new RangeError(`block cache capacity must be a non-negative integer, got ${this.capacityBytes}`);
    }
    reportBlockCache(this);
  }

  /**
   * The cached block (now the most recently used, and read), or undefined (a miss). With a
   * lease, the block is pinned for it: its bytes stay valid until the lease is released.
   */
  get(key: string, lease?: BlockLease): Buffer | undefined {
    const entry = this.blocks.get(key);
    if (entry === undefined) {
      this.counts.misses++;
      blockCacheRequestsTotal.inc({ result: 'miss' });
      return undefined;
    }
    this.blocks.delete(key);
    this.blocks.set(key, entry);
    entry.owner = undefined;
    if (lease !== undefined) pin(entry, lease);
    this.counts.hits++;
    blockCacheRequestsTotal.inc({ result: 'hit' });
    return entry.block;
  }

  /** Whether the block is cached; does not count as a use. */
  has(key: string): boolean {
    return this.blocks.has(key);
  }

  /**
   * The load in flight for the block, if any, as a read that waits for it: the block arrives
   * pinned for the lease and counts as read (no longer unread read-ahead). Not counted as a hit.
   */
  waitFor(key: string, lease: BlockLease): Promise<Buffer> | undefined {
    const loading = this.loading.get(key);
    if (loading === undefined) return undefined;
    const leases = this.waiting.get(key);
    if (leases === undefined) this.waiting.set(key, [lease]);
    else leases.push(lease);
    return loading;
  }

  /** Cached or being loaded. */
  isPresent(key: string): boolean {
    return this.blocks.has(key) || this.loading.has(key);
  }

  /**
   * Loads the blocks `keys` (none of them cached or loading) with one fetch, which resolves to
   * their bytes in the same order. Each block is cached as it arrives, owned by owners[i] (a
   * read-ahead window) or by nobody. Returns one promise per key; a failed fetch rejects them
   * all and caches nothing.
   */
  load(
    keys: readonly string[],
    fetch: () => Promise<Buffer[]>,
    owners: readonly (ReadAheadOwner | undefined)[],
  ): Promise<Buffer>[] {
    for (const key of keys) {
      if (this.isPresent(key)) throw new Error(`block ${key} is already cached or loading`);
    }
    if (owners.length !== keys.length) throw new RangeError(`${keys.length} keys, ${owners.length} owners`);
    const stored = Promise.resolve().then(fetch).then(
      (blocks) => {
        const waiting = keys.map((key) => this.settle(key));
        if (blocks.length !== keys.length) throw new Error(`fetched ${blocks.length} blocks for ${keys.length} keys`);
        return blocks.map((block, i) => this.insert(keys[i]!, block, owners[i], waiting[i]));
      },
      (err: unknown) => {
        for (const key of keys) this.settle(key);
        throw err;
      },
    );
    return keys.map((key, i) => {
      const promise = stored.then((blocks) => blocks[i]!);
      promise.catch(() => {}); // read-ahead loads nobody awaits must not be unhandled rejections
      this.loading.set(key, promise);
      return promise;
    });
  }

  /**
   * Caches a block (replacing any cached under key) and evicts down to the bound; returns the
   * buffer cached (a copy when `block` was a slice of a larger buffer), pinned for the leases
   * given (a block with readers is read: no owner). A block larger than the whole cache is
   * returned without being cached (nor pinned: it is left to the GC).
   */
  insert(key: string, block: Buffer, owner?: ReadAheadOwner, leases?: readonly BlockLease[]): Buffer {
    const own = ownBuffer(block);
    if (own.length > this.capacityBytes) return own;
    this.remove(key);
    const entry: CachedBlock = { block: own, owner: leases === undefined || leases.length === 0 ? owner : undefined, pins: 0, evicted: false };
    for (const lease of leases ?? []) pin(entry, lease);
    this.blocks.set(key, entry);
    this.totalBytes += own.length;
    this.evict();
    return own;
  }

  sizeBytes(): number {
    return this.totalBytes;
  }

  blockCount(): number {
    return this.blocks.size;
  }

  stats(): BlockCacheStats {
    return { ...this.counts };
  }

  /** @internal BlockLease: a read no longer uses the block. */
  unpin(entry: CachedBlock): void {
    entry.pins--;
    if (entry.pins === 0 && entry.evicted) freeIfOwned(entry.block);
  }

  /** The load of key ended: no longer loading; the leases that waited for it. */
  private settle(key: string): BlockLease[] | undefined {
    this.loading.delete(key);
    const leases = this.waiting.get(key);
    this.waiting.delete(key);
    return leases;
  }

  private remove(key: string): void {
    const entry = this.blocks.get(key);
    if (entry === undefined) return;
    this.blocks.delete(key);
    this.totalBytes -= entry.block.length;
    this.drop(entry);
  }

  private evict(): void {
    while (this.totalBytes > this.capacityBytes) {
      const [key, entry] = this.blocks.entries().next().value!;
      this.blocks.delete(key);
      this.totalBytes -= entry.block.length;
      this.counts.evictions++;
      if (entry.owner !== undefined) {
        this.counts.evictedUnread++;
        readAheadEvictedUnreadBytesTotal.inc(entry.block.length);
        entry.owner.onEvictedUnread(entry.block.length);
      }
      this.drop(entry);
    }
    if (this.totalBytes < 0 || this.totalBytes > this.capacityBytes) {
      throw new Error(`block cache holds ${this.totalBytes} bytes, bound ${this.capacityBytes}`);
    }
  }

  /** The entry left the cache: freed now, or by the last read that pins it. */
  private drop(entry: CachedBlock): void {
    if (entry.pins === 0) freeIfOwned(entry.block);
    else entry.evicted = true;
  }
}

function pin(entry: CachedBlock, lease: BlockLease): void {
  entry.pins++;
  lease.add(entry);
}

/** The buffer itself when it owns its memory, else a copy that does. */
function ownBuffer(block: Buffer): Buffer {
  if (ownsBuffer(block)) return block;
  const copy = Buffer.allocUnsafeSlow(block.length);
  block.copy(copy);
  return copy;
}

/**
 * Opened objects (their parsed indexes), least recently used evicted first, bounded in bytes
 * and in count. open() is single flight: concurrent opens of one object share its GET.
 */
export class ObjectIndexCache {
  readonly capacityBytes: number;
  readonly maxObjects: number;
  private readonly readers = new Map<string, DataObjectReader>();
  private readonly opening = new Map<string, Promise<DataObjectReader>>();
  private totalBytes = 0;

  constructor(options: { capacityBytes?: number; maxObjects?: number } = {}) {
    this.capacityBytes = options.capacityBytes ?? DEFAULT_INDEX_CACHE_SIZE_BYTES;
    this.maxObjects = options.maxObjects ?? DEFAULT_INDEX_CACHE_MAX_OBJECTS;
    if (this.capacityBytes < 0 || this.maxObjects < 0) throw new RangeError('index cache bounds must be non-negative');
  }

  /** The opened object, if cached (now the most recently used). */
  peek(objectKey: string): DataObjectReader | undefined {
    const reader = this.readers.get(objectKey);
    if (reader !== undefined) {
      this.readers.delete(objectKey);
      this.readers.set(objectKey, reader);
    }
    return reader;
  }

  /** The cached object, else the open in flight, else a new open by `opener`. */
  open(objectKey: string, opener: () => Promise<DataObjectReader>): Promise<DataObjectReader> {
    const cached = this.peek(objectKey);
    if (cached !== undefined) return Promise.resolve(cached);
    let pending = this.opening.get(objectKey);
    if (pending === undefined) {
      pending = Promise.resolve().then(opener).then(
        (reader) => {
          this.opening.delete(objectKey);
          this.insert(objectKey, reader);
          return reader;
        },
        (err: unknown) => {
          this.opening.delete(objectKey);
          throw err;
        },
      );
      this.opening.set(objectKey, pending);
    }
    return pending;
  }

  sizeBytes(): number {
    return this.totalBytes;
  }

  objectCount(): number {
    return this.readers.size;
  }

  private insert(objectKey: string, reader: DataObjectReader): void {
    if (reader.memoryBytes > this.capacityBytes) return;
    const previous = this.readers.get(objectKey);
    if (previous !== undefined) {
      this.readers.delete(objectKey);
      this.totalBytes -= previous.memoryBytes;
    }
    this.readers.set(objectKey, reader);
    this.totalBytes += reader.memoryBytes;
    while (this.totalBytes > this.capacityBytes || this.readers.size > this.maxObjects) {
      const [key, oldest] = this.readers.entries().next().value!;
      this.readers.delete(key);
      this.totalBytes -= oldest.memoryBytes;
    }
  }
}

// ---- metrics (prom-client's default registry, created once per process) ----
//
//   wharf_block_cache_bytes                          gauge: bytes of cached data blocks
//   wharf_block_cache_requests_total{result}         hit | miss
//   wharf_read_ahead_evicted_unread_bytes_total      read-ahead bytes evicted before being read

const BLOCK_CACHE_BYTES = 'wharf_block_cache_bytes';

const blockCacheRequestsTotal =
  (register.getSingleMetric('wharf_block_cache_requests_total') as Counter<'result'> | undefined) ??
  new Counter({
    name: 'wharf_block_cache_requests_total',
    help: 'Data block lookups in the block cache, by result (hit, miss).',
    labelNames: ['result'] as const,
  });

const readAheadEvictedUnreadBytesTotal =
  (register.getSingleMetric('wharf_read_ahead_evicted_unread_bytes_total') as Counter | undefined) ??
  new Counter({
    name: 'wharf_read_ahead_evicted_unread_bytes_total',
    help: 'Bytes of blocks read ahead and evicted from the block cache before anyone read them.',
  });

let blockCacheSource: BlockCache | undefined;

/** The block cache the gauge reports (the latest one created; one per process in a broker). */
function reportBlockCache(cache: BlockCache): void {
  blockCacheSource = cache;
}

if (register.getSingleMetric(BLOCK_CACHE_BYTES) === undefined) {
  new Gauge({
    name: BLOCK_CACHE_BYTES,
    help: 'Bytes of object data blocks held by the block cache.',
    collect() {
      if (blockCacheSource !== undefined) this.set(blockCacheSource.sizeBytes());
    },
  });
}
