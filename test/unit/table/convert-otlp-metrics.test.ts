// otlp_metrics topic -> the five otlp_metrics tables: instruments recorded with the OpenTelemetry
// JS SDK (gauge, counters, explicit and exponential histograms), collected and encoded by the
// SDK's OTLP serializers, converted, and checked column by column; summaries (which the SDK
// does not produce) written as OTLP/JSON.

import { ValueType } from '@opentelemetry/api';
import { JsonMetricsSerializer, ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, AggregationType, MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { jsonToProto } from '../../../connectors/otlp/json.ts';
import { convert, openTables, queryParquet, type Row } from './convert-support.ts';

class CollectingReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

async function sdkMetrics(): Promise<ResourceMetrics> {
  const reader = new CollectingReader({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'cart', 'k8s.node.name': 'node-3' }),
    readers: [reader],
    views: [{ instrumentName: 'rpc.latency', aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: 160 } } }],
  });
  const meter = provider.getMeter('cart-metrics', '1.0.0');
  meter.createGauge('queue.depth', { unit: '{item}', description: 'items waiting', valueType: ValueType.INT }).record(17, { queue: 'orders' });
  const requests = meter.createCounter('http.requests', { unit: '{request}', valueType: ValueType.INT });
  requests.add(3, { route: '/cart' });
  requests.add(2, { route: '/pay' });
  meter.createUpDownCounter('pool.usage', { unit: 'By' }).add(-1.5);
  const latency = meter.createHistogram('http.duration', { unit: 'ms', advice: { explicitBucketBoundaries: [10, 100] } });
  for (const ms of [5, 50, 70, 500]) latency.record(ms);
  const rpc = meter.createHistogram('rpc.latency', { unit: 's' });
  for (const s of [0.5, 2, 2, 4]) rpc.record(s); // the SDK drops negative histogram values
  const { resourceMetrics, errors } = await reader.collect();
  expect(errors).toEqual([]);
  return resourceMetrics;
}

function byName(rows: Row[], name: string): Row[] {
  return rows.filter((r) => r.metric_name === name);
}

