// Garbage collection of data objects. One pass (collect()) does, in order:
//
// 1. Dead objects: a committed object whose every range is below its stream's start offset
//    (trimmed, by retention or DeleteRecords) or belongs to a deleted stream is taken out of
//    metadata (GcMetadata.dropDeadObjects: object record and index entries out, a garbage record
//    in, one transaction that re-checks deadness) and becomes garbage.
// 2. Garbage past its delay: compaction's inputs and dead objects are deleted from the object
//    store only deleteAfterMs after they left metadata (readers that looked them up before may
//    still read them), then their garbage records are forgotten.
// 3. Prepared ids past their deadline (a crash or failure between prepareObject and commit):
//    discardPreparedObject, and only when that succeeds (a late commit now fails) the data.
// 4. Orphans (every orphanScanIntervalMs): keys under <prefix>objects/ with no metadata record at
//    all (committed, prepared or garbage): what a crash leaves between discarding an id and
//    deleting its data, or a PUT that finished after its id was discarded. The store is listed
//    BEFORE metadata is read, and every record change is one transaction (prepared → committed →
//    garbage), so an object being uploaded always shows a record. A key is deleted only when
//    seen orphaned in passes at least gcDelayMs apart.
//
// Nothing referenced is deleted: data goes only after its record left metadata in a transaction
// (steps 1-2), after its reservation was discarded (3), or when no record names it (4).

import { Counter, register } from 'prom-client';
import { log } from '../../metrics/log.ts';
import type { ObjectStore } from '../objectstore/objectstore.ts';
import { objectIdOfKey, objectKey } from '../upload.ts';
import type { ObjectRecordView, StreamView } from './compaction.ts';

/** An object out of metadata whose data is deleted once deleteAfterMs has passed. */
export interface GarbageObject {
  objectId: number;
  key: string;
  sizeBytes: number;
  deleteAfterMs: number;
}

/** What the collector needs from metadata (the cluster model implements it). */
export interface GcMetadata {
  listObjects(afterObjectId: number, limit: number): Promise<ObjectRecordView[]>;
  listStreamStates(): Promise<StreamView[]>;
  getObject(objectId: number): Promise<ObjectRecordView | undefined>;
  /**
   * Takes the objects that hold only trimmed or deleted data out of metadata (others are left
   * alone), each becoming garbage due at deleteAfterMs. Returns the ids taken out.
   */
  dropDeadObjects(objectIds: number[], deleteAfterMs: number): Promise<number[]>;
  /** Garbage due at or before nowMs, at most limit, oldest ids first. */
  listGarbageObjects(nowMs: number, limit: number): Promise<GarbageObject[]>;
  forgetGarbageObjects(objectIds: number[]): Promise<void>;
  listExpiredPreparedObjects(nowMs: number): Promise<{ objectId: number }[]>;
  discardPreparedObject(objectId: number): Promise<boolean>;
  /** Ids with any record: committed, prepared or garbage. */
  knownObjectIds(): Promise<Set<number>>;
}

export const DEFAULT_OBJECT_GC_DELAY_MS = 10 * 60 * 1000;
export const DEFAULT_ORPHAN_SCAN_INTERVAL_MS = 60 * 60 * 1000;
/** Objects dropped, deleted or discarded per step of one pass. */
export const DEFAULT_GC_MAX_OBJECTS_PER_PASS = 1000;
const LIST_PAGE_OBJECTS = 1000;
/** Keys per object-store delete call (S3's DeleteObjects takes 1000). */
const DELETE_BATCH_KEYS = 1000;
/** Orphan candidates remembered between passes. */
const MAX_ORPHAN_CANDIDATES = 100_000;

const gcObjectsDeletedTotal = counter('wharf_gc_objects_deleted_total', 'Data objects deleted by the collector, by reason (garbage | prepared | orphan).', ['reason']);
const gcBytesDeletedTotal = counter('wharf_gc_bytes_deleted_total', 'Bytes of committed data objects deleted by the collector.');

function counter(name: string, help: string, labelNames: string[] = []): Counter {
  return (register.getSingleMetric(name) as Counter | undefined) ?? new Counter({ name, help, labelNames });
}

export interface GcOptions {
  metadata: GcMetadata;
  objectStore: ObjectStore;
  objectKeyPrefix: string;
  /** How long an object out of metadata stays readable; default 10 min. */
  gcDelayMs?: number;
  orphanScanIntervalMs?: number;
  maxObjectsPerPass?: number;
  nowMs?: () => number;
}

export interface GcResult {
  /** Objects taken out of metadata as dead (their data goes after the delay). */
  droppedObjects: number;
  /** Garbage objects whose data was deleted. */
  deletedObjects: number;
  deletedBytes: number;
  discardedPrepared: number;
  deletedOrphans: number;
}

export class ObjectCollector {
  private readonly metadata: GcMetadata;
  private readonly objectStore: ObjectStore;
  private readonly prefix: string;
  private readonly gcDelayMs: number;
  private readonly orphanScanIntervalMs: number;
  private readonly maxObjectsPerPass: number;
  private readonly nowMs: () => number;
  /** Orphaned keys and when they were first seen so. */
  private orphans = new Map<string, number>();
  private lastOrphanScanMs = Number.NEGATIVE_INFINITY;

