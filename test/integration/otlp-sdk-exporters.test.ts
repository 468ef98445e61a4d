// The OpenTelemetry JS SDK's own exporters — http/protobuf, http/json and gRPC — send traces,
// metrics and logs to a Wharf broker process, configured with nothing but its URL. The test
// reads the topics back through the Kafka protocol (kafkajs) and decodes every record: ids,
// names, timestamps, attributes, resource and scope are exactly what the SDK recorded, every
// span of a trace is in one partition under the trace id key, and kcat reads the same bytes.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { context, trace, SpanKind, SpanStatusCode, type Attributes, type HrTime } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { BatchLogRecordProcessor, InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor, type LogRecordExporter, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { MeterProvider, PeriodicExportingMetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPLogExporter as ProtoLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPLogExporter as JsonLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as GrpcLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPMetricExporter as ProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPMetricExporter as JsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as GrpcMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { printBrokerLogsOnFailure, startBroker, type Broker } from '../helpers/broker.ts';
import { protoToJson } from '../../connectors/otlp/json.ts';
import { kcatKeys, kcatValues, readTopic, type TopicRecord } from '../unit/otlp/read-topic.ts';

printBrokerLogsOnFailure();

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
type Protocol = 'http/protobuf' | 'http/json' | 'grpc';
const PROTOCOLS: Protocol[] = ['http/protobuf', 'http/json', 'grpc'];
const serviceOf = (protocol: Protocol) => `shop-${protocol.replace('/', '-')}`;

let broker: Broker;

interface Sent {
  spans: ReadableSpan[];
  logs: ReadableLogRecord[];
}
const sent = new Map<Protocol, Sent>();

function exporters(protocol: Protocol): { spans: SpanExporter; logs: LogRecordExporter; metrics: PushMetricExporter } {
  const http = `http://127.0.0.1:${broker.otlpHttpPort}`;
  const grpcUrl = `http://127.0.0.1:${broker.otlpGrpcPort}`;
  switch (protocol) {
    case 'http/protobuf':
      return {
        spans: new ProtoTraceExporter({ url: `${http}/v1/traces` }),
        logs: new ProtoLogExporter({ url: `${http}/v1/logs`, compression: CompressionAlgorithm.GZIP }),
        metrics: new ProtoMetricExporter({ url: `${http}/v1/metrics` }),
      };
    case 'http/json':
      return {
        spans: new JsonTraceExporter({ url: `${http}/v1/traces` }),
        logs: new JsonLogExporter({ url: `${http}/v1/logs` }),
        metrics: new JsonMetricExporter({ url: `${http}/v1/metrics` }),
      };
    case 'grpc':
      return {
        spans: new GrpcTraceExporter({ url: grpcUrl, compression: CompressionAlgorithm.GZIP }),
        logs: new GrpcLogExporter({ url: grpcUrl }),
        metrics: new GrpcMetricExporter({ url: grpcUrl }),
      };
  }
}

