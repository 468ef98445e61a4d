// An in-memory Stream for unit tests of the log layer. Appends become durable on the next
// microtask, or when the test says so (hold / release / fail), in offset order.

import { OffsetOutOfRangeError, type AppendRequest, type ReadResult, type Stream } from '../../../src/storage/stream.ts';

interface StoredBatch {
  baseOffset: number;
  nextOffset: number;
  batch: Buffer;
}

interface PendingAppend {
  stored: StoredBatch;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class MemoryStream implements Stream {
  readonly streamId: number;
  readonly epoch: number;
  /** Durable batches, then (in `pending`) the ones in flight. */
  private readonly durable: StoredBatch[] = [];
  private pending: PendingAppend[] = [];
  private start = 0;
  private next = 0;
  private confirmed = 0;
  private holding = false;
  appendCalls = 0;

  constructor(streamId = 1, epoch = 0, batches: StoredBatch[] = [], startOffset = 0) {
    this.streamId = streamId;
    this.epoch = epoch;
    for (const stored of batches) this.durable.push(stored);
    this.start = startOffset;
    this.next = this.confirmed = batches.at(-1)?.nextOffset ?? startOffset;
  }

  /** What a new owner sees after a crash: the durable batches only, epoch + 1. */
  reopen(): MemoryStream {
    return new MemoryStream(this.streamId, this.epoch + 1, this.durable.slice(), this.start);
  }

  /** Appends stay in flight until release() or fail(). */
  hold(): void {
    this.holding = true;
  }

  /** Makes every held append durable, in order, and stops holding. */
  release(): void {
    this.holding = false;
    const released = this.pending;
    this.pending = [];
    for (const p of released) this.confirm(p);
  }

  /** Fails every held append: they are dropped and the end of the stream goes back. */
  fail(err = new Error('injected WAL failure')): void {
    this.holding = false;
    const failed = this.pending;
    this.pending = [];
    this.next = this.confirmed;
    for (const p of failed) p.reject(err);
  }

  get storedBatches(): readonly Buffer[] {
    return this.durable.map((s) => s.batch);
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
      throw new Error(`append at ${request.baseOffset}, stream ends at ${this.next}`);
    }
    this.appendCalls++;
    this.next += request.offsetCount;
    const stored = { baseOffset: request.baseOffset, nextOffset: this.next, batch: Buffer.from(request.batch) };
    return new Promise<void>((resolve, reject) => {
      const p = { stored, resolve, reject };
      if (this.holding) this.pending.push(p);
      else queueMicrotask(() => this.confirm(p));
    });
  }

  private confirm(p: PendingAppend): void {
    this.durable.push(p.stored);
    this.confirmed = p.stored.nextOffset;
    p.resolve();
  }

  async read(startOffset: number, maxBytes: number): Promise<ReadResult> {
    if (startOffset < this.start || startOffset > this.confirmed) {
      throw new OffsetOutOfRangeError(this.streamId, startOffset, this.start, this.confirmed);
    }
    const batches: Buffer[] = [];
    let bytes = 0;
    let nextOffset = startOffset;
    for (const stored of this.durable) {
      if (stored.nextOffset <= startOffset) continue;
      if (batches.length > 0 && bytes + stored.batch.length > maxBytes) break;
      batches.push(stored.batch);
      bytes += stored.batch.length;
      nextOffset = stored.nextOffset;
    }
    return { batches, nextOffset };
  }

  async trim(newStartOffset: number): Promise<void> {
    if (newStartOffset > this.start) this.start = Math.min(newStartOffset, this.confirmed);
    while (this.durable.length > 0 && this.durable[0]!.nextOffset <= this.start) this.durable.shift();
  }

  async close(): Promise<void> {}
}
