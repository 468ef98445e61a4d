// Remote write 2.0: io.prometheus.write.v2.Request (proto/remote_write_v2.proto) into records of
// the `prometheus_remote_write_v1` encoding, so that the topic holds one shape whatever the
// sender spoke. Per series (entries with the same labels merged, as in 1.0):
//
//   labels_refs         -> Label {name, value} resolved from the symbols table
//   samples (field 2)   -> samples (field 2): same message, bytes copied as they are
//   histograms (3)      -> histograms (4): same message, re-tagged, bytes copied
//   exemplars (4)       -> exemplars (3): labels resolved, value and timestamp copied
//   metadata (5)        -> WriteRequest.metadata: {type, metric_family_name = __name__, help, unit}
//   created_timestamp   -> record header `prometheus.created_timestamp_ms` (decimal), 1.0 has no field
//
// Decoding runs in two passes: the first checks everything, builds keys and computes each
// record's exact size; the second writes the records (on checked bytes, so it cannot fail).
// There is no key cache as in 1.0: label references index a symbols table that each request
// builds anew, so the bytes of a series' labels differ from request to request.

import { RecordColumns } from '../../src/protocol/record-encoder.ts';
import { DecodedWrite, InvalidWriteError, RejectReason, type WriteCounts } from './decoded-write.ts';
import { validateHistogram } from './histogram.ts';
import { readSample } from './remote-write-v1.ts';
import { ByteArena, ProtoReader, ProtobufError, WireType, expectWireType, isUtf8Range, varintSize, writeVarint } from './protobuf.ts';
import { KeyIndex, LabelRanges, SeriesKeyWriter } from './series-identity.ts';

const KEY = {
  SYMBOLS: (4 << 3) | WireType.LEN,
  TIMESERIES: (5 << 3) | WireType.LEN,
  LABELS_REFS_PACKED: (1 << 3) | WireType.LEN,
  LABELS_REFS_ONE: (1 << 3) | WireType.VARINT,
  SAMPLES: (2 << 3) | WireType.LEN,
  HISTOGRAMS: (3 << 3) | WireType.LEN,
  EXEMPLARS: (4 << 3) | WireType.LEN,
  METADATA: (5 << 3) | WireType.LEN,
  CREATED_TIMESTAMP: (6 << 3) | WireType.VARINT,
  EXEMPLAR_VALUE: (2 << 3) | WireType.I64,
  EXEMPLAR_TIMESTAMP: (3 << 3) | WireType.VARINT,
  METADATA_TYPE: (1 << 3) | WireType.VARINT,
  METADATA_HELP: (3 << 3) | WireType.VARINT,
  METADATA_UNIT: (4 << 3) | WireType.VARINT,
} as const;

/** Keys written in the 1.0 encoding. */
const OUT = {
  TIMESERIES: 0x0a, LABELS: 0x0a, LABEL_NAME: 0x0a, LABEL_VALUE: 0x12, EXEMPLARS: 0x1a, HISTOGRAMS: 0x22,
  METADATA: 0x1a, METADATA_TYPE: 0x08, METADATA_FAMILY: 0x12, METADATA_HELP: 0x22, METADATA_UNIT: 0x2a,
} as const;

export const CREATED_TIMESTAMP_HEADER = 'prometheus.created_timestamp_ms';

/** A growable list of int32 (symbol ranges, label references). */
class IntList {
  length = 0;
  items = new Int32Array(256);
  push(value: number): void {
    if (this.length === this.items.length) {
      const grown = new Int32Array(this.items.length * 2);
      grown.set(this.items);
      this.items = grown;
    }
    this.items[this.length++] = value;
  }
}

/** One output record under construction: a series, with every entry of the request that has its labels. */
interface SeriesRecord {
  key: Buffer;
  /** TimeSeries ranges in the request: [start, end, start, end, ...]. */
  entries: number[];
  labelsBytes: number;
  dataBytes: number;
  metricNameStart: number;
  metricNameEnd: number;
  metadataType: number;
  helpRef: number;
  unitRef: number;
  createdTimestampMs: bigint;
}

const symbols = new IntList(); // start, end, start, end, ...
const refs = new IntList();
const labels = new LabelRanges();
const keyWriter = new SeriesKeyWriter();

/** Decodes and validates the whole request; throws InvalidWriteError (400) on any fault. */
export function decodeRequestV2(buf: Buffer): DecodedWrite {
  try {
    return decode(buf);
  } catch (err) {
    if (err instanceof ProtobufError) {
      throw new InvalidWriteError(400, RejectReason.BAD_PROTOBUF, `invalid io.prometheus.write.v2.Request: ${err.message}`);
    }
    throw err;
  }
}

