// On-disk formats of the embedded metadata store (embedded.ts). All integers little-endian.
//
// Log file `log-<generation 16 digits>`: a header, then records appended one per transaction.
//
//   header  = magic u32 "WMLG" | format version u32 (1)
//   record  = body length u32 | CRC-32C(body) u32 | body
//   body    = revision u64 | op count u32 | op*
//   op      = 0x01 put     | key str32 | value bytes32 | lease str16 ("" = none)
//           | 0x02 delete  | key str32
//           | 0x03 grant   | lease str16 | ttlMs u64
//           | 0x04 revoke  | lease str16
//   str32   = byte length u32 | UTF-8 bytes;  str16 = byte length u16 | UTF-8 bytes
//   bytes32 = length u32 | bytes
//
// A record holds resolved mutations: a prefix delete is logged as the keys it deleted, so replay
// needs no reads. `revision` is the store revision after the record (unchanged for lease-only
// records). Recovery stops at the first record that is short or fails its CRC.
//
// Snapshot file `snapshot` (replaced atomically: written to `snapshot.tmp`, fsynced, renamed):
//
//   file    = magic u32 "WMSN" | format version u32 (1) | body length u32 | CRC-32C(body) u32 | body
//   body    = revision u64 | log generation u64 | next lease id u64
//           | lease count u32 | (lease str16 | ttlMs u64)*
//           | key count u32 | (key str32 | value bytes32 | createRevision u64 | modRevision u64
//                              | version u64 | lease str16)*
//
// The snapshot holds the state up to and including everything before log `generation`, which
// holds what came after.

import { crc32c } from '@node-rs/crc32';
import { allocFreeable } from '../storage/buffers.ts';
import type { KeyValue, LeaseId } from './store.ts';

export const LOG_MAGIC = 0x474c4d57; // "WMLG" read as little-endian u32
export const SNAPSHOT_MAGIC = 0x4e534d57; // "WMSN"
export const FORMAT_VERSION = 1;
export const LOG_HEADER_BYTES = 8;
export const RECORD_HEADER_BYTES = 8;
const SNAPSHOT_HEADER_BYTES = 16;

const OP_PUT = 0x01;
const OP_DELETE = 0x02;
const OP_GRANT = 0x03;
const OP_REVOKE = 0x04;

export type LogOp =
  | { type: 'put'; key: string; value: Buffer; lease: LeaseId | undefined }
  | { type: 'delete'; key: string }
  | { type: 'grant'; lease: LeaseId; ttlMs: number }
  | { type: 'revoke'; lease: LeaseId };

export interface LogRecord {
  revision: number;
  ops: LogOp[];
}

export interface SnapshotLease {
  lease: LeaseId;
  ttlMs: number;
}

export interface SnapshotContent {
  revision: number;
  logGeneration: number;
  nextLeaseId: number;
  leases: SnapshotLease[];
  kvs: KeyValue[];
}

export class MetadataFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MetadataFormatError';
  }
}

export function logFileName(generation: number): string {
  return `log-${String(generation).padStart(16, '0')}`;
}

export function encodeLogHeader(): Buffer {
  const header = Buffer.alloc(LOG_HEADER_BYTES);
  header.writeUInt32LE(LOG_MAGIC, 0);
  header.writeUInt32LE(FORMAT_VERSION, 4);
  return header;
}

/** Encodes one record, framing included. */
export function encodeRecord(record: LogRecord): Buffer {
  // Sized exactly: one allocation, which the store frees once the record is on disk.
  let size = RECORD_HEADER_BYTES + 12;
  for (const op of record.ops) size += opBytes(op);
  const w = new ByteWriter(size);
  w.u32(0);
  w.u32(0);
  w.u64(record.revision);
  w.u32(record.ops.length);
  for (const op of record.ops) encodeOp(w, op);
  const framed = w.finish();
  const body = framed.subarray(RECORD_HEADER_BYTES);
  framed.writeUInt32LE(body.length, 0);
  framed.writeUInt32LE(crc32c(body), 4);
  return framed;
}

/** What encodeOp writes for the op. */
function opBytes(op: LogOp): number {
  switch (op.type) {
    case 'put':
      return 11 + Buffer.byteLength(op.key, 'utf8') + op.value.length + Buffer.byteLength(op.lease ?? '', 'utf8');
    case 'delete':
      return 5 + Buffer.byteLength(op.key, 'utf8');
    case 'grant':
      return 11 + Buffer.byteLength(op.lease, 'utf8');
    case 'revoke':
      return 3 + Buffer.byteLength(op.lease, 'utf8');
  }
}

