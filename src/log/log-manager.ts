// The partition logs this broker leads, by (topic, partition). The broker decides what to open
// and close (and which stream backs each partition); topic metadata lives elsewhere.

import type { Stream } from '../storage/stream.ts';
import { PartitionLog, type PartitionLogOptions, type ProducerStateStore } from './partition-log.ts';

/** Options shared by every partition log; per-topic settings come with each open. */
export type SharedLogOptions = Omit<PartitionLogOptions, 'topic' | 'partition'>;

export interface LogManagerOptions {
  producerStateStore?: ProducerStateStore;
  /** Options every partition log starts from; each open() may override them (topic configs). */
  defaults?: SharedLogOptions;
}

export class LogManager {
  private readonly logs = new Map<string, Map<number, PartitionLog>>();
  private readonly opening = new Map<string, Map<number, Promise<PartitionLog>>>();
  private readonly defaults: SharedLogOptions;

  constructor(options: LogManagerOptions = {}) {
    this.defaults = { ...options.defaults, producerStateStore: options.producerStateStore ?? options.defaults?.producerStateStore };
  }

  get(topic: string, partition: number): PartitionLog | undefined {
    return this.logs.get(topic)?.get(partition);
  }

  /**
   * Opens the partition on `stream` (already opened by the caller, who owns its epoch) and
   * rebuilds its producer state. Opening a partition that is open or opening returns that log.
   */
  async open(topic: string, partition: number, stream: Stream, options: SharedLogOptions = {}): Promise<PartitionLog> {
    const open = this.get(topic, partition);
    if (open !== undefined) return open;
    const pending = this.opening.get(topic)?.get(partition);
    if (pending !== undefined) return pending;
    const opened = PartitionLog.open(stream, { ...this.defaults, ...options, topic, partition });
    setIn(this.opening, topic, partition, opened);
    try {
      const partitionLog = await opened;
      setIn(this.logs, topic, partition, partitionLog);
      return partitionLog;
    } finally {
      deleteIn(this.opening, topic, partition);
    }
  }

  /** Closes the partition's log (snapshot, then its stream). No-op when it is not open. */
  async close(topic: string, partition: number): Promise<void> {
    const pending = this.opening.get(topic)?.get(partition);
    if (pending !== undefined) await pending.catch(() => undefined);
    const partitionLog = this.get(topic, partition);
    if (partitionLog === undefined) return;
    deleteIn(this.logs, topic, partition);
    await partitionLog.close();
  }

  /** Closes every open log (broker shutdown). */
  async closeAll(): Promise<void> {
    const all = [...this.partitions()];
    this.logs.clear();
    await Promise.all(all.map((partitionLog) => partitionLog.close()));
  }

  *partitions(): IterableIterator<PartitionLog> {
    for (const byPartition of this.logs.values()) yield* byPartition.values();
  }

  get size(): number {
    let count = 0;
    for (const byPartition of this.logs.values()) count += byPartition.size;
    return count;
  }
}

function setIn<T>(map: Map<string, Map<number, T>>, topic: string, partition: number, value: T): void {
  let byPartition = map.get(topic);
  if (byPartition === undefined) {
    byPartition = new Map();
    map.set(topic, byPartition);
  }
  byPartition.set(partition, value);
}

function deleteIn<T>(map: Map<string, Map<number, T>>, topic: string, partition: number): void {
  const byPartition = map.get(topic);
  if (byPartition === undefined) return;
  byPartition.delete(partition);
  if (byPartition.size === 0) map.delete(topic);
}
