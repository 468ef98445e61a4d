// Committed offsets: an in-memory map (group → topic → partition → offset) backed by an internal
// stream (format in offset-records.ts). Every change is appended to the stream and applied to
// the map only once durable, in stream order, so the map is always what a replay of the stream
// gives. A restart replays the stream from its start offset.
//
// Snapshots keep the replay short: every `snapshotIntervalRecords` records the whole map is
// appended as one record and the stream is trimmed up to it. While the snapshot is taken new
// writes wait for the appends in flight to apply (one WAL group commit), so the snapshot holds
// every record before it.
//
// After a failed append the store refuses further writes (the stream's state is unknown and
// the map may lag it): the coordinator answers COORDINATOR_NOT_AVAILABLE until restarted.

import type { Logger } from 'pino';
import type { Stream } from '../storage/stream.ts';
import {
  decodeOffsetsBatches,
  encodeOffsetsBatch,
  type CommittedOffset,
  type GroupCommit,
  type OffsetsRecord,
  type TopicCommit,
} from './offset-records.ts';

export type { CommittedOffset, TopicCommit } from './offset-records.ts';

/** topic → partition → committed offset. */
export type GroupOffsets = Map<string, Map<number, CommittedOffset>>;

export interface OffsetStoreOptions {
  stream: Stream;
  /** Records between snapshots; 0 disables snapshots. */
  snapshotIntervalRecords: number;
  /** Bytes asked of each stream read during replay. */
  replayReadBytes: number;
  logger: Logger;
}

export class OffsetStoreUnavailableError extends Error {
  constructor(reason: string) {
    super(`offset store unavailable: ${reason}`);
    this.name = 'OffsetStoreUnavailableError';
  }
}

export class OffsetStore {
  private readonly stream: Stream;
  private readonly snapshotIntervalRecords: number;
  private readonly replayReadBytes: number;
  private readonly logger: Logger;
  private readonly groups = new Map<string, GroupOffsets>();
  private recordsSinceSnapshot = 0;
  /** Settles after the last write appended so far has been applied (or has failed). */
  private lastApplied: Promise<void> = Promise.resolve();
  /** Set while a snapshot waits for writes in flight; new writes wait for it. */
  private snapshotGate: Promise<void> | undefined;
  private snapshotTask: Promise<void> | undefined;
  private failure: string | undefined;
  private closed = false;

  constructor(options: OffsetStoreOptions) {
    this.stream = options.stream;
    this.snapshotIntervalRecords = options.snapshotIntervalRecords;
    this.replayReadBytes = options.replayReadBytes;
    this.logger = options.logger;
  }

  /** Rebuilds the map by reading the stream from its start offset to its confirmed offset. */
  async load(): Promise<void> {
    let offset = this.stream.startOffset();
    const end = this.stream.confirmedOffset();
    let records = 0;
    while (offset < end) {
      const { batches, nextOffset, lease } = await this.stream.read(offset, this.replayReadBytes);
      if (nextOffset <= offset) throw new Error(`offsets stream ${this.stream.streamId}: read at ${offset} made no progress`);
      // Decoded records hold strings and numbers, no view of the batches.
      try {
        for (const batch of batches) {
          decodeOffsetsBatches(batch, (record) => {
            this.apply(record);
            records++;
            this.recordsSinceSnapshot = record.kind === 'snapshot' ? 0 : this.recordsSinceSnapshot + 1;
          });
        }
      } finally {
        lease?.release();
      }
      offset = nextOffset;
    }
    this.logger.info({ streamId: this.stream.streamId, records, groups: this.groups.size }, 'committed offsets loaded');
  }

  get(groupId: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.groups.get(groupId)?.get(topic)?.get(partition);
  }

  /** The group's committed offsets; read-only for callers. */
  groupOffsets(groupId: string): ReadonlyMap<string, ReadonlyMap<number, CommittedOffset>> | undefined {
    return this.groups.get(groupId);
  }

  hasGroup(groupId: string): boolean {
    return this.groups.has(groupId);
  }

  groupIds(): IterableIterator<string> {
    return this.groups.keys();
  }

  /** Appends one commit (all its partitions at once); resolves once durable and applied. */
  async commit(groupId: string, topics: TopicCommit[]): Promise<void> {
    await this.write({ kind: 'commit', groupId, topics });
  }

