// The cluster model: typed records stored as JSON under key prefixes of a MetadataStore, and the
// StreamMetadata that stream storage needs (src/storage/metadata.ts).
//
// Keys (root defaults to /wharf; numbers zero-padded to 16 digits so key order = number order):
//   <root>/ids/<kind>                                  {"next": n}: next id of that kind
//   <root>/topics/<name>                               TopicInfo
//   <root>/topic-ids/<uuid>                            "<name>"
//   <root>/streams/<streamId>                          StreamRecord
//   <root>/objects/<objectId>                          ObjectRecord (committed objects)
//   <root>/prepared/<objectId>                         PreparedObject (reserved, not committed)
//   <root>/stream-objects/<streamId>/<startOffset>     ObjectRef: per-stream object index
//   <root>/garbage/<objectId>                          GarbageObject: out of metadata (compacted
//                                                      or dead); its data is deleted after a delay
//   <root>/producer-snapshots/<topic>/<partition>      producer state snapshot (JSON)
//
// Every change is one transaction guarded by compare-and-swap on the modRevision of what it
// read; a lost race re-reads and tries again (bounded by maxCasRetries).

import { randomUUID } from 'node:crypto';
import { OffsetMismatchError, StreamFencedError } from '../storage/metadata.ts';
import type { CommittedObject, StreamMetadata, StreamRange, StreamState } from '../storage/metadata.ts';
import { CompactionConflictError } from '../storage/objects/compaction.ts';
import type { CompactionMetadata, ObjectSwap, StreamView } from '../storage/objects/compaction.ts';
import type { GarbageObject, GcMetadata } from '../storage/objects/gc.ts';
import type { RecordedObjectRef, RecordedRange } from '../storage/upload.ts';
import { decodeJson, encodeJson } from './store.ts';
import type { Compare, KeyValue, MetadataStore, TxnOp } from './store.ts';

export { CompactionConflictError, OffsetMismatchError, StreamFencedError };
export type { GarbageObject };

export interface PartitionInfo {
  partition: number;
  streamId: number;
  leaderEpoch: number;
  /** Broker leading the partition; -1 until the cluster layer assigns one. */
  leaderId: number;
}

export interface TopicInfo {
  name: string;
  /** A UUID in its usual text form (16 bytes as hex); topicIdBytes gives the 16 bytes. */
  topicId: string;
  partitions: PartitionInfo[];
  configs: Record<string, string>;
}

export interface CreateTopicOptions {
  numPartitions: number;
  configs?: Record<string, string>;
}

export const StreamStatus = { closed: 'closed', open: 'open', deleted: 'deleted' } as const;
export type StreamStatus = (typeof StreamStatus)[keyof typeof StreamStatus];

export interface StreamRecord extends StreamState {
  status: StreamStatus;
  /** Node that opened the stream last; -1 when closed or never opened. */
  ownerNodeId: number;
}

export interface ObjectRecord extends CommittedObject {
  /** With their stats (bytes, largest timestamp) when the writer recorded them. */
  ranges: RecordedRange[];
  committedAtMs: number;
}

export interface PreparedObject {
  objectId: number;
  /** Wall-clock time (ms) after which an uncommitted object is garbage. */
  deadlineMs: number;
}

export const IdKind = { stream: 'stream', object: 'object', producer: 'producer' } as const;
export type IdKind = (typeof IdKind)[keyof typeof IdKind];

export interface ClusterModelOptions {
  /** Key prefix of the whole model, without a trailing slash. Default '/wharf'. */
  root?: string;
  /** Producer ids taken from the store per allocation. Default 1000. */
  producerIdBlockSize?: number;
  /** Attempts of one compare-and-swap change before ConcurrentUpdateError. Default 64. */
  maxCasRetries?: number;
  /** Wall clock, for prepared-object deadlines. Default Date.now. */
  nowMs?: () => number;
}

// ---- errors ----

export class TopicExistsError extends Error {
  readonly topic: string;
  constructor(topic: string) {
    super(`topic ${topic} already exists`);
    this.name = 'TopicExistsError';
    this.topic = topic;
  }
}

export class TopicNotFoundError extends Error {
  readonly topic: string;
  constructor(topic: string) {
    super(`topic ${topic} does not exist`);
    this.name = 'TopicNotFoundError';
    this.topic = topic;
  }
}

export class InvalidTopicError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidTopicError';
  }
}

export class StreamNotFoundError extends Error {
  readonly streamId: number;
  constructor(streamId: number) {
    super(`stream ${streamId} does not exist or is deleted`);
    this.name = 'StreamNotFoundError';
    this.streamId = streamId;
  }
}

/** commitObject of an id that was never prepared, or whose reservation was discarded (GC). */
export class ObjectNotPreparedError extends Error {
  readonly objectId: number;
  constructor(objectId: number) {
    super(`object ${objectId} is not prepared (expired and discarded, or never reserved)`);
    this.name = 'ObjectNotPreparedError';
    this.objectId = objectId;
  }
}

export class ConcurrentUpdateError extends Error {
  constructor(what: string, attempts: number) {
    super(`${what}: still conflicting after ${attempts} attempts`);
    this.name = 'ConcurrentUpdateError';
  }
}

