// The in-process producer: how connectors (OTLP, remote write, tables) write into topics
// without a network hop. It behaves like a Kafka client with acks=all: records are encoded into
// v2 record batches, one per partition (more when they would pass max.message.bytes), and
// appended through the same PartitionLog path as a Produce request; send() resolves once every
// batch is durable. Records come as objects or, from connectors that make thousands per request,
// as RecordColumns (record-encoder.ts): no object per record, values left where they lie.
//
// Partitioning follows Kafka's Java client: a keyed record goes to murmur2(key) % partitions
// (so a trace id or series identity always lands in the same partition); records without a key
// go to one partition per send(), rotating between sends.

import { ErrorCode, errorName } from '../protocol/errors.ts';
import { RecordColumns, encodeRecordBatches, type EncodableRecord } from '../protocol/record-encoder.ts';
import { freeIfOwned } from '../storage/buffers.ts';
import { TOPIC_CONFIG_DEFAULTS, type TopicRegistry } from './topics.ts';

export type ProducerRecord = EncodableRecord;

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
  send(topic: string, records: readonly ProducerRecord[] | RecordColumns, options?: SendOptions): Promise<SendResult>;
}

/** What encoding records for a topic needs to know (see encodeForPartitions). */
export interface TopicLayout {
  partitions: number;
  /** Largest batch the topic takes (its max.message.bytes less headroom). */
  maxBatchBytes: number;
  /** The partition of records without a key in this send (rotating between sends). */
  unkeyedPartition: number;
}

/** One encoded v2 record batch (base offset 0) for one partition. */
export interface PartitionBatch {
  partition: number;
  recordCount: number;
  batch: Buffer;
}

/**
 * A producer whose records can also be encoded elsewhere (a worker thread): layout() says how to
 * encode for a topic that exists, encodeForPartitions() encodes, and appendBatches() appends the
 * batches with send()'s semantics.
 */
export interface BatchProducer extends TopicProducer {
  /** The layout of the topic if it exists (undefined: send() creates it); each call takes the next unkeyed partition. */
  layout(topic: string): TopicLayout | undefined;
  appendBatches(topic: string, batches: readonly PartitionBatch[]): Promise<SendResult>;
}

/** Records per batch are bounded so that a batch stays within the topic's max.message.bytes. */
const BATCH_HEADROOM_BYTES = 1024;

export class InProcessProducer implements BatchProducer {
  private readonly topics: TopicRegistry;
  private readonly defaultPartitions: number;
  private nextUnkeyedPartition = 0;

  constructor(topics: TopicRegistry, defaultPartitions: number) {
    this.topics = topics;
    this.defaultPartitions = defaultPartitions;
  }

  async send(topic: string, records: readonly ProducerRecord[] | RecordColumns, options: SendOptions = {}): Promise<SendResult> {
    let layout = this.layout(topic);
    if (layout === undefined) {
      await this.topics.ensure(topic, { numPartitions: options.partitions ?? this.defaultPartitions, configs: options.configs });
      layout = this.layout(topic);
      if (layout === undefined) throw new ProduceError(topic, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, 'topic does not exist');
    }
    const columns = records instanceof RecordColumns ? records : RecordColumns.of(records);
    return this.appendBatches(topic, encodeForPartitions(topic, columns, layout, Date.now()));
  }

  layout(topic: string): TopicLayout | undefined {
    const open = this.topics.get(topic);
    if (!open) return undefined;
    const partitions = open.partitions.length;
    return {
      partitions,
      maxBatchBytes: Number(open.info.configs['max.message.bytes'] ?? TOPIC_CONFIG_DEFAULTS['max.message.bytes']) - BATCH_HEADROOM_BYTES,
      unkeyedPartition: this.nextUnkeyedPartition++ % partitions,
    };
  }

  async appendBatches(topic: string, batches: readonly PartitionBatch[]): Promise<SendResult> {
    const open = this.topics.get(topic);
    if (!open) throw new ProduceError(topic, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, 'topic does not exist');
    const nowMs = Date.now();
    for (const b of batches) {
      if (!(b.partition >= 0 && b.partition < open.partitions.length)) {
        throw new ProduceError(topic, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `partition ${b.partition} does not exist`);
      }
    }
    // Every batch is encoded before any is appended (a failed encoding appends nothing); all appends are issued together.
    const results = await Promise.all(batches.map((b) =>
      open.partitions[b.partition]!.append(b.batch, { logAppendTime: open.logAppendTime, nowMs })));
    const appends: PartitionAppend[] = [];
    results.forEach((result, i) => {
      const b = batches[i]!;
      if (result.errorCode !== ErrorCode.NONE) {
        throw new ProduceError(topic, result.errorCode, `partition ${b.partition}: ${errorName(result.errorCode)}`);
      }
      appends.push({ partition: b.partition, baseOffset: result.baseOffset, recordCount: b.recordCount });
    });
    // Every batch is durable and was copied into the log cache and the WAL: its memory is freed now
    // rather than left to the GC (at remote-write rates, tens of MB/s). On a failure the caller
    // keeps them (the throw above leaves them alone).
    for (const b of batches) freeIfOwned(b.batch);
    return { topic, appends };
  }
}

/**
 * Encodes the records for a topic of `layout`: keyed records to their partition, the others to
 * layout.unkeyedPartition, in batches within layout.maxBatchBytes, timestamps nowMs where the
 * records have none. Throws ProduceError(MESSAGE_TOO_LARGE) for a record that fits no batch.
 */
export function encodeForPartitions(topic: string, columns: RecordColumns, layout: TopicLayout, nowMs: number): PartitionBatch[] {
  const { partitions, maxBatchBytes } = layout;
  const { order, starts } = byPartition(columns, partitions, layout.unkeyedPartition);
  const encoded: PartitionBatch[] = [];
  for (let partition = 0; partition < partitions; partition++) {
    for (const { batch, recordCount } of encodeRecordBatches(columns, order, starts[partition]!, starts[partition + 1]!, nowMs, maxBatchBytes)) {
      if (batch.length > maxBatchBytes) {
        throw new ProduceError(topic, ErrorCode.MESSAGE_TOO_LARGE, `a record of ${batch.length} bytes exceeds max.message.bytes`);
      }
      encoded.push({ partition, recordCount, batch });
    }
  }
  return encoded;
}

/**
 * The records' indexes grouped by partition, in their order within each (a counting sort): those
 * of partition p are order[starts[p], starts[p + 1]). Keyed records go where the Java client puts
 * them, the others to `unkeyed`.
 */
function byPartition(records: RecordColumns, partitionCount: number, unkeyed: number): { order: Int32Array; starts: Int32Array } {
  const count = records.length;
  const partitionOf = new Int32Array(count);
  const starts = new Int32Array(partitionCount + 1);
  for (let i = 0; i < count; i++) {
    const hash = records.partitionHash(i);
    const partition = hash < 0 ? unkeyed : hash % partitionCount;
    partitionOf[i] = partition;
    starts[partition + 1]!++;
  }
  for (let p = 0; p < partitionCount; p++) starts[p + 1]! += starts[p]!;
  const next = starts.slice(0, partitionCount);
  const order = new Int32Array(count);
  for (let i = 0; i < count; i++) order[next[partitionOf[i]!]!++] = i;
  return { order, starts };
}
