// prometheus_samples: one row per float sample of a series record (the table without suffix) and
// one row per native histogram (_histograms); schemas/tables/prometheus_samples.json. Metadata
// records (key starting with '#') and exemplars produce no rows.
//
//   WriteRequest { 1 repeated TimeSeries, 3 repeated MetricMetadata }
//   TimeSeries { 1 Label { 1 name, 2 value }, 2 Sample { 1 value double, 2 timestamp int64 ms },
//     3 Exemplar, 4 Histogram }
//   Histogram { 1 count_int uint64 | 2 count_float double, 3 sum, 4 schema sint32, 5 zero_threshold,
//     6 zero_count_int | 7 zero_count_float, 8 negative_spans, 9 negative_deltas sint64[],
//     10 negative_counts double[], 11 positive_spans, 12 positive_deltas, 13 positive_counts,
//     14 reset_hint enum, 15 timestamp int64 ms, 16 custom_values double[] }
//   BucketSpan { 1 offset sint32, 2 length uint32 }
//
// A record is decoded whole into positions first (pass 1, which may throw: the record is then
// skipped), and rows are written from them (pass 2), so a bad record leaves no partial rows.

import { validateHistogram } from '../../prometheus/histogram.ts';
import { ProtoReader } from '../../prometheus/protobuf.ts';
import {
  isValidUtf8, type DoubleColumn, type IntColumn, type ListColumn, type StringColumn, type StructColumn, type TableRows,
  type TimestampColumn,
} from '../columns.ts';
import type { TableDef, TableSchemaFile } from '../table-schemas.ts';
import { appendEnumName, asColumn, bytesEqual, column, stringMap, structList, utf8, type StringMap } from './append.ts';
import { sameRows } from './otlp-common.ts';
import { Fields, PackedVarints, ProtoError, Scan, Wire, int64Double, msToMicros, uint64Value, zigzag64 } from './protobuf.ts';
import type { Converter, RecordView } from './types.ts';

const METADATA_KEY_PREFIX = 0x23; // '#'
const NAME_LABEL = utf8('__name__');
const H = {
  COUNT_INT: 1, COUNT_FLOAT: 2, SUM: 3, SCHEMA: 4, ZERO_THRESHOLD: 5, ZERO_COUNT_INT: 6, ZERO_COUNT_FLOAT: 7,
  NEGATIVE_SPANS: 8, NEGATIVE_DELTAS: 9, NEGATIVE_COUNTS: 10, POSITIVE_SPANS: 11, POSITIVE_DELTAS: 12,
  POSITIVE_COUNTS: 13, RESET_HINT: 14, TIMESTAMP: 15, CUSTOM_VALUES: 16,
} as const;
const RESET_HINTS = ['UNKNOWN', 'YES', 'NO', 'GAUGE'].map(utf8);
/** Timestamps a timestamptz column holds (2^53 microseconds); a record with others is skipped. */
const MAX_TIMESTAMP_MS = Math.floor(Number.MAX_SAFE_INTEGER / 1000);

/** Pass 1's result: the record's series, labels, samples and histograms as positions and numbers. */
class DecodedSeries {
  seriesCount = 0;
  readonly firstLabel: number[] = [];
  readonly labelCount: number[] = [];
  /** Index of the __name__ label, or -1. */
  readonly nameLabel: number[] = [];
  labels = 0;
  readonly nameStart: number[] = [];
  readonly nameStop: number[] = [];
  readonly valueStart: number[] = [];
  readonly valueStop: number[] = [];
  samples = 0;
  readonly sampleSeries: number[] = [];
  readonly sampleValue: number[] = [];
  readonly sampleTimestampMs: number[] = [];
  histograms = 0;
  readonly histogramSeries: number[] = [];
  readonly histogramStart: number[] = [];
  readonly histogramStop: number[] = [];

  reset(): void {
    this.seriesCount = this.labels = this.samples = this.histograms = 0;
  }
}

/** The columns both tables have. */
class SeriesColumns {
  readonly rows: TableRows;
  private readonly metricName: StringColumn;
  private readonly labels: StringMap;
  private readonly promotedColumns: StringColumn[];
  private readonly promotedNames: Buffer[];
  readonly timestamp: TimestampColumn;

