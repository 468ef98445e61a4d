// An ObjectStore decorator for tests and benchmarks: counts GETs (in all and at once) and the
// bytes they return on the way to another store, and can hold GETs back until released.

import type { ObjectBody, ObjectInfo, ObjectStore } from '../../src/storage/objectstore/objectstore.ts';

export class CountingStore implements ObjectStore {
  gets = 0;
  bytesRead = 0;
  active = 0;
  peakActive = 0;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  private readonly inner: ObjectStore;

  constructor(inner: ObjectStore) {
    this.inner = inner;
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
    return this.inner.put(key, body);
  }

  async get(key: string, range?: { start: number; endExclusive: number }): Promise<Buffer> {
    this.gets++;
    this.active++;
    this.peakActive = Math.max(this.peakActive, this.active);
    try {
      if (this.gate !== undefined) await this.gate;
      const body = await this.inner.get(key, range);
      this.bytesRead += body.length;
      return body;
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
