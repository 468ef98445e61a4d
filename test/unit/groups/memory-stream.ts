// An in-memory Stream for unit tests (test-only): appends are durable when `holdAppends` is off,
// or when the test releases them; they always resolve in offset order, as the Stream API says.

import { OffsetOutOfRangeError, type AppendRequest, type ReadResult, type Stream } from '../../../src/storage/stream.ts';

interface StoredBatch {
  baseOffset: number;
  offsetCount: number;
  batch: Buffer;
}

interface PendingAppend {
  endOffset: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

export class MemoryStream implements Stream {
  readonly streamId: number;
  readonly epoch = 0;
  /** While true, appends stay in flight until releaseAppends() or failAppends(). */
  holdAppends = false;
  appendCount = 0;
  private readonly stored: StoredBatch[] = [];
  private readonly pending: PendingAppend[] = [];
  private start = 0;
  private next = 0;
  private confirmed = 0;

  constructor(streamId = 1) {
    this.streamId = streamId;
  }

  startOffset(): number {
    return this.start;
  }

  nextOffset(): number {
    return this.next;
  }

  confirmedOffset(): number {
    return this.confirmed;
  }

  append(request: AppendRequest): Promise<void> {
    if (request.baseOffset !== this.next) {
      return Promise.reject(new Error(`append at ${request.baseOffset}, stream ends at ${this.next}`));
    }
    if (request.offsetCount < 1) return Promise.reject(new Error('offsetCount must be >= 1'));
    this.appendCount++;
    this.next += request.offsetCount;
    this.stored.push({ baseOffset: request.baseOffset, offsetCount: request.offsetCount, batch: request.batch });
    const endOffset = this.next;
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ endOffset, resolve, reject });
      if (!this.holdAppends) this.releaseAppends();
    });
  }

  /** Makes every append in flight durable, in offset order. */
  releaseAppends(): void {
    for (const append of this.pending.splice(0)) {
      this.confirmed = append.endOffset;
      append.resolve();
    }
  }

  /** Fails every append in flight (and drops their batches, as a lost WAL write would). */
  failAppends(error: Error): void {
    const failed = this.pending.splice(0);
    for (const append of failed) {
      this.stored.pop();
      append.reject(error);
    }
    this.next = this.confirmed;
  }

  async read(startOffset: number, maxBytes: number): Promise<ReadResult> {
    if (startOffset < this.start || startOffset > this.next) {
      throw new OffsetOutOfRangeError(this.streamId, startOffset, this.start, this.next);
    }
    const batches: Buffer[] = [];
    let bytes = 0;
    let nextOffset = startOffset;
    for (const stored of this.stored) {
      const end = stored.baseOffset + stored.offsetCount;
      if (end <= startOffset || end > this.confirmed) continue;
      if (batches.length > 0 && bytes + stored.batch.length > maxBytes) break;
      batches.push(stored.batch);
      bytes += stored.batch.length;
      nextOffset = end;
    }
    return { batches, nextOffset };
  }

  async trim(newStartOffset: number): Promise<void> {
    if (newStartOffset < this.start || newStartOffset > this.confirmed) throw new Error(`bad trim to ${newStartOffset}`);
    while (this.stored.length > 0 && this.stored[0]!.baseOffset + this.stored[0]!.offsetCount <= newStartOffset) {
      this.stored.shift();
    }
    this.start = newStartOffset;
  }

  async close(): Promise<void> {}

  /** Batches currently held (after trims). */
  batchCount(): number {
    return this.stored.length;
  }
}
