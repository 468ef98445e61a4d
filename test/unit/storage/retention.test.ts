// Retention by time (retention.ms) and by size (retention.bytes): streams are trimmed past whole
// objects, and the collector then frees those objects.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TOPIC_CONFIG_DEFAULTS } from '../../../src/broker/topics.ts';
import { ClusterModel } from '../../../src/metadata/cluster-model.ts';
import { EmbeddedMetadataStore } from '../../../src/metadata/embedded.ts';
import { retentionPolicyOf, retentionStartOffset, StorageMaintenance } from '../../../src/storage/maintenance.ts';
import type { MeasuredRef, RetentionTarget } from '../../../src/storage/maintenance.ts';
import { DataObjectWriter } from '../../../src/storage/objects/format.ts';
import { LocalObjectStore } from '../../../src/storage/objectstore/local.ts';
import { StreamStorageImpl } from '../../../src/storage/stream-storage.ts';
import type { Stream } from '../../../src/storage/stream.ts';
import { objectKey } from '../../../src/storage/upload.ts';
import { FileWal } from '../../../src/storage/wal/file-wal.ts';

const T0 = 1_700_000_000_000;
const HOUR_MS = 3_600_000;

describe('retention rules', () => {
  const refs: MeasuredRef[] = [0, 1, 2, 3].map((i) => ({ startOffset: i * 10, endOffset: i * 10 + 10, rangeBytes: 100, maxTimestampMs: T0 + i * HOUR_MS }));

  it('by time drops the objects whose newest batch is older than retention.ms', () => {
    expect(retentionStartOffset(refs, { retentionMs: 2 * HOUR_MS, retentionBytes: -1 }, T0 + 3 * HOUR_MS + 1)).toBe(20);
    expect(retentionStartOffset(refs, { retentionMs: 2 * HOUR_MS, retentionBytes: -1 }, T0 + 2 * HOUR_MS)).toBeUndefined();
    expect(retentionStartOffset(refs, { retentionMs: 0, retentionBytes: -1 }, T0 + 4 * HOUR_MS)).toBe(40);
    expect(retentionStartOffset(refs, { retentionMs: -1, retentionBytes: -1 }, T0 * 2)).toBeUndefined();
  });

  it('by size drops the oldest objects while the rest still hold retention.bytes', () => {
    expect(retentionStartOffset(refs, { retentionMs: -1, retentionBytes: 250 }, T0)).toBe(10);
    expect(retentionStartOffset(refs, { retentionMs: -1, retentionBytes: 200 }, T0)).toBe(20);
    expect(retentionStartOffset(refs, { retentionMs: -1, retentionBytes: 0 }, T0)).toBe(40);
    expect(retentionStartOffset(refs, { retentionMs: -1, retentionBytes: 400 }, T0)).toBeUndefined();
    // Both limits: the further start wins.
    expect(retentionStartOffset(refs, { retentionMs: 3 * HOUR_MS, retentionBytes: 250 }, T0 + 5 * HOUR_MS)).toBe(20);
  });

  it('reads the topic configs with Kafka defaults; compact-only topics are left alone', () => {
    expect(retentionPolicyOf({}, TOPIC_CONFIG_DEFAULTS)).toEqual({ retentionMs: 604_800_000, retentionBytes: -1 });
    expect(retentionPolicyOf({ 'retention.ms': '1000', 'retention.bytes': '5' }, TOPIC_CONFIG_DEFAULTS)).toEqual({ retentionMs: 1000, retentionBytes: 5 });
    expect(retentionPolicyOf({ 'cleanup.policy': 'compact' }, TOPIC_CONFIG_DEFAULTS)).toBeUndefined();
    expect(retentionPolicyOf({ 'cleanup.policy': 'compact,delete' }, TOPIC_CONFIG_DEFAULTS)).toBeDefined();
  });
});