function decode(buf: Buffer): DecodedWrite {
  const reader = new ProtoReader(buf);
  const end = buf.length;
  const seriesRanges: number[] = [];
  symbols.length = 0;
  while (reader.pos < end) {
    const at = reader.pos;
    const key = reader.key(end);
    if (key === KEY.SYMBOLS) {
      const symbolEnd = reader.lenEnd(end);
      if (!isUtf8Range(buf, reader.pos, symbolEnd)) throw new ProtobufError(`symbols[${symbols.length / 2}] is not valid UTF-8`);
      symbols.push(reader.pos);
      symbols.push(symbolEnd);
      reader.pos = symbolEnd;
    } else if (key === KEY.TIMESERIES) {
      const tsEnd = reader.lenEnd(end);
      seriesRanges.push(reader.pos, tsEnd);
      reader.pos = tsEnd;
    } else if ((key >>> 3) >= 1 && (key >>> 3) <= 3) {
      throw new InvalidWriteError(400, RejectReason.BAD_PROTOBUF,
        'invalid io.prometheus.write.v2.Request: the body has fields 1 to 3 of prometheus.WriteRequest (1.0); ' +
        'send it with Content-Type: application/x-protobuf (or proto=prometheus.WriteRequest)');
    } else {
      if ((key >>> 3) === 4 || (key >>> 3) === 5) expectWireType(key, WireType.LEN, (key >>> 3) === 4 ? 'symbols' : 'timeseries', at);
      reader.skip(key & 7, end);
    }
  }
  if (seriesRanges.length > 0 && (symbols.length === 0 || symbols.items[0] !== symbols.items[1])) {
    throw new InvalidWriteError(400, RejectReason.INVALID_SERIES, 'symbols[0] must be the empty string');
  }

  const arena = new ByteArena(Math.min(1 << 20, Math.max(4096, end)));
  const counts: WriteCounts = { samples: 0, histograms: 0, exemplars: 0 };
  const series: SeriesRecord[] = [];
  const byKey = new KeyIndex();
  for (let i = 0; i < seriesRanges.length; i += 2) {
    const start = seriesRanges[i]!;
    const stop = seriesRanges[i + 1]!;
    const entry = readTimeSeries(reader, start, stop, i / 2, counts);
    const key = keyWriter.write(arena, buf, labels, i / 2);
    const nameIndex = keyWriter.nameIndex;
    const seen = byKey.findOrAdd(key, keyWriter.hash, series.length);
    let record = seen < 0 ? undefined : series[seen]!;
    if (record === undefined) {
      record = {
        key, entries: [], labelsBytes: labelsBytes(), dataBytes: 0,
        metricNameStart: labels.valueStart[nameIndex]!, metricNameEnd: labels.valueEnd[nameIndex]!,
        metadataType: 0, helpRef: 0, unitRef: 0, createdTimestampMs: 0n,
      };
      series.push(record);
    }
    record.entries.push(start, stop);
    record.dataBytes += entry.dataBytes;
    if (entry.metadataType !== 0 || entry.helpRef !== 0 || entry.unitRef !== 0) {
      record.metadataType = entry.metadataType;
      record.helpRef = entry.helpRef;
      record.unitRef = entry.unitRef;
    }
    if (entry.createdTimestampMs !== 0n) record.createdTimestampMs = entry.createdTimestampMs;
  }
  const records = new RecordColumns(series.length);
  for (const s of series) writeRecord(buf, arena, s, records);
  return new DecodedWrite(records, records.length, counts);
}

interface EntrySummary {
  dataBytes: number;
  metadataType: number;
  helpRef: number;
  unitRef: number;
  createdTimestampMs: bigint;
}

