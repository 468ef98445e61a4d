// Compaction: rewrites many small data objects into fewer larger ones, in the background, one job
// at a time and at a bounded rate (the caller paces jobs with a RateLimiter).
//
// Two kinds of job (AutoMQ's, in spirit):
// - stream set: the oldest small stream set objects (below targetObjectBytes / 2), or ones whose
//   data is at least half trimmed or deleted, up to targetObjectBytes read in all. Each stream's
//   live data in them is cut into contiguous runs; a stream with at least streamSplitSizeBytes
//   (or with more than one run) gets a stream object per run, the other streams share new stream
//   set objects. Trimmed and deleted data is dropped on the way.
// - stream: contiguous stream objects of one stream, each below streamSplitSizeBytes, merged into
//   one (or a few) of up to targetObjectBytes.
// An output that is still small is merged again with newer data in a later job, so a quiet
// stream's bytes may be rewritten several times before their object reaches targetObjectBytes / 2;
// the rate bound caps what that costs.
//
// A job reads each input with one whole-object GET, writes its outputs like an upload does
// (prepareObject → PUT; see upload.ts storeObject), then swaps them in one metadata transaction
// (CompactionMetadata.compactObjects): new objects in, old ones out, fenced so that a stream
// trimmed, re-opened (epoch change) or deleted since the plan aborts the swap with
// CompactionConflictError; commits appending to the streams meanwhile do not (they never touch the
// compacted ranges). The old objects' data is deleted by the collector (gc.ts) only after
// deleteAfterMs: readers that looked them up before the swap may still read them. An aborted job
// releases its outputs at once. Batches are copied byte for byte (slices of the GET, no decoding).

import { setTimeout as sleep } from 'node:timers/promises';
import { Counter, register } from 'prom-client';
import type { UnuploadedRange } from '../cache/log-cache.ts';
import type { CommittedObject } from '../metadata.ts';
import { ObjectNotFoundError } from '../objectstore/objectstore.ts';
import type { ObjectInfo, ObjectStore } from '../objectstore/objectstore.ts';
import { planObjects, releaseObjects, storeObject } from '../upload.ts';
import type { ObjectStoreContext, RecordedRange } from '../upload.ts';
import { DataObjectReader } from './format.ts';

/** A committed object as metadata lists it. */
export interface ObjectRecordView {
  objectId: number;
  key: string;
  sizeBytes: number;
  ranges: RecordedRange[];
  committedAtMs: number;
}

/** A stream as maintenance sees it. */
export interface StreamView {
  streamId: number;
  epoch: number;
  startOffset: number;
  endOffset: number;
  deleted: boolean;
}

/** One atomic replacement of committed objects by prepared ones. */
export interface ObjectSwap {
  /** Committed objects taken out; their data becomes garbage, deleted after deleteAfterMs. */
  removedObjectIds: number[];
  /** Prepared (stored, uncommitted) objects put in. */
  addedObjects: CommittedObject[];
  /**
   * The state the plan was made from of every stream that has data in addedObjects: a trim, a
   * new epoch or a deletion since then aborts the swap.
   */
  expectedStreams: { streamId: number; epoch: number; startOffset: number }[];
  deleteAfterMs: number;
}

/** What compaction needs from metadata (the cluster model implements it). */
export interface CompactionMetadata {
  /** Committed objects with ids above afterObjectId, in id order. */
  listObjects(afterObjectId: number, limit: number): Promise<ObjectRecordView[]>;
  /** Every stream, deleted ones included. */
  listStreamStates(): Promise<StreamView[]>;
  prepareObject(ttlMs: number): Promise<number>;
  discardPreparedObject(objectId: number): Promise<boolean>;
  /**
   * Applies the swap in one transaction, or rejects (CompactionConflictError when the streams or
   * objects changed under the plan) and changes nothing. Refuses a swap that would lose data:
   * every live offset of the removed objects must be in the added ones.
   */
  compactObjects(swap: ObjectSwap): Promise<void>;
  /** Operations one metadata transaction may hold. */
  maxTxnOps(): number;
}

export class CompactionConflictError extends Error {
  constructor(detail: string) {
    super(`compaction aborted: ${detail}`);
    this.name = 'CompactionConflictError';
  }
}