/** Records three traces, log records (half inside a span) and three metrics through the SDK, exporting with `protocol`. */
async function emit(protocol: Protocol): Promise<void> {
  const resource = resourceFromAttributes({
    'service.name': serviceOf(protocol),
    'service.version': '1.2.3',
    'host.name': 'test-host',
    'process.pid': 4242,
    'deployment.canary': false,
  });
  const exporter = exporters(protocol);
  const memorySpans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(exporter.spans), new SimpleSpanProcessor(memorySpans)],
  });
  const memoryLogs = new InMemoryLogRecordExporter();
  const loggerProvider = new LoggerProvider({
    resource,
    processors: [new BatchLogRecordProcessor({ exporter: exporter.logs }), new SimpleLogRecordProcessor({ exporter: memoryLogs })],
  });
  const meterProvider = new MeterProvider({
    resource,
    readers: [new PeriodicExportingMetricReader({ exporter: exporter.metrics, exportIntervalMillis: 600_000 })],
  });

  const tracer = tracerProvider.getTracer('wharf-test-tracer', '0.7.1');
  const logger = loggerProvider.getLogger('wharf-test-logger', '0.7.2');
  let firstRoot: ReturnType<typeof tracer.startSpan> | undefined;
  for (let t = 0; t < 3; t++) {
    const root = tracer.startSpan(`GET /orders/${t}`, {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200, 'ratio': 0.25, 'cached': true, 'tags': ['a', 'b'] },
      ...(firstRoot ? { links: [{ context: firstRoot.spanContext(), attributes: { 'link.reason': 'retry' } }] } : {}),
    });
    firstRoot ??= root;
    const rootContext = trace.setSpan(context.active(), root);
    for (let c = 0; c < 2; c++) {
      const child = tracer.startSpan(`SELECT orders ${c}`, { kind: SpanKind.CLIENT, attributes: { 'db.system': 'postgresql', 'db.rows': c * 10 } }, rootContext);
      child.addEvent('query.plan', { 'plan.cost': 12.5 });
      if (c === 1) child.setStatus({ code: SpanStatusCode.ERROR, message: 'deadlock detected' });
      logger.emit({
        severityNumber: SeverityNumber.WARN, severityText: 'WARN', body: `slow query ${t}/${c}`,
        attributes: { 'db.statement.length': 42, 'retry': c === 1 }, context: trace.setSpan(context.active(), child),
      });
      child.end();
    }
    root.end();
  }
  logger.emit({ severityNumber: SeverityNumber.INFO, severityText: 'INFO', body: { event: 'startup', ports: [1, 2] }, attributes: { 'phase': 'boot' } });
  logger.emit({ severityNumber: SeverityNumber.ERROR, body: 'no span here', eventName: 'app.crash' });

  const meter = meterProvider.getMeter('wharf-test-meter', '0.7.3');
  const counter = meter.createCounter('orders.placed', { unit: '{order}', description: 'Orders placed' });
  counter.add(5, { 'payment.method': 'card' });
  counter.add(7, { 'payment.method': 'invoice' });
  const histogram = meter.createHistogram('order.value', { unit: 'EUR' });
  for (const value of [12, 80, 250]) histogram.record(value, { 'currency': 'EUR' });
  meter.createGauge('queue.depth').record(17, { 'queue': 'payments' });

  await tracerProvider.forceFlush();
  await loggerProvider.forceFlush();
  await meterProvider.forceFlush();
  sent.set(protocol, { spans: memorySpans.getFinishedSpans(), logs: memoryLogs.getFinishedLogRecords() });
  await Promise.all([tracerProvider.shutdown(), loggerProvider.shutdown(), meterProvider.shutdown()]);
}

const hrNanos = (time: HrTime): string => String(BigInt(time[0]) * 1_000_000_000n + BigInt(time[1]));

/** OTLP KeyValue list -> plain attributes, as the SDK holds them. */
function attributesOf(keyValues: Json[] | undefined): Attributes {
  const out: Attributes = {};
  for (const kv of keyValues ?? []) out[kv.key] = anyValue(kv.value) as never;
  return out;
}
function anyValue(value: Json | undefined): unknown {
  if (value === undefined) return undefined;
  if ('stringValue' in value) return value.stringValue;
  if ('intValue' in value) return Number(value.intValue);
  if ('doubleValue' in value) return value.doubleValue;
  if ('boolValue' in value) return value.boolValue;
  if ('arrayValue' in value) return (value.arrayValue.values ?? []).map(anyValue);
  if ('kvlistValue' in value) return Object.fromEntries((value.kvlistValue.values ?? []).map((kv: Json) => [kv.key, anyValue(kv.value)]));
  throw new Error(`unexpected AnyValue ${JSON.stringify(value)}`);
}

const records: Record<'spans' | 'logs' | 'metrics', TopicRecord[]> = { spans: [], logs: [], metrics: [] };

beforeAll(async () => {
  broker = await startBroker();
  for (const protocol of PROTOCOLS) await emit(protocol);
  records.spans = await readTopic(broker.bootstrap, 'otlp_spans');
  records.logs = await readTopic(broker.bootstrap, 'otlp_logs');
  records.metrics = await readTopic(broker.bootstrap, 'otlp_metrics');
}, 90_000);

