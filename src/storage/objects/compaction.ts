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
// A job streams: it reads each input's index, then the live data with ranged GETs (a stream of its
// own output COMPACTION_READ_BYTES at a time from each input; small streams sharing outputs a band
// of COMPACTION_BAND_BYTES at a time, one GET per input), and writes each output as it goes
// (prepareObject, then an ObjectUpload whose parts go out as they fill; objects packed as
// upload.ts packs them). So a job holds a band and a part (16 + 8 MiB) whatever targetObjectBytes
// is; reading whole inputs held up to targetObjectBytes (64 MiB) of them at once, the largest
// item of a broker's memory after its caches. The price is requests: in bench/compaction.ts,
// 1,477 GETs and 226 PUTs (parts) per GiB produced, against 254 and 36 with whole objects. Then
// it swaps the outputs in one metadata transaction
// (CompactionMetadata.compactObjects): new objects in, old ones out, fenced so that a stream
// trimmed, re-opened (epoch change) or deleted since the plan aborts the swap with
// CompactionConflictError; commits appending to the streams meanwhile do not (they never touch the
// compacted ranges). The old objects' data is deleted by the collector (gc.ts) only after
// deleteAfterMs: readers that looked them up before the swap may still read them. An aborted job
// releases its outputs at once. Batches are copied byte for byte (slices of the GET, no decoding).

