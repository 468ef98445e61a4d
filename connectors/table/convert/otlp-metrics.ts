// otlp_metrics: one row per data point of an ExportMetricsServiceRequest, in one table per point
// type (schemas/tables/otlp_metrics.json: _gauge, _sum, _histogram, _exponential_histogram,
// _summary). Exemplars and Metric.metadata are not kept.
//
//   Metric { 1 name, 2 description, 3 unit, oneof { 5 Gauge, 7 Sum, 9 Histogram,
//     10 ExponentialHistogram, 11 Summary } }, each { 1 repeated data_points, 2 temporality enum,
//     3 is_monotonic (Sum) }
//   NumberDataPoint { 7 attributes, 2 start, 3 time, 4 as_double, 6 as_int sfixed64, 8 flags }
//   HistogramDataPoint { 9 attributes, 2, 3, 4 count fixed64, 5 sum, 6 bucket_counts fixed64[],
//     7 explicit_bounds double[], 10 flags, 11 min, 12 max }
//   ExponentialHistogramDataPoint { 1 attributes, 2, 3, 4 count, 5 sum, 6 scale sint32,
//     7 zero_count fixed64, 8 positive / 9 negative { 1 offset sint32, 2 bucket_counts uint64[] },
//     10 flags, 12 min, 13 max, 14 zero_threshold }
//   SummaryDataPoint { 7 attributes, 2, 3, 4 count, 5 sum, 6 quantile_values { 1 quantile, 2 value }, 8 flags }

import type {
  BoolColumn, DoubleColumn, IntColumn, ListColumn, LongColumn, StringColumn, StructColumn, TableRows, TimestampColumn,
} from '../columns.ts';
import type { TableDef, TableSchemaFile } from '../table-schemas.ts';
import { appendEnumName, appendLen, appendLenOrEmpty, asColumn, column, stringMap, structList, utf8, type StringMap } from './append.ts';
import { AttributeWriter } from './attributes.ts';
import { OtlpConverter, ResourceScopeColumns, type ResourceScope } from './otlp-common.ts';
import { Fields, PackedVarints, Scan, Wire, int64Double, int64Value, uint64Value } from './protobuf.ts';
import type { ValueEncoding } from './types.ts';

const METRIC = { NAME: 1, DESCRIPTION: 2, UNIT: 3, GAUGE: 5, SUM: 7, HISTOGRAM: 9, EXPONENTIAL_HISTOGRAM: 10, SUMMARY: 11 } as const;
const DATA_POINTS = 1;
const TEMPORALITY = 2;
const IS_MONOTONIC = 3;
const POINT_START = 2;
const POINT_TIME = 3;
const NUMBER = { ATTRIBUTES: 7, AS_DOUBLE: 4, AS_INT: 6, FLAGS: 8 } as const;
const HISTOGRAM = { ATTRIBUTES: 9, COUNT: 4, SUM: 5, BUCKET_COUNTS: 6, EXPLICIT_BOUNDS: 7, FLAGS: 10, MIN: 11, MAX: 12 } as const;
const EXPONENTIAL = {
  ATTRIBUTES: 1, COUNT: 4, SUM: 5, SCALE: 6, ZERO_COUNT: 7, POSITIVE: 8, NEGATIVE: 9, FLAGS: 10, MIN: 12, MAX: 13, ZERO_THRESHOLD: 14,
} as const;
const SUMMARY = { ATTRIBUTES: 7, COUNT: 4, SUM: 5, QUANTILES: 6, FLAGS: 8 } as const;

const TEMPORALITY_NAMES = ['AGGREGATION_TEMPORALITY_UNSPECIFIED', 'AGGREGATION_TEMPORALITY_DELTA', 'AGGREGATION_TEMPORALITY_CUMULATIVE'].map(utf8);
const SUFFIXES = ['_gauge', '_sum', '_histogram', '_exponential_histogram', '_summary'] as const;

/** The metric being converted: its scan says where its name, description and unit are. */
interface MetricContext {
  scan: Scan;
  recordTimeMicros: number;
  resourceScope: ResourceScope;
}

/** Columns every metric table has. */
class CommonColumns {
  readonly rows: TableRows;
  private readonly metricName: StringColumn;
  private readonly metricDescription: StringColumn;
  private readonly metricUnit: StringColumn;
  private readonly resourceScope: ResourceScopeColumns;
  private readonly attributes: StringMap;
  private readonly startTime: TimestampColumn;
  private readonly timestamp: TimestampColumn;
  private readonly flags: IntColumn;

