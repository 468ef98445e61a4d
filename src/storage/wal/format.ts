// File WAL on-disk format (DESIGN.md, Formats). All integers little-endian; CRCs are CRC-32C.
//
// File:
//   [0, 4096)        header slot 0
//   [4096, 8192)     header slot 1
//   [8192, 8192+C)   ring area of capacity C bytes (a multiple of 4096)
//
// Header slot (56 bytes used, rest of the 4 KiB slot zero). The two slots alternate: a trim
// writes the slot the current one is not in, so a torn slot write leaves the other intact. The
// valid slot with the higher sequence wins.
//   0  magic u32 = SLOT_MAGIC        4  version u16 = 1, reserved u16
//   8  sequence u64                  16 capacity u64 (ring bytes)
//   24 trim offset u64 (logical)     32 node id u64
//   40 node epoch u64                48 max write bytes u32 (the writer's bound on one write)
//   52 crc u32 over bytes [0, 52)
//
// Ring: a logical byte offset L, growing forever, lives at file position
// RING_START + (L mod C). Every write starts at a 4 KiB-aligned logical offset and is padded to
// a 4 KiB boundary with a pad record. A record may straddle the ring's end: reads and writes
// simply continue at RING_START (no padding to the start).
//
// Record = header (24 bytes) + body:
//   header: 0 magic u32 (RECORD_MAGIC or PAD_MAGIC)   4 body length u32
//           8 logical offset u64 (the record's own L)  16 body crc u32   20 header crc u32 over [0, 20)
//   body of a RECORD: 0 stream id u64   8 epoch u64   16 base offset u64
//                     24 last offset delta u32   28 payload length u32   32 Kafka record batch
//   body of a PAD: ignored bytes (body crc is 0 and not checked). A pad fills the end of a write
//   up to the next 4 KiB boundary, and at open it skips the region a torn write may have left.

import { crc32c } from '@node-rs/crc32';
import { crc32cCombine } from '../../protocol/crc32c-combine.ts';
import { BATCH_CRC_FROM } from '../../protocol/records.ts';
import type { WalRecord } from './wal.ts';

export const PAGE_BYTES = 4096;
export const SLOT_BYTES = PAGE_BYTES;
export const RING_START = 2 * SLOT_BYTES;
export const SLOT_MAGIC = 0x48_4c_41_57; // "WALH" read as little-endian bytes
export const SLOT_VERSION = 1;
export const SLOT_USED_BYTES = 56;
export const RECORD_MAGIC = 0x52_4c_41_57; // "WALR"
export const PAD_MAGIC = 0x50_4c_41_57; // "WALP"
export const RECORD_HEADER_BYTES = 24;
export const RECORD_BODY_HEADER_BYTES = 32;

export interface WalHeaderSlot {
  sequence: number;
  capacityBytes: number;
  trimOffset: number;
  nodeId: number;
  nodeEpoch: number;
  maxWriteBytes: number;
}

export interface RecordHeader {
  magic: number;
  bodyLength: number;
  logicalOffset: number;
  bodyCrc: number;
}

export interface RecordBody {
  streamId: number;
  epoch: number;
  baseOffset: number;
  lastOffsetDelta: number;
  payloadLength: number;
}

export function alignUp(value: number, alignment: number = PAGE_BYTES): number {
  return Math.ceil(value / alignment) * alignment;
}

export function alignDown(value: number, alignment: number = PAGE_BYTES): number {
  return Math.floor(value / alignment) * alignment;
}

/** Bytes a record with this payload takes in the ring. */
export function recordBytes(payloadLength: number): number {
  return RECORD_HEADER_BYTES + RECORD_BODY_HEADER_BYTES + payloadLength;
}

/** Bytes of the pad that takes a write ending at logical `end` to a 4 KiB boundary (0 or ≥ 24). */
export function padBytesAfter(end: number): number {
  const gap = alignUp(end) - end;
  if (gap === 0) return 0;
  return gap >= RECORD_HEADER_BYTES ? gap : gap + PAGE_BYTES;
}

export function encodeSlot(slot: WalHeaderSlot): Buffer {
  const buf = Buffer.alloc(SLOT_BYTES);
  buf.writeUInt32LE(SLOT_MAGIC, 0);
  buf.writeUInt16LE(SLOT_VERSION, 4);
  writeU64(buf, 8, slot.sequence);
  writeU64(buf, 16, slot.capacityBytes);
  writeU64(buf, 24, slot.trimOffset);
  writeU64(buf, 32, slot.nodeId);
  writeU64(buf, 40, slot.nodeEpoch);
  buf.writeUInt32LE(slot.maxWriteBytes, 48);
  buf.writeUInt32LE(crc32c(buf.subarray(0, 52)), 52);
  return buf;
}

/** The slot in buf, or undefined when its magic, version or CRC does not check out. */
export function decodeSlot(buf: Buffer): WalHeaderSlot | undefined {
  if (buf.length < SLOT_USED_BYTES) return undefined;
  if (buf.readUInt32LE(0) !== SLOT_MAGIC || buf.readUInt16LE(4) !== SLOT_VERSION) return undefined;
  if (buf.readUInt32LE(52) !== crc32c(buf.subarray(0, 52))) return undefined;
  return {
    sequence: readU64(buf, 8),
    capacityBytes: readU64(buf, 16),
    trimOffset: readU64(buf, 24),
    nodeId: readU64(buf, 32),
    nodeEpoch: readU64(buf, 40),
    maxWriteBytes: buf.readUInt32LE(48),
  };
}

