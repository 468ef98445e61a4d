// The Stream API the log layer uses. A stream is an append-only sequence of Kafka record
// batches addressed by offset; its data lives in the WAL and log cache until it is uploaded to
// objects. Offsets are record offsets (a batch of N records takes N offsets).

export interface AppendRequest {
  /** Offset of the batch's first record; must equal the stream's nextOffset() at call time. */
  baseOffset: number;
  /** Number of offsets the batch takes (lastOffsetDelta + 1). */
  offsetCount: number;
  /** The whole Kafka record batch, base offset already rewritten. Not copied: do not reuse. */
  batch: Buffer;
  /**
   * The batch's CRC-32C (its CRC field: attributes to the end), when the caller has just checked
   * it against the bytes; the WAL's record CRC then reads only the batch's first 21 bytes again.
   */
  batchCrc?: number;
}

/** Pins memory that is reused once released (log cache slabs). */
export interface ReadLease {
  /** The reader is done with the batches; later calls do nothing. */
  release(): void;
}

export function releaseAll(leases: Iterable<ReadLease>): void {
  for (const lease of leases) lease.release();
}

/**
 * A read's pins on what holds its batches (log cache slabs, cached blocks), each given back with
 * `unpin` once, on release(). The owner takes a pin before handing it over (add, or the list the
 * lease starts with); a pin handed over after the release is given back at once.
 */
export class PinLease<T> implements ReadLease {
  private readonly unpin: (item: T) => void;
  private pinned: T[] | undefined;

  constructor(unpin: (item: T) => void, pinned: T[] = []) {
    this.unpin = unpin;
    this.pinned = pinned;
  }

  /** Takes over a pin on `item`. */
  add(item: T): void {
    if (this.pinned === undefined) this.unpin(item);
    else this.pinned.push(item);
  }

  release(): void {
    const pinned = this.pinned;
    if (pinned === undefined) return;
    this.pinned = undefined;
    for (const item of pinned) this.unpin(item);
  }
}

export interface ReadResult {
  /** Whole batches in offset order; the first holds startOffset. Slices, not copies. */
  batches: Buffer[];
  /** Offset after the last batch returned. */
  nextOffset: number;
  /**
   * Set when the batches are views of log cache memory: it is reused after release(), so release
   * only once nothing reads them any more. A lease never released leaves that memory to the GC.
   */
  lease?: ReadLease;
}

export interface Stream {
  readonly streamId: number;
  readonly epoch: number;
  /** First readable offset. */
  startOffset(): number;
  /** Offset the next append takes (advances synchronously when append is called). */
  nextOffset(): number;
  /** Offset up to which appends are durable (the high watermark material). */
  confirmedOffset(): number;
  /**
   * Appends a batch. Synchronous offset bookkeeping, then resolves once the batch is durable in
   * the WAL. Many appends may be in flight; they resolve in offset order. Throws at once when
   * baseOffset is not nextOffset() or the batch is larger than the WAL takes; rejects when the
   * stream is closed or fenced (StreamFencedError: another node opened it with a newer epoch).
   */
  append(request: AppendRequest): Promise<void>;
  /**
   * Reads whole batches starting at the batch that holds startOffset, up to about maxBytes (at
   * least one batch when any is available), never past confirmedOffset(): from confirmedOffset()
   * up to nextOffset() it returns no batches. Reading below startOffset() or past nextOffset()
   * rejects with OffsetOutOfRangeError.
   */
  read(startOffset: number, maxBytes: number): Promise<ReadResult>;
  trim(newStartOffset: number): Promise<void>;
  close(): Promise<void>;
}

export interface StreamStorage {
  /** Replays the WAL (recovery) and starts background upload. */
  start(): Promise<void>;
  /** Creates a stream and opens it here. */
  createStream(): Promise<Stream>;
  /** Takes ownership (epoch + 1). Fails while the stream is already open on this node. */
  openStream(streamId: number): Promise<Stream>;
  /** Uploads all unuploaded data to objects and trims the WAL past it. */
  flush(): Promise<void>;
  /** Flushes, then stops. */
  shutdown(): Promise<void>;
}

export class OffsetOutOfRangeError extends Error {
  constructor(streamId: number, offset: number, start: number, end: number) {
    super(`stream ${streamId}: offset ${offset} outside [${start}, ${end})`);
    this.name = 'OffsetOutOfRangeError';
  }
}
