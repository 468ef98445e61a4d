// Series keys already computed, found again by the raw bytes of a TimeSeries' label fields.
//
// Prometheus sends every series again at each scrape, and its label fields come byte for byte
// the same each time. A hit skips parsing, validating and escaping the labels (most of the
// decoding cost); the bytes are compared in full, so a hit is exact. Only label sets that
// passed validation are added.
//
// Layout, for few cache misses: an open-addressing table (Int32Array, linear probing) of
// (entry + 1, hash) pairs, so a probe compares hashes without leaving the table, and the fields
// of each entry side by side in one Int32Array (one cache line per entry); label and key bytes
// are appended to 4 MiB chunks. Table and entries grow with the series seen (the table stays at
// most half full). Each entry also holds the request stamp and record index it was last used
// for, so that the decoder finds a series' record within a request without a map.
//
// Bounded: at most MAX_ENTRIES entries and MAX_BYTES of chunks. When either is reached the cache
// stops adding (those series take the slow path) and is dropped whole before the next request.

import { partitionHash } from '../../src/protocol/record-encoder.ts';

const MAX_ENTRIES = 1 << 18;
const MAX_BYTES = 64 * 1024 * 1024;
const CHUNK_BYTES = 4 * 1024 * 1024;
const INITIAL_ENTRIES = 1024;
const HASH_SEED = 0x2545f491;
const HASH_SEED_ODD = 0x68e31da4;
const HASH_MULTIPLIER = 0x9e3779b1 | 0;
/** Hashes are cut to 30 bits: V8 keeps such numbers as small integers. */
const SMI_MASK = 0x3fffffff;

/** Fields of an entry, at entry * ENTRY_INTS in `fields`. */
const F = { CHUNK: 0, OFFSET: 1, LABELS_LENGTH: 2, KEY_LENGTH: 3, KEY_HASH: 4, PARTITION_HASH: 5, STAMP: 6, RECORD: 7 } as const;
const ENTRY_INTS = 8;

