// The file WAL: a ring of records in one preallocated file, written by group commit.
// Bytes: see format.ts. Behaviour:
//
// - Group commit. append() queues a record; one writer loop takes every queued record that fits
//   one write (maxWriteBytes, pad included) and the free ring space, encodes them into one
//   reused buffer (the single copy of each batch), pads the write to a 4 KiB boundary, issues
//   one positional write (two when it wraps around the ring's end), then resolves those appends
//   in order. Appends that arrive meanwhile wait for the next write. The file is opened with
//   O_DSYNC, so a write returns once its data is durable, as write + fdatasync would, in one
//   system call: one trip through libuv's thread pool and back per group commit, not two.
// - Space. The ring holds logical [trimOffset, trimOffset + capacity). A write that does not fit
//   waits (backpressure) until trim() releases space; the pressure listener is called when use
//   passes pressureRatio of the capacity and when appends wait, so the owner can upload early.
// - Trim. trim() writes the next header slot (alternating), durably, in the writer
//   loop; only then is the released space reused, so the persisted trim offset never points at
//   overwritten data.
// - Recovery. recover() scans from the persisted trim offset and stops at the first record whose
//   magic, header CRC, logical offset (stale bytes from an earlier lap) or body CRC is wrong.
//   The bytes after that point may hold valid-looking records of the torn write (at most
//   maxWriteBytes past it), so new writes start one maxWriteBytes further on, at a 4 KiB
//   boundary, and a pad record written at the stop point (before the first new write) bridges
//   the gap for the next recovery.

