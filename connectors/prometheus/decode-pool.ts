// Remote-write decoding off the event loop. On the JS thread, a request's snappy, protobuf decode
// and record batch encoding (CRC-32C included) were half of the work per sample and capped the
// receiver at one core; here worker threads (prometheus.decode.threads) do them, and the JS thread
// only reads bodies, appends the encoded batches and answers. A request goes in as a copy of its
// snappy body (tens of KiB), its batches come back transferred, not copied.
//
// Each worker keeps its own series-key cache (key-cache.ts), so the requests of one connection go
// to one worker: a Prometheus shard sends the same series on its connection batch after batch, and
// they stay warm in that worker's cache.
//
// decode-worker.ts is the worker's side.

import { Worker } from 'node:worker_threads';
import type { PartitionBatch, TopicLayout } from '../../src/broker/in-process-producer.ts';
import { ProduceError } from '../../src/broker/in-process-producer.ts';
import { InvalidWriteError, type ProtocolVersion, type WriteCounts } from './decoded-write.ts';

/** What a worker is asked: decode `body` (snappy, `version`) and encode its records for `layout`. */
export interface DecodeJob {
  seq: number;
  topic: string;
  version: ProtocolVersion;
  body: Uint8Array;
  layout: TopicLayout;
}

export type DecodeReply =
  | { seq: number; ok: true; counts: WriteCounts; batches: { partition: number; recordCount: number; batch: Uint8Array }[] }
  | { seq: number; ok: false; invalid?: { status: number; reason: string }; produceErrorCode?: number; message: string };

/** A request decoded and encoded by a worker: its counts and its batches, ready to append. */
export interface EncodedWrite extends WriteCounts {
  batches: PartitionBatch[];
}

interface Waiter {
  resolve: (write: EncodedWrite) => void;
  reject: (err: Error) => void;
}

/** One worker thread and its requests in flight. */
class DecodeThread {
  private worker: Worker | undefined;
  readonly pending = new Map<number, Waiter>();

  post(job: DecodeJob, waiter: Waiter): void {
    this.worker ??= this.start();
    this.pending.set(job.seq, waiter);
    this.worker.postMessage(job, [job.body.buffer as ArrayBuffer]);
  }

  private start(): Worker {
    const worker = new Worker(new URL('./decode-worker.ts', import.meta.url));
    worker.unref();
    worker.on('message', (reply: DecodeReply) => {
      const waiter = this.pending.get(reply.seq);
      if (waiter === undefined) return;
      this.pending.delete(reply.seq);
      if (reply.ok) waiter.resolve(encodedWrite(reply));
      else waiter.reject(replyError(reply));
    });
    worker.on('error', (err) => this.failAll(worker, err));
    worker.on('exit', (code) => this.failAll(worker, new Error(`remote-write decode worker exited with code ${code}`)));
    return worker;
  }

  /** A worker that died fails its requests (answered 503, so senders retry); the next request starts a new one. */
  private failAll(worker: Worker, err: Error): void {
    if (this.worker === worker) this.worker = undefined;
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
  }

  async terminate(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }
}

function encodedWrite(reply: Extract<DecodeReply, { ok: true }>): EncodedWrite {
  return {
    ...reply.counts,
    batches: reply.batches.map((b) => ({
      partition: b.partition,
      recordCount: b.recordCount,
      batch: Buffer.from(b.batch.buffer, b.batch.byteOffset, b.batch.byteLength),
    })),
  };
}

function replyError(reply: Extract<DecodeReply, { ok: false }>): Error {
  if (reply.invalid !== undefined) {
    return new InvalidWriteError(reply.invalid.status, reply.invalid.reason as InvalidWriteError['reason'], reply.message);
  }
  if (reply.produceErrorCode !== undefined) {
    const err = new ProduceError('', reply.produceErrorCode, '');
    err.message = reply.message;
    return err;
  }
  return new Error(`remote-write decode worker: ${reply.message}`);
}

export class DecodePool {
  private readonly threads: DecodeThread[];
  /** Which thread serves a connection (see the file comment). */
  private readonly threadOf = new WeakMap<object, DecodeThread>();
  private nextThread = 0;
  private nextSeq = 0;

  /** `threads` worker threads, started on first use. */
  constructor(threads: number) {
    if (!(Number.isInteger(threads) && threads > 0)) throw new Error(`decode pool: threads must be a positive integer, got ${threads}`);
    this.threads = Array.from({ length: threads }, () => new DecodeThread());
  }

  /**
   * Decodes `body` and encodes its records for `layout`, on the thread that serves `connection`.
   * Rejects with InvalidWriteError (the request is bad), ProduceError (a record fits no batch) or
   * Error (the worker failed).
   */
  decode(connection: object, topic: string, version: ProtocolVersion, body: Buffer, layout: TopicLayout): Promise<EncodedWrite> {
    let thread = this.threadOf.get(connection);
    if (thread === undefined) {
      thread = this.threads[this.nextThread++ % this.threads.length]!;
      this.threadOf.set(connection, thread);
    }
    // A copy of its own: the body may be a view of a larger buffer, which must not be transferred.
    const owned = new Uint8Array(body);
    const job: DecodeJob = { seq: this.nextSeq++, topic, version, body: owned, layout };
    return new Promise((resolve, reject) => thread.post(job, { resolve, reject }));
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.terminate()));
  }
}
