// Remote write 1.0: prometheus.WriteRequest (schemas/prometheus_remote_write_v1.proto) into
// records of the `prometheus_remote_write_v1` encoding.
//
// The topic encoding is the request's own message, so a series' record value is the bytes of
// its `timeseries` field entry as they came in — tag 0x0a, length, TimeSeries — which is exactly
// a WriteRequest holding that one TimeSeries: a range of the request, copied only once, by the
// record encoder into the record batch. Likewise a metadata entry (tag 0x1a) is a WriteRequest
// holding only that MetricMetadata.
//
// Prometheus puts every sample of a batch in its own TimeSeries, so a series scraped twice
// within one batch appears twice. Entries with the same identity are merged into one record
// (labels once, then every entry's samples, exemplars and histograms in request order).

import { RecordColumns, partitionHash } from '../../src/protocol/record-encoder.ts';
import { DecodedWrite, InvalidWriteError, RejectReason, type WriteCounts } from './decoded-write.ts';
import { validateHistogram } from './histogram.ts';
import { ByteArena, ProtoReader, ProtobufError, WireType, expectWireType, isUtf8Range, varintSize, writeVarint } from './protobuf.ts';
import { KeyIndex, LabelRanges, SeriesKeyWriter, hashBytes } from './series-identity.ts';
import { SeriesKeyCache, labelsHash } from './key-cache.ts';

/** Field keys (field number << 3 | wire type) read on the hot path. */
const KEY = {
  TIMESERIES: (1 << 3) | WireType.LEN,
  METADATA: (3 << 3) | WireType.LEN,
  LABELS: (1 << 3) | WireType.LEN,
  SAMPLES: (2 << 3) | WireType.LEN,
  EXEMPLARS: (3 << 3) | WireType.LEN,
  HISTOGRAMS: (4 << 3) | WireType.LEN,
  LABEL_NAME: (1 << 3) | WireType.LEN,
  LABEL_VALUE: (2 << 3) | WireType.LEN,
  SAMPLE_VALUE: (1 << 3) | WireType.I64,
  SAMPLE_TIMESTAMP: (2 << 3) | WireType.VARINT,
  EXEMPLAR_VALUE: (2 << 3) | WireType.I64,
  EXEMPLAR_TIMESTAMP: (3 << 3) | WireType.VARINT,
  METADATA_TYPE: (1 << 3) | WireType.VARINT,
  METADATA_FAMILY: (2 << 3) | WireType.LEN,
  METADATA_HELP: (4 << 3) | WireType.LEN,
  METADATA_UNIT: (5 << 3) | WireType.LEN,
} as const;

/** Key prefix of metadata records ("#" cannot start a series key). */
export const METADATA_KEY_PREFIX = 0x23;

const labels = new LabelRanges();
const keyWriter = new SeriesKeyWriter();
/** The key cache requests share (see key-cache.ts). */
const sharedKeyCache = new SeriesKeyCache();

/**
 * Decodes and validates the whole request; throws InvalidWriteError (400) on any fault.
 * `keyCache` null decodes without one (benchmarks measure both paths).
 */
export function decodeWriteRequestV1(buf: Buffer, keyCache: SeriesKeyCache | null = sharedKeyCache): DecodedWrite {
  try {
    return decode(buf, keyCache);
  } catch (err) {
    if (err instanceof ProtobufError) {
      throw new InvalidWriteError(400, RejectReason.BAD_PROTOBUF, `invalid prometheus.WriteRequest: ${err.message}`);
    }
    throw err;
  }
}

/** Stamps requests for the key cache's per-entry "record of this request" (restarts before 2^30). */
let requestStamp = 0;

/** The records of one request being decoded. */
class RequestRecords {
  readonly buf: Buffer;
  readonly columns: RecordColumns;
  series = 0;
  /** Per record: where its TimeSeries starts (-1 for metadata records). */
  private readonly seriesStart: number[] = [];
  /** Records not found through the key cache, by key. */
  private byKey: KeyIndex | undefined;
  /** For series seen more than once: record index -> TimeSeries ranges [start, end, start, end, ...]. */
  private readonly repeated = new Map<number, number[]>();

