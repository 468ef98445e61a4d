// What stream storage needs from a write-ahead log. The file WAL (file-wal.ts) and the object
// WAL (object-wal.ts) implement it.
//
// Positions are logical WAL offsets: they only grow. A record's end offset is what trim() takes
// to release it (and every record before it).

export interface WalRecord {
  streamId: number;
  /** The stream's epoch when the record was appended. */
  epoch: number;
  baseOffset: number;
  /** Offsets the batch takes (last offset delta + 1). */
  offsetCount: number;
  /** The Kafka record batch (a slice of a recovery read buffer). */
  batch: Buffer;
  /** Logical WAL offset of the record, and of the byte after it. */
  walOffset: number;
  walEndOffset: number;
}

/** An append waiting to be written; both WAL implementations queue these. */
export interface PendingAppend {
  streamId: number;
  epoch: number;
  baseOffset: number;
  offsetCount: number;
  batch: Buffer;
  /** The batch's verified CRC-32C (AppendRequest.batchCrc), if known. */
  batchCrc: number | undefined;
  resolve: (walEndOffset: number) => void;
  reject: (err: Error) => void;
}

/** Where a WAL stands in its recovery (appends and trims wait for 'done'). */
export type WalRecoveryState = 'pending' | 'running' | 'done';

/** Why the WAL refuses to be appended to or trimmed now, if it does (both WALs check the same). */
export function walRefusal(failure: Error | undefined, closed: boolean, recoveryState: WalRecoveryState, op: 'appended to' | 'trimmed'): Error | undefined {
  if (failure !== undefined) return failure;
  if (closed) return new Error('WAL is closed');
  if (recoveryState !== 'done') return new Error(`WAL ${op} before recovery finished`);
  return undefined;
}

/** Why an append's record is refused, if it is: too large a batch, or a bad offset count. */
export function recordRefusal(batchBytes: number, maxBatchBytes: number, offsetCount: number): Error | undefined {
  if (batchBytes > maxBatchBytes) return new RangeError(`batch of ${batchBytes} bytes exceeds the WAL's ${maxBatchBytes}`);
  if (offsetCount < 1 || offsetCount > 0x1_0000_0000) return new RangeError(`bad offset count ${offsetCount}`);
  return undefined;
}

export interface WalStats {
  /** Group-commit writes and sync points (fdatasyncs, or durable writes; trims and pads included). */
  writes: number;
  fsyncs: number;
  records: number;
  bytesWritten: number;
}

export interface WriteAheadLog {
  /**
   * Yields every record between the trim offset and the first torn or stale one, in WAL order.
   * Must run to completion once, before the first append.
   */
  recover(): AsyncGenerator<WalRecord, void, undefined>;
  /**
   * Queues a record; resolves with its WAL end offset once it is durable. Records become durable
   * in append order. Waits (backpressure) while the WAL is full. batchCrc: see AppendRequest.
   */
  append(streamId: number, epoch: number, baseOffset: number, offsetCount: number, batch: Buffer, batchCrc?: number): Promise<number>;
  /** Releases every record that ends at or before walOffset; resolves once that is persisted. */
  trim(walOffset: number): Promise<void>;
  /** Largest batch append() accepts. */
  maxBatchBytes(): number;
  capacityBytes(): number;
  /** Bytes between the trim offset and the end of the last write (what is not yet released). */
  usedBytes(): number;
  /** Called when usedBytes passes the pressure threshold, or when appends wait for space. */
  setPressureListener(listener: () => void): void;
  stats(): WalStats;
  /** Finishes queued writes, then closes. Later appends reject. */
  close(): Promise<void>;
}