export const DEFAULT_COMPACTION_TARGET_OBJECT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_COMPACTION_MAX_BYTES_PER_SECOND = 32 * 1024 * 1024;
/** Committed objects read from metadata per page while planning. */
const PLAN_PAGE_OBJECTS = 1000;
/** Stream objects remembered while planning (bounds the planner's memory). */
const MAX_STREAM_OBJECT_CANDIDATES = 50_000;
/** Transaction ops kept free of a job's estimate. */
const TXN_OPS_MARGIN = 16;

export interface CompactionPolicy {
  /** Size of the objects compaction writes, and the most a job reads (but one large input). */
  targetObjectBytes: number;
  /** A stream with at least this much data in a job gets stream objects of its own. */
  streamSplitSizeBytes: number;
}

/** A job: its inputs, and the streams as they were when it was planned. */
export type CompactionJob =
  | { kind: 'stream-set'; inputs: ObjectRecordView[]; streams: ReadonlyMap<number, StreamView> }
  | { kind: 'stream'; streamId: number; inputs: ObjectRecordView[]; streams: ReadonlyMap<number, StreamView> };

export interface CompactionResult {
  kind: CompactionJob['kind'];
  removedObjectIds: number[];
  addedObjectIds: number[];
  bytesRead: number;
  bytesWritten: number;
}

// ---- planning (pure) ----

function isLive(stream: StreamView | undefined, range: RecordedRange): stream is StreamView {
  return stream !== undefined && !stream.deleted && range.endOffset > stream.startOffset && range.endOffset > range.startOffset;
}

/** A range's bytes: recorded, or the object's bytes shared evenly (objects without stats). */
function rangeBytesOf(object: ObjectRecordView, range: RecordedRange): number {
  return range.rangeBytes ?? object.sizeBytes / object.ranges.length;
}

export function liveBytesOf(object: ObjectRecordView, streams: ReadonlyMap<number, StreamView>): number {
  let bytes = 0;
  for (const range of object.ranges) if (isLive(streams.get(range.streamId), range)) bytes += rangeBytesOf(object, range);
  return bytes;
}

/** Metadata ops of a job's swap, at worst (outputs never hold more ranges than inputs). */
function swapOps(inputs: readonly ObjectRecordView[]): number {
  let ops = 0;
  for (const input of inputs) ops += 2 * (2 + input.ranges.length);
  return ops;
}

/** Accumulates one page of objects after another and then proposes the next job. */
export class CompactionPlanner {
  private readonly policy: CompactionPolicy;
  private readonly streams: ReadonlyMap<number, StreamView>;
  private readonly maxOps: number;
  private readonly streamSet: ObjectRecordView[] = [];
  private streamSetBytes = 0;
  private streamSetFull = false;
  private readonly streamObjects = new Map<number, ObjectRecordView[]>();
  private streamObjectCount = 0;

  constructor(policy: CompactionPolicy, streams: ReadonlyMap<number, StreamView>, maxTxnOps: number) {
    this.policy = policy;
    this.streams = streams;
    this.maxOps = maxTxnOps - TXN_OPS_MARGIN;
  }

  /** True once more objects cannot change the proposal much (the caller may stop listing). */
  get saturated(): boolean {
    return this.streamSetFull && this.streamObjectCount >= MAX_STREAM_OBJECT_CANDIDATES;
  }

  /** Objects in id order. */
  add(objects: readonly ObjectRecordView[]): void {
    for (const object of objects) {
      if (object.ranges.length > 1) this.addStreamSetObject(object);
      else this.addStreamObject(object);
    }
  }

  next(): CompactionJob | undefined {
    const streams = this.streams;
    const first = this.streamSet[0];
    if (this.streamSet.length >= 2 || (first !== undefined && liveBytesOf(first, this.streams) < first.sizeBytes / 2)) {
      return { kind: 'stream-set', inputs: this.streamSet, streams };
    }
    for (const [streamId, objects] of this.streamObjects) {
      const run = this.firstRun(objects);
      if (run.length >= 2) return { kind: 'stream', streamId, inputs: run, streams };
    }
    return undefined;
  }

