import { describe, expect, it } from 'vitest';
import { jsonToProto, protoToJson, type OtlpJson } from '../../../connectors/otlp/json.ts';
import { splitRequest } from '../../../connectors/otlp/split.ts';
import { WireError } from '../../../connectors/otlp/wire.ts';
import { logsRequest, metricsRequest, resourceOf, traceRequest } from './payloads.ts';

const LIMIT = { maxRecordBytes: 1_000_000 };
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function spansOf(request: Json): Json[] {
  return request.resourceSpans.flatMap((rs: Json) => rs.scopeSpans.flatMap((ss: Json) => ss.spans));
}

describe('splitting traces', () => {
  it('cuts a request into one record per trace, keyed by the hex trace id, spans unchanged', () => {
    const request = traceRequest({ spans: 96, spansPerTrace: 12 });
    const body = jsonToProto('ExportTraceServiceRequest', request);
    const result = splitRequest('traces', body, LIMIT);
    expect(result.itemCount).toBe(96);
    expect(result.rejectedInvalid).toBe(0);
    expect(result.records).toHaveLength(8);
    const original = protoToJson('ExportTraceServiceRequest', body) as Json;
    const rs = original.resourceSpans[0];
    const seen: Json[] = [];
    for (const record of result.records) {
      const decoded = protoToJson('ExportTraceServiceRequest', record.value) as Json;
      expect(decoded.resourceSpans).toHaveLength(1);
      expect(decoded.resourceSpans[0].resource).toEqual(rs.resource);
      expect(decoded.resourceSpans[0].schemaUrl).toBe(rs.schemaUrl);
      expect(decoded.resourceSpans[0].scopeSpans[0].scope).toEqual(rs.scopeSpans[0].scope);
      const spans = spansOf(decoded);
      expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([record.key!.toString('latin1')]));
      seen.push(...spans);
    }
    expect(seen).toEqual(expect.arrayContaining(spansOf(original)));
    expect(seen).toHaveLength(96);
  });

  it('keeps resources and scopes apart: a record holds one resource, spans under their own scope', () => {
    const a = traceRequest({ spans: 4, spansPerTrace: 4, seed: 5, serviceName: 'a' }) as Json;
    const b = traceRequest({ spans: 4, spansPerTrace: 4, seed: 5, serviceName: 'b' }) as Json; // same trace ids as a
    const twoScopes = {
      resourceSpans: [
        { ...a.resourceSpans[0], scopeSpans: [
          { scope: { name: 's1' }, spans: a.resourceSpans[0].scopeSpans[0].spans.slice(0, 2) },
          { scope: { name: 's2' }, spans: a.resourceSpans[0].scopeSpans[0].spans.slice(2), schemaUrl: 'https://example/s2' },
        ] },
        b.resourceSpans[0],
      ],
    };
    const result = splitRequest('traces', jsonToProto('ExportTraceServiceRequest', twoScopes), LIMIT);
    expect(result.records).toHaveLength(2);
    const [first, second] = result.records.map((r) => protoToJson('ExportTraceServiceRequest', r.value) as Json);
    expect(first!.resourceSpans[0].scopeSpans.map((s: Json) => [s.scope.name, s.spans.length, s.schemaUrl])).toEqual([['s1', 2, undefined], ['s2', 2, 'https://example/s2']]);
    expect(second!.resourceSpans[0].resource.attributes[0].value.stringValue).toBe('b');
    expect(result.records[0]!.key).toEqual(result.records[1]!.key);
  });

  it('rejects spans with invalid ids and accepts the others', () => {
    const request = traceRequest({ spans: 6, spansPerTrace: 3 }) as Json;
    const spans = request.resourceSpans[0].scopeSpans[0].spans as Json[];
    spans[1]!.traceId = 'aabb';                              // 2 bytes
    spans[2]!.spanId = '0000000000000000';                   // all zeroes
    delete spans[4]!.traceId;                                // missing
    spans[5]!.parentSpanId = '01';                           // wrong length
    const result = splitRequest('traces', jsonToProto('ExportTraceServiceRequest', request), LIMIT);
    expect(result.itemCount).toBe(6);
    expect(result.rejectedInvalid).toBe(4);
    expect(result.rejectedMessage).toMatch(/span 1 of scope 0 of resource 0: trace_id has 2 bytes, want 16/);
    expect(result.rejectedMessage).toMatch(/span_id is all zeroes/);
    expect(result.rejectedMessage).toMatch(/trace_id is missing/);
    const kept = result.records.flatMap((r) => spansOf(protoToJson('ExportTraceServiceRequest', r.value) as Json));
    expect(kept.map((s) => s.spanId)).toEqual([spans[0]!.spanId, spans[3]!.spanId]);
  });

  it('cuts a trace larger than the record limit into several records with the same key', () => {
    const body = jsonToProto('ExportTraceServiceRequest', traceRequest({ spans: 200, spansPerTrace: 200 }));
    const result = splitRequest('traces', body, { maxRecordBytes: 20_000 });
    expect(result.records.length).toBeGreaterThan(3);
    for (const record of result.records) {
      expect(record.value.length).toBeLessThanOrEqual(20_000);
      expect(record.key).toEqual(result.records[0]!.key);
    }
    const total = result.records.reduce((n, r) => n + spansOf(protoToJson('ExportTraceServiceRequest', r.value) as Json).length, 0);
    expect(total).toBe(200);
  });

  it('rejects a single span larger than the record limit', () => {
    const request = traceRequest({ spans: 3, spansPerTrace: 3 }) as Json;
    request.resourceSpans[0].scopeSpans[0].spans[1].name = 'x'.repeat(50_000);
    const result = splitRequest('traces', jsonToProto('ExportTraceServiceRequest', request), { maxRecordBytes: 20_000 });
    expect(result.rejectedTooLarge).toBe(1);
    expect(result.rejectedMessage).toMatch(/more than the 20000-byte record limit/);
  });
});

