// The in-process reader: how connectors (the table writer) read topics without a network hop.
// It serves what a Fetch would serve, through the same PartitionLog read path: whole stored
// record batches from an offset, up to the high watermark, plus a long-poll wait for new data.

import { ErrorCode } from '../protocol/errors.ts';
import type { LogReadResult } from '../log/partition-log.ts';
import type { TopicRegistry } from './topics.ts';

export interface TopicDescription {
  name: string;
  /** Changes when a topic is deleted and created again under the same name. */
  topicId: string;
  partitionCount: number;
  /** The topic's configs as created (defaults are not filled in). */
  configs: Readonly<Record<string, string>>;
}

export type PartitionRead = LogReadResult;

export interface TopicReader {
  /** Every topic the broker serves now. */
  topics(): TopicDescription[];
  /**
   * Whole record batches from `offset` (the first holds it), at most about maxBytes (at least one
   * batch when any is available). UNKNOWN_TOPIC_OR_PARTITION for a topic that is gone;
   * OFFSET_OUT_OF_RANGE below the log start or above the high watermark.
   */
  read(topic: string, partition: number, offset: number, maxBytes: number): Promise<PartitionRead>;
  /** Resolves true once data past `offset` exists, false after timeoutMs or on abort. */
  waitForData(topic: string, partition: number, offset: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
}

export class InProcessReader implements TopicReader {
  private readonly registry: TopicRegistry;

  constructor(registry: TopicRegistry) {
    this.registry = registry;
  }

  topics(): TopicDescription[] {
    return this.registry.all().map((t) => ({
      name: t.info.name, topicId: t.info.topicId, partitionCount: t.partitions.length, configs: t.info.configs,
    }));
  }

  async read(topic: string, partition: number, offset: number, maxBytes: number): Promise<PartitionRead> {
    const log = this.registry.get(topic)?.partitions[partition];
    if (!log) return { errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, batches: [], highWatermark: -1, logStartOffset: -1 };
    return log.read(offset, maxBytes);
  }

  async waitForData(topic: string, partition: number, offset: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const log = this.registry.get(topic)?.partitions[partition];
    if (!log) return false;
    return log.waitForData(offset, timeoutMs, signal);
  }
}