  constructor(rows: TableRows, def: TableDef) {
    this.rows = rows;
    this.metricName = column(rows, 'metric_name', 'string');
    this.metricDescription = column(rows, 'metric_description', 'string');
    this.metricUnit = column(rows, 'metric_unit', 'string');
    this.resourceScope = new ResourceScopeColumns(rows, def);
    this.attributes = stringMap(rows.column('attributes'), 'attributes');
    this.startTime = column(rows, 'start_time', 'timestamptz');
    this.timestamp = column(rows, 'timestamp', 'timestamptz');
    this.flags = column(rows, 'flags', 'int');
  }

  /** The columns of the metric and of point `p` (a scanned data point ending at pointEnd) but its values. */
  append(m: MetricContext, p: Scan, attributes: AttributeWriter, attributesField: number, flagsField: number, pointEnd: number): void {
    appendLenOrEmpty(this.metricName, m.scan, METRIC.NAME);
    appendLen(this.metricDescription, m.scan, METRIC.DESCRIPTION);
    appendLen(this.metricUnit, m.scan, METRIC.UNIT);
    this.resourceScope.append(m.resourceScope);
    attributes.append(this.attributes, p, attributesField, pointEnd);
    const startMicros = p.timeMicros(POINT_START);
    if (startMicros !== 0) this.startTime.append(startMicros);
    else this.startTime.appendNull();
    const timeMicros = p.timeMicros(POINT_TIME);
    this.timestamp.append(timeMicros !== 0 ? timeMicros : m.recordTimeMicros);
    this.flags.append(p.uint32(flagsField) | 0);
  }
}

function appendOptionalDouble(column: DoubleColumn, p: Scan, field: number): void {
  if (p.is(field, Wire.I64)) column.append(p.double(field));
  else column.appendNull();
}

/** _gauge and _sum: a NumberDataPoint's value. */
class NumberColumns {
  readonly common: CommonColumns;
  private readonly value: DoubleColumn;
  private readonly valueInt: LongColumn;
  readonly temporality: StringColumn | undefined;
  readonly isMonotonic: BoolColumn | undefined;

  constructor(rows: TableRows, def: TableDef, isSum: boolean) {
    this.common = new CommonColumns(rows, def);
    this.value = column(rows, 'value', 'double');
    this.valueInt = column(rows, 'value_int', 'long');
    this.temporality = isSum ? column(rows, 'aggregation_temporality', 'string') : undefined;
    this.isMonotonic = isSum ? column(rows, 'is_monotonic', 'boolean') : undefined;
  }

  appendValue(p: Scan): void {
    if (p.is(NUMBER.AS_INT, Wire.I64) && !(p.is(NUMBER.AS_DOUBLE, Wire.I64) && p.start[NUMBER.AS_DOUBLE]! > p.start[NUMBER.AS_INT]!)) {
      const at = p.start[NUMBER.AS_INT]!;
      const lo = p.buf.readUInt32LE(at);
      const hi = p.buf.readUInt32LE(at + 4);
      this.value.append(int64Double(lo, hi));
      this.valueInt.append(int64Value(lo, hi));
    } else {
      this.value.append(p.double(NUMBER.AS_DOUBLE));
      this.valueInt.appendNull();
    }
  }
}

class HistogramColumns {
  readonly common: CommonColumns;
  readonly count: LongColumn;
  readonly sum: DoubleColumn;
  readonly min: DoubleColumn;
  readonly max: DoubleColumn;
  readonly bucketCounts: ListColumn;
  readonly bucketCount: LongColumn;
  readonly explicitBounds: ListColumn;
  readonly explicitBound: DoubleColumn;
  readonly temporality: StringColumn;

  constructor(rows: TableRows, def: TableDef) {
    this.common = new CommonColumns(rows, def);
    this.count = column(rows, 'count', 'long');
    this.sum = column(rows, 'sum', 'double');
    this.min = column(rows, 'min', 'double');
    this.max = column(rows, 'max', 'double');
    this.bucketCounts = column(rows, 'bucket_counts', 'list');
    this.bucketCount = asColumn(this.bucketCounts.element, 'long', 'bucket_counts.element');
    this.explicitBounds = column(rows, 'explicit_bounds', 'list');
    this.explicitBound = asColumn(this.explicitBounds.element, 'double', 'explicit_bounds.element');
    this.temporality = column(rows, 'aggregation_temporality', 'string');
  }
}