/** Checks one TimeSeries; fills `labels` and returns what its record needs. */
function readTimeSeries(
  reader: ProtoReader, start: number, end: number, index: number,
  counts: WriteCounts,
): EntrySummary {
  const summary: EntrySummary = { dataBytes: 0, metadataType: 0, helpRef: 0, unitRef: 0, createdTimestampMs: 0n };
  const where = (): string => `timeseries[${index}]`;
  reader.pos = start;
  refs.length = 0;
  while (reader.pos < end) {
    const at = reader.pos;
    const key = reader.key(end);
    switch (key) {
      case KEY.LABELS_REFS_PACKED:
      case KEY.LABELS_REFS_ONE:
        readRefs(reader, key, end, refs);
        break;
      case KEY.SAMPLES: {
        const sampleEnd = reader.lenEnd(end);
        readSample(reader, sampleEnd);
        summary.dataBytes += sampleEnd - at;
        counts.samples++;
        break;
      }
      case KEY.HISTOGRAMS: {
        const histogramEnd = reader.lenEnd(end);
        validateHistogram(reader, histogramEnd, `${where()}.histograms[]`);
        summary.dataBytes += histogramEnd - at; // re-tagged with a one-byte key: same size
        counts.histograms++;
        break;
      }
      case KEY.EXEMPLARS: {
        const exemplarEnd = reader.lenEnd(end);
        const bytes = exemplarBytes(reader, exemplarEnd, `${where()}.exemplars[]`);
        summary.dataBytes += 1 + varintSize(bytes) + bytes;
        counts.exemplars++;
        break;
      }
      case KEY.METADATA:
        readMetadata(reader, reader.lenEnd(end), summary, where);
        break;
      case KEY.CREATED_TIMESTAMP:
        summary.createdTimestampMs = reader.int64(end);
        break;
      default: {
        const field = key >>> 3;
        if (field >= 2 && field <= 5) expectWireType(key, WireType.LEN, `${where()}.${['samples', 'histograms', 'exemplars', 'metadata'][field - 2]}`, at);
        if (field === 1) expectWireType(key, WireType.LEN, `${where()}.labels_refs`, at);
        if (field === 6) expectWireType(key, WireType.VARINT, `${where()}.created_timestamp`, at);
        reader.skip(key & 7, end);
      }
    }
  }
  resolveLabels(refs, where);
  return summary;
}

/** Appends symbol references (packed or one varint) to `out`, checking each is in range. */
function readRefs(reader: ProtoReader, key: number, end: number, out: IntList): void {
  const symbolCount = symbols.length / 2;
  const listEnd = key === KEY.LABELS_REFS_ONE ? end : reader.lenEnd(end);
  let more = true;
  while (more && reader.pos < listEnd) {
    const at = reader.pos;
    const ref = reader.uint32(listEnd);
    if (ref >= symbolCount) throw new InvalidWriteError(400, RejectReason.INVALID_SERIES, `symbol reference ${ref} at byte ${at} is out of range (${symbolCount} symbols)`);
    out.push(ref);
    more = key === KEY.LABELS_REFS_PACKED;
  }
}

/** Turns name/value reference pairs into label ranges. */
function resolveLabels(list: IntList, where: () => string): void {
  if (list.length % 2 !== 0) {
    throw new InvalidWriteError(400, RejectReason.INVALID_SERIES, `${where()}: labels_refs has ${list.length} references, not name/value pairs`);
  }
  labels.count = 0;
  const sym = symbols.items;
  for (let i = 0; i < list.length; i += 2) {
    const name = list.items[i]! * 2;
    const value = list.items[i + 1]! * 2;
    labels.push(sym[name]!, sym[name + 1]!, sym[value]!, sym[value + 1]!);
  }
}

/** Bytes of `labels` as 1.0 Label fields. */
function labelsBytes(): number {
  let bytes = 0;
  for (let i = 0; i < labels.count; i++) {
    bytes += labelFieldBytes(labels.nameEnd[i]! - labels.nameStart[i]!, labels.valueEnd[i]! - labels.valueStart[i]!);
  }
  return bytes;
}

function labelFieldBytes(nameLength: number, valueLength: number): number {
  const inner = labelBytes(nameLength, valueLength);
  return 1 + varintSize(inner) + inner;
}

function labelBytes(nameLength: number, valueLength: number): number {
  return 1 + varintSize(nameLength) + nameLength + 1 + varintSize(valueLength) + valueLength;
}

const exemplarRefs = new IntList();