  constructor(buf: Buffer) {
    this.buf = buf;
    this.columns = new RecordColumns(buf.length >>> 7); // a series entry takes ~100-300 bytes
  }

  /** A new series record, its value the `timeseries` field at [fieldStart, tsEnd); returns its index. */
  addSeries(key: Buffer, fieldStart: number, tsStart: number, tsEnd: number): number {
    return this.addSeriesKeyed(key, 0, key.length, partitionHash(key), fieldStart, tsStart, tsEnd);
  }

  /** addSeries with the key as a range of keySource (a key cache's), its partition hash known. */
  addSeriesKeyed(
    keySource: Buffer, keyStart: number, keyEnd: number, keyPartitionHash: number, fieldStart: number, tsStart: number, tsEnd: number,
  ): number {
    this.seriesStart.push(tsStart);
    this.series++;
    return this.columns.addRanges(keySource, keyStart, keyEnd, keyPartitionHash, this.buf, fieldStart, tsEnd);
  }

  /** The record with this key if an earlier series of the request had it, else -1 (then the caller adds it). */
  findByKey(key: Buffer, keyHash: number): number {
    this.byKey ??= new KeyIndex();
    return this.byKey.findOrAdd(key, keyHash, this.columns.length);
  }

  /** Another TimeSeries entry of the series in record `index`. */
  repeat(index: number, tsStart: number, tsEnd: number): void {
    let ranges = this.repeated.get(index);
    if (ranges === undefined) {
      ranges = [this.seriesStart[index]!, this.columns.valueEnd(index)];
      this.repeated.set(index, ranges);
    }
    ranges.push(tsStart, tsEnd);
  }

  /** A metadata record, its value the `metadata` field at [start, end). */
  addMetadata(key: Buffer, start: number, end: number): void {
    const seen = this.findByKey(key, hashBytes(key));
    if (seen >= 0) {
      this.columns.setValue(seen, this.buf, start, end); // the last entry for a family wins
      return;
    }
    this.columns.add(key, this.buf, start, end);
    this.seriesStart.push(-1);
  }

  /** Writes the merged value of every repeated series. */
  finish(arena: ByteArena): RecordColumns {
    for (const [index, ranges] of this.repeated) {
      const merged = mergeTimeSeries(this.buf, arena, ranges);
      this.columns.setValue(index, merged, 0, merged.length);
    }
    return this.columns;
  }
}

function decode(buf: Buffer, keyCache: SeriesKeyCache | null): DecodedWrite {
  keyCache?.beginRequest();
  if (++requestStamp === 0x3fffffff) {
    requestStamp = 1;
    keyCache?.clearStamps();
  }
  const reader = new ProtoReader(buf);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const end = buf.length;
  const arena = new ByteArena(Math.min(1 << 20, Math.max(4096, end >>> 1)));
  const counts: WriteCounts = { samples: 0, histograms: 0, exemplars: 0 };
  const out = new RequestRecords(buf);
  let seriesIndex = 0;
  let metadataIndex = 0;
  while (reader.pos < end) {
    const at = reader.pos;
    const key = reader.key(end);
    if (key === KEY.TIMESERIES) {
      const tsEnd = reader.lenEnd(end);
      readSeries(reader, view, arena, keyCache, out, at, tsEnd, seriesIndex++, counts);
      reader.pos = tsEnd;
    } else if (key === KEY.METADATA) {
      const mdEnd = reader.lenEnd(end);
      const family = readMetadata(reader, mdEnd, metadataIndex++);
      out.addMetadata(metadataKey(arena, buf, family[0], family[1]), at, mdEnd);
    } else if ((key >>> 3) === 4 || (key >>> 3) === 5) {
      throw new InvalidWriteError(400, RejectReason.BAD_PROTOBUF,
        'invalid prometheus.WriteRequest: the body has fields 4 and 5 of io.prometheus.write.v2.Request; ' +
        'send it with Content-Type: application/x-protobuf;proto=io.prometheus.write.v2.Request');
    } else {
      if ((key >>> 3) === 1 || (key >>> 3) === 3) expectWireType(key, WireType.LEN, (key >>> 3) === 1 ? 'timeseries' : 'metadata', at);
      reader.skip(key & 7, end);
    }
  }
  return new DecodedWrite(out.finish(arena), out.series, counts);
}