import { constants as fsConstants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { log } from '../../metrics/log.ts';
import { walBytesWrittenTotal, walFsyncDurationSeconds } from '../storage-metrics.ts';
import {
  PAD_MAGIC,
  PAGE_BYTES,
  RECORD_HEADER_BYTES,
  RING_START,
  SLOT_BYTES,
  alignDown,
  alignUp,
  decodeRecord,
  decodeRecordHeader,
  decodeSlot,
  encodePad,
  encodeRecord,
  encodeSlot,
  padBytesAfter,
  recordBytes,
} from './format.ts';
import type { WalHeaderSlot } from './format.ts';
import { recordRefusal, walRefusal } from './wal.ts';
import type { PendingAppend, WalRecord, WalRecoveryState, WalStats, WriteAheadLog } from './wal.ts';

export const DEFAULT_WAL_CAPACITY_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_WAL_MAX_WRITE_BYTES = 4 * 1024 * 1024;
export const DEFAULT_WAL_PRESSURE_RATIO = 0.5;
const RECOVERY_READ_BYTES = 4 * 1024 * 1024;
const PREALLOCATE_CHUNK_BYTES = 4 * 1024 * 1024;
/** Read-write, each write durable on return (data and the metadata needed to read it back). */
const DURABLE_WRITES = fsConstants.O_RDWR | fsConstants.O_DSYNC;

export interface FileWalOptions {
  /** The WAL file; created (and zero-filled) when missing. */
  path: string;
  /** Ring size, a multiple of 4 KiB. Used when creating; an existing file keeps its own. */
  capacityBytes?: number;
  /** Bound of one group-commit write, a multiple of 4 KiB; also bounds one record. */
  maxWriteBytes?: number;
  nodeId?: number;
  /** Fraction of the capacity in use past which the pressure listener is called. */
  pressureRatio?: number;
}

interface TrimWaiter {
  walOffset: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class FileWal implements WriteAheadLog {
  readonly path: string;
  private readonly handle: FileHandle;
  private readonly capacity: number;
  private readonly maxWrite: number;
  private readonly pressureRatio: number;
  private readonly writeBuffer: Buffer;
  private slot: WalHeaderSlot;
  /** Bytes past a recovery stop point that a torn write may have left (the last run's bound). */
  private readonly tornSkipBytes: number;
  private readonly created: boolean;

  private recoveryState: WalRecoveryState = 'pending';
  /** A pad still to be written at this logical offset, up to writeOffset (after recovery). */
  private skipPadAt: number | undefined;
  /** Logical offset where the next write starts (4 KiB aligned once recovery is done). */
  private writeOffset = 0;
  private requestedTrim = 0;
  private trimWaiters: TrimWaiter[] = [];

  private queue: PendingAppend[] = [];
  private queueHead = 0;
  private loopRunning = false;
  private loopDone: Promise<void> = Promise.resolve();
  private failure: Error | undefined;
  private closed = false;
  private pressureListener: (() => void) | undefined;
  private pressureSignaled = false;
  private readonly counters: WalStats = { writes: 0, fsyncs: 0, records: 0, bytesWritten: 0 };

  private constructor(
    filePath: string,
    handle: FileHandle,
    slot: WalHeaderSlot,
    created: boolean,
    maxWriteBytes: number,
    pressureRatio: number,
  ) {
    this.path = filePath;
    this.handle = handle;
    this.slot = slot;
    this.capacity = slot.capacityBytes;
    this.maxWrite = maxWriteBytes;
    this.pressureRatio = pressureRatio;
    this.created = created;
    this.tornSkipBytes = Math.max(maxWriteBytes, alignUp(slot.maxWriteBytes));
    this.writeBuffer = Buffer.alloc(maxWriteBytes);
    this.requestedTrim = slot.trimOffset;
  }

  /** Opens (or creates) the WAL file and reads its header. Call recover() next. */
  static async open(options: FileWalOptions): Promise<FileWal> {
    const maxWriteBytes = options.maxWriteBytes ?? DEFAULT_WAL_MAX_WRITE_BYTES;
    const pressureRatio = options.pressureRatio ?? DEFAULT_WAL_PRESSURE_RATIO;
    const nodeId = options.nodeId ?? 0;
    assertAligned('maxWriteBytes', maxWriteBytes);
    if (maxWriteBytes < 4 * PAGE_BYTES) throw new RangeError('maxWriteBytes must be at least 16 KiB');
    let handle: FileHandle;
    let slot: WalHeaderSlot;
    let created = false;
    try {
      handle = await fs.open(options.path, DURABLE_WRITES);
      slot = await readHeader(handle, options.path).catch(async (err: unknown) => {
        await handle.close();
        throw err;
      });
      if (options.capacityBytes !== undefined && options.capacityBytes !== slot.capacityBytes) {
        log.warn({ path: options.path, stored: slot.capacityBytes, configured: options.capacityBytes },
          'WAL capacity differs from the configured one; keeping the file\'s');
      }
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
      const capacityBytes = options.capacityBytes ?? DEFAULT_WAL_CAPACITY_BYTES;
      handle = await createFile(options.path, capacityBytes);
      slot = { sequence: 0, capacityBytes, trimOffset: 0, nodeId, nodeEpoch: 0, maxWriteBytes };
      created = true;
    }
    if (slot.capacityBytes < 4 * maxWriteBytes) {
      await handle.close();
      throw new RangeError(`WAL capacity ${slot.capacityBytes} must be at least 4 × maxWriteBytes (${maxWriteBytes})`);
    }
    const wal = new FileWal(options.path, handle, slot, created, maxWriteBytes, pressureRatio);
    // A new owner (or a restart) takes the WAL with the next node epoch.
    await wal.writeSlot({ ...slot, nodeId, nodeEpoch: slot.nodeEpoch + 1, maxWriteBytes: Math.max(maxWriteBytes, slot.maxWriteBytes) });
    return wal;
  }

  async *recover(): AsyncGenerator<WalRecord, void, undefined> {
    if (this.recoveryState !== 'pending') throw new Error('WAL recovery runs once');
    this.recoveryState = 'running';
    const limit = this.slot.trimOffset + this.capacity;
    let pos = this.slot.trimOffset;
    let window: Buffer = Buffer.alloc(0);
    let windowStart = pos;
    // Makes [from, from + length) readable in window; false when it would pass the ring's lap.
    const ensure = async (from: number, length: number): Promise<boolean> => {
      if (from + length > limit) return false;
      if (from >= windowStart && from + length <= windowStart + window.length) return true;
      const readLength = Math.min(limit - from, Math.max(length, RECOVERY_READ_BYTES));
      window = await this.readRing(from, readLength);
      windowStart = from;
      return true;
    };
    let records = 0;
    for (;;) {
      if (!(await ensure(pos, RECORD_HEADER_BYTES))) break;
      const header = decodeRecordHeader(window, pos - windowStart);
      if (header === undefined || header.logicalOffset !== pos) break;
      const end = pos + RECORD_HEADER_BYTES + header.bodyLength;
      if (end > limit) break;
      if (header.magic === PAD_MAGIC) {
        pos = end;
        continue;
      }
      if (!(await ensure(pos, end - pos))) break;
      const record = decodeRecord(window, pos - windowStart, header, pos);
      if (record === undefined) break;
      records++;
      yield record;
      pos = end;
    }
    log.info({ path: this.path, trimOffset: this.slot.trimOffset, endOffset: pos, records }, 'WAL recovered');
    this.finishRecovery(pos);
  }

  private finishRecovery(stopOffset: number): void {
    if (this.created && stopOffset === this.slot.trimOffset) {
      this.writeOffset = alignUp(stopOffset);
    } else {
      this.skipPadAt = stopOffset;
      this.writeOffset = alignUp(stopOffset) + this.tornSkipBytes;
    }
    this.recoveryState = 'done';
    this.kick();
  }

  append(streamId: number, epoch: number, baseOffset: number, offsetCount: number, batch: Buffer, batchCrc?: number): Promise<number> {
    const refused = walRefusal(this.failure, this.closed, this.recoveryState, 'appended to')
      ?? recordRefusal(batch.length, this.maxBatchBytes(), offsetCount);
    if (refused !== undefined) return Promise.reject(refused);
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ streamId, epoch, baseOffset, offsetCount, batch, batchCrc, resolve, reject });
      this.kick();
    });
  }

  trim(walOffset: number): Promise<void> {
    const refused = walRefusal(this.failure, this.closed, this.recoveryState, 'trimmed');
    if (refused !== undefined) return Promise.reject(refused);
    if (walOffset > this.writeOffset) {
      return Promise.reject(new RangeError(`WAL trim to ${walOffset} past the written end ${this.writeOffset}`));
    }
    if (walOffset <= this.slot.trimOffset) return Promise.resolve();
    this.requestedTrim = Math.max(this.requestedTrim, walOffset);
    return new Promise<void>((resolve, reject) => {
      this.trimWaiters.push({ walOffset, resolve, reject });
      this.kick();
    });
  }

  maxBatchBytes(): number {
    // One record plus the longest pad must fit one write.
    return this.maxWrite - recordBytes(0) - PAGE_BYTES - RECORD_HEADER_BYTES;
  }

  capacityBytes(): number {
    return this.capacity;
  }

  usedBytes(): number {
    return this.writeOffset - this.slot.trimOffset;
  }

  /** Logical offset of the persisted trim point (tests, diagnostics). */
  trimOffset(): number {
    return this.slot.trimOffset;
  }

  setPressureListener(listener: () => void): void {
    this.pressureListener = listener;
  }

  stats(): WalStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.loopDone;
    const err = new Error('WAL is closed');
    for (let i = this.queueHead; i < this.queue.length; i++) this.queue[i]!.reject(err);
    this.queue = [];
    this.queueHead = 0;
    for (const waiter of this.trimWaiters) waiter.reject(err);
    this.trimWaiters = [];
    await this.handle.close();
  }

  // ---- writer loop ----

  private kick(): void {
    if (this.loopRunning || this.failure !== undefined || this.recoveryState !== 'done') return;
    this.loopRunning = true;
    // Start on the next microtask: appends issued in the same tick (one produce request's
    // partitions) then share the first write instead of waiting for a lone one.
    this.loopDone = Promise.resolve().then(() => this.runLoop());
  }

  private async runLoop(): Promise<void> {
    try {
      for (;;) {
        if (this.requestedTrim > this.slot.trimOffset) {
          await this.persistTrim(this.requestedTrim);
          continue;
        }
        const count = this.groupSize();
        if (count === 0) {
          this.loopRunning = false; // same tick as the last check: no wakeup is lost
          return;
        }
        if (this.skipPadAt !== undefined) await this.writeSkipPad(this.skipPadAt);
        await this.writeGroup(count);
      }
    } catch (err) {
      this.loopRunning = false;
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** How many queued records the next write takes (0 when none, or when space is lacking). */
  private groupSize(): number {
    const free = this.slot.trimOffset + this.capacity - this.writeOffset;
    let bytes = 0;
    let count = 0;
    for (let i = this.queueHead; i < this.queue.length; i++) {
      const next = bytes + recordBytes(this.queue[i]!.batch.length);
      const total = next + padBytesAfter(this.writeOffset + next);
      if (total > this.maxWrite || total > free) break;
      bytes = next;
      count++;
    }
    if (count === 0 && this.queue.length > this.queueHead) this.signalPressure(true);
    return count;
  }

  private async writeGroup(count: number): Promise<void> {
    const buf = this.writeBuffer;
    const start = this.writeOffset;
    const ends: number[] = new Array<number>(count);
    let pos = 0;
    for (let i = 0; i < count; i++) {
      const r = this.queue[this.queueHead + i]!;
      pos += encodeRecord(buf, pos, start + pos, {
        streamId: r.streamId,
        epoch: r.epoch,
        baseOffset: r.baseOffset,
        lastOffsetDelta: r.offsetCount - 1,
        payloadLength: r.batch.length,
      }, r.batch, r.batchCrc);
      ends[i] = start + pos;
    }
    const pad = padBytesAfter(start + pos);
    if (pad > 0) encodePad(buf.subarray(0, pos + pad), pos, start + pos, pad);
    const length = pos + pad;
    await this.writeRing(start, buf.subarray(0, length));
    this.writeOffset = start + length;
    this.counters.writes++;
    this.counters.records += count;
    const done = this.queue;
    const first = this.queueHead;
    this.queueHead += count;
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    for (let i = 0; i < count; i++) done[first + i]!.resolve(ends[i]!);
    if (this.usedBytes() >= this.pressureRatio * this.capacity) this.signalPressure(false);
  }

  /** Writes the pad from a recovery stop point to writeOffset (only its header page matters). */
  private async writeSkipPad(at: number): Promise<void> {
    const pageStart = alignDown(at);
    const pageEnd = alignUp(at + RECORD_HEADER_BYTES);
    const pages = await this.readRing(pageStart, pageEnd - pageStart);
    encodePad(pages, at - pageStart, at, this.writeOffset - at);
    await this.writeRing(pageStart, pages);
    this.skipPadAt = undefined;
  }

  private async persistTrim(trimOffset: number): Promise<void> {
    await this.writeSlot({ ...this.slot, trimOffset });
    const remaining: TrimWaiter[] = [];
    for (const waiter of this.trimWaiters) {
      if (waiter.walOffset <= trimOffset) waiter.resolve();
      else remaining.push(waiter);
    }
    this.trimWaiters = remaining;
    if (this.usedBytes() < this.pressureRatio * this.capacity) this.pressureSignaled = false;
  }

  private async writeSlot(slot: WalHeaderSlot): Promise<void> {
    const next = { ...slot, sequence: this.slot.sequence + 1 };
    const bytes = encodeSlot(next);
    await this.durableWrite(bytes, (next.sequence % 2) * SLOT_BYTES);
    this.counters.bytesWritten += bytes.length;
    walBytesWrittenTotal.inc(bytes.length);
    this.slot = next;
  }

  private signalPressure(waiting: boolean): void {
    if (this.pressureSignaled && !waiting) return;
    this.pressureSignaled = true;
    this.pressureListener?.();
  }

  private fail(err: Error): void {
    // After a failed write or fdatasync the file's state is unknown: stop for good (fail-stop).
    log.error({ err, path: this.path }, 'WAL failed; rejecting appends');
    this.failure = err;
    for (let i = this.queueHead; i < this.queue.length; i++) this.queue[i]!.reject(err);
    this.queue = [];
    this.queueHead = 0;
    for (const waiter of this.trimWaiters) waiter.reject(err);
    this.trimWaiters = [];
  }

  // ---- ring I/O ----

  private async writeRing(logical: number, bytes: Buffer): Promise<void> {
    const at = logical % this.capacity;
    const first = Math.min(bytes.length, this.capacity - at);
    await this.durableWrite(bytes.subarray(0, first), RING_START + at);
    if (first < bytes.length) await this.durableWrite(bytes.subarray(first), RING_START);
    this.counters.bytesWritten += bytes.length;
    walBytesWrittenTotal.inc(bytes.length);
  }

  private async readRing(logical: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    const at = logical % this.capacity;
    const first = Math.min(length, this.capacity - at);
    await readFully(this.handle, out.subarray(0, first), RING_START + at);
    if (first < length) await readFully(this.handle, out.subarray(first), RING_START);
    return out;
  }

  /** A write that is durable on return (O_DSYNC): timed as the WAL's fdatasync. */
  private async durableWrite(bytes: Buffer, position: number): Promise<void> {
    const started = process.hrtime.bigint();
    await writeFully(this.handle, bytes, position);
    walFsyncDurationSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    this.counters.fsyncs++;
  }
}

async function readHeader(handle: FileHandle, filePath: string): Promise<WalHeaderSlot> {
  const bytes = Buffer.alloc(2 * SLOT_BYTES);
  await readFully(handle, bytes, 0);
  const a = decodeSlot(bytes.subarray(0, SLOT_BYTES));
  const b = decodeSlot(bytes.subarray(SLOT_BYTES));
  const slot = a === undefined ? b : b === undefined ? a : a.sequence > b.sequence ? a : b;
  if (slot === undefined) throw new Error(`${filePath}: no valid WAL header slot`);
  assertAligned('stored WAL capacity', slot.capacityBytes);
  return slot;
}

async function createFile(filePath: string, capacityBytes: number): Promise<FileHandle> {
  assertAligned('capacityBytes', capacityBytes);
  // Written under a temporary name and renamed, so a crash never leaves a half-made WAL.
  const tempPath = `${filePath}.creating`;
  await fs.mkdir(path.dirname(filePath), { recursive: true });
  const handle = await fs.open(tempPath, 'w+');
  try {
    // Zero-filled, not sparse: the first lap's fdatasyncs then need no block allocation.
    const zeros = Buffer.alloc(Math.min(PREALLOCATE_CHUNK_BYTES, capacityBytes + RING_START));
    for (let pos = 0; pos < RING_START + capacityBytes; pos += zeros.length) {
      await writeFully(handle, zeros.subarray(0, Math.min(zeros.length, RING_START + capacityBytes - pos)), pos);
    }
    // Slot 0 (sequence 0) carries the capacity; open() then writes slot 1.
    const slot0 = { sequence: 0, capacityBytes, trimOffset: 0, nodeId: 0, nodeEpoch: 0, maxWriteBytes: 0 };
    await writeFully(handle, encodeSlot(slot0), 0);
    await handle.sync();
    await fs.rename(tempPath, filePath);
    const dir = await fs.open(path.dirname(filePath), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (err) {
    await handle.close();
    await fs.rm(tempPath, { force: true });
    throw err;
  }
  await handle.close();
  return fs.open(filePath, DURABLE_WRITES);
}

function assertAligned(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0 || value % PAGE_BYTES !== 0) {
    throw new RangeError(`${name} must be a positive multiple of ${PAGE_BYTES}, got ${value}`);
  }
}

async function writeFully(handle: FileHandle, bytes: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

async function readFully(handle: FileHandle, into: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) {
      into.fill(0, done); // a cut-short file reads as zeros: recovery stops there
      return;
    }
    done += bytesRead;
  }
}