import { setTimeout as sleep } from 'node:timers/promises';
import { Counter, register } from 'prom-client';
import { readBaseOffset, readMaxTimestamp, readOffsetCount } from '../../protocol/records.ts';
import { freeIfOwned } from '../buffers.ts';
import type { CommittedObject } from '../metadata.ts';
import { ObjectUpload } from '../objectstore/objectstore.ts';
import type { ObjectStore } from '../objectstore/objectstore.ts';
import { abandonedPutAttempts } from '../objectstore/retrying.ts';
import { DEFAULT_MAX_STREAMS_PER_OBJECT, objectKey, releaseObjects } from '../upload.ts';
import type { ObjectStoreContext, RangeStats, RecordedRange } from '../upload.ts';
import { DataObjectReader, StreamedDataObjectWriter } from './format.ts';

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
    const outputs: CommittedObject[] = [];
    const bytesRead = { value: 0 };
    try {
      const groups = packingGroups(job, await this.openPieces(job), this.options.streamSplitSizeBytes);
      for (const group of groups) await this.writeGroup(job, group, outputs, bytesRead, signal);
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
        bytesRead: bytesRead.value,
        bytesWritten,
      };
    } catch (err) {
      compactionJobsTotal.inc({ result: (err as Error).name === 'CompactionConflictError' ? 'aborted' : 'failed' });
      await releaseObjects(this.storeContext, outputs);
      throw err;
    }
  }

  /** Every live stream range of the inputs, with the reader of its object (only indexes are read). */
  private async openPieces(job: CompactionJob): Promise<Piece[]> {
    const pieces: Piece[] = [];
    for (const input of job.inputs) {
      const reader = await DataObjectReader.open(this.options.objectStore, input.key, input.sizeBytes);
      const held = new Map(reader.streamRanges().map((r) => [r.streamId, r]));
      for (const range of input.ranges) {
        const stream = job.streams.get(range.streamId);
        if (!isLive(stream, range)) continue;
        const from = Math.max(range.startOffset, stream.startOffset);
        const inObject = held.get(range.streamId);
        if (inObject === undefined || inObject.startOffset > from || inObject.endOffset !== range.endOffset) {
          throw new Error(`object ${input.key}: stream ${range.streamId} holds ${inObject?.startOffset}..${inObject?.endOffset}, metadata says ${from}..${range.endOffset}`);
        }
        // Live bytes, estimated by offsets when the range is partly trimmed.
        const bytes = (rangeBytesOf(input, range) * (range.endOffset - from)) / (range.endOffset - range.startOffset);
        pieces.push({ reader, streamId: range.streamId, from, endOffset: range.endOffset, bytes });
      }
    }
    return pieces;
  }

  /**
   * Writes a group's runs into objects of up to targetObjectBytes and DEFAULT_MAX_STREAMS_PER_OBJECT
   * streams, packed as upload.ts packs them: an object is closed before the batch that would take
   * it past the target (a batch is never split), and before a stream that would be one too many.
   * Batches are read COMPACTION_READ_BYTES at a time and go out in upload parts as they come.
   */
  private async writeGroup(
    job: CompactionJob,
    group: readonly Run[],
    outputs: CommittedObject[],
    bytesRead: { value: number },
    signal: AbortSignal | undefined,
  ): Promise<void> {
    let output: OutputObject | undefined;
    // Bytes read whose batches are all written, freed once sent (unless a PUT attempt abandoned on
    // its timeout may still read them, see abandonedPutAttempts): left to the GC, a job's reads
    // piled up as garbage to about what whole-input reads held.
    const sent: Buffer[] = [];
    const abandonedBefore = abandonedPutAttempts();
    const freeSent = (): void => {
      if (abandonedPutAttempts() === abandonedBefore) for (const span of sent) freeIfOwned(span);
      sent.length = 0;
    };
    const counted = async (bytes: number): Promise<void> => {
      bytesRead.value += bytes;
      compactionBytesReadTotal.inc(bytes);
      await this.limiter.take(bytes, signal);
    };
    try {
      // A group of one run reads it in chunks; runs of a shared group are read a band at a time.
      const bands = group.length === 1 ? [group] : cutBands(group, COMPACTION_BAND_BYTES);
      for (const band of bands) {
        const banded = group.length === 1 ? undefined : await this.readBand(band, counted);
        for (const run of band) {
          if (output !== undefined && output.writer.streamCount >= DEFAULT_MAX_STREAMS_PER_OBJECT) {
            outputs.push(await this.finishOutput(job, output));
            output = undefined;
          }
          for (const piece of run.pieces) {
            for await (const batches of banded === undefined ? this.readPiece(piece, sent, counted) : [banded.batches.get(piece)!]) {
              for (const batch of batches) {
                const written = output?.writer.batchSizeBytes ?? 0;
                if (output !== undefined && written > 0 && written + batch.length > this.options.targetObjectBytes) {
                  outputs.push(await this.finishOutput(job, output));
                  output = undefined;
                }
                output ??= await this.startOutput();
                output.writer.add(piece.streamId, readBaseOffset(batch, 0), readOffsetCount(batch, 0), batch);
                const stats = output.stats.get(piece.streamId) ?? { rangeBytes: 0, maxTimestampMs: Number.NEGATIVE_INFINITY };
                stats.rangeBytes += batch.length;
                stats.maxTimestampMs = Math.max(stats.maxTimestampMs, readMaxTimestamp(batch, 0));
                output.stats.set(piece.streamId, stats);
                await output.upload.write([batch]);
              }
              if (output?.upload.pendingSizeBytes === 0) freeSent();
            }
          }
        }
        if (banded !== undefined) sent.push(...banded.spans);
        if (output?.upload.pendingSizeBytes === 0) freeSent();
      }
      if (output !== undefined) outputs.push(await this.finishOutput(job, output));
      freeSent();
    } catch (err) {
      if (output !== undefined) {
        await output.upload.abort().catch(() => {});
        outputs.push({ objectId: output.objectId, key: output.upload.key, sizeBytes: 0, ranges: [] }); // released by run()
      }
      throw err;
    }
  }

  /** A piece's batches, COMPACTION_READ_BYTES at a time (each read's bytes go to `sent` once yielded). */
  private async *readPiece(piece: Piece, sent: Buffer[], counted: (bytes: number) => Promise<void>): AsyncGenerator<Buffer[]> {
    for (let next = piece.from; next < piece.endOffset; ) {
      const read = await piece.reader.readRange(piece.streamId, next, COMPACTION_READ_BYTES);
      const first = read.batches[0];
      if (first === undefined || (next === piece.from && readBaseOffset(first, 0) > piece.from) || read.nextOffset > piece.endOffset) {
        const got = first === undefined ? 'nothing' : `${readBaseOffset(first, 0)}..${read.nextOffset}`;
        throw new Error(`object ${piece.reader.key}: stream ${piece.streamId} read at ${next} gave ${got}, metadata says ..${piece.endOffset}`);
      }
      await counted(read.span?.length ?? 0);
      yield read.batches;
      if (read.span !== undefined) sent.push(read.span);
      next = read.nextOffset;
    }
  }

  /**
   * The batches of a band's pieces, read with one ranged GET per input and stretch of adjacent
   * blocks (the band's streams are neighbours in every input, which orders streams by id): a
   * band of small streams costs a GET per input, not one per stream and input.
   */
  private async readBand(band: readonly Run[], counted: (bytes: number) => Promise<void>): Promise<{ batches: Map<Piece, Buffer[]>; spans: Buffer[] }> {
    const byReader = new Map<DataObjectReader, { piece: Piece; first: number; last: number }[]>();
    for (const run of band) {
      for (const piece of run.pieces) {
        const first = piece.reader.findBlock(piece.streamId, piece.from);
        if (first < 0) throw new Error(`object ${piece.reader.key}: no block of stream ${piece.streamId} at ${piece.from}, metadata says ..${piece.endOffset}`);
        let last = first;
        while (last + 1 < piece.reader.blockCount && piece.reader.blockStreamId(last + 1) === piece.streamId) last++;
        const list = byReader.get(piece.reader) ?? [];
        list.push({ piece, first, last });
        byReader.set(piece.reader, list);
      }
    }
    const batches = new Map<Piece, Buffer[]>();
    const spans: Buffer[] = [];
    for (const [reader, list] of byReader) {
      list.sort((a, b) => a.first - b.first);
      for (let i = 0; i < list.length; ) {
        let j = i;
        while (j + 1 < list.length && list[j + 1]!.first === list[j]!.last + 1) j++;
        const { span, blocks } = await reader.readBlockSpan(list[i]!.first, list[j]!.last);
        spans.push(span);
        await counted(span.length);
        for (const { piece, first, last } of list.slice(i, j + 1)) {
          const out: Buffer[] = [];
          let end = piece.from;
          for (let b = first; b <= last; b++) {
            reader.forEachBlockBatch(b, blocks[b - list[i]!.first]!, (batch, endOffset) => {
              if (endOffset > piece.from) out.push(batch);
              end = endOffset;
              return true;
            });
          }
          if (out.length === 0 || readBaseOffset(out[0]!, 0) > piece.from || end !== piece.endOffset) {
            throw new Error(`object ${reader.key}: stream ${piece.streamId} holds ${out.length === 0 ? 'nothing' : `${readBaseOffset(out[0]!, 0)}..${end}`}, metadata says ${piece.from}..${piece.endOffset}`);
          }
          batches.set(piece, out);
        }
        i = j + 1;
      }
    }
    return { batches, spans };
  }

  private async startOutput(): Promise<OutputObject> {
    const objectId = await this.options.metadata.prepareObject(this.options.prepareTtlMs);
    const upload = await ObjectUpload.start(this.options.objectStore, objectKey(this.options.objectKeyPrefix, objectId));
    return { objectId, upload, writer: new StreamedDataObjectWriter({ blockSizeBytes: this.options.blockSizeBytes }), stats: new Map() };
  }

  /** Writes the index and footer and completes the upload: the object is stored, not committed. */
  private async finishOutput(job: CompactionJob, output: OutputObject): Promise<CommittedObject> {
    const finished = output.writer.finish();
    await output.upload.write(finished.chunks);
    await output.upload.complete();
    if (output.upload.sizeBytes !== finished.sizeBytes) {
      throw new Error(`object ${output.upload.key}: wrote ${output.upload.sizeBytes} bytes, the writer made ${finished.sizeBytes}`);
    }
    const ranges = finished.ranges.map((range) => ({ ...range, epoch: job.streams.get(range.streamId)!.epoch, ...output.stats.get(range.streamId)! }));
    return { objectId: output.objectId, key: output.upload.key, sizeBytes: finished.sizeBytes, ranges };
  }
}

