// The table worker thread: runs TopicConversion (decode, convert, write Parquet) and Parquet
// compaction off the event loop that serves Kafka and ingest, so a 10-second commit of a busy
// topic never stalls a produce. The main thread does the I/O (reads topics, puts objects,
// commits snapshots); batches go in as one copied buffer (transferred, and given back with the
// reply for the next copy), Parquet files come back transferred, so nothing is copied twice.
//
// A compaction streams both ways: the worker asks for each input file when it reaches it and
// hands the merged file over in parts as it is written, each part stored (an object-store upload
// part) before the worker goes on. So neither thread holds the inputs or the merged file whole.
//
// ConversionClient is the main-thread handle of one worker.

import { readlinkSync } from 'node:fs';
import os from 'node:os';
import { isMainThread, parentPort, Worker, workerData, type MessagePort } from 'node:worker_threads';
import { TopicConversion, type AppendOutcome, type ConversionSpec, type WrittenFile } from './conversion.ts';
import { compactParquet, type CompactedFile } from './compact-parquet.ts';
import { DEFAULT_UPLOAD_PART_BYTES } from '../../src/storage/objectstore/objectstore.ts';
import type { ParquetWriteOptions } from './parquet.ts';
import { ownsBuffer } from '../../src/storage/buffers.ts';
import { transferable } from '../transfer.ts';

type Request =
  | { op: 'open'; id: number; spec: ConversionSpec }
  | { op: 'append'; id: number; partition: number; batches: Uint8Array; fromOffset: number; skipBelow: number[] }
  | { op: 'flush'; id: number }
  | { op: 'clear'; id: number }
  | { op: 'close'; id: number }
  | { op: 'compact'; id: number; count: number; options: ParquetWriteOptions };

/** `spare`: the append's batches buffer, given back for the next append's copy. */
type Reply = { seq: number; ok: true; value: unknown; spare?: Uint8Array } | { seq: number; ok: false; error: string };

/** What a compaction in progress asks of the main thread: an input file, or to store a part of the merged one. */
type Ask = { kind: 'input'; index: number } | { kind: 'part'; chunks: Uint8Array[] };
/** `askId`: a request may have two asks out at once (the writer reads an input while a part is stored). */
type AskMessage = { seq: number; askId: number; ask: Ask };
/** The main thread's answer to an Ask (the input asked for, or an error). */
type AnswerMessage = { askId: number; answer: true; input?: Uint8Array; error?: string };

/** Asks the main thread, for the request `seq`, and waits for its answer. */
type Asker = (ask: Ask, transfer?: ArrayBuffer[]) => Promise<AnswerMessage>;

/** Runs one request against the conversions of this thread. */
function serve(conversions: Map<number, TopicConversion>, req: Request, ask: Asker): unknown {
  switch (req.op) {
    case 'open':
      conversions.set(req.id, new TopicConversion(req.spec));
      return undefined;
    case 'append':
      return conversionOf(conversions, req.id).append(req.partition, Buffer.from(req.batches.buffer, req.batches.byteOffset, req.batches.byteLength), req.fromOffset, req.skipBelow);
    case 'flush':
      return conversionOf(conversions, req.id).flush();
    case 'clear':
      conversionOf(conversions, req.id).clear();
      return undefined;
    case 'close':
      conversions.delete(req.id);
      return undefined;
    case 'compact':
      return compactStreaming(req.count, req.options, ask);
  }
}

/**
 * A compaction whose inputs come from the main thread one at a time and whose output goes back in
 * parts of about DEFAULT_UPLOAD_PART_BYTES (each stored before the merge goes on); the reply
 * carries the rest.
 */
async function compactStreaming(count: number, options: ParquetWriteOptions, ask: Asker): Promise<CompactedFile> {
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const sink = async (chunk: Uint8Array): Promise<void> => {
    pending.push(chunk);
    pendingBytes += chunk.byteLength;
    if (pendingBytes < DEFAULT_UPLOAD_PART_BYTES) return;
    const chunks = pending;
    pending = [];
    pendingBytes = 0;
    await ask({ kind: 'part', chunks }, transferablesOf({ chunks }));
  };
  const read = async (index: number): Promise<Uint8Array> => {
    const answer = await ask({ kind: 'input', index });
    if (answer.input === undefined) throw new Error(`no input ${index} for the compaction`);
    return answer.input;
  };
  const merged = await compactParquet({ count, read }, options, true, sink);
  return { ...merged, chunks: pending };
}