const RETRY: unique symbol = Symbol('retry');
type Attempt<T> = Promise<T | typeof RETRY>;

const MAX_TOPIC_NAME_LENGTH = 249;
const TOPIC_NAME = /^[a-zA-Z0-9._-]+$/;

export class ClusterModel implements StreamMetadata, CompactionMetadata, GcMetadata {
  readonly store: MetadataStore;
  private readonly root: string;
  private readonly producerIdBlockSize: number;
  private readonly maxCasRetries: number;
  private readonly nowMs: () => number;
  private producerIds: { next: number; end: number } = { next: 0, end: 0 };
  private producerIdRefill: Promise<void> | undefined;

  constructor(store: MetadataStore, options: ClusterModelOptions = {}) {
    this.store = store;
    this.root = options.root ?? '/wharf';
    this.producerIdBlockSize = options.producerIdBlockSize ?? 1000;
    this.maxCasRetries = options.maxCasRetries ?? 64;
    this.nowMs = options.nowMs ?? Date.now;
  }

  // ---- ids ----

  /** Reserves count consecutive ids of a kind; returns the first. */
  async allocateIds(kind: string, count: number): Promise<number> {
    assertPositiveInteger(count, 'id count');
    return this.retrying(`allocate ${kind} ids`, async () => {
      const counter = await this.readCounter(kind);
      const result = await this.store.txn({ compare: [counter.compare], success: [this.counterPut(kind, counter.next + count)] });
      return result.succeeded ? counter.next : RETRY;
    });
  }

  /** A producer id, taken from a block reserved in the store (the rest of a block is lost on restart). */
  async allocateProducerId(): Promise<number> {
    while (this.producerIds.next >= this.producerIds.end) {
      this.producerIdRefill ??= this.refillProducerIds().finally(() => {
        this.producerIdRefill = undefined;
      });
      await this.producerIdRefill;
    }
    return this.producerIds.next++;
  }

  private async refillProducerIds(): Promise<void> {
    const first = await this.allocateIds(IdKind.producer, this.producerIdBlockSize);
    this.producerIds = { next: first, end: first + this.producerIdBlockSize };
  }

  // ---- topics ----

  /** Creates a topic and one stream per partition, atomically. TopicExistsError if taken. */
  async createTopic(name: string, options: CreateTopicOptions): Promise<TopicInfo> {
    validateTopicName(name);
    const numPartitions = options.numPartitions;
    const maxPartitions = this.store.limits.maxTxnOps - 3;
    if (!Number.isSafeInteger(numPartitions) || numPartitions < 1 || numPartitions > maxPartitions) {
      throw new InvalidTopicError(`topic ${name}: partition count must be within 1..${maxPartitions}, got ${numPartitions}`);
    }
    const topicKey = this.topicKey(name);
    return this.retrying(`create topic ${name}`, async () => {
      if ((await this.store.get(topicKey)) !== undefined) throw new TopicExistsError(name);
      const counter = await this.readCounter(IdKind.stream);
      const topic: TopicInfo = {
        name,
        topicId: randomUUID(),
        partitions: Array.from({ length: numPartitions }, (_, partition) => ({
          partition,
          streamId: counter.next + partition,
          leaderEpoch: 0,
          leaderId: -1,
        })),
        configs: { ...options.configs },
      };
      const success: TxnOp[] = [
        this.counterPut(IdKind.stream, counter.next + numPartitions),
        ...topic.partitions.map((p) => this.streamPut(newStreamRecord(p.streamId))),
        { type: 'put', key: topicKey, value: encodeJson(topic) },
        { type: 'put', key: this.topicIdKey(topic.topicId), value: encodeJson(name) },
      ];
      const compare: Compare[] = [{ key: topicKey, target: 'version', op: '=', value: 0 }, counter.compare];
      const result = await this.store.txn({ compare, success, failure: [{ type: 'get', key: topicKey }] });
      if (result.succeeded) return topic;
      const existing = result.responses[0];
      if (existing?.type === 'get' && existing.kv !== undefined) throw new TopicExistsError(name);
      return RETRY;
    });
  }

  async getTopic(name: string): Promise<TopicInfo | undefined> {
    const kv = await this.store.get(this.topicKey(name));
    return kv === undefined ? undefined : decodeJson<TopicInfo>(kv.value);
  }

  async getTopicById(topicId: string): Promise<TopicInfo | undefined> {
    const kv = await this.store.get(this.topicIdKey(topicId));
    return kv === undefined ? undefined : this.getTopic(decodeJson<string>(kv.value));
  }

  /** Every topic, by name. */
  async listTopics(): Promise<TopicInfo[]> {
    const { kvs } = await this.store.range(`${this.root}/topics/`);
    return kvs.map((kv) => decodeJson<TopicInfo>(kv.value));
  }