afterAll(async () => {
  await broker?.stop();
});

/** Decoded spans with the resource and scope they were under and the record they came in. */
function decodedSpans(): { span: Json; resource: Json; scope: Json; record: TopicRecord }[] {
  return records.spans.flatMap((record) => {
    const request = protoToJson('ExportTraceServiceRequest', record.value) as Json;
    expect(request.resourceSpans).toHaveLength(1); // one resource per record
    return request.resourceSpans.flatMap((rs: Json) => rs.scopeSpans.flatMap((ss: Json) =>
      ss.spans.map((span: Json) => ({ span, resource: rs.resource, scope: ss.scope, record }))));
  });
}

describe.each(PROTOCOLS)('the SDK exporter over %s', (protocol) => {
  it('delivers every span exactly as recorded', () => {
    const expected = sent.get(protocol)!.spans;
    expect(expected).toHaveLength(9);
    const received = decodedSpans().filter((d) => attributesOf(d.resource.attributes)['service.name'] === serviceOf(protocol));
    expect(received).toHaveLength(expected.length);
    for (const want of expected) {
      const got = received.find((d) => d.span.spanId === want.spanContext().spanId);
      expect(got, `span ${want.name}`).toBeDefined();
      const { span, resource, scope } = got!;
      expect(span.traceId).toBe(want.spanContext().traceId);
      expect(span.parentSpanId).toBe(want.parentSpanContext?.spanId);
      expect(span.name).toBe(want.name);
      expect(span.kind).toBe(want.kind + 1); // OTLP's SpanKind counts UNSPECIFIED as 0
      expect(span.startTimeUnixNano).toBe(hrNanos(want.startTime));
      expect(span.endTimeUnixNano).toBe(hrNanos(want.endTime));
      expect(attributesOf(span.attributes)).toEqual(want.attributes);
      expect((span.events ?? []).map((e: Json) => [e.name, e.timeUnixNano, attributesOf(e.attributes)]))
        .toEqual(want.events.map((e) => [e.name, hrNanos(e.time), e.attributes ?? {}]));
      expect((span.links ?? []).map((l: Json) => [l.traceId, l.spanId, attributesOf(l.attributes)]))
        .toEqual(want.links.map((l) => [l.context.traceId, l.context.spanId, l.attributes ?? {}]));
      expect(span.status?.code ?? 0).toBe(want.status.code);
      expect(span.status?.message).toBe(want.status.message);
      expect(attributesOf(resource.attributes)).toEqual(want.resource.attributes);
      expect(scope).toEqual({ name: want.instrumentationScope.name, version: want.instrumentationScope.version });
    }
  });

  it('delivers every log record exactly as recorded, keyed by service name', () => {
    const expected = sent.get(protocol)!.logs;
    expect(expected).toHaveLength(8);
    const mine = records.logs.filter((r) => r.key?.toString() === serviceOf(protocol));
    const received = mine.flatMap((record) => {
      const request = protoToJson('ExportLogsServiceRequest', record.value) as Json;
      expect(request.resourceLogs).toHaveLength(1);
      const rl = request.resourceLogs[0];
      expect(attributesOf(rl.resource.attributes)['service.name']).toBe(serviceOf(protocol));
      return rl.scopeLogs.flatMap((sl: Json) => sl.logRecords.map((log: Json) => ({ log, scope: sl.scope, resource: rl.resource })));
    });
    expect(received).toHaveLength(expected.length);
    for (const [i, want] of expected.entries()) {
      const { log, scope, resource } = received[i]!;
      expect(log.timeUnixNano).toBe(hrNanos(want.hrTime));
      expect(log.observedTimeUnixNano).toBe(hrNanos(want.hrTimeObserved));
      expect(log.severityNumber).toBe(want.severityNumber);
      expect(log.severityText).toBe(want.severityText);
      expect(anyValue(log.body)).toEqual(want.body);
      expect(attributesOf(log.attributes)).toEqual(want.attributes);
      expect(log.traceId).toBe(want.spanContext?.traceId);
      expect(log.spanId).toBe(want.spanContext?.spanId);
      expect(log.eventName).toBe(want.eventName);
      expect(attributesOf(resource.attributes)).toEqual(want.resource.attributes);
      expect(scope).toEqual({ name: want.instrumentationScope.name, version: want.instrumentationScope.version });
    }
  });

  it('delivers the metrics with their data points, keyed by service name', () => {
    const mine = records.metrics.filter((r) => r.key?.toString() === serviceOf(protocol));
    expect(mine.length).toBeGreaterThan(0);
    const request = protoToJson('ExportMetricsServiceRequest', mine[0]!.value) as Json;
    expect(request.resourceMetrics).toHaveLength(1);
    const rm = request.resourceMetrics[0];
    expect(attributesOf(rm.resource.attributes)).toEqual({
      'service.name': serviceOf(protocol), 'service.version': '1.2.3', 'host.name': 'test-host', 'process.pid': 4242, 'deployment.canary': false,
    });
    const sm = rm.scopeMetrics[0];
    expect(sm.scope).toEqual({ name: 'wharf-test-meter', version: '0.7.3' });
    const byName = new Map<string, Json>(sm.metrics.map((m: Json) => [m.name, m]));
    const placed = byName.get('orders.placed')!;
    expect([placed.unit, placed.description, placed.sum.isMonotonic, placed.sum.aggregationTemporality]).toEqual(['{order}', 'Orders placed', true, 2]);
    expect(placed.sum.dataPoints.map((p: Json) => [attributesOf(p.attributes), p.asDouble ?? Number(p.asInt)]))
      .toEqual(expect.arrayContaining([[{ 'payment.method': 'card' }, 5], [{ 'payment.method': 'invoice' }, 7]]));
    const value = byName.get('order.value')!.histogram.dataPoints[0];
    expect([value.count, value.sum, value.min, value.max, attributesOf(value.attributes)]).toEqual(['3', 342, 12, 250, { currency: 'EUR' }]);
    expect(value.bucketCounts.reduce((n: number, c: string) => n + Number(c), 0)).toBe(3);
    const depth = byName.get('queue.depth')!.gauge.dataPoints[0];
    expect([depth.asDouble ?? Number(depth.asInt), attributesOf(depth.attributes)]).toEqual([17, { queue: 'payments' }]);
  });
});

