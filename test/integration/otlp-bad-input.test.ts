// Every class of malformed OTLP input gets its 4xx (OTLP/HTTP) or gRPC status with a message
// saying what is wrong, nothing of it reaches a topic, and the broker process keeps serving:
// a valid request afterwards is accepted.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { printBrokerLogsOnFailure, startBroker, type Broker } from '../helpers/broker.ts';
import { jsonToProto, protoToJson } from '../../connectors/otlp/json.ts';
import { readTopic, topicRecordCount } from '../unit/otlp/read-topic.ts';
import { logsRequest, traceRequest } from '../unit/otlp/payloads.ts';

printBrokerLogsOnFailure();

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const MAX_REQUEST_BYTES = 1024 * 1024;
let broker: Broker;
let httpUrl: string;

beforeAll(async () => {
  broker = await startBroker({ env: { WHARF_INGEST_MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES) } });
  httpUrl = `http://127.0.0.1:${broker.otlpHttpPort}`;
});
afterAll(async () => {
  await broker?.stop();
});

async function post(path: string, body: Buffer | string, headers: Record<string, string>) {
  const response = await fetch(httpUrl + path, { method: 'POST', body, headers });
  const bytes = Buffer.from(await response.arrayBuffer());
  const type = response.headers.get('content-type') ?? '';
  const status = type.startsWith('application/json') ? JSON.parse(bytes.toString()) as Json : protoToJson('google.rpc.Status', bytes);
  return { code: response.status, type, status };
}
const PROTO = { 'content-type': 'application/x-protobuf' };
const JSON_TYPE = { 'content-type': 'application/json' };
const validTraces = () => jsonToProto('ExportTraceServiceRequest', traceRequest({ spans: 8, spansPerTrace: 4 }));

function allSpansInvalid(): Json {
  const request = traceRequest({ spans: 3, spansPerTrace: 3 }) as Json;
  for (const span of request.resourceSpans[0].scopeSpans[0].spans) span.spanId = 'abcd';
  return request;
}

describe('OTLP/HTTP refuses malformed input', () => {
  const cases: [string, () => Promise<Awaited<ReturnType<typeof post>>>, number, RegExp][] = [
    ['bad protobuf', () => post('/v1/traces', Buffer.from([0x0a, 0xff, 0x01, 0x02]), PROTO), 400, /not a valid protobuf ExportTraceServiceRequest: length 255 at byte 3 runs past the end/],
    ['a wrong wire type inside a log record', () => post('/v1/logs', Buffer.from([0x0a, 0x06, 0x12, 0x04, 0x12, 0x02, 0x18, 0x01]), PROTO), 400, /LogRecord.severity_text \(field 3\) at byte 6 has wire type 0, want 2/],
    ['bad JSON', () => post('/v1/metrics', '{"resourceMetrics": [{]', JSON_TYPE), 400, /^body is not valid JSON/],
    ['JSON that is not OTLP', () => post('/v1/traces', '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "not-hex"}]}]}]}', JSON_TYPE), 400, /resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.traceId: "not-hex" is not a hex string/],
    ['invalid span ids', () => post('/v1/traces', jsonToProto('ExportTraceServiceRequest', allSpansInvalid()), PROTO), 400, /all 3 spans rejected: span 0 of scope 0 of resource 0: span_id has 2 bytes, want 8/],
    ['a wrong content type', () => post('/v1/traces', 'hello', { 'content-type': 'text/plain' }), 415, /Content-Type "text\/plain" is not supported/],
    ['an unsupported content encoding', () => post('/v1/traces', validTraces(), { ...PROTO, 'content-encoding': 'br' }), 415, /Content-Encoding br is not supported/],
    ['a body over the limit', () => post('/v1/traces', Buffer.alloc(MAX_REQUEST_BYTES + 1), PROTO), 413, /larger than 1048576 bytes/],
    ['a gzip bomb', () => post('/v1/logs', gzipSync(Buffer.alloc(64 * MAX_REQUEST_BYTES)), { ...PROTO, 'content-encoding': 'gzip' }), 413, /decompresses to more than 1048576 bytes/],
    ['bad gzip', () => post('/v1/logs', Buffer.from('plain text, not gzip'), { ...PROTO, 'content-encoding': 'gzip' }), 400, /body is not valid gzip data/],
  ];

  for (const [what, send, code, message] of cases) {
    it(`${what}: ${code} with a google.rpc.Status saying what is wrong`, async () => {
      const res = await send();
      expect(res.code).toBe(code);
      expect(res.status.message).toMatch(message);
      expect(res.status.code).toBe(code === 413 ? 8 : 3);
    });
  }
});

