import { describe, expect, it } from 'vitest';
import { encodeRecordBatch, recordBatchSize, recordBatchSizeBound, type EncodableRecord } from '../../src/protocol/record-encoder.ts';
import { validateBatch } from '../../src/protocol/records.ts';

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
    timestampMs: next(3) === 0 ? undefined : 1_700_000_000_000 + next(10_000_000) - 5_000_000,
  }));
}

describe('the record batch encoder', () => {
  it('builds valid batches whose size recordBatchSize predicts and recordBatchSizeBound never underestimates', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const records = randomRecords(seed, 1 + (seed % 40));
      const nowMs = 1_700_000_000_000;
      const batch = encodeRecordBatch(records, nowMs);
      expect(validateBatch(batch, 0)).toBe(0);
      expect(recordBatchSize(records, nowMs)).toBe(batch.length);
      expect(recordBatchSizeBound(records)).toBeGreaterThanOrEqual(batch.length);
    }
  });
});