  /** Deletes a topic: its streams are marked deleted (their objects become garbage). */
  async deleteTopic(name: string): Promise<TopicInfo> {
    const topicKey = this.topicKey(name);
    return this.retrying(`delete topic ${name}`, async () => {
      const topicKv = await this.store.get(topicKey);
      if (topicKv === undefined) throw new TopicNotFoundError(name);
      const topic = decodeJson<TopicInfo>(topicKv.value);
      const streamKvs = await Promise.all(topic.partitions.map((p) => this.store.get(this.streamKey(p.streamId))));
      const compare: Compare[] = [modRevisionIs(topicKv)];
      const success: TxnOp[] = [
        { type: 'delete', key: topicKey },
        { type: 'delete', key: this.topicIdKey(topic.topicId) },
        { type: 'delete', key: `${this.root}/producer-snapshots/${name}/`, prefix: true },
      ];
      for (const kv of streamKvs) {
        if (kv === undefined) continue;
        compare.push(modRevisionIs(kv));
        success.push(this.streamPut({ ...decodeJson<StreamRecord>(kv.value), status: StreamStatus.deleted, ownerNodeId: -1 }));
      }
      const result = await this.store.txn({ compare, success });
      return result.succeeded ? topic : RETRY;
    });
  }

  /** Sets configs (string values) and removes them (null values); returns the topic after. */
  async updateTopicConfigs(name: string, changes: Record<string, string | null>): Promise<TopicInfo> {
    const topicKey = this.topicKey(name);
    return this.retrying(`update configs of topic ${name}`, async () => {
      const kv = await this.store.get(topicKey);
      if (kv === undefined) throw new TopicNotFoundError(name);
      const topic = decodeJson<TopicInfo>(kv.value);
      const configs = { ...topic.configs };
      for (const [config, value] of Object.entries(changes)) {
        if (value === null) delete configs[config];
        else configs[config] = value;
      }
      const updated: TopicInfo = { ...topic, configs };
      const result = await this.store.txn({
        compare: [modRevisionIs(kv)],
        success: [{ type: 'put', key: topicKey, value: encodeJson(updated) }],
      });
      return result.succeeded ? updated : RETRY;
    });
  }

  // ---- streams (StreamMetadata) ----

  async createStream(): Promise<StreamState> {
    return this.retrying('create stream', async () => {
      const counter = await this.readCounter(IdKind.stream);
      const record = newStreamRecord(counter.next);
      const result = await this.store.txn({
        compare: [counter.compare],
        success: [this.counterPut(IdKind.stream, counter.next + 1), this.streamPut(record)],
      });
      return result.succeeded ? toStreamState(record) : RETRY;
    });
  }

  async openStream(streamId: number, nodeId: number): Promise<StreamState> {
    return this.retrying(`open stream ${streamId}`, async () => {
      const { kv, record } = await this.readLiveStream(streamId);
      const opened: StreamRecord = { ...record, epoch: record.epoch + 1, status: StreamStatus.open, ownerNodeId: nodeId };
      const result = await this.store.txn({ compare: [modRevisionIs(kv)], success: [this.streamPut(opened)] });
      return result.succeeded ? toStreamState(opened) : RETRY;
    });
  }

  async getStream(streamId: number): Promise<StreamState | undefined> {
    const record = await this.getStreamRecord(streamId);
    return record === undefined || record.status === StreamStatus.deleted ? undefined : toStreamState(record);
  }

  /** The stored record, deleted streams included. */
  async getStreamRecord(streamId: number): Promise<StreamRecord | undefined> {
    const kv = await this.store.get(this.streamKey(streamId));
    return kv === undefined ? undefined : decodeJson<StreamRecord>(kv.value);
  }

  /** Every stream record (deleted ones too), by id. */
  async listStreams(): Promise<StreamRecord[]> {
    const { kvs } = await this.store.range(`${this.root}/streams/`);
    return kvs.map((kv) => decodeJson<StreamRecord>(kv.value));
  }

  async closeStream(streamId: number, epoch: number): Promise<void> {
    await this.updateStreamFenced(streamId, epoch, (record) => ({ ...record, status: StreamStatus.closed, ownerNodeId: -1 }));
  }

  /** Moves the start offset forward; a start at or before the current one changes nothing. */
  async trimStream(streamId: number, epoch: number, newStartOffset: number): Promise<void> {
    assertOffset(newStartOffset);
    await this.updateStreamFenced(streamId, epoch, (record) =>
      newStartOffset <= record.startOffset ? undefined : { ...record, startOffset: newStartOffset },
    );
  }

  async deleteStream(streamId: number, epoch: number): Promise<void> {
    await this.updateStreamFenced(streamId, epoch, (record) => ({ ...record, status: StreamStatus.deleted, ownerNodeId: -1 }));
  }

  // ---- objects (StreamMetadata) ----

  async prepareObject(ttlMs: number): Promise<number> {
    assertPositiveInteger(ttlMs, 'prepared object TTL');
    return this.retrying('prepare object', async () => {
      const counter = await this.readCounter(IdKind.object);
      const prepared: PreparedObject = { objectId: counter.next, deadlineMs: this.nowMs() + ttlMs };
      const result = await this.store.txn({
        compare: [counter.compare],
        success: [
          this.counterPut(IdKind.object, counter.next + 1),
          { type: 'put', key: this.preparedKey(prepared.objectId), value: encodeJson(prepared) },
        ],
      });
      return result.succeeded ? prepared.objectId : RETRY;
    });
  }

