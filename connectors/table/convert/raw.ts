// raw: any topic without a telemetry schema, one row per Kafka record (schemas/tables/raw.json):
// partition, offset, timestamp, key, value and headers, bytes as they are. Never skips a record.

import type { BinaryColumn, IntColumn, ListColumn, LongColumn, StringColumn, StructColumn, TableRows, TimestampColumn } from '../columns.ts';
import type { HeaderVisitor } from '../../../src/protocol/record-decoder.ts';
import type { TableSchemaFile } from '../table-schemas.ts';
import { asColumn, column, structList } from './append.ts';
import { sameRows } from './otlp-common.ts';
import { msToMicros } from './protobuf.ts';
import type { Converter, RecordView } from './types.ts';

class RawColumns {
  readonly rows: TableRows;
  readonly partition: IntColumn;
  readonly offset: LongColumn;
  readonly timestamp: TimestampColumn;
  readonly key: BinaryColumn;
  readonly value: BinaryColumn;
  readonly headers: ListColumn;
  readonly header: StructColumn;
  readonly headerKey: StringColumn;
  readonly headerValue: BinaryColumn;

  constructor(rows: TableRows) {
    this.rows = rows;
    this.partition = column(rows, 'partition', 'int');
    this.offset = column(rows, 'offset', 'long');
    this.timestamp = column(rows, 'timestamp', 'timestamptz');
    this.key = column(rows, 'key', 'binary');
    this.value = column(rows, 'value', 'binary');
    ({ list: this.headers, item: this.header } = structList(rows.column('headers'), 'headers'));
    this.headerKey = asColumn(this.header.field('key'), 'string', 'headers.key');
    this.headerValue = asColumn(this.header.field('value'), 'binary', 'headers.value');
  }
}

export class RawConverter implements Converter {
  readonly tables: readonly string[];
  readonly skippedRecords = 0;
  readonly lastSkipReason: string | undefined = undefined;
  private bound: TableRows[] | undefined = undefined;
  private columns: RawColumns | undefined = undefined;
  private readonly visitHeader: HeaderVisitor = (buf, keyStart, keyEnd, valueStart, valueEnd) => {
    const c = this.columns!;
    c.header.appendValid();
    c.headerKey.appendText(buf, keyStart, keyEnd);
    if (valueStart < 0) c.headerValue.appendNull();
    else c.headerValue.append(buf, valueStart, valueEnd);
  };

  constructor(def: TableSchemaFile) {
    if (def.tables.length !== 1) throw new Error(`${def.name}: the raw converter fills exactly one table`);
    this.tables = def.tables.map((t) => t.suffix);
  }

  append(record: RecordView, out: readonly TableRows[]): void {
    if (!sameRows(this.bound, out)) {
      this.columns = new RawColumns(out[0]!);
      this.bound = out.slice();
    }
    const c = this.columns!;
    c.partition.append(record.partition);
    c.offset.append(record.offset);
    c.timestamp.append(msToMicros(record.timestampMs));
    if (record.keyStart < 0) c.key.appendNull();
    else c.key.append(record.buf, record.keyStart, record.keyEnd);
    if (record.valueStart < 0) c.value.appendNull();
    else c.value.append(record.buf, record.valueStart, record.valueEnd);
    c.headers.start();
    if (record.headerCount > 0) record.forEachHeader(this.visitHeader);
    c.headers.end();
    c.rows.endRow();
  }
}