describe('splitting logs and metrics', () => {
  it('writes one record per resource, keyed by service.name', () => {
    const a = logsRequest({ records: 10, serviceName: 'cart' }) as Json;
    const b = logsRequest({ records: 5, serviceName: 'payments' }) as Json;
    const noName = { resource: { attributes: [] }, scopeLogs: b.resourceLogs[0].scopeLogs };
    const request = { resourceLogs: [a.resourceLogs[0], b.resourceLogs[0], noName] };
    const result = splitRequest('logs', jsonToProto('ExportLogsServiceRequest', request), LIMIT);
    expect(result.itemCount).toBe(20);
    expect(result.records.map((r) => r.key?.toString() ?? null)).toEqual(['cart', 'payments', null]);
    const first = protoToJson('ExportLogsServiceRequest', result.records[0]!.value) as Json;
    expect(first).toEqual(protoToJson('ExportLogsServiceRequest', jsonToProto('ExportLogsServiceRequest', { resourceLogs: [a.resourceLogs[0]] })));
  });

  it('rejects log records whose ids have the wrong length; empty ids are fine', () => {
    const request = logsRequest({ records: 4 }) as Json;
    request.resourceLogs[0].scopeLogs[0].logRecords[0].spanId = 'abcd';
    const result = splitRequest('logs', jsonToProto('ExportLogsServiceRequest', request), LIMIT);
    expect(result.rejectedInvalid).toBe(1);
    expect(result.rejectedMessage).toMatch(/log record 0 .*LogRecord.span_id has 2 bytes, want 8 \(or none\)/);
  });

  it('counts metric data points, and rejects a metric with a bad exemplar id with all its points', () => {
    const request = metricsRequest({ series: 4 }) as Json;
    const body = jsonToProto('ExportMetricsServiceRequest', request);
    const ok = splitRequest('metrics', body, LIMIT);
    expect(ok.itemCount).toBe(4 + 1 + 4 + 1 + 1);
    expect(ok.records).toHaveLength(1);
    expect(ok.records[0]!.key!.toString()).toBe('checkout');
    request.resourceMetrics[0].scopeMetrics[0].metrics[2].histogram.dataPoints[1].exemplars[0].traceId = 'ff';
    const partial = splitRequest('metrics', jsonToProto('ExportMetricsServiceRequest', request), LIMIT);
    expect(partial.rejectedInvalid).toBe(4);
    const kept = protoToJson('ExportMetricsServiceRequest', partial.records[0]!.value) as Json;
    expect(kept.resourceMetrics[0].scopeMetrics[0].metrics.map((m: Json) => m.name)).not.toContain('http.server.request.duration');
  });
});

