// Reading Kafka v2 record batches back into records: batches from Wharf's encoder and from
// kafkajs's encoder, several back to back as a Fetch returns them, control and LogAppendTime
// batches, and the compression codecs Kafka clients use (gzip, snappy raw and xerial-framed as
// the Java client writes it, zstd; lz4 refused clearly).

import { createRequire } from 'node:module';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { compressSync as snappyCompress } from 'snappy';
import { describe, expect, it } from 'vitest';
import { encodeRecordBatch, type EncodableRecord } from '../../src/protocol/record-encoder.ts';
import {
  RecordDecodeError, UnsupportedCompressionError, forEachRecord, type DecodedRecord, type ForEachRecordOptions,
} from '../../src/protocol/record-decoder.ts';
import { Attribute, BATCH_HEADER_BYTES, CompressionType, computeBatchCrc, setBaseOffset, setLogAppendTime } from '../../src/protocol/records.ts';

const require = createRequire(import.meta.url);
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0') as {
  RecordBatch: (options: Record<string, unknown>) => Promise<{ buffer: Buffer }>;
};
const KafkajsRecord = require('kafkajs/src/protocol/recordBatch/record/v0') as (options: Record<string, unknown>) => unknown;

const T0 = 1_763_700_000_000;

interface Seen {
  offset: number;
  timestampMs: number;
  partition: number;
  key: string | null;
  value: string | null;
  headers: { key: string; value: string | null }[];
}

function readAll(batches: Buffer, options?: ForEachRecordOptions): { seen: Seen[]; result: ReturnType<typeof forEachRecord> } {
  const seen: Seen[] = [];
  const result = forEachRecord(batches, (r: DecodedRecord) => {
    seen.push({
      offset: r.offset,
      timestampMs: r.timestampMs,
      partition: r.partition,
      key: r.key?.toString() ?? null,
      value: r.value?.toString() ?? null,
      headers: r.headerList().map((h) => ({ key: h.key, value: h.value?.toString() ?? null })),
    });
  }, options);
  return { seen, result };
}

const RECORDS: EncodableRecord[] = [
  { key: Buffer.from('k0'), value: Buffer.from('first value'), timestampMs: T0, headers: [{ key: 'trace', value: Buffer.from('t-1') }, { key: 'empty', value: null }] },
  { key: null, value: Buffer.from(''), timestampMs: T0 + 7 },
  { key: Buffer.from('k2'), value: null, timestampMs: T0 - 3 },
  { key: Buffer.from('ключ'), value: Buffer.from('x'.repeat(300)), timestampMs: T0 + 1_000_000 },
];

const EXPECTED: Seen[] = [
  { offset: 100, timestampMs: T0, partition: 3, key: 'k0', value: 'first value', headers: [{ key: 'trace', value: 't-1' }, { key: 'empty', value: null }] },
  { offset: 101, timestampMs: T0 + 7, partition: 3, key: null, value: '', headers: [] },
  { offset: 102, timestampMs: T0 - 3, partition: 3, key: 'k2', value: null, headers: [] },
  { offset: 103, timestampMs: T0 + 1_000_000, partition: 3, key: 'ключ', value: 'x'.repeat(300), headers: [] },
];

function batchAt(baseOffset: number, records: EncodableRecord[] = RECORDS): Buffer {
  const batch = encodeRecordBatch(records, T0);
  setBaseOffset(batch, 0, baseOffset);
  return batch;
}

/** The batch with its records section compressed by `compress` and the codec set in its attributes. */
function recompressed(batch: Buffer, codec: number, compress: (records: Buffer) => Buffer): Buffer {
  const out = Buffer.concat([batch.subarray(0, BATCH_HEADER_BYTES), compress(batch.subarray(BATCH_HEADER_BYTES))]);
  out.writeInt32BE(out.length - 12, 8);
  out.writeInt16BE(out.readInt16BE(21) | codec, 21);
  out.writeUInt32BE(computeBatchCrc(out, 0, out.length), 17);
  return out;
}

/** snappy-java's framing (what Kafka's Java client writes): magic, version 1, compatible 1, blocks. */
function xerialSnappy(records: Buffer, blockBytes: number): Buffer {
  const header = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1]);
  const parts: Buffer[] = [header];
  for (let at = 0; at < records.length; at += blockBytes) {
    const block = snappyCompress(records.subarray(at, at + blockBytes));
    const length = Buffer.alloc(4);
    length.writeUInt32BE(block.length);
    parts.push(length, block);
  }
  return Buffer.concat(parts);
}

