import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ClusterModel,
  InvalidTopicError,
  ObjectNotPreparedError,
  OffsetMismatchError,
  StreamFencedError,
  StreamNotFoundError,
  TopicExistsError,
  TopicNotFoundError,
  topicIdBytes,
} from '../../../src/metadata/cluster-model.ts';
import { EmbeddedMetadataStore } from '../../../src/metadata/embedded.ts';

let dir: string;
let store: EmbeddedMetadataStore;
let model: ClusterModel;
let nowMs = 1_000_000;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wharf-model-'));
  store = await EmbeddedMetadataStore.open(dir);
  model = new ClusterModel(store, { nowMs: () => nowMs });
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** Prepares and commits one object holding [start, end) of each given stream. */
async function commit(ranges: Array<{ streamId: number; epoch: number; startOffset: number; endOffset: number }>): Promise<number> {
  const objectId = await model.prepareObject(60_000);
  await model.commitObject({ objectId, key: `objects/${objectId}`, sizeBytes: 1000, ranges });
  return objectId;
}

describe('topics', () => {
  it('creating a topic creates one stream per partition', async () => {
    const topic = await model.createTopic('orders', { numPartitions: 3, configs: { 'retention.ms': '1000' } });
    expect(topic.name).toBe('orders');
    expect(topicIdBytes(topic.topicId).length).toBe(16);
    expect(topic.partitions.map((p) => p.partition)).toEqual([0, 1, 2]);
    expect(new Set(topic.partitions.map((p) => p.streamId)).size).toBe(3);
    for (const partition of topic.partitions) {
      expect(await model.getStream(partition.streamId)).toEqual({
        streamId: partition.streamId,
        epoch: 0,
        startOffset: 0,
        endOffset: 0,
      });
    }
    expect(await model.getTopic('orders')).toEqual(topic);
    expect(await model.getTopicById(topic.topicId)).toEqual(topic);
    const other = await model.createTopic('payments', { numPartitions: 1 });
    expect(other.partitions[0]?.streamId).toBe(3);
    expect((await model.listTopics()).map((t) => t.name)).toEqual(['orders', 'payments']);
  });

  it('creating a topic twice fails with TopicExistsError, also when racing', async () => {
    await model.createTopic('dup', { numPartitions: 1 });
    await expect(model.createTopic('dup', { numPartitions: 2 })).rejects.toBeInstanceOf(TopicExistsError);
    const racing = await Promise.allSettled(Array.from({ length: 5 }, () => model.createTopic('race', { numPartitions: 2 })));
    expect(racing.filter((r) => r.status === 'fulfilled').length).toBe(1);
    for (const r of racing) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(TopicExistsError);
    expect((await model.listStreams()).length).toBe(3);
  });

  it('rejects invalid names and partition counts', async () => {
    await expect(model.createTopic('a/b', { numPartitions: 1 })).rejects.toBeInstanceOf(InvalidTopicError);
    await expect(model.createTopic('..', { numPartitions: 1 })).rejects.toBeInstanceOf(InvalidTopicError);
    await expect(model.createTopic('ok', { numPartitions: 0 })).rejects.toBeInstanceOf(InvalidTopicError);
  });

  it('deleting a topic marks its streams deleted and drops its producer snapshots', async () => {
    const topic = await model.createTopic('gone', { numPartitions: 2 });
    await model.saveProducerSnapshot('gone', 0, { producers: [1, 2] });
    expect(await model.loadProducerSnapshot('gone', 0)).toEqual({ producers: [1, 2] });
    await model.deleteTopic('gone');
    expect(await model.getTopic('gone')).toBeUndefined();
    expect(await model.getTopicById(topic.topicId)).toBeUndefined();
    expect(await model.loadProducerSnapshot('gone', 0)).toBeUndefined();
    const streamId = topic.partitions[0]?.streamId ?? -1;
    expect(await model.getStream(streamId)).toBeUndefined();
    expect((await model.getStreamRecord(streamId))?.status).toBe('deleted');
    await expect(model.openStream(streamId, 1)).rejects.toBeInstanceOf(StreamNotFoundError);
    await expect(model.deleteTopic('gone')).rejects.toBeInstanceOf(TopicNotFoundError);
  });

  it('updates configs: sets and removes keys', async () => {
    await model.createTopic('cfg', { numPartitions: 1, configs: { a: '1', b: '2' } });
    const updated = await model.updateTopicConfigs('cfg', { a: '10', b: null, c: '3' });
    expect(updated.configs).toEqual({ a: '10', c: '3' });
    expect((await model.getTopic('cfg'))?.configs).toEqual({ a: '10', c: '3' });
    await expect(model.updateTopicConfigs('nope', {})).rejects.toBeInstanceOf(TopicNotFoundError);
  });
});