/**
 * One `timeseries` entry (field at `fieldStart`, message up to `tsEnd`, reader at its start):
 * checked, then added as a record or to the record of the same series earlier in the request.
 *
 *   fast path: its leading label fields are in the key cache -> key and record index from there
 *   slow path: parse and validate the labels, write the key, add it to the cache
 */
function readSeries(
  reader: ProtoReader, view: DataView, arena: ByteArena, keyCache: SeriesKeyCache | null, out: RequestRecords,
  fieldStart: number, tsEnd: number, seriesIndex: number, counts: WriteCounts,
): void {
  const buf = reader.buf;
  const tsStart = reader.pos;
  const labelsEnd = leadingLabelsEnd(buf, tsStart, tsEnd);
  const hash = labelsHash(view, tsStart, labelsEnd);
  const cached = keyCache !== null && labelsEnd > tsStart ? keyCache.find(view, tsStart, labelsEnd, hash) : -1;
  if (keyCache !== null && cached >= 0) {
    reader.pos = labelsEnd;
    readTimeSeries(reader, tsEnd, seriesIndex, counts);
    if (labels.count === 0) {
      if (keyCache.stampOf(cached) === requestStamp) {
        out.repeat(keyCache.recordOf(cached), tsStart, tsEnd);
      } else {
        keyCache.use(cached, requestStamp, addCachedSeries(out, keyCache, cached, fieldStart, tsStart, tsEnd));
      }
      return;
    }
    readLabelsOnly(reader, tsStart, tsEnd); // more labels after other fields: not the cached set
  } else {
    reader.pos = tsStart;
    readTimeSeries(reader, tsEnd, seriesIndex, counts);
  }
  const key = keyWriter.write(arena, buf, labels, seriesIndex);
  const keyHash = keyWriter.hash;
  if (keyCache !== null && cached < 0 && labelsEnd > tsStart && labels.count === leadingLabels) {
    const entry = keyCache.add(buf, tsStart, labelsEnd, hash, key, keyHash);
    if (entry >= 0) {
      keyCache.use(entry, requestStamp, addCachedSeries(out, keyCache, entry, fieldStart, tsStart, tsEnd));
      return;
    }
  }
  // Not cacheable (labels interleaved with other fields) or the cache is full. A series whose
  // entries of one request take both paths (an odd sender) gets one record per path.
  const seen = out.findByKey(key, keyHash);
  if (seen >= 0) out.repeat(seen, tsStart, tsEnd);
  else out.addSeries(key, fieldStart, tsStart, tsEnd);
}

function addCachedSeries(out: RequestRecords, keyCache: SeriesKeyCache, entry: number, fieldStart: number, tsStart: number, tsEnd: number): number {
  return out.addSeriesKeyed(
    keyCache.keySource(entry), keyCache.keyStart(entry), keyCache.keyEnd(entry), keyCache.partitionHashOf(entry), fieldStart, tsStart, tsEnd,
  );
}

/** Label fields counted by the last leadingLabelsEnd(). */
let leadingLabels = 0;

/**
 * End of the run of label fields a TimeSeries starts with (senders write labels first), for the
 * key cache. Stops early at anything unusual; the full parse reports errors.
 */
function leadingLabelsEnd(buf: Buffer, start: number, end: number): number {
  let pos = start;
  leadingLabels = 0;
  while (pos < end && buf[pos] === KEY.LABELS) {
    let length = buf[pos + 1]!;
    let next = pos + 2;
    if (length >= 0x80) {
      const high = buf[pos + 2]!;
      if (high >= 0x80) break;
      length = (length & 0x7f) | (high << 7);
      next = pos + 3;
    }
    if (next + length > end) break;
    pos = next + length;
    leadingLabels++;
  }
  return pos;
}

