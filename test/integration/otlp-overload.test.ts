// Overload: with a small in-flight bound (ingest.max.inflight.bytes), requests past it are
// refused at once — HTTP 429 with Retry-After, gRPC RESOURCE_EXHAUSTED with RetryInfo — rather
// than queued, and the OpenTelemetry SDK's OTLP/HTTP exporter, retrying after the hint, gets
// its spans in once the load is gone.
//
// The load is made deterministic with a request that declares a body as large as the bound and
// sends it slowly: while it is being received, its declared size is charged to the budget.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { printBrokerLogsOnFailure, startBroker, type Broker } from '../helpers/broker.ts';
import { jsonToProto, protoToJson } from '../../connectors/otlp/json.ts';
import { readTopic } from '../unit/otlp/read-topic.ts';
import { traceRequest } from '../unit/otlp/payloads.ts';
import { waitFor } from '../helpers/kafka.ts';

printBrokerLogsOnFailure();

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const INFLIGHT_BYTES = 256 * 1024;
let broker: Broker;

beforeAll(async () => {
  broker = await startBroker({ env: { WHARF_INGEST_MAX_INFLIGHT_BYTES: String(INFLIGHT_BYTES) } });
});
afterAll(async () => {
  await broker?.stop();
});

/** Starts a request declaring INFLIGHT_BYTES of body and sends 1 KiB of it; release() aborts it. */
async function holdBudget(): Promise<{ release: () => void }> {
  const req = http.request({
    host: '127.0.0.1', port: broker.otlpHttpPort, method: 'POST', path: '/v1/traces',
    headers: { 'content-type': 'application/x-protobuf', 'content-length': INFLIGHT_BYTES },
  });
  req.on('error', () => {}); // aborted on purpose
  req.write(Buffer.alloc(1024));
  await new Promise((resolve) => setTimeout(resolve, 200)); // the server has seen the headers
  return { release: () => req.destroy() };
}

async function refusedCount(): Promise<number> {
  const text = await broker.metrics();
  const match = /wharf_otlp_refused_requests_total\{signal="traces",transport="http"\} (\d+)/.exec(text);
  return match ? Number(match[1]) : 0;
}

describe('past the in-flight bound', () => {
  it('concurrent OTLP/HTTP requests get 429 with Retry-After, gRPC gets RESOURCE_EXHAUSTED with RetryInfo', async () => {
    const hold = await holdBudget();
    try {
      const body = jsonToProto('ExportTraceServiceRequest', traceRequest({ spans: 16, spansPerTrace: 4 }));
      const responses = await Promise.all(Array.from({ length: 8 }, () =>
        fetch(`http://127.0.0.1:${broker.otlpHttpPort}/v1/traces`, { method: 'POST', body, headers: { 'content-type': 'application/x-protobuf' } })));
      for (const res of responses) {
        expect(res.status).toBe(429);
        expect(res.headers.get('retry-after')).toBe('1');
        const status = protoToJson('google.rpc.Status', Buffer.from(await res.arrayBuffer()));
        expect(status).toMatchObject({ code: 8, message: expect.stringMatching(/^overloaded: \d+ request bytes in flight \(limit 262144\)/) });
      }

      const raw = (b: Buffer) => b;
      const Client = grpc.makeGenericClientConstructor({ Export: {
        path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export', requestStream: false, responseStream: false,
        requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw,
      } }, 'TraceService');
      const client = new Client(`127.0.0.1:${broker.otlpGrpcPort}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
        Export: (req: Buffer, cb: (err: grpc.ServiceError | null) => void) => void;
      };
      const err = await new Promise<grpc.ServiceError | null>((resolve) => client.Export(body, resolve));
      client.close();
      expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      const details = protoToJson('google.rpc.Status', err!.metadata.get('grpc-status-details-bin')[0] as Buffer) as Json;
      expect(details.details[0].typeUrl).toBe('type.googleapis.com/google.rpc.RetryInfo');
      expect(protoToJson('google.rpc.RetryInfo', Buffer.from(details.details[0].value, 'base64'))).toEqual({ retryDelay: { seconds: '1' } });
    } finally {
      hold.release();
    }
    expect(await refusedCount()).toBeGreaterThanOrEqual(8);
  });

  it("the SDK exporter is refused, retries after Retry-After, and its spans arrive", async () => {
    const memory = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'retrying' }), spanProcessors: [new SimpleSpanProcessor(memory)] });
    const tracer = provider.getTracer('overload-test');
    for (let i = 0; i < 5; i++) tracer.startSpan(`work ${i}`).end();
    const spans = memory.getFinishedSpans();
    const exporter = new OTLPTraceExporter({ url: `http://127.0.0.1:${broker.otlpHttpPort}/v1/traces` });

    const refusedBefore = await refusedCount();
    const hold = await holdBudget();
    const exported = new Promise<ExportResult>((resolve) => exporter.export(spans, resolve));
    await waitFor('the exporter to be refused', async () => (await refusedCount()) > refusedBefore, 10_000);
    const stillRefusedSpans = (await readTopic(broker.bootstrap, 'otlp_spans')).length;
    expect(stillRefusedSpans).toBe(0);
    hold.release();
    const result = await exported;
    expect(result.code).toBe(ExportResultCode.SUCCESS);
    await exporter.shutdown();
    await provider.shutdown();

    const received = (await readTopic(broker.bootstrap, 'otlp_spans')).flatMap((r) =>
      (protoToJson('ExportTraceServiceRequest', r.value) as Json).resourceSpans[0].scopeSpans[0].spans.map((s: Json) => s.spanId));
    expect(received.sort()).toEqual(spans.map((s) => s.spanContext().spanId).sort());
  });
});
