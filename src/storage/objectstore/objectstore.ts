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
   * True when getParts reads each part straight into a buffer of its own with no copy (the local
   * store's readv), so that a small extra read costs less than a copy; false or absent when a
   * read is a request whose round trip costs more than copying (S3, whose getParts copies the
   * response into the parts as it arrives): there one GET of a whole small object is cheaper
   * than a tail read and then its blocks.
   */
  readonly readsPartsInPlace?: boolean;
  /** Size of an object, or undefined when it does not exist. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with prefix, in key order. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Deletes the objects; deleting a missing key is not an error. */
  delete(keys: string[]): Promise<void>;
  /** Optional (use ObjectUpload): objects written in parts. */
  readonly uploads?: MultipartUploads;
  close(): Promise<void>;
}

/** A part of a multipart upload as the store acknowledged it (S3: its ETag). */
export interface UploadedPart {
  partNumber: number;
  token: string;
}

/**
 * Objects written in parts, in order, visible under their key only once completed (S3's
 * multipart upload; the local store writes a hidden temporary file and renames it): for objects
 * made as they are written, so that they are never held whole in memory. Parts are numbered from
 * 1; every part but the last has at least MIN_UPLOAD_PART_BYTES (S3's minimum). A part may be
 * uploaded again (a retry) until the next one is. Each call is one request, retried on its own.
 */
export interface MultipartUploads {
  /** Starts an upload of key; returns its id. */
  start(key: string): Promise<string>;
  uploadPart(key: string, uploadId: string, partNumber: number, body: ObjectBody): Promise<UploadedPart>;
  /** Makes the object of the parts, in order, visible under key. */
  complete(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void>;
  /** Drops the upload and its parts; an unknown (or completed) upload is not an error. */
  abort(key: string, uploadId: string): Promise<void>;
}

/**
 * A decorator's uploads: the inner store's, each call through `wrap` (a put-class request of
 * `bytes` bytes, `op` saying which call it is), or none when the inner store has none.
 */
export function wrapUploads(
  inner: MultipartUploads | undefined,
  wrap: <T>(bytes: number, call: () => Promise<T>, op: 'start' | 'part' | 'complete' | 'abort') => Promise<T>,
): MultipartUploads | undefined {
  if (inner === undefined) return undefined;
  return {
    start: (key) => wrap(0, () => inner.start(key), 'start'),
    uploadPart: (key, uploadId, partNumber, body) => wrap(bodyLength(body), () => inner.uploadPart(key, uploadId, partNumber, body), 'part'),
    complete: (key, uploadId, parts) => wrap(0, () => inner.complete(key, uploadId, parts), 'complete'),
    abort: (key, uploadId) => wrap(0, () => inner.abort(key, uploadId), 'abort'),
  };
}

/** S3's smallest part (but the last). */
export const MIN_UPLOAD_PART_BYTES = 5 * 1024 * 1024;
/** Parts ObjectUpload sends: what it holds in memory at most, plus the chunk that filled it. */
export const DEFAULT_UPLOAD_PART_BYTES = 8 * 1024 * 1024;

/**
 * Writes one object from chunks given as they are made: a part is uploaded each time partBytes
 * are pending (write() resolves once it is stored), the rest as the last part on complete(). The
 * multipart upload starts with the first part: an object that stays under partBytes is one PUT
 * (one request, not three). On a store without multipart uploads the chunks are kept and put
 * whole on complete(). Until then nothing is visible under the key; abort() (or a failed
 * complete) leaves nothing behind.
 */
export class ObjectUpload {
  readonly key: string;
  private readonly store: ObjectStore;
  /** Started with the first part (undefined before, and always on a store without uploads). */
  private uploadId: string | undefined;
  private readonly partBytes: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly parts: UploadedPart[] = [];
  private written = 0;
  private state: 'open' | 'completed' | 'aborted' = 'open';

  private constructor(store: ObjectStore, key: string, partBytes: number) {
    this.store = store;
    this.key = key;
    this.partBytes = partBytes;
  }

  static async start(store: ObjectStore, key: string, partBytes = DEFAULT_UPLOAD_PART_BYTES): Promise<ObjectUpload> {
    if (!(Number.isSafeInteger(partBytes) && partBytes >= MIN_UPLOAD_PART_BYTES)) {
      throw new RangeError(`upload parts must be at least ${MIN_UPLOAD_PART_BYTES} bytes, got ${partBytes}`);
    }
    return new ObjectUpload(store, key, partBytes);
  }

  /** Bytes written so far. */
  get sizeBytes(): number {
    return this.written;
  }

  /** Bytes written but not yet sent in a part (all of them, on a store without uploads). */
  get pendingSizeBytes(): number {
    return this.pendingBytes;
  }

  async write(chunks: readonly Buffer[]): Promise<void> {
    this.checkOpen();
    for (const chunk of chunks) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      this.written += chunk.length;
    }
    if (this.store.uploads !== undefined && this.pendingBytes >= this.partBytes) await this.sendPart();
  }

  async complete(): Promise<void> {
    this.checkOpen();
    try {
      if (this.uploadId === undefined) {
        await this.store.put(this.key, this.takePending());
      } else {
        if (this.pendingBytes > 0 || this.parts.length === 0) await this.sendPart();
        await this.store.uploads!.complete(this.key, this.uploadId, this.parts);
      }
      this.state = 'completed';
    } catch (err) {
      await this.abort().catch(() => {});
      throw err;
    }
  }

  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    this.pending = [];
    if (this.uploadId !== undefined) await this.store.uploads!.abort(this.key, this.uploadId);
  }

  private async sendPart(): Promise<void> {
    this.uploadId ??= await this.store.uploads!.start(this.key);
    const partNumber = this.parts.length + 1;
    this.parts.push(await this.store.uploads!.uploadPart(this.key, this.uploadId!, partNumber, this.takePending()));
  }

  private takePending(): Buffer[] {
    const chunks = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    return chunks;
  }

  private checkOpen(): void {
    if (this.state !== 'open') throw new Error(`upload of ${this.key} is ${this.state}`);
  }
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