/** Parses only the label fields of the TimeSeries at [start, end) into `labels`. */
function readLabelsOnly(reader: ProtoReader, start: number, end: number): void {
  labels.count = 0;
  reader.pos = start;
  while (reader.pos < end) {
    const key = reader.key(end);
    if (key === KEY.LABELS) {
      const labelEnd = reader.lenEnd(end);
      readLabel(reader, labelEnd, true);
      reader.pos = labelEnd;
    } else {
      reader.skip(key & 7, end);
    }
  }
}

/**
 * Reads one TimeSeries from the reader's position into `labels`, checking samples, exemplars
 * and histograms and counting them.
 */
function readTimeSeries(reader: ProtoReader, end: number, seriesIndex: number, counts: WriteCounts): void {
  labels.count = 0;
  while (reader.pos < end) {
    const at = reader.pos;
    const key = reader.key(end);
    switch (key) {
      case KEY.LABELS: {
        const labelEnd = reader.lenEnd(end);
        if (!readShortLabel(reader.buf, reader.pos, labelEnd)) readLabel(reader, labelEnd, true);
        reader.pos = labelEnd;
        break;
      }
      case KEY.SAMPLES:
        readSample(reader, reader.lenEnd(end));
        counts.samples++;
        break;
      case KEY.EXEMPLARS:
        readExemplar(reader, reader.lenEnd(end));
        counts.exemplars++;
        break;
      case KEY.HISTOGRAMS:
        validateHistogram(reader, reader.lenEnd(end), `timeseries[${seriesIndex}].histograms[]`);
        counts.histograms++;
        break;
      default: {
        const field = key >>> 3;
        if (field >= 1 && field <= 4) {
          expectWireType(key, WireType.LEN, `timeseries[${seriesIndex}].${['labels', 'samples', 'exemplars', 'histograms'][field - 1]}`, at);
        }
        reader.skip(key & 7, end);
      }
    }
  }
}

/**
 * The common Label: name then value, each shorter than 128 bytes (one-byte lengths), nothing
 * else. Appends it to `labels` and returns true; returns false for anything else.
 */
function readShortLabel(buf: Buffer, start: number, end: number): boolean {
  if (buf[start] !== KEY.LABEL_NAME) return false;
  const nameLength = buf[start + 1]!;
  const nameStart = start + 2;
  const nameEnd = nameStart + nameLength;
  if (nameLength >= 0x80 || nameEnd + 2 > end || buf[nameEnd] !== KEY.LABEL_VALUE) return false;
  const valueLength = buf[nameEnd + 1]!;
  const valueStart = nameEnd + 2;
  if (valueLength >= 0x80 || valueStart + valueLength !== end) return false;
  labels.push(nameStart, nameEnd, valueStart, end);
  return true;
}

/** Reads a Label; with `record`, appends its ranges to `labels`, else only checks it. */
function readLabel(reader: ProtoReader, end: number, record: boolean): void {
  let nameStart = end;
  let nameEnd = end;
  let valueStart = end;
  let valueEnd = end;
  while (reader.pos < end) {
    const at = reader.pos;
    const key = reader.key(end);
    if (key === KEY.LABEL_NAME) {
      nameEnd = reader.lenEnd(end);
      nameStart = reader.pos;
      reader.pos = nameEnd;
    } else if (key === KEY.LABEL_VALUE) {
      valueEnd = reader.lenEnd(end);
      valueStart = reader.pos;
      reader.pos = valueEnd;
    } else {
      if ((key >>> 3) <= 2) expectWireType(key, WireType.LEN, (key >>> 3) === 1 ? 'label name' : 'label value', at);
      reader.skip(key & 7, end);
    }
  }
  if (record) {
    labels.push(nameStart, nameEnd, valueStart, valueEnd);
  } else if (!isUtf8Range(reader.buf, nameStart, nameEnd) || !isUtf8Range(reader.buf, valueStart, valueEnd)) {
    throw new ProtobufError(`exemplar label at byte ${nameStart} is not valid UTF-8`);
  }
}

/** Checks a Sample (value double, timestamp int64): the same message in remote write 1.0 and 2.0. */
export function readSample(reader: ProtoReader, end: number): void {
  while (reader.pos < end) {
    const at = reader.pos;
    const key = reader.key(end);
    if (key === KEY.SAMPLE_VALUE) reader.advance(8, end);
    else if (key === KEY.SAMPLE_TIMESTAMP) reader.skipVarint(end);
    else {
      if ((key >>> 3) === 1) expectWireType(key, WireType.I64, 'sample value', at);
      if ((key >>> 3) === 2) expectWireType(key, WireType.VARINT, 'sample timestamp', at);
      reader.skip(key & 7, end);
    }
  }
}