describe('record decoder', () => {
  it('reads every record of an uncompressed batch as views into the fetched bytes', () => {
    const batch = batchAt(100);
    const { seen, result } = readAll(batch, { partition: 3 });
    expect(seen).toEqual(EXPECTED);
    expect(result).toEqual({ records: 4, bytesRead: batch.length, nextOffset: 104 });
    forEachRecord(batch, (r) => {
      expect(r.buf).toBe(batch);
      if (r.value !== null) expect(r.value.buffer).toBe(batch.buffer);
    });
  });

  it('lets a copy made during the visit ({ ...record }) read the headers too', () => {
    const keys: string[] = [];
    forEachRecord(batchAt(0), (record) => {
      const copy = { ...record, partition: 9 };
      copy.forEachHeader((buf, ks, ke) => keys.push(`${copy.partition}:${buf.toString('utf8', ks, ke)}`));
    });
    expect(keys).toEqual(['9:trace', '9:empty']);
  });

  it('reads batches back to back and ignores a truncated trailing batch', () => {
    const first = batchAt(100);
    const second = batchAt(104, [{ key: null, value: Buffer.from('second batch'), timestampMs: T0 + 5 }]);
    const third = batchAt(105);
    const fetched = Buffer.concat([first, second, third.subarray(0, third.length - 10)]);
    const { seen, result } = readAll(fetched);
    expect(seen.map((s) => [s.offset, s.value])).toEqual([
      [100, 'first value'], [101, ''], [102, null], [103, 'x'.repeat(300)], [104, 'second batch'],
    ]);
    expect(result).toEqual({ records: 5, bytesRead: first.length + second.length, nextOffset: 105 });
    expect(readAll(Buffer.alloc(0)).result).toEqual({ records: 0, bytesRead: 0, nextOffset: -1 });
  });

  it('skips control batches, whose offsets still count', () => {
    const marker = batchAt(104, [{ key: Buffer.from([0, 0, 0, 1]), value: Buffer.from([0, 0, 0, 0, 0, 0]), timestampMs: T0 }]);
    marker.writeInt16BE(Attribute.CONTROL | Attribute.TRANSACTIONAL, 21);
    const { seen, result } = readAll(Buffer.concat([batchAt(100), marker]));
    expect(seen.map((s) => s.offset)).toEqual([100, 101, 102, 103]);
    expect(result.nextOffset).toBe(105);
  });

  it('gives every record of a LogAppendTime batch the batch time', () => {
    const batch = batchAt(0);
    setLogAppendTime(batch, 0, T0 + 42);
    expect(readAll(batch).seen.map((s) => s.timestampMs)).toEqual([T0 + 42, T0 + 42, T0 + 42, T0 + 42]);
  });

  it('reads a gzip batch written by kafkajs', async () => {
    const records = [
      KafkajsRecord({ offsetDelta: 0, timestampDelta: 0, key: Buffer.from('a'), value: Buffer.from('gzip one'), headers: { h: Buffer.from('v') } }),
      KafkajsRecord({ offsetDelta: 1, timestampDelta: 9, key: null, value: Buffer.from('gzip two') }),
    ];
    const encoded = await RecordBatch({ compression: CompressionType.GZIP, firstOffset: 0n, firstTimestamp: T0, maxTimestamp: T0 + 9, lastOffsetDelta: 1, records });
    const batch = Buffer.from(encoded.buffer);
    setBaseOffset(batch, 0, 7);
    expect(batch.readInt16BE(21) & 7).toBe(CompressionType.GZIP);
    expect(readAll(batch).seen).toEqual([
      { offset: 7, timestampMs: T0, partition: -1, key: 'a', value: 'gzip one', headers: [{ key: 'h', value: 'v' }] },
      { offset: 8, timestampMs: T0 + 9, partition: -1, key: null, value: 'gzip two', headers: [] },
    ]);
  });

  const codecs: [string, number, (records: Buffer) => Buffer][] = [
    ['gzip', CompressionType.GZIP, (r) => gzipSync(r)],
    ['zstd', CompressionType.ZSTD, (r) => zstdCompressSync(r)],
    ['raw snappy (librdkafka)', CompressionType.SNAPPY, (r) => snappyCompress(r)],
    ['xerial-framed snappy (Java client), several blocks', CompressionType.SNAPPY, (r) => xerialSnappy(r, 64)],
  ];
  for (const [name, codec, compress] of codecs) {
    it(`reads a ${name} batch`, () => {
      const batch = recompressed(batchAt(100), codec, compress);
      const { seen, result } = readAll(batch, { partition: 3 });
      expect(seen).toEqual(EXPECTED);
      expect(result.bytesRead).toBe(batch.length);
    });
  }

  it('refuses lz4 with an error naming the codec', () => {
    const batch = recompressed(batchAt(0), CompressionType.LZ4, (r) => r);
    expect(() => readAll(batch)).toThrow(UnsupportedCompressionError);
    expect(() => readAll(batch)).toThrow(/lz4/);
  });

  it('bounds decompressed sizes and reports malformed batches', () => {
    const zstd = recompressed(batchAt(0), CompressionType.ZSTD, (r) => zstdCompressSync(r));
    expect(() => readAll(zstd, { maxDecompressedBytes: 100 })).toThrow(RecordDecodeError);
    const snappy = recompressed(batchAt(0), CompressionType.SNAPPY, (r) => snappyCompress(r));
    expect(() => readAll(snappy, { maxDecompressedBytes: 100 })).toThrow(/exceeds the 100-byte bound/);
    const corrupt = recompressed(batchAt(0), CompressionType.GZIP, () => Buffer.from('not gzip'));
    expect(() => readAll(corrupt)).toThrow(/cannot decompress gzip/);
    const badHeader = batchAt(0, [{ key: null, value: Buffer.from('v'), headers: [{ key: 'h', value: Buffer.from('x') }] }]);
    badHeader[badHeader.length - 2] = 0x7e; // the header value's length now runs past the record
    expect(() => readAll(badHeader)).toThrow(/record at byte/);
    const shortRecords = batchAt(0);
    shortRecords.writeInt32BE(9, 57); // claims 9 records, holds 4
    expect(() => readAll(shortRecords)).toThrow(RecordDecodeError);
  });
});
