import { describe, expect, it } from 'vitest';
import { RecordColumns, encodeRecordBatches, murmur2, partitionHash, type EncodableRecord } from '../../src/protocol/record-encoder.ts';
import { forEachRecord } from '../../src/protocol/record-decoder.ts';
import { BATCH_HEADER_BYTES, validateBatch } from '../../src/protocol/records.ts';

const NOW_MS = 1_700_000_000_000;

function randomRecords(seed: number, count: number): EncodableRecord[] {
  let x = seed;
  const next = (n: number): number => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % n;
  };
  return Array.from({ length: count }, () => ({
    key: next(4) === 0 ? null : Buffer.alloc(next(300), 1),
    value: next(5) === 0 ? null : Buffer.alloc(next(20_000), 2),
    headers: Array.from({ length: next(3) }, () => ({ key: 'h-é€😀'.repeat(next(4)), value: next(3) === 0 ? null : Buffer.alloc(next(200), 3) })),
    timestampMs: next(3) === 0 ? undefined : NOW_MS + next(10_000_000) - 5_000_000,
  }));
}

/** A record as comparable text (toEqual on large Buffers is slow), timestamps as a consumer reads them. */
function summary(r: { key: Buffer | null; value: Buffer | null; headers?: readonly { key: string; value: Buffer | null }[]; timestampMs?: number }): string {
  const bytes = (b: Buffer | null): string => (b === null ? 'null' : b.toString('base64'));
  return JSON.stringify([bytes(r.key), bytes(r.value), (r.headers ?? []).map((h) => [h.key, bytes(h.value)]), r.timestampMs ?? NOW_MS]);
}

/** The records of the batches, as they read back. */
function readBack(batches: Buffer[]): string[] {
  const records: string[] = [];
  for (const batch of batches) forEachRecord(batch, (r) => records.push(summary({ key: r.key, value: r.value, headers: r.headerList(), timestampMs: r.timestampMs })));
  return records;
}

describe('the record batch encoder', () => {
  it('writes records that read back as they were, in valid batches no larger than asked', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const records = randomRecords(seed, 1 + (seed % 40));
      const maxBatchBytes = seed % 2 === 0 ? Infinity : 30_000;
      const encoded = encodeRecordBatches(RecordColumns.of(records), null, 0, records.length, NOW_MS, maxBatchBytes);
      for (const { batch, recordCount } of encoded) {
        expect(validateBatch(batch, 0)).toBe(0);
        if (recordCount > 1) expect(batch.length).toBeLessThanOrEqual(maxBatchBytes);
      }
      expect(encoded.reduce((n, b) => n + b.recordCount, 0)).toBe(records.length);
      expect(readBack(encoded.map((b) => b.batch))).toEqual(records.map(summary));
    }
  });

  it('splits a run of records at the size bound, each batch as full as it can be', () => {
    const records = Array.from({ length: 100 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.alloc(1000, i) }));
    const encoded = encodeRecordBatches(RecordColumns.of(records), null, 0, records.length, NOW_MS, 10_000);
    expect(encoded.length).toBeGreaterThan(10);
    for (const { batch } of encoded.slice(0, -1)) expect(batch.length + 1010).toBeGreaterThan(10_000);
    expect(readBack(encoded.map((b) => b.batch))).toEqual(records.map(summary));
  });

  it('takes keys and values from ranges of larger buffers, in the order asked for', () => {
    const request = Buffer.from('aaaa|bbbbbb|cc');
    const columns = new RecordColumns();
    const keys = Buffer.from('a|b');
    columns.addRanges(keys, 0, 1, partitionHash(Buffer.from('a')), request, 0, 4);
    columns.addRanges(keys, 2, 3, partitionHash(Buffer.from('b')), request, 5, 11);
    columns.addRanges(null, 0, 0, -1, request, 12, 14);
    columns.add(Buffer.from('null'), null);
    columns.setHeaders(1, [{ key: 'h', value: Buffer.from('v') }]);
    const [{ batch, recordCount }, ...rest] = encodeRecordBatches(columns, Int32Array.of(2, 0, 1, 3), 1, 4, NOW_MS, Infinity);
    expect(rest).toEqual([]);
    expect(recordCount).toBe(3);
    expect(readBack([batch])).toEqual([
      { key: Buffer.from('a'), value: Buffer.from('aaaa') },
      { key: Buffer.from('b'), value: Buffer.from('bbbbbb'), headers: [{ key: 'h', value: Buffer.from('v') }] },
      { key: Buffer.from('null'), value: null },
    ].map(summary));
    expect(batch.length).toBeGreaterThan(BATCH_HEADER_BYTES);
  });

  it('keeps the partition hash of each key as the Java client computes it', () => {
    const columns = RecordColumns.of([{ key: Buffer.from('trace-1'), value: null }, { key: null, value: null }]);
    expect(columns.partitionHash(0)).toBe(murmur2(Buffer.from('trace-1')) & 0x7fffffff);
    expect(columns.partitionHash(0)).toBe(partitionHash(Buffer.from('trace-1')));
    expect(columns.partitionHash(1)).toBe(-1);
  });
});