  constructor(rows: TableRows, def: TableDef) {
    this.rows = rows;
    this.metricName = column(rows, 'metric_name', 'string');
    this.labels = stringMap(rows.column('labels'), 'labels');
    const promoted = Object.entries(def.promoted);
    this.promotedColumns = promoted.map(([name]) => column(rows, name, 'string'));
    this.promotedNames = promoted.map(([, label]) => utf8(label));
    this.timestamp = column(rows, 'timestamp', 'timestamptz');
  }

  append(d: DecodedSeries, buf: Buffer, series: number, timestampMs: number): void {
    const first = d.firstLabel[series]!;
    const stop = first + d.labelCount[series]!;
    const name = d.nameLabel[series]!;
    if (name >= 0) this.metricName.appendUtf8(buf, d.valueStart[name]!, d.valueStop[name]!);
    else this.metricName.append('');
    const keys = this.labels.keys;
    const values = this.labels.values;
    const nameStart = d.nameStart;
    const nameStop = d.nameStop;
    const valueStart = d.valueStart;
    const valueStop = d.valueStop;
    this.labels.map.start();
    for (let i = first; i < stop; i++) {
      if (i === name) continue;
      keys.appendUtf8(buf, nameStart[i]!, nameStop[i]!);
      values.appendUtf8(buf, valueStart[i]!, valueStop[i]!);
    }
    this.labels.map.end();
    for (let p = 0; p < this.promotedColumns.length; p++) {
      const label = findLabel(d, buf, first, stop, this.promotedNames[p]!);
      if (label >= 0) this.promotedColumns[p]!.appendUtf8(buf, valueStart[label]!, valueStop[label]!);
      else this.promotedColumns[p]!.appendNull();
    }
    this.timestamp.append(msToMicros(timestampMs));
  }
}

function findLabel(d: DecodedSeries, buf: Buffer, first: number, stop: number, name: Buffer): number {
  for (let i = first; i < stop; i++) if (bytesEqual(buf, d.nameStart[i]!, d.nameStop[i]!, name)) return i;
  return -1;
}

class BucketColumns {
  readonly list: ListColumn;
  readonly item: StructColumn;
  readonly index: IntColumn;
  readonly count: DoubleColumn;
  constructor(rows: TableRows, name: string) {
    ({ list: this.list, item: this.item } = structList(rows.column(name), name));
    this.index = asColumn(this.item.field('index'), 'int', `${name}.index`);
    this.count = asColumn(this.item.field('count'), 'double', `${name}.count`);
  }
}

class HistogramColumns {
  readonly series: SeriesColumns;
  readonly count: DoubleColumn;
  readonly sum: DoubleColumn;
  readonly schema: IntColumn;
  readonly zeroThreshold: DoubleColumn;
  readonly zeroCount: DoubleColumn;
  readonly positive: BucketColumns;
  readonly negative: BucketColumns;
  readonly resetHint: StringColumn;
  readonly customValues: ListColumn;
  readonly customValue: DoubleColumn;

  constructor(rows: TableRows, def: TableDef) {
    this.series = new SeriesColumns(rows, def);
    this.count = column(rows, 'count', 'double');
    this.sum = column(rows, 'sum', 'double');
    this.schema = column(rows, 'schema', 'int');
    this.zeroThreshold = column(rows, 'zero_threshold', 'double');
    this.zeroCount = column(rows, 'zero_count', 'double');
    this.positive = new BucketColumns(rows, 'positive_buckets');
    this.negative = new BucketColumns(rows, 'negative_buckets');
    this.resetHint = column(rows, 'reset_hint', 'string');
    this.customValues = column(rows, 'custom_values', 'list');
    this.customValue = asColumn(this.customValues.element, 'double', 'custom_values.element');
  }
}

export class PrometheusSamplesConverter implements Converter {
  readonly tables: readonly string[];
  skippedRecords = 0;
  lastSkipReason: string | undefined = undefined;
  private readonly def: TableSchemaFile;
  private readonly samplesTable: number;
  private readonly histogramsTable: number;
  private readonly decoded = new DecodedSeries();
  private readonly requestFields = new Fields();
  private readonly seriesFields = new Fields();
  private readonly innerFields = new Fields();
  private readonly scan = new Scan();
  private readonly spanScan = new Scan();
  private readonly packed = new PackedVarints();
  private readonly spanOffsets: number[] = [];
  private readonly spanLengths: number[] = [];
  private readonly bucketCounts: number[] = [];
  private bound: TableRows[] | undefined = undefined;
  private samples: { series: SeriesColumns; value: DoubleColumn } | undefined = undefined;
  private histograms: HistogramColumns | undefined = undefined;

