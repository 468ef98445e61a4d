import { describe, expect, it } from 'vitest';
import { crc32c } from '@node-rs/crc32';
import { zstdCompressSync } from 'node:zlib';
import { ErrorCode } from '../../src/protocol/errors.ts';
import {
  Attribute,
  BATCH_HEADER_BYTES,
  batchSizeAt,
  computeBatchCrc,
  CompressionType,
  findRecordByTimestamp,
  forEachBatch,
  isLogAppendTime,
  lastSequenceOf,
  readBaseOffset,
  readBatchHeader,
  readCompressionType,
  readCrc,
  readMaxTimestamp,
  readProducerId,
  readRecordCount,
  setBaseOffset,
  setLogAppendTime,
  setPartitionLeaderEpoch,
  validateBatch,
  validateProducedBatch,
} from '../../src/protocol/records.ts';
import { buildBatch } from './log/batch-builder.ts';

/** Rewrites a field inside the CRC-covered part and fixes the CRC, as a buggy client could. */
function withValidCrc(batch: Buffer): Buffer {
  batch.writeUInt32BE(crc32c(batch.subarray(21)) >>> 0, 17);
  return batch;
}

describe('record batch v2 header', () => {
  it('reads the header kafkajs wrote', async () => {
    const batch = await buildBatch({ values: ['a', 'b', 'c'], timestampsMs: [100, 300, 200], producerId: 42, producerEpoch: 3, firstSequence: 7 });
    const header = readBatchHeader(batch, 0);
    expect(header).toMatchObject({
      pos: 0,
      sizeBytes: batch.length,
      baseOffset: 0,
      magic: 2,
      lastOffsetDelta: 2,
      baseTimestamp: 100,
      maxTimestamp: 300,
      producerId: 42,
      producerEpoch: 3,
      baseSequence: 7,
      recordCount: 3,
    });
    expect(header.crc).toBe(computeBatchCrc(batch, 0));
    expect(validateBatch(batch, 0)).toBe(ErrorCode.NONE);
  });

  it('reads producer id -1 and large int64 values', async () => {
    const batch = await buildBatch({ timestampsMs: [1_700_000_000_123] });
    expect(readProducerId(batch, 0)).toBe(-1);
    expect(readMaxTimestamp(batch, 0)).toBe(1_700_000_000_123);
    setBaseOffset(batch, 0, 2 ** 40 + 5);
    expect(readBaseOffset(batch, 0)).toBe(2 ** 40 + 5);
  });

  it('iterates concatenated batches without decoding records', async () => {
    const batches = [await buildBatch({ values: ['a'] }), await buildBatch({ values: ['b', 'c'] }), await buildBatch({ values: ['d'] })];
    const buf = Buffer.concat(batches);
    const seen: [number, number][] = [];
    expect(forEachBatch(buf, (pos, size) => void seen.push([pos, size]))).toBe(ErrorCode.NONE);
    expect(seen).toEqual([
      [0, batches[0]!.length],
      [batches[0]!.length, batches[1]!.length],
      [batches[0]!.length + batches[1]!.length, batches[2]!.length],
    ]);
    expect(seen.map(([pos]) => readRecordCount(buf, pos))).toEqual([1, 2, 1]);
  });

  it('reports a truncated trailing batch as corrupt after visiting the whole ones', async () => {
    const buf = Buffer.concat([await buildBatch(), (await buildBatch()).subarray(0, 40)]);
    let visited = 0;
    expect(forEachBatch(buf, () => void visited++)).toBe(ErrorCode.CORRUPT_MESSAGE);
    expect(visited).toBe(1);
    expect(batchSizeAt(buf, buf.length - 40)).toBe(-1);
  });

  it('computes sequence ranges that wrap at int32 max', () => {
    expect(lastSequenceOf(5, 4)).toBe(9);
    expect(lastSequenceOf(0x7fffffff, 0)).toBe(0x7fffffff);
    expect(lastSequenceOf(0x7fffffff - 1, 3)).toBe(1);
    expect(lastSequenceOf(-1, 3)).toBe(-1);
  });
});