class ExponentialColumns {
  readonly common: CommonColumns;
  readonly count: LongColumn;
  readonly sum: DoubleColumn;
  readonly min: DoubleColumn;
  readonly max: DoubleColumn;
  readonly scale: IntColumn;
  readonly zeroCount: LongColumn;
  readonly zeroThreshold: DoubleColumn;
  readonly positiveOffset: IntColumn;
  readonly positiveCounts: ListColumn;
  readonly positiveCount: LongColumn;
  readonly negativeOffset: IntColumn;
  readonly negativeCounts: ListColumn;
  readonly negativeCount: LongColumn;
  readonly temporality: StringColumn;

  constructor(rows: TableRows, def: TableDef) {
    this.common = new CommonColumns(rows, def);
    this.count = column(rows, 'count', 'long');
    this.sum = column(rows, 'sum', 'double');
    this.min = column(rows, 'min', 'double');
    this.max = column(rows, 'max', 'double');
    this.scale = column(rows, 'scale', 'int');
    this.zeroCount = column(rows, 'zero_count', 'long');
    this.zeroThreshold = column(rows, 'zero_threshold', 'double');
    this.positiveOffset = column(rows, 'positive_offset', 'int');
    this.positiveCounts = column(rows, 'positive_bucket_counts', 'list');
    this.positiveCount = asColumn(this.positiveCounts.element, 'long', 'positive_bucket_counts.element');
    this.negativeOffset = column(rows, 'negative_offset', 'int');
    this.negativeCounts = column(rows, 'negative_bucket_counts', 'list');
    this.negativeCount = asColumn(this.negativeCounts.element, 'long', 'negative_bucket_counts.element');
    this.temporality = column(rows, 'aggregation_temporality', 'string');
  }
}

class SummaryColumns {
  readonly common: CommonColumns;
  readonly count: LongColumn;
  readonly sum: DoubleColumn;
  readonly quantiles: ListColumn;
  readonly quantile: StructColumn;
  readonly quantileQ: DoubleColumn;
  readonly quantileValue: DoubleColumn;

  constructor(rows: TableRows, def: TableDef) {
    this.common = new CommonColumns(rows, def);
    this.count = column(rows, 'count', 'long');
    this.sum = column(rows, 'sum', 'double');
    ({ list: this.quantiles, item: this.quantile } = structList(rows.column('quantiles'), 'quantiles'));
    this.quantileQ = asColumn(this.quantile.field('quantile'), 'double', 'quantiles.quantile');
    this.quantileValue = asColumn(this.quantile.field('value'), 'double', 'quantiles.value');
  }
}

interface MetricColumns {
  gauge: NumberColumns;
  sum: NumberColumns;
  histogram: HistogramColumns;
  exponential: ExponentialColumns;
  summary: SummaryColumns;
}

export class OtlpMetricsConverter extends OtlpConverter {
  /** Index in def.tables of each SUFFIXES entry. */
  private readonly tableIndex: number[];
  private readonly metric: MetricContext;
  private readonly dataScan = new Scan();
  private readonly point = new Scan();
  private readonly nestedScan = new Scan();
  private readonly pointFields = new Fields();
  private readonly listFields = new Fields();
  private readonly packed = new PackedVarints();
  private readonly attributes = new AttributeWriter();
  private columns: MetricColumns | undefined = undefined;

  constructor(def: TableSchemaFile, encoding: ValueEncoding) {
    super(def, 'ExportMetricsServiceRequest', encoding);
    this.tableIndex = SUFFIXES.map((suffix) => {
      const i = this.tables.indexOf(suffix);
      if (i < 0) throw new Error(`${def.name}: the otlp_metrics converter needs a table with suffix ${suffix}`);
      return i;
    });
    this.metric = { scan: new Scan(), recordTimeMicros: 0, resourceScope: this.walker.context };
  }

