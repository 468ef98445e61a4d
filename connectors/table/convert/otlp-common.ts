// What the three OTLP converters share: reading a record value (otlp_proto, or otlp_json turned
// into the same protobuf), checking it whole before any row is written, walking
//
//   Export*ServiceRequest { 1 repeated Resource* }
//   Resource*  { 1 Resource { 1 repeated KeyValue attributes }, 2 repeated Scope*, 3 schema_url }
//   Scope*     { 1 InstrumentationScope { 1 name, 2 version, 3 attributes }, 2 repeated item, 3 schema_url }
//
// down to the items (log records, spans, metrics), and the resource and scope columns every row
// carries (promoted attributes, attribute maps, scope name and version, schema urls).

import { jsonToProto } from '../../otlp/json.ts';
import { WalkContext, walkMessage, walkTable } from '../../otlp/walk.ts';
import { WireReader } from '../../otlp/wire.ts';
import type { ColumnBuilder, StringColumn, TableRows } from '../columns.ts';
import type { TableDef } from '../table-schemas.ts';
import { appendTextOrNull, column, stringMap, utf8, type StringMap } from './append.ts';
import { AttributeList } from './attributes.ts';
import { Fields, Scan, Wire, msToMicros } from './protobuf.ts';
import type { TableSchemaFile } from '../table-schemas.ts';
import type { Converter, RecordView, ValueEncoding } from './types.ts';

export type OtlpRequest = 'ExportLogsServiceRequest' | 'ExportTraceServiceRequest' | 'ExportMetricsServiceRequest';

/** The record value as protobuf, checked whole: what the walk reads. */
export class OtlpValue {
  buf: Buffer = Buffer.alloc(0);
  start = 0;
  end = 0;
  private readonly walkContext = new WalkContext();
  private readonly request: OtlpRequest;
  private readonly encoding: ValueEncoding;

  constructor(request: OtlpRequest, encoding: ValueEncoding) {
    this.request = request;
    this.encoding = encoding;
  }

  /**
   * Takes the record's value; returns why it cannot be converted, or undefined when it can.
   * The whole message is walked first (wire types, lengths, nesting), so that the row pass
   * cannot fail half-way through a record.
   */
  read(record: RecordView): string | undefined {
    if (record.valueStart < 0) return 'null value';
    try {
      if (this.encoding === 'otlp_json') {
        const text = record.buf.toString('utf8', record.valueStart, record.valueEnd);
        this.buf = jsonToProto(this.request, JSON.parse(text));
        this.start = 0;
        this.end = this.buf.length;
      } else {
        this.buf = record.buf;
        this.start = record.valueStart;
        this.end = record.valueEnd;
      }
      this.walkContext.reset();
      walkMessage(new WireReader(this.buf, this.start, this.end), walkTable(this.request), this.walkContext, 0);
      return undefined;
    } catch (err) {
      return `${this.request}: ${(err as Error).message}`;
    }
  }
}

/** The resource and scope the items being visited belong to. */
export class ResourceScope {
  readonly resourceAttributes = new AttributeList();
  resourceSchemaUrlStart = -1;
  resourceSchemaUrlStop = -1;
  /** Changes with every resource read (column sets cache promoted lookups by it). */
  resourceSerial = 0;
  /** Changes with every scope read. */
  scopeSerial = 0;
  readonly scopeAttributes = new AttributeList();
  scopeNameStart = -1;
  scopeNameStop = -1;
  scopeVersionStart = -1;
  scopeVersionStop = -1;
  scopeSchemaUrlStart = -1;
  scopeSchemaUrlStop = -1;
  buf: Buffer = Buffer.alloc(0);
}

export type ItemVisitor = (buf: Buffer, start: number, end: number) => void;

/** Walks a request down to its items, keeping ResourceScope current. */
export class OtlpWalker {
  readonly context = new ResourceScope();
  private readonly requestFields = new Fields();
  private readonly containerFields = new Fields();
  private readonly itemFields = new Fields();
  private readonly containerScan = new Scan();
  private readonly scopeContainerScan = new Scan();
  private readonly scopeScan = new Scan();

  walk(buf: Buffer, start: number, end: number, visit: ItemVisitor): void {
    this.context.buf = buf;
    const f = this.requestFields.reset(buf, start, end);
    while (f.next()) {
      if (f.field !== 1) continue;
      f.expect(Wire.LEN);
      this.walkResource(buf, f.start, f.stop, visit);
    }
  }

