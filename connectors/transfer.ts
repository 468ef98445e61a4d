// Bytes handed between threads by transfer (postMessage's transfer list). A transfer detaches
// the whole ArrayBuffer behind a view, so only bytes that span their buffer whole may go: small
// Buffers are slices of Node's shared pool, and reads may be views of larger buffers.

import { ownsBuffer } from '../src/storage/buffers.ts';

/** `bytes` itself when it spans its buffer whole, else a copy in a buffer of its own. */
export function transferable(bytes: Uint8Array): Uint8Array {
  return ownsBuffer(bytes) ? bytes : new Uint8Array(bytes);
}