  protected bind(out: readonly TableRows[]): void {
    const rows = (i: number): TableRows => out[this.tableIndex[i]!]!;
    const def = (i: number): TableDef => this.def.tables[this.tableIndex[i]!]!;
    this.columns = {
      gauge: new NumberColumns(rows(0), def(0), false),
      sum: new NumberColumns(rows(1), def(1), true),
      histogram: new HistogramColumns(rows(2), def(2)),
      exponential: new ExponentialColumns(rows(3), def(3)),
      summary: new SummaryColumns(rows(4), def(4)),
    };
  }

  protected appendItem(buf: Buffer, start: number, end: number): void {
    const m = this.metric;
    m.recordTimeMicros = this.recordTimeMicros;
    const s = m.scan.scan(buf, start, end);
    const c = this.columns!;
    if (s.is(METRIC.GAUGE, Wire.LEN)) this.appendPoints(METRIC.GAUGE, s, (p, pointEnd) => this.appendNumber(c.gauge, p, pointEnd, -1, false));
    else if (s.is(METRIC.SUM, Wire.LEN)) {
      const data = this.dataScan.scan(buf, s.start[METRIC.SUM]!, s.stop[METRIC.SUM]!);
      const temporality = data.int32(TEMPORALITY);
      const monotonic = data.uint32(IS_MONOTONIC) !== 0;
      this.appendPoints(METRIC.SUM, s, (p, pointEnd) => this.appendNumber(c.sum, p, pointEnd, temporality, monotonic));
    } else if (s.is(METRIC.HISTOGRAM, Wire.LEN)) {
      const temporality = this.dataScan.scan(buf, s.start[METRIC.HISTOGRAM]!, s.stop[METRIC.HISTOGRAM]!).int32(TEMPORALITY);
      this.appendPoints(METRIC.HISTOGRAM, s, (p, pointEnd) => this.appendHistogram(c.histogram, p, pointEnd, temporality));
    } else if (s.is(METRIC.EXPONENTIAL_HISTOGRAM, Wire.LEN)) {
      const temporality = this.dataScan.scan(buf, s.start[METRIC.EXPONENTIAL_HISTOGRAM]!, s.stop[METRIC.EXPONENTIAL_HISTOGRAM]!).int32(TEMPORALITY);
      this.appendPoints(METRIC.EXPONENTIAL_HISTOGRAM, s, (p, pointEnd) => this.appendExponential(c.exponential, p, pointEnd, temporality));
    } else if (s.is(METRIC.SUMMARY, Wire.LEN)) {
      this.appendPoints(METRIC.SUMMARY, s, (p, pointEnd) => this.appendSummary(c.summary, p, pointEnd));
    }
  }

  /** Calls appendPoint for each data point of the metric's data field (one closure per metric). */
  private appendPoints(dataField: number, s: Scan, appendPoint: (p: Scan, end: number) => void): void {
    const f = this.pointFields.reset(s.buf, s.start[dataField]!, s.stop[dataField]!);
    while (f.next()) {
      if (f.field !== DATA_POINTS) continue;
      f.expect(Wire.LEN);
      appendPoint(this.point.scan(s.buf, f.start, f.stop), f.stop);
    }
  }

  private appendNumber(c: NumberColumns, p: Scan, end: number, temporality: number, monotonic: boolean): void {
    c.common.append(this.metric, p, this.attributes, NUMBER.ATTRIBUTES, NUMBER.FLAGS, end);
    c.appendValue(p);
    if (c.temporality !== undefined) appendEnumName(c.temporality, TEMPORALITY_NAMES, temporality);
    c.isMonotonic?.append(monotonic);
    c.common.rows.endRow();
  }

  private appendHistogram(c: HistogramColumns, p: Scan, end: number, temporality: number): void {
    c.common.append(this.metric, p, this.attributes, HISTOGRAM.ATTRIBUTES, HISTOGRAM.FLAGS, end);
    c.count.append(p.fixed64(HISTOGRAM.COUNT));
    appendOptionalDouble(c.sum, p, HISTOGRAM.SUM);
    appendOptionalDouble(c.min, p, HISTOGRAM.MIN);
    appendOptionalDouble(c.max, p, HISTOGRAM.MAX);
    this.appendFixed64List(c.bucketCounts, c.bucketCount, p, HISTOGRAM.BUCKET_COUNTS, end);
    this.appendDoubleList(c.explicitBounds, c.explicitBound, p, HISTOGRAM.EXPLICIT_BOUNDS, end);
    appendEnumName(c.temporality, TEMPORALITY_NAMES, temporality);
    c.common.rows.endRow();
  }

