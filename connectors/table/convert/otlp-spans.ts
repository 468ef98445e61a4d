// otlp_spans: one row per Span of an ExportTraceServiceRequest (schemas/tables/otlp_spans.json),
// events and links as nested lists.
//
//   Span { 1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id, 5 name, 6 kind enum,
//     7 start_time_unix_nano fixed64, 8 end_time_unix_nano fixed64, 9 attributes,
//     10 dropped_attributes_count, 11 events, 12 dropped_events_count, 13 links,
//     14 dropped_links_count, 15 status { 2 message, 3 code enum }, 16 flags fixed32 }
//   Event { 1 time_unix_nano, 2 name, 3 attributes }   Link { 1 trace_id, 2 span_id, 3 trace_state, 4 attributes }

import type { IntColumn, ListColumn, LongColumn, StringColumn, StructColumn, TableRows, TimestampColumn } from '../columns.ts';
import type { TableSchemaFile } from '../table-schemas.ts';
import {
  appendEnumName, appendId, appendIdOrEmpty, appendLen, appendLenOrEmpty, asColumn, column, stringMap, structList, utf8,
  type StringMap,
} from './append.ts';
import { AttributeWriter } from './attributes.ts';
import { OtlpConverter, ResourceScopeColumns } from './otlp-common.ts';
import { Fields, Scan, Wire } from './protobuf.ts';
import type { ValueEncoding } from './types.ts';

const F = {
  TRACE_ID: 1, SPAN_ID: 2, TRACE_STATE: 3, PARENT_SPAN_ID: 4, NAME: 5, KIND: 6, START: 7, END: 8, ATTRIBUTES: 9,
  DROPPED_ATTRIBUTES: 10, EVENTS: 11, DROPPED_EVENTS: 12, LINKS: 13, DROPPED_LINKS: 14, STATUS: 15, FLAGS: 16,
} as const;
const STATUS_MESSAGE = 2;
const STATUS_CODE = 3;
const EVENT = { TIME: 1, NAME: 2, ATTRIBUTES: 3 } as const;
const LINK = { TRACE_ID: 1, SPAN_ID: 2, TRACE_STATE: 3, ATTRIBUTES: 4 } as const;

/** Enum names as OTLP/JSON writes them. */
const SPAN_KIND = ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'].map(utf8);
const STATUS = ['STATUS_CODE_UNSET', 'STATUS_CODE_OK', 'STATUS_CODE_ERROR'].map(utf8);

class EventColumns {
  readonly list: ListColumn;
  readonly item: StructColumn;
  readonly time: TimestampColumn;
  readonly name: StringColumn;
  readonly attributes: StringMap;
  constructor(rows: TableRows) {
    ({ list: this.list, item: this.item } = structList(rows.column('events'), 'events'));
    this.time = asColumn(this.item.field('time'), 'timestamptz', 'events.time');
    this.name = asColumn(this.item.field('name'), 'string', 'events.name');
    this.attributes = stringMap(this.item.field('attributes'), 'events.attributes');
  }
}

class LinkColumns {
  readonly list: ListColumn;
  readonly item: StructColumn;
  readonly traceId: StringColumn;
  readonly spanId: StringColumn;
  readonly traceState: StringColumn;
  readonly attributes: StringMap;
  constructor(rows: TableRows) {
    ({ list: this.list, item: this.item } = structList(rows.column('links'), 'links'));
    this.traceId = asColumn(this.item.field('trace_id'), 'string', 'links.trace_id');
    this.spanId = asColumn(this.item.field('span_id'), 'string', 'links.span_id');
    this.traceState = asColumn(this.item.field('trace_state'), 'string', 'links.trace_state');
    this.attributes = stringMap(this.item.field('attributes'), 'links.attributes');
  }
}

class SpanColumns {
  readonly traceId: StringColumn;
  readonly spanId: StringColumn;
  readonly parentSpanId: StringColumn;
  readonly traceState: StringColumn;
  readonly flags: IntColumn;
  readonly name: StringColumn;
  readonly kind: StringColumn;
  readonly startTime: TimestampColumn;
  readonly endTime: TimestampColumn;
  readonly durationNs: LongColumn;
  readonly statusCode: StringColumn;
  readonly statusMessage: StringColumn;
  readonly resourceScope: ResourceScopeColumns;
  readonly spanAttributes: StringMap;
  readonly events: EventColumns;
  readonly links: LinkColumns;
  readonly droppedAttributesCount: IntColumn;
  readonly droppedEventsCount: IntColumn;
  readonly droppedLinksCount: IntColumn;

  constructor(rows: TableRows, def: TableSchemaFile) {
    this.traceId = column(rows, 'trace_id', 'string');
    this.spanId = column(rows, 'span_id', 'string');
    this.parentSpanId = column(rows, 'parent_span_id', 'string');
    this.traceState = column(rows, 'trace_state', 'string');
    this.flags = column(rows, 'flags', 'int');
    this.name = column(rows, 'name', 'string');
    this.kind = column(rows, 'kind', 'string');
    this.startTime = column(rows, 'start_time', 'timestamptz');
    this.endTime = column(rows, 'end_time', 'timestamptz');
    this.durationNs = column(rows, 'duration_ns', 'long');
    this.statusCode = column(rows, 'status_code', 'string');
    this.statusMessage = column(rows, 'status_message', 'string');
    this.resourceScope = new ResourceScopeColumns(rows, def.tables[0]!);
    this.spanAttributes = stringMap(rows.column('span_attributes'), 'span_attributes');
    this.events = new EventColumns(rows);
    this.links = new LinkColumns(rows);
    this.droppedAttributesCount = column(rows, 'dropped_attributes_count', 'int');
    this.droppedEventsCount = column(rows, 'dropped_events_count', 'int');
    this.droppedLinksCount = column(rows, 'dropped_links_count', 'int');
  }
}