function conversionOf(conversions: Map<number, TopicConversion>, id: number): TopicConversion {
  const conversion = conversions.get(id);
  if (!conversion) throw new Error(`no conversion ${id} in the table worker`);
  return conversion;
}

/**
 * The buffers of a reply's Parquet bytes (`bytes` of written files, `chunks` of a compacted one),
 * to be transferred: only buffers that the bytes span whole (the writer's own), each once.
 */
function transferablesOf(value: unknown): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  const add = (bytes: unknown): void => {
    if (bytes instanceof Uint8Array && ownsBuffer(bytes)) buffers.add(bytes.buffer as ArrayBuffer);
  };
  for (const item of Array.isArray(value) ? value : [value]) {
    if (item === null || typeof item !== 'object') continue;
    if ('bytes' in item) add(item.bytes);
    if ('chunks' in item && Array.isArray(item.chunks)) for (const chunk of item.chunks) add(chunk);
  }
  return [...buffers];
}

/**
 * Lowers this thread's CPU priority (Linux: setpriority on the thread id), so that when cores are
 * short the threads serving Kafka and ingest win and table conversion waits; with spare CPU it
 * makes no difference.
 */
function niceThisThread(nice: number): void {
  if (nice === 0 || process.platform !== 'linux') return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isSafeInteger(tid) && tid > 0) os.setPriority(tid, nice);
  } catch {
    // Not permitted or not available: run at the process's priority.
  }
}

if (!isMainThread && parentPort !== null) {
  niceThisThread(Number((workerData as { nice?: number } | null)?.nice ?? 0));
  const port = parentPort;
  const conversions = new Map<number, TopicConversion>();
  // One request at a time, in order: a flush or compaction awaits the Parquet writer, and the
  // appends sent meanwhile must not change the builders it reads.
  let previous: Promise<void> = Promise.resolve();
  // Answers to asks go straight to the request waiting for them (it is the one running).
  const asking = new Map<number, (answer: AnswerMessage) => void>();
  let nextAskId = 0;
  port.on('message', (message: { seq: number; req: Request } | AnswerMessage) => {
    if ('answer' in message) {
      asking.get(message.askId)?.(message);
      return;
    }
    const ask: Asker = (question, transfer = []) => new Promise((resolve, reject) => {
      const askId = nextAskId++;
      asking.set(askId, (answer) => {
        asking.delete(askId);
        if (answer.error !== undefined) reject(new Error(answer.error));
        else resolve(answer);
      });
      port.postMessage({ seq: message.seq, askId, ask: question } satisfies AskMessage, transfer);
    });
    previous = previous.then(() => answer(conversions, message, port, ask));
  });
}