describe('streams', () => {
  it('opening bumps the epoch; an older epoch is fenced everywhere', async () => {
    const stream = await model.createStream();
    const first = await model.openStream(stream.streamId, 1);
    expect(first.epoch).toBe(1);
    await commit([{ streamId: stream.streamId, epoch: 1, startOffset: 0, endOffset: 10 }]);
    const second = await model.openStream(stream.streamId, 2);
    expect(second).toEqual({ streamId: stream.streamId, epoch: 2, startOffset: 0, endOffset: 10 });

    await expect(commit([{ streamId: stream.streamId, epoch: 1, startOffset: 10, endOffset: 20 }])).rejects.toBeInstanceOf(
      StreamFencedError,
    );
    await expect(model.trimStream(stream.streamId, 1, 5)).rejects.toBeInstanceOf(StreamFencedError);
    await expect(model.closeStream(stream.streamId, 1)).rejects.toBeInstanceOf(StreamFencedError);
    await commit([{ streamId: stream.streamId, epoch: 2, startOffset: 10, endOffset: 20 }]);
    expect((await model.getStream(stream.streamId))?.endOffset).toBe(20);
  });

  it('trim moves the start forward only; close releases ownership', async () => {
    const { streamId } = await model.createStream();
    const { epoch } = await model.openStream(streamId, 7);
    expect((await model.getStreamRecord(streamId))?.ownerNodeId).toBe(7);
    await model.trimStream(streamId, epoch, 5);
    await model.trimStream(streamId, epoch, 3);
    expect((await model.getStream(streamId))?.startOffset).toBe(5);
    await model.closeStream(streamId, epoch);
    expect(await model.getStreamRecord(streamId)).toMatchObject({ status: 'closed', ownerNodeId: -1, epoch });
    await model.deleteStream(streamId, epoch);
    expect(await model.getStream(streamId)).toBeUndefined();
  });
});