export class SeriesKeyCache {
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  /** Pairs (entry + 1, hash); entry + 1 = 0: free. */
  private slots = new Int32Array(0);
  private fields = new Int32Array(0);
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
    const slots = this.slots;
    const fields = this.fields;
    const mask = (slots.length >> 1) - 1;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = slots[slot * 2]! - 1;
      if (entry < 0) return -1;
      if (slots[slot * 2 + 1] !== hash) continue;
      const at = entry * ENTRY_INTS;
      if (fields[at + F.LABELS_LENGTH] === length && sameBytes(view, start, this.chunks[fields[at + F.CHUNK]!]!, fields[at + F.OFFSET]!, length)) {
        return entry;
      }
    }
  }

  /** The buffer the entry's key lies in, at [keyStart(entry), keyEnd(entry)). */
  keySource(entry: number): Buffer {
    return this.chunkBuffers[this.fields[entry * ENTRY_INTS + F.CHUNK]!]!;
  }

  keyStart(entry: number): number {
    const at = entry * ENTRY_INTS;
    return this.fields[at + F.OFFSET]! + this.fields[at + F.LABELS_LENGTH]!;
  }

  keyEnd(entry: number): number {
    return this.keyStart(entry) + this.fields[entry * ENTRY_INTS + F.KEY_LENGTH]!;
  }

  /** The entry's key, as a view (tests and tools). */
  key(entry: number): Buffer {
    return this.keySource(entry).subarray(this.keyStart(entry), this.keyEnd(entry));
  }

  /** The key's hash, as SeriesKeyWriter computes it. */
  keyHashOf(entry: number): number {
    return this.fields[entry * ENTRY_INTS + F.KEY_HASH]!;
  }

  /** The key's partition hash (the producer's). */
  partitionHashOf(entry: number): number {
    return this.fields[entry * ENTRY_INTS + F.PARTITION_HASH]!;
  }

  /** The request stamp of the entry's last use (0: none). */
  stampOf(entry: number): number {
    return this.fields[entry * ENTRY_INTS + F.STAMP]!;
  }

  /** The record index of the entry's last use. */
  recordOf(entry: number): number {
    return this.fields[entry * ENTRY_INTS + F.RECORD]!;
  }

  /** Notes the entry's use by record `record` of the request stamped `stamp`. */
  use(entry: number, stamp: number, record: number): void {
    this.fields[entry * ENTRY_INTS + F.STAMP] = stamp;
    this.fields[entry * ENTRY_INTS + F.RECORD] = record;
  }

  /** Forgets every entry's last use (when request stamps start again). */
  clearStamps(): void {
    for (let at = F.STAMP; at < this.fields.length; at += ENTRY_INTS) this.fields[at] = 0;
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
    if (this.entries * ENTRY_INTS === this.fields.length) this.grow();
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
    const at = entry * ENTRY_INTS;
    this.fields[at + F.CHUNK] = chunkIndex;
    this.fields[at + F.OFFSET] = offset;
    this.fields[at + F.LABELS_LENGTH] = length;
    this.fields[at + F.KEY_LENGTH] = key.length;
    this.fields[at + F.KEY_HASH] = keyHash;
    this.fields[at + F.PARTITION_HASH] = partitionHash(key);
    this.fields[at + F.STAMP] = 0;
    insert(this.slots, entry, hash);
    return entry;
  }

  /** Doubles the room for entries (the table with it), up to maxEntries. */
  private grow(): void {
    const capacity = Math.min(this.maxEntries, Math.max(INITIAL_ENTRIES, this.fields.length / ENTRY_INTS * 2));
    const fields = new Int32Array(capacity * ENTRY_INTS);
    fields.set(this.fields);
    this.fields = fields;
    let slotCount = 1;
    while (slotCount < capacity * 2) slotCount *= 2; // load factor <= 0.5
    const slots = new Int32Array(slotCount * 2);
    for (let slot = 0; slot < this.slots.length; slot += 2) {
      if (this.slots[slot] !== 0) insert(slots, this.slots[slot]! - 1, this.slots[slot + 1]!);
    }
    this.slots = slots;
  }
}

function insert(slots: Int32Array, entry: number, hash: number): void {
  const mask = (slots.length >> 1) - 1;
  let slot = hash & mask;
  while (slots[slot * 2] !== 0) slot = (slot + 1) & mask;
  slots[slot * 2] = entry + 1;
  slots[slot * 2 + 1] = hash;
}

/**
 * A 30-bit hash of view[start, end): two lanes, each taking every other four bytes, so that
 * their multiplications overlap in the CPU, then combined.
 */
export function labelsHash(view: DataView, start: number, end: number): number {
  let even = HASH_SEED ^ (end - start);
  let odd = HASH_SEED_ODD;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    even = Math.imul(even ^ view.getUint32(i, true), HASH_MULTIPLIER);
    even ^= even >>> 15;
    odd = Math.imul(odd ^ view.getUint32(i + 4, true), HASH_MULTIPLIER);
    odd ^= odd >>> 15;
  }
  for (; i < end; i++) even = Math.imul(even ^ view.getUint8(i), HASH_MULTIPLIER);
  const hash = Math.imul(even ^ Math.imul(odd, HASH_MULTIPLIER), HASH_MULTIPLIER);
  return (hash ^ (hash >>> 13)) & SMI_MASK;
}

/** Whether a[aStart, aStart + length) and b[bStart, ...) hold the same bytes, eight at a time. */
function sameBytes(a: DataView, aStart: number, b: DataView, bStart: number, length: number): boolean {
  let i = 0;
  for (; i + 8 <= length; i += 8) {
    if (((a.getUint32(aStart + i, true) ^ b.getUint32(bStart + i, true)) | (a.getUint32(aStart + i + 4, true) ^ b.getUint32(bStart + i + 4, true))) !== 0) return false;
  }
  for (; i < length; i++) {
    if (a.getUint8(aStart + i) !== b.getUint8(bStart + i)) return false;
  }
  return true;
}
