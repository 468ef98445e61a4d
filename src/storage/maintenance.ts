// Background upkeep of the data objects: retention, garbage collection and compaction, run one
// task at a time by one loop (so at most one compaction job runs, and its reads are paced by a
// RateLimiter of compactionMaxBytesPerSecond).
//
// Retention (Kafka's retention.ms and retention.bytes, per partition): every
// retentionCheckIntervalMs, for each stream the broker owns, the objects from its start offset
// are walked in offset order with their recorded stats (range bytes, largest batch timestamp):
// - by time: objects whose largest timestamp is older than now - retention.ms go;
// - by size: the oldest objects go while the rest still hold at least retention.bytes.
// The stream is trimmed to the start of the first object kept, through its owner (a
// PartitionLog's trim, fenced by the stream's epoch). The granularity is one object, as Kafka's
// is one segment; data not yet uploaded is never trimmed and not counted. The collector then
// frees the objects that hold only trimmed data. cleanup.policy=compact (key compaction) is not
// implemented: a topic whose policy lacks "delete" is left alone.
//
// Garbage collection: every gcIntervalMs (gc.ts). Compaction: every compactionIntervalMs, jobs
// one after another until none is left or maxCompactionJobsPerPass ran (compaction.ts).
//
// In a cluster, retention runs on every broker for the partitions it leads; compaction and
// garbage collection must run on one broker only (the controller's job, once there is one).

import { setTimeout as sleep } from 'node:timers/promises';
import { Counter, register } from 'prom-client';
import { log } from '../metrics/log.ts';
import { readMaxTimestamp } from '../protocol/records.ts';
import type { StreamMetadata } from './metadata.ts';
import { Compactor, DEFAULT_COMPACTION_MAX_BYTES_PER_SECOND, DEFAULT_COMPACTION_TARGET_OBJECT_BYTES, RateLimiter } from './objects/compaction.ts';
import type { CompactionMetadata, CompactionResult } from './objects/compaction.ts';
import { DataObjectReader } from './objects/format.ts';
import { DEFAULT_OBJECT_GC_DELAY_MS, ObjectCollector } from './objects/gc.ts';
import type { GcMetadata, GcResult } from './objects/gc.ts';
import type { ObjectStore } from './objectstore/objectstore.ts';
import { DEFAULT_STREAM_SPLIT_SIZE_BYTES } from './upload.ts';
import type { RangeStats, RecordedObjectRef } from './upload.ts';

export const DEFAULT_COMPACTION_INTERVAL_MS = 30_000;
export const DEFAULT_GC_INTERVAL_MS = 60_000;
/** Kafka's log.retention.check.interval.ms default. */
export const DEFAULT_RETENTION_CHECK_INTERVAL_MS = 300_000;
const DEFAULT_MAX_COMPACTION_JOBS_PER_PASS = 64;
/** Object refs asked of metadata per page when walking a stream for retention. */
const RETENTION_PAGE_OBJECTS = 1000;
/** Stats measured from the data of objects that lack them, remembered per (object, stream). */
const MAX_MEASURED_RANGES = 10_000;

/** A partition as retention sees it: its stream, its topic's limits, and how to trim it. */
export interface RetentionTarget {
  streamId: number;
  /** Kafka retention.ms; negative: no limit by time. */
  retentionMs: number;
  /** Kafka retention.bytes (per partition); negative: no limit by size. */
  retentionBytes: number;
  /** Moves the partition's log start offset (PartitionLog.trim: fenced by the stream's epoch). */
  trim(newStartOffset: number): Promise<void>;
}

export interface RetentionPolicy {
  retentionMs: number;
  retentionBytes: number;
}

/**
 * A topic's retention from its configs, with `defaults` (Kafka's) for what is not set; undefined
 * when its cleanup.policy does not include "delete" (compact-only topics are never trimmed).
 */
export function retentionPolicyOf(configs: Readonly<Record<string, string>>, defaults: Readonly<Record<string, string>>): RetentionPolicy | undefined {
  const value = (name: string): string | undefined => configs[name] ?? defaults[name];
  const policies = (value('cleanup.policy') ?? 'delete').split(',').map((p) => p.trim());
  if (!policies.includes('delete')) return undefined;
  const number = (name: string): number => {
    const parsed = Number(value(name) ?? -1);
    return Number.isFinite(parsed) ? parsed : -1;
  };
  return { retentionMs: number('retention.ms'), retentionBytes: number('retention.bytes') };
}

/** An object of a stream, in offset order, with its range's stats. */
export interface MeasuredRef extends RangeStats {
  startOffset: number;
  endOffset: number;
}

/**
 * The start offset retention asks for, given the stream's objects from its current start (in
 * offset order): past every object older than nowMs - retentionMs, and past the oldest objects
 * while the rest hold at least retentionBytes. Undefined when nothing is to be trimmed.
 */
