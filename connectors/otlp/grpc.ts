// OTLP/gRPC receiver (@grpc/grpc-js): the three collector Export services with raw
// (bytes-in, bytes-out) method definitions, so that requests are decoded by the same walker
// as OTLP/HTTP protobuf bodies. grpc-js decompresses gzip/deflate messages and bounds the
// message size, compressed and decompressed, by grpc.max_receive_message_length.
//
// Status codes per the OTLP specification:
//   OK                  Export*ServiceResponse (partial_success when items were rejected)
//   INVALID_ARGUMENT    malformed request or every item invalid (not retryable)
//   RESOURCE_EXHAUSTED  over ingest.max.inflight.bytes, with google.rpc.RetryInfo in the
//                       grpc-status-details-bin trailer (retryable because RetryInfo is there)
//   UNAVAILABLE         the broker could not make the records durable (retryable)

import * as grpc from '@grpc/grpc-js';
import type { OtlpIngest } from './ingest.ts';
import { receivedBytesTotal, refusedRequestsTotal, requestDurationSeconds, requestsTotal } from './metrics.ts';
import { GrpcCode, RETRY_AFTER_SECONDS, exportResponse, retryInfoAny, statusProto } from './responses.ts';
import { SIGNAL_NAMES, SIGNALS, type Signal } from './schema.ts';

/** HTTP/2 streams per client connection; further requests wait in the client. */
const MAX_CONCURRENT_STREAMS = 64;

export interface OtlpGrpcServer {
  readonly port: number;
  close(): Promise<void>;
}

const identity = (value: Buffer): Buffer => value;

function serviceDefinition(signal: Signal): grpc.ServiceDefinition {
  return {
    Export: {
      path: `/${SIGNALS[signal].grpcService}/Export`,
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
      originalName: 'export',
    },
  };
}

export async function startOtlpGrpc(ingest: OtlpIngest, host: string, port: number, maxRequestBytes: number): Promise<OtlpGrpcServer> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': maxRequestBytes,
    'grpc.max_concurrent_streams': MAX_CONCURRENT_STREAMS,
  });
  for (const signal of SIGNAL_NAMES) {
    const handler: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => handleExport(ingest, signal, call.request, callback);
    server.addService(serviceDefinition(signal), { Export: handler });
  }
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const boundPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
  });
  return {
    port: boundPort,
    close: () => shutdown(server),
  };
}

function handleExport(ingest: OtlpIngest, signal: Signal, body: Buffer, callback: grpc.sendUnaryData<Buffer>): void {
  const started = performance.now();
  receivedBytesTotal.inc({ signal, transport: 'grpc' }, body.length);
  if (!ingest.budget.tryAcquire(body.length)) {
    refusedRequestsTotal.inc({ signal, transport: 'grpc' });
    requestsTotal.inc({ signal, transport: 'grpc', outcome: 'overloaded' });
    const message = `overloaded: ${ingest.budget.inUseBytes} request bytes in flight (limit ${ingest.budget.limitBytes}); retry after ${RETRY_AFTER_SECONDS} s`;
    callback(statusError(GrpcCode.RESOURCE_EXHAUSTED, message, [retryInfoAny(RETRY_AFTER_SECONDS)]));
    return;
  }
  ingest.export(signal, body, 'protobuf', 'grpc').then(
    (outcome) => {
      ingest.budget.release(body.length);
      requestDurationSeconds.observe({ signal, transport: 'grpc' }, (performance.now() - started) / 1000);
      switch (outcome.kind) {
        case 'ok':
          requestsTotal.inc({ signal, transport: 'grpc', outcome: outcome.rejected > 0 ? 'partial' : 'ok' });
          callback(null, exportResponse(signal, 'protobuf', outcome.rejected, outcome.message));
          return;
        case 'invalid':
          requestsTotal.inc({ signal, transport: 'grpc', outcome: 'invalid' });
          callback(statusError(GrpcCode.INVALID_ARGUMENT, outcome.message));
          return;
        case 'unavailable':
          requestsTotal.inc({ signal, transport: 'grpc', outcome: 'unavailable' });
          callback(statusError(GrpcCode.UNAVAILABLE, outcome.message));
          return;
      }
    },
    (err: unknown) => {
      ingest.budget.release(body.length);
      requestsTotal.inc({ signal, transport: 'grpc', outcome: 'error' });
      callback(statusError(GrpcCode.INTERNAL, `internal error: ${err instanceof Error ? err.message : String(err)}`));
    },
  );
}

/** A gRPC error status; details (google.protobuf.Any) travel as google.rpc.Status in grpc-status-details-bin. */
function statusError(code: number, message: string, details: Buffer[] = []): grpc.ServerErrorResponse {
  const metadata = new grpc.Metadata();
  if (details.length > 0) metadata.set('grpc-status-details-bin', statusProto(code, message, details));
  return Object.assign(new Error(message), { code, details: message, metadata });
}

async function shutdown(server: grpc.Server): Promise<void> {
  const timer = setTimeout(() => server.forceShutdown(), 10_000);
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  clearTimeout(timer);
}