  constructor(def: TableSchemaFile) {
    this.def = def;
    this.tables = def.tables.map((t) => t.suffix);
    this.samplesTable = this.tables.indexOf('');
    this.histogramsTable = this.tables.indexOf('_histograms');
    if (this.samplesTable < 0 || this.histogramsTable < 0) throw new Error(`${def.name}: the prometheus_samples converter needs tables "" and "_histograms"`);
  }

  append(record: RecordView, out: readonly TableRows[]): void {
    if (!sameRows(this.bound, out)) this.bind(out);
    if (record.keyStart >= 0 && record.keyEnd > record.keyStart && record.buf[record.keyStart] === METADATA_KEY_PREFIX) return;
    const reason = this.decode(record);
    if (reason !== undefined) {
      this.skippedRecords++;
      this.lastSkipReason = `offset ${record.offset}: ${reason}`;
      return;
    }
    this.appendSamples(record.buf);
    this.appendHistograms(record.buf);
  }

  private bind(out: readonly TableRows[]): void {
    const samplesRows = out[this.samplesTable]!;
    this.samples = { series: new SeriesColumns(samplesRows, this.def.tables[this.samplesTable]!), value: column(samplesRows, 'value', 'double') };
    this.histograms = new HistogramColumns(out[this.histogramsTable]!, this.def.tables[this.histogramsTable]!);
    this.bound = out.slice();
  }

  // ---- pass 1 ----

  /** Returns why the record cannot be converted, or undefined. */
  private decode(record: RecordView): string | undefined {
    if (record.valueStart < 0) return 'null value';
    this.decoded.reset();
    try {
      const f = this.requestFields.reset(record.buf, record.valueStart, record.valueEnd);
      while (f.next()) {
        if (f.field !== 1) continue;
        f.expect(Wire.LEN);
        this.decodeSeries(record.buf, f.start, f.stop);
      }
      return undefined;
    } catch (err) {
      return `prometheus.WriteRequest: ${(err as Error).message}`;
    }
  }

  private decodeSeries(buf: Buffer, start: number, end: number): void {
    const d = this.decoded;
    const series = d.seriesCount++;
    d.firstLabel[series] = d.labels;
    d.nameLabel[series] = -1;
    const f = this.seriesFields.reset(buf, start, end);
    while (f.next()) {
      if (f.field === 1) {
        f.expect(Wire.LEN);
        this.decodeLabel(buf, f.start, f.stop, series);
      } else if (f.field === 2) {
        f.expect(Wire.LEN);
        const i = d.samples++;
        d.sampleSeries[i] = series;
        if (!decodeSampleFast(buf, f.start, f.stop, d, i)) {
          const s = this.scan.scan(buf, f.start, f.stop);
          d.sampleValue[i] = s.double(1);
          d.sampleTimestampMs[i] = s.is(2, Wire.VARINT) ? int64Double(s.lo[2]!, s.hi[2]!) : 0;
        }
        if (Math.abs(d.sampleTimestampMs[i]!) > MAX_TIMESTAMP_MS) throw new ProtoError(`sample timestamp ${d.sampleTimestampMs[i]} out of range`);
      } else if (f.field === 4) {
        f.expect(Wire.LEN);
        validateHistogram(new ProtoReader(buf, f.start), f.stop, 'histogram');
        this.checkHistogram(buf, f.start, f.stop);
        const i = d.histograms++;
        d.histogramSeries[i] = series;
        d.histogramStart[i] = f.start;
        d.histogramStop[i] = f.stop;
      }
    }
    d.labelCount[series] = d.labels - d.firstLabel[series]!;
  }