  private walkResource(buf: Buffer, start: number, end: number, visit: ItemVisitor): void {
    const ctx = this.context;
    const s = this.containerScan.scan(buf, start, end);
    if (s.is(1, Wire.LEN)) ctx.resourceAttributes.read(buf, s.start[1]!, s.stop[1]!, 1);
    else ctx.resourceAttributes.read(buf, -1, -1, 1);
    ctx.resourceSchemaUrlStart = s.is(3, Wire.LEN) ? s.start[3]! : -1;
    ctx.resourceSchemaUrlStop = s.is(3, Wire.LEN) ? s.stop[3]! : -1;
    ctx.resourceSerial++;
    const f = this.containerFields.reset(buf, start, end);
    while (f.next()) {
      if (f.field !== 2) continue;
      f.expect(Wire.LEN);
      this.walkScope(buf, f.start, f.stop, visit);
    }
  }

  private walkScope(buf: Buffer, start: number, end: number, visit: ItemVisitor): void {
    const ctx = this.context;
    const s = this.scopeContainerScan.scan(buf, start, end);
    ctx.scopeSchemaUrlStart = s.is(3, Wire.LEN) ? s.start[3]! : -1;
    ctx.scopeSchemaUrlStop = s.is(3, Wire.LEN) ? s.stop[3]! : -1;
    ctx.scopeSerial++;
    ctx.scopeNameStart = ctx.scopeVersionStart = -1;
    ctx.scopeAttributes.read(buf, -1, -1, 3);
    if (s.is(1, Wire.LEN)) {
      const scope = this.scopeScan.scan(buf, s.start[1]!, s.stop[1]!);
      if (scope.is(1, Wire.LEN)) {
        ctx.scopeNameStart = scope.start[1]!;
        ctx.scopeNameStop = scope.stop[1]!;
      }
      if (scope.is(2, Wire.LEN)) {
        ctx.scopeVersionStart = scope.start[2]!;
        ctx.scopeVersionStop = scope.stop[2]!;
      }
      ctx.scopeAttributes.read(buf, s.start[1]!, s.stop[1]!, 3);
    }
    const f = this.itemFields.reset(buf, start, end);
    while (f.next()) {
      if (f.field !== 2) continue;
      f.expect(Wire.LEN);
      visit(buf, f.start, f.stop);
    }
  }
}

/**
 * The resource and scope columns of one table, appended to each of its rows. The first row of a
 * scope builds them from the record; the scope's next rows copy that row's values (one copy of
 * bytes per column instead of a walk of the attributes per row).
 */
export class ResourceScopeColumns {
  private readonly promotedColumns: StringColumn[];
  private readonly promotedKeys: Buffer[];
  private readonly promotedIndex: Int32Array;
  private serial = -1;
  private readonly resourceAttributes: StringMap;
  private readonly scopeAttributes: StringMap;
  private readonly scopeName: StringColumn;
  private readonly scopeVersion: StringColumn;
  private readonly resourceSchemaUrl: StringColumn;
  private readonly scopeSchemaUrl: StringColumn;
  /** Every column this class appends to. */
  private readonly all: ColumnBuilder[];
  /** The row that holds the current scope's values (-1: none yet), and that scope's serials. */
  private sourceRow = -1;
  private sourceResourceSerial = -1;
  private sourceScopeSerial = -1;

  constructor(rows: TableRows, def: TableDef) {
    const promoted = Object.entries(def.promoted);
    this.promotedColumns = promoted.map(([name]) => column(rows, name, 'string'));
    this.promotedKeys = promoted.map(([, key]) => utf8(key));
    this.promotedIndex = new Int32Array(promoted.length);
    this.resourceAttributes = stringMap(rows.column('resource_attributes'), 'resource_attributes');
    this.scopeAttributes = stringMap(rows.column('scope_attributes'), 'scope_attributes');
    this.scopeName = column(rows, 'scope_name', 'string');
    this.scopeVersion = column(rows, 'scope_version', 'string');
    this.resourceSchemaUrl = column(rows, 'resource_schema_url', 'string');
    this.scopeSchemaUrl = column(rows, 'scope_schema_url', 'string');
    this.all = [
      ...this.promotedColumns, this.resourceAttributes.map, this.scopeAttributes.map,
      this.scopeName, this.scopeVersion, this.resourceSchemaUrl, this.scopeSchemaUrl,
    ];
  }

