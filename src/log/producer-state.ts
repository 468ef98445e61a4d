// Idempotent producer state of one partition, after Kafka's ProducerStateManager: per producer
// id, its epoch and the sequence ranges and offsets of its last 5 batches, which is what a
// producer with up to 5 requests in flight may retry.
//
// Entries are immutable snapshots: an append builds new entries, commits them synchronously when
// it issues its stream appends (so later appends are checked against it), and rolls them back if
// the stream write fails. `previous` links an in-flight entry to the one it replaced.

import { ErrorCode } from '../protocol/errors.ts';
import type { TimeIndexState } from './time-index.ts';

/** Batches kept per producer for duplicate detection (Kafka's NUM_BATCHES_TO_RETAIN). */
export const RETAINED_BATCHES_PER_PRODUCER = 5;
const INT32_MAX = 0x7fffffff;

export interface ProducerBatch {
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly baseOffset: number;
  readonly lastOffsetDelta: number;
  /** The batch's maxTimestamp as stored (the broker's time for LogAppendTime). */
  readonly timestampMs: number;
  /** Set while the append is in flight: resolves to its error code (0 once durable). */
  durable: Promise<number> | undefined;
}

export interface ProducerEntry {
  readonly producerId: number;
  readonly epoch: number;
  /** Oldest first, at most RETAINED_BATCHES_PER_PRODUCER. */
  readonly batches: readonly ProducerBatch[];
  readonly lastTimestampMs: number;
  /** The committed entry this one replaced, kept while this entry's append is in flight. */
  previous: ProducerEntry | undefined;
  rolledBack: boolean;
}

export type SequenceVerdict =
  | { readonly kind: 'accept' }
  | { readonly kind: 'duplicate'; readonly batch: ProducerBatch }
  | { readonly kind: 'reject'; readonly errorCode: number };

const ACCEPT: SequenceVerdict = { kind: 'accept' };
const REJECT_EPOCH: SequenceVerdict = { kind: 'reject', errorCode: ErrorCode.INVALID_PRODUCER_EPOCH };
const REJECT_SEQUENCE: SequenceVerdict = { kind: 'reject', errorCode: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER };

/**
 * What a snapshot holds: the producer state after every batch below `offset`, and the
 * partition's time index (so ListOffsets stays cheap after a restart). Plain JSON.
 */
export interface ProducerStateSnapshot {
  version: 1;
  offset: number;
  producers: ProducerSnapshotEntry[];
  timeIndex?: TimeIndexState;
}

export interface ProducerSnapshotEntry {
  producerId: number;
  epoch: number;
  lastTimestampMs: number;
  batches: { firstSeq: number; lastSeq: number; baseOffset: number; lastOffsetDelta: number; timestampMs: number }[];
}

function inSequence(lastSeq: number, nextSeq: number): boolean {
  return nextSeq === lastSeq + 1 || (nextSeq === 0 && lastSeq === INT32_MAX);
}

/**
 * Kafka's rules (ProducerAppendInfo.checkProducerEpoch / checkSequence, and the duplicate
 * lookup of UnifiedLog): a retry of one of the last 5 batches of the same epoch is a duplicate;
 * an older epoch is INVALID_PRODUCER_EPOCH; a newer epoch must start at sequence 0; the same
 * epoch must continue at lastSeq + 1 (wrapping at int32 max); otherwise
 * OUT_OF_ORDER_SEQUENCE_NUMBER. A producer without state is accepted at any sequence (Kafka
 * 2.5+, KIP-360: its records may have been removed by retention).
 */
export function checkSequence(entry: ProducerEntry | undefined, epoch: number, firstSeq: number, lastSeq: number): SequenceVerdict {
  if (entry === undefined) return ACCEPT;
  if (epoch === entry.epoch) {
    for (const batch of entry.batches) {
      if (batch.firstSeq === firstSeq && batch.lastSeq === lastSeq) return { kind: 'duplicate', batch };
    }
  }
  if (epoch < entry.epoch) return REJECT_EPOCH;
  if (epoch > entry.epoch) return firstSeq === 0 ? ACCEPT : REJECT_SEQUENCE;
  const last = entry.batches.at(-1);
  if (last === undefined) return ACCEPT;
  return inSequence(last.lastSeq, firstSeq) ? ACCEPT : REJECT_SEQUENCE;
}

/** A new entry: `entry` (if any, same epoch) plus `batch`, keeping the last 5 batches. */
export function withBatch(
  entry: ProducerEntry | undefined,
  producerId: number,
  epoch: number,
  batch: ProducerBatch,
  lastTimestampMs: number,
  previous: ProducerEntry | undefined,
): ProducerEntry {
  const kept = entry !== undefined && entry.epoch === epoch ? entry.batches : [];
  const batches = kept.length < RETAINED_BATCHES_PER_PRODUCER ? [...kept, batch] : [...kept.slice(1), batch];
  return { producerId, epoch, batches, lastTimestampMs, previous, rolledBack: false };
}

function isInFlight(entry: ProducerEntry): boolean {
  return entry.batches.some((batch) => batch.durable !== undefined);
}