export function retentionStartOffset(refs: readonly MeasuredRef[], policy: RetentionPolicy, nowMs: number): number | undefined {
  let drop = 0;
  if (policy.retentionMs >= 0) {
    const cutoffMs = nowMs - policy.retentionMs;
    while (drop < refs.length && refs[drop]!.maxTimestampMs < cutoffMs) drop++;
  }
  if (policy.retentionBytes >= 0) {
    let total = 0;
    for (const ref of refs) total += ref.rangeBytes;
    let bySize = 0;
    while (bySize < refs.length && total - refs[bySize]!.rangeBytes >= policy.retentionBytes) total -= refs[bySize++]!.rangeBytes;
    drop = Math.max(drop, bySize);
  }
  return drop === 0 ? undefined : refs[drop - 1]!.endOffset;
}

export type MaintenanceMetadata = StreamMetadata & CompactionMetadata & GcMetadata;

export interface MaintenanceOptions {
  metadata: MaintenanceMetadata;
  objectStore: ObjectStore;
  /** The stream storage's objectKeyPrefix. */
  objectKeyPrefix?: string;
  objectBlockSizeBytes?: number;
  /** The stream storage's prepareTtlMs (compaction's outputs use it too). */
  prepareTtlMs: number;
  /** The partitions this broker leads (asked again on each retention pass). */
  retentionTargets?: () => Promise<RetentionTarget[]>;
  retentionCheckIntervalMs?: number;
  gcIntervalMs?: number;
  gcDelayMs?: number;
  orphanScanIntervalMs?: number;
  compactionIntervalMs?: number;
  compactionTargetObjectBytes?: number;
  compactionMaxBytesPerSecond?: number;
  maxCompactionJobsPerPass?: number;
  streamSplitSizeBytes?: number;
  nowMs?: () => number;
}

const retentionTrimsTotal = counter('wharf_retention_trims_total', 'Streams trimmed by retention (retention.ms, retention.bytes).');

function counter(name: string, help: string): Counter {
  return (register.getSingleMetric(name) as Counter | undefined) ?? new Counter({ name, help });
}

interface Task {
  name: string;
  intervalMs: number;
  dueMs: number;
  run: (signal: AbortSignal) => Promise<unknown>;
}

export class StorageMaintenance {
  readonly compactor: Compactor;
  readonly collector: ObjectCollector;
  private readonly metadata: MaintenanceMetadata;
  private readonly objectStore: ObjectStore;
  private readonly retentionTargets: () => Promise<RetentionTarget[]>;
  private readonly maxCompactionJobsPerPass: number;
  private readonly nowMs: () => number;
  private readonly tasks: Task[];
  private readonly measured = new Map<string, RangeStats>();
  private stopping: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(options: MaintenanceOptions) {
    this.metadata = options.metadata;
    this.objectStore = options.objectStore;
    this.retentionTargets = options.retentionTargets ?? (async () => []);
    this.maxCompactionJobsPerPass = options.maxCompactionJobsPerPass ?? DEFAULT_MAX_COMPACTION_JOBS_PER_PASS;
    this.nowMs = options.nowMs ?? Date.now;
    const objectKeyPrefix = options.objectKeyPrefix ?? '';
    const gcDelayMs = options.gcDelayMs ?? DEFAULT_OBJECT_GC_DELAY_MS;
    this.compactor = new Compactor({
      metadata: options.metadata,
      objectStore: options.objectStore,
      objectKeyPrefix,
      blockSizeBytes: options.objectBlockSizeBytes,
      prepareTtlMs: options.prepareTtlMs,
      gcDelayMs,
      targetObjectBytes: options.compactionTargetObjectBytes ?? DEFAULT_COMPACTION_TARGET_OBJECT_BYTES,
      streamSplitSizeBytes: options.streamSplitSizeBytes ?? DEFAULT_STREAM_SPLIT_SIZE_BYTES,
      rateLimiter: new RateLimiter(options.compactionMaxBytesPerSecond ?? DEFAULT_COMPACTION_MAX_BYTES_PER_SECOND),
      nowMs: this.nowMs,
    });
    this.collector = new ObjectCollector({
      metadata: options.metadata,
      objectStore: options.objectStore,
      objectKeyPrefix,
      gcDelayMs,
      orphanScanIntervalMs: options.orphanScanIntervalMs,
      nowMs: this.nowMs,
    });
    const task = (name: string, intervalMs: number, run: (signal: AbortSignal) => Promise<unknown>): Task => {
      if (!(intervalMs > 0)) throw new RangeError(`maintenance: ${name} interval must be positive`);
      return { name, intervalMs, dueMs: 0, run };
    };
    this.tasks = [
      task('retention', options.retentionCheckIntervalMs ?? DEFAULT_RETENTION_CHECK_INTERVAL_MS, () => this.applyRetention()),
      task('gc', options.gcIntervalMs ?? DEFAULT_GC_INTERVAL_MS, () => this.collectGarbage()),
      task('compaction', options.compactionIntervalMs ?? DEFAULT_COMPACTION_INTERVAL_MS, (signal) => this.compact(this.maxCompactionJobsPerPass, signal)),
    ];
  }

