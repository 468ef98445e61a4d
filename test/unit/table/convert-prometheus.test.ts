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