  /**
   * One transaction: compares the prepared reservation and every stream's record (epoch and
   * endOffset through its modRevision), then removes the reservation, puts the object, its
   * per-stream index keys and the advanced streams. Committing the same object again is a no-op.
   */
  async commitObject(object: CommittedObject): Promise<void> {
    validateRanges(object);
    await this.retrying(`commit object ${object.objectId}`, async () => {
      const preparedKv = await this.store.get(this.preparedKey(object.objectId));
      if (preparedKv === undefined) return this.checkAlreadyCommitted(object);
      const streamKvs = await Promise.all(object.ranges.map((range) => this.store.get(this.streamKey(range.streamId))));
      const compare: Compare[] = [modRevisionIs(preparedKv)];
      const success: TxnOp[] = [
        { type: 'delete', key: this.preparedKey(object.objectId) },
        { type: 'put', key: this.objectKey(object.objectId), value: encodeJson(toObjectRecord(object, this.nowMs())) },
      ];
      object.ranges.forEach((range, i) => {
        const kv = streamKvs[i];
        const record = checkCommittable(range, kv);
        compare.push(modRevisionIs(kv as KeyValue));
        success.push(this.streamPut({ ...record, endOffset: range.endOffset }));
        if (range.endOffset > range.startOffset) success.push(this.indexPut(object, range));
      });
      const result = await this.store.txn({ compare, success });
      return result.succeeded ? undefined : RETRY;
    });
  }

  /** Objects holding offsets of [startOffset, endOffset) of the stream, in offset order. */
  async getObjects(streamId: number, startOffset: number, endOffset: number, limit: number): Promise<RecordedObjectRef[]> {
    if (endOffset <= startOffset || limit <= 0) return [];
    const prefix = this.streamObjectsPrefix(streamId);
    // The object holding startOffset is the last one starting at or before it.
    const before = await this.store.range(prefix, {
      endKey: `${prefix}${pad(startOffset)}\u0000`,
      order: 'descend',
      limit: 1,
    });
    let startKey = `${prefix}${pad(startOffset)}`;
    const holder = before.kvs[0];
    if (holder !== undefined && decodeJson<RecordedObjectRef>(holder.value).endOffset > startOffset) startKey = holder.key;
    const { kvs } = await this.store.range(prefix, { startKey, endKey: `${prefix}${pad(endOffset)}`, limit });
    return kvs.map((kv) => decodeJson<RecordedObjectRef>(kv.value));
  }

  async getObject(objectId: number): Promise<ObjectRecord | undefined> {
    const kv = await this.store.get(this.objectKey(objectId));
    return kv === undefined ? undefined : decodeJson<ObjectRecord>(kv.value);
  }

  /** Prepared objects whose deadline is at or before nowMs: candidates for garbage collection. */
  async listExpiredPreparedObjects(nowMs: number): Promise<PreparedObject[]> {
    const { kvs } = await this.store.range(`${this.root}/prepared/`);
    return kvs.map((kv) => decodeJson<PreparedObject>(kv.value)).filter((p) => p.deadlineMs <= nowMs);
  }

  /**
   * Drops a reservation so that a late commitObject fails. True when this call dropped it: only
   * then may the collector delete the object's data.
   */
  async discardPreparedObject(objectId: number): Promise<boolean> {
    const key = this.preparedKey(objectId);
    const result = await this.store.txn({
      compare: [{ key, target: 'version', op: '>', value: 0 }],
      success: [{ type: 'delete', key }],
    });
    return result.succeeded;
  }

  // ---- compaction and garbage collection (CompactionMetadata, GcMetadata) ----

  maxTxnOps(): number {
    return this.store.limits.maxTxnOps;
  }

  /** Committed objects with ids above afterObjectId (-1: from the first), in id order. */
  async listObjects(afterObjectId: number, limit: number): Promise<ObjectRecord[]> {
    const prefix = `${this.root}/objects/`;
    const startKey = afterObjectId < 0 ? prefix : this.objectKey(afterObjectId + 1);
    const { kvs } = await this.store.range(prefix, { startKey, limit });
    return kvs.map((kv) => decodeJson<ObjectRecord>(kv.value));
  }

  /** Every stream with its offsets, deleted ones included. */
  async listStreamStates(): Promise<StreamView[]> {
    return (await this.listStreams()).map((record) => ({ ...toStreamState(record), deleted: record.status === StreamStatus.deleted }));
  }

