// Upload of frozen log-cache data to data objects: plan objects of bounded size, then for each
// one build it (DataObjectWriter), reserve an id (prepareObject), PUT it, and register it
// (commitObject, fenced by each stream's epoch). The orchestration (when to upload, WAL trim,
// reconciling after a failed commit) is in stream-storage.ts.
//
// Object keys: `<prefix>objects/<object id, 16 decimal digits>`: key order is id order, which
// keeps listings (garbage collection, debugging) in creation order.

import type { UnuploadedRange } from './cache/log-cache.ts';
import type { CommittedObject, StreamMetadata, StreamRange } from './metadata.ts';
import { DataObjectWriter } from './objects/format.ts';
import type { ObjectStore } from './objectstore/objectstore.ts';
import { uploadBytesTotal, uploadDurationSeconds, uploadObjectsTotal } from './storage-metrics.ts';

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

export interface ObjectUploadContext {
  metadata: StreamMetadata;
  objectStore: ObjectStore;
  objectKeyPrefix: string;
  blockSizeBytes?: number;
  /** How long a prepared id stays reserved before garbage collection may reclaim it. */
  prepareTtlMs: number;
}

export function objectKey(prefix: string, objectId: number): string {
  return `${prefix}objects/${String(objectId).padStart(16, '0')}`;
}

/**
 * Splits frozen ranges into objects of about maxObjectBytes (a stream's range may be split
 * between consecutive objects at a batch boundary; a batch is never split). Object k's part of
 * a stream ends where object k+1's starts, so committing them in order keeps offsets contiguous.
 */
export function planObjects(
  ranges: readonly UnuploadedRange[],
  epochOf: (streamId: number) => number,
  maxObjectBytes: number,
): ObjectPart[][] {
  const objects: ObjectPart[][] = [];
  let current: ObjectPart[] = [];
  let currentBytes = 0;
  for (const range of ranges) {
    let part: ObjectPart | undefined;
    for (let i = 0; i < range.batches.length; i++) {
      const batch = range.batches[i]!;
      if (currentBytes > 0 && currentBytes + batch.length > maxObjectBytes) {
        objects.push(current);
        current = [];
        currentBytes = 0;
        part = undefined;
      }
      if (part === undefined) {
        part = {
          streamId: range.streamId,
          epoch: epochOf(range.streamId),
          startOffset: range.baseOffsets[i]!,
          endOffset: range.endOffsets[i]!,
          baseOffsets: [],
          endOffsets: [],
          batches: [],
        };
        current.push(part);
      }
      part.baseOffsets.push(range.baseOffsets[i]!);
      part.endOffsets.push(range.endOffsets[i]!);
      part.batches.push(batch);
      part.endOffset = range.endOffsets[i]!;
      currentBytes += batch.length;
    }
  }
  if (current.length > 0) objects.push(current);
  return objects;
}

/** Builds, stores and commits one object. Rejects with the metadata's error when the commit fails. */
export async function uploadObject(context: ObjectUploadContext, parts: readonly ObjectPart[]): Promise<CommittedObject> {
  const started = process.hrtime.bigint();
  const writer = new DataObjectWriter({ blockSizeBytes: context.blockSizeBytes });
  for (const part of parts) {
    for (let i = 0; i < part.batches.length; i++) {
      writer.add(part.streamId, part.baseOffsets[i]!, part.endOffsets[i]! - part.baseOffsets[i]!, part.batches[i]!);
    }
  }
  const finished = writer.finish();
  const ranges: StreamRange[] = parts
    .map((part) => ({ streamId: part.streamId, epoch: part.epoch, startOffset: part.startOffset, endOffset: part.endOffset }))
    .sort((a, b) => a.streamId - b.streamId);
  checkRanges(ranges, finished.ranges);
  const objectId = await context.metadata.prepareObject(context.prepareTtlMs);
  const key = objectKey(context.objectKeyPrefix, objectId);
  await context.objectStore.put(key, finished.chunks);
  const committed: CommittedObject = { objectId, key, sizeBytes: finished.sizeBytes, ranges };
  await context.metadata.commitObject(committed);
  uploadObjectsTotal.inc();
  uploadBytesTotal.inc(finished.sizeBytes);
  uploadDurationSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  return committed;
}

/** Asserts the writer saw the same ranges we are about to commit. */
function checkRanges(ours: readonly StreamRange[], written: readonly { streamId: number; startOffset: number; endOffset: number }[]): void {
  const same =
    ours.length === written.length &&
    ours.every((r, i) => r.streamId === written[i]!.streamId && r.startOffset === written[i]!.startOffset && r.endOffset === written[i]!.endOffset);
  if (!same) throw new Error(`object ranges ${JSON.stringify(written)} differ from the planned ${JSON.stringify(ours)}`);
}