async function answer(conversions: Map<number, TopicConversion>, message: { seq: number; req: Request }, port: MessagePort, ask: Asker): Promise<void> {
  let reply: Reply;
  let transfer: ArrayBuffer[] = [];
  try {
    const value = await serve(conversions, message.req, ask);
    transfer = transferablesOf(value);
    reply = { seq: message.seq, ok: true, value };
    if (message.req.op === 'append') {
      reply.spare = message.req.batches;
      transfer.push(message.req.batches.buffer as ArrayBuffer);
    }
  } catch (err) {
    reply = { seq: message.seq, ok: false, error: errorText(err) };
  }
  try {
    port.postMessage(reply, transfer);
  } catch (err) {
    port.postMessage({ seq: message.seq, ok: false, error: `reply not sent: ${errorText(err)}` } satisfies Reply);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

interface PendingCall {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  /** Answers the worker's asks for this call (compaction). */
  onAsk?: (ask: Ask) => Promise<Uint8Array | undefined>;
}

/** Buffers given back by the worker and kept for the next appends (no 4 MiB allocation each). */
const MAX_SPARE_BUFFERS = 2;

/**
 * Copies stored batches (slices of larger buffers) into one buffer that can be transferred: a
 * spare one when large enough.
 */
function joinBatches(batches: readonly Buffer[], spares: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const b of batches) length += b.length;
  const spare = spares.pop();
  const joined = spare !== undefined && spare.byteLength >= length ? spare.subarray(0, length) : new Uint8Array(length);
  let pos = 0;
  for (const b of batches) {
    joined.set(b, pos);
    pos += b.length;
  }
  return joined;
}

export class ConversionClient {
  /** Started on first use, so a process without table topics has no worker thread. */
  private worker: Worker | undefined;
  private readonly pending = new Map<number, PendingCall>();
  private nextSeq = 0;
  private nextId = 0;
  private readonly spares: Uint8Array[] = [];

  private readonly nice: number;

  /** `nice`: the worker thread's niceness (0 to 19), below the threads that serve clients. */
  constructor(options: { nice?: number } = {}) {
    this.nice = options.nice ?? 0;
  }

  private startWorker(): Worker {
    const worker = new Worker(new URL(import.meta.url), { workerData: { nice: this.nice } });
    worker.unref();
    worker.on('message', (reply: Reply | AskMessage) => {
      if ('ask' in reply) {
        this.answerAsk(worker, reply);
        return;
      }
      const waiter = this.pending.get(reply.seq);
      if (!waiter) return;
      this.pending.delete(reply.seq);
      if (reply.ok && reply.spare !== undefined && this.spares.length < MAX_SPARE_BUFFERS) {
        this.spares.push(new Uint8Array(reply.spare.buffer));
      }
      if (reply.ok) waiter.resolve(reply.value);
      else waiter.reject(new Error(`table worker: ${reply.error}`));
    });
    worker.on('error', (err) => this.failAll(worker, err));
    worker.on('exit', (code) => this.failAll(worker, new Error(`table worker exited with code ${code}`)));
    return worker;
  }

  async open(spec: ConversionSpec): Promise<number> {
    const id = this.nextId++;
    await this.call({ op: 'open', id, spec });
    return id;
  }

  append(id: number, partition: number, batches: readonly Buffer[], fromOffset: number, skipBelow: number[]): Promise<AppendOutcome> {
    const joined = joinBatches(batches, this.spares);
    return this.call({ op: 'append', id, partition, batches: joined, fromOffset, skipBelow }, [joined.buffer as ArrayBuffer]) as Promise<AppendOutcome>;
  }

  flush(id: number): Promise<WrittenFile[]> {
    return this.call({ op: 'flush', id }) as Promise<WrittenFile[]>;
  }

  clear(id: number): Promise<void> {
    return this.call({ op: 'clear', id }) as Promise<void>;
  }

  close(id: number): Promise<void> {
    return this.call({ op: 'close', id }) as Promise<void>;
  }

  /**
   * Merges `count` Parquet files (same schema) into one, streaming: readInput(i) is called when
   * the merge reaches file i, and writePart with each part of the merged file as it is written
   * (the merge waits for it); the result carries the rest of the file. An input is handed over
   * (transferred when it spans its buffer whole, else copied): the caller does not use it after.
   */
  compact(
    count: number,
    readInput: (index: number) => Promise<Uint8Array>,
    options: ParquetWriteOptions,
    writePart: (chunks: Uint8Array[]) => Promise<void>,
  ): Promise<CompactedFile> {
    const onAsk = async (ask: Ask): Promise<Uint8Array | undefined> => {
      if (ask.kind === 'input') return readInput(ask.index);
      await writePart(ask.chunks);
      return undefined;
    };
    return this.call({ op: 'compact', id: -1, count, options }, [], onAsk) as Promise<CompactedFile>;
  }

  async terminate(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private call(req: Request, transfer: ArrayBuffer[] = [], onAsk?: PendingCall['onAsk']): Promise<unknown> {
    this.worker ??= this.startWorker();
    const worker = this.worker;
    const seq = this.nextSeq++;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject, onAsk });
      worker.postMessage({ seq, req }, transfer);
    });
  }

  /** Answers an ask of the worker: the input it wants (transferred), or the part stored; or the error. */
  private answerAsk(worker: Worker, { seq, askId, ask }: AskMessage): void {
    const onAsk = this.pending.get(seq)?.onAsk;
    Promise.resolve()
      .then(() => {
        if (onAsk === undefined) throw new Error(`no request ${seq} asks the main thread`);
        return onAsk(ask);
      })
      .then(
        (found) => {
          const input = found === undefined ? undefined : transferable(found);
          worker.postMessage({ askId, answer: true, input } satisfies AnswerMessage, input === undefined ? [] : [input.buffer as ArrayBuffer]);
        },
        (err: unknown) => worker.postMessage({ askId, answer: true, error: errorText(err) } satisfies AnswerMessage),
      )
      .catch(() => {}); // the worker is gone: its calls fail on their own (failAll)
  }

  /**
   * A worker that died fails every call in flight; the next call starts a new worker (the topic
   * writers then reopen their conversions from their committed offsets).
   */
  private failAll(worker: Worker, err: Error): void {
    if (this.worker === worker) this.worker = undefined;
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
  }
}
