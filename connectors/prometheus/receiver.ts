// POST /api/v1/write: one remote-write request from body to durable records.
//
//   content negotiation -> read the body (size limit, in-flight bound) -> snappy (block format)
//   -> decode and validate all of it -> produce with acks=all -> answer
//
// Answers (remote-write 1.0 and 2.0 specifications):
//   204  every record is durable. 2.0 requests also get X-Prometheus-Remote-Write-Samples-Written,
//        -Histograms-Written and -Exemplars-Written.
//   400  bad snappy, bad protobuf, invalid series (labels, symbol references, histograms); the
//        message says what and where. Senders do not retry 4xx; nothing of the request is written.
//   413  body or decompressed body over ingest.max.request.bytes.
//   415  Content-Type not application/x-protobuf, unknown proto= message, Content-Encoding not snappy.
//   429  in-flight bytes over ingest.max.inflight.bytes, with Retry-After. The 2.0 specification
//        names 429 for an overloaded receiver. Prometheus 2.x retries 429 only with
//        `queue_config: {retry_on_http_429: true}` and otherwise drops that batch: senders
//        that must not lose data set it (it honours Retry-After).
//   503  the produce failed (storage error) or Wharf is shutting down, with Retry-After: senders
//        always retry 5xx. Some records of the request may have been written: a retry writes them
//        again (at-least-once; consumers see the same samples twice).

import type http from 'node:http';
import type { BatchProducer } from '../../src/broker/in-process-producer.ts';
import { log } from '../../src/metrics/log.ts';
import { decodeMessage, decompress } from './decode-body.ts';
import { DecodePool } from './decode-pool.ts';
import { InvalidWriteError, ProtocolVersion, RejectReason, type WriteCounts } from './decoded-write.ts';
import {
  receivedBytesTotal, receivedExemplarsTotal, receivedHistogramsTotal, receivedSamplesTotal,
  refusedRequestsTotal, rejectedRequestsTotal, requestDurationSeconds,
} from './metrics.ts';

export const RETRY_AFTER_SECONDS = 1;

const V1_MESSAGE = 'prometheus.WriteRequest';
const V2_MESSAGE = 'io.prometheus.write.v2.Request';

export interface ReceiverOptions {
  producer: BatchProducer;
  topic: string;
  /** Partitions of the topic when the first request creates it. */
  partitions: number;
  /** Configs of the topic when the first request creates it (wharf.table.*). */
  topicConfigs?: Readonly<Record<string, string>>;
  /** Largest body accepted, compressed and decompressed alike. */
  maxRequestBytes: number;
  /** Bound on the bytes (compressed + decompressed) of requests being read, decoded or produced. */
  maxInflightBytes: number;
  /**
   * Worker threads that decode requests and encode their records (decode-pool.ts); 0 does it on
   * the JS thread. The first request of a topic that does not exist yet is decoded on the JS
   * thread either way (it creates the topic, and only once it decoded cleanly).
   */
  decodeThreads: number;
}

/** The in-flight byte bound shared by all requests. */
class InflightBytes {
  readonly limitBytes: number;
  usedBytes = 0;
  constructor(limitBytes: number) {
    this.limitBytes = limitBytes;
  }
  tryAcquire(bytes: number): boolean {
    if (this.usedBytes + bytes > this.limitBytes) return false;
    this.usedBytes += bytes;
    return true;
  }
  release(bytes: number): void {
    this.usedBytes -= bytes;
    if (this.usedBytes < 0) throw new Error(`remote write: in-flight bytes went negative (${this.usedBytes})`);
  }
}

class OverloadError extends Error {}

/** The sender went away before its body arrived: nobody to answer. */
class ClientGoneError extends Error {}

interface Answer {
  status: number;
  headers?: Record<string, string>;
  text?: string;
}

/** One request's share of the in-flight bound, grown as its size becomes known. */
class Reservation {
  private readonly inflight: InflightBytes;
  bytes = 0;
  constructor(inflight: InflightBytes) {
    this.inflight = inflight;
  }
  /** Makes this request hold at least `bytes`; throws OverloadError when the bound does not allow it. */
  growTo(bytes: number): void {
    if (bytes <= this.bytes) return;
    if (!this.inflight.tryAcquire(bytes - this.bytes)) throw new OverloadError();
    this.bytes = bytes;
  }
  release(): void {
    this.inflight.release(this.bytes);
    this.bytes = 0;
  }
}

export class RemoteWriteReceiver {
  private readonly options: ReceiverOptions;
  private readonly inflight: InflightBytes;
  private readonly active = new Set<Promise<void>>();
  private readonly pool: DecodePool | undefined;
  private stopping = false;