  private addStreamSetObject(object: ObjectRecordView): void {
    if (this.streamSetFull) return;
    const live = liveBytesOf(object, this.streams);
    if (live === 0) return; // all garbage: the collector drops it without rewriting
    if (object.sizeBytes >= this.policy.targetObjectBytes / 2 && live >= object.sizeBytes / 2) return;
    const fits =
      this.streamSet.length === 0 ||
      (this.streamSetBytes + object.sizeBytes <= this.policy.targetObjectBytes && swapOps([...this.streamSet, object]) <= this.maxOps);
    if (!fits) {
      this.streamSetFull = true;
      return;
    }
    if (this.streamSet.length === 0 && swapOps([object]) > this.maxOps) return; // cannot be swapped in one transaction
    this.streamSet.push(object);
    this.streamSetBytes += object.sizeBytes;
  }

  private addStreamObject(object: ObjectRecordView): void {
    const range = object.ranges[0];
    if (range === undefined || this.streamObjectCount >= MAX_STREAM_OBJECT_CANDIDATES) return;
    if (!isLive(this.streams.get(range.streamId), range) || object.sizeBytes >= this.policy.streamSplitSizeBytes) return;
    const list = this.streamObjects.get(range.streamId) ?? [];
    list.push(object);
    this.streamObjects.set(range.streamId, list);
    this.streamObjectCount++;
  }

  /** The first run of offset-contiguous objects (at least two) that fits one job. */
  private firstRun(objects: ObjectRecordView[]): ObjectRecordView[] {
    const sorted = [...objects].sort((a, b) => a.ranges[0]!.startOffset - b.ranges[0]!.startOffset);
    let run: ObjectRecordView[] = [];
    let bytes = 0;
    for (const object of sorted) {
      const previous = run[run.length - 1];
      const contiguous = previous !== undefined && previous.ranges[0]!.endOffset === object.ranges[0]!.startOffset;
      const fits = bytes + object.sizeBytes <= this.policy.targetObjectBytes && swapOps([...run, object]) <= this.maxOps;
      if (contiguous && fits) {
        run.push(object);
        bytes += object.sizeBytes;
        continue;
      }
      if (run.length >= 2) return run;
      run = [object];
      bytes = object.sizeBytes;
    }
    return run.length >= 2 ? run : [];
  }
}

// ---- rate ----

/** A token bucket of bytes per second; take() waits while the bucket is in debt. */
export class RateLimiter {
  readonly bytesPerSecond: number;
  private readonly burstBytes: number;
  private tokens: number;
  private updatedMs: number;

  constructor(bytesPerSecond: number, burstBytes: number = bytesPerSecond) {
    if (!(bytesPerSecond > 0) || !(burstBytes > 0)) throw new RangeError('RateLimiter needs a positive rate and burst');
    this.bytesPerSecond = bytesPerSecond;
    this.burstBytes = burstBytes;
    this.tokens = burstBytes;
    this.updatedMs = performance.now();
  }

  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.updatedMs) * this.bytesPerSecond) / 1000);
    this.updatedMs = now;
    this.tokens -= bytes;
    if (this.tokens < 0) await sleep((-this.tokens / this.bytesPerSecond) * 1000, undefined, { signal });
  }
}

// ---- running jobs ----

const compactionJobsTotal = counter('wharf_compaction_jobs_total', 'Compaction jobs finished, by result (done | aborted | failed).', ['result']);
const compactionBytesReadTotal = counter('wharf_compaction_bytes_read_total', 'Bytes of data objects read by compaction.');
const compactionBytesWrittenTotal = counter('wharf_compaction_bytes_written_total', 'Bytes of data objects written by compaction.');

function counter(name: string, help: string, labelNames: string[] = []): Counter {
  return (register.getSingleMetric(name) as Counter | undefined) ?? new Counter({ name, help, labelNames });
}

export interface CompactorOptions extends CompactionPolicy {
  metadata: CompactionMetadata;
  objectStore: ObjectStore;
  objectKeyPrefix: string;
  blockSizeBytes?: number;
  prepareTtlMs: number;
  /** How long removed objects stay readable before the collector may delete them. */
  gcDelayMs: number;
  /** Paces the bytes read; default DEFAULT_COMPACTION_MAX_BYTES_PER_SECOND. */
  rateLimiter?: RateLimiter;
  nowMs?: () => number;
}

export class Compactor {
  private readonly options: CompactorOptions;
  private readonly storeContext: ObjectStoreContext;
  private readonly limiter: RateLimiter;
  private readonly nowMs: () => number;

