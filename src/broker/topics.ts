// The topics this broker serves: their metadata (from the cluster model) and an open
// PartitionLog per partition. Single node: this broker leads every partition.

import { existsSync } from 'node:fs';
import type { ClusterModel, TopicInfo } from '../metadata/cluster-model.ts';
import { TopicExistsError, TopicNotFoundError } from '../metadata/cluster-model.ts';
import type { StreamStorage } from '../storage/stream.ts';
import { PartitionLog } from '../log/partition-log.ts';
import type { ProducerStateStore } from '../log/partition-log.ts';
import { log } from '../metrics/log.ts';

export interface OpenTopic {
  info: TopicInfo;
  /** PartitionLog by partition index. */
  partitions: PartitionLog[];
  logAppendTime: boolean;
}

/** Kafka's topic configs Wharf knows, with their defaults; others are rejected. */
export const TOPIC_CONFIG_DEFAULTS: Record<string, string> = {
  'cleanup.policy': 'delete',
  'retention.ms': '604800000',
  'retention.bytes': '-1',
  'message.timestamp.type': 'CreateTime',
  'max.message.bytes': '1048588',
  'segment.bytes': '1073741824',
  'compression.type': 'producer',
  'min.insync.replicas': '1',
  // Stream-to-table (connectors/table): whether the topic is written to an Iceberg table, with
  // which schema from schemas/tables/ ('raw' for key/value/headers), how often it commits, how
  // the table is partitioned (comma-separated Iceberg transforms; empty = the schema's default)
  // and in which namespace (empty = table.namespace of the broker).
  'wharf.table.enable': 'false',
  'wharf.table.schema': 'raw',
  'wharf.table.commit.interval.ms': '10000',
  'wharf.table.partition.by': '',
  'wharf.table.namespace': '',
};

/** Why a topic config value is refused, or undefined when it is acceptable. */
export function invalidTopicConfig(name: string, value: string): string | undefined {
  if (!(name in TOPIC_CONFIG_DEFAULTS)) return `unknown topic config ${name}`;
  if (name === 'wharf.table.enable' && value !== 'true' && value !== 'false') return `${name} must be true or false, not ${value}`;
  if (name === 'wharf.table.schema' && !(/^[a-z0-9_]+$/.test(value) && existsSync(new URL(`../../schemas/tables/${value}.json`, import.meta.url)))) {
    return `${name}: no table schema ${value} in schemas/tables/ (raw, otlp_logs, otlp_spans, otlp_metrics, prometheus_samples)`;
  }
  if (name === 'wharf.table.commit.interval.ms' && !(Number.isSafeInteger(Number(value)) && Number(value) >= 100)) {
    return `${name} must be an integer >= 100, not ${value}`;
  }
  return undefined;
}

/** How a topic created on first use is created. */
export interface TopicCreation {
  numPartitions: number;
  configs?: Readonly<Record<string, string>>;
}

export class TopicRegistry {
  private readonly model: ClusterModel;
  private readonly storage: StreamStorage;
  private readonly producerStates: ProducerStateStore;
  private readonly maxMessageBytes: number;
  private readonly topics = new Map<string, OpenTopic>();
  private readonly opening = new Map<string, Promise<OpenTopic | undefined>>();

  constructor(model: ClusterModel, storage: StreamStorage, producerStates: ProducerStateStore, maxMessageBytes: number) {
    this.model = model;
    this.maxMessageBytes = maxMessageBytes;
    this.storage = storage;
    this.producerStates = producerStates;
  }

  /** Opens every topic of the cluster model (start-up). */
  async openAll(): Promise<void> {
    for (const info of await this.model.listTopics()) await this.open(info);
  }

  get(name: string): OpenTopic | undefined {
    return this.topics.get(name);
  }

  getById(topicId: string): OpenTopic | undefined {
    for (const topic of this.topics.values()) if (topic.info.topicId === topicId) return topic;
    return undefined;
  }

  all(): OpenTopic[] {
    return [...this.topics.values()];
  }

  /**
   * The topic, auto-created with the given partition count when missing and `create` is set.
   * Concurrent calls for one name share one creation.
   */
  async ensure(name: string, create: TopicCreation | undefined): Promise<OpenTopic | undefined> {
    const open = this.topics.get(name);
    if (open) return open;
    let pending = this.opening.get(name);
    if (!pending) {
      pending = this.createOrOpen(name, create).finally(() => this.opening.delete(name));
      this.opening.set(name, pending);
    }
    return pending;
  }

  private async createOrOpen(name: string, create: TopicCreation | undefined): Promise<OpenTopic | undefined> {
    let info = await this.model.getTopic(name);
    if (!info) {
      if (!create) return undefined;
      try {
        info = await this.model.createTopic(name, { numPartitions: create.numPartitions, configs: { ...create.configs } });
        log.info({ topic: name, partitions: create.numPartitions }, 'auto-created topic');
      } catch (err) {
        if (!(err instanceof TopicExistsError)) throw err;
        info = await this.model.getTopic(name);
        if (!info) return undefined;
      }
    }
    return this.open(info);
  }

  /** Creates a topic; TopicExistsError / InvalidTopicError from the cluster model pass through. */
  async create(name: string, numPartitions: number, configs: Record<string, string>): Promise<OpenTopic> {
    const info = await this.model.createTopic(name, { numPartitions, configs });
    return this.open(info);
  }

  /**
   * Deletes a topic: it stops being served, its partitions are closed (their streams flushed and
   * released), then the cluster model marks the streams deleted, so garbage collection frees
   * their objects.
   */
  async delete(name: string): Promise<void> {
    const topic = this.topics.get(name);
    if (!topic && !(await this.model.getTopic(name))) throw new TopicNotFoundError(name);
    this.topics.delete(name);
    if (topic) await Promise.all(topic.partitions.map((p) => p.close()));
    await this.model.deleteTopic(name);
  }

  async closeAll(): Promise<void> {
    const all = [...this.topics.values()];
    this.topics.clear();
    await Promise.all(all.flatMap((t) => t.partitions.map((p) => p.close())));
  }

  private async open(info: TopicInfo): Promise<OpenTopic> {
    const existing = this.topics.get(info.name);
    if (existing) return existing;
    const logAppendTime = info.configs['message.timestamp.type'] === 'LogAppendTime';
    const partitions = await Promise.all(
      info.partitions.map(async (p) => {
        const stream = await this.storage.openStream(p.streamId);
        return PartitionLog.open(stream, {
          topic: info.name,
          partition: p.partition,
          producerStateStore: this.producerStates,
          leaderEpoch: p.leaderEpoch,
          maxMessageBytes: Number(info.configs['max.message.bytes'] ?? this.maxMessageBytes),
        });
      }),
    );
    const topic: OpenTopic = { info, partitions, logAppendTime };
    this.topics.set(info.name, topic);
    return topic;
  }
}