  constructor(options: ReceiverOptions) {
    this.options = options;
    this.inflight = new InflightBytes(options.maxInflightBytes);
    this.pool = options.decodeThreads > 0 ? new DecodePool(options.decodeThreads) : undefined;
  }

  /** The route handler (mounted as `POST /api/v1/write`). */
  readonly handle = (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const done = this.serve(req, res);
    this.active.add(done);
    void done.finally(() => this.active.delete(done));
    return done;
  };

  /** Refuses new requests (503) and waits for those in flight to be answered. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.active]);
    await this.pool?.close();
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const startedMs = performance.now();
    const reservation = new Reservation(this.inflight);
    let answer: Answer;
    try {
      answer = await this.write(req, reservation);
    } catch (err) {
      answer = this.failure(err);
    } finally {
      reservation.release();
    }
    if (!res.destroyed) {
      const headers: Record<string, string> = { ...answer.headers };
      if (answer.text !== undefined) headers['content-type'] = 'text/plain; charset=utf-8';
      res.writeHead(answer.status, headers);
      res.end(answer.text === undefined ? undefined : `${answer.text}\n`);
    }
    requestDurationSeconds.observe({ code: String(answer.status) }, (performance.now() - startedMs) / 1000);
  }

  private async write(req: http.IncomingMessage, reservation: Reservation): Promise<Answer> {
    if (this.stopping) {
      rejectedRequestsTotal.inc({ reason: RejectReason.UNAVAILABLE });
      return { status: 503, headers: retryAfter(), text: 'Wharf is shutting down; retry' };
    }
    const version = negotiate(req.headers);
    const { maxRequestBytes } = this.options;
    const declaredBytes = Number(req.headers['content-length'] ?? NaN);
    if (declaredBytes > maxRequestBytes) throw tooLarge(`body of ${declaredBytes} bytes`, maxRequestBytes);
    if (Number.isFinite(declaredBytes)) reservation.growTo(declaredBytes);
    const body = await readBody(req, maxRequestBytes, reservation);
    receivedBytesTotal.inc({ version }, body.length);
    const uncompressedBytes = snappyLength(body);
    if (uncompressedBytes > maxRequestBytes) throw tooLarge(`decompressed body of ${uncompressedBytes} bytes`, maxRequestBytes);
    reservation.growTo(body.length + uncompressedBytes);
    const counts = await this.decodeAndAppend(req, version, body, uncompressedBytes);
    receivedSamplesTotal.inc({ version }, counts.samples);
    receivedHistogramsTotal.inc({ version }, counts.histograms);
    receivedExemplarsTotal.inc({ version }, counts.exemplars);
    return { status: 204, headers: version === ProtocolVersion.V2 ? writtenHeaders(counts) : {} };
  }

  /** Decodes the body and appends its records (acks=all): on a decode worker when there is one and the topic exists. */
  private async decodeAndAppend(req: http.IncomingMessage, version: ProtocolVersion, body: Buffer, uncompressedBytes: number): Promise<WriteCounts> {
    const { producer, topic } = this.options;
    const layout = this.pool === undefined ? undefined : producer.layout(topic);
    if (this.pool !== undefined && layout !== undefined) {
      const encoded = await this.pool.decode(req.socket, topic, version, body, layout);
      if (encoded.batches.length > 0) await producer.appendBatches(topic, encoded.batches);
      return encoded;
    }
    const decoded = decodeMessage(version, await decompress(body, uncompressedBytes));
    if (decoded.columns.length > 0) {
      await producer.send(topic, decoded.columns, { partitions: this.options.partitions, configs: this.options.topicConfigs });
    }
    return decoded;
  }

  private failure(err: unknown): Answer {
    if (err instanceof InvalidWriteError) {
      rejectedRequestsTotal.inc({ reason: err.reason });
      log.debug({ status: err.status, err: err.message }, 'remote write rejected');
      return { status: err.status, text: err.message };
    }
    if (err instanceof OverloadError) {
      refusedRequestsTotal.inc();
      return {
        status: 429,
        headers: retryAfter(),
        text: `Wharf is at its bound of ${this.inflight.limitBytes} in-flight request bytes (ingest.max.inflight.bytes); retry after ${RETRY_AFTER_SECONDS} s`,
      };
    }
    if (err instanceof ClientGoneError) {
      rejectedRequestsTotal.inc({ reason: RejectReason.CLIENT_GONE });
      return { status: 400, text: err.message };
    }
    rejectedRequestsTotal.inc({ reason: RejectReason.UNAVAILABLE });
    const message = err instanceof Error ? err.message : String(err);
    log.warn({ err: message, topic: this.options.topic }, 'remote write failed; answering 503');
    return { status: 503, headers: retryAfter(), text: `could not write to topic ${this.options.topic}: ${message}` };
  }
}