  private appendExponential(c: ExponentialColumns, p: Scan, end: number, temporality: number): void {
    c.common.append(this.metric, p, this.attributes, EXPONENTIAL.ATTRIBUTES, EXPONENTIAL.FLAGS, end);
    c.count.append(p.fixed64(EXPONENTIAL.COUNT));
    appendOptionalDouble(c.sum, p, EXPONENTIAL.SUM);
    appendOptionalDouble(c.min, p, EXPONENTIAL.MIN);
    appendOptionalDouble(c.max, p, EXPONENTIAL.MAX);
    c.scale.append(p.sint32(EXPONENTIAL.SCALE));
    c.zeroCount.append(p.fixed64(EXPONENTIAL.ZERO_COUNT));
    c.zeroThreshold.append(p.double(EXPONENTIAL.ZERO_THRESHOLD));
    this.appendBuckets(c.positiveOffset, c.positiveCounts, c.positiveCount, p, EXPONENTIAL.POSITIVE);
    this.appendBuckets(c.negativeOffset, c.negativeCounts, c.negativeCount, p, EXPONENTIAL.NEGATIVE);
    appendEnumName(c.temporality, TEMPORALITY_NAMES, temporality);
    c.common.rows.endRow();
  }

  private appendSummary(c: SummaryColumns, p: Scan, end: number): void {
    c.common.append(this.metric, p, this.attributes, SUMMARY.ATTRIBUTES, SUMMARY.FLAGS, end);
    c.count.append(p.fixed64(SUMMARY.COUNT));
    c.sum.append(p.double(SUMMARY.SUM));
    c.quantiles.start();
    const f = this.listFields.only(p, SUMMARY.QUANTILES, end);
    while (f.nextOf()) {
      f.expect(Wire.LEN);
      const q = this.nestedScan.scan(p.buf, f.start, f.stop);
      c.quantile.appendValid();
      c.quantileQ.append(q.double(1));
      c.quantileValue.append(q.double(2));
    }
    c.quantiles.end();
    c.common.rows.endRow();
  }

  /** ExponentialHistogramDataPoint.Buckets { 1 offset sint32, 2 bucket_counts uint64[] }; absent: offset 0, no counts. */
  private appendBuckets(offset: IntColumn, list: ListColumn, element: LongColumn, p: Scan, field: number): void {
    if (!p.is(field, Wire.LEN)) {
      offset.append(0);
      list.start();
      list.end();
      return;
    }
    const start = p.start[field]!;
    const end = p.stop[field]!;
    offset.append(this.nestedScan.scan(p.buf, start, end).sint32(1));
    list.start();
    const f = this.listFields.reset(p.buf, start, end);
    while (f.next()) {
      if (f.field !== 2) continue;
      if (f.wire === Wire.VARINT) element.append(uint64Value(f.lo, f.hi));
      else {
        f.expect(Wire.LEN);
        const v = this.packed.reset(p.buf, f.start, f.stop);
        while (v.next()) element.append(uint64Value(v.lo, v.hi));
      }
    }
    list.end();
  }

  /** A repeated fixed64 field (packed or not) of a scanned message as a list of longs. */
  private appendFixed64List(list: ListColumn, element: LongColumn, p: Scan, field: number, end: number): void {
    list.start();
    const buf = p.buf;
    const f = this.listFields.only(p, field, end);
    while (f.nextOf()) {
      if (f.wire !== Wire.I64) f.expect(Wire.LEN);
      for (let at = f.start; at + 8 <= f.stop; at += 8) element.append(uint64Value(buf.readUInt32LE(at), buf.readUInt32LE(at + 4)));
    }
    list.end();
  }

  /** A repeated double field (packed or not) of a scanned message as a list of doubles. */
  private appendDoubleList(list: ListColumn, element: DoubleColumn, p: Scan, field: number, end: number): void {
    list.start();
    const buf = p.buf;
    const f = this.listFields.only(p, field, end);
    while (f.nextOf()) {
      if (f.wire !== Wire.I64) f.expect(Wire.LEN);
      for (let at = f.start; at + 8 <= f.stop; at += 8) element.append(buf.readDoubleLE(at));
    }
    list.end();
  }
}
