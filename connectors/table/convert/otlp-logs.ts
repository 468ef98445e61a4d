// otlp_logs: one row per LogRecord of an ExportLogsServiceRequest (schemas/tables/otlp_logs.json).
//
//   LogRecord { 1 time_unix_nano fixed64, 11 observed_time_unix_nano fixed64, 2 severity_number enum,
//     3 severity_text, 5 body AnyValue, 6 attributes, 7 dropped_attributes_count, 8 flags fixed32,
//     9 trace_id bytes, 10 span_id bytes, 12 event_name }

import type { IntColumn, StringColumn, TableRows, TimestampColumn } from '../columns.ts';
import type { TableSchemaFile } from '../table-schemas.ts';
import { appendId, appendLen, column, stringMap, type StringMap } from './append.ts';
import { AnyValueReader, AttributeWriter } from './attributes.ts';
import { OtlpConverter, ResourceScopeColumns } from './otlp-common.ts';
import { Scan, Wire } from './protobuf.ts';
import type { ValueEncoding } from './types.ts';

const F = {
  TIME: 1, SEVERITY_NUMBER: 2, SEVERITY_TEXT: 3, BODY: 5, ATTRIBUTES: 6, DROPPED_ATTRIBUTES: 7, FLAGS: 8,
  TRACE_ID: 9, SPAN_ID: 10, OBSERVED_TIME: 11, EVENT_NAME: 12,
} as const;

class LogColumns {
  readonly timestamp: TimestampColumn;
  readonly observedTimestamp: TimestampColumn;
  readonly severityNumber: IntColumn;
  readonly severityText: StringColumn;
  readonly body: StringColumn;
  readonly traceId: StringColumn;
  readonly spanId: StringColumn;
  readonly flags: IntColumn;
  readonly eventName: StringColumn;
  readonly resourceScope: ResourceScopeColumns;
  readonly logAttributes: StringMap;
  readonly droppedAttributesCount: IntColumn;

  constructor(rows: TableRows, def: TableSchemaFile) {
    this.timestamp = column(rows, 'timestamp', 'timestamptz');
    this.observedTimestamp = column(rows, 'observed_timestamp', 'timestamptz');
    this.severityNumber = column(rows, 'severity_number', 'int');
    this.severityText = column(rows, 'severity_text', 'string');
    this.body = column(rows, 'body', 'string');
    this.traceId = column(rows, 'trace_id', 'string');
    this.spanId = column(rows, 'span_id', 'string');
    this.flags = column(rows, 'flags', 'int');
    this.eventName = column(rows, 'event_name', 'string');
    this.resourceScope = new ResourceScopeColumns(rows, def.tables[0]!);
    this.logAttributes = stringMap(rows.column('log_attributes'), 'log_attributes');
    this.droppedAttributesCount = column(rows, 'dropped_attributes_count', 'int');
  }
}

export class OtlpLogsConverter extends OtlpConverter {
  private readonly scan = new Scan();
  private readonly body = new AnyValueReader();
  private readonly attributes = new AttributeWriter();
  private columns: LogColumns | undefined = undefined;
  private rows: TableRows | undefined = undefined;

  constructor(def: TableSchemaFile, encoding: ValueEncoding) {
    if (def.tables.length !== 1) throw new Error(`${def.name}: the otlp_logs converter fills exactly one table`);
    super(def, 'ExportLogsServiceRequest', encoding);
  }

  protected bind(out: readonly TableRows[]): void {
    this.rows = out[0]!;
    this.columns = new LogColumns(this.rows, this.def);
  }

  protected appendItem(buf: Buffer, start: number, end: number): void {
    const c = this.columns!;
    const s = this.scan.scan(buf, start, end);
    const timeMicros = s.timeMicros(F.TIME);
    const observedMicros = s.timeMicros(F.OBSERVED_TIME);
    c.timestamp.append(timeMicros !== 0 ? timeMicros : observedMicros !== 0 ? observedMicros : this.recordTimeMicros);
    if (observedMicros !== 0) c.observedTimestamp.append(observedMicros);
    else c.observedTimestamp.appendNull();
    c.severityNumber.append(s.int32(F.SEVERITY_NUMBER));
    appendLen(c.severityText, s, F.SEVERITY_TEXT);
    if (s.is(F.BODY, Wire.LEN)) this.body.read(buf, s.start[F.BODY]!, s.stop[F.BODY]!).appendTo(c.body, buf);
    else c.body.appendNull();
    appendId(c.traceId, s, F.TRACE_ID);
    appendId(c.spanId, s, F.SPAN_ID);
    c.flags.append(s.fixed32(F.FLAGS) | 0);
    appendLen(c.eventName, s, F.EVENT_NAME);
    c.resourceScope.append(this.walker.context);
    this.attributes.append(c.logAttributes, s, F.ATTRIBUTES, end);
    c.droppedAttributesCount.append(s.uint32(F.DROPPED_ATTRIBUTES) | 0);
    this.rows!.endRow();
  }
}
