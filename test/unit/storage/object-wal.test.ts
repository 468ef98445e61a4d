import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalObjectStore } from '../../../src/storage/objectstore/local.ts';
import { RetryingObjectStore } from '../../../src/storage/objectstore/retrying.ts';
import type { ObjectBody, ObjectInfo, ObjectStore } from '../../../src/storage/objectstore/objectstore.ts';
import { StreamStorageImpl } from '../../../src/storage/stream-storage.ts';
import { ObjectWal, parseWalObjectKey, walObjectKey } from '../../../src/storage/wal/object-wal.ts';
import type { ObjectWalOptions } from '../../../src/storage/wal/object-wal.ts';
import { MemoryWalOwnerStore, WalFencedError } from '../../../src/storage/wal/wal-owners.ts';
import type { WalRecord } from '../../../src/storage/wal/wal.ts';
import { MemoryStreamMetadata } from './memory-stream-metadata.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Wraps a store: counts calls, can hold PUTs at a gate, fail them, or "crash" (hang every call). */
class ControlledStore implements ObjectStore {
  readonly inner: ObjectStore;
  puts = 0;
  deletes = 0;
  failPuts = false;
  crashed = false;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  /** Resolves when a PUT reaches a closed gate. */
  private heldWaiters: Array<() => void> = [];

  constructor(inner: ObjectStore) {
    this.inner = inner;
  }

  closeGate(): void {
    this.gate = new Promise((resolve) => { this.openGate = resolve; });
  }

  releaseGate(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  /** Resolves once a PUT is held at the gate. */
  heldPut(): Promise<void> {
    return new Promise((resolve) => this.heldWaiters.push(resolve));
  }

  async put(key: string, body: ObjectBody): Promise<void> {
    await this.hangIfCrashed();
    if (this.gate !== undefined) {
      for (const waiter of this.heldWaiters.splice(0)) waiter();
      await this.gate;
      await this.hangIfCrashed();
    }
    if (this.failPuts) throw Object.assign(new Error('injected PUT failure'), { retryable: false });
    this.puts++;
    await this.inner.put(key, body);
  }

  async get(key: string, range?: { start: number; endExclusive: number }): Promise<Buffer> {
    await this.hangIfCrashed();
    return this.inner.get(key, range);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    await this.hangIfCrashed();
    return this.inner.head(key);
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    await this.hangIfCrashed();
    return this.inner.list(prefix);
  }

  async delete(keys: string[]): Promise<void> {
    await this.hangIfCrashed();
    this.deletes++;
    await this.inner.delete(keys);
  }

  async close(): Promise<void> {}

  private async hangIfCrashed(): Promise<void> {
    if (this.crashed) await new Promise<never>(() => {});
  }
}

let dir: string;
let base: LocalObjectStore;
let owners: MemoryWalOwnerStore;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-object-wal-'));
  base = new LocalObjectStore(path.join(dir, 'objects'));
  owners = new MemoryWalOwnerStore();
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function openWal(
  store: ObjectStore,
  options: Partial<ObjectWalOptions> = {},
): Promise<{ wal: ObjectWal; recovered: WalRecord[] }> {
  const wal = await ObjectWal.open({
    objectStore: store,
    owners,
    nodeId: 7,
    intervalMs: 50,
    maxObjectBytes: 64 * KiB,
    capacityBytes: 1 * MiB,
    ...options,
  });
  const recovered: WalRecord[] = [];
  for await (const record of wal.recover()) recovered.push(record);
  return { wal, recovered };
}

/** A payload whose bytes are derived from (streamId, baseOffset), so a mix-up shows. */
function payload(streamId: number, baseOffset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  for (let i = 0; i < length; i++) buf[i] = (streamId * 31 + baseOffset * 7 + i) & 0xff;
  return buf;
}

function summary(records: WalRecord[]): string[] {
  return records.map((r) => `${r.streamId}:${r.epoch}:${r.baseOffset}+${r.offsetCount}:${r.batch.length}`);
}

function expectPayloads(records: WalRecord[]): void {
  for (const r of records) expect(r.batch.equals(payload(r.streamId, r.baseOffset, r.batch.length))).toBe(true);
}

async function walKeys(): Promise<string[]> {
  return (await base.list('wal/7/')).map((info) => info.key);
}

function settled<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; err: unknown }> {
  return promise.then((value) => ({ ok: true as const, value }), (err: unknown) => ({ ok: false as const, err }));
}

