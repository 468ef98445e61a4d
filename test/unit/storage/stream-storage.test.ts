import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { register } from 'prom-client';
import { FaultyObjectStore } from '../../../src/storage/objectstore/faulty.ts';
import { LocalObjectStore } from '../../../src/storage/objectstore/local.ts';
import { StreamStorageImpl } from '../../../src/storage/stream-storage.ts';
import type { StreamStorageOptions } from '../../../src/storage/stream-storage.ts';
import type { Stream } from '../../../src/storage/stream.ts';
import { FileWal } from '../../../src/storage/wal/file-wal.ts';
import { MemoryStreamMetadata } from './memory-stream-metadata.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A frame shaped like a Kafka v2 record batch: base offset, length, magic, lastOffsetDelta; payload bytes tagged. */
function fakeBatch(baseOffset: number, offsetCount: number, sizeBytes = 200, tag = 0): Buffer {
  const batch = Buffer.alloc(sizeBytes);
  batch.writeBigInt64BE(BigInt(baseOffset), 0);
  batch.writeInt32BE(sizeBytes - 12, 8);
  batch.writeInt8(2, 16);
  batch.writeInt32BE(offsetCount - 1, 23);
  for (let i = 61; i < sizeBytes; i++) batch[i] = (baseOffset + tag + i) & 0xff;
  return batch;
}

function baseOf(batch: Buffer): number {
  return Number(batch.readBigInt64BE(0));
}

let dir: string;
let metadata: MemoryStreamMetadata;
let objectStore: LocalObjectStore;
const live: StreamStorageImpl[] = [];
const wals: FileWal[] = [];

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-streams-'));
  metadata = new MemoryStreamMetadata();
  objectStore = new LocalObjectStore(path.join(dir, 'objects'));
});

afterEach(async () => {
  for (const storage of live.splice(0)) await storage.shutdown().catch(() => {});
  for (const wal of wals.splice(0)) await wal.close().catch(() => {});
  await fs.rm(dir, { recursive: true, force: true });
});

async function newStorage(
  options: Partial<StreamStorageOptions> & { walName?: string; walCapacityBytes?: number; nodeId?: number } = {},
): Promise<StreamStorageImpl> {
  const wal = await FileWal.open({
    path: path.join(dir, options.walName ?? 'wal'),
    capacityBytes: options.walCapacityBytes ?? 4 * MiB,
    maxWriteBytes: 64 * KiB,
  });
  wals.push(wal);
  const storage = new StreamStorageImpl({
    nodeId: options.nodeId ?? 1,
    wal,
    metadata,
    objectStore,
    uploadIntervalMs: 3_600_000,
    uploadSizeBytes: 64 * MiB,
    ...options,
  });
  live.push(storage);
  await storage.start();
  return storage;
}

/** Appends count batches of offsetsPerBatch offsets each, all in flight at once. */
async function appendBatches(stream: Stream, count: number, offsetsPerBatch = 3, sizeBytes = 200): Promise<Buffer[]> {
  const batches: Buffer[] = [];
  const appends: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const batch = fakeBatch(stream.nextOffset(), offsetsPerBatch, sizeBytes, stream.streamId);
    batches.push(batch);
    appends.push(stream.append({ baseOffset: stream.nextOffset(), offsetCount: offsetsPerBatch, batch }));
  }
  await Promise.all(appends);
  return batches;
}

/** Reads the stream from startOffset to its confirmed end in reads of maxBytes. */
async function readAll(stream: Stream, startOffset = 0, maxBytes = 1000): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let next = startOffset;
  while (next < stream.confirmedOffset()) {
    const result = await stream.read(next, maxBytes);
    expect(result.batches.length).toBeGreaterThan(0);
    out.push(...result.batches);
    next = result.nextOffset;
  }
  return out;
}

async function metricValue(name: string): Promise<number> {
  const metric = await register.getSingleMetric(name)?.get();
  return metric?.values[0]?.value ?? 0;
}

function expectSameBatches(actual: Buffer[], expected: Buffer[]): void {
  expect(actual.map(baseOf)).toEqual(expected.map(baseOf));
  actual.forEach((batch, i) => expect(batch.equals(expected[i]!)).toBe(true));
}

