// otlp_logs topic -> otlp_logs table: log records emitted with the OpenTelemetry JS SDK, encoded
// by the SDK's own OTLP serializers (protobuf and JSON), carried in a Kafka batch, converted,
// and checked column by column; edge cases of AnyValue rendering and malformed records.

import { context, trace, TraceFlags } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { JsonLogsSerializer, ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { describe, expect, it } from 'vitest';
import { jsonToProto, type OtlpJson } from '../../../connectors/otlp/json.ts';
import { convert, openTables, queryParquet } from './convert-support.ts';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const SPAN_ID = 'b7ad6b7169203331';
const T0_MS = 1_763_700_000_123;

async function sdkLogRecords(): Promise<ReadableLogRecord[]> {
  const exporter = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({
      'service.name': 'checkout',
      'host.name': 'ip-10-0-1-7',
      'k8s.namespace.name': 'shop',
      'k8s.pod.name': 'checkout-7d9f8b6c4-x2x9z',
      'process.pid': 4242,
    }),
    processors: [new SimpleLogRecordProcessor({ exporter })],
  });
  const logger = provider.getLogger('@shop/checkout', '2.14.3');
  const sampled = trace.setSpanContext(context.active(), { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED });
  logger.emit({
    timestamp: T0_MS,
    observedTimestamp: T0_MS + 5,
    severityNumber: SeverityNumber.WARN,
    severityText: 'WARN',
    body: 'payment retried',
    attributes: { 'order.id': 'o-17', attempt: 3, 'amount.eur': 12.5, retried: true, tags: ['a', 'b'] },
    context: sampled,
    eventName: 'payment.retry',
  });
  logger.emit({ timestamp: T0_MS + 1000, observedTimestamp: T0_MS + 1001, body: { step: 'charge', tries: 2 } as never });
  await provider.forceFlush();
  return exporter.getFinishedLogRecords();
}

/** An ExportLogsServiceRequest written as OTLP/JSON, encoded by Wharf's receiver codec. */
function logsRequest(logRecords: OtlpJson[], resourceAttributes: OtlpJson[] = []): Buffer {
  return jsonToProto('ExportLogsServiceRequest', {
    resourceLogs: [{ resource: { attributes: resourceAttributes }, scopeLogs: [{ scope: { name: 's' }, logRecords }] }],
  });
}