  /** Starts the background loop; each task first runs one interval from now. */
  start(): void {
    if (this.loop !== undefined) throw new Error('StorageMaintenance already started');
    const now = performance.now();
    for (const task of this.tasks) task.dueMs = now + task.intervalMs;
    this.stopping = new AbortController();
    this.loop = this.run(this.stopping.signal);
  }

  /** Stops the loop, waiting for the task under way (a compaction job is abandoned at its next pause). */
  async stop(): Promise<void> {
    this.stopping?.abort();
    await this.loop;
    this.loop = undefined;
  }

  /** One retention pass over the targets; returns how many streams were trimmed. */
  async applyRetention(): Promise<number> {
    let trimmed = 0;
    for (const target of await this.retentionTargets()) {
      try {
        if (await this.applyRetentionTo(target)) trimmed++;
      } catch (err) {
        log.warn({ streamId: target.streamId, err: (err as Error).message }, 'retention: stream not trimmed');
      }
    }
    return trimmed;
  }

  collectGarbage(): Promise<GcResult> {
    return this.collector.collect();
  }

  /** Runs compaction jobs until none is left or maxJobs ran; a refused swap is skipped. */
  async compact(maxJobs: number = Number.POSITIVE_INFINITY, signal?: AbortSignal): Promise<CompactionResult[]> {
    const results: CompactionResult[] = [];
    for (let aborted = 0; results.length + aborted < maxJobs && signal?.aborted !== true; ) {
      try {
        const result = await this.compactor.runOnce(signal);
        if (result === undefined) break;
        results.push(result);
      } catch (err) {
        if ((err as Error).name !== 'CompactionConflictError') throw err;
        log.info({ err: (err as Error).message }, 'compaction job aborted; planning again');
        aborted++;
      }
    }
    return results;
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const task = this.tasks.reduce((a, b) => (b.dueMs < a.dueMs ? b : a));
      const waitMs = task.dueMs - performance.now();
      if (waitMs > 0) {
        try {
          await sleep(waitMs, undefined, { signal, ref: false });
        } catch {
          return; // aborted
        }
      }
      try {
        await task.run(signal);
      } catch (err) {
        if (!signal.aborted) log.warn({ task: task.name, err }, 'storage maintenance task failed; it runs again at its next interval');
      }
      task.dueMs = performance.now() + task.intervalMs;
    }
  }

  private async applyRetentionTo(target: RetentionTarget): Promise<boolean> {
    if (target.retentionMs < 0 && target.retentionBytes < 0) return false;
    const stream = await this.metadata.getStream(target.streamId);
    if (stream === undefined || stream.endOffset <= stream.startOffset) return false;
    const refs: MeasuredRef[] = [];
    for (let next = stream.startOffset; next < stream.endOffset; ) {
      const page = await this.metadata.getObjects(target.streamId, next, stream.endOffset, RETENTION_PAGE_OBJECTS);
      for (const ref of page) refs.push({ startOffset: ref.startOffset, endOffset: ref.endOffset, ...(await this.statsOf(target.streamId, ref)) });
      if (page.length < RETENTION_PAGE_OBJECTS) break;
      next = page[page.length - 1]!.endOffset;
    }
    const newStart = retentionStartOffset(refs, target, this.nowMs());
    if (newStart === undefined || newStart <= stream.startOffset) return false;
    await target.trim(newStart);
    retentionTrimsTotal.inc();
    log.info({ streamId: target.streamId, from: stream.startOffset, to: newStart }, 'retention trimmed a stream');
    return true;
  }

  /** A ref's recorded stats, or (objects written before stats were recorded) measured from its data. */
  private async statsOf(streamId: number, ref: RecordedObjectRef): Promise<RangeStats> {
    if (ref.rangeBytes !== undefined && ref.maxTimestampMs !== undefined) return { rangeBytes: ref.rangeBytes, maxTimestampMs: ref.maxTimestampMs };
    const cacheKey = `${ref.objectId}/${streamId}`;
    const known = this.measured.get(cacheKey);
    if (known !== undefined) return known;
    const reader = await DataObjectReader.open(this.objectStore, ref.key, ref.sizeBytes);
    const read = await reader.readRange(streamId, ref.startOffset, Number.MAX_SAFE_INTEGER);
    const stats: RangeStats = { rangeBytes: 0, maxTimestampMs: Number.NEGATIVE_INFINITY };
    for (const batch of read.batches) {
      stats.rangeBytes += batch.length;
      stats.maxTimestampMs = Math.max(stats.maxTimestampMs, readMaxTimestamp(batch, 0));
    }
    if (this.measured.size >= MAX_MEASURED_RANGES) this.measured.delete(this.measured.keys().next().value!);
    this.measured.set(cacheKey, stats);
    return stats;
  }
}