  append(ctx: ResourceScope): void {
    const row = this.resourceAttributes.map.length;
    const sameScope = ctx.resourceSerial === this.sourceResourceSerial && ctx.scopeSerial === this.sourceScopeSerial;
    if (sameScope && this.sourceRow < row) {
      for (let i = 0; i < this.all.length; i++) this.all[i]!.appendCopyOf(this.sourceRow);
      return;
    }
    this.sourceRow = row;
    this.sourceResourceSerial = ctx.resourceSerial;
    this.sourceScopeSerial = ctx.scopeSerial;
    this.appendFrom(ctx);
  }

  private appendFrom(ctx: ResourceScope): void {
    const attributes = ctx.resourceAttributes;
    if (this.serial !== ctx.resourceSerial) {
      this.serial = ctx.resourceSerial;
      for (let i = 0; i < this.promotedKeys.length; i++) this.promotedIndex[i] = attributes.find(this.promotedKeys[i]!);
    }
    for (let i = 0; i < this.promotedColumns.length; i++) attributes.appendValueOrNull(this.promotedColumns[i]!, this.promotedIndex[i]!);
    attributes.appendMap(this.resourceAttributes);
    ctx.scopeAttributes.appendMap(this.scopeAttributes);
    const buf = ctx.buf;
    appendTextOrNull(this.scopeName, buf, ctx.scopeNameStart, ctx.scopeNameStop);
    appendTextOrNull(this.scopeVersion, buf, ctx.scopeVersionStart, ctx.scopeVersionStop);
    appendTextOrNull(this.resourceSchemaUrl, buf, ctx.resourceSchemaUrlStart, ctx.resourceSchemaUrlStop);
    appendTextOrNull(this.scopeSchemaUrl, buf, ctx.scopeSchemaUrlStart, ctx.scopeSchemaUrlStop);
  }
}

/**
 * An OTLP converter: checks the record value whole (a malformed one is skipped and counted), then
 * walks it down to its items, each handed to appendItem with the record's time as the fallback
 * for items without their own. Subclasses bind their columns when the output rows change.
 */
export abstract class OtlpConverter implements Converter {
  readonly tables: readonly string[];
  skippedRecords = 0;
  lastSkipReason: string | undefined = undefined;
  protected readonly def: TableSchemaFile;
  protected readonly walker = new OtlpWalker();
  /** The Kafka record's timestamp: the time of an item that has none. */
  protected recordTimeMicros = 0;
  private readonly value: OtlpValue;
  private bound: TableRows[] | undefined = undefined;
  private readonly visitItem: ItemVisitor = (buf, start, end) => this.appendItem(buf, start, end);

  constructor(def: TableSchemaFile, request: OtlpRequest, encoding: ValueEncoding) {
    this.def = def;
    this.tables = def.tables.map((t) => t.suffix);
    this.value = new OtlpValue(request, encoding);
  }

  append(record: RecordView, out: readonly TableRows[]): void {
    if (!sameRows(this.bound, out)) {
      this.bind(out);
      this.bound = out.slice();
    }
    const reason = this.value.read(record);
    if (reason !== undefined) {
      this.skippedRecords++;
      this.lastSkipReason = `offset ${record.offset}: ${reason}`;
      return;
    }
    this.recordTimeMicros = msToMicros(record.timestampMs);
    this.walker.walk(this.value.buf, this.value.start, this.value.end, this.visitItem);
  }

  /** Makes the columns of `out` (in the order of def.tables) the ones appendItem writes to. */
  protected abstract bind(out: readonly TableRows[]): void;
  /** Appends the rows of one item (LogRecord, Span, Metric) at buf[start, end). */
  protected abstract appendItem(buf: Buffer, start: number, end: number): void;
}

/** True when every TableRows of `out` is the one in `bound` (the converter's columns are current). */
export function sameRows(bound: readonly TableRows[] | undefined, out: readonly TableRows[]): boolean {
  if (bound === undefined || bound.length !== out.length) return false;
  for (let i = 0; i < out.length; i++) if (bound[i] !== out[i]) return false;
  return true;
}
