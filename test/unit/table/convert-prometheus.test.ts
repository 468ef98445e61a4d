// prometheus_samples topic -> prometheus_samples and prometheus_samples_histograms tables: remote
// write requests built with protobufjs from the repository's .proto, turned into topic records
// by Wharf's own receiver decoding (as the HTTP endpoint does), then converted and checked.

import { describe, expect, it } from 'vitest';
import { decodeWriteRequestV1 } from '../../../connectors/prometheus/remote-write-v1.ts';
import { encodeWriteRequest, labels, type TimeSeriesObject } from '../../helpers/prometheus.ts';
import { convert, openTables, queryParquet } from './convert-support.ts';

const T0 = 1_763_700_000_000;
/** Prometheus's staleness marker: a NaN with this bit pattern. */
const STALE_NAN = Buffer.from('7ff0000000000002', 'hex').readDoubleBE(0);

const upSeries: TimeSeriesObject = {
  labels: labels({ __name__: 'up', instance: '127.0.0.1:9090', job: 'prometheus', zone: 'eu-1' }),
  samples: [{ value: 1, timestamp: T0 }, { value: STALE_NAN, timestamp: T0 + 15_000 }],
  exemplars: [{ labels: labels({ trace_id: 'abc' }), value: 1, timestamp: T0 }],
};
const intHistogram = {
  count_int: 9, sum: 12.5, schema: 1, zero_threshold: 0.001, zero_count_int: 1,
  negative_spans: [{ offset: 0, length: 1 }], negative_deltas: [2],
  positive_spans: [{ offset: -2, length: 2 }, { offset: 3, length: 1 }], positive_deltas: [1, 2, -1],
  reset_hint: 2, timestamp: T0,
};
const floatHistogram = {
  count_float: 4.5, sum: 3.25, schema: 0, zero_threshold: 0.001, zero_count_float: 0.5,
  positive_spans: [{ offset: 0, length: 2 }], positive_counts: [1.5, 2.5], reset_hint: 3, timestamp: T0 + 1,
};
const customBuckets = {
  count_int: 3, sum: 0.7, schema: -53, positive_spans: [{ offset: 0, length: 3 }], positive_deltas: [1, 0, 0],
  custom_values: [0.1, 0.5], timestamp: T0 + 2,
};
const latencySeries: TimeSeriesObject = {
  labels: labels({ __name__: 'http_request_duration_seconds', job: 'api', path: '/a"b' }),
  histograms: [intHistogram, floatHistogram, customBuckets],
};