function readExemplar(reader: ProtoReader, end: number): void {
  while (reader.pos < end) {
    const at = reader.pos;
    const key = reader.key(end);
    if (key === KEY.LABELS) readLabel(reader, reader.lenEnd(end), false);
    else if (key === KEY.EXEMPLAR_VALUE) reader.advance(8, end);
    else if (key === KEY.EXEMPLAR_TIMESTAMP) reader.skipVarint(end);
    else {
      const field = key >>> 3;
      if (field >= 1 && field <= 3) {
        expectWireType(key, [WireType.LEN, WireType.I64, WireType.VARINT][field - 1]!, `exemplar ${['labels', 'value', 'timestamp'][field - 1]}`, at);
      }
      reader.skip(key & 7, end);
    }
  }
}

/** Checks a MetricMetadata; returns the range of its metric_family_name. */
function readMetadata(reader: ProtoReader, end: number, index: number): [number, number] {
  let familyStart = end;
  let familyEnd = end;
  while (reader.pos < end) {
    const at = reader.pos;
    const key = reader.key(end);
    if (key === KEY.METADATA_TYPE) {
      reader.skipVarint(end);
    } else if (key === KEY.METADATA_FAMILY || key === KEY.METADATA_HELP || key === KEY.METADATA_UNIT) {
      const stringEnd = reader.lenEnd(end);
      if (!isUtf8Range(reader.buf, reader.pos, stringEnd)) throw new ProtobufError(`metadata[${index}]: string at byte ${reader.pos} is not valid UTF-8`);
      if (key === KEY.METADATA_FAMILY) {
        familyStart = reader.pos;
        familyEnd = stringEnd;
      }
      reader.pos = stringEnd;
    } else {
      const field = key >>> 3;
      if (field === 1) expectWireType(key, WireType.VARINT, `metadata[${index}].type`, at);
      if (field === 2 || field === 4 || field === 5) expectWireType(key, WireType.LEN, `metadata[${index}] string`, at);
      reader.skip(key & 7, end);
    }
  }
  if (familyStart === familyEnd) {
    throw new InvalidWriteError(400, RejectReason.INVALID_SERIES, `metadata[${index}] has an empty metric_family_name`);
  }
  return [familyStart, familyEnd];
}

/** "#" followed by the family name. */
function metadataKey(arena: ByteArena, buf: Buffer, start: number, end: number): Buffer {
  const out = arena.room(end - start + 1);
  const keyStart = arena.pos;
  out[keyStart] = METADATA_KEY_PREFIX;
  buf.copy(out, keyStart + 1, start, end);
  return arena.take(keyStart, keyStart + 1 + end - start);
}

/**
 * One WriteRequest with one TimeSeries made of several entries of the same series: the label
 * fields of the first, then every other field of each entry in order.
 */
function mergeTimeSeries(buf: Buffer, arena: ByteArena, ranges: number[]): Buffer {
  const parts: number[] = [];
  for (let r = 0; r < ranges.length; r += 2) {
    const reader = new ProtoReader(buf, ranges[r]!);
    const end = ranges[r + 1]!;
    while (reader.pos < end) {
      const at = reader.pos;
      const key = reader.key(end);
      reader.skip(key & 7, end);
      if (key !== KEY.LABELS || r === 0) parts.push(at, reader.pos);
    }
  }
  let length = 0;
  for (let p = 0; p < parts.length; p += 2) length += parts[p + 1]! - parts[p]!;
  const size = 1 + varintSize(length) + length;
  const out = arena.room(size);
  const start = arena.pos;
  out[start] = KEY.TIMESERIES;
  let pos = writeVarint(out, start + 1, length);
  for (let p = 0; p < parts.length; p += 2) pos += buf.copy(out, pos, parts[p]!, parts[p + 1]!);
  return arena.take(start, pos);
}