describe('otlp_metrics converter', () => {
  it('writes each data point to the table of its type', async () => {
    const tables = openTables('otlp_metrics');
    convert(tables, [{ key: Buffer.from('cart'), value: Buffer.from(ProtobufMetricsSerializer.serializeRequest(await sdkMetrics())!) }]);
    expect(tables.converter.tables).toEqual(['_gauge', '_sum', '_histogram', '_exponential_histogram', '_summary']);

    const [gauge] = tables.table('_gauge');
    expect(gauge).toEqual({
      metric_name: 'queue.depth',
      metric_description: 'items waiting',
      metric_unit: '{item}',
      service_name: 'cart',
      host_name: null,
      k8s_namespace_name: null,
      k8s_pod_name: null,
      k8s_deployment_name: null,
      k8s_node_name: 'node-3',
      k8s_container_name: null,
      resource_attributes: expect.objectContaining({ 'service.name': 'cart', 'k8s.node.name': 'node-3' }),
      scope_name: 'cart-metrics',
      scope_version: '1.0.0',
      scope_attributes: {},
      attributes: { queue: 'orders' },
      start_time: expect.any(Number),
      timestamp: expect.any(Number),
      flags: 0,
      value: 17,
      value_int: 17,
      resource_schema_url: null,
      scope_schema_url: null,
    });
    expect(Math.abs((gauge!.timestamp as number) - Date.now() * 1000)).toBeLessThan(60e6);

    const sums = tables.table('_sum');
    expect(byName(sums, 'http.requests').map((r) => [r.attributes, r.value, r.value_int, r.aggregation_temporality, r.is_monotonic])).toEqual([
      [{ route: '/cart' }, 3, 3, 'AGGREGATION_TEMPORALITY_CUMULATIVE', true],
      [{ route: '/pay' }, 2, 2, 'AGGREGATION_TEMPORALITY_CUMULATIVE', true],
    ]);
    expect(byName(sums, 'pool.usage').map((r) => [r.value, r.value_int, r.is_monotonic, r.metric_unit])).toEqual([[-1.5, null, false, 'By']]);

    expect(tables.table('_histogram')).toEqual([expect.objectContaining({
      metric_name: 'http.duration',
      count: 4,
      sum: 625,
      min: 5,
      max: 500,
      bucket_counts: [1, 2, 1],
      explicit_bounds: [10, 100],
      aggregation_temporality: 'AGGREGATION_TEMPORALITY_CUMULATIVE',
    })]);

    const [exponential] = tables.table('_exponential_histogram');
    expect(exponential).toMatchObject({ metric_name: 'rpc.latency', count: 4, sum: 8.5, min: 0.5, max: 4, zero_count: 0, zero_threshold: 0 });
    // Every positive value lands in the bucket whose range holds it: base^(offset+i) < v <= base^(offset+i+1).
    // The values are powers of two, so log2 is exact: index = ceil(log2(v) * 2^scale) - 1.
    const positive = exponential!.positive_bucket_counts as number[];
    const offset = exponential!.positive_offset as number;
    const bucketOf = (v: number): number => Math.ceil(Math.log2(v) * 2 ** (exponential!.scale as number)) - 1 - offset;
    const expected = new Array<number>(positive.length).fill(0);
    for (const v of [0.5, 2, 2, 4]) expected[bucketOf(v)]! += 1;
    expect(positive).toEqual(expected);
    expect(exponential!.negative_bucket_counts).toEqual([]);

    expect(tables.table('_summary')).toEqual([]);
    expect(tables.converter.skippedRecords).toBe(0);
  });

  it('reads otlp_json values into the same rows as otlp_proto values', async () => {
    const metrics = await sdkMetrics();
    const proto = openTables('otlp_metrics', 'otlp_proto');
    const json = openTables('otlp_metrics', 'otlp_json');
    convert(proto, [{ key: null, value: Buffer.from(ProtobufMetricsSerializer.serializeRequest(metrics)!) }]);
    convert(json, [{ key: null, value: Buffer.from(JsonMetricsSerializer.serializeRequest(metrics)!) }]);
    for (const suffix of proto.converter.tables) expect(json.table(suffix)).toEqual(proto.table(suffix));
    expect(json.table('_sum')).toHaveLength(3);
  });

  it('keeps exponential histogram buckets with their offsets, both signs', () => {
    const value = jsonToProto('ExportMetricsServiceRequest', {
      resourceMetrics: [{
        scopeMetrics: [{
          metrics: [{
            name: 'temperature.delta',
            exponentialHistogram: {
              aggregationTemporality: 1,
              dataPoints: [{
                timeUnixNano: '1763700000000000000',
                count: '12',
                scale: -2,
                zeroCount: '3',
                zeroThreshold: 1e-9,
                positive: { offset: -3, bucketCounts: ['1', '0', '4'] },
                negative: { offset: 2, bucketCounts: ['2', '2'] },
              }],
            },
          }],
        }],
      }],
    });
    const tables = openTables('otlp_metrics');
    convert(tables, [{ key: null, value }]);
    expect(tables.table('_exponential_histogram')).toEqual([expect.objectContaining({
      count: 12,
      sum: null,
      min: null,
      max: null,
      scale: -2,
      zero_count: 3,
      zero_threshold: 1e-9,
      positive_offset: -3,
      positive_bucket_counts: [1, 0, 4],
      negative_offset: 2,
      negative_bucket_counts: [2, 2],
      aggregation_temporality: 'AGGREGATION_TEMPORALITY_DELTA',
    })]);
  });

  it('converts summaries, 64-bit integer values and points without times', () => {
    const value = jsonToProto('ExportMetricsServiceRequest', {
      resourceMetrics: [{
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'legacy' } }] },
        scopeMetrics: [{
          metrics: [
            {
              name: 'rpc.duration',
              summary: {
                dataPoints: [{
                  startTimeUnixNano: '1763700000000000000',
                  timeUnixNano: '1763700060000000000',
                  count: '1000',
                  sum: 52.5,
                  quantileValues: [{ quantile: 0.5, value: 0.04 }, { quantile: 0.99, value: 0.3 }],
                  attributes: [{ key: 'method', value: { stringValue: 'Get' } }],
                  flags: 1,
                }],
              },
            },
            { name: 'bytes.total', sum: { aggregationTemporality: 1, dataPoints: [{ asInt: '-9223372036854775807' }] } },
          ],
        }],
      }],
    });
    const tables = openTables('otlp_metrics');
    convert(tables, [{ key: null, value, timestampMs: 1_763_700_123_000 }]);
    expect(tables.table('_summary')).toEqual([expect.objectContaining({
      metric_name: 'rpc.duration',
      service_name: 'legacy',
      start_time: 1_763_700_000_000_000,
      timestamp: 1_763_700_060_000_000,
      count: 1000,
      sum: 52.5,
      quantiles: [{ quantile: 0.5, value: 0.04 }, { quantile: 0.99, value: 0.3 }],
      attributes: { method: 'Get' },
      flags: 1,
    })]);
    expect(tables.table('_sum')).toEqual([expect.objectContaining({
      metric_name: 'bytes.total',
      value: -9223372036854775807,
      value_int: -9223372036854775807n,
      aggregation_temporality: 'AGGREGATION_TEMPORALITY_DELTA',
      is_monotonic: false,
      start_time: null,
      timestamp: 1_763_700_123_000_000,
      metric_description: null,
    })]);
  });

  it('writes lists DuckDB reads back from Parquet', async () => {
    const tables = openTables('otlp_metrics');
    convert(tables, [{ key: null, value: Buffer.from(ProtobufMetricsSerializer.serializeRequest(await sdkMetrics())!) }]);
    const histogram = tables.rows[tables.converter.tables.indexOf('_histogram')]!;
    const rows = await queryParquet(histogram, `
      SELECT metric_name, count, bucket_counts, explicit_bounds, service_name, k8s_node_name FROM rows`);
    expect(rows).toEqual([{
      metric_name: 'http.duration', count: '4', bucket_counts: ['1', '2', '1'], explicit_bounds: [10, 100], service_name: 'cart', k8s_node_name: 'node-3',
    }]);
  });
});
