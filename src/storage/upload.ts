// Upload of frozen log-cache data to data objects. The policy (DESIGN.md, Upload): a stream with at
// least streamSplitSizeBytes of frozen data gets stream objects of its own; the other streams
// share stream set objects. Every object is at most about maxObjectBytes (a stream's range may be
// split between consecutive objects at a batch boundary; a batch is never split) and holds at most
// maxStreamsPerObject streams (its commit is one metadata transaction of ~2 ops per stream).
//
// Each object is built (DataObjectWriter), given an id (prepareObject), PUT and registered
// (commitObject, fenced by each stream's epoch). PUTs of one round run a few at a time; commits
// go strictly in plan order, so a stream split over several objects commits contiguous ranges.
// The orchestration (when to upload, WAL trim, reconciling after a failed commit) is in
// stream-storage.ts.
//
// Every committed range also records its batch bytes and the largest batch maxTimestamp
// (RangeStats): retention by size and by time reads them from metadata instead of the data.
//
// Object keys: `<prefix>objects/<object id, 16 decimal digits>`: key order is id order, which
// keeps listings (garbage collection, debugging) in creation order.

import { setImmediate } from 'node:timers/promises';
import { log } from '../metrics/log.ts';
import { readMaxTimestamp } from '../protocol/records.ts';
import type { UnuploadedRange } from './cache/log-cache.ts';
import type { CommittedObject, ObjectRef, StreamMetadata, StreamRange } from './metadata.ts';
import { DataObjectWriter } from './objects/format.ts';
import type { ObjectStore } from './objectstore/objectstore.ts';
import { uploadBytesTotal, uploadDurationSeconds, uploadObjectsTotal } from './storage-metrics.ts';
import { abandonedPutAttempts } from './objectstore/retrying.ts';

export const DEFAULT_STREAM_SPLIT_SIZE_BYTES = 16 * 1024 * 1024;
/** Streams per stream set object: its commit stays well inside a 1024-op metadata transaction. */
export const DEFAULT_MAX_STREAMS_PER_OBJECT = 400;
/** Objects of one upload round being built and PUT at once (commits stay in order). */
export const UPLOAD_PUT_CONCURRENCY = 4;

/**
 * Batches added to an object between two yields to the event loop. An upload round at 20 MiB/s
 * of small producer batches holds some 16,000 of them, and building its object in one go held
 * the loop for 12-17 ms every upload interval, in front of every produce and fetch; 2,048 take
 * well under a millisecond.
 */
const BUILD_YIELD_BATCHES = 2048;

/** What an object records about each stream range besides its offsets (for retention). */
export interface RangeStats {
  /** Bytes of the stream's batches in the object. */
  rangeBytes: number;
  /** Largest maxTimestamp of those batches (Kafka's segment "largest timestamp"). */
  maxTimestampMs: number;
}

/** A range as stored in metadata: objects committed before stats were recorded lack them. */
export type RecordedRange = StreamRange & Partial<RangeStats>;
/** An ObjectRef (per-stream index entry) with the range's stats when recorded. */
export type RecordedObjectRef = ObjectRef & Partial<RangeStats>;

/** Batches of one stream going into one object, with the epoch the commit is fenced by. */
export interface ObjectPart {
  streamId: number;
  epoch: number;
  startOffset: number;
  endOffset: number;
  baseOffsets: number[];
  endOffsets: number[];
  batches: Buffer[];
}

/** What building and storing an object needs (upload and compaction alike). */
export interface ObjectStoreContext {
  metadata: {
    prepareObject(ttlMs: number): Promise<number>;
    /** Releases a prepared id; true when the caller may delete the object's data. */
    discardPreparedObject?(objectId: number): Promise<boolean>;
  };
  objectStore: ObjectStore;
  objectKeyPrefix: string;
  blockSizeBytes?: number;
  /** How long a prepared id stays reserved before garbage collection may reclaim it. */
  prepareTtlMs: number;
}

export interface ObjectUploadContext extends ObjectStoreContext {
  metadata: StreamMetadata & ObjectStoreContext['metadata'];
}