function varint(value: number | bigint): Buffer {
  let v = BigInt(value);
  const bytes: number[] = [];
  while (v >= 0x80n) {
    bytes.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  bytes.push(Number(v));
  return Buffer.from(bytes);
}

/** The topic records the remote-write receiver makes of a request. */
function topicRecords(request: Parameters<typeof encodeWriteRequest>[0]): ReturnType<typeof decodeWriteRequestV1>['records'] {
  return decodeWriteRequestV1(encodeWriteRequest(request), null).records;
}

describe('prometheus_samples converter', () => {
  it('writes one row per sample, labels in a map, job and instance promoted', () => {
    const tables = openTables('prometheus_samples');
    convert(tables, topicRecords({ timeseries: [upSeries] }));
    const rows = tables.table('');
    expect(rows).toEqual([
      {
        metric_name: 'up',
        labels: { instance: '127.0.0.1:9090', job: 'prometheus', zone: 'eu-1' },
        job: 'prometheus',
        instance: '127.0.0.1:9090',
        timestamp: T0 * 1000,
        value: 1,
      },
      expect.objectContaining({ metric_name: 'up', timestamp: (T0 + 15_000) * 1000, value: NaN }),
    ]);
    expect(tables.table('_histograms')).toEqual([]);
  });

  it('writes native histograms with absolute bucket counts by bucket index', () => {
    const tables = openTables('prometheus_samples');
    convert(tables, topicRecords({ timeseries: [latencySeries] }));
    expect(tables.table('')).toEqual([]);
    const [integer, float, custom, ...rest] = tables.table('_histograms');
    expect(rest).toEqual([]);
    expect(integer).toEqual({
      metric_name: 'http_request_duration_seconds',
      labels: { job: 'api', path: '/a"b' },
      job: 'api',
      instance: null,
      timestamp: T0 * 1000,
      count: 9,
      sum: 12.5,
      schema: 1,
      zero_threshold: 0.001,
      zero_count: 1,
      positive_buckets: [{ index: -2, count: 1 }, { index: -1, count: 3 }, { index: 3, count: 2 }],
      negative_buckets: [{ index: 0, count: 2 }],
      reset_hint: 'NO',
      custom_values: [],
    });
    expect(float).toMatchObject({
      timestamp: (T0 + 1) * 1000, count: 4.5, zero_count: 0.5, reset_hint: 'GAUGE',
      positive_buckets: [{ index: 0, count: 1.5 }, { index: 1, count: 2.5 }], negative_buckets: [],
    });
    expect(custom).toMatchObject({
      schema: -53, count: 3, custom_values: [0.1, 0.5], reset_hint: 'UNKNOWN',
      positive_buckets: [{ index: 0, count: 1 }, { index: 1, count: 1 }, { index: 2, count: 1 }],
    });
  });

  it('writes no rows for metadata records and skips malformed ones', () => {
    const records = topicRecords({
      timeseries: [upSeries],
      metadata: [{ type: 1, metric_family_name: 'up', help: 'scrape health', unit: '' }],
    });
    expect(records.map((r) => r.key!.toString()[0])).toEqual(['u', '#']);
    const tables = openTables('prometheus_samples');
    convert(tables, [
      ...records,
      { key: Buffer.from('broken{}'), value: Buffer.from([0x0a, 0x05, 0x0a, 0x10]) },
      { key: Buffer.from('null{}'), value: null },
      ...topicRecords({ timeseries: [{ labels: labels({ __name__: 'far', job: 'x' }), samples: [{ value: 1, timestamp: T0 }, { value: 2, timestamp: '9223372036854775807' }] }] }),
    ]);
    expect(tables.table('')).toHaveLength(2);
    expect(tables.converter.skippedRecords).toBe(3);
    expect(tables.converter.lastSkipReason).toMatch(/sample timestamp .* out of range/);
  });

  it('reads labels and samples in any layout the same way (fast paths and scans agree)', () => {
    const len = (field: number, bytes: Buffer): Buffer => Buffer.concat([varint((field << 3) | 2), varint(bytes.length), bytes]);
    const str = (field: number, text: string): Buffer => len(field, Buffer.from(text));
    const sample = (value: number, tsField: Buffer): Buffer => {
      const v = Buffer.alloc(9);
      v[0] = 0x09;
      v.writeDoubleLE(value, 1);
      return Buffer.concat([v, tsField]);
    };
    const ts = (ms: bigint): Buffer => Buffer.concat([Buffer.from([0x10]), varint(BigInt.asUintN(64, ms))]);
    const long = 'v'.repeat(200);
    const series = Buffer.concat([
      len(1, str(1, '__name__')),
      len(1, Buffer.concat([str(1, '__name__'), str(2, 'm')])),
      len(1, Buffer.concat([str(2, 'eu-1'), str(1, 'zone')])), // value first
      len(1, Buffer.concat([str(1, 'city'), str(2, 'Zürich')])), // not ASCII
      len(1, Buffer.concat([str(1, 'job'), str(2, long)])), // a 2-byte length
      len(1, Buffer.concat([str(1, 'empty')])), // no value
      len(2, sample(1.5, ts(BigInt(T0)))),
      len(2, Buffer.concat([ts(BigInt(T0 + 1)), sample(2.5, Buffer.alloc(0))])), // timestamp first
      len(2, sample(3.5, Buffer.alloc(0))), // timestamp 0, absent
      len(2, sample(4.5, ts(-1000n))), // negative: a 10-byte varint
      len(2, Buffer.concat([sample(5.5, ts(BigInt(T0 + 2))), Buffer.from([0x18, 0x01])])), // an unknown field after
    ]);
    const badUtf8 = Buffer.concat([len(1, Buffer.concat([str(1, 'a'), len(2, Buffer.from([0x61, 0xff]))])), len(2, sample(1, ts(BigInt(T0))))]);
    const tables = openTables('prometheus_samples');
    convert(tables, [{ key: Buffer.from('k1'), value: len(1, series) }, { key: Buffer.from('k2'), value: len(1, badUtf8) }]);
    expect(tables.converter.skippedRecords).toBe(1);
    expect(tables.converter.lastSkipReason).toMatch(/not valid UTF-8/);
    const labelsMap = { '__name__': '', zone: 'eu-1', city: 'Zürich', job: long, empty: '' };
    expect(tables.table('').map((r) => [r.metric_name, r.labels, r.job, r.instance, r.timestamp, r.value])).toEqual([
      ['m', labelsMap, long, null, T0 * 1000, 1.5],
      ['m', labelsMap, long, null, (T0 + 1) * 1000, 2.5],
      ['m', labelsMap, long, null, 0, 3.5],
      ['m', labelsMap, long, null, -1_000_000, 4.5],
      ['m', labelsMap, long, null, (T0 + 2) * 1000, 5.5],
    ]);
  });

  it('writes rows DuckDB reads back from Parquet', async () => {
    const tables = openTables('prometheus_samples');
    convert(tables, topicRecords({ timeseries: [upSeries, latencySeries] }));
    const samples = await queryParquet(tables.rows[0]!, `SELECT metric_name, labels['zone'] AS zone, epoch_ms(timestamp) AS ms, value FROM rows ORDER BY ms`);
    expect(samples).toEqual([
      { metric_name: 'up', zone: 'eu-1', ms: String(T0), value: 1 },
      { metric_name: 'up', zone: 'eu-1', ms: String(T0 + 15_000), value: 'NaN' },
    ]);
    const histograms = await queryParquet(tables.rows[1]!, `
      SELECT schema, list_transform(positive_buckets, b -> b.index) AS indexes, list_transform(positive_buckets, b -> b.count) AS counts
      FROM rows ORDER BY timestamp LIMIT 1`);
    expect(histograms).toEqual([{ schema: 1, indexes: [-2, -1, 3], counts: [1, 3, 2] }]);
  });
});
