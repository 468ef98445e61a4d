// Data objects written by DataObjectWriter read back, batch for batch, through DataObjectReader,
// from a local directory and from S3, with as few GETs as the format promises.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CorruptDataObjectError,
  DataObjectReader,
  DataObjectWriter,
  FOOTER_SIZE_BYTES,
  INDEX_ENTRY_SIZE_BYTES,
  StreamedDataObjectWriter,
  forEachBatch,
} from '../../../src/storage/objects/format.ts';
import { LocalObjectStore } from '../../../src/storage/objectstore/local.ts';
import type { ObjectStore } from '../../../src/storage/objectstore/objectstore.ts';
import { S3ObjectStore } from '../../../src/storage/objectstore/s3.ts';
import { CountingStore } from '../../helpers/counting-store.ts';
import { startS3rver } from '../../helpers/s3rver.ts';

const MiB = 1024 * 1024;

/** A stand-in for a Kafka v2 batch: the framing fields are real, the rest is a pattern. */
function makeBatch(baseOffset: number, offsetCount: number, sizeBytes: number): Buffer {
  const batch = Buffer.alloc(Math.max(61, sizeBytes));
  batch.writeBigInt64BE(BigInt(baseOffset), 0);
  batch.writeInt32BE(batch.length - 12, 8);
  batch.writeInt8(2, 16); // magic
  batch.writeInt32BE(offsetCount - 1, 23); // lastOffsetDelta
  for (let i = 61; i < batch.length; i++) batch[i] = (baseOffset + i) & 0xff;
  return batch;
}

interface StoredBatch {
  baseOffset: number;
  endOffset: number;
  batch: Buffer;
}

/** Deterministic pseudo-random integers. */
function lcg(seed: number): (max: number) => number {
  let state = seed;
  return (max) => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state % max;
  };
}

/** Three streams, interleaved: a big one (~3.5 MiB, several blocks), a tiny one, a huge id. */
function buildStreams(): Map<number, StoredBatch[]> {
  const rand = lcg(42);
  const plan: [number, number, number, number][] = [
    // streamId, batches, startOffset, max batch size
    [7, 400, 0, 18_000],
    [2, 5, 1000, 300],
    [2 ** 40 + 3, 150, 5_000_000_000, 40_000],
  ];
  const streams = new Map<number, StoredBatch[]>();
  for (const [streamId, count, startOffset, maxSize] of plan) {
    const batches: StoredBatch[] = [];
    let offset = startOffset;
    for (let i = 0; i < count; i++) {
      const offsetCount = 1 + rand(50);
      batches.push({ baseOffset: offset, endOffset: offset + offsetCount, batch: makeBatch(offset, offsetCount, 61 + rand(maxSize)) });
      offset += offsetCount + (i % 17 === 0 ? 3 : 0); // a few gaps, as compaction leaves
    }
    streams.set(streamId, batches);
  }
  return streams;
}

function writeInterleaved(streams: Map<number, StoredBatch[]>, blockSizeBytes?: number) {
  const writer = new DataObjectWriter(blockSizeBytes === undefined ? {} : { blockSizeBytes });
  const cursors = [...streams].map(([streamId, batches]) => ({ streamId, batches, next: 0 }));
  for (let added = true; added; ) {
    added = false;
    for (const cursor of cursors) {
      const item = cursor.batches[cursor.next++];
      if (item === undefined) continue;
      writer.add(cursor.streamId, item.baseOffset, item.endOffset - item.baseOffset, item.batch);
      added = true;
    }
  }
  return writer.finish();
}