export interface UploadPlanOptions {
  maxObjectBytes: number;
  /** Streams with at least this many frozen bytes get their own stream objects. */
  streamSplitSizeBytes: number;
  maxStreamsPerObject?: number;
}

export function objectKey(prefix: string, objectId: number): string {
  return `${prefix}objects/${String(objectId).padStart(16, '0')}`;
}

/** The object id of a key made by objectKey, or undefined for any other key. */
export function objectIdOfKey(prefix: string, key: string): number | undefined {
  if (!key.startsWith(`${prefix}objects/`)) return undefined;
  const name = key.slice(prefix.length + 'objects/'.length);
  return /^\d{16}$/.test(name) ? Number(name) : undefined;
}

/**
 * Plans the objects of one upload round, in commit order: first the stream objects of every
 * stream with at least streamSplitSizeBytes (several consecutive ones for a stream larger than
 * maxObjectBytes), then stream set objects for the rest.
 */
export function planObjects(
  ranges: readonly UnuploadedRange[],
  epochOf: (streamId: number) => number,
  options: UploadPlanOptions,
): ObjectPart[][] {
  const large = ranges.filter((range) => range.sizeBytes >= options.streamSplitSizeBytes);
  const small = ranges.filter((range) => range.sizeBytes < options.streamSplitSizeBytes);
  const maxStreams = options.maxStreamsPerObject ?? DEFAULT_MAX_STREAMS_PER_OBJECT;
  const objects: ObjectPart[][] = [];
  for (const range of large) objects.push(...packObjects([range], epochOf, options.maxObjectBytes, maxStreams));
  objects.push(...packObjects(small, epochOf, options.maxObjectBytes, maxStreams));
  return objects;
}

/**
 * Packs ranges into objects of about maxObjectBytes and at most maxStreams streams. Object k's
 * part of a stream ends where object k+1's starts, so committing them in order keeps offsets
 * contiguous.
 */
function packObjects(
  ranges: readonly UnuploadedRange[],
  epochOf: (streamId: number) => number,
  maxObjectBytes: number,
  maxStreams: number,
): ObjectPart[][] {
  const objects: ObjectPart[][] = [];
  let current: ObjectPart[] = [];
  let currentBytes = 0;
  const close = (): void => {
    objects.push(current);
    current = [];
    currentBytes = 0;
  };
  for (const range of ranges) {
    const { batches, baseOffsets, endOffsets } = range;
    for (let from = 0; from < batches.length; ) {
      if (currentBytes > 0 && currentBytes + batches[from]!.length > maxObjectBytes) close();
      if (current.length >= maxStreams) close();
      // The part takes batches while they fit (its first one always), as slices of the range.
      let to = from;
      do currentBytes += batches[to++]!.length;
      while (to < batches.length && currentBytes + batches[to]!.length <= maxObjectBytes);
      current.push({
        streamId: range.streamId,
        epoch: epochOf(range.streamId),
        startOffset: baseOffsets[from]!,
        endOffset: endOffsets[to - 1]!,
        baseOffsets: baseOffsets.slice(from, to),
        endOffsets: endOffsets.slice(from, to),
        batches: batches.slice(from, to),
      });
      from = to;
    }
  }
  if (current.length > 0) objects.push(current);
  return objects;
}

/** A built and stored object waiting for its commit. */
export interface StoredObject {
  object: CommittedObject;
  startedNs: bigint;
  /** An abandoned PUT attempt may still read the batches (see abandonedPutAttempts). */
  bodyMayStillBeRead: boolean;
}

/**
 * Uploads the planned objects: builds and PUTs up to UPLOAD_PUT_CONCURRENCY at once, commits them
 * in plan order and calls onCommitted after each commit. On the first failure it waits for the
 * PUTs in flight, releases the objects it stored but did not commit (their ids are discarded and
 * their data deleted, best effort: the collector catches what is left), and rejects with that
 * failure.
 */
