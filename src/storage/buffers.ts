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