  /** What validateHistogram leaves to the row pass: bucket indexes within int32, a timestamp a column holds. */
  private checkHistogram(buf: Buffer, start: number, end: number): void {
    let negativeIndex = 0;
    let positiveIndex = 0;
    const f = this.innerFields.reset(buf, start, end);
    while (f.next()) {
      if (f.field === H.TIMESTAMP && Math.abs(int64Double(f.lo, f.hi)) > MAX_TIMESTAMP_MS) throw new ProtoError('histogram timestamp out of range');
      if (f.field !== H.NEGATIVE_SPANS && f.field !== H.POSITIVE_SPANS) continue;
      const span = this.spanScan.scan(buf, f.start, f.stop);
      const index = (f.field === H.NEGATIVE_SPANS ? negativeIndex : positiveIndex) + span.sint32(1) + span.uint32(2);
      if (index > 0x7fffffff || index < -0x80000000) throw new ProtoError('histogram bucket index out of the int32 range');
      if (f.field === H.NEGATIVE_SPANS) negativeIndex = index;
      else positiveIndex = index;
    }
  }

  private decodeLabel(buf: Buffer, start: number, end: number, series: number): void {
    const d = this.decoded;
    const i = d.labels++;
    let nameStart: number;
    let nameStop: number;
    let valueStart: number;
    let valueStop: number;
    // The usual layout, `0a <len> name 12 <len> value` with lengths below 128, read directly: its
    // tags and lengths are ASCII bytes, so one ASCII check of name..value covers both strings.
    const nameLength = buf[start + 1]!;
    const valueAt = start + 2 + nameLength;
    const valueLength = buf[valueAt + 1]!;
    if (buf[start] === 0x0a && nameLength < 0x80 && valueAt + 2 <= end && buf[valueAt] === 0x12 && valueLength < 0x80 && valueAt + 2 + valueLength === end) {
      nameStart = start + 2;
      nameStop = valueAt;
      valueStart = valueAt + 2;
      valueStop = end;
      if (!isAscii(buf, nameStart, valueStop) && (!isValidUtf8(buf, nameStart, nameStop) || !isValidUtf8(buf, valueStart, valueStop))) {
        throw new ProtoError(`label ${i} is not valid UTF-8`);
      }
    } else {
      const s = this.scan.scan(buf, start, end);
      nameStart = s.is(1, Wire.LEN) ? s.start[1]! : start;
      nameStop = s.is(1, Wire.LEN) ? s.stop[1]! : start;
      valueStart = s.is(2, Wire.LEN) ? s.start[2]! : start;
      valueStop = s.is(2, Wire.LEN) ? s.stop[2]! : start;
      if (!isValidUtf8(buf, nameStart, nameStop) || !isValidUtf8(buf, valueStart, valueStop)) {
        throw new ProtoError(`label ${i} is not valid UTF-8`);
      }
    }
    d.nameStart[i] = nameStart;
    d.nameStop[i] = nameStop;
    d.valueStart[i] = valueStart;
    d.valueStop[i] = valueStop;
    if (bytesEqual(buf, nameStart, nameStop, NAME_LABEL)) d.nameLabel[series] = i;
  }

  // ---- pass 2 ----

  private appendSamples(buf: Buffer): void {
    const d = this.decoded;
    const c = this.samples!;
    for (let i = 0; i < d.samples; i++) {
      c.series.append(d, buf, d.sampleSeries[i]!, d.sampleTimestampMs[i]!);
      c.value.append(d.sampleValue[i]!);
      c.series.rows.endRow();
    }
  }

  private appendHistograms(buf: Buffer): void {
    const d = this.decoded;
    const c = this.histograms!;
    for (let i = 0; i < d.histograms; i++) {
      const start = d.histogramStart[i]!;
      const end = d.histogramStop[i]!;
      const h = this.scan.scan(buf, start, end);
      c.series.append(d, buf, d.histogramSeries[i]!, h.is(H.TIMESTAMP, Wire.VARINT) ? int64Double(h.lo[H.TIMESTAMP]!, h.hi[H.TIMESTAMP]!) : 0);
      c.count.append(later(h, H.COUNT_FLOAT, H.COUNT_INT) ? h.double(H.COUNT_FLOAT) : uvarintNumber(h, H.COUNT_INT));
      c.sum.append(h.double(H.SUM));
      c.schema.append(h.sint32(H.SCHEMA));
      c.zeroThreshold.append(h.double(H.ZERO_THRESHOLD));
      c.zeroCount.append(later(h, H.ZERO_COUNT_FLOAT, H.ZERO_COUNT_INT) ? h.double(H.ZERO_COUNT_FLOAT) : uvarintNumber(h, H.ZERO_COUNT_INT));
      const resetHint = h.int32(H.RESET_HINT);
      this.appendBuckets(c.positive, buf, start, end, H.POSITIVE_SPANS, H.POSITIVE_DELTAS, H.POSITIVE_COUNTS);
      this.appendBuckets(c.negative, buf, start, end, H.NEGATIVE_SPANS, H.NEGATIVE_DELTAS, H.NEGATIVE_COUNTS);
      appendEnumName(c.resetHint, RESET_HINTS, resetHint);
      this.appendCustomValues(c, buf, start, end);
      c.series.rows.endRow();
    }
  }