describe('validateBatch answers what Kafka answers', () => {
  it('a flipped bit in the records is CORRUPT_MESSAGE', async () => {
    const batch = await buildBatch({ values: ['hello'] });
    batch[batch.length - 3]! ^= 0x01;
    expect(validateBatch(batch, 0)).toBe(ErrorCode.CORRUPT_MESSAGE);
  });

  it('a flipped bit in a CRC-covered header field is CORRUPT_MESSAGE', async () => {
    const batch = await buildBatch();
    batch[40]! ^= 0x10; // maxTimestamp
    expect(validateBatch(batch, 0)).toBe(ErrorCode.CORRUPT_MESSAGE);
  });

  it('a truncated batch or one shorter than its header is CORRUPT_MESSAGE', async () => {
    const batch = await buildBatch();
    expect(validateBatch(batch.subarray(0, batch.length - 1), 0)).toBe(ErrorCode.CORRUPT_MESSAGE);
    expect(validateBatch(batch.subarray(0, 30), 0)).toBe(ErrorCode.CORRUPT_MESSAGE);
    const short = Buffer.from(batch);
    short.writeInt32BE(20, 8);
    expect(validateBatch(short, 0)).toBe(ErrorCode.CORRUPT_MESSAGE);
  });

  it('magic other than 2 is INVALID_RECORD (ProduceRequest v3+)', async () => {
    const batch = await buildBatch();
    batch.writeInt8(1, 16);
    expect(validateBatch(batch, 0)).toBe(ErrorCode.INVALID_RECORD);
  });

  it('a record count that disagrees with lastOffsetDelta is INVALID_RECORD', async () => {
    const batch = await buildBatch({ values: ['a', 'b'] });
    batch.writeInt32BE(3, 57);
    expect(validateBatch(withValidCrc(batch), 0)).toBe(ErrorCode.INVALID_RECORD);
    batch.writeInt32BE(0, 57);
    batch.writeInt32BE(-1, 23);
    expect(validateBatch(withValidCrc(batch), 0)).toBe(ErrorCode.INVALID_RECORD);
  });

  it('from a producer: non-zero base offset, control batches and idempotence without sequence are INVALID_RECORD', async () => {
    const offsetSet = await buildBatch();
    setBaseOffset(offsetSet, 0, 5);
    expect(validateBatch(offsetSet, 0)).toBe(ErrorCode.NONE);
    expect(validateProducedBatch(offsetSet, 0)).toBe(ErrorCode.INVALID_RECORD);

    const control = await buildBatch();
    control.writeInt16BE(Attribute.CONTROL, 21);
    expect(validateProducedBatch(withValidCrc(control), 0)).toBe(ErrorCode.INVALID_RECORD);

    const noSequence = await buildBatch({ producerId: 9, firstSequence: -1 });
    expect(validateProducedBatch(noSequence, 0)).toBe(ErrorCode.INVALID_RECORD);
    expect(validateProducedBatch(await buildBatch({ producerId: 9, firstSequence: 0 }), 0)).toBe(ErrorCode.NONE);
  });
});

