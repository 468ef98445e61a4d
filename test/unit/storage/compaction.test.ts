// Upload policy and compaction on the real metadata (ClusterModel on the embedded store), the local
// object store and a file WAL: every record survives compaction byte for byte, and there are
// fewer objects after it.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterModel } from '../../../src/metadata/cluster-model.ts';
import { EmbeddedMetadataStore } from '../../../src/metadata/embedded.ts';
import { StorageMaintenance } from '../../../src/storage/maintenance.ts';
import { COMPACTION_READ_BYTES, CompactionConflictError, Compactor, RateLimiter } from '../../../src/storage/objects/compaction.ts';
import { DataObjectReader } from '../../../src/storage/objects/format.ts';
import { FaultyObjectStore, seededRandom } from '../../../src/storage/objectstore/faulty.ts';
import { LocalObjectStore } from '../../../src/storage/objectstore/local.ts';
import { RetryingObjectStore } from '../../../src/storage/objectstore/retrying.ts';
import { DEFAULT_UPLOAD_PART_BYTES, type ObjectStore } from '../../../src/storage/objectstore/objectstore.ts';
import { StreamStorageImpl } from '../../../src/storage/stream-storage.ts';
import type { Stream } from '../../../src/storage/stream.ts';
import { CountingStore } from '../../helpers/counting-store.ts';
import { FileWal } from '../../../src/storage/wal/file-wal.ts';

const KiB = 1024;
const PREFIX = 'data/';

let dir: string;
let metadataStore: EmbeddedMetadataStore;
let metadata: ClusterModel;
let objectStore: LocalObjectStore;
const storages: StreamStorageImpl[] = [];

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-compaction-'));
  metadataStore = await EmbeddedMetadataStore.open(path.join(dir, 'metadata'));
  metadata = new ClusterModel(metadataStore);
  objectStore = new LocalObjectStore(path.join(dir, 'objects'));
});

afterEach(async () => {
  for (const storage of storages.splice(0)) await storage.shutdown().catch(() => {});
  await metadataStore.close();
  await fs.rm(dir, { recursive: true, force: true });
});

async function newStorage(nodeId: number, options: { streamSplitSizeBytes?: number; walCapacityBytes?: number } = {}): Promise<StreamStorageImpl> {
  const wal = await FileWal.open({ path: path.join(dir, `wal-${nodeId}`), capacityBytes: options.walCapacityBytes ?? 8 << 20, maxWriteBytes: 256 * KiB });
  const storage = new StreamStorageImpl({
    nodeId,
    wal,
    metadata,
    objectStore,
    uploadIntervalMs: 3_600_000,
    objectKeyPrefix: PREFIX,
    objectBlockSizeBytes: 16 * KiB,
    streamSplitSizeBytes: options.streamSplitSizeBytes,
  });
  storages.push(storage);
  await storage.start();
  return storage;
}

function compactor(options: { targetObjectBytes?: number; streamSplitSizeBytes?: number; gcDelayMs?: number; objectStore?: ObjectStore } = {}): Compactor {
  return new Compactor({
    metadata,
    objectStore: options.objectStore ?? objectStore,
    objectKeyPrefix: PREFIX,
    blockSizeBytes: 16 * KiB,
    prepareTtlMs: 60_000,
    gcDelayMs: options.gcDelayMs ?? 0,
    targetObjectBytes: options.targetObjectBytes ?? 4 << 20,
    streamSplitSizeBytes: options.streamSplitSizeBytes ?? 256 * KiB,
    rateLimiter: new RateLimiter(1 << 30),
  });
}

/** A v2 batch header (base offset, length, magic, lastOffsetDelta, maxTimestamp) over random bytes. */
function batch(baseOffset: number, offsetCount: number, sizeBytes: number, timestampMs = 1_700_000_000_000): Buffer {
  const bytes = randomBytes(sizeBytes);
  bytes.writeBigInt64BE(BigInt(baseOffset), 0);
  bytes.writeInt32BE(sizeBytes - 12, 8);
  bytes.writeInt8(2, 16);
  bytes.writeInt32BE(offsetCount - 1, 23);
  bytes.writeBigInt64BE(BigInt(timestampMs), 35);
  return bytes;
}