  /** Appends a tombstone for the group's offsets; resolves once durable and applied. */
  async deleteGroup(groupId: string): Promise<void> {
    await this.write({ kind: 'deleteGroup', groupId });
  }

  /** Stops accepting writes and waits for the ones in flight (and a snapshot) to settle. */
  async close(): Promise<void> {
    this.closed = true;
    await this.lastApplied;
    await this.snapshotTask;
  }

  private async write(record: OffsetsRecord): Promise<void> {
    while (this.snapshotGate !== undefined) await this.snapshotGate;
    const applied = this.appendThen(record, () => this.apply(record));
    this.recordsSinceSnapshot++;
    if (
      this.snapshotIntervalRecords > 0 &&
      this.recordsSinceSnapshot >= this.snapshotIntervalRecords &&
      this.snapshotTask === undefined
    ) {
      this.snapshotTask = this.snapshot().finally(() => {
        this.snapshotTask = undefined;
      });
    }
    await applied;
  }

  /**
   * Encodes and appends synchronously (so appends keep call order), then runs onDurable once
   * the append is durable. Appends resolve in offset order, so onDurable calls keep it too.
   */
  private appendThen(record: OffsetsRecord, onDurable: () => void): Promise<void> {
    if (this.closed) throw new OffsetStoreUnavailableError('closed');
    if (this.failure !== undefined) throw new OffsetStoreUnavailableError(this.failure);
    const baseOffset = this.stream.nextOffset();
    const batch = encodeOffsetsBatch(record, baseOffset, Date.now());
    const applied = this.stream.append({ baseOffset, offsetCount: 1, batch }).then(onDurable, (error: unknown) => {
      this.failure ??= `append at ${baseOffset} failed: ${String(error)}`;
      this.logger.error({ err: error, streamId: this.stream.streamId, baseOffset }, 'offsets append failed');
      throw error;
    });
    this.lastApplied = applied.catch(() => undefined);
    return applied;
  }

  private async snapshot(): Promise<void> {
    let openGate: () => void = () => undefined;
    this.snapshotGate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    let written: Promise<void> | undefined;
    let snapshotOffset = 0;
    try {
      await this.lastApplied;
      if (this.closed || this.failure !== undefined) return;
      snapshotOffset = this.stream.nextOffset();
      written = this.appendThen({ kind: 'snapshot', groups: this.allGroups() }, () => undefined);
      this.recordsSinceSnapshot = 0;
    } finally {
      this.snapshotGate = undefined;
      openGate();
    }
    try {
      await written;
      await this.stream.trim(snapshotOffset);
      this.logger.debug({ streamId: this.stream.streamId, snapshotOffset }, 'offsets snapshot written');
    } catch (error) {
      this.logger.warn({ err: error, streamId: this.stream.streamId, snapshotOffset }, 'offsets snapshot failed');
    }
  }

  private allGroups(): GroupCommit[] {
    const groups: GroupCommit[] = [];
    for (const [groupId, offsets] of this.groups) {
      const topics: TopicCommit[] = [];
      for (const [topic, partitions] of offsets) {
        topics.push({ topic, partitions: [...partitions].map(([partition, o]) => ({ partition, ...o })) });
      }
      groups.push({ groupId, topics });
    }
    return groups;
  }

  private apply(record: OffsetsRecord): void {
    switch (record.kind) {
      case 'commit':
        this.applyTopics(record.groupId, record.topics);
        break;
      case 'deleteGroup':
        this.groups.delete(record.groupId);
        break;
      case 'snapshot':
        this.groups.clear();
        for (const group of record.groups) this.applyTopics(group.groupId, group.topics);
        break;
    }
  }

  private applyTopics(groupId: string, topics: readonly TopicCommit[]): void {
    let offsets = this.groups.get(groupId);
    if (offsets === undefined) {
      offsets = new Map();
      this.groups.set(groupId, offsets);
    }
    for (const { topic, partitions } of topics) {
      let byPartition = offsets.get(topic);
      if (byPartition === undefined) {
        byPartition = new Map();
        offsets.set(topic, byPartition);
      }
      for (const { partition, offset, leaderEpoch, metadata, commitTimestampMs } of partitions) {
        byPartition.set(partition, { offset, leaderEpoch, metadata, commitTimestampMs });
      }
    }
  }
}
