// The log cache's memory: batches are copied back to back into slabs of a few MiB, taken from a
// pool that is allocated once, and a slab goes back to the pool when every batch in it is
// evicted and no read still uses its bytes.
//
// Why not keep the appended Buffers as they are: V8 starts a mark-compact each time the memory
// held by Buffers has grown by 64 MB since the last one, whether or not any of it is garbage. A
// cache that keeps the request's Buffers grows that memory by every byte produced, so a broker
// producing 20 MiB/s paused for a mark-compact every three seconds and at full rate several times
// a second. Slabs reused from the pool add nothing: the request's own Buffers die young and the
// scavenger frees them.
//
// A read pins the slabs of the batches it returns until its caller releases it (Fetch: once the
// response is written to the socket). A slab whose batches are all evicted while pinned is
// recycled on the last release; a read that is never released leaves its slab to the GC, and in
// allocatedBytes (the pool cannot tell when the GC frees it), so every reader in the broker
// releases. A batch dropped before it was uploaded (a fenced or deleted stream) may still be read
// by an upload in flight, so its slab is abandoned to the GC rather than reused; so are the slabs
// of batches whose PUT had an attempt abandoned on its timeout (retrying.ts), which may still
// read them. Batches larger than a quarter of a slab get a Buffer of their own, freed explicitly
// when evicted and released.

import { freeIfOwned } from '../buffers.ts';
import { PinLease } from '../stream.ts';

const MIN_SLAB_BYTES = 64 * 1024;
const MAX_SLAB_BYTES = 4 * 1024 * 1024;

export class Slab {
  readonly bytes: Buffer;
  /** Holds one large batch; never pooled. */
  readonly dedicated: boolean;
  used = 0;
  /** Batches in it still cached. */
  live = 0;
  /** Reads whose batches may still be in use. */
  pins = 0;
  /** Takes no more batches: full, dedicated, or abandoned. */
  sealed = false;
  /** Left to the GC: never reused nor freed here. */
  abandoned = false;

  constructor(bytes: Buffer, dedicated: boolean) {
    this.bytes = bytes;
    this.dedicated = dedicated;
  }
}

export class SlabPool {
  readonly slabBytes: number;
  private readonly free: Slab[] = [];
  /** Slab memory kept beyond this is freed as it comes back: the capacity, slab tails and two slabs. */
  private readonly keepBytes: number;
  private current: Slab | undefined;
  private allocated = 0;

  /** Allocates slabs for capacityBytes of batches up front. */
  constructor(capacityBytes: number) {
    this.slabBytes = slabBytesFor(capacityBytes);
    this.keepBytes = Math.ceil(capacityBytes * 1.25 / this.slabBytes + 2) * this.slabBytes;
    const slabs = Math.max(1, Math.ceil(capacityBytes / this.slabBytes));
    for (let i = 0; i < slabs; i++) this.free.push(this.allocate(this.slabBytes, false));
  }

  /** Bytes of slab memory allocated and not yet given back (pooled slabs included). */
  allocatedBytes(): number {
    return this.allocated;
  }

  /** Copies the batch into a slab; returns the slab, whose last batch is the copy (see copyOf). */
  store(batch: Buffer): Slab {
    const n = batch.length;
    if (n > this.slabBytes >>> 2) {
      const slab = this.allocate(n, true);
      slab.sealed = true;
      this.put(slab, batch);
      return slab;
    }
    let slab = this.current;
    if (slab === undefined || slab.used + n > slab.bytes.length) {
      if (slab !== undefined) this.seal(slab);
      slab = this.free.pop() ?? this.allocate(this.slabBytes, false);
      this.current = slab;
    }
    this.put(slab, batch);
    return slab;
  }

  /** A batch in the slab left the cache. */
  evicted(slab: Slab): void {
    slab.live--;
    this.recycleIfUnused(slab);
  }

  /** A batch left the cache while something other than a read may still use it. */
  abandon(slab: Slab): void {
    if (slab.abandoned) return;
    slab.abandoned = true;
    slab.sealed = true;
    if (this.current === slab) this.current = undefined;
    this.allocated -= slab.bytes.length;
  }

  /**
   * Pins the slabs for a read (a slab appears once per batch); the caller releases the lease
   * when done with the batches.
   */
  lease(slabs: Slab[]): PinLease<Slab> {
    for (const slab of slabs) slab.pins++;
    return new PinLease((slab) => this.unpin(slab), slabs);
  }

  private unpin(slab: Slab): void {
    slab.pins--;
    this.recycleIfUnused(slab);
  }

  private put(slab: Slab, batch: Buffer): void {
    batch.copy(slab.bytes, slab.used);
    slab.used += batch.length;
    slab.live++;
  }

  private seal(slab: Slab): void {
    slab.sealed = true;
    this.recycleIfUnused(slab);
  }

  private recycleIfUnused(slab: Slab): void {
    if (!slab.sealed || slab.abandoned || slab.live > 0 || slab.pins > 0) return;
    if (slab.dedicated || this.allocated > this.keepBytes) {
      this.release(slab);
      return;
    }
    slab.used = 0;
    slab.sealed = false;
    this.free.push(slab);
  }

  private allocate(bytes: number, dedicated: boolean): Slab {
    this.allocated += bytes;
    // Large batches use memory of their own: pooled slabs make room for them.
    while (this.allocated > this.keepBytes && this.free.length > 0) this.release(this.free.pop()!);
    return new Slab(Buffer.allocUnsafeSlow(bytes), dedicated);
  }

  /** Frees the slab now: V8 counts it off at once instead of at the next mark-compact. */
  private release(slab: Slab): void {
    slab.abandoned = true;
    this.allocated -= slab.bytes.length;
    freeIfOwned(slab.bytes);
  }
}

/** The copy store() just made: the slab's last batch of the given size. */
export function copyOf(slab: Slab, size: number): Buffer {
  return slab.bytes.subarray(slab.used - size, slab.used);
}

/** A power of two between 64 KiB and 4 MiB, about a sixty-fourth of the capacity. */
function slabBytesFor(capacityBytes: number): number {
  let bytes = MIN_SLAB_BYTES;
  while (bytes < MAX_SLAB_BYTES && bytes * 64 < capacityBytes) bytes *= 2;
  return bytes;
}