  /**
   * Swaps committed objects for prepared ones in one transaction (see ObjectSwap). Compares the
   * removed objects, the added objects' reservations and every stream involved by modRevision;
   * a commit that only advanced a stream's end meanwhile makes it re-read and try again, while a
   * trim, a new epoch or a deletion of a stream with added data, or a removed object gone, aborts
   * with CompactionConflictError. Refuses (Error) a swap that would drop live offsets.
   */
  async compactObjects(swap: ObjectSwap): Promise<void> {
    const removedIds = [...new Set(swap.removedObjectIds)];
    if (removedIds.length === 0 || removedIds.length !== swap.removedObjectIds.length) {
      throw new RangeError('compactObjects: removed object ids must be distinct and not empty');
    }
    for (const object of swap.addedObjects) validateRanges(object);
    await this.retrying(`compact objects ${removedIds.join(',')}`, async () => {
      const removedKvs = await Promise.all(removedIds.map((id) => this.store.get(this.objectKey(id))));
      const preparedKvs = await Promise.all(swap.addedObjects.map((o) => this.store.get(this.preparedKey(o.objectId))));
      removedKvs.forEach((kv, i) => {
        if (kv === undefined) throw new CompactionConflictError(`object ${removedIds[i]} is no longer committed`);
      });
      preparedKvs.forEach((kv, i) => {
        if (kv === undefined) throw new CompactionConflictError(`object ${swap.addedObjects[i]!.objectId} is no longer prepared`);
      });
      const removed = removedKvs.map((kv) => decodeJson<ObjectRecord>((kv as KeyValue).value));
      const streamIds = new Set([...removed, ...swap.addedObjects].flatMap((o) => o.ranges.map((r) => r.streamId)));
      const streamKvs = new Map(await Promise.all([...streamIds].map(async (id) => [id, await this.store.get(this.streamKey(id))] as const)));
      checkSwap(removed, swap, streamKvs);
      const compare: Compare[] = [...removedKvs, ...preparedKvs].map((kv) => modRevisionIs(kv as KeyValue));
      for (const [streamId, kv] of streamKvs) {
        compare.push(kv === undefined ? { key: this.streamKey(streamId), target: 'version', op: '=', value: 0 } : modRevisionIs(kv));
      }
      const success = this.swapOps(removed, swap);
      if (success.length > this.maxTxnOps() || compare.length > this.maxTxnOps()) {
        throw new RangeError(`compactObjects: ${success.length} ops and ${compare.length} compares exceed one transaction`);
      }
      const result = await this.store.txn({ compare, success });
      return result.succeeded ? undefined : RETRY;
    });
  }

  /**
   * Takes the objects holding only trimmed or deleted data out of metadata, in as few
   * transactions as fit; objects still holding live data, or gone, are skipped. Returns the ids
   * taken out (now garbage due at deleteAfterMs).
   */
  async dropDeadObjects(objectIds: number[], deleteAfterMs: number): Promise<number[]> {
    const dropped: number[] = [];
    let pending = [...new Set(objectIds)];
    while (pending.length > 0) {
      const step = await this.retrying('drop dead objects', () => this.dropSomeDeadObjects(pending, deleteAfterMs));
      dropped.push(...step.dropped);
      pending = step.rest;
    }
    return dropped;
  }

  async listGarbageObjects(nowMs: number, limit: number): Promise<GarbageObject[]> {
    const { kvs } = await this.store.range(`${this.root}/garbage/`);
    return kvs
      .map((kv) => decodeJson<GarbageObject>(kv.value))
      .filter((g) => g.deleteAfterMs <= nowMs)
      .slice(0, limit);
  }

  /** Drops garbage records (after their data was deleted). */
  async forgetGarbageObjects(objectIds: number[]): Promise<void> {
    const step = this.maxTxnOps();
    for (let i = 0; i < objectIds.length; i += step) {
      const success: TxnOp[] = objectIds.slice(i, i + step).map((id) => ({ type: 'delete', key: this.garbageKey(id) }));
      await this.store.txn({ compare: [], success });
    }
  }

  /** Ids named by any object record: committed, prepared or garbage. */
  async knownObjectIds(): Promise<Set<number>> {
    const ids = new Set<number>();
    for (const kind of ['objects', 'prepared', 'garbage']) {
      const prefix = `${this.root}/${kind}/`;
      const { kvs } = await this.store.range(prefix);
      for (const kv of kvs) ids.add(Number(kv.key.slice(prefix.length)));
    }
    return ids;
  }

  /** One transaction's worth of dropDeadObjects: as many dead objects of ids as fit. */
  private async dropSomeDeadObjects(ids: number[], deleteAfterMs: number): Attempt<{ dropped: number[]; rest: number[] }> {
    const limit = this.maxTxnOps();
    const streams = new Map<number, StreamRecord | undefined>();
    const compare: Compare[] = [];
    const success: TxnOp[] = [];
    const dropped: number[] = [];
    let i = 0;
    for (; i < ids.length; i++) {
      const kv = await this.store.get(this.objectKey(ids[i]!));
      if (kv === undefined) continue;
      const record = decodeJson<ObjectRecord>(kv.value);
      if (!(await this.holdsOnlyDeadData(record, streams))) continue;
      const ops = this.garbageOps(record, deleteAfterMs);
      if (ops.length > limit) throw new RangeError(`object ${record.objectId}: ${ops.length} ops do not fit one transaction`);
      if (success.length + ops.length > limit || compare.length >= limit) break;
      compare.push(modRevisionIs(kv));
      success.push(...ops);
      dropped.push(record.objectId);
    }
    if (dropped.length === 0) return { dropped, rest: ids.slice(i) };
    const result = await this.store.txn({ compare, success });
    return result.succeeded ? { dropped, rest: ids.slice(i) } : RETRY;
  }

