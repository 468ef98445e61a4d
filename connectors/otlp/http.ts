// OTLP/HTTP receiver (fastify): POST /v1/traces, /v1/metrics, /v1/logs with
// application/x-protobuf or application/json bodies, optionally gzip/deflate/zstd encoded.
// Answers per the OTLP/HTTP specification:
//   200  Export*ServiceResponse (partial_success when items were rejected), in the request's type
//   400  malformed body (bad protobuf, bad JSON, bad compression, all items invalid): google.rpc.Status
//   413  body over ingest.max.request.bytes, before or after decompression
//   415  unsupported Content-Type or Content-Encoding
//   429  over ingest.max.inflight.bytes, with Retry-After (decided before the body is read)
//   503  the broker could not make the records durable, with Retry-After

import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { log } from '../../src/metrics/log.ts';
import type { OtlpIngest } from './ingest.ts';
import { receivedBytesTotal, refusedRequestsTotal, requestDurationSeconds, requestsTotal } from './metrics.ts';
import { GrpcCode, RETRY_AFTER_SECONDS, contentTypeOf, exportResponse, statusBody, type BodyFormat } from './responses.ts';
import { SIGNAL_NAMES, SIGNALS, type Signal } from './schema.ts';

/** Charged for a body without Content-Length until its real size is known. */
const UNKNOWN_LENGTH_CHARGE_BYTES = 64 * 1024;
/**
 * A request must arrive whole within this time: a client that declares a body and sends it
 * slowly holds in-flight budget, and this bounds for how long.
 */
const REQUEST_TIMEOUT_MS = 60_000;

const PROTOBUF_TYPES = ['application/x-protobuf', 'application/protobuf'];
const JSON_TYPES = ['application/json'];

const inflate = {
  gzip: promisify(zlib.gunzip),
  'x-gzip': promisify(zlib.gunzip),
  deflate: promisify(zlib.inflate),
  zstd: promisify(zlib.zstdDecompress),
} as const;

export interface OtlpHttpServer {
  readonly port: number;
  close(): Promise<void>;
}

interface HttpError {
  status: number;
  grpcCode: number;
  message: string;
  outcome: string;
}

/** Bytes charged to the in-flight budget per request, released when its response closes. */
const charged = new WeakMap<IncomingMessage, { bytes: number }>();

export async function startOtlpHttp(ingest: OtlpIngest, host: string, port: number, maxRequestBytes: number): Promise<OtlpHttpServer> {
  const app = Fastify({ bodyLimit: maxRequestBytes, logger: false, requestTimeout: REQUEST_TIMEOUT_MS });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser([...PROTOBUF_TYPES, ...JSON_TYPES], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  // Admission happens before the body is read, on its declared length: past the bound the
  // client is told to come back, and nothing of the body is buffered.
  app.addHook('onRequest', (request, reply, done) => {
    const signal = signalOfUrl(request.url);
    if (request.method !== 'POST' || signal === undefined) return done();
    const declared = Number(request.headers['content-length']);
    const bytes = Number.isSafeInteger(declared) && declared >= 0 ? Math.min(declared, maxRequestBytes) : UNKNOWN_LENGTH_CHARGE_BYTES;
    if (!ingest.budget.tryAcquire(bytes)) {
      refusedRequestsTotal.inc({ signal, transport: 'http' });
      sendError(reply, request, signal, {
        status: 429, grpcCode: GrpcCode.RESOURCE_EXHAUSTED, outcome: 'overloaded',
        message: `overloaded: ${ingest.budget.inUseBytes} request bytes in flight (limit ${ingest.budget.limitBytes}); retry after ${RETRY_AFTER_SECONDS} s`,
      });
      return;
    }
    const charge = { bytes };
    charged.set(request.raw, charge);
    reply.raw.once('close', () => ingest.budget.release(charge.bytes));
    done();
  });

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, request, reply) => {
    const signal = signalOfUrl(request.url) ?? 'traces';
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      sendError(reply, request, signal, { status: 413, grpcCode: GrpcCode.RESOURCE_EXHAUSTED, outcome: 'too_large', message: `body is larger than ${maxRequestBytes} bytes` });
    } else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      sendError(reply, request, signal, { status: 415, grpcCode: GrpcCode.INVALID_ARGUMENT, outcome: 'unsupported', message: unsupportedTypeMessage(request) });
    } else if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      sendError(reply, request, signal, { status: err.statusCode, grpcCode: GrpcCode.INVALID_ARGUMENT, outcome: 'invalid', message: err.message });
    } else {
      log.error({ err, url: request.url }, 'otlp http request failed');
      sendError(reply, request, signal, { status: 500, grpcCode: GrpcCode.INTERNAL, outcome: 'error', message: `internal error: ${err.message}` });
    }
  });

  const paths: readonly string[] = SIGNAL_NAMES.map((s) => SIGNALS[s].httpPath);
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?', 1)[0]!;
    if (paths.includes(path)) {
      // An export path with another method than POST.
      const body = statusBody('json', GrpcCode.UNIMPLEMENTED, `method ${request.method} is not allowed on ${path}; OTLP/HTTP exports use POST`);
      void reply.code(405).header('allow', 'POST').header('content-type', 'application/json').send(body);
      return;
    }
    const body = statusBody('json', GrpcCode.NOT_FOUND, `no OTLP endpoint ${request.method} ${request.url}; use POST ${paths.join(', ')}`);
    void reply.code(404).header('content-type', 'application/json').send(body);
  });

  for (const signal of SIGNAL_NAMES) {
    app.post(SIGNALS[signal].httpPath, (request, reply) => handleExport(ingest, signal, request, reply, maxRequestBytes));
  }

  await app.listen({ host, port });
  const address = app.server.address() as AddressInfo;
  return {
    port: address.port,
    close: () => app.close(),
  };
}

