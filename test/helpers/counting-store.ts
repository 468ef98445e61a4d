// An ObjectStore decorator for tests and benchmarks: counts GETs (in all and at once) and the
// bytes they return on the way to another store, and can hold GETs back until released. It also
// counts PUTs and multipart parts (the inner store's uploads are passed through), and keeps the
// largest GET answer and the largest PUT or part: what a reader or writer held at once. A
// getParts is one GET (the inner store's, or its get() split by readParts), and the inner store's
// readsPartsInPlace is passed through, so that readers take the path they take on that store.

import { bodyLength, readParts, wrapUploads, type MultipartUploads, type ObjectBody, type ObjectInfo, type ObjectStore } from '../../src/storage/objectstore/objectstore.ts';

export class CountingStore implements ObjectStore {
  gets = 0;
  bytesRead = 0;
  active = 0;
  peakActive = 0;
  largestGetBytes = 0;
  puts = 0;
  partUploads = 0;
  largestPutBytes = 0;
  readonly uploads: MultipartUploads | undefined;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  private readonly inner: ObjectStore;
  readonly readsPartsInPlace: boolean;

  /** `readsPartsInPlace`: what readers are told (the inner store's by default; false: as on S3). */
  constructor(inner: ObjectStore, options: { readsPartsInPlace?: boolean } = {}) {
    this.inner = inner;
    this.readsPartsInPlace = options.readsPartsInPlace ?? inner.readsPartsInPlace === true;
    this.uploads = wrapUploads(inner.uploads, (bytes, call, op) => {
      if (op === 'part') {
        this.partUploads++;
        this.largestPutBytes = Math.max(this.largestPutBytes, bytes);
      }
      return call();
    });
  }

  /** GETs from now on wait until release(). */
  hold(): void {
    this.gate = new Promise((resolve) => {
      this.openGate = resolve;
    });
  }

  release(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  put(key: string, body: ObjectBody): Promise<void> {
    this.puts++;
    this.largestPutBytes = Math.max(this.largestPutBytes, bodyLength(body));
    return this.inner.put(key, body);
  }

  get(key: string, range?: { start: number; endExclusive: number }): Promise<Buffer> {
    return this.counted(async () => {
      const body = await this.inner.get(key, range);
      this.bytesRead += body.length;
      this.largestGetBytes = Math.max(this.largestGetBytes, body.length);
      return body;
    });
  }

  getParts(key: string, start: number, lengths: readonly number[]): Promise<Buffer[]> {
    return this.counted(async () => {
      const parts = await readParts(this.inner, key, start, lengths);
      let bytes = 0;
      for (const part of parts) bytes += part.length;
      this.bytesRead += bytes;
      this.largestGetBytes = Math.max(this.largestGetBytes, bytes);
      return parts;
    });
  }

  private async counted<T>(read: () => Promise<T>): Promise<T> {
    this.gets++;
    this.active++;
    this.peakActive = Math.max(this.peakActive, this.active);
    try {
      if (this.gate !== undefined) await this.gate;
      return await read();
    } finally {
      this.active--;
    }
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    return this.inner.head(key);
  }

  list(prefix: string): Promise<ObjectInfo[]> {
    return this.inner.list(prefix);
  }

  delete(keys: string[]): Promise<void> {
    return this.inner.delete(keys);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