/** Checks a v2 Exemplar; returns the size of its 1.0 form (labels resolved, value and timestamp copied). */
function exemplarBytes(reader: ProtoReader, end: number, where: string): number {
  let bytes = 0;
  exemplarRefs.length = 0;
  while (reader.pos < end) {
    const at = reader.pos;
    const key = reader.key(end);
    if (key === KEY.LABELS_REFS_PACKED || key === KEY.LABELS_REFS_ONE) {
      readRefs(reader, key, end, exemplarRefs);
    } else if (key === KEY.EXEMPLAR_VALUE) {
      reader.advance(8, end);
      bytes += reader.pos - at;
    } else if (key === KEY.EXEMPLAR_TIMESTAMP) {
      reader.skipVarint(end);
      bytes += reader.pos - at;
    } else {
      const field = key >>> 3;
      if (field >= 1 && field <= 3) {
        expectWireType(key, [WireType.LEN, WireType.I64, WireType.VARINT][field - 1]!, `${where}.${['labels_refs', 'value', 'timestamp'][field - 1]}`, at);
      }
      reader.skip(key & 7, end);
    }
  }
  if (exemplarRefs.length % 2 !== 0) {
    throw new InvalidWriteError(400, RejectReason.INVALID_SERIES, `${where}: labels_refs has ${exemplarRefs.length} references, not name/value pairs`);
  }
  const sym = symbols.items;
  for (let i = 0; i < exemplarRefs.length; i += 2) {
    const name = exemplarRefs.items[i]! * 2;
    const value = exemplarRefs.items[i + 1]! * 2;
    bytes += labelFieldBytes(sym[name + 1]! - sym[name]!, sym[value + 1]! - sym[value]!);
  }
  return bytes;
}

function readMetadata(reader: ProtoReader, end: number, summary: EntrySummary, where: () => string): void {
  const symbolCount = symbols.length / 2;
  while (reader.pos < end) {
    const at = reader.pos;
    const key = reader.key(end);
    if (key === KEY.METADATA_TYPE) {
      summary.metadataType = reader.uint32(end);
    } else if (key === KEY.METADATA_HELP || key === KEY.METADATA_UNIT) {
      const ref = reader.uint32(end);
      if (ref >= symbolCount) {
        throw new InvalidWriteError(400, RejectReason.INVALID_SERIES, `${where()}.metadata: symbol reference ${ref} at byte ${at} is out of range (${symbolCount} symbols)`);
      }
      if (key === KEY.METADATA_HELP) summary.helpRef = ref;
      else summary.unitRef = ref;
    } else {
      const field = key >>> 3;
      if (field === 1 || field === 3 || field === 4) expectWireType(key, WireType.VARINT, `${where()}.metadata`, at);
      reader.skip(key & 7, end);
    }
  }
}

/** Adds one record: WriteRequest{timeseries: [the merged series], metadata: [its metadata]?}, written into the arena. */
function writeRecord(buf: Buffer, arena: ByteArena, s: SeriesRecord, records: RecordColumns): void {
  const sym = symbols.items;
  const familyLength = s.metricNameEnd - s.metricNameStart;
  const helpLength = sym[s.helpRef * 2 + 1]! - sym[s.helpRef * 2]!;
  const unitLength = sym[s.unitRef * 2 + 1]! - sym[s.unitRef * 2]!;
  const hasMetadata = s.metadataType !== 0 || helpLength > 0 || unitLength > 0;
  let metadataBytes = 0;
  if (hasMetadata) {
    metadataBytes = 1 + varintSize(familyLength) + familyLength;
    if (s.metadataType !== 0) metadataBytes += 1 + varintSize(s.metadataType);
    if (helpLength > 0) metadataBytes += 1 + varintSize(helpLength) + helpLength;
    if (unitLength > 0) metadataBytes += 1 + varintSize(unitLength) + unitLength;
  }
  const seriesBytes = s.labelsBytes + s.dataBytes;
  const size = 1 + varintSize(seriesBytes) + seriesBytes + (hasMetadata ? 1 + varintSize(metadataBytes) + metadataBytes : 0);
  const out = arena.room(size);
  const start = arena.pos;
  let pos = start;
  out[pos++] = OUT.TIMESERIES;
  pos = writeVarint(out, pos, seriesBytes);
  const seriesStart = pos;
  pos = writeLabelsOf(buf, out, pos, s.entries[0]!, s.entries[1]!);
  for (let e = 0; e < s.entries.length; e += 2) pos = writeData(buf, out, pos, s.entries[e]!, s.entries[e + 1]!);
  if (pos - seriesStart !== seriesBytes) throw new Error(`remote write 2.0: series record size ${pos - seriesStart}, expected ${seriesBytes}`);
  if (hasMetadata) {
    out[pos++] = OUT.METADATA;
    pos = writeVarint(out, pos, metadataBytes);
    if (s.metadataType !== 0) {
      out[pos++] = OUT.METADATA_TYPE;
      pos = writeVarint(out, pos, s.metadataType);
    }
    pos = writeString(buf, out, pos, OUT.METADATA_FAMILY, s.metricNameStart, s.metricNameEnd);
    if (helpLength > 0) pos = writeString(buf, out, pos, OUT.METADATA_HELP, sym[s.helpRef * 2]!, sym[s.helpRef * 2 + 1]!);
    if (unitLength > 0) pos = writeString(buf, out, pos, OUT.METADATA_UNIT, sym[s.unitRef * 2]!, sym[s.unitRef * 2 + 1]!);
  }
  if (pos - start !== size) throw new Error(`remote write 2.0: record size ${pos - start}, expected ${size}`);
  arena.keep(pos);
  const index = records.add(s.key, out, start, pos);
  if (s.createdTimestampMs !== 0n) {
    records.setHeaders(index, [{ key: CREATED_TIMESTAMP_HEADER, value: Buffer.from(String(s.createdTimestampMs)) }]);
  }
}