async function append(stream: Stream, count: number, sizeBytes: number, written: Buffer[]): Promise<void> {
  const appends: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const b = batch(stream.nextOffset(), 1 + (i % 3), sizeBytes + ((i * 37) % 200));
    written.push(b);
    appends.push(stream.append({ baseOffset: stream.nextOffset(), offsetCount: 1 + (i % 3), batch: b }));
  }
  await Promise.all(appends);
}

/** Every batch of the stream from `from`, read from the objects metadata lists (not the cache). */
async function readFromObjects(streamId: number, from = 0): Promise<Buffer[]> {
  const state = (await metadata.getStream(streamId))!;
  const batches: Buffer[] = [];
  let next = Math.max(from, state.startOffset);
  while (next < state.endOffset) {
    const [ref] = await metadata.getObjects(streamId, next, state.endOffset, 1);
    expect(ref, `an object holds offset ${next} of stream ${streamId}`).toBeDefined();
    const reader = await DataObjectReader.open(objectStore, ref!.key, ref!.sizeBytes);
    const read = await reader.readRange(streamId, next, Number.MAX_SAFE_INTEGER);
    expect(read.nextOffset).toBe(ref!.endOffset);
    batches.push(...read.batches);
    next = read.nextOffset;
  }
  return batches;
}

/** Every batch of a stream opened by a new owner, through the stream read path. */
async function readThroughStream(stream: Stream): Promise<Buffer[]> {
  const batches: Buffer[] = [];
  for (let next = stream.startOffset(); next < stream.confirmedOffset(); ) {
    const result = await stream.read(next, 64 * KiB);
    batches.push(...result.batches);
    next = result.nextOffset;
  }
  return batches;
}

async function committedObjects(): Promise<number> {
  return (await metadata.listObjects(-1, 100_000)).length;
}

async function storedKeys(): Promise<string[]> {
  return (await objectStore.list(`${PREFIX}objects/`)).map((o) => o.key);
}

function expectSame(actual: Buffer[], expected: Buffer[]): void {
  expect(actual.length).toBe(expected.length);
  expect(Buffer.concat(actual).equals(Buffer.concat(expected))).toBe(true);
}

describe('upload policy', () => {
  it('gives a stream with at least the split size its own stream object; the rest share one stream set object', async () => {
    const storage = await newStorage(1, { streamSplitSizeBytes: 64 * KiB });
    const big = await storage.createStream();
    const smalls = [await storage.createStream(), await storage.createStream(), await storage.createStream()];
    const written = new Map<number, Buffer[]>([big, ...smalls].map((s) => [s.streamId, []]));
    await append(big, 100, 1000, written.get(big.streamId)!);
    for (const s of smalls) await append(s, 10, 500, written.get(s.streamId)!);
    await storage.flush();

    const objects = await metadata.listObjects(-1, 100);
    expect(objects.map((o) => o.ranges.map((r) => r.streamId))).toEqual([[big.streamId], smalls.map((s) => s.streamId)]);
    for (const object of objects) {
      for (const range of object.ranges) {
        const bytes = written.get(range.streamId)!.reduce((sum, b) => sum + b.length, 0);
        expect(range).toMatchObject({ rangeBytes: bytes, maxTimestampMs: 1_700_000_000_000 });
      }
    }
    for (const [streamId, batches] of written) expectSame(await readFromObjects(streamId), batches);
  });
});

