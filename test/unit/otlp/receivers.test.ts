// The OTLP receivers in-process, against a producer double: status codes, bodies and the
// in-flight bound, for both transports. (The end-to-end tests with a broker process and the
// OpenTelemetry SDK exporters are in test/integration/otlp-*.test.ts.)

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { defaultConfig } from '../../../src/config/config.ts';
import type { ProducerRecord, SendResult, TopicProducer } from '../../../src/broker/in-process-producer.ts';
import { ProduceError } from '../../../src/broker/in-process-producer.ts';
import { startOtlp, type RunningOtlp } from '../../../connectors/otlp/index.ts';
import { jsonToProto, protoToJson } from '../../../connectors/otlp/json.ts';
import { traceRequest, logsRequest } from './payloads.ts';

class ProducerDouble implements TopicProducer {
  sent: { topic: string; records: readonly ProducerRecord[]; partitions: number | undefined }[] = [];
  /** When set, send() waits for it (to hold requests in flight). */
  gate: Promise<void> | undefined;
  failWith: Error | undefined;

  async send(topic: string, records: readonly ProducerRecord[], options?: { partitions?: number }): Promise<SendResult> {
    if (this.gate) await this.gate;
    if (this.failWith) throw this.failWith;
    this.sent.push({ topic, records, partitions: options?.partitions });
    return { topic, appends: [] };
  }
}

const producer = new ProducerDouble();
let otlp: RunningOtlp;
let url: string;
let grpcTarget: string;
const MAX_REQUEST_BYTES = 256 * 1024;
const MAX_INFLIGHT_BYTES = 300 * 1024;

beforeAll(async () => {
  const config = defaultConfig();
  config.host = '127.0.0.1';
  config.ingest = { ...config.ingest, otlpGrpcPort: 0, otlpHttpPort: 0, maxRequestBytes: MAX_REQUEST_BYTES, maxInflightBytes: MAX_INFLIGHT_BYTES };
  otlp = await startOtlp({ config, producer });
  url = `http://127.0.0.1:${otlp.httpPort}`;
  grpcTarget = `127.0.0.1:${otlp.grpcPort}`;
});
afterAll(async () => {
  await otlp.stop();
});

const traces = (spans = 32) => jsonToProto('ExportTraceServiceRequest', traceRequest({ spans, spansPerTrace: 8 }));

async function post(path: string, body: Buffer | string, headers: Record<string, string>): Promise<{ status: number; type: string | null; body: Buffer; retryAfter: string | null }> {
  const response = await fetch(url + path, { method: 'POST', body, headers });
  return { status: response.status, type: response.headers.get('content-type'), body: Buffer.from(await response.arrayBuffer()), retryAfter: response.headers.get('retry-after') };
}
const PROTO = { 'content-type': 'application/x-protobuf' };
const JSON_TYPE = { 'content-type': 'application/json' };

