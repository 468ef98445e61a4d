// Garbage collection of data objects on the real metadata (ClusterModel on the embedded store) and
// the local object store: uncommitted, orphaned, trimmed and deleted data is collected after the
// delay, and nothing metadata still references is ever deleted.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ClusterModel, ObjectNotPreparedError, StreamFencedError } from '../../../src/metadata/cluster-model.ts';
import { EmbeddedMetadataStore } from '../../../src/metadata/embedded.ts';
import { ObjectCollector } from '../../../src/storage/objects/gc.ts';
import { LocalObjectStore } from '../../../src/storage/objectstore/local.ts';
import { StreamStorageImpl } from '../../../src/storage/stream-storage.ts';
import type { Stream } from '../../../src/storage/stream.ts';
import { objectKey, storeObject } from '../../../src/storage/upload.ts';
import { FileWal } from '../../../src/storage/wal/file-wal.ts';

const PREFIX = 'data/';
const DELAY_MS = 60_000;

let dir: string;
let metadataStore: EmbeddedMetadataStore;
let metadata: ClusterModel;
let objectStore: LocalObjectStore;
let nowMs: number;
const storages: StreamStorageImpl[] = [];

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-gc-'));
  metadataStore = await EmbeddedMetadataStore.open(path.join(dir, 'metadata'));
  nowMs = 1_000_000;
  metadata = new ClusterModel(metadataStore, { nowMs: () => nowMs });
  objectStore = new LocalObjectStore(path.join(dir, 'objects'));
});

afterEach(async () => {
  for (const storage of storages.splice(0)) await storage.shutdown().catch(() => {});
  await metadataStore.close();
  await fs.rm(dir, { recursive: true, force: true });
});

async function newStorage(nodeId: number): Promise<StreamStorageImpl> {
  const wal = await FileWal.open({ path: path.join(dir, `wal-${nodeId}`), capacityBytes: 4 << 20, maxWriteBytes: 64 << 10 });
  const storage = new StreamStorageImpl({ nodeId, wal, metadata, objectStore, uploadIntervalMs: 3_600_000, objectKeyPrefix: PREFIX, prepareTtlMs: 30_000 });
  storages.push(storage);
  await storage.start();
  return storage;
}

function collector(): ObjectCollector {
  return new ObjectCollector({ metadata, objectStore, objectKeyPrefix: PREFIX, gcDelayMs: DELAY_MS, orphanScanIntervalMs: 0, nowMs: () => nowMs });
}

function batch(baseOffset: number, offsetCount: number, sizeBytes = 400): Buffer {
  const bytes = randomBytes(sizeBytes);
  bytes.writeBigInt64BE(BigInt(baseOffset), 0);
  bytes.writeInt32BE(sizeBytes - 12, 8);
  bytes.writeInt8(2, 16);
  bytes.writeInt32BE(offsetCount - 1, 23);
  return bytes;
}

async function append(stream: Stream, count: number): Promise<void> {
  const appends: Promise<void>[] = [];
  for (let i = 0; i < count; i++) appends.push(stream.append({ baseOffset: stream.nextOffset(), offsetCount: 2, batch: batch(stream.nextOffset(), 2) }));
  await Promise.all(appends);
}

async function storedKeys(): Promise<string[]> {
  return (await objectStore.list(`${PREFIX}objects/`)).map((o) => o.key);
}

/** Every committed object's data is still stored (nothing referenced was deleted). */
async function expectCommittedObjectsStored(): Promise<void> {
  const stored = new Set(await storedKeys());
  for (const object of await metadata.listObjects(-1, 10_000)) expect(stored.has(object.key), object.key).toBe(true);
}

it('an uncommitted object is collected once its deadline passes, and a late commit then fails', async () => {
  const storage = await newStorage(1);
  const stream = await storage.createStream();
  await append(stream, 5);
  await storage.flush();
  // A crash between PUT and commit: the object is stored and prepared, never committed.
  const stranded = await storeObject(
    { metadata, objectStore, objectKeyPrefix: PREFIX, prepareTtlMs: 30_000 },
    [{ streamId: stream.streamId, epoch: stream.epoch, startOffset: 10, endOffset: 12, baseOffsets: [10], endOffsets: [12], batches: [batch(10, 2)] }],
  );
  expect(await storedKeys()).toContain(stranded.object.key);

  expect(await collector().collect()).toMatchObject({ discardedPrepared: 0 }); // before the deadline
  expect(await storedKeys()).toContain(stranded.object.key);
  nowMs += 30_000;
  expect(await collector().collect()).toMatchObject({ discardedPrepared: 1 });
  expect(await storedKeys()).not.toContain(stranded.object.key);
  await expect(metadata.commitObject(stranded.object)).rejects.toBeInstanceOf(ObjectNotPreparedError);
  await expectCommittedObjectsStored();
});