function encodeOp(w: ByteWriter, op: LogOp): void {
  switch (op.type) {
    case 'put':
      w.u8(OP_PUT);
      w.str32(op.key);
      w.bytes32(op.value);
      w.str16(op.lease ?? '');
      return;
    case 'delete':
      w.u8(OP_DELETE);
      w.str32(op.key);
      return;
    case 'grant':
      w.u8(OP_GRANT);
      w.str16(op.lease);
      w.u64(op.ttlMs);
      return;
    case 'revoke':
      w.u8(OP_REVOKE);
      w.str16(op.lease);
      return;
  }
}

export interface LogScan {
  records: LogRecord[];
  /** Bytes from the start of the file up to the end of the last good record. */
  validBytes: number;
  /** Why the scan stopped before the end of the file, if it did. */
  tornReason: string | undefined;
}

/** Reads a whole log file; stops at the first torn or corrupt record. */
export function scanLog(file: Buffer, maxRecordBytes: number): LogScan {
  if (file.length < LOG_HEADER_BYTES) {
    return { records: [], validBytes: 0, tornReason: file.length === 0 ? undefined : 'short header' };
  }
  if (file.readUInt32LE(0) !== LOG_MAGIC || file.readUInt32LE(4) !== FORMAT_VERSION) {
    throw new MetadataFormatError('metadata log: bad magic or format version');
  }
  const records: LogRecord[] = [];
  let position = LOG_HEADER_BYTES;
  while (position < file.length) {
    const torn = checkRecordAt(file, position, maxRecordBytes);
    if (torn !== undefined) return { records, validBytes: position, tornReason: torn };
    const length = file.readUInt32LE(position);
    const body = file.subarray(position + RECORD_HEADER_BYTES, position + RECORD_HEADER_BYTES + length);
    records.push(decodeRecordBody(body));
    position += RECORD_HEADER_BYTES + length;
  }
  return { records, validBytes: position, tornReason: undefined };
}

function checkRecordAt(file: Buffer, position: number, maxRecordBytes: number): string | undefined {
  if (file.length - position < RECORD_HEADER_BYTES) return `short record header at ${position}`;
  const length = file.readUInt32LE(position);
  if (length > maxRecordBytes) return `record length ${length} over the bound at ${position}`;
  const end = position + RECORD_HEADER_BYTES + length;
  if (end > file.length) return `short record body at ${position}`;
  const crc = crc32c(file.subarray(position + RECORD_HEADER_BYTES, end));
  if (crc !== file.readUInt32LE(position + 4)) return `CRC mismatch at ${position}`;
  return undefined;
}

function decodeRecordBody(body: Buffer): LogRecord {
  const r = new ByteReader(body);
  const revision = r.u64();
  const count = r.u32();
  const ops: LogOp[] = [];
  for (let i = 0; i < count; i++) ops.push(decodeOp(r));
  r.expectEnd();
  return { revision, ops };
}

function decodeOp(r: ByteReader): LogOp {
  const tag = r.u8();
  switch (tag) {
    case OP_PUT: {
      const key = r.str32();
      const value = r.bytes32();
      const lease = r.str16();
      return { type: 'put', key, value, lease: lease === '' ? undefined : lease };
    }
    case OP_DELETE:
      return { type: 'delete', key: r.str32() };
    case OP_GRANT: {
      const lease = r.str16();
      return { type: 'grant', lease, ttlMs: r.u64() };
    }
    case OP_REVOKE:
      return { type: 'revoke', lease: r.str16() };
    default:
      throw new MetadataFormatError(`metadata log: unknown op tag ${tag}`);
  }
}

export function encodeSnapshot(snapshot: SnapshotContent): Buffer {
  const w = new ByteWriter(SNAPSHOT_HEADER_BYTES + 1024);
  w.u32(SNAPSHOT_MAGIC);
  w.u32(FORMAT_VERSION);
  w.u32(0);
  w.u32(0);
  w.u64(snapshot.revision);
  w.u64(snapshot.logGeneration);
  w.u64(snapshot.nextLeaseId);
  w.u32(snapshot.leases.length);
  for (const lease of snapshot.leases) {
    w.str16(lease.lease);
    w.u64(lease.ttlMs);
  }
  w.u32(snapshot.kvs.length);
  for (const kv of snapshot.kvs) {
    w.str32(kv.key);
    w.bytes32(kv.value);
    w.u64(kv.createRevision);
    w.u64(kv.modRevision);
    w.u64(kv.version);
    w.str16(kv.lease ?? '');
  }
  const file = w.finish();
  const body = file.subarray(SNAPSHOT_HEADER_BYTES);
  file.writeUInt32LE(body.length, 8);
  file.writeUInt32LE(crc32c(body), 12);
  return file;
}

