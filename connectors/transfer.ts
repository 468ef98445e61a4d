// Bytes handed between threads by transfer (postMessage's transfer list). A transfer detaches
// the whole ArrayBuffer behind a view, so only bytes that span their buffer whole may go: small
// Buffers are slices of Node's shared pool, and reads may be views of larger buffers.

/** Whether `bytes` spans its ArrayBuffer whole (transferring it detaches nothing else). */
export function ownsBuffer(bytes: ArrayBufferView): boolean {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
}

/** `bytes` itself when it spans its buffer whole, else a copy in a buffer of its own. */
export function transferable(bytes: Uint8Array): Uint8Array {
  return ownsBuffer(bytes) ? bytes : new Uint8Array(bytes);
}

/**
 * Frees the memory behind `bytes` now when they span it (views of a larger buffer are left to
 * the GC): V8 counts it off at once instead of at its next mark-compact. Nothing may read them after.
 */
export function freeIfOwned(bytes: ArrayBufferView): void {
  if (ownsBuffer(bytes)) (bytes.buffer as ArrayBuffer).transfer(0);
}