/**
 * Writes a RECORD (header, body header, payload) at buf[pos]; returns the bytes written. With
 * batchCrc, the payload is a Kafka batch whose CRC-32C over its bytes from BATCH_CRC_FROM on is
 * batchCrc (checked by the caller): the body CRC is then combined from it, not read again.
 */
export function encodeRecord(
  buf: Buffer,
  pos: number,
  logicalOffset: number,
  body: RecordBody,
  payload: Buffer,
  batchCrc?: number,
): number {
  const bodyStart = pos + RECORD_HEADER_BYTES;
  writeU64(buf, bodyStart, body.streamId);
  writeU64(buf, bodyStart + 8, body.epoch);
  writeU64(buf, bodyStart + 16, body.baseOffset);
  buf.writeUInt32LE(body.lastOffsetDelta, bodyStart + 24);
  buf.writeUInt32LE(payload.length, bodyStart + 28);
  payload.copy(buf, bodyStart + RECORD_BODY_HEADER_BYTES);
  const bodyLength = RECORD_BODY_HEADER_BYTES + payload.length;
  const bodyCrc = batchCrc === undefined || payload.length < BATCH_CRC_FROM
    ? crc32c(buf.subarray(bodyStart, bodyStart + bodyLength))
    : crc32cCombine(crc32c(buf.subarray(bodyStart, bodyStart + RECORD_BODY_HEADER_BYTES + BATCH_CRC_FROM)), batchCrc, payload.length - BATCH_CRC_FROM);
  writeRecordHeader(buf, pos, RECORD_MAGIC, bodyLength, logicalOffset, bodyCrc);
  return RECORD_HEADER_BYTES + bodyLength;
}

/** Writes a PAD header covering padBytes (≥ 24) at buf[pos]; the pad's body is zero-filled up to buf's end. */
export function encodePad(buf: Buffer, pos: number, logicalOffset: number, padBytes: number): void {
  if (padBytes < RECORD_HEADER_BYTES) throw new Error(`pad of ${padBytes} bytes is too short`);
  writeRecordHeader(buf, pos, PAD_MAGIC, padBytes - RECORD_HEADER_BYTES, logicalOffset, 0);
  buf.fill(0, pos + RECORD_HEADER_BYTES, Math.min(buf.length, pos + padBytes));
}

function writeRecordHeader(
  buf: Buffer,
  pos: number,
  magic: number,
  bodyLength: number,
  logicalOffset: number,
  bodyCrc: number,
): void {
  buf.writeUInt32LE(magic, pos);
  buf.writeUInt32LE(bodyLength, pos + 4);
  writeU64(buf, pos + 8, logicalOffset);
  buf.writeUInt32LE(bodyCrc, pos + 16);
  buf.writeUInt32LE(crc32c(buf.subarray(pos, pos + 20)), pos + 20);
}

/** The record header at buf[pos], or undefined when its magic or header CRC is wrong. */
export function decodeRecordHeader(buf: Buffer, pos: number): RecordHeader | undefined {
  const magic = buf.readUInt32LE(pos);
  if (magic !== RECORD_MAGIC && magic !== PAD_MAGIC) return undefined;
  if (buf.readUInt32LE(pos + 20) !== crc32c(buf.subarray(pos, pos + 20))) return undefined;
  return {
    magic,
    bodyLength: buf.readUInt32LE(pos + 4),
    logicalOffset: readU64(buf, pos + 8),
    bodyCrc: buf.readUInt32LE(pos + 16),
  };
}

/** The body of a RECORD at buf[pos, pos+bodyLength), or undefined when it is inconsistent. */
export function decodeRecordBody(buf: Buffer, pos: number, bodyLength: number): RecordBody | undefined {
  if (bodyLength < RECORD_BODY_HEADER_BYTES) return undefined;
  const body = {
    streamId: readU64(buf, pos),
    epoch: readU64(buf, pos + 8),
    baseOffset: readU64(buf, pos + 16),
    lastOffsetDelta: buf.readUInt32LE(pos + 24),
    payloadLength: buf.readUInt32LE(pos + 28),
  };
  return body.payloadLength === bodyLength - RECORD_BODY_HEADER_BYTES ? body : undefined;
}

/**
 * The RECORD whose header (already decoded and checked) sits at buf[pos], with its body in the
 * buffer: the body CRC and layout are verified; undefined when either is wrong. The batch is a
 * slice of buf. walOffset is the record's logical offset.
 */
export function decodeRecord(buf: Buffer, pos: number, header: RecordHeader, walOffset: number): WalRecord | undefined {
  const bodyStart = pos + RECORD_HEADER_BYTES;
  const bodyBytes = buf.subarray(bodyStart, bodyStart + header.bodyLength);
  if (crc32c(bodyBytes) !== header.bodyCrc) return undefined;
  const body = decodeRecordBody(buf, bodyStart, header.bodyLength);
  if (body === undefined) return undefined;
  return {
    streamId: body.streamId,
    epoch: body.epoch,
    baseOffset: body.baseOffset,
    offsetCount: body.lastOffsetDelta + 1,
    batch: bodyBytes.subarray(bodyBytes.length - body.payloadLength),
    walOffset,
    walEndOffset: walOffset + RECORD_HEADER_BYTES + header.bodyLength,
  };
}

export function writeU64(buf: Buffer, pos: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`not a u64 offset: ${value}`);
  buf.writeUInt32LE(value % 0x1_0000_0000, pos);
  buf.writeUInt32LE(Math.floor(value / 0x1_0000_0000), pos + 4);
}

/** Reads a u64 as a number (we never write values past 2^53; CRCs guard what we read). */
export function readU64(buf: Buffer, pos: number): number {
  return buf.readUInt32LE(pos + 4) * 0x1_0000_0000 + buf.readUInt32LE(pos);
}
