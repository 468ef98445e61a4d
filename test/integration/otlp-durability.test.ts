// A 200 (or gRPC OK) from the OTLP receivers means the records are durable: the broker process
// is SIGKILLed right after the answer, restarted on the same data directory, and everything
// of the acknowledged requests is in the topics.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { printBrokerLogsOnFailure, startBroker, type Broker } from '../helpers/broker.ts';
import { jsonToProto, protoToJson } from '../../connectors/otlp/json.ts';
import { readTopic } from '../unit/otlp/read-topic.ts';
import { logsRequest, traceRequest } from '../unit/otlp/payloads.ts';

printBrokerLogsOnFailure();

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
let broker: Broker;

beforeAll(async () => {
  broker = await startBroker();
});
afterAll(async () => {
  await broker?.stop();
});

const spanIdsOf = (request: Json): string[] =>
  request.resourceSpans.flatMap((rs: Json) => rs.scopeSpans.flatMap((ss: Json) => ss.spans.map((s: Json) => s.spanId)));

describe('SIGKILL right after the answer', () => {
  it('loses nothing of the acknowledged OTLP/HTTP and OTLP/gRPC requests', async () => {
    const sentSpans: string[] = [];
    for (let i = 0; i < 4; i++) {
      const request = traceRequest({ spans: 64, spansPerTrace: 8, seed: 100 + i });
      const res = await fetch(`http://127.0.0.1:${broker.otlpHttpPort}/v1/traces`, {
        method: 'POST', body: jsonToProto('ExportTraceServiceRequest', request), headers: { 'content-type': 'application/x-protobuf' },
      });
      expect(res.status).toBe(200);
      sentSpans.push(...spanIdsOf(request));
    }

    const raw = (b: Buffer) => b;
    const Client = grpc.makeGenericClientConstructor({ Export: {
      path: '/opentelemetry.proto.collector.logs.v1.LogsService/Export', requestStream: false, responseStream: false,
      requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw,
    } }, 'LogsService');
    const client = new Client(`127.0.0.1:${broker.otlpGrpcPort}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Export: (req: Buffer, cb: (err: grpc.ServiceError | null) => void) => void;
    };
    const logs = logsRequest({ records: 200, serviceName: 'durable' });
    const grpcDone = new Promise<grpc.ServiceError | null>((resolve) => client.Export(jsonToProto('ExportLogsServiceRequest', logs), resolve));

    // The last HTTP request: the kill follows its 200 at once (and the gRPC call is answered by then too).
    const last = traceRequest({ spans: 64, spansPerTrace: 8, seed: 200 });
    const res = await fetch(`http://127.0.0.1:${broker.otlpHttpPort}/v1/traces`, {
      method: 'POST', body: jsonToProto('ExportTraceServiceRequest', last), headers: { 'content-type': 'application/x-protobuf' },
    });
    const grpcErr = await grpcDone;
    await broker.kill('SIGKILL');
    client.close();
    expect(res.status).toBe(200);
    expect(grpcErr).toBeNull();
    sentSpans.push(...spanIdsOf(last));

    await broker.restart();
    const spanRecords = await readTopic(broker.bootstrap, 'otlp_spans');
    const received = spanRecords.flatMap((r) => spanIdsOf(protoToJson('ExportTraceServiceRequest', r.value) as Json));
    expect(received.length).toBe(sentSpans.length);
    expect(new Set(received)).toEqual(new Set(sentSpans));

    const logRecords = await readTopic(broker.bootstrap, 'otlp_logs');
    expect(logRecords).toHaveLength(1);
    expect(logRecords[0]!.key!.toString()).toBe('durable');
    const decoded = protoToJson('ExportLogsServiceRequest', logRecords[0]!.value) as Json;
    expect(decoded).toEqual(protoToJson('ExportLogsServiceRequest', jsonToProto('ExportLogsServiceRequest', logs)));
  });
});