describe('objects', () => {
  it('a commit that does not start at the stream end fails with OffsetMismatchError and changes nothing', async () => {
    const a = await model.createStream();
    const b = await model.createStream();
    const ea = (await model.openStream(a.streamId, 1)).epoch;
    const eb = (await model.openStream(b.streamId, 1)).epoch;
    await commit([{ streamId: a.streamId, epoch: ea, startOffset: 0, endOffset: 100 }]);
    const objectId = await model.prepareObject(60_000);
    const bad = model.commitObject({
      objectId,
      key: 'objects/bad',
      sizeBytes: 10,
      ranges: [
        { streamId: b.streamId, epoch: eb, startOffset: 0, endOffset: 50 },
        { streamId: a.streamId, epoch: ea, startOffset: 90, endOffset: 150 },
      ],
    });
    await expect(bad).rejects.toBeInstanceOf(OffsetMismatchError);
    expect((await model.getStream(b.streamId))?.endOffset).toBe(0);
    expect(await model.getObjects(b.streamId, 0, 100, 10)).toEqual([]);
  });

  it('a stream set object advances every stream in one commit', async () => {
    const a = await model.createStream();
    const b = await model.createStream();
    const ea = (await model.openStream(a.streamId, 1)).epoch;
    const eb = (await model.openStream(b.streamId, 1)).epoch;
    const objectId = await commit([
      { streamId: a.streamId, epoch: ea, startOffset: 0, endOffset: 7 },
      { streamId: b.streamId, epoch: eb, startOffset: 0, endOffset: 3 },
    ]);
    expect((await model.getStream(a.streamId))?.endOffset).toBe(7);
    expect((await model.getStream(b.streamId))?.endOffset).toBe(3);
    expect(await model.getObjects(b.streamId, 0, 3, 10)).toEqual([
      { objectId, key: `objects/${objectId}`, sizeBytes: 1000, startOffset: 0, endOffset: 3 },
    ]);
    expect((await model.getObject(objectId))?.ranges.length).toBe(2);
  });

  it('getObjects returns the objects overlapping a range, in offset order, up to the limit', async () => {
    const { streamId } = await model.createStream();
    const { epoch } = await model.openStream(streamId, 1);
    const bounds = [0, 10, 25, 40, 100, 1000];
    const ids: number[] = [];
    for (let i = 0; i + 1 < bounds.length; i++) {
      ids.push(await commit([{ streamId, epoch, startOffset: bounds[i] ?? 0, endOffset: bounds[i + 1] ?? 0 }]));
    }
    const ranges = async (start: number, end: number, limit = 100): Promise<number[][]> =>
      (await model.getObjects(streamId, start, end, limit)).map((o) => [o.startOffset, o.endOffset]);
    expect(await ranges(0, 1000)).toEqual([
      [0, 10],
      [10, 25],
      [25, 40],
      [40, 100],
      [100, 1000],
    ]);
    expect(await ranges(12, 26)).toEqual([
      [10, 25],
      [25, 40],
    ]);
    expect(await ranges(10, 25)).toEqual([[10, 25]]);
    expect(await ranges(9, 10)).toEqual([[0, 10]]);
    expect(await ranges(999, 5000)).toEqual([[100, 1000]]);
    expect(await ranges(1000, 5000)).toEqual([]);
    expect(await ranges(5, 500, 2)).toEqual([
      [0, 10],
      [10, 25],
    ]);
    expect((await model.getObjects(streamId, 30, 31, 1))[0]?.objectId).toBe(ids[2]);
  });

  it('an object must be prepared; a discarded reservation cannot be committed; a retried commit is a no-op', async () => {
    const { streamId } = await model.createStream();
    const { epoch } = await model.openStream(streamId, 1);
    const ranges = [{ streamId, epoch, startOffset: 0, endOffset: 5 }];
    await expect(model.commitObject({ objectId: 999, key: 'x', sizeBytes: 1, ranges })).rejects.toBeInstanceOf(
      ObjectNotPreparedError,
    );

    const expiring = await model.prepareObject(1000);
    const kept = await model.prepareObject(60_000);
    nowMs += 5000;
    expect((await model.listExpiredPreparedObjects(nowMs)).map((p) => p.objectId)).toEqual([expiring]);
    expect(await model.discardPreparedObject(expiring)).toBe(true);
    expect(await model.discardPreparedObject(expiring)).toBe(false);
    await expect(model.commitObject({ objectId: expiring, key: 'late', sizeBytes: 1, ranges })).rejects.toBeInstanceOf(
      ObjectNotPreparedError,
    );

    const object = { objectId: kept, key: 'objects/kept', sizeBytes: 1, ranges };
    await model.commitObject(object);
    await model.commitObject(object);
    expect((await model.getStream(streamId))?.endOffset).toBe(5);
    expect(await model.listExpiredPreparedObjects(nowMs + 1e9)).toEqual([]);
  });

  it('racing owners: exactly one of two commits at the same offset wins', async () => {
    const { streamId } = await model.createStream();
    const { epoch } = await model.openStream(streamId, 1);
    const results = await Promise.allSettled([
      commit([{ streamId, epoch, startOffset: 0, endOffset: 10 }]),
      commit([{ streamId, epoch, startOffset: 0, endOffset: 20 }]),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled').length).toBe(1);
    const failed = results.find((r) => r.status === 'rejected');
    expect(failed?.status === 'rejected' ? failed.reason : undefined).toBeInstanceOf(OffsetMismatchError);
  });
});

describe('ids and generic values', () => {
  it('ids are unique under concurrency; producer ids come from blocks', async () => {
    const ids = await Promise.all(Array.from({ length: 30 }, () => model.allocateIds('thing', 2)));
    expect(new Set(ids).size).toBe(30);
    expect(Math.max(...ids)).toBe(58);
    const small = new ClusterModel(store, { producerIdBlockSize: 4 });
    const producerIds = await Promise.all(Array.from({ length: 10 }, () => small.allocateProducerId()));
    expect([...producerIds].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const other = new ClusterModel(store, { producerIdBlockSize: 4 });
    expect(await other.allocateProducerId()).toBe(12);
  });

  it('putJson with an expected revision is a compare-and-swap', async () => {
    expect(await model.putJson('acls/x', { allow: true }, { expectedModRevision: 0 })).toBe(true);
    expect(await model.putJson('acls/x', { allow: false }, { expectedModRevision: 0 })).toBe(false);
    const current = await model.getJson<{ allow: boolean }>('acls/x');
    expect(current?.value).toEqual({ allow: true });
    expect(await model.putJson('acls/x', { allow: false }, { expectedModRevision: current?.modRevision ?? -1 })).toBe(true);
    expect((await model.getJson<{ allow: boolean }>('acls/x'))?.value).toEqual({ allow: false });
    expect(await model.deleteJson('acls/x', { expectedModRevision: 1 })).toBe(false);
    expect(await model.deleteJson('acls/x')).toBe(true);
    expect(await model.getJson('acls/x')).toBeUndefined();
  });

  it('the model survives a restart of its store', async () => {
    const topic = await model.createTopic('durable', { numPartitions: 2 });
    const streamId = topic.partitions[1]?.streamId ?? -1;
    const { epoch } = await model.openStream(streamId, 1);
    await commit([{ streamId, epoch, startOffset: 0, endOffset: 42 }]);
    await store.close();
    store = await EmbeddedMetadataStore.open(dir);
    model = new ClusterModel(store);
    expect(await model.getTopic('durable')).toEqual(topic);
    expect(await model.getStream(streamId)).toEqual({ streamId, epoch, startOffset: 0, endOffset: 42 });
    expect((await model.getObjects(streamId, 0, 42, 10)).length).toBe(1);
    expect((await model.createStream()).streamId).toBe(2);
  });
});