describe('OTLP/HTTP', () => {
  it('accepts protobuf and answers an empty ExportTraceServiceResponse after the produce', async () => {
    producer.sent = [];
    const res = await post('/v1/traces', traces(), PROTO);
    expect(res.status).toBe(200);
    expect(res.type).toBe('application/x-protobuf');
    expect(res.body.length).toBe(0);
    expect(producer.sent).toHaveLength(1);
    expect(producer.sent[0]!.topic).toBe('otlp_spans');
    expect(producer.sent[0]!.partitions).toBe(8);
    expect(producer.sent[0]!.records).toHaveLength(4);
  });

  it('accepts OTLP/JSON (also gzip-compressed) and answers in JSON', async () => {
    producer.sent = [];
    const body = JSON.stringify(logsRequest({ records: 10 }));
    const res = await post('/v1/logs', gzipSync(body), { ...JSON_TYPE, 'content-encoding': 'gzip' });
    expect(res.status).toBe(200);
    expect(res.type).toBe('application/json');
    expect(JSON.parse(res.body.toString())).toEqual({});
    expect(producer.sent[0]!.topic).toBe('otlp_logs');
    expect(producer.sent[0]!.records[0]!.key!.toString()).toBe('checkout');
  });

  it('reports rejected spans in partial_success', async () => {
    const request = traceRequest({ spans: 4, spansPerTrace: 2 }) as { resourceSpans: { scopeSpans: { spans: { traceId: string }[] }[] }[] };
    request.resourceSpans[0]!.scopeSpans[0]!.spans[3]!.traceId = 'abcd';
    const json = await post('/v1/traces', JSON.stringify(request), JSON_TYPE);
    expect(json.status).toBe(200);
    expect(JSON.parse(json.body.toString())).toEqual({
      partialSuccess: { rejectedSpans: '1', errorMessage: expect.stringMatching(/^1 spans rejected: span 3 .*trace_id has 2 bytes, want 16/) },
    });
    const proto = await post('/v1/traces', jsonToProto('ExportTraceServiceRequest', request), PROTO);
    expect(protoToJson('ExportTraceServiceResponse', proto.body)).toEqual({
      partialSuccess: { rejectedSpans: '1', errorMessage: expect.stringContaining('trace_id has 2 bytes') },
    });
  });

  it('answers 400 with a google.rpc.Status for malformed bodies, in the request content type', async () => {
    const bad = await post('/v1/traces', Buffer.from([0x0a, 0x7f, 0x01]), PROTO);
    expect(bad.status).toBe(400);
    expect(protoToJson('google.rpc.Status', bad.body)).toEqual({ code: 3, message: expect.stringMatching(/not a valid protobuf ExportTraceServiceRequest: length 127/) });
    const badJson = await post('/v1/metrics', '{"resourceMetrics": [', JSON_TYPE);
    expect(badJson.status).toBe(400);
    expect(JSON.parse(badJson.body.toString())).toEqual({ code: 3, message: expect.stringMatching(/^body is not valid JSON/) });
    const badGzip = await post('/v1/logs', Buffer.from('not gzip'), { ...PROTO, 'content-encoding': 'gzip' });
    expect(badGzip.status).toBe(400);
    expect(protoToJson('google.rpc.Status', badGzip.body).message).toMatch(/not valid gzip data/);
  });

  it('answers 415 for other content types and encodings, 413 for large bodies and gzip bombs', async () => {
    expect((await post('/v1/traces', 'hello', { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await post('/v1/traces', traces(), { ...PROTO, 'content-encoding': 'br' })).status).toBe(415);
    const big = await post('/v1/traces', Buffer.alloc(MAX_REQUEST_BYTES + 1), PROTO);
    expect(big.status).toBe(413);
    expect(protoToJson('google.rpc.Status', big.body).message).toMatch(/larger than 262144 bytes/);
    const bomb = await post('/v1/traces', gzipSync(Buffer.alloc(50 * 1024 * 1024)), { ...PROTO, 'content-encoding': 'gzip' });
    expect(bomb.status).toBe(413);
    expect(protoToJson('google.rpc.Status', bomb.body).message).toMatch(/decompresses to more than/);
    expect((await fetch(`${url}/v1/profiles`, { method: 'POST', body: '{}', headers: JSON_TYPE })).status).toBe(404);
  });

  it('answers 405 with Allow: POST to other methods on the export paths', async () => {
    for (const [method, path] of [['GET', '/v1/traces'], ['PUT', '/v1/logs?x=1'], ['DELETE', '/v1/metrics']] as const) {
      const response = await fetch(`${url}${path}`, { method });
      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe('POST');
      expect(await response.json()).toEqual({ code: 12, message: expect.stringContaining(`method ${method} is not allowed`) });
    }
    expect((await fetch(`${url}/v1/nothing`)).status).toBe(404);
  });

  it('answers 429 with Retry-After past the in-flight bound, and serves again afterwards', async () => {
    let open!: () => void;
    producer.gate = new Promise((resolve) => { open = resolve; });
    const body = traces(400); // ~160 KiB: two fit in 300 KiB only once
    const first = post('/v1/traces', body, PROTO);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const refused = await post('/v1/traces', body, PROTO);
    expect(refused.status).toBe(429);
    expect(refused.retryAfter).toBe('1');
    expect(protoToJson('google.rpc.Status', refused.body)).toMatchObject({ code: 8, message: expect.stringMatching(/overloaded/) });
    producer.gate = undefined;
    open();
    expect((await first).status).toBe(200);
    expect((await post('/v1/traces', body, PROTO)).status).toBe(200);
  });

  it('answers 503 with Retry-After when the produce fails, and 400 when every span is invalid', async () => {
    producer.failWith = new ProduceError('otlp_spans', 56, 'partition 0: KAFKA_STORAGE_ERROR');
    const res = await post('/v1/traces', traces(), PROTO);
    producer.failWith = undefined;
    expect(res.status).toBe(503);
    expect(res.retryAfter).toBe('1');
    expect(protoToJson('google.rpc.Status', res.body)).toMatchObject({ code: 14 });
    const allBad = { resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: '00'.repeat(16), spanId: '01'.repeat(8) }] }] }] };
    const bad = await post('/v1/traces', JSON.stringify(allBad), JSON_TYPE);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body.toString()).message).toMatch(/all 1 spans rejected: .*trace_id is all zeroes/);
  });
});

describe('OTLP/gRPC', () => {
  const path = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
  const Client = grpc.makeGenericClientConstructor({
    Export: { path, requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b },
  }, 'TraceService');
  let client: grpc.Client & { Export: (req: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void) => void };
  beforeAll(() => {
    client = new Client(grpcTarget, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 }) as unknown as typeof client;
  });
  afterAll(() => client.close());
  const call = (body: Buffer) => new Promise<{ err: grpc.ServiceError | null; res?: Buffer }>((resolve) => client.Export(body, (err, res) => resolve({ err, res })));

  it('exports gzip-compressed requests', async () => {
    producer.sent = [];
    const { err, res } = await call(traces());
    expect(err).toBeNull();
    expect(res!.length).toBe(0);
    expect(producer.sent[0]!.records).toHaveLength(4);
  });

  it('answers INVALID_ARGUMENT for malformed requests', async () => {
    const { err } = await call(Buffer.from([0x0a, 0x7f]));
    expect(err!.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err!.details).toMatch(/not a valid protobuf ExportTraceServiceRequest/);
  });

  it('answers RESOURCE_EXHAUSTED with RetryInfo past the in-flight bound, UNAVAILABLE when the produce fails', async () => {
    let open!: () => void;
    producer.gate = new Promise((resolve) => { open = resolve; });
    const body = traces(400);
    const first = call(body);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const { err } = await call(body);
    expect(err!.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    const details = err!.metadata.get('grpc-status-details-bin')[0] as Buffer;
    expect(protoToJson('google.rpc.Status', details)).toEqual({
      code: 8, message: expect.stringMatching(/overloaded/),
      details: [{ typeUrl: 'type.googleapis.com/google.rpc.RetryInfo', value: expect.any(String) }],
    });
    const retryInfo = protoToJson('google.rpc.RetryInfo', Buffer.from((protoToJson('google.rpc.Status', details).details as { value: string }[])[0]!.value, 'base64'));
    expect(retryInfo).toEqual({ retryDelay: { seconds: '1' } });
    producer.gate = undefined;
    open();
    expect((await first).err).toBeNull();
    producer.failWith = new Error('storage down');
    const failed = await call(traces());
    producer.failWith = undefined;
    expect(failed.err!.code).toBe(grpc.status.UNAVAILABLE);
  });
});
