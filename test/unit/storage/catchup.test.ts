// Catch-up reads on real parts: stream storage on the cluster model (embedded metadata store) and
// the local object store, read back by a fresh storage (empty log cache, empty WAL) through a
// store wrapper that counts GETs (and can hold them back).
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterModel } from '../../../src/metadata/cluster-model.ts';
import { EmbeddedMetadataStore } from '../../../src/metadata/embedded.ts';
import { LocalObjectStore } from '../../../src/storage/objectstore/local.ts';
import { StreamStorageImpl } from '../../../src/storage/stream-storage.ts';
import type { StreamStorageOptions } from '../../../src/storage/stream-storage.ts';
import type { Stream } from '../../../src/storage/stream.ts';
import { FileWal } from '../../../src/storage/wal/file-wal.ts';
import { CountingStore } from '../../helpers/counting-store.ts';

const KiB = 1024;
const BLOCK_BYTES = 64 * KiB;
const BATCH_BYTES = 4 * KiB; // 16 batches a block
const BATCHES_PER_BLOCK = BLOCK_BYTES / BATCH_BYTES;
const OFFSETS_PER_BATCH = 4;

/** A frame shaped like a Kafka v2 record batch (base offset, length, magic, lastOffsetDelta), random payload. */
function randomBatch(baseOffset: number, offsetCount: number, sizeBytes: number): Buffer {
  const batch = randomBytes(sizeBytes);
  batch.writeBigInt64BE(BigInt(baseOffset), 0);
  batch.writeInt32BE(sizeBytes - 12, 8);
  batch.writeInt8(2, 16);
  batch.writeInt32BE(offsetCount - 1, 23);
  return batch;
}

let dir: string;
let metadataStore: EmbeddedMetadataStore;
let metadata: ClusterModel;
let store: CountingStore;
const storages: StreamStorageImpl[] = [];
const wals: FileWal[] = [];
let nextNodeId = 1;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-catchup-'));
  metadataStore = await EmbeddedMetadataStore.open(path.join(dir, 'metadata'));
  metadata = new ClusterModel(metadataStore);
  store = new CountingStore(new LocalObjectStore(path.join(dir, 'objects')));
});

afterEach(async () => {
  store.release();
  for (const storage of storages.splice(0)) await storage.shutdown().catch(() => {});
  for (const wal of wals.splice(0)) await wal.close().catch(() => {});
  await metadataStore.close();
  await fs.rm(dir, { recursive: true, force: true });
});

/** A storage of its own node, with an empty WAL of its own. */
async function newStorage(options: Partial<StreamStorageOptions> = {}): Promise<StreamStorageImpl> {
  const nodeId = nextNodeId++;
  const wal = await FileWal.open({ path: path.join(dir, `wal-${nodeId}`), capacityBytes: 8 << 20, maxWriteBytes: 256 << 10 });
  wals.push(wal);
  const storage = new StreamStorageImpl({
    nodeId,
    wal,
    metadata,
    objectStore: store,
    uploadIntervalMs: 3_600_000,
    objectBlockSizeBytes: BLOCK_BYTES,
    ...options,
  });
  storages.push(storage);
  await storage.start();
  return storage;
}

/** Appends `blocks` blocks' worth of batches and uploads them: one object (of `blocks` blocks) per call. */
async function appendObject(storage: StreamStorageImpl, stream: Stream, blocks: number, appended: Buffer[]): Promise<void> {
  const appends: Promise<void>[] = [];
  for (let i = 0; i < blocks * BATCHES_PER_BLOCK; i++) {
    const batch = randomBatch(stream.nextOffset(), OFFSETS_PER_BATCH, BATCH_BYTES);
    appended.push(batch);
    appends.push(stream.append({ baseOffset: stream.nextOffset(), offsetCount: OFFSETS_PER_BATCH, batch }));
  }
  await Promise.all(appends);
  await storage.flush();
}

/** Writes streams × objects × blocks, then closes the writer: everything is in objects. */
async function writeStreams(streamCount: number, objects: number, blocksPerObject: number): Promise<{ streamIds: number[]; appended: Buffer[][] }> {
  const writer = await newStorage();
  const streams: Stream[] = [];
  for (let s = 0; s < streamCount; s++) streams.push(await writer.createStream());
  const appended: Buffer[][] = streams.map(() => []);
  for (let o = 0; o < objects; o++) {
    for (let s = 0; s < streamCount; s++) await appendObject(writer, streams[s]!, blocksPerObject, appended[s]!);
  }
  for (const stream of streams) await stream.close();
  return { streamIds: streams.map((stream) => stream.streamId), appended };
}