/**
 * Bytes compaction reads from an input at once. A job holds about this, plus the upload part
 * being filled (DEFAULT_UPLOAD_PART_BYTES), whatever the size of its inputs and outputs.
 */
export const COMPACTION_READ_BYTES = 8 * 1024 * 1024;
/**
 * Bytes of small streams (a shared group's) read at once: a band of streams neighbouring by id,
 * one ranged GET per input. A band holds at least one stream, so up to streamSplitSizeBytes.
 */
export const COMPACTION_BAND_BYTES = 16 * 1024 * 1024;

/** A live stream range of one input. */
interface Piece {
  reader: DataObjectReader;
  streamId: number;
  /** First live offset: the range's start, or the stream's start when it is partly trimmed. */
  from: number;
  endOffset: number;
  /** Live bytes, estimated. */
  bytes: number;
}

/** Offset-contiguous pieces of one stream, in offset order. */
interface Run {
  streamId: number;
  pieces: Piece[];
  bytes: number;
}

/** An output being written. */
interface OutputObject {
  objectId: number;
  upload: ObjectUpload;
  writer: StreamedDataObjectWriter;
  stats: Map<number, RangeStats>;
}

/** Runs (in stream order) cut into bands of about maxBytes, each at least one run. */
function cutBands(runs: readonly Run[], maxBytes: number): Run[][] {
  const bands: Run[][] = [];
  let bytes = 0;
  for (const run of runs) {
    const band = bands[bands.length - 1];
    if (band !== undefined && bytes + run.bytes <= maxBytes) {
      band.push(run);
      bytes += run.bytes;
    } else {
      bands.push([run]);
      bytes = run.bytes;
    }
  }
  return bands;
}