function describeFormatOn(name: string, setup: () => Promise<{ store: ObjectStore; cleanup(): Promise<void> }>): void {
  describe(`data objects on ${name}`, () => {
    let store: CountingStore;
    let cleanup: () => Promise<void>;
    const streams = buildStreams();
    const finished = writeInterleaved(streams);
    const key = 'objects/0000000001';

    beforeAll(async () => {
      const fixture = await setup();
      store = new CountingStore(fixture.store);
      cleanup = fixture.cleanup;
      await store.put(key, Buffer.concat(finished.chunks, finished.sizeBytes));
    });
    afterAll(async () => {
      await store.close();
      await cleanup();
    });

    it('opens with a single GET and finds every stream in the index', async () => {
      store.gets = 0;
      const reader = await DataObjectReader.open(store, key, finished.sizeBytes);
      expect(store.gets).toBe(1);
      expect(reader.blockCount).toBe(finished.blockCount);
      expect(reader.streamRanges()).toEqual(finished.ranges);
      expect(finished.ranges.map((r) => r.streamId)).toEqual([2, 7, 2 ** 40 + 3]);
      for (let i = 0; i < reader.blockCount; i++) {
        const entry = reader.entry(i);
        expect(entry.sizeBytes).toBeLessThanOrEqual(MiB);
        if (i + 1 < reader.blockCount) expect(reader.entry(i + 1).position).toBe(entry.position + entry.sizeBytes);
      }
      // ~3.5 MiB of stream 7 and ~2.9 MiB of the big-id stream: blocks split at about 1 MiB.
      const blocksOf7 = Array.from({ length: reader.blockCount }, (_, i) => reader.entry(i)).filter((e) => e.streamId === 7);
      expect(blocksOf7.length).toBeGreaterThanOrEqual(4);
      expect(blocksOf7.slice(0, -1).every((e) => e.sizeBytes > MiB - 18_100)).toBe(true);
    });

    it('reads every stream back, batch for batch, byte for byte', async () => {
      const reader = await DataObjectReader.open(store, key, finished.sizeBytes);
      for (const [streamId, expected] of streams) {
        const got: Buffer[] = [];
        let offset = expected[0]!.baseOffset;
        for (let reads = 0; ; reads++) {
          expect(reads).toBeLessThan(1000);
          const result = await reader.readRange(streamId, offset, 256 * 1024);
          if (result.batches.length === 0) break;
          got.push(...result.batches);
          offset = result.nextOffset;
        }
        expect(offset).toBe(expected[expected.length - 1]!.endOffset);
        expect(got.length).toBe(expected.length);
        got.forEach((batch, i) => expect(batch.equals(expected[i]!.batch)).toBe(true));
      }
    });

    it('reads from any offset, even inside a batch, starting with the batch that holds it', async () => {
      const reader = await DataObjectReader.open(store, key, finished.sizeBytes);
      const rand = lcg(7);
      for (const [streamId, expected] of streams) {
        for (let trial = 0; trial < 25; trial++) {
          const first = rand(expected.length);
          const target = expected[first]!;
          const offset = target.baseOffset + rand(target.endOffset - target.baseOffset);
          const maxBytes = 1 + rand(3 * MiB);
          store.gets = 0;
          const result = await reader.readRange(streamId, offset, maxBytes);
          expect(store.gets).toBe(1);
          expect(result.batches[0]!.equals(target.batch)).toBe(true);
          const total = result.batches.reduce((sum, b) => sum + b.length, 0);
          if (result.batches.length > 1) expect(total).toBeLessThanOrEqual(maxBytes);
          result.batches.forEach((batch, i) => expect(batch.equals(expected[first + i]!.batch)).toBe(true));
          expect(result.nextOffset).toBe(expected[first + result.batches.length - 1]!.endOffset);
        }
      }
    });

    it('starts at the next batch when the offset falls in a gap, and finds nothing past the end or in an absent stream', async () => {
      const reader = await DataObjectReader.open(store, key, finished.sizeBytes);
      const batches = streams.get(7)!;
      const gapAfter = batches.findIndex((b, i) => i + 1 < batches.length && batches[i + 1]!.baseOffset > b.endOffset);
      const result = await reader.readRange(7, batches[gapAfter]!.endOffset, 1);
      expect(result.batches).toHaveLength(1);
      expect(result.batches[0]!.equals(batches[gapAfter + 1]!.batch)).toBe(true);
      expect(await reader.readRange(7, batches[batches.length - 1]!.endOffset, MiB)).toEqual({
        batches: [],
        nextOffset: batches[batches.length - 1]!.endOffset,
      });
      expect(reader.findBlocks(3, 0, MiB)).toEqual([]);
      expect(reader.findBlocks(2 ** 41, 0, MiB)).toEqual([]);
      const fromBefore = await reader.readRange(2, 0, 1);
      expect(fromBefore.batches[0]!.equals(streams.get(2)![0]!.batch)).toBe(true);
    });

    it('reads single blocks with readBlock, each holding whole batches of one stream', async () => {
      const reader = await DataObjectReader.open(store, key, finished.sizeBytes);
      const blocks = reader.findBlocks(7, 0, 2 * MiB);
      expect(blocks.length).toBe(2);
      store.gets = 0;
      const block = await reader.readBlock(blocks[1]!);
      expect(store.gets).toBe(1);
      let count = 0;
      let end = -1;
      forEachBatch(block, (_batch, baseOffset, endOffset) => {
        if (count++ === 0) expect(baseOffset).toBe(blocks[1]!.startOffset);
        end = endOffset;
      });
      expect(count).toBe(blocks[1]!.batchCount);
      expect(end).toBe(blocks[1]!.endOffset);
    });
  });
}