/** Reads the stream from `from` to its end, maxBytes a read, checking every batch against `appended`. */
async function readAll(stream: Stream, appended: Buffer[], maxBytes: number, from = 0, afterEachRead?: () => void): Promise<number> {
  let index = appended.findIndex((batch) => Number(batch.readBigInt64BE(0)) + OFFSETS_PER_BATCH > from);
  expect(index).toBeGreaterThanOrEqual(0);
  let reads = 0;
  for (let next = from; next < stream.confirmedOffset(); ) {
    const result = await stream.read(next, maxBytes);
    reads++;
    expect(result.batches.length).toBeGreaterThan(0);
    for (const batch of result.batches) {
      if (!batch.equals(appended[index]!)) throw new Error(`batch ${index} read back differs from the one appended`);
      index++;
    }
    next = result.nextOffset;
    afterEachRead?.();
  }
  expect(index).toBe(appended.length);
  return reads;
}

describe('catch-up reads', () => {
  // On a store that copies parts out of one GET (S3), small objects are read whole: about one GET
  // an object. On one that reads parts in place (local), a tail read and then about one ranged
  // GET of its blocks an object.
  for (const { inPlace, maxGetsPerObject } of [{ inPlace: false, maxGetsPerObject: 2 }, { inPlace: true, maxGetsPerObject: 2.25 }]) {
    it(`read-ahead turns a sequential catch-up over 20 objects × 8 blocks into far fewer GETs than blocks (${inPlace ? 'parts read in place' : 'parts copied'})`, async () => {
      store = new CountingStore(new LocalObjectStore(path.join(dir, 'objects')), { readsPartsInPlace: inPlace });
      const objects = 20;
      const { streamIds, appended } = await writeStreams(1, objects, 8);
      const blocks = objects * 8;
      const reader = await newStorage();
      const stream = await reader.openStream(streamIds[0]!);
      const getsBefore = store.gets;
      const reads = await readAll(stream, appended[0]!, BLOCK_BYTES);
      const gets = store.gets - getsBefore;
      // Every GET counted: object tails (footer + index) as well as data blocks.
      expect(reads).toBeGreaterThanOrEqual(blocks);
      expect(gets).toBeLessThanOrEqual(objects * maxGetsPerObject);
      expect(gets).toBeLessThanOrEqual(blocks / 3.5);
      expect(reader.catchUp.blockCache.stats().evictedUnread).toBe(0);
    });
  }

  it('reads ahead with large ranged GETs in objects larger than the window, one GET per run of blocks', async () => {
    const { streamIds, appended } = await writeStreams(1, 4, 40);
    const blocks = 4 * 40;
    // A window of at most 16 blocks: objects (40 blocks) are never read whole.
    const reader = await newStorage({ readAheadMaxBytes: 16 * BLOCK_BYTES });
    const stream = await reader.openStream(streamIds[0]!);
    const getsBefore = store.gets;
    const bytesBefore = store.bytesRead;
    await readAll(stream, appended[0]!, BLOCK_BYTES);
    expect(store.gets - getsBefore).toBeLessThanOrEqual(blocks / 4);
    // Nothing was read twice or read in vain (the object tails aside).
    expect(store.bytesRead - bytesBefore).toBeLessThanOrEqual(blocks * BLOCK_BYTES + 4 * 64 * KiB);
  });

  it('returns every byte appended, from offset 0 and from inside the log, after a flush and with an empty WAL', async () => {
    const { streamIds, appended } = await writeStreams(3, 4, 3);
    const reader = await newStorage();
    for (let s = 0; s < streamIds.length; s++) {
      const stream = await reader.openStream(streamIds[s]!);
      await readAll(stream, appended[s]!, 200 * KiB);
      // Again from inside a batch, with reads smaller than a batch (one batch a read).
      await readAll(stream, appended[s]!, 1, (appended[s]!.length >> 1) * OFFSETS_PER_BATCH + 2);
    }
  });

  it('reads many streams at once within the catch-up budget, every byte as appended', async () => {
    const { streamIds, appended } = await writeStreams(6, 3, 4);
    const reader = await newStorage({ catchUpMaxConcurrentGets: 2, catchUpMaxInflightBytes: 512 * KiB, readAheadMaxBytes: 256 * KiB });
    const streams = await Promise.all(streamIds.map((id) => reader.openStream(id)));
    store.peakActive = 0;
    await Promise.all(streams.map((stream, s) => readAll(stream, appended[s]!, 100 * KiB)));
    expect(store.peakActive).toBeLessThanOrEqual(2);
    expect(reader.catchUp.limiter.stats().peakGets).toBeLessThanOrEqual(2);
    expect(reader.catchUp.limiter.stats().peakInflightBytes).toBeLessThanOrEqual(512 * KiB);
  });

  it('keeps the block cache within its byte bound after every read of a random read workload', async () => {
    const { streamIds, appended } = await writeStreams(2, 5, 4);
    const capacityBytes = 5 * BLOCK_BYTES + 1000;
    const reader = await newStorage({ blockCacheSizeBytes: capacityBytes, readAheadInitialBytes: 64 * KiB, readAheadMaxBytes: 512 * KiB });
    const cache = reader.catchUp.blockCache;
    const streams = await Promise.all(streamIds.map((id) => reader.openStream(id)));
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const checkBound = (): void => {
      expect(cache.sizeBytes()).toBeLessThanOrEqual(capacityBytes);
    };
    for (let round = 0; round < 60; round++) {
      const s = random(streams.length);
      const stream = streams[s]!;
      const batches = appended[s]!;
      // Half the rounds read a short sequential run (read-ahead kicks in), half jump around.
      const runLength = round % 2 === 0 ? 1 + random(12) : 1;
      let index = random(batches.length);
      let next = Number(batches[index]!.readBigInt64BE(0)) + random(OFFSETS_PER_BATCH);
      for (let r = 0; r < runLength && next < stream.confirmedOffset(); r++) {
        const result = await stream.read(next, 1 + random(3 * BLOCK_BYTES));
        checkBound();
        for (const batch of result.batches) expect(batch.equals(batches[index++]!)).toBe(true);
        next = result.nextOffset;
      }
      // Let read-ahead in the background land, and check again.
      await new Promise((resolve) => setTimeout(resolve, 1));
      checkBound();
    }
    expect(cache.stats().evictions).toBeGreaterThan(0);
  });

  it('drops the read-ahead window of a reader whose blocks are evicted unread', async () => {
    const { streamIds, appended } = await writeStreams(1, 6, 8);
    // Room for 3 blocks, read-ahead up to 16: what is read ahead is evicted before it is read.
    const reader = await newStorage({ blockCacheSizeBytes: 3 * BLOCK_BYTES, readAheadInitialBytes: 64 * KiB, readAheadMaxBytes: 1024 * KiB });
    const stream = await reader.openStream(streamIds[0]!);
    await readAll(stream, appended[0]!, BLOCK_BYTES, 0, () => {
      expect(reader.catchUp.blockCache.sizeBytes()).toBeLessThanOrEqual(3 * BLOCK_BYTES);
    });
    expect(reader.catchUp.blockCache.stats().evictedUnread).toBeGreaterThan(0);
  });

  it('keeps the batches of a read intact while their blocks are evicted, and frees them once it is released', async () => {
    const { streamIds, appended } = await writeStreams(1, 4, 4);
    const reader = await newStorage({ blockCacheSizeBytes: 2 * BLOCK_BYTES, readAheadInitialBytes: 64 * KiB, readAheadMaxBytes: 128 * KiB });
    const cache = reader.catchUp.blockCache;
    const stream = await reader.openStream(streamIds[0]!);
    const held = await stream.read(0, 2 * BLOCK_BYTES); // a Fetch whose response is not written yet
    expect(held.lease).toBeDefined();
    const evictionsBefore = cache.stats().evictions;
    for (let next = held.nextOffset; next < stream.confirmedOffset(); ) {
      const result = await stream.read(next, BLOCK_BYTES);
      result.lease!.release();
      next = result.nextOffset;
    }
    expect(cache.stats().evictions - evictionsBefore).toBeGreaterThanOrEqual(12);
    expect(held.batches.length).toBe(2 * BATCHES_PER_BLOCK);
    held.batches.forEach((batch, i) => {
      if (!batch.equals(appended[0]![i]!)) throw new Error(`batch ${i} changed while its read was pinned`);
    });
    held.lease!.release();
    // Evicted while pinned, freed on release: the memory is given back, not left to the GC.
    expect(held.batches.every((batch) => batch.length === 0)).toBe(true);
  });

  it('answers a tailing read from the log cache without any GET while a catch-up waits on the object store', async () => {
    const { streamIds, appended } = await writeStreams(1, 3, 4);
    const node = await newStorage();
    const stream = await node.openStream(streamIds[0]!);
    // New data on the tail: in this node's log cache.
    const tail: Buffer[] = [];
    const tailStart = stream.nextOffset();
    await Promise.all(Array.from({ length: 10 }, () => {
      const batch = randomBatch(stream.nextOffset(), OFFSETS_PER_BATCH, 1000);
      tail.push(batch);
      return stream.append({ baseOffset: stream.nextOffset(), offsetCount: OFFSETS_PER_BATCH, batch });
    }));

    store.hold(); // every GET from now on waits
    let catchUpDone = false;
    const catchUp = stream.read(0, BLOCK_BYTES).then((result) => {
      catchUpDone = true;
      return result;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(store.active).toBeGreaterThan(0); // the catch-up is stuck in a GET
    const getsBefore = store.gets;
    for (let next = tailStart, i = 0; next < stream.confirmedOffset(); ) {
      const result = await stream.read(next, 2500);
      for (const batch of result.batches) expect(batch.equals(tail[i++]!)).toBe(true);
      next = result.nextOffset;
    }
    expect(store.gets).toBe(getsBefore);
    expect(catchUpDone).toBe(false);

    store.release();
    const first = await catchUp;
    expect(first.batches[0]!.equals(appended[0]![0]!)).toBe(true);
  });
});