describe('the span topic', () => {
  it('keeps every span of a trace in one partition, under the trace id as key', () => {
    const partitionsByTrace = new Map<string, Set<number>>();
    for (const { span, record } of decodedSpans()) {
      expect(record.key?.toString()).toBe(span.traceId);
      const set = partitionsByTrace.get(span.traceId) ?? new Set<number>();
      set.add(record.partition);
      partitionsByTrace.set(span.traceId, set);
    }
    expect(partitionsByTrace.size).toBe(9);
    for (const [traceId, partitions] of partitionsByTrace) expect([traceId, partitions.size]).toEqual([traceId, 1]);
    // 9 traces over 8 partitions: they do spread.
    expect(new Set(records.spans.map((r) => r.partition)).size).toBeGreaterThan(1);
  });

  it('is readable with kcat, and every value decodes as an Export*ServiceRequest', async () => {
    const checks = [
      ['otlp_spans', 'ExportTraceServiceRequest', 'resourceSpans', records.spans.length],
      ['otlp_logs', 'ExportLogsServiceRequest', 'resourceLogs', records.logs.length],
      ['otlp_metrics', 'ExportMetricsServiceRequest', 'resourceMetrics', records.metrics.length],
    ] as const;
    for (const [topic, message, field, count] of checks) {
      const values = await kcatValues(broker.bootstrap, topic);
      expect(values).toHaveLength(count);
      for (const value of values) expect((protoToJson(message, value) as Json)[field]).toHaveLength(1);
    }
    const keys = await kcatKeys(broker.bootstrap, 'otlp_spans');
    expect(keys.every((key) => /^[0-9a-f]{32}$/.test(key))).toBe(true);
  });
});
