// The one object-store abstraction. Every object-store call in Wharf goes through this
// interface; retries, metrics and fault injection are decorators around it (SlateDB style),
// never code inside one implementation.

import { setImmediate } from 'node:timers/promises';

export interface ObjectInfo {
  key: string;
  sizeBytes: number;
}

/**
 * An object's bytes: one buffer, or chunks written in order (so that an object built from many
 * batches need not be joined into one buffer first).
 */
export type ObjectBody = Buffer | readonly Buffer[];

export function bodyLength(body: ObjectBody): number {
  if (Buffer.isBuffer(body)) return body.length;
  let length = 0;
  for (const chunk of body) length += chunk.length;
  return length;
}

export function bodyChunks(body: ObjectBody): readonly Buffer[] {
  return Buffer.isBuffer(body) ? [body] : body;
}

export interface ObjectStore {
  /** Writes the whole object. Resolves once the object is durable and visible to get/list. */
  put(key: string, body: ObjectBody): Promise<void>;
  /**
   * Reads bytes [start, endExclusive) of an object; the whole object when no range is given.
   * Bytes past the end of the object are not returned (the result is shorter, possibly empty).
   * Rejects with ObjectNotFoundError when the object does not exist.
   */
  get(key: string, range?: { start: number; endExclusive: number }): Promise<Buffer>;
  /**
   * Optional (use readParts): reads consecutive ranges of an object, lengths[0] bytes from start,
   * then lengths[1] bytes, ..., each into a buffer of its own, as one read. Bytes past the end of
   * the object are not returned (a part is shorter, possibly empty). Errors as get().
   */
  getParts?(key: string, start: number, lengths: readonly number[]): Promise<Buffer[]>;
  /**
   * True when getParts reads each part straight into a buffer of its own (the local store's
   * readv), so that reading blocks as parts costs no more than one get(); false or absent when
   * parts are copied out of one get() (S3), where one GET of a whole small object is cheaper than
   * a tail read and then its blocks.
   */
  readonly readsPartsInPlace?: boolean;
  /** Size of an object, or undefined when it does not exist. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with prefix, in key order. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Deletes the objects; deleting a missing key is not an error. */
  delete(keys: string[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * Bytes copied into new buffers between two yields to the event loop, when a GET's bytes are cut
 * into buffers of their own (readParts here, whole-object reads in read-ahead.ts): copying 8 MiB
 * into fresh buffers held the loop 3-10 ms (page faults of new memory), in front of produces.
 */
export const COPY_YIELD_BYTES = 1024 * 1024;

/**
 * Consecutive ranges of an object, each in a buffer that owns its memory (so that dropping one
 * frees it): the store's getParts when it has one (the local store reads them in place), else one
 * get() whose bytes are copied part by part.
 */
export async function readParts(store: ObjectStore, key: string, start: number, lengths: readonly number[]): Promise<Buffer[]> {
  if (store.getParts !== undefined) return store.getParts(key, start, lengths);
  let total = 0;
  for (const length of lengths) total += length;
  const span = await store.get(key, { start, endExclusive: start + total });
  if (lengths.length === 1) return [span];
  const parts: Buffer[] = [];
  let at = 0;
  let sinceYield = 0;
  for (const length of lengths) {
    const part = Buffer.allocUnsafeSlow(Math.max(0, Math.min(length, span.length - at)));
    span.copy(part, 0, at, at + part.length);
    parts.push(part);
    at += part.length;
    sinceYield += part.length;
    if (sinceYield >= COPY_YIELD_BYTES) {
      sinceYield = 0;
      await setImmediate();
    }
  }
  return parts;
}

export class ObjectNotFoundError extends Error {
  readonly key: string;
  constructor(key: string) {
    super(`object not found: ${key}`);
    this.name = 'ObjectNotFoundError';
    this.key = key;
  }
}