/** Decodes a snapshot file; a bad one is an error (it was written atomically). */
export function decodeSnapshot(file: Buffer): SnapshotContent {
  if (file.length < SNAPSHOT_HEADER_BYTES) throw new MetadataFormatError('metadata snapshot: short file');
  if (file.readUInt32LE(0) !== SNAPSHOT_MAGIC || file.readUInt32LE(4) !== FORMAT_VERSION) {
    throw new MetadataFormatError('metadata snapshot: bad magic or format version');
  }
  const body = file.subarray(SNAPSHOT_HEADER_BYTES);
  if (body.length !== file.readUInt32LE(8)) throw new MetadataFormatError('metadata snapshot: bad length');
  if (crc32c(body) !== file.readUInt32LE(12)) throw new MetadataFormatError('metadata snapshot: CRC mismatch');
  const r = new ByteReader(body);
  const revision = r.u64();
  const logGeneration = r.u64();
  const nextLeaseId = r.u64();
  const leases: SnapshotLease[] = [];
  for (let i = r.u32(); i > 0; i--) leases.push({ lease: r.str16(), ttlMs: r.u64() });
  const kvs: KeyValue[] = [];
  for (let i = r.u32(); i > 0; i--) {
    const key = r.str32();
    const value = r.bytes32();
    const createRevision = r.u64();
    const modRevision = r.u64();
    const version = r.u64();
    const lease = r.str16();
    kvs.push({ key, value, createRevision, modRevision, version, lease: lease === '' ? undefined : lease });
  }
  r.expectEnd();
  return { revision, logGeneration, nextLeaseId, leases, kvs };
}

// ---- byte writer / reader ----

class ByteWriter {
  private buffer: Buffer;
  private position = 0;

  constructor(initialBytes: number) {
    this.buffer = allocFreeable(initialBytes);
  }

  u8(value: number): void {
    this.reserve(1);
    this.position = this.buffer.writeUInt8(value, this.position);
  }

  u16(value: number): void {
    this.reserve(2);
    this.position = this.buffer.writeUInt16LE(value, this.position);
  }

  u32(value: number): void {
    this.reserve(4);
    this.position = this.buffer.writeUInt32LE(value, this.position);
  }

  u64(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`not a u64 safe integer: ${value}`);
    this.reserve(8);
    this.position = this.buffer.writeBigUInt64LE(BigInt(value), this.position);
  }

  str16(value: string): void {
    const length = Buffer.byteLength(value, 'utf8');
    if (length > 0xffff) throw new RangeError(`string too long for str16: ${length} bytes`);
    this.u16(length);
    this.reserve(length);
    this.position += this.buffer.write(value, this.position, 'utf8');
  }

  str32(value: string): void {
    const length = Buffer.byteLength(value, 'utf8');
    this.u32(length);
    this.reserve(length);
    this.position += this.buffer.write(value, this.position, 'utf8');
  }

  bytes32(value: Buffer): void {
    this.u32(value.length);
    this.reserve(value.length);
    this.position += value.copy(this.buffer, this.position);
  }

  finish(): Buffer {
    return this.buffer.subarray(0, this.position);
  }

  private reserve(bytes: number): void {
    if (this.position + bytes <= this.buffer.length) return;
    const grown = allocFreeable(Math.max(this.buffer.length * 2, this.position + bytes));
    this.buffer.copy(grown, 0, 0, this.position);
    this.buffer = grown;
  }
}

class ByteReader {
  private readonly buffer: Buffer;
  private position = 0;

  constructor(buffer: Buffer) {
    this.buffer = buffer;
  }

  u8(): number {
    this.need(1);
    return this.buffer.readUInt8(this.position++);
  }

  u16(): number {
    this.need(2);
    const value = this.buffer.readUInt16LE(this.position);
    this.position += 2;
    return value;
  }

  u32(): number {
    this.need(4);
    const value = this.buffer.readUInt32LE(this.position);
    this.position += 4;
    return value;
  }

  u64(): number {
    this.need(8);
    const value = this.buffer.readBigUInt64LE(this.position);
    this.position += 8;
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new MetadataFormatError(`u64 over 2^53: ${value}`);
    return Number(value);
  }

  str16(): string {
    return this.take(this.u16()).toString('utf8');
  }

  str32(): string {
    return this.take(this.u32()).toString('utf8');
  }

  /** A copy, so that the file buffer it came from can be freed. */
  bytes32(): Buffer {
    return Buffer.from(this.take(this.u32()));
  }

  expectEnd(): void {
    if (this.position !== this.buffer.length) {
      throw new MetadataFormatError(`${this.buffer.length - this.position} trailing bytes`);
    }
  }

  private take(length: number): Buffer {
    this.need(length);
    const slice = this.buffer.subarray(this.position, this.position + length);
    this.position += length;
    return slice;
  }

  private need(bytes: number): void {
    if (this.position + bytes > this.buffer.length) throw new MetadataFormatError('truncated body');
  }
}