describe('otlp_logs converter', () => {
  it('turns each SDK log record into one row, column by column', async () => {
    const value = Buffer.from(ProtobufLogsSerializer.serializeRequest(await sdkLogRecords())!);
    const tables = openTables('otlp_logs');
    convert(tables, [{ key: Buffer.from('checkout'), value }]);
    const [first, second, ...rest] = tables.table('');
    expect(rest).toEqual([]);
    expect(first).toEqual({
      timestamp: T0_MS * 1000,
      observed_timestamp: (T0_MS + 5) * 1000,
      severity_number: 13,
      severity_text: 'WARN',
      body: 'payment retried',
      trace_id: TRACE_ID,
      span_id: SPAN_ID,
      flags: 1,
      event_name: 'payment.retry',
      service_name: 'checkout',
      host_name: 'ip-10-0-1-7',
      k8s_namespace_name: 'shop',
      k8s_pod_name: 'checkout-7d9f8b6c4-x2x9z',
      k8s_deployment_name: null,
      k8s_node_name: null,
      k8s_container_name: null,
      resource_attributes: {
        'service.name': 'checkout',
        'host.name': 'ip-10-0-1-7',
        'k8s.namespace.name': 'shop',
        'k8s.pod.name': 'checkout-7d9f8b6c4-x2x9z',
        'process.pid': '4242',
      },
      scope_name: '@shop/checkout',
      scope_version: '2.14.3',
      scope_attributes: {},
      log_attributes: { 'order.id': 'o-17', attempt: '3', 'amount.eur': '12.5', retried: 'true', tags: '["a","b"]' },
      resource_schema_url: null,
      scope_schema_url: null,
      dropped_attributes_count: 0,
    });
    expect(second).toMatchObject({
      timestamp: (T0_MS + 1000) * 1000,
      severity_number: 0,
      severity_text: null,
      body: '{"step":"charge","tries":2}',
      trace_id: null,
      span_id: null,
      flags: 0,
      event_name: null,
      log_attributes: {},
    });
    expect(tables.converter.skippedRecords).toBe(0);
  });

  it('reads otlp_json values into the same rows as otlp_proto values', async () => {
    const records = await sdkLogRecords();
    const proto = openTables('otlp_logs', 'otlp_proto');
    const json = openTables('otlp_logs', 'otlp_json');
    convert(proto, [{ key: null, value: Buffer.from(ProtobufLogsSerializer.serializeRequest(records)!) }]);
    convert(json, [{ key: null, value: Buffer.from(JsonLogsSerializer.serializeRequest(records)!) }]);
    expect(json.table('')).toHaveLength(2);
    expect(json.table('')).toEqual(proto.table(''));
    expect(json.converter.skippedRecords).toBe(0);
  });

  it('renders every AnyValue kind as text, exactly', () => {
    const value = logsRequest([{
      timeUnixNano: '1763700000123456789',
      body: { bytesValue: Buffer.from([0, 1, 254, 255]).toString('base64') },
      attributes: [
        { key: 'int.min', value: { intValue: '-9223372036854775808' } },
        { key: 'int.max', value: { intValue: '9223372036854775807' } },
        { key: 'nan', value: { doubleValue: 'NaN' } },
        { key: 'inf', value: { doubleValue: '-Infinity' } },
        { key: 'tiny', value: { doubleValue: 1e-7 } },
        { key: 'false', value: { boolValue: false } },
        { key: 'bytes', value: { bytesValue: 'AAEC' } },
        { key: 'empty', value: {} },
        { key: 'empty.string', value: { stringValue: '' } },
        { key: 'unicode', value: { stringValue: 'ünïcödé 🚀' } },
        {
          key: 'nested',
          value: {
            kvlistValue: {
              values: [
                { key: 'z', value: { arrayValue: { values: [{ intValue: '9007199254740993' }, { doubleValue: 'Infinity' }, { bytesValue: 'AQ==' }, {}] } } },
                { key: 'quote"d', value: { stringValue: 'line\nbreak' } },
                { key: 'none' },
              ],
            },
          },
        },
      ],
    }]);
    const tables = openTables('otlp_logs');
    convert(tables, [{ key: null, value, timestampMs: 1000 }]);
    const [row] = tables.table('');
    expect(row!.timestamp).toBe(1_763_700_000_123_456); // nanoseconds truncated to microseconds
    expect(row!.body).toBe('AAH+/w==');
    expect(row!.log_attributes).toEqual({
      'int.min': '-9223372036854775808',
      'int.max': '9223372036854775807',
      nan: 'NaN',
      inf: '-Infinity',
      tiny: '1e-7',
      false: 'false',
      bytes: 'AAEC',
      empty: '',
      'empty.string': '',
      unicode: 'ünïcödé 🚀',
      nested: '{"z":[9007199254740993,"Infinity","AQ==",null],"quote\\"d":"line\\nbreak","none":null}',
    });
  });

  it('takes the observed time when a log has no time, and the record timestamp when it has neither', () => {
    const value = logsRequest([
      { observedTimeUnixNano: '1763700000000000000', body: { stringValue: 'observed only' } },
      { body: { stringValue: 'no times' } },
    ]);
    const tables = openTables('otlp_logs');
    convert(tables, [{ key: null, value, timestampMs: 1_763_700_999_000 }]);
    const rows = tables.table('');
    expect(rows.map((r) => [r.body, r.timestamp, r.observed_timestamp])).toEqual([
      ['observed only', 1_763_700_000_000_000, 1_763_700_000_000_000],
      ['no times', 1_763_700_999_000_000, null],
    ]);
  });

  it('skips and counts a malformed record, and converts the records around it', () => {
    const good = logsRequest([{ timeUnixNano: '1763700000000000000', body: { stringValue: 'ok' } }], [
      { key: 'service.name', value: { stringValue: 'svc' } },
    ]);
    const truncated = good.subarray(0, good.length - 3);
    const tables = openTables('otlp_logs');
    convert(tables, [
      { key: null, value: good },
      { key: null, value: truncated },
      { key: null, value: Buffer.from('not protobuf at all \xff\xff') },
      { key: null, value: null },
      { key: null, value: good },
    ]);
    expect(tables.table('').map((r) => [r.body, r.service_name])).toEqual([['ok', 'svc'], ['ok', 'svc']]);
    expect(tables.converter.skippedRecords).toBe(3);
    expect(tables.converter.lastSkipReason).toMatch(/^offset 3: null value/);
  });

  it('skips malformed otlp_json values', () => {
    const tables = openTables('otlp_logs', 'otlp_json');
    convert(tables, [
      { key: null, value: Buffer.from('{"resourceLogs": [') },
      { key: null, value: Buffer.from('{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}') },
      { key: null, value: Buffer.from('{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "fine"}}]}]}]}') },
    ]);
    expect(tables.table('').map((r) => r.body)).toEqual(['fine']);
    expect(tables.converter.skippedRecords).toBe(2);
  });

  it('replaces invalid UTF-8 in strings instead of writing it', () => {
    const value = logsRequest([{ body: { stringValue: 'PLACEHOLDER' } }]);
    const at = value.indexOf('PLACEHOLDER');
    value[at] = 0xff; // still 11 bytes, no longer UTF-8
    const tables = openTables('otlp_logs');
    convert(tables, [{ key: null, value }]);
    expect(tables.table('')[0]!.body).toBe('\ufffdLACEHOLDER');
  });

  it('writes rows DuckDB reads back from Parquet', async () => {
    const tables = openTables('otlp_logs');
    convert(tables, [{ key: null, value: Buffer.from(ProtobufLogsSerializer.serializeRequest(await sdkLogRecords())!) }]);
    const rows = await queryParquet(tables.rows[0]!, `
      SELECT epoch_us(timestamp) AS ts, severity_text, trace_id, service_name, log_attributes['attempt'] AS attempt,
             resource_attributes['process.pid'] AS pid, cardinality(log_attributes) AS attribute_count
      FROM rows ORDER BY ts`);
    expect(rows).toEqual([
      { ts: String(T0_MS * 1000), severity_text: 'WARN', trace_id: TRACE_ID, service_name: 'checkout', attempt: '3', pid: '4242', attribute_count: '5' },
      { ts: String((T0_MS + 1000) * 1000), severity_text: null, trace_id: null, service_name: 'checkout', attempt: null, pid: '4242', attribute_count: '0' },
    ]);
  });
});
