// Test-only StreamMetadata in memory, with the fencing and offset checks of the interface.
import { OffsetMismatchError, StreamFencedError } from '../../../src/storage/metadata.ts';
import type { CommittedObject, ObjectRef, StreamMetadata, StreamState } from '../../../src/storage/metadata.ts';

interface StreamRecord extends StreamState {
  status: 'open' | 'closed' | 'deleted';
  ownerNodeId: number;
}

export class StreamNotFoundError extends Error {
  constructor(streamId: number) {
    super(`stream ${streamId} does not exist`);
    this.name = 'StreamNotFoundError';
  }
}

export class MemoryStreamMetadata implements StreamMetadata {
  private readonly streams = new Map<number, StreamRecord>();
  private readonly objectsByStream = new Map<number, ObjectRef[]>();
  private readonly committed = new Map<number, CommittedObject>();
  private readonly prepared = new Set<number>();
  private nextStreamId = 1;
  private nextObjectId = 1;
  /** Test hook: the next n commitObject calls fail before changing anything. */
  failNextCommits = 0;
  commitCalls = 0;

  async createStream(): Promise<StreamState> {
    const record: StreamRecord = { streamId: this.nextStreamId++, epoch: 0, startOffset: 0, endOffset: 0, status: 'closed', ownerNodeId: -1 };
    this.streams.set(record.streamId, record);
    return toState(record);
  }

  async openStream(streamId: number, nodeId: number): Promise<StreamState> {
    const record = this.live(streamId);
    record.epoch++;
    record.status = 'open';
    record.ownerNodeId = nodeId;
    return toState(record);
  }

  async getStream(streamId: number): Promise<StreamState | undefined> {
    const record = this.streams.get(streamId);
    return record === undefined || record.status === 'deleted' ? undefined : toState(record);
  }

  async closeStream(streamId: number, epoch: number): Promise<void> {
    const record = this.fenced(streamId, epoch);
    record.status = 'closed';
    record.ownerNodeId = -1;
  }

  async trimStream(streamId: number, epoch: number, newStartOffset: number): Promise<void> {
    const record = this.fenced(streamId, epoch);
    if (newStartOffset > record.startOffset) record.startOffset = newStartOffset;
  }

  async deleteStream(streamId: number, epoch: number): Promise<void> {
    this.fenced(streamId, epoch).status = 'deleted';
  }

  async prepareObject(_ttlMs: number): Promise<number> {
    const objectId = this.nextObjectId++;
    this.prepared.add(objectId);
    return objectId;
  }

  async commitObject(object: CommittedObject): Promise<void> {
    this.commitCalls++;
    if (this.failNextCommits > 0) {
      this.failNextCommits--;
      throw new Error('injected commit failure');
    }
    if (!this.prepared.has(object.objectId)) {
      if (this.committed.has(object.objectId)) return; // idempotent
      throw new Error(`object ${object.objectId} is not prepared`);
    }
    // Check every range before changing anything: all or nothing.
    for (const range of object.ranges) {
      const record = this.fenced(range.streamId, range.epoch);
      if (record.endOffset !== range.startOffset) throw new OffsetMismatchError(range.streamId, record.endOffset, range.startOffset);
      if (range.endOffset < range.startOffset) throw new RangeError('range ends before it starts');
    }
    this.prepared.delete(object.objectId);
    this.committed.set(object.objectId, object);
    for (const range of object.ranges) {
      this.streams.get(range.streamId)!.endOffset = range.endOffset;
      if (range.endOffset === range.startOffset) continue;
      const refs = this.objectsByStream.get(range.streamId) ?? [];
      refs.push({ objectId: object.objectId, key: object.key, sizeBytes: object.sizeBytes, startOffset: range.startOffset, endOffset: range.endOffset });
      this.objectsByStream.set(range.streamId, refs);
    }
  }

  async getObjects(streamId: number, startOffset: number, endOffset: number, limit: number): Promise<ObjectRef[]> {
    const refs = this.objectsByStream.get(streamId) ?? [];
    return refs.filter((ref) => ref.endOffset > startOffset && ref.startOffset < endOffset).slice(0, limit);
  }

  /** Test view: every committed object. */
  objects(): CommittedObject[] {
    return [...this.committed.values()];
  }

  private live(streamId: number): StreamRecord {
    const record = this.streams.get(streamId);
    if (record === undefined || record.status === 'deleted') throw new StreamNotFoundError(streamId);
    return record;
  }

  private fenced(streamId: number, epoch: number): StreamRecord {
    const record = this.live(streamId);
    if (record.epoch !== epoch) throw new StreamFencedError(streamId, epoch, record.epoch);
    return record;
  }
}

function toState(record: StreamRecord): StreamState {
  return { streamId: record.streamId, epoch: record.epoch, startOffset: record.startOffset, endOffset: record.endOffset };
}
