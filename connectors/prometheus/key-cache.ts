// Series keys already computed, found again by the raw bytes of a TimeSeries' label fields.
//
// Prometheus sends every series again at each scrape, and its label fields come byte for byte
// the same each time. A hit skips parsing, validating and escaping the labels (most of the
// decoding cost); the bytes are compared in full, so a hit is exact. Only label sets that
// passed validation are added.
//
// Layout, for few cache misses on a large heap: an open-addressing table of entry numbers
// (Int32Array, linear probing) and per-entry columns in Int32Arrays; label and key bytes are
// appended to 4 MiB chunks. Each entry also holds the request stamp and record index it was
// last used for, so that the decoder finds a series' record within a request without a map.
//
// Bounded: at most MAX_ENTRIES entries and MAX_BYTES of chunks. When either is reached the cache
// stops adding (those series take the slow path) and is dropped whole before the next request.

const MAX_ENTRIES = 1 << 18;
const MAX_BYTES = 64 * 1024 * 1024;
const CHUNK_BYTES = 4 * 1024 * 1024;
const HASH_SEED = 0x2545f491;
const HASH_MULTIPLIER = 0x9e3779b1 | 0;
/** Hashes are cut to 30 bits: V8 keeps such numbers as small integers. */
const SMI_MASK = 0x3fffffff;

export class SeriesKeyCache {
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private slots = new Int32Array(0); // entry + 1, 0 = free
  private hashes = new Int32Array(0);
  private chunkOf = new Int32Array(0);
  private offsetOf = new Int32Array(0);
  private labelsLengthOf = new Int32Array(0);
  /** Per entry: the key's hash (as SeriesKeyWriter computes it), and the request stamp and record index of its last use. */
  keyHashOf = new Int32Array(0);
  stampOf = new Int32Array(0);
  recordOf = new Int32Array(0);
  keys: Buffer[] = [];
  private chunks: DataView[] = [];
  private chunkBuffers: Buffer[] = [];
  private chunkUsed = 0;
  private entries = 0;
  private bytes = 0;
  private full = false;
  /** Times the cache was dropped for being full. */
  resets = 0;

  constructor(maxEntries = MAX_ENTRIES, maxBytes = MAX_BYTES) {
    this.maxEntries = maxEntries;
    this.maxBytes = maxBytes;
  }

  /** Called before each request: a cache that filled up is dropped now, never in the middle of a request. */
  beginRequest(): void {
    if (!this.full) return;
    this.slots.fill(0);
    this.keys = [];
    this.chunks = [];
    this.chunkBuffers = [];
    this.chunkUsed = 0;
    this.entries = 0;
    this.bytes = 0;
    this.full = false;
    this.resets++;
  }

  /** The entry whose label bytes equal view[start, end) (hash = labelsHash of them), or -1. */
  find(view: DataView, start: number, end: number, hash: number): number {
    if (this.entries === 0) return -1;
    const length = end - start;
    const mask = this.slots.length - 1;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = this.slots[slot]! - 1;
      if (entry < 0) return -1;
      if (this.hashes[entry] === hash && this.labelsLengthOf[entry] === length
        && sameBytes(view, start, this.chunks[this.chunkOf[entry]!]!, this.offsetOf[entry]!, length)) {
        return entry;
      }
    }
  }

  /**
   * Remembers the key of a validated label set (bytes copied: the cache holds no request
   * memory); returns the entry, or -1 when the cache is full.
   */
  add(labels: Buffer, start: number, end: number, hash: number, key: Buffer, keyHash: number): number {
    const length = end - start;
    const size = length + key.length;
    if (this.full || this.entries === this.maxEntries || this.bytes + size > this.maxBytes || size > CHUNK_BYTES) {
      this.full = true;
      return -1;
    }
    if (this.slots.length === 0) this.allocate();
    if (this.chunkBuffers.length === 0 || this.chunkUsed + size > CHUNK_BYTES) {
      const chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
      this.chunkBuffers.push(chunk);
      this.chunks.push(new DataView(chunk.buffer, chunk.byteOffset, chunk.length));
      this.chunkUsed = 0;
      this.bytes += CHUNK_BYTES;
    }
    const chunkIndex = this.chunkBuffers.length - 1;
    const chunk = this.chunkBuffers[chunkIndex]!;
    const offset = this.chunkUsed;
    labels.copy(chunk, offset, start, end);
    key.copy(chunk, offset + length);
    this.chunkUsed += size;
    const entry = this.entries++;
    this.hashes[entry] = hash;
    this.chunkOf[entry] = chunkIndex;
    this.offsetOf[entry] = offset;
    this.labelsLengthOf[entry] = length;
    this.keyHashOf[entry] = keyHash;
    this.stampOf[entry] = 0;
    this.keys[entry] = chunk.subarray(offset + length, offset + size);
    const mask = this.slots.length - 1;
    let slot = hash & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = entry + 1;
    return entry;
  }

  private allocate(): void {
    let slots = 1;
    while (slots < this.maxEntries * 2) slots *= 2; // load factor <= 0.5
    this.slots = new Int32Array(slots);
    this.hashes = new Int32Array(this.maxEntries);
    this.chunkOf = new Int32Array(this.maxEntries);
    this.offsetOf = new Int32Array(this.maxEntries);
    this.labelsLengthOf = new Int32Array(this.maxEntries);
    this.keyHashOf = new Int32Array(this.maxEntries);
    this.stampOf = new Int32Array(this.maxEntries);
    this.recordOf = new Int32Array(this.maxEntries);
  }
}

/** A 30-bit hash of view[start, end), four bytes at a time. */
export function labelsHash(view: DataView, start: number, end: number): number {
  let hash = HASH_SEED ^ (end - start);
  let i = start;
  for (; i + 4 <= end; i += 4) {
    hash = Math.imul(hash ^ view.getUint32(i, true), HASH_MULTIPLIER);
    hash ^= hash >>> 15;
  }
  for (; i < end; i++) hash = Math.imul(hash ^ view.getUint8(i), HASH_MULTIPLIER);
  return (hash ^ (hash >>> 13)) & SMI_MASK;
}

function sameBytes(a: DataView, aStart: number, b: DataView, bStart: number, length: number): boolean {
  let i = 0;
  for (; i + 4 <= length; i += 4) {
    if (a.getUint32(aStart + i, true) !== b.getUint32(bStart + i, true)) return false;
  }
  for (; i < length; i++) {
    if (a.getUint8(aStart + i) !== b.getUint8(bStart + i)) return false;
  }
  return true;
}