describe('object WAL', () => {
  it('puts the appends of one interval as one object, and resolves them all once it is written', async () => {
    const store = new ControlledStore(base);
    const { wal } = await openWal(store, { intervalMs: 100 });
    const appends: Promise<number>[] = [];
    for (let i = 0; i < 200; i++) appends.push(wal.append(i % 4, 1, i * 10, 10, payload(i % 4, i * 10, 100)));
    const ends = await Promise.all(appends);
    expect(store.puts).toBe(1);
    expect(wal.stats()).toMatchObject({ writes: 1, records: 200 });
    for (let i = 1; i < ends.length; i++) expect(ends[i]!).toBeGreaterThan(ends[i - 1]!);
    expect(await walKeys()).toEqual([walObjectKey('', 7, wal.epoch, 0)]);
    await wal.close();
  });

  it('frees each object\'s bytes once it is stored, unless a PUT attempt was abandoned and may still read them', async () => {
    const bodies: Buffer[] = [];
    let slowPuts = 0;
    const recording: ObjectStore = {
      put: async (key, body) => {
        bodies.push(body as Buffer);
        if (slowPuts > 0) {
          slowPuts--;
          await new Promise((resolve) => setTimeout(resolve, 200)); // outlives its timeout
        }
        return base.put(key, body);
      },
      get: (key, range) => base.get(key, range),
      head: (key) => base.head(key),
      list: (prefix) => base.list(prefix),
      delete: (keys) => base.delete(keys),
      close: async () => {},
    };
    const store = new RetryingObjectStore(recording, { baseDelayMs: 1, timeoutMs: 100, timeoutMsPerMiB: 0 });
    const { wal } = await openWal(store);
    await Promise.all([0, 1, 2].map((i) => wal.append(1, 1, i * 10, 10, payload(1, i * 10, 5000))));
    expect(bodies).toHaveLength(1);
    expect((bodies[0]!.buffer as ArrayBuffer).detached).toBe(true);
    slowPuts = 1;
    await Promise.all([3, 4].map((i) => wal.append(1, 1, i * 10, 10, payload(1, i * 10, 5000))));
    expect(bodies).toHaveLength(3); // the abandoned attempt and its retry, with the same bytes
    expect(bodies[1]).toBe(bodies[2]);
    expect((bodies[1]!.buffer as ArrayBuffer).detached).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 250)); // the abandoned attempt ends
    await wal.close();
    const { recovered } = await openWal(base);
    expect(summary(recovered)).toEqual([0, 1, 2, 3, 4].map((i) => `1:1:${i * 10}+10:5000`));
    expectPayloads(recovered);
  });

  it('makes at most one PUT per interval, and an idle WAL puts at once', async () => {
    const store = new ControlledStore(base);
    const { wal } = await openWal(store, { intervalMs: 200 });
    const idleStart = performance.now();
    await wal.append(1, 1, 0, 1, payload(1, 0, 100));
    expect(performance.now() - idleStart).toBeLessThan(150); // no interval wait when idle
    const started = performance.now();
    const appends: Promise<number>[] = [];
    for (let i = 1; i <= 50; i++) {
      appends.push(wal.append(1, 1, i, 1, payload(1, i, 100)));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await Promise.all(appends);
    const elapsedMs = performance.now() - started;
    expect(store.puts - 1).toBeLessThanOrEqual(Math.ceil(elapsedMs / 200) + 1);
    expect(store.puts - 1).toBeGreaterThanOrEqual(Math.floor(elapsedMs / 200) - 1);
    await wal.close();
  });

  it('puts a batch as soon as it reaches the size bound, without waiting for the interval', async () => {
    const store = new ControlledStore(base);
    const { wal } = await openWal(store, { intervalMs: 60_000, maxObjectBytes: 64 * KiB });
    await wal.append(1, 1, 0, 1, payload(1, 0, 100)); // the idle WAL's PUT: the next one is an interval away
    const started = performance.now();
    const appends: Promise<number>[] = [];
    // 40 × ~4 KiB: two full objects go at once; the rest waits for the interval (or close).
    for (let i = 1; i <= 40; i++) appends.push(wal.append(1, 1, i, 1, payload(1, i, 4000)));
    await Promise.all(appends.slice(0, 32));
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(store.puts).toBe(3);
    await wal.close(); // writes what is queued
    await Promise.all(appends);
    expect(store.puts).toBe(4);
    const keys = await walKeys();
    expect(keys).toHaveLength(4);
    // Each key's sequence is the logical offset of its object's first record: the objects tile.
    const sequences = keys.map((key) => parseWalObjectKey('wal/7/', key)!.sequence);
    const sizes = (await base.list('wal/7/')).map((info) => info.sizeBytes);
    expect(sequences[0]).toBe(0);
    for (let i = 1; i < 4; i++) expect(sequences[i]).toBe(sequences[i - 1]! + sizes[i - 1]!);
  });

  it('recovers exactly the acknowledged records, in order, after a crash', async () => {
    const store = new ControlledStore(base);
    const { wal } = await openWal(store);
    const acked: Promise<number>[] = [];
    for (let i = 0; i < 300; i++) acked.push(wal.append(i % 3, 5, i * 2, 2, payload(i % 3, i * 2, 50 + (i % 7) * 300)));
    await Promise.all(acked);
    // Then the process dies with appends queued and a PUT held: none of them is acknowledged.
    store.closeGate();
    const lost = [wal.append(9, 5, 0, 1, payload(9, 0, 100)), wal.append(9, 5, 1, 1, payload(9, 1, 100))];
    await store.heldPut();
    store.crashed = true;
    store.releaseGate();

    const { wal: next, recovered } = await openWal(base);
    expect(next.epoch).toBe(wal.epoch + 1);
    const expected = Array.from({ length: 300 }, (_, i) => `${i % 3}:5:${i * 2}+2:${50 + (i % 7) * 300}`);
    expect(summary(recovered)).toEqual(expected);
    expectPayloads(recovered);
    for (let i = 1; i < recovered.length; i++) expect(recovered[i]!.walOffset).toBe(recovered[i - 1]!.walEndOffset);
    expect(lost).toHaveLength(2);

    // New writes continue after the recovered objects, under the new epoch.
    const end = await next.append(1, 6, 1000, 1, payload(1, 1000, 10));
    expect(end).toBeGreaterThan(recovered.at(-1)!.walEndOffset);
    expect((await walKeys()).at(-1)!.startsWith(`wal/7/${String(next.epoch).padStart(10, '0')}/`)).toBe(true);
    await next.close();
  });

  it('trim deletes the objects whose records all lie below the trim point', async () => {
    const store = new ControlledStore(base);
    const { wal } = await openWal(store, { intervalMs: 10 });
    const ends: number[] = [];
    for (let round = 0; round < 4; round++) {
      ends.push(await wal.append(1, 1, round, 1, payload(1, round, 1000)));
    }
    expect(await walKeys()).toHaveLength(4);
    expect(wal.usedBytes()).toBe(ends[3]);
    await wal.trim(ends[1]!);
    expect(await walKeys()).toEqual(wal.liveObjectKeys());
    expect(wal.liveObjectKeys()).toHaveLength(2);
    expect(wal.usedBytes()).toBe(ends[3]! - ends[1]!);
    await wal.trim(ends[1]! + 10); // inside the third object: nothing to delete
    expect(await walKeys()).toHaveLength(2);
    await expect(wal.trim(ends[3]! + 1)).rejects.toThrow(/past the written end/);
    await wal.trim(ends[3]!);
    expect(await walKeys()).toEqual([]);
    expect(wal.usedBytes()).toBe(0);
    await wal.close();

    const { recovered } = await openWal(base);
    expect(recovered).toEqual([]);
  });

  it('a newer owner fences the older writer: it acknowledges nothing more and deletes nothing', async () => {
    const oldStore = new ControlledStore(base);
    const { wal: old } = await openWal(oldStore, { intervalMs: 10 });
    const ackedEnd = await old.append(1, 1, 0, 1, payload(1, 0, 100));

    const { wal: owner, recovered } = await openWal(base);
    expect(summary(recovered)).toEqual(['1:1:0+1:100']);

    const fenced = await settled(old.append(1, 1, 1, 1, payload(1, 1, 100)));
    expect(fenced.ok).toBe(false);
    expect((fenced as { err: unknown }).err).toBeInstanceOf(WalFencedError);
    await expect(old.append(1, 1, 2, 1, payload(1, 2, 100))).rejects.toBeInstanceOf(WalFencedError);
    await expect(old.trim(ackedEnd)).rejects.toBeInstanceOf(WalFencedError);
    expect(oldStore.deletes).toBe(0);
    await old.close();
    await owner.close();
  });

  it('objects a fenced writer puts after the new owner listed the WAL are never replayed', async () => {
    const oldStore = new ControlledStore(base);
    const { wal: old } = await openWal(oldStore, { intervalMs: 10 });
    await old.append(1, 1, 0, 1, payload(1, 0, 100));
    // The old writer's next PUT stalls past the new owner's claim, listing and seal...
    oldStore.closeGate();
    const zombie = settled(old.append(1, 1, 1, 1, payload(1, 1, 100)));
    await oldStore.heldPut();
    const { wal: owner, recovered } = await openWal(base);
    expect(summary(recovered)).toEqual(['1:1:0+1:100']);
    // ...then lands: the writer sees it is fenced and does not acknowledge it.
    oldStore.releaseGate();
    const outcome = await zombie;
    expect(outcome.ok).toBe(false);
    expect((outcome as { err: unknown }).err).toBeInstanceOf(WalFencedError);
    const zombieKey = walObjectKey('', 7, old.epoch, recovered[0]!.walEndOffset);
    expect(await walKeys()).toContain(zombieKey);
    await old.close();

    // The new owner crashes before trimming; the next recovery replays what the seal allows
    // (the first object again) but not the zombie's object, and deletes it.
    const { wal: third, recovered: again } = await openWal(base);
    expect(summary(again)).toEqual(['1:1:0+1:100']);
    expect(await walKeys()).not.toContain(zombieKey);
    await owner.close();
    await third.close();
  });

  it('replays a damaged object up to the damage and goes on with the next objects', async () => {
    const { wal } = await openWal(base, { intervalMs: 10 });
    for (let i = 0; i < 3; i++) {
      await Promise.all([0, 1, 2].map((j) => wal.append(i, 1, j, 1, payload(i, j, 500))));
    }
    await wal.close();
    const keys = await walKeys();
    expect(keys).toHaveLength(3);
    // Object 0: a bit flipped in its second record's payload. Object 1: cut inside its last record.
    const first = await base.get(keys[0]!);
    const recordSize = first.length / 3;
    first[recordSize + 200] ^= 0x10;
    await base.put(keys[0]!, first);
    const second = await base.get(keys[1]!);
    await base.put(keys[1]!, second.subarray(0, second.length - 100));

    const { wal: next, recovered } = await openWal(base);
    expect(summary(recovered)).toEqual([
      '0:1:0+1:500',
      '1:1:0+1:500', '1:1:1+1:500',
      '2:1:0+1:500', '2:1:1+1:500', '2:1:2+1:500',
    ]);
    expectPayloads(recovered);
    // Trimming to the last replayed record releases the damaged objects too.
    await next.trim(recovered.at(-1)!.walEndOffset);
    expect(await walKeys()).toEqual([]);
    await next.close();
  });

  it('appends wait while the capacity is used up, call the pressure listener, and go on after a trim', async () => {
    const { wal } = await openWal(base, { intervalMs: 5, maxObjectBytes: 16 * KiB, capacityBytes: 32 * KiB });
    let pressure = 0;
    wal.setPressureListener(() => pressure++);
    const first = await wal.append(1, 1, 0, 1, payload(1, 0, 15 * KiB));
    const second = await wal.append(1, 1, 1, 1, payload(1, 1, 15 * KiB));
    expect(pressure).toBeGreaterThan(0);
    let thirdDone = false;
    const third = wal.append(1, 1, 2, 1, payload(1, 2, 15 * KiB)).then((end) => {
      thirdDone = true;
      return end;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(thirdDone).toBe(false);
    expect(wal.usedBytes()).toBeLessThanOrEqual(wal.capacityBytes());
    await wal.trim(first);
    expect(await third).toBeGreaterThan(second);
    await wal.close();
  });

  it('a PUT that still fails after the store retried rejects its appends and stops the WAL', async () => {
    const store = new ControlledStore(base);
    const { wal } = await openWal(store, { intervalMs: 5 });
    await wal.append(1, 1, 0, 1, payload(1, 0, 10));
    store.failPuts = true;
    const failing = [wal.append(1, 1, 1, 1, payload(1, 1, 10)), wal.append(2, 1, 0, 1, payload(2, 0, 10))];
    for (const append of failing) await expect(append).rejects.toThrow(/injected PUT failure/);
    store.failPuts = false;
    await expect(wal.append(3, 1, 0, 1, payload(3, 0, 10))).rejects.toThrow(/injected PUT failure/);
    await wal.close();
  });

  it('close() puts what is queued instead of waiting for the interval', async () => {
    const store = new ControlledStore(base);
    const { wal } = await openWal(store, { intervalMs: 60_000 });
    const append = wal.append(1, 1, 0, 1, payload(1, 0, 10));
    await wal.close();
    expect(await append).toBeGreaterThan(0);
    expect(store.puts).toBe(1);
    await expect(wal.append(1, 1, 1, 1, payload(1, 1, 10))).rejects.toThrow(/closed/);
  });

  it('under stream storage, acknowledged batches survive a crash and are uploaded by the recovery', async () => {
    const metadata = new MemoryStreamMetadata();
    const store = new ControlledStore(base);
    const wal = await ObjectWal.open({ objectStore: store, owners, nodeId: 7, intervalMs: 50, maxObjectBytes: 64 * KiB, capacityBytes: MiB });
    const storage = new StreamStorageImpl({ nodeId: 7, wal, metadata, objectStore: base, uploadIntervalMs: 3_600_000 });
    await storage.start();
    const stream = await storage.createStream();
    const batches: Buffer[] = [];
    for (let round = 0; round < 5; round++) {
      const appends: Promise<void>[] = [];
      for (let i = 0; i < 20; i++) {
        const batch = fakeBatch(stream.nextOffset(), 2);
        batches.push(batch);
        appends.push(stream.append({ baseOffset: stream.nextOffset(), offsetCount: 2, batch }));
      }
      await Promise.all(appends);
    }
    storage.halt();
    store.crashed = true;

    const next = await ObjectWal.open({ objectStore: base, owners, nodeId: 7, intervalMs: 50, maxObjectBytes: 64 * KiB, capacityBytes: MiB });
    const recovered = new StreamStorageImpl({ nodeId: 7, wal: next, metadata, objectStore: base, uploadIntervalMs: 3_600_000 });
    await recovered.start();
    // Recovery uploaded everything and trimmed the WAL: no WAL object is left.
    expect(await walKeys()).toEqual([]);
    const reopened = await recovered.openStream(stream.streamId);
    expect(reopened.nextOffset()).toBe(200);
    const read: Buffer[] = [];
    let offset = 0;
    while (offset < 200) {
      const result = await reopened.read(offset, MiB);
      read.push(...result.batches);
      offset = result.nextOffset;
    }
    expect(Buffer.concat(read).equals(Buffer.concat(batches))).toBe(true);
    await recovered.shutdown();
  });
});

/** A frame shaped like a Kafka v2 record batch: base offset, length, magic, lastOffsetDelta. */
function fakeBatch(baseOffset: number, offsetCount: number, sizeBytes = 200): Buffer {
  const batch = Buffer.alloc(sizeBytes);
  batch.writeBigInt64BE(BigInt(baseOffset), 0);
  batch.writeInt32BE(sizeBytes - 12, 8);
  batch.writeInt8(2, 16);
  batch.writeInt32BE(offsetCount - 1, 23);
  for (let i = 61; i < sizeBytes; i++) batch[i] = (baseOffset + i) & 0xff;
  return batch;
}