describe('malformed protobuf', () => {
  const valid = jsonToProto('ExportTraceServiceRequest', traceRequest({ spans: 4, spansPerTrace: 2 }));

  it('refuses a truncated body', () => {
    expect(() => splitRequest('traces', valid.subarray(0, valid.length - 7), LIMIT)).toThrow(WireError);
  });

  it('refuses a wrong wire type deep inside a span (an attribute key sent as a varint)', () => {
    const request = { resourceSpans: [{ resource: resourceOf('x', 1), scopeSpans: [{ spans: [{ traceId: '01'.repeat(16), spanId: '02'.repeat(8) }] }] }] };
    const body = jsonToProto('ExportTraceServiceRequest', request);
    // Append to the span an attribute (field 9) holding KeyValue{key (field 1) as varint 5}.
    const span = Buffer.from([0x0a, 0x10, ...Buffer.alloc(16, 1), 0x12, 0x08, ...Buffer.alloc(8, 2), 0x4a, 0x02, 0x08, 0x05]);
    const scopeSpans = Buffer.concat([Buffer.from([0x12, span.length]), span]);
    const resourceSpans = Buffer.concat([Buffer.from([0x12, scopeSpans.length]), scopeSpans]);
    const requestBytes = Buffer.concat([Buffer.from([0x0a, resourceSpans.length]), resourceSpans]);
    expect(() => splitRequest('traces', requestBytes, LIMIT)).toThrow(/KeyValue.key \(field 1\) at byte \d+ has wire type 0, want 2/);
    expect(splitRequest('traces', body, LIMIT).records).toHaveLength(1);
  });

  it('walks attributes of every shape (the plain-attribute fast path and the general walk agree)', () => {
    const attributes = [
      { key: 's', value: { stringValue: 'short' } },
      { key: 'long', value: { stringValue: 'x'.repeat(300) } },
      { key: 'k'.repeat(200), value: { stringValue: 'long key' } },
      { key: 'neg', value: { intValue: '-5' } },
      { key: 'big', value: { intValue: '9007199254740993' } },
      { key: 'b', value: { boolValue: true } },
      { key: 'd', value: { doubleValue: 0.5 } },
      { key: 'bytes', value: { bytesValue: 'AAEC' } },
      { key: 'empty', value: {} },
      { key: 'novalue' },
      { key: 'arr', value: { arrayValue: { values: [{ intValue: '1' }, { stringValue: 'two' }] } } },
      { key: 'map', value: { kvlistValue: { values: [{ key: 'inner', value: { boolValue: false } }] } } },
    ];
    const request = { resourceSpans: [{ resource: { attributes }, scopeSpans: [{ spans: [{ traceId: '01'.repeat(16), spanId: '02'.repeat(8), attributes }] }] }] };
    const body = jsonToProto('ExportTraceServiceRequest', request);
    const result = splitRequest('traces', body, LIMIT);
    expect(result.records).toHaveLength(1);
    expect(protoToJson('ExportTraceServiceRequest', result.records[0]!.value)).toEqual(protoToJson('ExportTraceServiceRequest', body));

    // Malformed attributes, each inside a valid span: key length past the KeyValue, a value
    // whose string runs past it, a truncated varint, a double of 7 bytes, trailing garbage.
    const span = (kv: number[]) => Buffer.from([0x0a, 0x10, ...Buffer.alloc(16, 1), 0x12, 0x08, ...Buffer.alloc(8, 2), 0x4a, kv.length, ...kv]);
    const wrap = (s: Buffer) => {
      const scope = Buffer.concat([Buffer.from([0x12, s.length]), s]);
      const resource = Buffer.concat([Buffer.from([0x12, scope.length]), scope]);
      return Buffer.concat([Buffer.from([0x0a, resource.length]), resource]);
    };
    const bad = [
      [0x0a, 0x05, 0x61],
      [0x0a, 0x01, 0x61, 0x12, 0x04, 0x0a, 0x09, 0x62, 0x63],
      [0x0a, 0x01, 0x61, 0x12, 0x02, 0x18, 0xff],
      [0x0a, 0x01, 0x61, 0x12, 0x08, 0x21, 1, 2, 3, 4, 5, 6, 7],
      [0x0a, 0x01, 0x61, 0x12, 0x02, 0x10, 0x01, 0x07],
    ];
    for (const kv of bad) expect(() => splitRequest('traces', wrap(span(kv)), LIMIT), JSON.stringify(kv)).toThrow(WireError);
    expect(splitRequest('traces', wrap(span([0x0a, 0x01, 0x61, 0x12, 0x02, 0x10, 0x01])), LIMIT).records).toHaveLength(1);
  });

  it('refuses group wire types, field number 0 and garbage', () => {
    expect(() => splitRequest('traces', Buffer.from([0x0b]), LIMIT)).toThrow(/wire type 3/);
    expect(() => splitRequest('traces', Buffer.from([0x02, 0x00]), LIMIT)).toThrow(/field number 0/);
    expect(() => splitRequest('traces', Buffer.from('this is not protobuf at all'), LIMIT)).toThrow(WireError);
  });

  it('accepts an empty request and unknown fields', () => {
    expect(splitRequest('traces', Buffer.alloc(0), LIMIT).records).toEqual([]);
    const withUnknown = Buffer.concat([valid, Buffer.from([0xa0, 0x06, 0x01])]); // field 100, varint 1
    expect(splitRequest('traces', withUnknown, LIMIT).itemCount).toBe(4);
  });

  it('refuses nesting deeper than the bound (an attribute value of nested arrays)', () => {
    let value: OtlpJson = { stringValue: 'leaf' };
    for (let i = 0; i < 80; i++) value = { arrayValue: { values: [value] } };
    const request = { resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: '01'.repeat(16), spanId: '02'.repeat(8), attributes: [{ key: 'deep', value }] }] }] }] };
    expect(() => jsonToProto('ExportTraceServiceRequest', request)).toThrow(/nested deeper/);
  });
});