  constructor(options: CompactorOptions) {
    if (!(options.targetObjectBytes > 0) || !(options.streamSplitSizeBytes > 0)) {
      throw new RangeError('compaction needs a positive targetObjectBytes and streamSplitSizeBytes');
    }
    this.options = options;
    this.storeContext = {
      metadata: options.metadata,
      objectStore: options.objectStore,
      objectKeyPrefix: options.objectKeyPrefix,
      blockSizeBytes: options.blockSizeBytes,
      prepareTtlMs: options.prepareTtlMs,
    };
    this.limiter = options.rateLimiter ?? new RateLimiter(DEFAULT_COMPACTION_MAX_BYTES_PER_SECOND);
    this.nowMs = options.nowMs ?? Date.now;
  }

  /** Plans the next job from the current metadata; undefined when there is nothing to do. */
  async plan(): Promise<CompactionJob | undefined> {
    const { metadata } = this.options;
    const streams = new Map((await metadata.listStreamStates()).map((s) => [s.streamId, s]));
    const planner = new CompactionPlanner(this.options, streams, metadata.maxTxnOps());
    for (let after = -1; !planner.saturated; ) {
      const page = await metadata.listObjects(after, PLAN_PAGE_OBJECTS);
      planner.add(page);
      if (page.length < PLAN_PAGE_OBJECTS) break;
      after = page[page.length - 1]!.objectId;
    }
    return planner.next();
  }

  /** Plans and runs one job; undefined when there was none. Rejects as run() does. */
  async runOnce(signal?: AbortSignal): Promise<CompactionResult | undefined> {
    const job = await this.plan();
    return job === undefined ? undefined : this.run(job, signal);
  }

  /**
   * Runs a job: reads its inputs, writes the outputs and swaps them in. Rejects with
   * CompactionConflictError when the swap was refused (outputs released, nothing changed).
   */
  async run(job: CompactionJob, signal?: AbortSignal): Promise<CompactionResult> {
    let outputs: CommittedObject[] = [];
    try {
      const { runs, bytesRead } = await this.readRuns(job, signal);
      outputs = await this.writeOutputs(job, runs);
      const expected = new Set(outputs.flatMap((o) => o.ranges.map((r) => r.streamId)));
      await this.options.metadata.compactObjects({
        removedObjectIds: job.inputs.map((input) => input.objectId),
        addedObjects: outputs,
        expectedStreams: [...expected].map((streamId) => {
          const { epoch, startOffset } = job.streams.get(streamId)!;
          return { streamId, epoch, startOffset };
        }),
        deleteAfterMs: this.nowMs() + this.options.gcDelayMs,
      });
      const bytesWritten = outputs.reduce((sum, o) => sum + o.sizeBytes, 0);
      compactionJobsTotal.inc({ result: 'done' });
      compactionBytesWrittenTotal.inc(bytesWritten);
      return {
        kind: job.kind,
        removedObjectIds: job.inputs.map((input) => input.objectId),
        addedObjectIds: outputs.map((o) => o.objectId),
        bytesRead,
        bytesWritten,
      };
    } catch (err) {
      compactionJobsTotal.inc({ result: (err as Error).name === 'CompactionConflictError' ? 'aborted' : 'failed' });
      await releaseObjects(this.storeContext, outputs);
      throw err;
    }
  }

  /** Every live batch of the inputs, as contiguous runs per stream (in offset order). */
  private async readRuns(job: CompactionJob, signal: AbortSignal | undefined): Promise<{ runs: UnuploadedRange[]; bytesRead: number }> {
    const segments: UnuploadedRange[] = [];
    let bytesRead = 0;
    for (const input of job.inputs) {
      await this.limiter.take(input.sizeBytes, signal);
      const body = await this.options.objectStore.get(input.key);
      if (body.length !== input.sizeBytes) throw new Error(`object ${input.key}: read ${body.length} bytes, metadata says ${input.sizeBytes}`);
      bytesRead += body.length;
      compactionBytesReadTotal.inc(body.length);
      const reader = await DataObjectReader.open(bufferedObject(input.key, body), input.key, input.sizeBytes);
      for (const range of input.ranges) {
        const stream = job.streams.get(range.streamId);
        if (!isLive(stream, range)) continue;
        const from = Math.max(range.startOffset, stream.startOffset);
        const read = await reader.readRange(range.streamId, from, Number.MAX_SAFE_INTEGER);
        const segment = toSegment(range.streamId, read.batches);
        if (segment === undefined || segment.startOffset > from || segment.endOffset !== range.endOffset) {
          throw new Error(`object ${input.key}: stream ${range.streamId} holds ${segment?.startOffset}..${segment?.endOffset}, metadata says ${from}..${range.endOffset}`);
        }
        segments.push(segment);
      }
    }
    return { runs: joinRuns(segments), bytesRead };
  }

