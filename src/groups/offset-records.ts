// The format of the committed-offsets stream (DESIGN.md: consumer offsets live in an internal
// stream). Every unit appended to the stream is one Kafka v2 record batch holding exactly one
// record, so each append takes offsetCount = 1 and any code that reads batch headers (log
// cache, objects, tools) sees a well-formed batch. One record is one OffsetCommit request (all
// its partitions, atomically), one group deletion, or one snapshot of every group's offsets.
//
// Batch (big-endian; see src/protocol/records.ts for the header's field rules):
//
//    0  baseOffset            int64   the unit's stream offset
//    8  batchLength           int32   bytes after this field
//   12  partitionLeaderEpoch  int32   -1
//   16  magic                 int8    2
//   17  crc                   uint32  CRC-32C of bytes [21, end)
//   21  attributes            int16   0 (uncompressed, CreateTime)
//   23  lastOffsetDelta       int32   0
//   27  baseTimestamp         int64   append time (ms)
//   35  maxTimestamp          int64   = baseTimestamp
//   43  producerId            int64   -1
//   51  producerEpoch         int16   -1
//   53  baseSequence          int32   -1
//   57  recordCount           int32   1
//   61  record                length varint | attributes int8 (0) | timestampDelta varlong (0)
//                             | offsetDelta varint (0) | keyLength varint | key
//                             | valueLength varint (-1 = null) | value | headerCount varint (0)
//
// Key:    version uint8 (0) | kind uint8 | groupId string
//           kind 1 COMMIT       value = offsets
//           kind 2 DELETE_GROUP value = null (a tombstone: the group's offsets are gone)
//           kind 3 SNAPSHOT     groupId = '', value = groupCount int32 | (groupId string | offsets)*
//
// offsets := topicCount int32
//            | ( topic string | partitionCount int32
//                | ( partition int32 | offset int64 | leaderEpoch int32
//                    | commitTimestampMs int64 | metadata string )* )*
// string  := byteLength int16 | UTF-8 bytes
//
// Replaying the records in stream order rebuilds the map: COMMIT overwrites the named
// partitions, DELETE_GROUP drops the group, SNAPSHOT replaces everything (it holds every offset
// committed before its own stream offset, so the stream can be trimmed to it).

import { Reader, Writer } from '../protocol/primitives.ts';
import {
  BATCH_HEADER_BYTES,
  MAGIC_V2,
  computeBatchCrc,
  forEachBatch,
  readCompressionType,
  readRecordCount,
  validateBatch,
} from '../protocol/records.ts';

export interface CommittedOffset {
  offset: number;
  leaderEpoch: number;
  metadata: string;
  commitTimestampMs: number;
}

export interface PartitionCommit extends CommittedOffset {
  partition: number;
}

export interface TopicCommit {
  topic: string;
  partitions: PartitionCommit[];
}

export interface GroupCommit {
  groupId: string;
  topics: TopicCommit[];
}

export type OffsetsRecord =
  | { kind: 'commit'; groupId: string; topics: TopicCommit[] }
  | { kind: 'deleteGroup'; groupId: string }
  | { kind: 'snapshot'; groups: GroupCommit[] };

const FORMAT_VERSION = 0;
const Kind = { COMMIT: 1, DELETE_GROUP: 2, SNAPSHOT: 3 } as const;

const CRC_AT = 17;
const NO_PRODUCER = -1;

export function encodeOffsetsBatch(record: OffsetsRecord, baseOffset: number, timestampMs: number): Buffer {
  const body = new Writer();
  body.int8(0); // attributes
  body.varlong(0); // timestampDelta
  body.varint(0); // offsetDelta
  const key = encodeKey(record);
  body.varint(key.length);
  body.raw(key);
  const value = encodeValue(record);
  if (value === null) {
    body.varint(-1);
  } else {
    body.varint(value.length);
    body.raw(value);
  }
  body.varint(0); // headers
  const recordBytes = body.toBuffer();

  const w = new Writer(BATCH_HEADER_BYTES + recordBytes.length + 8);
  w.int64(baseOffset);
  const batchLength = w.reserveInt32();
  w.int32(-1); // partitionLeaderEpoch
  w.int8(MAGIC_V2);
  w.uint32(0); // crc, set below
  w.int16(0); // attributes
  w.int32(0); // lastOffsetDelta
  w.int64(timestampMs);
  w.int64(timestampMs);
  w.int64(NO_PRODUCER);
  w.int16(NO_PRODUCER);
  w.int32(NO_PRODUCER);
  w.int32(1); // recordCount
  w.varint(recordBytes.length);
  w.raw(recordBytes);
  const size = w.length;
  Writer.patchInt32(batchLength, size - 12);
  const batch = w.toBuffer();
  batch.writeUInt32BE(computeBatchCrc(batch, 0, batch.length), CRC_AT);
  return batch;
}

