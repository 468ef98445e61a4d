// otlp_spans topic -> otlp_spans table: spans recorded with the OpenTelemetry JS SDK (a server
// span with events, links and an error status, and its client child), encoded by the SDK's OTLP
// serializers, carried in a Kafka batch, converted and checked column by column.

import { context, trace, SpanKind, SpanStatusCode, TraceFlags } from '@opentelemetry/api';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { jsonToProto } from '../../../connectors/otlp/json.ts';
import { convert, openTables, queryParquet } from './convert-support.ts';

const T0_MS = 1_763_700_000_000;
const LINKED_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const LINKED_SPAN = '00f067aa0ba902b7';

async function sdkSpans(): Promise<ReadableSpan[]> {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'frontend', 'k8s.deployment.name': 'frontend' }),
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
  });
  const tracer = provider.getTracer('@opentelemetry/instrumentation-http', '0.57.1');
  const server = tracer.startSpan('GET /api/cart', {
    kind: SpanKind.SERVER,
    startTime: T0_MS,
    attributes: { 'http.request.method': 'GET', 'http.response.status_code': 500 },
    links: [{
      context: { traceId: LINKED_TRACE, spanId: LINKED_SPAN, traceFlags: TraceFlags.SAMPLED, traceState: undefined },
      attributes: { 'link.reason': 'batch' },
    }],
  });
  server.addEvent('exception', { 'exception.type': 'TimeoutError', 'exception.escaped': false }, T0_MS + 40);
  server.addEvent('retry', T0_MS + 41);
  const child = tracer.startSpan('SELECT cart', { kind: SpanKind.CLIENT, startTime: T0_MS + 2 }, trace.setSpan(context.active(), server));
  child.end(T0_MS + 30);
  server.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream timed out' });
  server.end(T0_MS + 45);
  await provider.forceFlush();
  return exporter.getFinishedSpans();
}