  /** Every range is below its stream's start, or its stream is deleted or gone (both only grow). */
  private async holdsOnlyDeadData(record: ObjectRecord, streams: Map<number, StreamRecord | undefined>): Promise<boolean> {
    for (const range of record.ranges) {
      if (!streams.has(range.streamId)) streams.set(range.streamId, await this.getStreamRecord(range.streamId));
      const stream = streams.get(range.streamId);
      if (stream !== undefined && stream.status !== StreamStatus.deleted && range.endOffset > stream.startOffset) return false;
    }
    return true;
  }

  /** Takes a committed object out: its record and index entries go, a garbage record comes. */
  private garbageOps(record: ObjectRecord, deleteAfterMs: number, keepIndexKeys: ReadonlySet<string> = new Set()): TxnOp[] {
    const garbage: GarbageObject = { objectId: record.objectId, key: record.key, sizeBytes: record.sizeBytes, deleteAfterMs };
    const ops: TxnOp[] = [
      { type: 'delete', key: this.objectKey(record.objectId) },
      { type: 'put', key: this.garbageKey(record.objectId), value: encodeJson(garbage) },
    ];
    for (const range of record.ranges) {
      if (range.endOffset > range.startOffset && !keepIndexKeys.has(this.indexKey(range))) ops.push({ type: 'delete', key: this.indexKey(range) });
    }
    return ops;
  }

  /** The success ops of a swap: removed objects to garbage, added ones committed and indexed. */
  private swapOps(removed: readonly ObjectRecord[], swap: ObjectSwap): TxnOp[] {
    const addedIndexKeys = new Set(swap.addedObjects.flatMap((o) => o.ranges.filter((r) => r.endOffset > r.startOffset).map((r) => this.indexKey(r))));
    const ops = removed.flatMap((record) => this.garbageOps(record, swap.deleteAfterMs, addedIndexKeys));
    const now = this.nowMs();
    for (const object of swap.addedObjects) {
      ops.push({ type: 'delete', key: this.preparedKey(object.objectId) });
      ops.push({ type: 'put', key: this.objectKey(object.objectId), value: encodeJson(toObjectRecord(object, now)) });
      for (const range of object.ranges) if (range.endOffset > range.startOffset) ops.push(this.indexPut(object, range));
    }
    return ops;
  }

  // ---- generic JSON values and producer snapshots ----

  /** Reads <root>/<path> as JSON, with the modRevision to pass back to putJson. */
  async getJson<T>(path: string): Promise<{ value: T; modRevision: number } | undefined> {
    const kv = await this.store.get(this.pathKey(path));
    return kv === undefined ? undefined : { value: decodeJson<T>(kv.value), modRevision: kv.modRevision };
  }

  /**
   * Writes <root>/<path> as JSON. With expectedModRevision, only if the key is still at that
   * revision (0: only if it does not exist). Returns false when that check failed.
   */
  async putJson(path: string, value: unknown, options: { expectedModRevision?: number } = {}): Promise<boolean> {
    const key = this.pathKey(path);
    const compare: Compare[] =
      options.expectedModRevision === undefined ? [] : [{ key, target: 'modRevision', op: '=', value: options.expectedModRevision }];
    const result = await this.store.txn({ compare, success: [{ type: 'put', key, value: encodeJson(value) }] });
    return result.succeeded;
  }

  /** Deletes <root>/<path>, with the same optional check as putJson. */
  async deleteJson(path: string, options: { expectedModRevision?: number } = {}): Promise<boolean> {
    const key = this.pathKey(path);
    const compare: Compare[] =
      options.expectedModRevision === undefined ? [] : [{ key, target: 'modRevision', op: '=', value: options.expectedModRevision }];
    const result = await this.store.txn({ compare, success: [{ type: 'delete', key }] });
    return result.succeeded;
  }

  async saveProducerSnapshot(topic: string, partition: number, snapshot: unknown): Promise<void> {
    await this.store.put(this.producerSnapshotKey(topic, partition), encodeJson(snapshot));
  }

  async loadProducerSnapshot<T = unknown>(topic: string, partition: number): Promise<T | undefined> {
    const kv = await this.store.get(this.producerSnapshotKey(topic, partition));
    return kv === undefined ? undefined : decodeJson<T>(kv.value);
  }

  // ---- internals ----

  private async retrying<T>(what: string, attempt: () => Attempt<T>): Promise<T> {
    for (let i = 0; i < this.maxCasRetries; i++) {
      const result = await attempt();
      if (result !== RETRY) return result;
    }
    throw new ConcurrentUpdateError(what, this.maxCasRetries);
  }

  private async readCounter(kind: string): Promise<{ next: number; compare: Compare }> {
    const key = this.idKey(kind);
    const kv = await this.store.get(key);
    if (kv === undefined) return { next: 0, compare: { key, target: 'version', op: '=', value: 0 } };
    return { next: decodeJson<{ next: number }>(kv.value).next, compare: modRevisionIs(kv) };
  }

  private counterPut(kind: string, next: number): TxnOp {
    return { type: 'put', key: this.idKey(kind), value: encodeJson({ next }) };
  }