export class OtlpSpansConverter extends OtlpConverter {
  private readonly scan = new Scan();
  private readonly statusScan = new Scan();
  private readonly nestedScan = new Scan();
  private readonly nestedFields = new Fields();
  private readonly attributes = new AttributeWriter();
  private columns: SpanColumns | undefined = undefined;
  private rows: TableRows | undefined = undefined;

  constructor(def: TableSchemaFile, encoding: ValueEncoding) {
    if (def.tables.length !== 1) throw new Error(`${def.name}: the otlp_spans converter fills exactly one table`);
    super(def, 'ExportTraceServiceRequest', encoding);
  }

  protected bind(out: readonly TableRows[]): void {
    this.rows = out[0]!;
    this.columns = new SpanColumns(this.rows, this.def);
  }

  protected appendItem(buf: Buffer, start: number, end: number): void {
    const c = this.columns!;
    const s = this.scan.scan(buf, start, end);
    appendIdOrEmpty(c.traceId, s, F.TRACE_ID);
    appendIdOrEmpty(c.spanId, s, F.SPAN_ID);
    appendId(c.parentSpanId, s, F.PARENT_SPAN_ID);
    appendLen(c.traceState, s, F.TRACE_STATE);
    c.flags.append(s.fixed32(F.FLAGS) | 0);
    appendLenOrEmpty(c.name, s, F.NAME);
    appendEnumName(c.kind, SPAN_KIND, s.int32(F.KIND));
    this.appendTimes(c, s);
    this.appendStatus(c, s);
    c.resourceScope.append(this.walker.context);
    this.attributes.append(c.spanAttributes, s, F.ATTRIBUTES, end);
    this.appendEvents(c.events, s, end);
    this.appendLinks(c.links, s, end);
    c.droppedAttributesCount.append(s.uint32(F.DROPPED_ATTRIBUTES) | 0);
    c.droppedEventsCount.append(s.uint32(F.DROPPED_EVENTS) | 0);
    c.droppedLinksCount.append(s.uint32(F.DROPPED_LINKS) | 0);
    this.rows!.endRow();
  }

  private appendTimes(c: SpanColumns, s: Scan): void {
    const startMicros = s.timeMicros(F.START);
    const endMicros = s.timeMicros(F.END);
    c.startTime.append(startMicros !== 0 ? startMicros : this.recordTimeMicros);
    if (endMicros !== 0) c.endTime.append(endMicros);
    else c.endTime.appendNull();
    if (startMicros === 0 || endMicros === 0) {
      c.durationNs.appendNull();
      return;
    }
    const buf = s.buf;
    const startAt = s.start[F.START]!;
    const endAt = s.start[F.END]!;
    const startHi = buf.readUInt32LE(startAt + 4);
    const endHi = buf.readUInt32LE(endAt + 4);
    const durationNs = (endHi - startHi) * 4294967296 + (buf.readUInt32LE(endAt) - buf.readUInt32LE(startAt));
    if (Number.isSafeInteger(durationNs)) c.durationNs.append(durationNs);
    else c.durationNs.append(buf.readBigUInt64LE(endAt) - buf.readBigUInt64LE(startAt));
  }

  private appendStatus(c: SpanColumns, s: Scan): void {
    if (!s.is(F.STATUS, Wire.LEN)) {
      appendEnumName(c.statusCode, STATUS, 0);
      c.statusMessage.appendNull();
      return;
    }
    const status = this.statusScan.scan(s.buf, s.start[F.STATUS]!, s.stop[F.STATUS]!);
    appendEnumName(c.statusCode, STATUS, status.int32(STATUS_CODE));
    appendLen(c.statusMessage, status, STATUS_MESSAGE);
  }

  private appendEvents(c: EventColumns, s: Scan, end: number): void {
    c.list.start();
    const buf = s.buf;
    const f = this.nestedFields.only(s, F.EVENTS, end);
    while (f.nextOf()) {
      f.expect(Wire.LEN);
      const e = this.nestedScan.scan(buf, f.start, f.stop);
      c.item.appendValid();
      const timeMicros = e.timeMicros(EVENT.TIME);
      if (timeMicros !== 0) c.time.append(timeMicros);
      else c.time.appendNull();
      appendLenOrEmpty(c.name, e, EVENT.NAME);
      this.attributes.append(c.attributes, e, EVENT.ATTRIBUTES, f.stop);
    }
    c.list.end();
  }

  private appendLinks(c: LinkColumns, s: Scan, end: number): void {
    c.list.start();
    const buf = s.buf;
    const f = this.nestedFields.only(s, F.LINKS, end);
    while (f.nextOf()) {
      f.expect(Wire.LEN);
      const l = this.nestedScan.scan(buf, f.start, f.stop);
      c.item.appendValid();
      appendId(c.traceId, l, LINK.TRACE_ID);
      appendId(c.spanId, l, LINK.SPAN_ID);
      appendLen(c.traceState, l, LINK.TRACE_STATE);
      this.attributes.append(c.attributes, l, LINK.ATTRIBUTES, f.stop);
    }
    c.list.end();
  }
}