/** Decodes every batch in the buffer (a stream read may hand back one or several). */
export function decodeOffsetsBatches(buf: Buffer, visit: (record: OffsetsRecord) => void): void {
  let failure: Error | undefined;
  const errorCode = forEachBatch(buf, (pos, sizeBytes) => {
    try {
      visit(decodeOne(buf, pos, sizeBytes));
      return true;
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
      return false;
    }
  });
  if (failure !== undefined) throw failure;
  if (errorCode !== 0) throw new Error(`offsets stream: truncated batch (error ${errorCode})`);
}

function decodeOne(buf: Buffer, pos: number, sizeBytes: number): OffsetsRecord {
  const errorCode = validateBatch(buf, pos);
  if (errorCode !== 0) throw new Error(`offsets stream: corrupt batch (error ${errorCode})`);
  if (readRecordCount(buf, pos) !== 1 || readCompressionType(buf, pos) !== 0) {
    throw new Error('offsets stream: a batch must hold one uncompressed record');
  }
  const r = new Reader(buf, pos + BATCH_HEADER_BYTES, pos + sizeBytes);
  const recordLength = r.varint();
  r.need(recordLength);
  r.int8(); // attributes
  r.varlong(); // timestampDelta
  r.varint(); // offsetDelta
  const keyLength = r.varint();
  const key = new Reader(buf, r.pos, r.pos + keyLength);
  r.skip(keyLength);
  const valueLength = r.varint();
  const value = valueLength < 0 ? null : new Reader(buf, r.pos, r.pos + valueLength);
  return decodeRecord(key, value);
}

function encodeKey(record: OffsetsRecord): Buffer {
  const w = new Writer(64);
  w.uint8(FORMAT_VERSION);
  switch (record.kind) {
    case 'commit':
      w.uint8(Kind.COMMIT);
      w.string(record.groupId);
      break;
    case 'deleteGroup':
      w.uint8(Kind.DELETE_GROUP);
      w.string(record.groupId);
      break;
    case 'snapshot':
      w.uint8(Kind.SNAPSHOT);
      w.string('');
      break;
  }
  return w.toBuffer();
}

function encodeValue(record: OffsetsRecord): Buffer | null {
  if (record.kind === 'deleteGroup') return null;
  const w = new Writer(256);
  if (record.kind === 'commit') {
    writeTopics(w, record.topics);
  } else {
    w.int32(record.groups.length);
    for (const group of record.groups) {
      w.string(group.groupId);
      writeTopics(w, group.topics);
    }
  }
  return w.toBuffer();
}

function writeTopics(w: Writer, topics: readonly TopicCommit[]): void {
  w.int32(topics.length);
  for (const { topic, partitions } of topics) {
    w.string(topic);
    w.int32(partitions.length);
    for (const p of partitions) {
      w.int32(p.partition);
      w.int64(p.offset);
      w.int32(p.leaderEpoch);
      w.int64(p.commitTimestampMs);
      w.string(p.metadata);
    }
  }
}

function decodeRecord(key: Reader, value: Reader | null): OffsetsRecord {
  const version = key.uint8();
  if (version !== FORMAT_VERSION) throw new Error(`offsets stream: unknown record version ${version}`);
  const kind = key.uint8();
  const groupId = key.string();
  switch (kind) {
    case Kind.COMMIT:
      if (value === null) throw new Error('offsets stream: commit record without a value');
      return { kind: 'commit', groupId, topics: readTopics(value) };
    case Kind.DELETE_GROUP:
      return { kind: 'deleteGroup', groupId };
    case Kind.SNAPSHOT: {
      if (value === null) throw new Error('offsets stream: snapshot record without a value');
      const count = value.int32();
      const groups: GroupCommit[] = [];
      for (let i = 0; i < count; i++) groups.push({ groupId: value.string(), topics: readTopics(value) });
      return { kind: 'snapshot', groups };
    }
    default:
      throw new Error(`offsets stream: unknown record kind ${kind}`);
  }
}

function readTopics(r: Reader): TopicCommit[] {
  const topicCount = r.arrayLength(6);
  const topics: TopicCommit[] = [];
  for (let t = 0; t < topicCount; t++) {
    const topic = r.string();
    const partitionCount = r.arrayLength(26);
    const partitions: PartitionCommit[] = [];
    for (let i = 0; i < partitionCount; i++) {
      partitions.push({
        partition: r.int32(),
        offset: r.int64(),
        leaderEpoch: r.int32(),
        commitTimestampMs: r.int64(),
        metadata: r.string(),
      });
    }
    topics.push({ topic, partitions });
  }
  return topics;
}