  private async readLiveStream(streamId: number): Promise<{ kv: KeyValue; record: StreamRecord }> {
    const kv = await this.store.get(this.streamKey(streamId));
    if (kv === undefined) throw new StreamNotFoundError(streamId);
    const record = decodeJson<StreamRecord>(kv.value);
    if (record.status === StreamStatus.deleted) throw new StreamNotFoundError(streamId);
    return { kv, record };
  }

  /** Applies change to a live stream whose epoch is `epoch`; change returns undefined for no-op. */
  private async updateStreamFenced(
    streamId: number,
    epoch: number,
    change: (record: StreamRecord) => StreamRecord | undefined,
  ): Promise<void> {
    await this.retrying(`update stream ${streamId}`, async () => {
      const { kv, record } = await this.readLiveStream(streamId);
      if (record.epoch !== epoch) throw new StreamFencedError(streamId, epoch, record.epoch);
      const changed = change(record);
      if (changed === undefined) return undefined;
      const result = await this.store.txn({ compare: [modRevisionIs(kv)], success: [this.streamPut(changed)] });
      return result.succeeded ? undefined : RETRY;
    });
  }

  /** A commit whose reservation is gone succeeds only if it is a retry of a finished commit. */
  private async checkAlreadyCommitted(object: CommittedObject): Promise<undefined> {
    const committed = await this.getObject(object.objectId);
    if (committed === undefined || committed.key !== object.key || !sameRanges(committed.ranges, object.ranges)) {
      throw new ObjectNotPreparedError(object.objectId);
    }
    return undefined;
  }

  private streamPut(record: StreamRecord): TxnOp {
    return { type: 'put', key: this.streamKey(record.streamId), value: encodeJson(record) };
  }

  private indexPut(object: CommittedObject, range: RecordedRange): TxnOp {
    const ref: RecordedObjectRef = {
      objectId: object.objectId,
      key: object.key,
      sizeBytes: object.sizeBytes,
      startOffset: range.startOffset,
      endOffset: range.endOffset,
    };
    if (range.rangeBytes !== undefined) ref.rangeBytes = range.rangeBytes;
    if (range.maxTimestampMs !== undefined) ref.maxTimestampMs = range.maxTimestampMs;
    return { type: 'put', key: this.indexKey(range), value: encodeJson(ref) };
  }

  private indexKey(range: StreamRange): string {
    return `${this.streamObjectsPrefix(range.streamId)}${pad(range.startOffset)}`;
  }

  private idKey(kind: string): string {
    return `${this.root}/ids/${kind}`;
  }

  private topicKey(name: string): string {
    return `${this.root}/topics/${name}`;
  }

  private topicIdKey(topicId: string): string {
    return `${this.root}/topic-ids/${topicId}`;
  }

  private streamKey(streamId: number): string {
    return `${this.root}/streams/${pad(streamId)}`;
  }

  private objectKey(objectId: number): string {
    return `${this.root}/objects/${pad(objectId)}`;
  }

  private preparedKey(objectId: number): string {
    return `${this.root}/prepared/${pad(objectId)}`;
  }

  private garbageKey(objectId: number): string {
    return `${this.root}/garbage/${pad(objectId)}`;
  }

  private streamObjectsPrefix(streamId: number): string {
    return `${this.root}/stream-objects/${pad(streamId)}/`;
  }

  private producerSnapshotKey(topic: string, partition: number): string {
    return `${this.root}/producer-snapshots/${topic}/${pad(partition)}`;
  }

  private pathKey(path: string): string {
    if (path === '' || path.startsWith('/')) throw new RangeError(`metadata path must be relative to the root: ${path}`);
    return `${this.root}/${path}`;
  }
}