describe('rewrites', () => {
  it('setBaseOffset and setPartitionLeaderEpoch keep the CRC valid (not covered)', async () => {
    const batch = await buildBatch({ values: ['a', 'b'] });
    const crc = readCrc(batch, 0);
    setBaseOffset(batch, 0, 123_456_789_012);
    setPartitionLeaderEpoch(batch, 0, 7);
    expect(readBaseOffset(batch, 0)).toBe(123_456_789_012);
    expect(readBatchHeader(batch, 0).partitionLeaderEpoch).toBe(7);
    expect(readCrc(batch, 0)).toBe(crc);
    expect(validateBatch(batch, 0)).toBe(ErrorCode.NONE);
  });

  it('setLogAppendTime sets the attribute and maxTimestamp and recomputes the CRC', async () => {
    const batch = await buildBatch({ values: ['a', 'b'], timestampsMs: [10, 20] });
    const before = readCrc(batch, 0);
    setLogAppendTime(batch, 0, 1_700_000_000_000);
    expect(isLogAppendTime(batch, 0)).toBe(true);
    expect(readMaxTimestamp(batch, 0)).toBe(1_700_000_000_000);
    expect(readBatchHeader(batch, 0).baseTimestamp).toBe(10);
    expect(readCrc(batch, 0)).not.toBe(before);
    expect(validateBatch(batch, 0)).toBe(ErrorCode.NONE);
  });

  it('rewrites one batch among several in place', async () => {
    const first = await buildBatch();
    const buf = Buffer.concat([first, await buildBatch({ values: ['x', 'y'] })]);
    setBaseOffset(buf, first.length, 41);
    setLogAppendTime(buf, first.length, 5);
    expect(validateBatch(buf, 0)).toBe(ErrorCode.NONE);
    expect(validateBatch(buf, first.length)).toBe(ErrorCode.NONE);
    expect(readBaseOffset(buf, 0)).toBe(0);
    expect(readBaseOffset(buf, first.length)).toBe(41);
  });
});

describe('findRecordByTimestamp', () => {
  it('finds the first record at or after the target in an uncompressed batch', async () => {
    const batch = await buildBatch({ values: ['a', 'b', 'c', 'd'], timestampsMs: [1000, 3000, 2000, 5000] });
    setBaseOffset(batch, 0, 100);
    expect(findRecordByTimestamp(batch, 0, 500)).toEqual({ offset: 100, timestampMs: 1000 });
    expect(findRecordByTimestamp(batch, 0, 2000)).toEqual({ offset: 101, timestampMs: 3000 });
    expect(findRecordByTimestamp(batch, 0, 4000)).toEqual({ offset: 103, timestampMs: 5000 });
    expect(findRecordByTimestamp(batch, 0, 5001)).toBeUndefined();
  });

  it('looks inside gzip batches', async () => {
    const batch = await buildBatch({ values: ['a', 'b', 'c'], timestampsMs: [10, 20, 30], compression: 1 });
    expect(readCompressionType(batch, 0)).toBe(CompressionType.GZIP);
    expect(validateBatch(batch, 0)).toBe(ErrorCode.NONE);
    expect(findRecordByTimestamp(batch, 0, 15)).toEqual({ offset: 1, timestampMs: 20 });
  });

  it('looks inside zstd batches', async () => {
    const plain = await buildBatch({ values: ['a', 'b', 'c'], timestampsMs: [10, 20, 30] });
    const compressed = zstdCompressSync(plain.subarray(BATCH_HEADER_BYTES));
    const batch = Buffer.concat([plain.subarray(0, BATCH_HEADER_BYTES), compressed]);
    batch.writeInt32BE(batch.length - 12, 8);
    batch.writeInt16BE(CompressionType.ZSTD, 21);
    withValidCrc(batch);
    expect(validateBatch(batch, 0)).toBe(ErrorCode.NONE);
    expect(findRecordByTimestamp(batch, 0, 25)).toEqual({ offset: 2, timestampMs: 30 });
  });

  it('answers LogAppendTime batches with their base offset and append time', async () => {
    const batch = await buildBatch({ values: ['a', 'b'], timestampsMs: [10, 20] });
    setBaseOffset(batch, 0, 7);
    setLogAppendTime(batch, 0, 900);
    expect(findRecordByTimestamp(batch, 0, 800)).toEqual({ offset: 7, timestampMs: 900 });
    expect(findRecordByTimestamp(batch, 0, 901)).toBeUndefined();
  });

  it('answers at batch granularity for codecs Node lacks (lz4)', async () => {
    const batch = await buildBatch({ values: ['a', 'b'], timestampsMs: [10, 20] });
    batch.writeInt16BE(CompressionType.LZ4, 21);
    withValidCrc(batch);
    setBaseOffset(batch, 0, 3);
    expect(findRecordByTimestamp(batch, 0, 15)).toEqual({ offset: 3, timestampMs: 20 });
  });
});