  constructor(options: GcOptions) {
    this.metadata = options.metadata;
    this.objectStore = options.objectStore;
    this.prefix = options.objectKeyPrefix;
    this.gcDelayMs = options.gcDelayMs ?? DEFAULT_OBJECT_GC_DELAY_MS;
    this.orphanScanIntervalMs = options.orphanScanIntervalMs ?? DEFAULT_ORPHAN_SCAN_INTERVAL_MS;
    this.maxObjectsPerPass = options.maxObjectsPerPass ?? DEFAULT_GC_MAX_OBJECTS_PER_PASS;
    this.nowMs = options.nowMs ?? Date.now;
    if (!(this.gcDelayMs >= 0) || !(this.maxObjectsPerPass > 0)) throw new RangeError('gcDelayMs must be >= 0, maxObjectsPerPass > 0');
  }

  /** One pass of the four steps above. */
  async collect(): Promise<GcResult> {
    const result: GcResult = { droppedObjects: 0, deletedObjects: 0, deletedBytes: 0, discardedPrepared: 0, deletedOrphans: 0 };
    result.droppedObjects = await this.dropDead();
    await this.deleteDueGarbage(result);
    result.discardedPrepared = await this.discardExpiredPrepared();
    if (this.nowMs() - this.lastOrphanScanMs >= this.orphanScanIntervalMs) result.deletedOrphans = await this.sweepOrphans();
    return result;
  }

  private async dropDead(): Promise<number> {
    const streams = new Map((await this.metadata.listStreamStates()).map((s) => [s.streamId, s]));
    const dead: number[] = [];
    for (let after = -1; dead.length < this.maxObjectsPerPass; ) {
      const page = await this.metadata.listObjects(after, LIST_PAGE_OBJECTS);
      for (const object of page) if (isDead(object, streams) && dead.length < this.maxObjectsPerPass) dead.push(object.objectId);
      if (page.length < LIST_PAGE_OBJECTS) break;
      after = page[page.length - 1]!.objectId;
    }
    if (dead.length === 0) return 0;
    const dropped = await this.metadata.dropDeadObjects(dead, this.nowMs() + this.gcDelayMs);
    log.info({ objects: dropped.length }, 'gc: objects holding only trimmed or deleted data are now garbage');
    return dropped.length;
  }

  private async deleteDueGarbage(result: GcResult): Promise<void> {
    const due = await this.metadata.listGarbageObjects(this.nowMs(), this.maxObjectsPerPass);
    for (let i = 0; i < due.length; i += DELETE_BATCH_KEYS) {
      const batch: GarbageObject[] = [];
      for (const garbage of due.slice(i, i + DELETE_BATCH_KEYS)) {
        // Cannot happen (the record left in the garbage record's transaction); checked all the same.
        if ((await this.metadata.getObject(garbage.objectId)) !== undefined) {
          log.error({ objectId: garbage.objectId }, 'gc: a garbage object is still committed; not deleting it');
          continue;
        }
        batch.push(garbage);
      }
      await this.objectStore.delete(batch.map((g) => g.key));
      await this.metadata.forgetGarbageObjects(batch.map((g) => g.objectId));
      result.deletedObjects += batch.length;
      for (const garbage of batch) result.deletedBytes += garbage.sizeBytes;
      gcObjectsDeletedTotal.inc({ reason: 'garbage' }, batch.length);
      gcBytesDeletedTotal.inc(batch.reduce((sum, g) => sum + g.sizeBytes, 0));
    }
  }

  private async discardExpiredPrepared(): Promise<number> {
    const expired = (await this.metadata.listExpiredPreparedObjects(this.nowMs())).slice(0, this.maxObjectsPerPass);
    const keys: string[] = [];
    for (const { objectId } of expired) {
      if (await this.metadata.discardPreparedObject(objectId)) keys.push(objectKey(this.prefix, objectId));
    }
    for (let i = 0; i < keys.length; i += DELETE_BATCH_KEYS) await this.objectStore.delete(keys.slice(i, i + DELETE_BATCH_KEYS));
    if (keys.length > 0) log.info({ objects: keys.length }, 'gc: uncommitted objects past their deadline deleted');
    gcObjectsDeletedTotal.inc({ reason: 'prepared' }, keys.length);
    return keys.length;
  }

  private async sweepOrphans(): Promise<number> {
    const now = this.nowMs();
    this.lastOrphanScanMs = now;
    const listed = await this.objectStore.list(`${this.prefix}objects/`); // first the store...
    const known = await this.metadata.knownObjectIds(); // ...then metadata
    const orphans = new Map<string, number>();
    const doomed: string[] = [];
    for (const { key } of listed) {
      const objectId = objectIdOfKey(this.prefix, key);
      if (objectId === undefined || known.has(objectId)) continue;
      const firstSeen = this.orphans.get(key);
      if (firstSeen !== undefined && now - firstSeen >= this.gcDelayMs) doomed.push(key);
      else if (orphans.size < MAX_ORPHAN_CANDIDATES) orphans.set(key, firstSeen ?? now);
    }
    this.orphans = orphans;
    const deleted = doomed.slice(0, this.maxObjectsPerPass);
    for (let i = 0; i < deleted.length; i += DELETE_BATCH_KEYS) await this.objectStore.delete(deleted.slice(i, i + DELETE_BATCH_KEYS));
    if (deleted.length > 0) log.warn({ objects: deleted.length }, 'gc: objects with no metadata record deleted');
    gcObjectsDeletedTotal.inc({ reason: 'orphan' }, deleted.length);
    return deleted.length;
  }
}

/** Every range of the object is below its stream's start, or its stream is deleted or gone. */
export function isDead(object: ObjectRecordView, streams: ReadonlyMap<number, StreamView>): boolean {
  return object.ranges.every((range) => {
    const stream = streams.get(range.streamId);
    return stream === undefined || stream.deleted || range.endOffset <= stream.startOffset;
  });
}
