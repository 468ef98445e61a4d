// The in-process producer: how connectors (OTLP, remote write, tables) write into topics
// without a network hop. It behaves like a Kafka client with acks=all: records are encoded into
// v2 record batches, one per partition, and appended through the same PartitionLog path as a
// Produce request; send() resolves once every batch is durable.
//
// Partitioning follows Kafka's Java client: a keyed record goes to murmur2(key) % partitions
// (so a trace id or series identity always lands in the same partition); records without a key
// go to one partition per send(), rotating between sends.

import { ErrorCode, errorName } from '../protocol/errors.ts';
import { encodeRecordBatch, partitionForKey, recordBatchSize, recordBatchSizeBound } from '../protocol/record-encoder.ts';
import { BATCH_HEADER_BYTES } from '../protocol/records.ts';
import { TOPIC_CONFIG_DEFAULTS, type TopicRegistry } from './topics.ts';

export interface ProducerRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers?: readonly { key: string; value: Buffer | null }[];
  /** CreateTime of the record; defaults to the time of send(). */
  timestampMs?: number;
}

export interface PartitionAppend {
  partition: number;
  baseOffset: number;
  recordCount: number;
}

export interface SendResult {
  topic: string;
  appends: PartitionAppend[];
}

/** A send that failed with a Kafka error code (UNKNOWN_TOPIC_OR_PARTITION, KAFKA_STORAGE_ERROR, ...). */
export class ProduceError extends Error {
  readonly errorCode: number;
  constructor(topic: string, errorCode: number, message: string) {
    super(`produce to ${topic}: ${message} (Kafka error ${errorCode})`);
    this.name = 'ProduceError';
    this.errorCode = errorCode;
  }
}

export interface SendOptions {
  /** Partitions of the topic when this send creates it. */
  partitions?: number;
  /** Topic configs when this send creates it (e.g. the ingest topics' wharf.table.* configs). */
  configs?: Readonly<Record<string, string>>;
}

export interface TopicProducer {
  /**
   * Appends the records with acks=all semantics. Creates the topic on first use (with
   * `partitions` partitions when given, else the broker's num.partitions). Rejects with
   * ProduceError; on rejection some partitions may have been written (like a Kafka producer
   * whose request failed for some partitions), never a partial batch.
   */
  send(topic: string, records: readonly ProducerRecord[], options?: SendOptions): Promise<SendResult>;
}

/** Records per batch are bounded so that a batch stays within the topic's max.message.bytes. */
const BATCH_HEADROOM_BYTES = 1024;

export class InProcessProducer implements TopicProducer {
  private readonly topics: TopicRegistry;
  private readonly defaultPartitions: number;
  private nextUnkeyedPartition = 0;

  constructor(topics: TopicRegistry, defaultPartitions: number) {
    this.topics = topics;
    this.defaultPartitions = defaultPartitions;
  }

  async send(topic: string, records: readonly ProducerRecord[], options: SendOptions = {}): Promise<SendResult> {
    const open = this.topics.get(topic)
      ?? await this.topics.ensure(topic, { numPartitions: options.partitions ?? this.defaultPartitions, configs: options.configs });
    if (!open) throw new ProduceError(topic, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, 'topic does not exist');
    const partitionCount = open.partitions.length;
    const unkeyed = this.nextUnkeyedPartition++ % partitionCount;
    const byPartition = new Map<number, ProducerRecord[]>();
    for (const record of records) {
      const partition = record.key === null ? unkeyed : partitionForKey(record.key, partitionCount);
      let list = byPartition.get(partition);
      if (!list) byPartition.set(partition, (list = []));
      list.push(record);
    }
    const nowMs = Date.now();
    const maxBatchBytes = Number(open.info.configs['max.message.bytes'] ?? TOPIC_CONFIG_DEFAULTS['max.message.bytes']) - BATCH_HEADROOM_BYTES;
    // Every batch is encoded before any is appended, then all appends are issued together.
    const pending: { partition: number; recordCount: number; batch: Buffer }[] = [];
    for (const [partition, list] of byPartition) {
      for (const chunk of splitBySize(list, maxBatchBytes, nowMs, topic)) {
        pending.push({ partition, recordCount: chunk.length, batch: encodeRecordBatch(chunk, nowMs) });
      }
    }
    const results = await Promise.all(pending.map((p) =>
      open.partitions[p.partition]!.append(p.batch, { logAppendTime: open.logAppendTime, nowMs })));
    const appends: PartitionAppend[] = [];
    results.forEach((result, i) => {
      const p = pending[i]!;
      if (result.errorCode !== ErrorCode.NONE) {
        throw new ProduceError(topic, result.errorCode, `partition ${p.partition}: ${errorName(result.errorCode)}`);
      }
      appends.push({ partition: p.partition, baseOffset: result.baseOffset, recordCount: p.recordCount });
    });
    return { topic, appends };
  }
}

/** Groups records into runs whose batch fits maxBatchBytes; a record too large alone is refused. */
function splitBySize(records: ProducerRecord[], maxBatchBytes: number, nowMs: number, topic: string): ProducerRecord[][] {
  // The bound costs one pass without allocation; the exact size only when the bound is too big.
  if (recordBatchSizeBound(records) <= maxBatchBytes || recordBatchSize(records, nowMs) <= maxBatchBytes) return [records];
  const runs: ProducerRecord[][] = [];
  let run: ProducerRecord[] = [];
  let runBytes = 0;
  for (const record of records) {
    const bytes = recordBatchSize([record], nowMs);
    if (bytes > maxBatchBytes) {
      throw new ProduceError(topic, ErrorCode.MESSAGE_TOO_LARGE, `a record of ${bytes} bytes exceeds max.message.bytes`);
    }
    // Each record beyond the first costs its size minus the batch header, plus a little slack
    // for the larger offset and timestamp deltas.
    const added = bytes - BATCH_HEADER_BYTES + 16;
    if (run.length > 0 && runBytes + added > maxBatchBytes) {
      runs.push(run);
      run = [];
      runBytes = 0;
    }
    runBytes += run.length === 0 ? bytes : added;
    run.push(record);
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
