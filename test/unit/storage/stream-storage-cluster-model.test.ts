// Stream storage on the real metadata (ClusterModel on the embedded store) and the local object
// store: the same promises as with the in-memory metadata.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ClusterModel } from '../../../src/metadata/cluster-model.ts';
import { EmbeddedMetadataStore } from '../../../src/metadata/embedded.ts';
import { LocalObjectStore } from '../../../src/storage/objectstore/local.ts';
import { StreamStorageImpl } from '../../../src/storage/stream-storage.ts';
import type { Stream } from '../../../src/storage/stream.ts';
import { FileWal } from '../../../src/storage/wal/file-wal.ts';

let dir: string;
let metadataStore: EmbeddedMetadataStore;
let metadata: ClusterModel;
let objectStore: LocalObjectStore;
const wals: FileWal[] = [];
const storages: StreamStorageImpl[] = [];

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-streams-cm-'));
  metadataStore = await EmbeddedMetadataStore.open(path.join(dir, 'metadata'));
  metadata = new ClusterModel(metadataStore);
  objectStore = new LocalObjectStore(path.join(dir, 'objects'));
});

afterEach(async () => {
  for (const storage of storages.splice(0)) await storage.shutdown().catch(() => {});
  for (const wal of wals.splice(0)) await wal.close().catch(() => {});
  await metadataStore.close();
  await fs.rm(dir, { recursive: true, force: true });
});

async function newStorage(nodeId: number, walName: string): Promise<StreamStorageImpl> {
  const wal = await FileWal.open({ path: path.join(dir, walName), capacityBytes: 4 << 20, maxWriteBytes: 64 << 10 });
  wals.push(wal);
  const storage = new StreamStorageImpl({ nodeId, wal, metadata, objectStore, uploadIntervalMs: 3_600_000, objectKeyPrefix: 'node-data/' });
  storages.push(storage);
  await storage.start();
  return storage;
}

function fakeBatch(baseOffset: number, offsetCount: number, sizeBytes = 300): Buffer {
  const batch = Buffer.alloc(sizeBytes, baseOffset & 0xff);
  batch.writeBigInt64BE(BigInt(baseOffset), 0);
  batch.writeInt32BE(sizeBytes - 12, 8);
  batch.writeInt8(2, 16);
  batch.writeInt32BE(offsetCount - 1, 23);
  return batch;
}

async function append(stream: Stream, count: number): Promise<number[]> {
  const bases: number[] = [];
  const appends: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    bases.push(stream.nextOffset());
    appends.push(stream.append({ baseOffset: stream.nextOffset(), offsetCount: 2, batch: fakeBatch(stream.nextOffset(), 2) }));
  }
  await Promise.all(appends);
  return bases;
}

async function readBases(stream: Stream): Promise<number[]> {
  const bases: number[] = [];
  for (let next = 0; next < stream.confirmedOffset(); ) {
    const result = await stream.read(next, 2000);
    bases.push(...result.batches.map((batch) => Number(batch.readBigInt64BE(0))));
    next = result.nextOffset;
  }
  return bases;
}

it('uploads, recovers after a crash and fences a stale owner on the cluster model', async () => {
  const first = await newStorage(1, 'wal-1');
  const stream = await first.createStream();
  const uploaded = await append(stream, 20);
  await first.flush();
  const walOnly = await append(stream, 15);
  first.halt();
  await wals[0]!.close();

  const second = await newStorage(1, 'wal-1');
  expect(await metadata.getStream(stream.streamId)).toMatchObject({ endOffset: 70 });
  const reopened = await second.openStream(stream.streamId);
  expect(await readBases(reopened)).toEqual([...uploaded, ...walOnly]);

  // Another node takes the stream over: the second node's next commit of it is refused.
  const third = await newStorage(2, 'wal-2');
  await append(reopened, 1);
  const taken = await third.openStream(stream.streamId);
  await expect(second.flush()).rejects.toMatchObject({ name: 'StreamFencedError' });
  expect(taken.nextOffset()).toBe(70);
  expect(await readBases(taken)).toEqual([...uploaded, ...walOnly]);
});