export async function uploadObjects(
  context: ObjectUploadContext,
  plan: readonly (readonly ObjectPart[])[],
  onCommitted: (object: CommittedObject, bodyMayStillBeRead: boolean) => void,
): Promise<void> {
  const stores: Promise<StoredObject>[] = [];
  let committed = 0;
  const launch = (): void => {
    while (stores.length < plan.length && stores.length - committed < UPLOAD_PUT_CONCURRENCY) {
      const stored = storeObject(context, plan[stores.length]!);
      stored.catch(() => {}); // awaited in order below
      stores.push(stored);
    }
  };
  try {
    for (; committed < plan.length; committed++) {
      launch();
      const stored = await stores[committed]!;
      await context.metadata.commitObject(stored.object);
      uploadObjectsTotal.inc();
      uploadBytesTotal.inc(stored.object.sizeBytes);
      uploadDurationSeconds.observe(Number(process.hrtime.bigint() - stored.startedNs) / 1e9);
      onCommitted(stored.object, stored.bodyMayStillBeRead);
    }
  } catch (err) {
    const settled = await Promise.allSettled(stores.slice(committed));
    await releaseObjects(context, settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value.object] : [])));
    throw err;
  }
}

/** Builds the object (with the stats of its ranges), reserves its id and PUTs it; no commit. */
export async function storeObject(context: ObjectStoreContext, parts: readonly ObjectPart[]): Promise<StoredObject> {
  const startedNs = process.hrtime.bigint();
  const writer = new DataObjectWriter({ blockSizeBytes: context.blockSizeBytes });
  const ranges: (StreamRange & RangeStats)[] = [];
  let sinceYield = 0;
  for (const part of parts) {
    let rangeBytes = 0;
    let maxTimestampMs = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < part.batches.length; i++) {
      const batch = part.batches[i]!;
      writer.add(part.streamId, part.baseOffsets[i]!, part.endOffsets[i]! - part.baseOffsets[i]!, batch);
      rangeBytes += batch.length;
      maxTimestampMs = Math.max(maxTimestampMs, readMaxTimestamp(batch, 0));
      if (++sinceYield === BUILD_YIELD_BATCHES) {
        sinceYield = 0;
        await setImmediate();
      }
    }
    ranges.push({ streamId: part.streamId, epoch: part.epoch, startOffset: part.startOffset, endOffset: part.endOffset, rangeBytes, maxTimestampMs });
  }
  ranges.sort((a, b) => a.streamId - b.streamId);
  const finished = writer.finish();
  checkRanges(ranges, finished.ranges);
  const objectId = await context.metadata.prepareObject(context.prepareTtlMs);
  const key = objectKey(context.objectKeyPrefix, objectId);
  const abandonedBefore = abandonedPutAttempts();
  await context.objectStore.put(key, finished.chunks);
  const bodyMayStillBeRead = abandonedPutAttempts() !== abandonedBefore;
  return { object: { objectId, key, sizeBytes: finished.sizeBytes, ranges }, startedNs, bodyMayStillBeRead };
}

/**
 * Deletes the data of stored objects that will not be committed, once their ids are discarded
 * (best effort: what is left, the collector finds by the prepared ids' deadlines).
 */
export async function releaseObjects(context: ObjectStoreContext, objects: readonly CommittedObject[]): Promise<void> {
  const discard = context.metadata.discardPreparedObject?.bind(context.metadata);
  if (discard === undefined) return;
  for (const { objectId, key } of objects) {
    try {
      // False when the id is gone: the commit went through after all, or the collector has it.
      if (await discard(objectId)) await context.objectStore.delete([key]);
    } catch (err) {
      log.warn({ objectId, err: (err as Error).message }, 'an uncommitted object is left to the garbage collector');
    }
  }
}

/** Asserts the writer saw the same ranges we are about to commit. */
function checkRanges(ours: readonly StreamRange[], written: readonly { streamId: number; startOffset: number; endOffset: number }[]): void {
  const same =
    ours.length === written.length &&
    ours.every((r, i) => r.streamId === written[i]!.streamId && r.startOffset === written[i]!.startOffset && r.endOffset === written[i]!.endOffset);
  if (!same) throw new Error(`object ranges ${JSON.stringify(written)} differ from the planned ${JSON.stringify(ours)}`);
}