async function handleExport(ingest: OtlpIngest, signal: Signal, request: FastifyRequest, reply: FastifyReply, maxRequestBytes: number): Promise<void> {
  const started = performance.now();
  const format = formatOf(request.headers['content-type']);
  if (format === undefined || !Buffer.isBuffer(request.body)) {
    sendError(reply, request, signal, { status: 415, grpcCode: GrpcCode.INVALID_ARGUMENT, outcome: 'unsupported', message: unsupportedTypeMessage(request) });
    return;
  }
  const wire = request.body;
  receivedBytesTotal.inc({ signal, transport: 'http' }, wire.length);
  const body = await decompress(wire, request.headers['content-encoding'], maxRequestBytes);
  if (!Buffer.isBuffer(body)) {
    sendError(reply, request, signal, body);
    return;
  }
  // Charge what the request really holds: the decompressed body (or the real size of a body
  // that came without Content-Length).
  const charge = charged.get(request.raw);
  if (charge !== undefined && body.length > charge.bytes) {
    if (!ingest.budget.tryAcquire(body.length - charge.bytes)) {
      refusedRequestsTotal.inc({ signal, transport: 'http' });
      sendError(reply, request, signal, {
        status: 429, grpcCode: GrpcCode.RESOURCE_EXHAUSTED, outcome: 'overloaded',
        message: `overloaded: ${ingest.budget.inUseBytes} request bytes in flight (limit ${ingest.budget.limitBytes}); retry after ${RETRY_AFTER_SECONDS} s`,
      });
      return;
    }
    charge.bytes = body.length;
  }
  const outcome = await ingest.export(signal, body, format, 'http');
  requestDurationSeconds.observe({ signal, transport: 'http' }, (performance.now() - started) / 1000);
  switch (outcome.kind) {
    case 'ok':
      requestsTotal.inc({ signal, transport: 'http', outcome: outcome.rejected > 0 ? 'partial' : 'ok' });
      await reply.code(200).header('content-type', contentTypeOf(format)).send(exportResponse(signal, format, outcome.rejected, outcome.message));
      return;
    case 'invalid':
      sendError(reply, request, signal, { status: 400, grpcCode: GrpcCode.INVALID_ARGUMENT, outcome: 'invalid', message: outcome.message });
      return;
    case 'unavailable':
      sendError(reply, request, signal, { status: 503, grpcCode: GrpcCode.UNAVAILABLE, outcome: 'unavailable', message: outcome.message });
      return;
  }
}

function sendError(reply: FastifyReply, request: FastifyRequest, signal: Signal, error: HttpError): void {
  requestsTotal.inc({ signal, transport: 'http', outcome: error.outcome });
  const format = formatOf(request.headers['content-type']) ?? 'json';
  const retryable = error.status === 429 || error.status === 503;
  const body = statusBody(format, error.grpcCode, error.message, retryable ? RETRY_AFTER_SECONDS : undefined);
  reply.code(error.status).header('content-type', contentTypeOf(format));
  if (retryable) reply.header('retry-after', String(RETRY_AFTER_SECONDS));
  void reply.send(body);
}

/** Decompresses by Content-Encoding, bounding the output (a small gzip can inflate to gigabytes). */
async function decompress(wire: Buffer, encoding: string | undefined, maxBytes: number): Promise<Buffer | HttpError> {
  const name = (encoding ?? 'identity').trim().toLowerCase();
  if (name === 'identity' || name === '') return wire;
  if (!Object.hasOwn(inflate, name)) {
    return { status: 415, grpcCode: GrpcCode.INVALID_ARGUMENT, outcome: 'unsupported', message: `Content-Encoding ${name} is not supported (use gzip, deflate, zstd or none)` };
  }
  try {
    return await inflate[name as keyof typeof inflate](wire, { maxOutputLength: maxBytes });
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      return { status: 413, grpcCode: GrpcCode.RESOURCE_EXHAUSTED, outcome: 'too_large', message: `body decompresses to more than ${maxBytes} bytes` };
    }
    return { status: 400, grpcCode: GrpcCode.INVALID_ARGUMENT, outcome: 'invalid', message: `body is not valid ${name} data: ${e.message}` };
  }
}

function formatOf(contentType: string | undefined): BodyFormat | undefined {
  if (contentType === undefined) return undefined;
  const mediaType = contentType.split(';')[0]!.trim().toLowerCase();
  if (PROTOBUF_TYPES.includes(mediaType)) return 'protobuf';
  if (JSON_TYPES.includes(mediaType)) return 'json';
  return undefined;
}

function unsupportedTypeMessage(request: FastifyRequest): string {
  const got = request.headers['content-type'];
  return `Content-Type ${got === undefined ? '(none)' : JSON.stringify(got)} is not supported; use application/x-protobuf or application/json`;
}

function signalOfUrl(url: string): Signal | undefined {
  const path = url.split('?')[0];
  for (const signal of SIGNAL_NAMES) if (SIGNALS[signal].httpPath === path) return signal;
  return undefined;
}