/** Pieces joined into maximal offset-contiguous runs, by stream then offset. */
function joinPieces(pieces: readonly Piece[]): Run[] {
  const sorted = [...pieces].sort((a, b) => a.streamId - b.streamId || a.from - b.from);
  const runs: Run[] = [];
  for (const piece of sorted) {
    const last = runs[runs.length - 1];
    const lastEnd = last === undefined || last.streamId !== piece.streamId ? undefined : last.pieces[last.pieces.length - 1]!.endOffset;
    if (lastEnd !== undefined && piece.from < lastEnd) throw new Error(`stream ${piece.streamId}: objects overlap at offsets ${piece.from}..${lastEnd}`);
    if (lastEnd === piece.from) {
      last!.pieces.push(piece);
      last!.bytes += piece.bytes;
    } else {
      runs.push({ streamId: piece.streamId, pieces: [piece], bytes: piece.bytes });
    }
  }
  return runs;
}

/**
 * The runs cut into groups, each packed into objects of its own, in the order upload.ts plans
 * objects: a stream job's runs, and each run of a stream with several, alone (one stream object
 * holds one range of a stream); then each stream with at least streamSplitSizeBytes, alone; then
 * the rest together (one stream set object, or a few).
 */
function packingGroups(job: CompactionJob, pieces: readonly Piece[], streamSplitSizeBytes: number): Run[][] {
  const runs = joinPieces(pieces);
  const runsPerStream = new Map<number, number>();
  for (const run of runs) runsPerStream.set(run.streamId, (runsPerStream.get(run.streamId) ?? 0) + 1);
  const alone = runs.filter((run) => job.kind === 'stream' || runsPerStream.get(run.streamId)! > 1);
  const shared = runs.filter((run) => job.kind !== 'stream' && runsPerStream.get(run.streamId) === 1);
  const groups = [...alone, ...shared.filter((run) => run.bytes >= streamSplitSizeBytes)].map((run) => [run]);
  const small = shared.filter((run) => run.bytes < streamSplitSizeBytes);
  if (small.length > 0) groups.push(small);
  return groups;
}