export class ProducerStateTable {
  // Map order is update order: the first entries are the least recently written producers.
  private readonly entries = new Map<number, ProducerEntry>();
  private readonly maxProducerIds: number;

  constructor(maxProducerIds: number) {
    if (!(maxProducerIds > 0)) throw new RangeError(`maxProducerIds must be positive, got ${maxProducerIds}`);
    this.maxProducerIds = maxProducerIds;
  }

  get size(): number {
    return this.entries.size;
  }

  get(producerId: number): ProducerEntry | undefined {
    return this.entries.get(producerId);
  }

  /** Installs entries (built with withBatch); evicts the least recently written over the cap. */
  commit(entry: ProducerEntry): void {
    this.entries.delete(entry.producerId);
    this.entries.set(entry.producerId, entry);
    if (this.entries.size > this.maxProducerIds) this.evictOldest(this.entries.size - this.maxProducerIds);
  }

  /** The append that built `entry` is durable: it no longer needs a rollback target. */
  settle(entry: ProducerEntry): void {
    entry.previous = undefined;
  }

  /**
   * The append that built `entry` failed. Appends fail in offset order, so every later entry of
   * this producer (built on this one) is undone with it: the producer returns to the entry this
   * one replaced.
   */
  rollback(entry: ProducerEntry): void {
    if (entry.rolledBack) return;
    const current = this.entries.get(entry.producerId);
    let cursor = current;
    while (cursor !== undefined && cursor !== entry) cursor = cursor.previous;
    if (cursor === undefined) return; // not in the chain any more (state was replaced): nothing to undo
    for (let undo = current; undo !== undefined && undo !== entry.previous; undo = undo.previous) undo.rolledBack = true;
    if (entry.previous === undefined) this.entries.delete(entry.producerId);
    else this.entries.set(entry.producerId, entry.previous);
  }

  /**
   * Applies a stored batch without checks (rebuilding from the stream, like a follower).
   * lastTimestampMs is the replay time, not the batch's client timestamp, so that a replayed
   * producer is kept for a whole expiration interval whatever its clock said.
   */
  replay(producerId: number, epoch: number, batch: ProducerBatch, lastTimestampMs: number): void {
    const current = this.entries.get(producerId);
    if (current !== undefined && epoch < current.epoch) return;
    this.commit(withBatch(current, producerId, epoch, batch, lastTimestampMs, undefined));
  }

  /** Drops producers idle for longer than expirationMs (Kafka's producer.id.expiration.ms). */
  expire(nowMs: number, expirationMs: number): number {
    let expired = 0;
    for (const [producerId, entry] of this.entries) {
      if (nowMs - entry.lastTimestampMs > expirationMs && !isInFlight(entry)) {
        this.entries.delete(producerId);
        expired++;
      }
    }
    return expired;
  }

  /** The durable state as of `offset`. Call only when every append below offset is durable. */
  toSnapshot(offset: number): ProducerStateSnapshot {
    const producers: ProducerSnapshotEntry[] = [];
    for (const entry of this.entries.values()) {
      producers.push({
        producerId: entry.producerId,
        epoch: entry.epoch,
        lastTimestampMs: entry.lastTimestampMs,
        batches: entry.batches.map(({ firstSeq, lastSeq, baseOffset, lastOffsetDelta, timestampMs }) => ({
          firstSeq, lastSeq, baseOffset, lastOffsetDelta, timestampMs,
        })),
      });
    }
    return { version: 1, offset, producers };
  }

  /** Replaces the state with a snapshot's. Throws on a malformed snapshot. */
  restore(snapshot: ProducerStateSnapshot): void {
    assertSnapshot(snapshot);
    this.entries.clear();
    for (const producer of snapshot.producers) {
      const batches = producer.batches.slice(-RETAINED_BATCHES_PER_PRODUCER).map((batch) => ({ ...batch, durable: undefined }));
      this.commit({
        producerId: producer.producerId,
        epoch: producer.epoch,
        batches,
        lastTimestampMs: producer.lastTimestampMs,
        previous: undefined,
        rolledBack: false,
      });
    }
  }

  private evictOldest(count: number): void {
    for (const [producerId, entry] of this.entries) {
      if (count <= 0) return;
      if (isInFlight(entry)) continue;
      this.entries.delete(producerId);
      count--;
    }
  }
}

function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

function assertSnapshot(snapshot: ProducerStateSnapshot): void {
  const ok =
    snapshot.version === 1 &&
    isInt(snapshot.offset) &&
    Array.isArray(snapshot.producers) &&
    snapshot.producers.every(
      (p) =>
        isInt(p.producerId) && isInt(p.epoch) && isInt(p.lastTimestampMs) && Array.isArray(p.batches) &&
        p.batches.every((b) => isInt(b.firstSeq) && isInt(b.lastSeq) && isInt(b.baseOffset) && isInt(b.lastOffsetDelta) && isInt(b.timestampMs)),
    );
  if (!ok) throw new Error('malformed producer state snapshot');
}
