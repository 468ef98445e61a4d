// Any other topic -> a raw table: one row per Kafka record with partition, offset, timestamp,
// key, value and headers as bytes, read back from the builders and by DuckDB from Parquet.

import { describe, expect, it } from 'vitest';
import { convert, openTables, queryParquet } from './convert-support.ts';

const T0 = 1_763_700_000_000;

describe('raw converter', () => {
  it('keeps every record with its bytes, nulls and headers', () => {
    const tables = openTables('raw');
    convert(tables, [
      { key: Buffer.from([0, 1, 2]), value: Buffer.from('{"a":1}'), timestampMs: T0, headers: [{ key: 'content-type', value: Buffer.from('json') }, { key: 'tombstone', value: null }] },
      { key: null, value: null, timestampMs: T0 + 5 },
    ], { baseOffset: 500, partition: 6 });
    expect(tables.table('')).toEqual([
      {
        partition: 6,
        offset: 500,
        timestamp: T0 * 1000,
        key: Buffer.from([0, 1, 2]),
        value: Buffer.from('{"a":1}'),
        headers: [{ key: 'content-type', value: Buffer.from('json') }, { key: 'tombstone', value: null }],
      },
      { partition: 6, offset: 501, timestamp: (T0 + 5) * 1000, key: null, value: null, headers: [] },
    ]);
    expect(tables.converter.skippedRecords).toBe(0);
  });

  it('writes rows DuckDB reads back from Parquet', async () => {
    const tables = openTables('raw');
    convert(tables, [{ key: Buffer.from('k'), value: Buffer.from('v'), timestampMs: T0, headers: [{ key: 'h', value: Buffer.from('x') }] }], { baseOffset: 9, partition: 1 });
    const rows = await queryParquet(tables.rows[0]!, `
      SELECT partition, "offset", epoch_ms(timestamp) AS ms, decode(key) AS key, decode(value) AS value, headers[1].key AS header FROM rows`);
    expect(rows).toEqual([{ partition: 1, offset: '9', ms: String(T0), key: 'k', value: 'v', header: 'h' }]);
  });
});
