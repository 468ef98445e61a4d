// Memory behind Buffers and typed arrays, given back explicitly. V8 starts a mark-compact each
// time the memory held by ArrayBuffers has grown by 64 MB since the last one, whether or not any
// of it is garbage; memory freed here is counted off at once (see cache/slabs.ts).

/** Whether `bytes` spans its ArrayBuffer whole (freeing or transferring it detaches nothing else). */
export function ownsBuffer(bytes: ArrayBufferView): boolean {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
}

/**
 * Frees the memory behind `bytes` now when they span it (views of a larger buffer are left to
 * the GC, and so is memory a native addon made, which cannot be detached). Nothing may read
 * them after.
 */
export function freeIfOwned(bytes: ArrayBufferView): void {
  if (!ownsBuffer(bytes)) return;
  try {
    (bytes.buffer as ArrayBuffer).transfer(0);
  } catch {
    // Not detachable: left to the GC.
  }
}

/**
 * Allocations of this size and more get memory of their own (freeIfOwned can free them), smaller
 * ones a slice of Buffer's shared pool. Node 24's Buffer.allocUnsafe takes up to 32 KiB from its
 * pool: a Produce request paced at 20 MiB/s (~20 KiB) would be left to the GC.
 */
export const OWNED_BUFFER_BYTES = 4096;

/** An uninitialised buffer, with memory of its own from OWNED_BUFFER_BYTES on (see above). */
export function allocFreeable(size: number): Buffer {
  return size < OWNED_BUFFER_BYTES ? Buffer.allocUnsafe(size) : Buffer.allocUnsafeSlow(size);
}
