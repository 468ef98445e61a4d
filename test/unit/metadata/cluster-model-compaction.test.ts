// The cluster model's side of compaction and garbage collection: the object swap is one
// transaction, aborted by a trim, a new epoch or a deletion, never losing live offsets; dead
// objects become garbage records due after a delay.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterModel, CompactionConflictError } from '../../../src/metadata/cluster-model.ts';
import { EmbeddedMetadataStore } from '../../../src/metadata/embedded.ts';
import type { CommittedObject } from '../../../src/storage/metadata.ts';
import type { ObjectSwap } from '../../../src/storage/objects/compaction.ts';

let dir: string;
let store: EmbeddedMetadataStore;
let model: ClusterModel;
let nowMs = 1_000_000;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wharf-model-compaction-'));
  store = await EmbeddedMetadataStore.open(dir, { maxTxnOps: 64 });
  model = new ClusterModel(store, { nowMs: () => nowMs });
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

type Range = { streamId: number; epoch: number; startOffset: number; endOffset: number };

async function openStreams(count: number): Promise<Map<number, number>> {
  const epochs = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const { streamId } = await model.createStream();
    epochs.set(streamId, (await model.openStream(streamId, 1)).epoch);
  }
  return epochs;
}

async function commit(ranges: Range[]): Promise<number> {
  const objectId = await model.prepareObject(60_000);
  await model.commitObject({ objectId, key: `objects/${objectId}`, sizeBytes: 100 * ranges.length, ranges: ranges.map((r) => ({ ...r, rangeBytes: 100, maxTimestampMs: 5 })) });
  return objectId;
}

async function prepared(ranges: Range[]): Promise<CommittedObject> {
  const objectId = await model.prepareObject(60_000);
  return { objectId, key: `objects/${objectId}`, sizeBytes: 100 * ranges.length, ranges };
}

function swap(removedObjectIds: number[], addedObjects: CommittedObject[], expected: Array<[number, number, number]>): ObjectSwap {
  return {
    removedObjectIds,
    addedObjects,
    expectedStreams: expected.map(([streamId, epoch, startOffset]) => ({ streamId, epoch, startOffset })),
    deleteAfterMs: nowMs + 5000,
  };
}