  /** One side's buckets: spans walked in order, counts absolute (integer deltas summed). */
  private appendBuckets(c: BucketColumns, buf: Buffer, start: number, end: number, spansField: number, deltasField: number, countsField: number): void {
    const offsets = this.spanOffsets;
    const lengths = this.spanLengths;
    const counts = this.bucketCounts;
    offsets.length = lengths.length = counts.length = 0;
    let runningCount = 0;
    const f = this.innerFields.reset(buf, start, end);
    while (f.next()) {
      if (f.field === spansField) {
        const span = this.spanScan.scan(buf, f.start, f.stop);
        offsets.push(span.sint32(1));
        lengths.push(span.uint32(2));
      } else if (f.field === deltasField) {
        if (f.wire === Wire.VARINT) counts.push((runningCount += zigzag64(f.lo, f.hi)));
        else for (const v = this.packed.reset(buf, f.start, f.stop); v.next();) counts.push((runningCount += zigzag64(v.lo, v.hi)));
      } else if (f.field === countsField) {
        for (let at = f.start; at + 8 <= f.stop; at += 8) counts.push(buf.readDoubleLE(at));
      }
    }
    c.list.start();
    let index = 0;
    let bucket = 0;
    for (let s = 0; s < offsets.length; s++) {
      index += offsets[s]!;
      for (let j = 0; j < lengths[s]!; j++, index++, bucket++) {
        c.item.appendValid();
        c.index.append(index);
        c.count.append(counts[bucket] ?? 0);
      }
    }
    c.list.end();
  }

  private appendCustomValues(c: HistogramColumns, buf: Buffer, start: number, end: number): void {
    c.customValues.start();
    const f = this.innerFields.reset(buf, start, end);
    while (f.next()) {
      if (f.field !== H.CUSTOM_VALUES) continue;
      for (let at = f.start; at + 8 <= f.stop; at += 8) c.customValue.append(buf.readDoubleLE(at));
    }
    c.customValues.end();
  }
}

/** True when field `a` is present and came after field `b` (or b is absent): the oneof member that counts. */
function later(s: Scan, a: number, b: number): boolean {
  if (!s.has(a)) return false;
  return !s.has(b) || s.start[a]! > s.start[b]!;
}

function uvarintNumber(s: Scan, field: number): number {
  return s.is(field, Wire.VARINT) ? Number(uint64Value(s.lo[field]!, s.hi[field]!)) : 0;
}

/** True when bytes [start, end) are all below 0x80. */
function isAscii(buf: Buffer, start: number, end: number): boolean {
  let bits = 0;
  let i = start;
  for (; i + 4 <= end; i += 4) bits |= buf[i]! | buf[i + 1]! | buf[i + 2]! | buf[i + 3]!;
  for (; i < end; i++) bits |= buf[i]!;
  return bits < 0x80;
}

/**
 * The usual Sample layout, `09 <8-byte value> 10 <timestamp varint>` with a timestamp in
 * [0, 2^49) (at most 7 varint bytes), read directly into sample `i`; false for any other layout
 * (then the caller scans it).
 */
function decodeSampleFast(buf: Buffer, start: number, end: number, d: DecodedSeries, i: number): boolean {
  if (buf[start] !== 0x09 || start + 11 > end || buf[start + 9] !== 0x10 || end - (start + 10) > 7) return false;
  let ms = 0;
  let scale = 1;
  for (let at = start + 10; at < end; at++, scale *= 128) {
    const b = buf[at]!;
    ms += (b & 0x7f) * scale;
    if (b < 0x80) {
      if (at !== end - 1) return false;
      d.sampleValue[i] = buf.readDoubleLE(start + 1);
      d.sampleTimestampMs[i] = ms;
      return true;
    }
  }
  return false;
}