describe('retention on stream storage', () => {
  let dir: string;
  let metadataStore: EmbeddedMetadataStore;
  let metadata: ClusterModel;
  let objectStore: LocalObjectStore;
  let storage: StreamStorageImpl;
  let nowMs: number;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-retention-'));
    metadataStore = await EmbeddedMetadataStore.open(path.join(dir, 'metadata'));
    metadata = new ClusterModel(metadataStore);
    objectStore = new LocalObjectStore(path.join(dir, 'objects'));
    const wal = await FileWal.open({ path: path.join(dir, 'wal'), capacityBytes: 4 << 20, maxWriteBytes: 64 << 10 });
    storage = new StreamStorageImpl({ nodeId: 1, wal, metadata, objectStore, uploadIntervalMs: 3_600_000 });
    await storage.start();
    nowMs = T0 + 10 * HOUR_MS;
  });

  afterEach(async () => {
    await storage.shutdown();
    await metadataStore.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  function batch(baseOffset: number, timestampMs: number, sizeBytes = 1000): Buffer {
    const bytes = randomBytes(sizeBytes);
    bytes.writeBigInt64BE(BigInt(baseOffset), 0);
    bytes.writeInt32BE(sizeBytes - 12, 8);
    bytes.writeInt8(2, 16);
    bytes.writeInt32BE(0, 23);
    bytes.writeBigInt64BE(BigInt(timestampMs), 35);
    return bytes;
  }

  /** One object per hour of data: 10 one-record batches stamped T0 + hour. */
  async function produceHours(stream: Stream, hours: number): Promise<void> {
    for (let hour = 0; hour < hours; hour++) {
      const appends: Promise<void>[] = [];
      for (let i = 0; i < 10; i++) appends.push(stream.append({ baseOffset: stream.nextOffset(), offsetCount: 1, batch: batch(stream.nextOffset(), T0 + hour * HOUR_MS + i) }));
      await Promise.all(appends);
      await storage.flush();
    }
  }

  function maintenance(targets: RetentionTarget[]): StorageMaintenance {
    return new StorageMaintenance({ metadata, objectStore, prepareTtlMs: 60_000, gcDelayMs: 0, retentionTargets: async () => targets, nowMs: () => nowMs });
  }

  function target(stream: Stream, retentionMs: number, retentionBytes: number): RetentionTarget {
    return { streamId: stream.streamId, retentionMs, retentionBytes, trim: (offset) => stream.trim(offset) };
  }

  it('by time trims past the objects older than retention.ms, and the collector frees them', async () => {
    const stream = await storage.createStream();
    await produceHours(stream, 6); // hours 0..5
    const upkeep = maintenance([target(stream, 6 * HOUR_MS, -1)]); // keeps what is newer than hour 4
    expect(await upkeep.applyRetention()).toBe(1);
    expect(stream.startOffset()).toBe(40);
    expect((await metadata.getStream(stream.streamId))!.startOffset).toBe(40);
    expect(await upkeep.applyRetention()).toBe(0); // nothing more to do
    expect(await upkeep.collectGarbage()).toMatchObject({ droppedObjects: 4, deletedObjects: 4 });
    expect((await objectStore.list('objects/')).length).toBe(2);
    const read = await stream.read(40, 1 << 20);
    expect(read.batches[0]!.readBigInt64BE(35)).toBe(BigInt(T0 + 4 * HOUR_MS));
  });

  it('by size keeps at least retention.bytes per partition, in whole objects', async () => {
    const stream = await storage.createStream();
    await produceHours(stream, 5); // five objects of 10 000 bytes of batches
    const upkeep = maintenance([target(stream, -1, 25_000)]);
    expect(await upkeep.applyRetention()).toBe(1);
    expect(stream.startOffset()).toBe(20); // 30 000 bytes left: one more object would leave 20 000
    expect(await upkeep.collectGarbage()).toMatchObject({ deletedObjects: 2 });
    expect((await objectStore.list('objects/')).length).toBe(3);
  });

  it('measures objects committed without stats from their data', async () => {
    const stream = await storage.createStream();
    await stream.close();
    const state = await metadata.openStream(stream.streamId, 7);
    // An object as written before ranges carried stats: one hour-0 batch at offset 0.
    const writer = new DataObjectWriter();
    writer.add(stream.streamId, 0, 1, batch(0, T0));
    const finished = writer.finish();
    const objectId = await metadata.prepareObject(60_000);
    await objectStore.put(objectKey('', objectId), finished.chunks);
    await metadata.commitObject({ objectId, key: objectKey('', objectId), sizeBytes: finished.sizeBytes, ranges: [{ streamId: stream.streamId, epoch: state.epoch, startOffset: 0, endOffset: 1 }] });
    let trimmedTo = -1;
    const upkeep = maintenance([{ streamId: stream.streamId, retentionMs: HOUR_MS, retentionBytes: -1, trim: async (offset) => { trimmedTo = offset; } }]);
    expect(await upkeep.applyRetention()).toBe(1);
    expect(trimmedTo).toBe(1);
  });
});