describeFormatOn('a local directory', async () => {
  const rootDir = await mkdtemp(path.join(os.tmpdir(), 'wharf-format-'));
  return { store: new LocalObjectStore(rootDir), cleanup: () => rm(rootDir, { recursive: true, force: true }) };
});

describeFormatOn('S3 (s3rver)', async () => {
  const s3rver = await startS3rver();
  const store = new S3ObjectStore({
    endpoint: s3rver.endpoint,
    region: s3rver.region,
    bucket: s3rver.bucket,
    accessKeyId: s3rver.accessKeyId,
    secretAccessKey: s3rver.secretAccessKey,
    forcePathStyle: true,
  });
  return { store, cleanup: () => s3rver.stop() };
});

describe('data object layout', () => {
  let rootDir: string;
  let local: LocalObjectStore;
  beforeAll(async () => {
    rootDir = await mkdtemp(path.join(os.tmpdir(), 'wharf-format-layout-'));
    local = new LocalObjectStore(rootDir);
  });
  afterAll(() => rm(rootDir, { recursive: true, force: true }));

  async function putObject(key: string, body: Buffer): Promise<void> {
    await local.put(key, body);
  }

  it('lays out blocks, a 36-byte-per-block index and a 48-byte footer ending in "WHARFDO1"', () => {
    const writer = new DataObjectWriter({ blockSizeBytes: 200 });
    writer.add(9, 10, 3, makeBatch(10, 3, 100));
    writer.add(9, 13, 1, makeBatch(13, 1, 100));
    writer.add(9, 14, 2, makeBatch(14, 2, 100)); // 300 > 200: a second block
    writer.add(4, 0, 5, makeBatch(0, 5, 500)); // larger than a block: a block of its own
    const { chunks, sizeBytes, ranges, blockCount } = writer.finish();
    const body = Buffer.concat(chunks);
    expect(body.length).toBe(sizeBytes);
    expect(blockCount).toBe(3);
    expect(sizeBytes).toBe(800 + 3 * INDEX_ENTRY_SIZE_BYTES + FOOTER_SIZE_BYTES);
    expect(ranges).toEqual([
      { streamId: 4, startOffset: 0, endOffset: 5 },
      { streamId: 9, startOffset: 10, endOffset: 16 },
    ]);
    const footer = body.subarray(sizeBytes - FOOTER_SIZE_BYTES);
    expect(footer.readBigUInt64BE(0)).toBe(800n);
    expect(footer.readUInt32BE(8)).toBe(108);
    expect(footer.subarray(12, 40).equals(Buffer.alloc(28))).toBe(true);
    expect(footer.subarray(40).toString('latin1')).toBe('WHARFDO1');
    const index = body.subarray(800, 908);
    const entries = [0, 1, 2].map((i) => {
      const e = index.subarray(i * 36, i * 36 + 36);
      return [e.readBigUInt64BE(0), e.readBigUInt64BE(8), e.readUInt32BE(16), e.readUInt32BE(20), e.readBigUInt64BE(24), e.readUInt32BE(32)];
    });
    expect(entries).toEqual([
      [4n, 0n, 5, 1, 0n, 500],
      [9n, 10n, 4, 2, 500n, 200],
      [9n, 14n, 2, 1, 700n, 100],
    ]);
  });

  it('fetches a large index with a second GET', async () => {
    const writer = new DataObjectWriter();
    for (let streamId = 0; streamId < 3000; streamId++) writer.add(streamId, 0, 1, makeBatch(0, 1, 61));
    const finished = writer.finish();
    expect(finished.sizeBytes - 3000 * 61).toBeGreaterThan(64 * 1024);
    await putObject('big-index', Buffer.concat(finished.chunks));
    const counting = new CountingStore(local);
    const reader = await DataObjectReader.open(counting, 'big-index', finished.sizeBytes);
    expect(counting.gets).toBe(2);
    expect(reader.blockCount).toBe(3000);
    const result = await reader.readRange(2999, 0, MiB);
    expect(result.nextOffset).toBe(1);
  });

  it('refuses corrupt objects with a clear error', async () => {
    const writer = new DataObjectWriter();
    writer.add(1, 0, 10, makeBatch(0, 10, 1000));
    writer.add(1, 10, 10, makeBatch(10, 10, 1000));
    const good = Buffer.concat(writer.finish().chunks);
    const cases: [string, Buffer, RegExp][] = [];
    const badMagic = Buffer.from(good);
    badMagic[badMagic.length - 1] ^= 0xff;
    cases.push(['bad-magic', badMagic, /bad footer magic/]);
    const badIndex = Buffer.from(good);
    badIndex.writeUInt32BE(36 * 5, badIndex.length - 40);
    cases.push(['bad-index', badIndex, /does not end at the footer/]);
    const blockOutside = Buffer.from(good);
    blockOutside.writeUInt32BE(5000, 2000 + 32); // block size reaching into the index
    cases.push(['block-outside', blockOutside, /past the index/]);
    cases.push(['too-small', good.subarray(0, 20), /smaller than a footer/]);
    for (const [key, body, message] of cases) {
      await putObject(key, body);
      const open = DataObjectReader.open(local, key, body.length);
      await expect(open).rejects.toBeInstanceOf(CorruptDataObjectError);
      await expect(open).rejects.toThrow(message);
    }
    await putObject('short', good.subarray(100));
    await expect(DataObjectReader.open(local, 'short', good.length)).rejects.toThrow(/shorter/);

    const badBatch = Buffer.from(good);
    badBatch.writeInt32BE(5000, 1000 + 8); // second batch claims more bytes than the block has
    await putObject('bad-batch', badBatch);
    const reader = await DataObjectReader.open(local, 'bad-batch', badBatch.length);
    await expect(reader.readRange(1, 0, MiB)).rejects.toThrow(CorruptDataObjectError);
    await expect(reader.readRange(1, 0, MiB)).rejects.toThrow(/claims 5012 bytes/);
  });

  it('refuses batches whose header disagrees, and offsets that go backwards', () => {
    const writer = new DataObjectWriter();
    writer.add(1, 100, 5, makeBatch(100, 5, 100));
    expect(() => writer.add(1, 103, 2, makeBatch(103, 2, 100))).toThrow(/backwards/);
    expect(() => writer.add(1, 200, 2, makeBatch(201, 2, 100))).toThrow(/base offset 201/);
    expect(() => writer.add(1, 200, 3, makeBatch(200, 2, 100))).toThrow(/lastOffsetDelta/);
    expect(() => writer.add(1, 200, 2, makeBatch(200, 2, 100).subarray(0, 90))).toThrow(/claims/);
    expect(() => writer.add(-1, 200, 2, makeBatch(200, 2, 100))).toThrow(RangeError);
    writer.add(2, 0, 1, makeBatch(0, 1, 61));
    writer.add(1, 105, 1, makeBatch(105, 1, 61));
    expect(writer.finish().ranges).toEqual([
      { streamId: 1, startOffset: 100, endOffset: 106 },
      { streamId: 2, startOffset: 0, endOffset: 1 },
    ]);
    expect(() => writer.finish()).toThrow(/twice/);
  });

  it('a streamed writer makes the same bytes from streams given in id order, and refuses any other order', () => {
    const streams = buildStreams();
    const whole = writeInterleaved(streams, 64 * 1024);
    const streamed = new StreamedDataObjectWriter({ blockSizeBytes: 64 * 1024 });
    const chunks: Buffer[] = [];
    for (const streamId of [...streams.keys()].sort((a, b) => a - b)) {
      for (const { baseOffset, endOffset, batch } of streams.get(streamId)!) {
        streamed.add(streamId, baseOffset, endOffset - baseOffset, batch);
        chunks.push(batch);
      }
    }
    const finished = streamed.finish();
    chunks.push(...finished.chunks);
    expect(Buffer.concat(chunks).equals(Buffer.concat(whole.chunks))).toBe(true);
    expect(finished).toMatchObject({ sizeBytes: whole.sizeBytes, ranges: whole.ranges, blockCount: whole.blockCount });

    const ordered = new StreamedDataObjectWriter();
    ordered.add(5, 0, 1, makeBatch(0, 1, 100));
    expect(() => ordered.add(4, 0, 1, makeBatch(0, 1, 100))).toThrow(/increasing id order/);
    expect(() => ordered.add(5, 0, 1, makeBatch(0, 1, 100))).toThrow(/backwards/);
    ordered.add(6, 0, 1, makeBatch(0, 1, 100));
    expect(ordered.streamCount).toBe(2);
  });

  it('writes and reads an object with no blocks', async () => {
    const finished = new DataObjectWriter().finish();
    expect(finished.sizeBytes).toBe(FOOTER_SIZE_BYTES);
    await putObject('empty', Buffer.concat(finished.chunks));
    const reader = await DataObjectReader.open(local, 'empty', finished.sizeBytes);
    expect(reader.blockCount).toBe(0);
    expect(await reader.readRange(1, 0, MiB)).toEqual({ batches: [], nextOffset: 0 });
  });
});