  /** Stores the job's outputs (prepared, not committed). */
  private async writeOutputs(job: CompactionJob, runs: UnuploadedRange[]): Promise<CommittedObject[]> {
    const epochOf = (streamId: number): number => job.streams.get(streamId)!.epoch;
    const maxObjectBytes = this.options.targetObjectBytes;
    const runsPerStream = new Map<number, number>();
    for (const run of runs) runsPerStream.set(run.streamId, (runsPerStream.get(run.streamId) ?? 0) + 1);
    // A stream with several runs cannot share one object (one range per stream): each run alone.
    const alone = runs.filter((run) => job.kind === 'stream' || runsPerStream.get(run.streamId)! > 1);
    const shared = runs.filter((run) => job.kind !== 'stream' && runsPerStream.get(run.streamId) === 1);
    const plan = [
      ...alone.flatMap((run) => planObjects([run], epochOf, { maxObjectBytes, streamSplitSizeBytes: 1 })),
      ...planObjects(shared, epochOf, { maxObjectBytes, streamSplitSizeBytes: this.options.streamSplitSizeBytes }),
    ];
    const outputs: CommittedObject[] = [];
    try {
      for (const parts of plan) outputs.push((await storeObject(this.storeContext, parts)).object);
    } catch (err) {
      await releaseObjects(this.storeContext, outputs);
      throw err;
    }
    return outputs;
  }
}

/** The batches of one stream as a range (base and end offsets from their headers). */
function toSegment(streamId: number, batches: Buffer[]): UnuploadedRange | undefined {
  if (batches.length === 0) return undefined;
  const baseOffsets: number[] = [];
  const endOffsets: number[] = [];
  let sizeBytes = 0;
  for (const batch of batches) {
    const base = batch.readUInt32BE(0) * 0x1_0000_0000 + batch.readUInt32BE(4);
    baseOffsets.push(base);
    endOffsets.push(base + batch.readInt32BE(23) + 1);
    sizeBytes += batch.length;
  }
  return { streamId, startOffset: baseOffsets[0]!, endOffset: endOffsets[endOffsets.length - 1]!, baseOffsets, endOffsets, batches, sizeBytes };
}

/** Segments joined into maximal offset-contiguous runs, by stream then offset. */
export function joinRuns(segments: readonly UnuploadedRange[]): UnuploadedRange[] {
  const sorted = [...segments].sort((a, b) => a.streamId - b.streamId || a.startOffset - b.startOffset);
  const runs: UnuploadedRange[] = [];
  for (const segment of sorted) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last.streamId === segment.streamId && segment.startOffset < last.endOffset) {
      throw new Error(`stream ${segment.streamId}: objects overlap at offsets ${segment.startOffset}..${last.endOffset}`);
    }
    if (last !== undefined && last.streamId === segment.streamId && last.endOffset === segment.startOffset) {
      last.baseOffsets.push(...segment.baseOffsets);
      last.endOffsets.push(...segment.endOffsets);
      last.batches.push(...segment.batches);
      last.endOffset = segment.endOffset;
      last.sizeBytes += segment.sizeBytes;
    } else {
      runs.push({ ...segment, baseOffsets: [...segment.baseOffsets], endOffsets: [...segment.endOffsets], batches: [...segment.batches] });
    }
  }
  return runs;
}

/** A read-only ObjectStore over one object already in memory (ranged reads are slices). */
function bufferedObject(key: string, body: Buffer): ObjectStore {
  const refuse = (): Promise<never> => Promise.reject(new Error('read-only view of one object'));
  return {
    get: async (k, range) => {
      if (k !== key) throw new ObjectNotFoundError(k);
      return range === undefined ? body : body.subarray(Math.min(range.start, body.length), Math.min(range.endExclusive, body.length));
    },
    head: async (k): Promise<ObjectInfo | undefined> => (k === key ? { key, sizeBytes: body.length } : undefined),
    list: async (prefix) => (key.startsWith(prefix) ? [{ key, sizeBytes: body.length }] : []),
    put: refuse,
    delete: refuse,
    close: async () => {},
  };
}