describe('compaction', () => {
  /** 8 streams, many small uploads: one stream set object per flush. */
  async function produceMix(storage: StreamStorageImpl, rounds: number): Promise<{ streams: Stream[]; written: Map<number, Buffer[]> }> {
    const streams: Stream[] = [];
    for (let i = 0; i < 8; i++) streams.push(await storage.createStream());
    const written = new Map<number, Buffer[]>(streams.map((s) => [s.streamId, []]));
    for (let round = 0; round < rounds; round++) {
      for (const [i, stream] of streams.entries()) {
        // Two busy streams, six quiet ones.
        await append(stream, i < 2 ? 40 : 2 + (round % 3), 400 + i * 50, written.get(stream.streamId)!);
      }
      await storage.flush();
    }
    return { streams, written };
  }

  it('preserves every record byte for byte and reduces the object count', async () => {
    const storage = await newStorage(1);
    const { streams, written } = await produceMix(storage, 12);
    for (const [streamId, batches] of written) expectSame(await readFromObjects(streamId), batches);
    const before = await committedObjects();
    expect(before).toBe(12);

    const maintenance = new StorageMaintenance({
      metadata,
      objectStore,
      objectKeyPrefix: PREFIX,
      objectBlockSizeBytes: 16 * KiB,
      prepareTtlMs: 60_000,
      gcDelayMs: 0,
      compactionTargetObjectBytes: 4 << 20,
      streamSplitSizeBytes: 128 * KiB,
      compactionMaxBytesPerSecond: 1 << 30,
    });
    const jobs = await maintenance.compact();
    expect(jobs.length).toBeGreaterThan(0);
    const after = await committedObjects();
    expect(after).toBeLessThan(before);
    // The two busy streams (about 240 KiB each) got stream objects; the quiet ones share one object.
    const objects = await metadata.listObjects(-1, 100);
    const busyIds = new Set([streams[0]!.streamId, streams[1]!.streamId]);
    for (const object of objects) {
      if (object.ranges.some((r) => busyIds.has(r.streamId))) expect(object.ranges.length).toBe(1);
    }
    expect(objects.filter((o) => o.ranges.length > 1).length).toBe(1);
    for (const [streamId, batches] of written) expectSame(await readFromObjects(streamId), batches);

    // The old objects are deleted by the collector; a new owner reads everything from the new ones.
    const gc = await maintenance.collectGarbage();
    expect(gc.deletedObjects).toBe(before);
    expect((await storedKeys()).length).toBe(after);
    await storage.shutdown();
    const reader = await newStorage(2);
    for (const stream of streams) expectSame(await readThroughStream(await reader.openStream(stream.streamId)), written.get(stream.streamId)!);
  });

  it('merges contiguous small stream objects of one stream', async () => {
    const storage = await newStorage(1, { streamSplitSizeBytes: 1 });
    const stream = await storage.createStream();
    const written: Buffer[] = [];
    for (let round = 0; round < 6; round++) {
      await append(stream, 20, 700, written);
      await storage.flush();
    }
    expect(await committedObjects()).toBe(6);
    const result = await compactor({ streamSplitSizeBytes: 1 << 20 }).runOnce();
    expect(result).toMatchObject({ kind: 'stream', removedObjectIds: [0, 1, 2, 3, 4, 5] });
    expect(await committedObjects()).toBe(1);
    expectSame(await readFromObjects(stream.streamId), written);
    // Appends go on after the swap; reads from the start still see everything.
    await append(stream, 5, 300, written);
    await storage.flush();
    expectSame(await readFromObjects(stream.streamId), written);
  });

  it('drops data below the start offset and keeps the rest', async () => {
    const storage = await newStorage(1);
    const { streams, written } = await produceMix(storage, 4);
    const trimmed = streams[3]!;
    const batches = written.get(trimmed.streamId)!;
    const cut = Number(batches[5]!.readBigInt64BE(0)) + batches[5]!.readInt32BE(23); // the sixth batch's last offset
    await trimmed.trim(cut);
    await compactor().runOnce();
    const kept = await readFromObjects(trimmed.streamId);
    expectSame(kept, batches.slice(5)); // from the batch holding the new start
    const [first] = await metadata.getObjects(trimmed.streamId, 0, cut + 1, 1);
    expect(first!.startOffset).toBe(Number(batches[5]!.readBigInt64BE(0)));
    for (const stream of streams.filter((s) => s !== trimmed)) expectSame(await readFromObjects(stream.streamId), written.get(stream.streamId)!);
  });

  it('aborts cleanly when a stream is trimmed during the job, and goes on through concurrent commits', async () => {
    const storage = await newStorage(1);
    const { streams, written } = await produceMix(storage, 4);
    // A commit after planning only appends: the swap goes through.
    const compacting = compactor();
    const job = (await compacting.plan())!;
    await append(streams[0]!, 10, 500, written.get(streams[0]!.streamId)!);
    await storage.flush();
    await compacting.run(job);
    for (const [streamId, batches] of written) expectSame(await readFromObjects(streamId), batches);

    // A trim after planning aborts: nothing changes, the outputs are released at once.
    await produceMix(storage, 3);
    const objectsMid = await metadata.listObjects(-1, 100);
    const keysMid = await storedKeys();
    const next = (await compacting.plan())!;
    await streams[2]!.trim(3);
    await expect(compacting.run(next)).rejects.toBeInstanceOf(CompactionConflictError);
    expect(await metadata.listObjects(-1, 100)).toEqual(objectsMid);
    expect(await storedKeys()).toEqual(keysMid);
    expect(await metadata.listExpiredPreparedObjects(Number.MAX_SAFE_INTEGER)).toEqual([]);
  });

  it('runs in the background at its intervals, and stops', async () => {
    const storage = await newStorage(1);
    const { written } = await produceMix(storage, 6);
    const maintenance = new StorageMaintenance({
      metadata,
      objectStore,
      objectKeyPrefix: PREFIX,
      prepareTtlMs: 60_000,
      gcDelayMs: 0,
      compactionIntervalMs: 20,
      gcIntervalMs: 20,
      retentionCheckIntervalMs: 20,
      compactionMaxBytesPerSecond: 1 << 30,
    });
    maintenance.start();
    await expect.poll(async () => (await storedKeys()).length, { timeout: 5000 }).toBe(1);
    await maintenance.stop();
    expect(await committedObjects()).toBe(1);
    for (const [streamId, batches] of written) expectSame(await readFromObjects(streamId), batches);
  });

  it('holds a bounded share of a job in memory: reads of at most COMPACTION_READ_BYTES, the output uploaded in parts', async () => {
    // Three stream objects of ~10 MiB of one stream: one job, one 30 MiB output.
    const storage = await newStorage(1, { streamSplitSizeBytes: 1, walCapacityBytes: 32 << 20 });
    const stream = await storage.createStream();
    const written: Buffer[] = [];
    for (let round = 0; round < 3; round++) {
      await append(stream, 160, 64 * KiB, written);
      await storage.flush();
    }
    expect(await committedObjects()).toBe(3);
    const counting = new CountingStore(objectStore);
    const result = await compactor({ targetObjectBytes: 64 << 20, streamSplitSizeBytes: 32 << 20, objectStore: counting }).runOnce();
    expect(result).toMatchObject({ kind: 'stream', removedObjectIds: [0, 1, 2] });
    expect(result!.bytesRead).toBeGreaterThan(30 << 20);
    expect(await committedObjects()).toBe(1);
    expectSame(await readFromObjects(stream.streamId), written);
    // Whole-input reads would have taken 10 MiB at once and one 30 MiB PUT.
    expect(counting.largestGetBytes).toBeLessThanOrEqual(COMPACTION_READ_BYTES);
    expect(counting.puts).toBe(0);
    expect(counting.partUploads).toBeGreaterThanOrEqual(4);
    expect(counting.largestPutBytes).toBeLessThanOrEqual(DEFAULT_UPLOAD_PART_BYTES + 70 * KiB);
  });

  it('goes through 30% object-store faults (retried), and every record reads back after', async () => {
    const storage = await newStorage(1, { streamSplitSizeBytes: 1, walCapacityBytes: 32 << 20 });
    const streams = [await storage.createStream(), await storage.createStream()];
    const written = streams.map((): Buffer[] => []);
    for (let round = 0; round < 3; round++) {
      for (const [i, stream] of streams.entries()) await append(stream, 50, 64 * KiB, written[i]!);
      await storage.flush();
    }
    expect(await committedObjects()).toBe(6);
    const faulty = new FaultyObjectStore(objectStore, { errorRate: 0.2, slowDownRate: 0.05, timeoutRate: 0.05, hangMs: 2_000, random: seededRandom(11) });
    const retrying = new RetryingObjectStore(faulty, { maxAttempts: 12, baseDelayMs: 1, maxDelayMs: 20, timeoutMs: 300, timeoutMsPerMiB: 100 });
    const compacting = compactor({ targetObjectBytes: 64 << 20, streamSplitSizeBytes: 32 << 20, objectStore: retrying });
    const results = [await compacting.runOnce(), await compacting.runOnce()];
    expect(results.map((r) => r?.kind)).toEqual(['stream', 'stream']);
    expect(Object.values(faulty.injected).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(await committedObjects()).toBe(2);
    for (const [i, stream] of streams.entries()) expectSame(await readFromObjects(stream.streamId), written[i]!);
    expect(await metadata.listExpiredPreparedObjects(Number.MAX_SAFE_INTEGER)).toEqual([]);
  });

  it('paces its reads with the rate limiter', async () => {
    const limiter = new RateLimiter(4 << 20, 64 * KiB); // 4 MiB/s
    const started = performance.now();
    for (let i = 0; i < 5; i++) await limiter.take(128 * KiB);
    // 640 KiB at 4 MiB/s with a 64 KiB burst: at least ~140 ms.
    expect(performance.now() - started).toBeGreaterThan(120);
  });
});