/** The 16 bytes of a topic id in its UUID text form. */
export function topicIdBytes(topicId: string): Buffer {
  const hex = topicId.replaceAll('-', '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a UUID: ${topicId}`);
  return Buffer.from(hex, 'hex');
}

export function validateTopicName(name: string): void {
  if (name.length === 0 || name.length > MAX_TOPIC_NAME_LENGTH) {
    throw new InvalidTopicError(`topic name length must be within 1..${MAX_TOPIC_NAME_LENGTH}: "${name}"`);
  }
  if (name === '.' || name === '..' || !TOPIC_NAME.test(name)) {
    throw new InvalidTopicError(`topic name may hold only ASCII letters, digits, '.', '_' and '-': "${name}"`);
  }
}

function pad(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a non-negative safe integer: ${n}`);
  return String(n).padStart(16, '0');
}

function modRevisionIs(kv: KeyValue): Compare {
  return { key: kv.key, target: 'modRevision', op: '=', value: kv.modRevision };
}

function newStreamRecord(streamId: number): StreamRecord {
  return { streamId, epoch: 0, startOffset: 0, endOffset: 0, status: StreamStatus.closed, ownerNodeId: -1 };
}

function toStreamState(record: StreamRecord): StreamState {
  return { streamId: record.streamId, epoch: record.epoch, startOffset: record.startOffset, endOffset: record.endOffset };
}

function toObjectRecord(object: CommittedObject, committedAtMs: number): ObjectRecord {
  return { objectId: object.objectId, key: object.key, sizeBytes: object.sizeBytes, ranges: object.ranges, committedAtMs };
}

/** The stream's record if the range may be committed; otherwise the typed error. */
function checkCommittable(range: StreamRange, kv: KeyValue | undefined): StreamRecord {
  if (kv === undefined) throw new StreamNotFoundError(range.streamId);
  const record = decodeJson<StreamRecord>(kv.value);
  if (record.status === StreamStatus.deleted) throw new StreamNotFoundError(range.streamId);
  if (record.epoch !== range.epoch) throw new StreamFencedError(range.streamId, range.epoch, record.epoch);
  if (record.endOffset !== range.startOffset) throw new OffsetMismatchError(range.streamId, record.endOffset, range.startOffset);
  return record;
}

function validateRanges(object: CommittedObject): void {
  if (object.ranges.length === 0) throw new RangeError(`object ${object.objectId}: no stream ranges`);
  const streams = new Set<number>();
  for (const range of object.ranges) {
    assertOffset(range.startOffset);
    assertOffset(range.endOffset);
    if (range.endOffset < range.startOffset) {
      throw new RangeError(`object ${object.objectId}: stream ${range.streamId} range ends before it starts`);
    }
    if (streams.has(range.streamId)) throw new RangeError(`object ${object.objectId}: stream ${range.streamId} twice`);
    streams.add(range.streamId);
  }
}

/**
 * Checks a swap against the streams as they are now: data may be added only for a live stream
 * still at its expected epoch and start (else CompactionConflictError), added ranges must lie in
 * the removed ones without overlapping, and every live offset removed must be added back (else
 * Error: the swap would lose data).
 */
function checkSwap(removed: readonly ObjectRecord[], swap: ObjectSwap, streamKvs: ReadonlyMap<number, KeyValue | undefined>): void {
  const expected = new Map(swap.expectedStreams.map((e) => [e.streamId, e]));
  for (const [streamId, kv] of streamKvs) {
    const record = kv === undefined ? undefined : decodeJson<StreamRecord>(kv.value);
    const live = record !== undefined && record.status !== StreamStatus.deleted;
    const had = offsetRuns(removed.flatMap((o) => o.ranges.filter((r) => r.streamId === streamId)));
    const added = swap.addedObjects.flatMap((o) => o.ranges.filter((r) => r.streamId === streamId && r.endOffset > r.startOffset));
    if (added.length > 0) {
      const plan = expected.get(streamId);
      if (plan === undefined) throw new Error(`compactObjects: stream ${streamId} has added data but no expected state`);
      if (!live) throw new CompactionConflictError(`stream ${streamId} was deleted`);
      if (record.epoch !== plan.epoch || record.startOffset !== plan.startOffset) {
        throw new CompactionConflictError(
          `stream ${streamId} changed: epoch ${plan.epoch} → ${record.epoch}, start ${plan.startOffset} → ${record.startOffset}`,
        );
      }
    }
    const put = offsetRuns(added);
    if (put.covered !== added.reduce((sum, r) => sum + r.endOffset - r.startOffset, 0)) {
      throw new Error(`compactObjects: added ranges of stream ${streamId} overlap`);
    }
    for (const run of put.runs) {
      if (!had.runs.some((h) => h.startOffset <= run.startOffset && run.endOffset <= h.endOffset)) {
        throw new Error(`compactObjects: stream ${streamId} offsets ${run.startOffset}..${run.endOffset} are not in the removed objects`);
      }
    }
    if (!live) continue;
    for (const run of had.runs) {
      const from = Math.max(run.startOffset, record.startOffset);
      if (from >= run.endOffset) continue;
      if (!put.runs.some((p) => p.startOffset <= from && run.endOffset <= p.endOffset)) {
        throw new Error(`compactObjects: stream ${streamId} offsets ${from}..${run.endOffset} would be lost`);
      }
    }
  }
}

/** Ranges merged into sorted runs of contiguous offsets, and the offsets they cover in all. */
function offsetRuns(ranges: readonly StreamRange[]): { runs: { startOffset: number; endOffset: number }[]; covered: number } {
  const sorted = ranges.filter((r) => r.endOffset > r.startOffset).sort((a, b) => a.startOffset - b.startOffset);
  const runs: { startOffset: number; endOffset: number }[] = [];
  let covered = 0;
  for (const range of sorted) {
    const last = runs[runs.length - 1];
    if (last !== undefined && range.startOffset <= last.endOffset) {
      covered += Math.max(0, range.endOffset - last.endOffset);
      last.endOffset = Math.max(last.endOffset, range.endOffset);
    } else {
      runs.push({ startOffset: range.startOffset, endOffset: range.endOffset });
      covered += range.endOffset - range.startOffset;
    }
  }
  return { runs, covered };
}

function sameRanges(a: StreamRange[], b: StreamRange[]): boolean {
  return (
    a.length === b.length &&
    a.every((r, i) => {
      const s = b[i] as StreamRange;
      return r.streamId === s.streamId && r.epoch === s.epoch && r.startOffset === s.startOffset && r.endOffset === s.endOffset;
    })
  );
}

function assertOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`not a valid offset: ${offset}`);
}

function assertPositiveInteger(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`${what} must be a positive integer: ${n}`);
}