it('an old owner whose epoch is fenced cannot commit an object, and leaves no garbage behind', async () => {
  const first = await newStorage(1);
  const stream = await first.createStream();
  await append(stream, 5);
  await first.flush();
  const second = await newStorage(2);
  const taken = await second.openStream(stream.streamId);
  await append(stream, 3); // durable in the old owner's WAL, never committed
  await expect(first.flush()).rejects.toBeInstanceOf(StreamFencedError);
  expect(await metadata.getStream(stream.streamId)).toMatchObject({ epoch: taken.epoch, endOffset: 10 });
  expect((await metadata.listObjects(-1, 100)).length).toBe(1);
  // The refused object was released at once: its id discarded, its data deleted.
  expect(await storedKeys()).toEqual((await metadata.listObjects(-1, 100)).map((o) => o.key));
  expect(await metadata.listExpiredPreparedObjects(Number.MAX_SAFE_INTEGER)).toEqual([]);
});

it('collects the objects of trimmed data only after the delay, and keeps objects with live data', async () => {
  const storage = await newStorage(1);
  const a = await storage.createStream();
  const b = await storage.createStream();
  for (let round = 0; round < 3; round++) {
    await append(a, 5); // 10 offsets a round
    if (round === 0) await append(b, 5);
    await storage.flush();
  }
  const objects = await metadata.listObjects(-1, 100);
  expect(objects.map((o) => o.ranges.length)).toEqual([2, 1, 1]); // a+b, a, a
  await a.trim(20); // a's first two ranges are dead; object 0 still holds b's live data

  const gc = collector();
  expect(await gc.collect()).toMatchObject({ droppedObjects: 1, deletedObjects: 0 });
  expect((await metadata.listObjects(-1, 100)).map((o) => o.objectId)).toEqual([objects[0]!.objectId, objects[2]!.objectId]);
  expect(await storedKeys()).toEqual(objects.map((o) => o.key)); // still readable during the delay
  nowMs += DELAY_MS;
  expect(await gc.collect()).toMatchObject({ droppedObjects: 0, deletedObjects: 1 });
  expect(await storedKeys()).toEqual([objects[0]!.key, objects[2]!.key]);
  expect(await metadata.getObjects(a.streamId, 0, 30, 10)).toEqual([expect.objectContaining({ objectId: objects[0]!.objectId }), expect.objectContaining({ objectId: objects[2]!.objectId })]);
  await expectCommittedObjectsStored();
});

it('collects every object of a deleted stream after the delay', async () => {
  const storage = await newStorage(1);
  const kept = await storage.createStream();
  const doomed = await storage.createStream();
  await append(doomed, 4);
  await storage.flush();
  await append(doomed, 4);
  await append(kept, 4);
  await storage.flush();
  await doomed.close();
  const state = (await metadata.openStream(doomed.streamId, 9))!;
  await metadata.deleteStream(doomed.streamId, state.epoch);

  const gc = collector();
  expect(await gc.collect()).toMatchObject({ droppedObjects: 1 }); // the mixed object stays: it holds `kept`
  nowMs += DELAY_MS;
  expect(await gc.collect()).toMatchObject({ deletedObjects: 1 });
  expect((await metadata.listObjects(-1, 100)).length).toBe(1);
  expect(await metadata.getObjects(doomed.streamId, 0, 100, 10)).toHaveLength(1); // only via the mixed object
  await expectCommittedObjectsStored();
});

it('deletes a stored object no metadata record names, after seeing it orphaned for the delay', async () => {
  const storage = await newStorage(1);
  const stream = await storage.createStream();
  await append(stream, 3);
  await storage.flush();
  const orphan = objectKey(PREFIX, 999);
  await objectStore.put(orphan, Buffer.from('left by a crash'));
  await objectStore.put(`${PREFIX}objects/not-an-object`, Buffer.from('not ours'));

  const gc = collector();
  expect(await gc.collect()).toMatchObject({ deletedOrphans: 0 }); // first seen now
  nowMs += DELAY_MS - 1;
  expect(await gc.collect()).toMatchObject({ deletedOrphans: 0 });
  nowMs += 1;
  expect(await gc.collect()).toMatchObject({ deletedOrphans: 1 });
  expect(await storedKeys()).toEqual([`${PREFIX}objects/not-an-object`, ...(await metadata.listObjects(-1, 10)).map((o) => o.key)].sort());
  await expectCommittedObjectsStored();
});
