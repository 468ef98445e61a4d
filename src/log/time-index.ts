// Sparse in-memory time index of one partition, for ListOffsets by timestamp.
//
// Every `intervalBytes` of appended batches it records (maxTimestampSoFar, offset): every batch
// observed below `offset` has maxTimestamp <= maxTimestampSoFar. The entries' timestamps never
// decrease, so a binary search finds the last entry whose timestamp is below a target, and the
// search through the stream can start at its offset. The index only knows the batches it was
// shown, from `coveredFromOffset` on. When full it drops every other entry and doubles its
// interval, so it stays bounded and still covers the whole partition.

/** The index as plain JSON, for the partition snapshot. */
export interface TimeIndexState {
  intervalBytes: number;
  timestamps: number[];
  offsets: number[];
  /** null before any batch was seen. */
  maxTimestampSoFar: number | null;
  bytesSinceEntry: number;
  nextOffset: number;
  coveredFrom: number;
}

export class TimeIndex {
  private readonly maxEntries: number;
  private intervalBytes: number;
  private timestamps: number[] = [];
  private offsets: number[] = [];
  private maxTimestampSoFar = Number.NEGATIVE_INFINITY;
  private bytesSinceEntry = 0;
  private nextOffset = 0;
  private coveredFrom = 0;

  constructor(intervalBytes: number, maxEntries: number) {
    if (!(intervalBytes > 0) || !(maxEntries >= 2)) throw new RangeError('time index needs intervalBytes > 0, maxEntries >= 2');
    this.intervalBytes = intervalBytes;
    this.maxEntries = maxEntries;
  }

  /** First offset the index has seen every batch from. */
  get coveredFromOffset(): number {
    return this.coveredFrom;
  }

  get entryCount(): number {
    return this.timestamps.length;
  }

  /** Forgets everything; the next batch observed must start at `offset`. */
  reset(offset: number): void {
    this.timestamps = [];
    this.offsets = [];
    this.maxTimestampSoFar = Number.NEGATIVE_INFINITY;
    this.bytesSinceEntry = 0;
    this.nextOffset = offset;
    this.coveredFrom = offset;
  }

  /**
   * Records batches [baseOffset, nextOffset) of sizeBytes whose largest timestamp is
   * maxTimestamp. Batches already seen are ignored.
   */
  observe(baseOffset: number, nextOffset: number, maxTimestamp: number, sizeBytes: number): void {
    if (nextOffset <= this.nextOffset && baseOffset >= this.coveredFrom) return;
    // The stream hands out offsets contiguously; anything else means the index lost track.
    if (baseOffset !== this.nextOffset) this.reset(baseOffset);
    this.nextOffset = nextOffset;
    if (maxTimestamp > this.maxTimestampSoFar) this.maxTimestampSoFar = maxTimestamp;
    this.bytesSinceEntry += sizeBytes;
    if (this.bytesSinceEntry < this.intervalBytes) return;
    this.bytesSinceEntry = 0;
    if (this.timestamps.length === this.maxEntries) this.thin();
    this.timestamps.push(this.maxTimestampSoFar);
    this.offsets.push(nextOffset);
  }

  /**
   * An offset at which the search for the first record with timestamp >= target may start:
   * every batch in [coveredFromOffset, result) has maxTimestamp < target.
   */
  lookup(targetTimestampMs: number): number {
    let low = 0;
    let high = this.timestamps.length - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (this.timestamps[mid] < targetTimestampMs) {
        found = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return found < 0 ? this.coveredFrom : this.offsets[found];
  }

  /** The log start moved: entries at or below it no longer help. */
  truncateBelow(startOffset: number): void {
    let drop = 0;
    while (drop < this.offsets.length && this.offsets[drop] <= startOffset) drop++;
    if (drop > 0) {
      this.timestamps.splice(0, drop);
      this.offsets.splice(0, drop);
    }
    if (startOffset > this.coveredFrom) this.coveredFrom = Math.min(startOffset, this.nextOffset);
  }

  toState(): TimeIndexState {
    return {
      intervalBytes: this.intervalBytes,
      timestamps: this.timestamps.slice(),
      offsets: this.offsets.slice(),
      maxTimestampSoFar: Number.isFinite(this.maxTimestampSoFar) ? this.maxTimestampSoFar : null,
      bytesSinceEntry: this.bytesSinceEntry,
      nextOffset: this.nextOffset,
      coveredFrom: this.coveredFrom,
    };
  }

  /** Replaces the index with a saved one; false (index unchanged) when the state is malformed. */
  restore(state: TimeIndexState): boolean {
    const ints = (values: unknown[]): boolean => values.every((v) => typeof v === 'number' && Number.isSafeInteger(v));
    const ok =
      ints([state.intervalBytes, state.bytesSinceEntry, state.nextOffset, state.coveredFrom]) &&
      state.intervalBytes > 0 &&
      Array.isArray(state.timestamps) && Array.isArray(state.offsets) &&
      state.timestamps.length === state.offsets.length && state.timestamps.length <= this.maxEntries &&
      ints(state.timestamps) && ints(state.offsets) &&
      (state.maxTimestampSoFar === null || ints([state.maxTimestampSoFar]));
    if (!ok) return false;
    this.intervalBytes = state.intervalBytes;
    this.timestamps = state.timestamps.slice();
    this.offsets = state.offsets.slice();
    this.maxTimestampSoFar = state.maxTimestampSoFar ?? Number.NEGATIVE_INFINITY;
    this.bytesSinceEntry = state.bytesSinceEntry;
    this.nextOffset = state.nextOffset;
    this.coveredFrom = state.coveredFrom;
    return true;
  }

  /** Offset after the last batch observed. */
  get observedUntilOffset(): number {
    return this.nextOffset;
  }

  private thin(): void {
    this.timestamps = this.timestamps.filter((_, i) => i % 2 === 1);
    this.offsets = this.offsets.filter((_, i) => i % 2 === 1);
    this.intervalBytes *= 2;
  }
}