describe('otlp_spans converter', () => {
  it('turns each SDK span into one row with its events and links', async () => {
    const spans = await sdkSpans();
    const server = spans.find((s) => s.name === 'GET /api/cart')!;
    const child = spans.find((s) => s.name === 'SELECT cart')!;
    const tables = openTables('otlp_spans');
    convert(tables, [{ key: Buffer.from(server.spanContext().traceId), value: Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!) }]);
    const rows = tables.table('');
    expect(rows).toHaveLength(2);
    const serverRow = rows.find((r) => r.name === 'GET /api/cart')!;
    const childRow = rows.find((r) => r.name === 'SELECT cart')!;
    expect(serverRow).toEqual({
      trace_id: server.spanContext().traceId,
      span_id: server.spanContext().spanId,
      parent_span_id: null,
      trace_state: null,
      flags: 0x101, // sampled; the SDK sets "has is_remote" (bit 8)
      name: 'GET /api/cart',
      kind: 'SPAN_KIND_SERVER',
      start_time: T0_MS * 1000,
      end_time: (T0_MS + 45) * 1000,
      duration_ns: 45_000_000,
      status_code: 'STATUS_CODE_ERROR',
      status_message: 'upstream timed out',
      service_name: 'frontend',
      host_name: null,
      k8s_namespace_name: null,
      k8s_pod_name: null,
      k8s_deployment_name: 'frontend',
      k8s_node_name: null,
      k8s_container_name: null,
      resource_attributes: expect.objectContaining({ 'service.name': 'frontend', 'k8s.deployment.name': 'frontend' }),
      scope_name: '@opentelemetry/instrumentation-http',
      scope_version: '0.57.1',
      scope_attributes: {},
      span_attributes: { 'http.request.method': 'GET', 'http.response.status_code': '500' },
      events: [
        { time: (T0_MS + 40) * 1000, name: 'exception', attributes: { 'exception.type': 'TimeoutError', 'exception.escaped': 'false' } },
        { time: (T0_MS + 41) * 1000, name: 'retry', attributes: {} },
      ],
      links: [{ trace_id: LINKED_TRACE, span_id: LINKED_SPAN, trace_state: null, attributes: { 'link.reason': 'batch' } }],
      resource_schema_url: null,
      scope_schema_url: null,
      dropped_attributes_count: 0,
      dropped_events_count: 0,
      dropped_links_count: 0,
    });
    expect(childRow).toMatchObject({
      trace_id: server.spanContext().traceId,
      span_id: child.spanContext().spanId,
      parent_span_id: server.spanContext().spanId,
      kind: 'SPAN_KIND_CLIENT',
      start_time: (T0_MS + 2) * 1000,
      duration_ns: 28_000_000,
      status_code: 'STATUS_CODE_UNSET',
      status_message: null,
      events: [],
      links: [],
    });
  });

  it('reads otlp_json values into the same rows as otlp_proto values', async () => {
    const spans = await sdkSpans();
    const proto = openTables('otlp_spans', 'otlp_proto');
    const json = openTables('otlp_spans', 'otlp_json');
    convert(proto, [{ key: null, value: Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!) }]);
    convert(json, [{ key: null, value: Buffer.from(JsonTraceSerializer.serializeRequest(spans)!) }]);
    expect(json.table('')).toHaveLength(2);
    expect(json.table('')).toEqual(proto.table(''));
  });

  it('keeps nanosecond durations exact and names unknown enum values by number', () => {
    const value = jsonToProto('ExportTraceServiceRequest', {
      resourceSpans: [{
        resource: {},
        schemaUrl: 'https://opentelemetry.io/schemas/1.27.0',
        scopeSpans: [{
          schemaUrl: 'https://opentelemetry.io/schemas/1.26.0',
          spans: [{
            traceId: '0102030405060708090a0b0c0d0e0f10',
            spanId: '0102030405060708',
            traceState: 'vendor=1',
            name: 'odd',
            kind: 9,
            startTimeUnixNano: '1763700000000000001',
            endTimeUnixNano: '1763700000000000998',
            status: { code: 7 },
            droppedAttributesCount: 2,
            droppedEventsCount: 3,
            droppedLinksCount: 4,
          }],
        }],
      }],
    });
    const tables = openTables('otlp_spans');
    convert(tables, [{ key: null, value }]);
    expect(tables.table('')[0]).toMatchObject({
      trace_state: 'vendor=1',
      kind: '9',
      status_code: '7',
      start_time: 1_763_700_000_000_000,
      duration_ns: 997,
      service_name: null,
      resource_attributes: {},
      scope_name: null,
      resource_schema_url: 'https://opentelemetry.io/schemas/1.27.0',
      scope_schema_url: 'https://opentelemetry.io/schemas/1.26.0',
      dropped_attributes_count: 2,
      dropped_events_count: 3,
      dropped_links_count: 4,
    });
  });

  it('gives each span the resource and scope it was sent under, across resources, scopes and records', () => {
    const span = (name: string): Record<string, unknown> => ({ traceId: '0102030405060708090a0b0c0d0e0f10', spanId: '0102030405060708', name });
    const resource = (service: string, scopes: [string, string[]][]): Record<string, unknown> => ({
      resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }, { key: 'pid', value: { intValue: service.length } }] },
      scopeSpans: scopes.map(([scope, names]) => ({
        scope: { name: scope, attributes: [{ key: 'lib', value: { stringValue: scope } }] },
        spans: names.map(span),
      })),
    });
    const first = jsonToProto('ExportTraceServiceRequest', {
      resourceSpans: [resource('cart', [['http', ['a', 'b']], ['db', ['c']]]), resource('payments', [['http', ['d', 'e']]])],
    });
    const second = jsonToProto('ExportTraceServiceRequest', { resourceSpans: [resource('cart', [['db', ['f']]])] });
    const tables = openTables('otlp_spans');
    convert(tables, [{ key: null, value: first }, { key: null, value: second }]);
    const seen = tables.table('').map((r) => [r.name, r.service_name, r.resource_attributes, r.scope_name, r.scope_attributes]);
    const cart = { 'service.name': 'cart', pid: '4' };
    const payments = { 'service.name': 'payments', pid: '8' };
    expect(seen).toEqual([
      ['a', 'cart', cart, 'http', { lib: 'http' }],
      ['b', 'cart', cart, 'http', { lib: 'http' }],
      ['c', 'cart', cart, 'db', { lib: 'db' }],
      ['d', 'payments', payments, 'http', { lib: 'http' }],
      ['e', 'payments', payments, 'http', { lib: 'http' }],
      ['f', 'cart', cart, 'db', { lib: 'db' }],
    ]);
  });

  it('treats times past what a timestamp column holds (year 2255) as absent', () => {
    const value = jsonToProto('ExportTraceServiceRequest', {
      resourceSpans: [{
        scopeSpans: [{
          spans: [{
            traceId: '0102030405060708090a0b0c0d0e0f10',
            spanId: '0102030405060708',
            name: 'far future',
            startTimeUnixNano: '18446744073709551615',
            endTimeUnixNano: '1763700000000000000',
          }],
        }],
      }],
    });
    const tables = openTables('otlp_spans');
    convert(tables, [{ key: null, value, timestampMs: 1_763_700_111_000 }]);
    expect(tables.table('')[0]).toMatchObject({ start_time: 1_763_700_111_000_000, end_time: 1_763_700_000_000_000, duration_ns: null });
    expect(tables.converter.skippedRecords).toBe(0);
  });

  it('writes nested events and links DuckDB reads back from Parquet', async () => {
    const tables = openTables('otlp_spans');
    convert(tables, [{ key: null, value: Buffer.from(ProtobufTraceSerializer.serializeRequest(await sdkSpans())!) }]);
    const rows = await queryParquet(tables.rows[0]!, `
      SELECT name, kind, duration_ns, len(events) AS events, events[1].name AS first_event,
             events[1].attributes['exception.type'] AS exception_type, links[1].trace_id AS linked_trace
      FROM rows ORDER BY name`);
    expect(rows).toEqual([
      { name: 'GET /api/cart', kind: 'SPAN_KIND_SERVER', duration_ns: '45000000', events: '2', first_event: 'exception', exception_type: 'TimeoutError', linked_trace: LINKED_TRACE },
      { name: 'SELECT cart', kind: 'SPAN_KIND_CLIENT', duration_ns: '28000000', events: '0', first_event: null, exception_type: null, linked_trace: null },
    ]);
  });
});
