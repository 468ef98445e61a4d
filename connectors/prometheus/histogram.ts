// Native histograms: prometheus.Histogram (1.0) and io.prometheus.write.v2.Histogram (2.0) are
// the same on the wire (fields 1 to 16, same types), so one check serves both and the bytes are
// copied into records as they came.
//
// Checked: wire types of known fields, packed lists well-formed, integer deltas and float counts
// not mixed, and per side the spans cover exactly as many buckets as counts are given.

import { ProtobufError, ProtoReader, WireType, countPackedVarints } from './protobuf.ts';

const F = {
  COUNT_INT: 1, COUNT_FLOAT: 2, SUM: 3, SCHEMA: 4, ZERO_THRESHOLD: 5, ZERO_COUNT_INT: 6,
  ZERO_COUNT_FLOAT: 7, NEGATIVE_SPANS: 8, NEGATIVE_DELTAS: 9, NEGATIVE_COUNTS: 10,
  POSITIVE_SPANS: 11, POSITIVE_DELTAS: 12, POSITIVE_COUNTS: 13, RESET_HINT: 14, TIMESTAMP: 15,
  CUSTOM_VALUES: 16,
} as const;

const FIELD_NAMES = [
  '', 'count_int', 'count_float', 'sum', 'schema', 'zero_threshold', 'zero_count_int', 'zero_count_float',
  'negative_spans', 'negative_deltas', 'negative_counts', 'positive_spans', 'positive_deltas',
  'positive_counts', 'reset_hint', 'timestamp', 'custom_values',
];

/** Wire type each scalar field must have (repeated ones may also come packed, as LEN). */
const SCALAR_WIRE_TYPE = [
  -1, WireType.VARINT, WireType.I64, WireType.I64, WireType.VARINT, WireType.I64, WireType.VARINT, WireType.I64,
  WireType.LEN, WireType.VARINT, WireType.I64, WireType.LEN, WireType.VARINT, WireType.I64, WireType.VARINT,
  WireType.VARINT, WireType.I64,
];

/** Checks one Histogram message in [reader.pos, end); leaves the reader at end. */
export function validateHistogram(reader: ProtoReader, end: number, where: string): void {
  let negativeSpanBuckets = 0;
  let positiveSpanBuckets = 0;
  let negativeDeltas = 0;
  let positiveDeltas = 0;
  let negativeCounts = 0;
  let positiveCounts = 0;
  const buf = reader.buf;
  while (reader.pos < end) {
    const at = reader.pos;
    const key = reader.key(end);
    const field = key >>> 3;
    const wireType = key & 7;
    if (field > F.CUSTOM_VALUES) {
      reader.skip(wireType, end);
      continue;
    }
    const scalar = SCALAR_WIRE_TYPE[field]!;
    const packed = wireType === WireType.LEN && scalar !== WireType.LEN;
    if (wireType !== scalar && !packed) {
      throw new ProtobufError(`${where}.${FIELD_NAMES[field]} has wire type ${wireType} at byte ${at}, expected ${scalar}`);
    }
    if (field === F.NEGATIVE_SPANS || field === F.POSITIVE_SPANS) {
      const spanEnd = reader.lenEnd(end);
      const buckets = spanLength(reader, spanEnd, `${where}.${FIELD_NAMES[field]}`);
      if (field === F.NEGATIVE_SPANS) negativeSpanBuckets += buckets;
      else positiveSpanBuckets += buckets;
      continue;
    }
    let values = 1;
    if (packed) {
      const listEnd = reader.lenEnd(end);
      if (scalar === WireType.VARINT) {
        values = countPackedVarints(buf, reader.pos, listEnd, `${where}.${FIELD_NAMES[field]}`);
      } else if ((listEnd - reader.pos) % 8 === 0) {
        values = (listEnd - reader.pos) / 8;
      } else {
        throw new ProtobufError(`${where}.${FIELD_NAMES[field]}: packed doubles of ${listEnd - reader.pos} bytes at byte ${at} (not a multiple of 8)`);
      }
      reader.pos = listEnd;
    } else {
      reader.skip(wireType, end);
    }
    if (field === F.NEGATIVE_DELTAS) negativeDeltas += values;
    else if (field === F.POSITIVE_DELTAS) positiveDeltas += values;
    else if (field === F.NEGATIVE_COUNTS) negativeCounts += values;
    else if (field === F.POSITIVE_COUNTS) positiveCounts += values;
  }
  if ((negativeDeltas > 0 || positiveDeltas > 0) && (negativeCounts > 0 || positiveCounts > 0)) {
    throw new ProtobufError(`${where}: mixes integer bucket deltas and float bucket counts`);
  }
  checkSide(where, 'negative', negativeSpanBuckets, negativeDeltas + negativeCounts);
  checkSide(where, 'positive', positiveSpanBuckets, positiveDeltas + positiveCounts);
}

function checkSide(where: string, side: string, spanBuckets: number, buckets: number): void {
  if (spanBuckets !== buckets) {
    throw new ProtobufError(`${where}: ${side} spans cover ${spanBuckets} buckets but ${buckets} bucket counts are given`);
  }
}

/** Checks one BucketSpan; returns its length. */
function spanLength(reader: ProtoReader, end: number, where: string): number {
  let length = 0;
  while (reader.pos < end) {
    const at = reader.pos;
    const key = reader.key(end);
    const field = key >>> 3;
    if (field === 1 || field === 2) {
      if ((key & 7) !== WireType.VARINT) {
        throw new ProtobufError(`${where}.${field === 1 ? 'offset' : 'length'} has wire type ${key & 7} at byte ${at}, expected 0`);
      }
      if (field === 2) length = reader.uint32(end);
      else reader.skipVarint(end);
    } else {
      reader.skip(key & 7, end);
    }
  }
  return length;
}