describe('compactObjects', () => {
  it('swaps objects in one transaction: records, per-stream index and garbage', async () => {
    await openStreams(2); // streams 0 and 1, epoch 1
    const a = await commit([{ streamId: 0, epoch: 1, startOffset: 0, endOffset: 10 }, { streamId: 1, epoch: 1, startOffset: 0, endOffset: 5 }]);
    const b = await commit([{ streamId: 0, epoch: 1, startOffset: 10, endOffset: 20 }, { streamId: 1, epoch: 1, startOffset: 5, endOffset: 8 }]);
    const s0 = await prepared([{ streamId: 0, epoch: 1, startOffset: 0, endOffset: 20 }]);
    const s1 = await prepared([{ streamId: 1, epoch: 1, startOffset: 0, endOffset: 8 }]);
    await model.compactObjects(swap([a, b], [s0, s1], [[0, 1, 0], [1, 1, 0]]));

    expect((await model.listObjects(-1, 10)).map((o) => o.objectId)).toEqual([s0.objectId, s1.objectId]);
    expect(await model.getObjects(0, 0, 100, 10)).toEqual([expect.objectContaining({ objectId: s0.objectId, startOffset: 0, endOffset: 20 })]);
    expect(await model.getObjects(1, 6, 100, 10)).toEqual([expect.objectContaining({ objectId: s1.objectId, startOffset: 0, endOffset: 8 })]);
    expect(await model.listGarbageObjects(nowMs, 10)).toEqual([]);
    expect(await model.listGarbageObjects(nowMs + 5000, 10)).toEqual([
      { objectId: a, key: `objects/${a}`, sizeBytes: 200, deleteAfterMs: nowMs + 5000 },
      { objectId: b, key: `objects/${b}`, sizeBytes: 200, deleteAfterMs: nowMs + 5000 },
    ]);
    expect(await model.listExpiredPreparedObjects(Number.MAX_SAFE_INTEGER)).toEqual([]);
    expect(await model.knownObjectIds()).toEqual(new Set([a, b, s0.objectId, s1.objectId]));
    // The streams themselves did not change.
    expect(await model.getStream(0)).toMatchObject({ epoch: 1, startOffset: 0, endOffset: 20 });
  });

  it('goes through commits that only append to the streams meanwhile', async () => {
    await openStreams(1);
    const a = await commit([{ streamId: 0, epoch: 1, startOffset: 0, endOffset: 10 }]);
    const b = await commit([{ streamId: 0, epoch: 1, startOffset: 10, endOffset: 20 }]);
    const merged = await prepared([{ streamId: 0, epoch: 1, startOffset: 0, endOffset: 20 }]);
    const later = await commit([{ streamId: 0, epoch: 1, startOffset: 20, endOffset: 30 }]); // after the plan
    await model.compactObjects(swap([a, b], [merged], [[0, 1, 0]]));
    expect((await model.getObjects(0, 0, 30, 10)).map((r) => r.objectId)).toEqual([merged.objectId, later]);
  });

  it('aborts when a stream was trimmed, re-opened or deleted since the plan, or an input is gone', async () => {
    await openStreams(1);
    const a = await commit([{ streamId: 0, epoch: 1, startOffset: 0, endOffset: 10 }]);
    const b = await commit([{ streamId: 0, epoch: 1, startOffset: 10, endOffset: 20 }]);
    const merged = await prepared([{ streamId: 0, epoch: 1, startOffset: 0, endOffset: 20 }]);
    const before = await model.listObjects(-1, 10);

    await model.trimStream(0, 1, 5);
    await expect(model.compactObjects(swap([a, b], [merged], [[0, 1, 0]]))).rejects.toBeInstanceOf(CompactionConflictError);
    await model.openStream(0, 2); // epoch 2
    await expect(model.compactObjects(swap([a, b], [merged], [[0, 1, 5]]))).rejects.toBeInstanceOf(CompactionConflictError);
    await expect(model.compactObjects(swap([a, 77], [merged], [[0, 2, 5]]))).rejects.toBeInstanceOf(CompactionConflictError);
    await model.deleteStream(0, 2);
    await expect(model.compactObjects(swap([a, b], [merged], [[0, 2, 5]]))).rejects.toBeInstanceOf(CompactionConflictError);

    expect(await model.listObjects(-1, 10)).toEqual(before);
    expect(await model.listGarbageObjects(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
  });

  it('refuses a swap that would lose live offsets or add offsets it did not remove', async () => {
    await openStreams(1);
    const a = await commit([{ streamId: 0, epoch: 1, startOffset: 0, endOffset: 10 }]);
    const b = await commit([{ streamId: 0, epoch: 1, startOffset: 10, endOffset: 20 }]);
    const short = await prepared([{ streamId: 0, epoch: 1, startOffset: 0, endOffset: 15 }]);
    await expect(model.compactObjects(swap([a, b], [short], [[0, 1, 0]]))).rejects.toThrow(/would be lost/);
    const long = await prepared([{ streamId: 0, epoch: 1, startOffset: 0, endOffset: 25 }]);
    await expect(model.compactObjects(swap([a, b], [long], [[0, 1, 0]]))).rejects.toThrow(/not in the removed objects/);
    expect((await model.listObjects(-1, 10)).map((o) => o.objectId)).toEqual([a, b]);
    // Below the start offset nothing needs to be kept.
    await model.trimStream(0, 1, 12);
    const rest = await prepared([{ streamId: 0, epoch: 1, startOffset: 10, endOffset: 20 }]);
    await model.compactObjects(swap([a, b], [rest], [[0, 1, 12]]));
    expect((await model.getObjects(0, 12, 20, 10)).map((r) => r.objectId)).toEqual([rest.objectId]);
  });
});

describe('dead objects and garbage', () => {
  it('drops only objects whose every range is trimmed or deleted, across several transactions', async () => {
    const epochs = await openStreams(3);
    const ids: number[] = [];
    for (let i = 0; i < 40; i++) ids.push(await commit([{ streamId: 0, epoch: epochs.get(0)!, startOffset: i * 10, endOffset: i * 10 + 10 }]));
    const mixed = await commit([{ streamId: 1, epoch: 1, startOffset: 0, endOffset: 10 }, { streamId: 2, epoch: 1, startOffset: 0, endOffset: 10 }]);
    await model.trimStream(0, 1, 300); // the first 30 objects of stream 0 are dead
    await model.deleteStream(1, 1); // half of `mixed` is dead, half is not

    const dropped = await model.dropDeadObjects([...ids, mixed, 999], nowMs + 100); // 30 × 3 ops > 64 per transaction
    expect(dropped).toEqual(ids.slice(0, 30));
    expect((await model.listObjects(-1, 100)).map((o) => o.objectId)).toEqual([...ids.slice(30), mixed]);
    expect(await model.getObjects(0, 0, 1000, 100)).toHaveLength(10);
    expect((await model.listGarbageObjects(nowMs + 100, 100)).map((g) => g.objectId)).toEqual(ids.slice(0, 30));
    expect(await model.listGarbageObjects(nowMs + 99, 100)).toEqual([]);
    await model.forgetGarbageObjects(ids.slice(0, 30));
    expect(await model.listGarbageObjects(Number.MAX_SAFE_INTEGER, 100)).toEqual([]);
  });

  it('lists committed objects page by page and keeps range stats in the per-stream index', async () => {
    await openStreams(1);
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push(await commit([{ streamId: 0, epoch: 1, startOffset: i, endOffset: i + 1 }]));
    expect((await model.listObjects(-1, 2)).map((o) => o.objectId)).toEqual(ids.slice(0, 2));
    expect((await model.listObjects(ids[1]!, 2)).map((o) => o.objectId)).toEqual(ids.slice(2, 4));
    expect((await model.listObjects(ids[4]!, 2))).toEqual([]);
    expect((await model.getObjects(0, 0, 1, 1))[0]).toMatchObject({ rangeBytes: 100, maxTimestampMs: 5 });
    expect((await model.listStreamStates())[0]).toEqual({ streamId: 0, epoch: 1, startOffset: 0, endOffset: 5, deleted: false });
  });
});