function retryAfter(): Record<string, string> {
  return { 'retry-after': String(RETRY_AFTER_SECONDS) };
}

function writtenHeaders(counts: WriteCounts): Record<string, string> {
  return {
    'x-prometheus-remote-write-samples-written': String(counts.samples),
    'x-prometheus-remote-write-histograms-written': String(counts.histograms),
    'x-prometheus-remote-write-exemplars-written': String(counts.exemplars),
  };
}

function unsupported(message: string): InvalidWriteError {
  return new InvalidWriteError(415, RejectReason.UNSUPPORTED_MEDIA_TYPE, message);
}

function tooLarge(what: string, maxRequestBytes: number): InvalidWriteError {
  return new InvalidWriteError(413, RejectReason.TOO_LARGE, `${what} is over the limit of ${maxRequestBytes} bytes (ingest.max.request.bytes)`);
}

/** The protocol version from Content-Type (and its proto= parameter); checks Content-Encoding. */
export function negotiate(headers: http.IncomingHttpHeaders): ProtocolVersion {
  const contentType = headers['content-type'];
  const expected = `application/x-protobuf (remote write 1.0) or application/x-protobuf;proto=${V2_MESSAGE} (2.0)`;
  if (contentType === undefined) throw unsupported(`no Content-Type; send ${expected}`);
  const [mediaType, ...parameters] = contentType.split(';');
  if (mediaType!.trim().toLowerCase() !== 'application/x-protobuf') {
    throw unsupported(`Content-Type ${JSON.stringify(contentType)} is not supported; send ${expected}`);
  }
  let version: ProtocolVersion = ProtocolVersion.V1;
  for (const parameter of parameters) {
    const eq = parameter.indexOf('=');
    if (eq < 0 || parameter.slice(0, eq).trim().toLowerCase() !== 'proto') continue;
    const proto = parameter.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    if (proto === V2_MESSAGE) version = ProtocolVersion.V2;
    else if (proto !== V1_MESSAGE) throw unsupported(`proto=${proto} is not supported; send proto=${V1_MESSAGE} or proto=${V2_MESSAGE}`);
  }
  const encoding = headers['content-encoding'];
  if (encoding === undefined || encoding.trim().toLowerCase() !== 'snappy') {
    throw unsupported(`Content-Encoding ${encoding === undefined ? '(none)' : JSON.stringify(encoding)} is not supported; remote write bodies are snappy-compressed (block format): send Content-Encoding: snappy`);
  }
  return version;
}

/** Reads the whole body, failing with 413 past maxBytes and with OverloadError past the bound. */
function readBody(req: http.IncomingMessage, maxBytes: number, reservation: Reservation): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      chunks.length = 0;
      req.off('data', onData);
      req.resume(); // what is left of the body is read and dropped; the connection stays usable
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > maxBytes) return fail(tooLarge(`body of more than ${maxBytes} bytes`, maxBytes));
      try {
        reservation.growTo(total);
      } catch (err) {
        return fail(err as Error);
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => {
      if (settled) return;
      settled = true;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    });
    req.once('error', (err) => fail(new ClientGoneError(`reading the body failed: ${err.message}`)));
    req.once('close', () => {
      if (!settled) fail(new ClientGoneError('the client closed the connection before the body ended'));
    });
  });
}

const SNAPPY_FRAMED_MAGIC = Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]);

/** The uncompressed length a snappy block declares (its leading varint). */
function snappyLength(body: Buffer): number {
  if (body.length >= SNAPPY_FRAMED_MAGIC.length && body.subarray(0, SNAPPY_FRAMED_MAGIC.length).equals(SNAPPY_FRAMED_MAGIC)) {
    throw new InvalidWriteError(400, RejectReason.BAD_SNAPPY, 'the body is in snappy\'s framed (stream) format; remote write uses the block format');
  }
  let length = 0;
  for (let i = 0; i < 5 && i < body.length; i++) {
    length += (body[i]! & 0x7f) * 2 ** (7 * i);
    if (body[i]! < 0x80) return length;
  }
  throw new InvalidWriteError(400, RejectReason.BAD_SNAPPY, 'the body is not snappy-compressed (block format): no valid length preamble');
}