describe('OTLP/gRPC refuses malformed input', () => {
  const methods = {
    traces: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
    logs: '/opentelemetry.proto.collector.logs.v1.LogsService/Export',
  };
  const raw = (b: Buffer) => b;
  const Client = grpc.makeGenericClientConstructor(Object.fromEntries(Object.entries(methods).map(([name, path]) => [name, {
    path, requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw,
  }])), 'Otlp');
  type Call = (req: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void) => void;
  let client: grpc.Client & { traces: Call; logs: Call };
  beforeAll(() => {
    client = new Client(`127.0.0.1:${broker.otlpGrpcPort}`, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 64 * MAX_REQUEST_BYTES }) as unknown as typeof client;
  });
  afterAll(() => client?.close());
  const call = (method: 'traces' | 'logs', body: Buffer) =>
    new Promise<grpc.ServiceError | null>((resolve) => client[method](body, (err) => resolve(err)));

  it('bad protobuf: INVALID_ARGUMENT', async () => {
    const err = await call('traces', Buffer.from('definitely not protobuf'));
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/not a valid protobuf ExportTraceServiceRequest/);
  });

  it('invalid span ids: INVALID_ARGUMENT', async () => {
    const err = await call('traces', jsonToProto('ExportTraceServiceRequest', allSpansInvalid()));
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/all 3 spans rejected/);
  });

  it('a message over the limit: RESOURCE_EXHAUSTED', async () => {
    const err = await call('logs', Buffer.alloc(MAX_REQUEST_BYTES + 1));
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err?.details).toMatch(/larger than max/);
  });
});

describe('after the malformed input', () => {
  it('nothing reached the topics, and the broker still accepts valid requests', async () => {
    for (const topic of ['otlp_spans', 'otlp_metrics', 'otlp_logs']) expect(await topicRecordCount(broker.bootstrap, topic)).toBe(0);
    const ok = await fetch(`${httpUrl}/v1/traces`, { method: 'POST', body: validTraces(), headers: PROTO });
    expect(ok.status).toBe(200);
    const logs = await fetch(`${httpUrl}/v1/logs`, { method: 'POST', body: JSON.stringify(logsRequest({ records: 3 })), headers: JSON_TYPE });
    expect(logs.status).toBe(200);
    expect(await topicRecordCount(broker.bootstrap, 'otlp_spans')).toBe(2);
    expect(await topicRecordCount(broker.bootstrap, 'otlp_logs')).toBe(1);
  });

  it('a request with some invalid spans writes the valid ones and reports the others in partial_success', async () => {
    const request = traceRequest({ spans: 4, spansPerTrace: 4, seed: 99 }) as Json;
    const spans = request.resourceSpans[0].scopeSpans[0].spans as Json[];
    spans[2]!.traceId = '00'.repeat(16);
    const res = await fetch(`${httpUrl}/v1/traces`, { method: 'POST', body: JSON.stringify(request), headers: JSON_TYPE });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ partialSuccess: { rejectedSpans: '1', errorMessage: expect.stringMatching(/span 2 .*trace_id is all zeroes/) } });
    const records = await readTopic(broker.bootstrap, 'otlp_spans');
    const written = records.flatMap((r) => (protoToJson('ExportTraceServiceRequest', r.value) as Json).resourceSpans[0].scopeSpans[0].spans.map((s: Json) => s.spanId));
    expect(written).toEqual(expect.arrayContaining([spans[0]!.spanId, spans[1]!.spanId, spans[3]!.spanId]));
    expect(written).not.toContain(spans[2]!.spanId);
    const metrics = await broker.metrics();
    expect(metrics).toMatch(/wharf_otlp_rejected_items_total\{signal="traces",reason="invalid_id"\} 7/);
  });
});