/** Bytes up to this length are copied in a JS loop, longer ones by Buffer.copy (a native call costs more for short strings). */
const NATIVE_COPY_MIN_BYTES = 64;

function writeString(buf: Buffer, out: Buffer, pos: number, key: number, start: number, end: number): number {
  out[pos++] = key;
  pos = writeVarint(out, pos, end - start);
  if (end - start >= NATIVE_COPY_MIN_BYTES) return pos + buf.copy(out, pos, start, end);
  for (let i = start; i < end; i++) out[pos++] = buf[i]!;
  return pos;
}

/** Writes the labels of the TimeSeries at [start, end) as 1.0 Label fields. */
function writeLabelsOf(buf: Buffer, out: Buffer, pos: number, start: number, end: number): number {
  const reader = new ProtoReader(buf, start);
  refs.length = 0;
  while (reader.pos < end) {
    const key = reader.key(end);
    if (key === KEY.LABELS_REFS_PACKED || key === KEY.LABELS_REFS_ONE) readRefs(reader, key, end, refs);
    else reader.skip(key & 7, end);
  }
  return writeLabelPairs(buf, out, pos, refs);
}

function writeLabelPairs(buf: Buffer, out: Buffer, pos: number, list: IntList): number {
  const sym = symbols.items;
  for (let i = 0; i < list.length; i += 2) {
    const ns = sym[list.items[i]! * 2]!;
    const ne = sym[list.items[i]! * 2 + 1]!;
    const vs = sym[list.items[i + 1]! * 2]!;
    const ve = sym[list.items[i + 1]! * 2 + 1]!;
    out[pos++] = OUT.LABELS;
    pos = writeVarint(out, pos, labelBytes(ne - ns, ve - vs));
    pos = writeString(buf, out, pos, OUT.LABEL_NAME, ns, ne);
    pos = writeString(buf, out, pos, OUT.LABEL_VALUE, vs, ve);
  }
  return pos;
}

/** Writes the samples, histograms and exemplars of the TimeSeries at [start, end) in 1.0 form. */
function writeData(buf: Buffer, out: Buffer, pos: number, start: number, end: number): number {
  const reader = new ProtoReader(buf, start);
  while (reader.pos < end) {
    const at = reader.pos;
    const key = reader.key(end);
    if (key === KEY.SAMPLES) {
      reader.pos = reader.lenEnd(end);
      pos += buf.copy(out, pos, at, reader.pos);
    } else if (key === KEY.HISTOGRAMS) {
      const histogramEnd = reader.lenEnd(end);
      out[pos++] = OUT.HISTOGRAMS;
      pos += buf.copy(out, pos, at + 1, histogramEnd);
      reader.pos = histogramEnd;
    } else if (key === KEY.EXEMPLARS) {
      pos = writeExemplar(buf, out, pos, reader, reader.lenEnd(end));
    } else {
      reader.skip(key & 7, end);
    }
  }
  return pos;
}

function writeExemplar(buf: Buffer, out: Buffer, pos: number, reader: ProtoReader, end: number): number {
  const start = reader.pos;
  const bytes = exemplarBytes(reader, end, 'exemplar');
  out[pos++] = OUT.EXEMPLARS;
  pos = writeVarint(out, pos, bytes);
  pos = writeLabelPairs(buf, out, pos, exemplarRefs);
  reader.pos = start;
  while (reader.pos < end) {
    const at = reader.pos;
    const key = reader.key(end);
    reader.skip(key & 7, end);
    if (key === KEY.EXEMPLAR_VALUE || key === KEY.EXEMPLAR_TIMESTAMP) pos += buf.copy(out, pos, at, reader.pos);
  }
  return pos;
}