describe('stream storage', () => {
  it('serves appended batches from the log cache, in offset order, up to the confirmed offset', async () => {
    const storage = await newStorage();
    const stream = await storage.createStream();
    expect(stream.epoch).toBe(1);
    const first = fakeBatch(0, 5);
    const pending = stream.append({ baseOffset: 0, offsetCount: 5, batch: first });
    expect(stream.nextOffset()).toBe(5);
    expect(stream.confirmedOffset()).toBe(0);
    expect(await stream.read(0, 1000)).toEqual({ batches: [], nextOffset: 0 });
    await pending;
    expect(stream.confirmedOffset()).toBe(5);

    const rest = await appendBatches(stream, 20);
    expect(stream.confirmedOffset()).toBe(65);
    expectSameBatches(await readAll(stream, 0, 450), [first, ...rest]);
    // A read from inside a batch starts at the batch holding the offset.
    const middle = await stream.read(7, 1);
    expect(middle.batches.map(baseOf)).toEqual([5]);
    expect(middle.nextOffset).toBe(8);
    // Wrong base offsets are refused; offsets outside the stream are out of range.
    expect(() => stream.append({ baseOffset: 3, offsetCount: 1, batch: fakeBatch(3, 1) })).toThrow();
    await expect(stream.read(66, 100)).rejects.toThrow(/outside/);
    await stream.trim(7);
    expect(stream.startOffset()).toBe(7);
    await expect(stream.read(4, 100)).rejects.toMatchObject({ name: 'OffsetOutOfRangeError' });
    expect((await stream.read(7, 1)).batches.map(baseOf)).toEqual([5]);
  });

  it('after flush, a fresh node with an empty WAL reads everything from objects', async () => {
    const storage = await newStorage();
    const a = await storage.createStream();
    const b = await storage.createStream();
    const batchesA = await appendBatches(a, 30, 2, 300);
    const batchesB = await appendBatches(b, 10, 7, 1000);
    await storage.flush();
    expect(metadata.objects()).toHaveLength(1);
    expect(await metadata.getStream(a.streamId)).toMatchObject({ endOffset: 60 });
    expect(await metadata.getStream(b.streamId)).toMatchObject({ endOffset: 70 });
    expect(storage.cache.unuploadedBytes()).toBe(0);
    await storage.shutdown();
    await fs.rm(path.join(dir, 'wal'));

    const fresh = await newStorage();
    const a2 = await fresh.openStream(a.streamId);
    const b2 = await fresh.openStream(b.streamId);
    expect(a2.epoch).toBe(2);
    expect([a2.nextOffset(), a2.confirmedOffset()]).toEqual([60, 60]);
    expectSameBatches(await readAll(a2, 0, 1000), batchesA);
    expectSameBatches(await readAll(b2, 0, 3000), batchesB);
    expectSameBatches(await readAll(b2, 30, 100_000), batchesB.slice(4));
    // The stream goes on where the objects end.
    const more = await appendBatches(a2, 3, 2, 300);
    expectSameBatches(await readAll(a2, 55, 100_000), [...batchesA.slice(27), ...more]);
  });

  it('reads batches evicted from the log cache back from objects', async () => {
    const storage = await newStorage({ logCacheSizeBytes: 8 * KiB });
    const stream = await storage.createStream();
    const batches = await appendBatches(stream, 100, 1, 500);
    await storage.flush();
    const more = await appendBatches(stream, 10, 1, 500);
    await storage.flush();
    expect(storage.cache.sizeBytes()).toBeLessThanOrEqual(8 * KiB);
    // 50 KiB through an 8 KiB cache: appends waited for uploads of 8 KiB or so at a time.
    expect(metadata.objects().length).toBeGreaterThanOrEqual(6);
    // Reads cross from objects into the cache and across objects.
    expectSameBatches(await readAll(stream, 0, 4000), [...batches, ...more]);
    expectSameBatches((await stream.read(95, 100_000)).batches.slice(0, 5), batches.slice(95));
  });

  it('recovers every acknowledged append after a crash, exactly once', async () => {
    const crashed = await newStorage();
    const a = await crashed.createStream();
    const b = await crashed.createStream();
    const uploadedA = await appendBatches(a, 10);
    await crashed.flush();
    const walOnlyA = await appendBatches(a, 25);
    const walOnlyB = await appendBatches(b, 40, 1, 700);
    // Crash: no flush, no shutdown; the process' file handles go away.
    crashed.halt();
    await wals[0]!.close();
    // Keep the WAL as it is now, to replay it once more below.
    await fs.copyFile(path.join(dir, 'wal'), path.join(dir, 'wal-before-recovery'));

    const restarted = await newStorage();
    expect(await metadata.getStream(a.streamId)).toMatchObject({ endOffset: 105 });
    expect(await metadata.getStream(b.streamId)).toMatchObject({ endOffset: 40 });
    const a2 = await restarted.openStream(a.streamId);
    const b2 = await restarted.openStream(b.streamId);
    expect(a2.nextOffset()).toBe(105);
    expectSameBatches(await readAll(a2), [...uploadedA, ...walOnlyA]);
    expectSameBatches(await readAll(b2), walOnlyB);
    // The recovered data was uploaded once: a node with an empty WAL sees it all.
    await restarted.shutdown();
    await fs.rm(path.join(dir, 'wal'));
    const third = await newStorage();
    expectSameBatches(await readAll(await third.openStream(a.streamId)), [...uploadedA, ...walOnlyA]);
    // Nothing is replayed twice: not after a clean restart, nor from a WAL whose records were
    // all committed (a crash after the upload's commit, before its WAL trim).
    const before = metadata.objects().length;
    await third.shutdown();
    await newStorage();
    const replay = await newStorage({ walName: 'wal-before-recovery' });
    expect(metadata.objects().length).toBe(before);
    expectSameBatches(await readAll(await replay.openStream(b.streamId)), walOnlyB);
  });

  it('retries the recovery upload when the object commit fails at first', async () => {
    const crashed = await newStorage();
    const stream = await crashed.createStream();
    const batches = await appendBatches(stream, 8);
    crashed.halt();
    await wals[0]!.close();
    metadata.failNextCommits = 2;
    const restarted = await newStorage();
    expect(metadata.failNextCommits).toBe(0);
    expectSameBatches(await readAll(await restarted.openStream(stream.streamId)), batches);
    expect(metadata.objects()).toHaveLength(1);
  });

  it('fences an old owner: its commit fails once another node has re-opened the stream', async () => {
    const oldNode = await newStorage({ nodeId: 1, walName: 'wal-1' });
    const shared = await oldNode.createStream();
    const other = await oldNode.createStream();
    await appendBatches(shared, 5);
    const otherBatches = await appendBatches(other, 5);

    const newNode = await newStorage({ nodeId: 2, walName: 'wal-2' });
    const taken = await newNode.openStream(shared.streamId);
    expect(taken.epoch).toBe(shared.epoch + 1);
    const newBatches = await appendBatches(taken, 4, 1, 400);
    await newNode.flush();

    await expect(oldNode.flush()).rejects.toMatchObject({ name: 'StreamFencedError' });
    await expect(shared.append({ baseOffset: 15, offsetCount: 1, batch: fakeBatch(15, 1) })).rejects.toMatchObject({
      name: 'StreamFencedError',
    });
    // The stream holds the new owner's data; the old owner's other stream was still uploaded.
    expect(await metadata.getStream(shared.streamId)).toMatchObject({ endOffset: 4 });
    expectSameBatches(await readAll(taken), newBatches);
    expect(await metadata.getStream(other.streamId)).toMatchObject({ endOffset: 15 });
    expectSameBatches(await readAll(other), otherBatches);
  });

  it('keeps the data and retries when an upload fails', async () => {
    const storage = await newStorage();
    const stream = await storage.createStream();
    const batches = await appendBatches(stream, 10);
    metadata.failNextCommits = 1;
    await expect(storage.flush()).rejects.toThrow(/injected/);
    expectSameBatches(await readAll(stream), batches);
    await storage.flush();
    expect(await metadata.getStream(stream.streamId)).toMatchObject({ endOffset: 30 });
    expect(metadata.objects()).toHaveLength(1);
    await storage.shutdown();
    await fs.rm(path.join(dir, 'wal'));
    const fresh = await newStorage();
    expectSameBatches(await readAll(await fresh.openStream(stream.streamId)), batches);
  });

  it('uploads on its own once enough data waits, and when the WAL fills up', async () => {
    const bySize = await newStorage({ uploadSizeBytes: 16 * KiB, walName: 'wal-a' });
    const s1 = await bySize.createStream();
    await appendBatches(s1, 100, 1, 500);
    await expect.poll(() => metadata.objects().length).toBeGreaterThan(0);

    // A WAL of 256 KiB takes 1 MiB of appends: pressure forces uploads that release space.
    const byPressure = await newStorage({ walName: 'wal-b', walCapacityBytes: 256 * KiB });
    const s2 = await byPressure.createStream();
    const batches: Buffer[] = [];
    for (let round = 0; round < 16; round++) batches.push(...(await appendBatches(s2, 16, 1, 4000)));
    expect((await metadata.getStream(s2.streamId))!.endOffset).toBeGreaterThan(0);
    expectSameBatches(await readAll(s2, 0, 100_000), batches);
    await byPressure.flush();
    expect((await metadata.getStream(s2.streamId))!.endOffset).toBe(256);
  });

  it('slows appends (they wait, in order) while unuploaded data fills the log cache, and loses nothing', async () => {
    // Every PUT fails until the store "recovers": uploads cannot keep up at all.
    const faulty = new FaultyObjectStore(objectStore, { errorRate: 1, lostResponseFraction: 0, ops: ['put'] });
    const cacheBytes = 64 * KiB;
    const storage = await newStorage({ objectStore: faulty, logCacheSizeBytes: cacheBytes, uploadSizeBytes: 16 * KiB, uploadIntervalMs: 50 });
    const [a, b] = [await storage.createStream(), await storage.createStream()];
    const waitsBefore = await metricValue('wharf_stream_append_waits_total');
    const sent = new Map<Stream, Buffer[]>([[a, []], [b, []]]);
    const acked: number[] = [];
    const appends: Promise<void>[] = [];
    for (let i = 0; i < 60; i++) {
      const stream = i % 2 === 0 ? a : b;
      const batch = fakeBatch(stream.nextOffset(), 2, 2 * KiB, stream.streamId);
      sent.get(stream)!.push(batch);
      appends.push(stream.append({ baseOffset: stream.nextOffset(), offsetCount: 2, batch }).then(() => { acked.push(i); }));
    }
    // 120 KiB were sent into a 64 KiB cache: about half is acknowledged, the rest waits.
    await expect.poll(() => acked.length).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(storage.cache.unuploadedBytes()).toBeLessThanOrEqual(cacheBytes);
    expect(acked.length).toBeLessThanOrEqual(cacheBytes / (2 * KiB));
    expect(storage.waitingAppends()).toBe(60 - acked.length);
    expect(await metricValue('wharf_stream_append_waits_total')).toBeGreaterThan(waitsBefore);

    faulty.setEnabled(false);
    await Promise.all(appends);
    expect(acked).toEqual([...acked].sort((x, y) => x - y)); // acknowledged in the order sent
    expect(storage.waitingAppends()).toBe(0);
    for (const [stream, batches] of sent) expectSameBatches(await readAll(stream, 0, 100_000), batches);
    await storage.flush();
    expect((await metadata.getStream(a.streamId))!.endOffset).toBe(60);
  });

  it('fails the appends still waiting for room when the storage stops', async () => {
    const faulty = new FaultyObjectStore(objectStore, { errorRate: 1, lostResponseFraction: 0, ops: ['put'] });
    const storage = await newStorage({ objectStore: faulty, logCacheSizeBytes: 8 * KiB, uploadIntervalMs: 50 });
    const stream = await storage.createStream();
    const appends = Array.from({ length: 8 }, () => {
      const batch = fakeBatch(stream.nextOffset(), 1, 2 * KiB);
      return stream.append({ baseOffset: stream.nextOffset(), offsetCount: 1, batch });
    });
    await expect.poll(() => storage.waitingAppends()).toBe(4);
    storage.halt();
    const results = await Promise.allSettled(appends);
    expect(results.slice(0, 4).every((r) => r.status === 'fulfilled')).toBe(true);
    expect(results.slice(4).map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
  });

  it('uploads and trims while appends keep coming; a crash then loses nothing', async () => {
    const busy = await newStorage({ uploadSizeBytes: 24 * KiB, walCapacityBytes: 256 * KiB, logCacheSizeBytes: 64 * KiB });
    const streams = [await busy.createStream(), await busy.createStream(), await busy.createStream()];
    const written: Buffer[][] = streams.map(() => []);
    for (let wave = 0; wave < 30; wave++) {
      const appends: Promise<void>[] = [];
      streams.forEach((stream, i) => {
        for (let k = 0; k < 1 + ((wave + i) % 4); k++) {
          const batch = fakeBatch(stream.nextOffset(), 1 + (k % 3), 300 + ((wave * 7 + k * 131) % 3000), i);
          written[i]!.push(batch);
          appends.push(stream.append({ baseOffset: stream.nextOffset(), offsetCount: 1 + (k % 3), batch }));
        }
      });
      await Promise.all(appends);
    }
    expect(metadata.objects().length).toBeGreaterThan(1);
    for (let i = 0; i < streams.length; i++) expectSameBatches(await readAll(streams[i]!, 0, 5000), written[i]!);
    busy.halt();
    await wals[0]!.close();

    const restarted = await newStorage();
    for (let i = 0; i < streams.length; i++) {
      const reopened = await restarted.openStream(streams[i]!.streamId);
      expect(reopened.nextOffset()).toBe(streams[i]!.nextOffset());
      expectSameBatches(await readAll(reopened, 0, 5000), written[i]!);
    }
  });

  it('closes a stream after uploading its data, so another node opens it complete', async () => {
    const first = await newStorage({ walName: 'wal-1' });
    const stream = await first.createStream();
    const batches = await appendBatches(stream, 12);
    await stream.close();
    await expect(stream.append({ baseOffset: 36, offsetCount: 1, batch: fakeBatch(36, 1) })).rejects.toThrow(/closed/);
    const second = await newStorage({ walName: 'wal-2', nodeId: 2 });
    const reopened = await second.openStream(stream.streamId);
    expect(reopened.nextOffset()).toBe(36);
    expectSameBatches(await readAll(reopened), batches);
  });
});
