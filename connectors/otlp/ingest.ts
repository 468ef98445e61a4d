// What both transports share: the in-flight byte budget, and the export of one request
// (decode, split, encode, produce with acks=all) into its outcome. The transports map the
// outcome to HTTP statuses or gRPC codes.

import type { IngestConfig } from '../../src/config/config.ts';
import type { TopicProducer } from '../../src/broker/in-process-producer.ts';
import { log } from '../../src/metrics/log.ts';
import { JsonMappingError, jsonToProto, protoToJson } from './json.ts';
import { inflightBytes, receivedItemsTotal, rejectedItemsTotal } from './metrics.ts';
import type { BodyFormat } from './responses.ts';
import { SIGNALS, type Signal } from './schema.ts';
import { splitRequest, type SplitRecord, type SplitResult } from './split.ts';
import { WireError } from './wire.ts';

export type Transport = 'http' | 'grpc';

export type ExportOutcome =
  /** Durable; `rejected` items (if any) were left out, `message` says why. */
  | { readonly kind: 'ok'; readonly rejected: number; readonly message: string }
  /** Nothing written: the request is malformed or every item in it is invalid. */
  | { readonly kind: 'invalid'; readonly message: string }
  /** Nothing acknowledged: the produce failed; the client should retry. */
  | { readonly kind: 'unavailable'; readonly message: string };

/**
 * Bytes of requests being received, decoded or produced. A request that does not fit is
 * refused (429 / RESOURCE_EXHAUSTED) instead of queued. When nothing is in flight any one
 * request is admitted, so a bound below the request size limit slows ingest but never stops it.
 */
export class InflightBudget {
  readonly limitBytes: number;
  private usedBytes = 0;

  constructor(limitBytes: number) {
    this.limitBytes = limitBytes;
  }

  tryAcquire(bytes: number): boolean {
    if (this.usedBytes > 0 && this.usedBytes + bytes > this.limitBytes) return false;
    this.usedBytes += bytes;
    inflightBytes.set(this.usedBytes);
    return true;
  }

  release(bytes: number): void {
    this.usedBytes -= bytes;
    if (this.usedBytes < 0) throw new Error(`OTLP in-flight budget released ${-this.usedBytes} bytes more than acquired`);
    inflightBytes.set(this.usedBytes);
  }

  get inUseBytes(): number {
    return this.usedBytes;
  }
}

/** Below the broker's message.max.bytes, leaving room for the record batch framing and the key. */
const RECORD_HEADROOM_BYTES = 4096;

export interface OtlpIngestOptions {
  ingest: IngestConfig;
  /** The broker's message.max.bytes: records are kept below it. */
  messageMaxBytes: number;
  /** Configs of a signal's topic when the first request creates it (wharf.table.*). */
  topicConfigs?: Readonly<Record<Signal, Readonly<Record<string, string>>>>;
}

export class OtlpIngest {
  readonly budget: InflightBudget;
  private readonly config: IngestConfig;
  private readonly producer: TopicProducer;
  private readonly maxRecordBytes: number;
  private readonly topics: Readonly<Record<Signal, string>>;
  private readonly topicConfigs: Readonly<Record<Signal, Readonly<Record<string, string>>>> | undefined;

  constructor(options: OtlpIngestOptions, producer: TopicProducer) {
    this.config = options.ingest;
    this.producer = producer;
    this.budget = new InflightBudget(options.ingest.maxInflightBytes);
    this.maxRecordBytes = options.messageMaxBytes - RECORD_HEADROOM_BYTES;
    if (this.maxRecordBytes < 1024) throw new Error(`message.max.bytes ${options.messageMaxBytes} is too small for OTLP records`);
    this.topics = { traces: options.ingest.spansTopic, metrics: options.ingest.metricsTopic, logs: options.ingest.logsTopic };
    this.topicConfigs = options.topicConfigs;
  }

  /** Exports one request body (already decompressed) of the given signal and format. */
  async export(signal: Signal, body: Buffer, format: BodyFormat, transport: Transport): Promise<ExportOutcome> {
    let protobuf = body;
    if (format === 'json') {
      try {
        protobuf = jsonToProto(SIGNALS[signal].request, JSON.parse(body.toString('utf8')));
      } catch (err) {
        if (err instanceof SyntaxError) return { kind: 'invalid', message: `body is not valid JSON: ${err.message}` };
        if (err instanceof JsonMappingError) return { kind: 'invalid', message: `body is not a valid OTLP/JSON ${SIGNALS[signal].request}: ${err.message}` };
        throw err;
      }
    }
    let split: SplitResult;
    try {
      split = splitRequest(signal, protobuf, { maxRecordBytes: this.maxRecordBytes });
    } catch (err) {
      if (err instanceof WireError) return { kind: 'invalid', message: `body is not a valid protobuf ${SIGNALS[signal].request}: ${err.message}` };
      throw err;
    }
    const rejected = split.rejectedInvalid + split.rejectedTooLarge;
    receivedItemsTotal.inc({ signal, transport }, split.itemCount);
    if (split.rejectedInvalid > 0) rejectedItemsTotal.inc({ signal, reason: 'invalid_id' }, split.rejectedInvalid);
    if (split.rejectedTooLarge > 0) rejectedItemsTotal.inc({ signal, reason: 'too_large' }, split.rejectedTooLarge);
    const noun = SIGNALS[signal].itemNoun;
    if (rejected > 0 && rejected === split.itemCount) {
      return { kind: 'invalid', message: `all ${rejected} ${noun}s rejected: ${split.rejectedMessage}` };
    }
    if (split.records.length > 0) {
      const records = this.config.otlpEncoding === 'otlp_json' ? toJsonRecords(signal, split.records) : split.records;
      try {
        await this.producer.send(this.topics[signal], records, {
          partitions: this.config.topicPartitions, configs: this.topicConfigs?.[signal],
        });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        log.warn({ signal, topic: this.topics[signal], err: message }, 'otlp produce failed');
        return { kind: 'unavailable', message: `could not write to topic ${this.topics[signal]}: ${message}` };
      }
    }
    const message = rejected > 0 ? `${rejected} ${noun}s rejected: ${split.rejectedMessage}` : '';
    return { kind: 'ok', rejected, message };
  }
}

/** The otlp_json topic encoding: the same request per record, as OTLP/JSON. */
function toJsonRecords(signal: Signal, records: SplitRecord[]): SplitRecord[] {
  const type = SIGNALS[signal].request;
  return records.map((record) => ({
    key: record.key,
    value: Buffer.from(JSON.stringify(protoToJson(type, record.value))),
  }));
}
