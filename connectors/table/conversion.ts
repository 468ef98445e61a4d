// The CPU half of the table writer, for one topic: Kafka record batches in, Parquet files out.
// Records are decoded from the stored batches, converted by the topic's schema into column
// builders (one per table of the schema: the metrics schema has one table per point type), and
// at flush each table's rows are grouped by their Iceberg partition and written as Parquet.
// It does no I/O, so it runs in the table worker thread (worker.ts) and in tests alike.

import { forEachRecord } from '../../src/protocol/record-decoder.ts';
import { createTableRows, type TableRows } from './columns.ts';
import { writeParquet, type ColumnStats, type ParquetWriteOptions } from './parquet.ts';
import { createConverter, type Converter } from './convert/index.ts';
import { loadTableSchemaFile } from './table-schemas.ts';
import { groupRowsByPartition } from './partition-rows.ts';
import type { IcebergSchema } from './iceberg/types.ts';
import type { PartitionSpec, PartitionValue } from './iceberg/partitioning.ts';

export interface ConversionTable {
  /** The table's current schema (its field ids are the ones written into Parquet). */
  schema: IcebergSchema;
  spec: PartitionSpec;
}

export interface ConversionSpec {
  topic: string;
  /** A schema of schemas/tables/ by name ('raw' included). */
  schemaName: string;
  encoding: 'otlp_proto' | 'otlp_json';
  /** In the order of the schema file's tables. */
  tables: ConversionTable[];
  parquet: ParquetWriteOptions;
}

export interface AppendOutcome {
  /** Offset after the last record of the batches (the next offset to read). */
  nextOffset: number;
  records: number;
  /** Records that could not be converted (malformed values); they are counted, not retried. */
  skippedRecords: number;
  /** Bytes buffered in column builders over all tables. */
  bufferedBytes: number;
}

export interface WrittenFile {
  /** Index into ConversionSpec.tables. */
  table: number;
  /** Partition values by partition field name, and the Hive-style path of the partition. */
  partition: Record<string, PartitionValue>;
  partitionPath: string;
  bytes: Uint8Array;
  rowCount: number;
  stats: Map<number, ColumnStats>;
  columnSizes: Map<number, number> | undefined;
}

export class TopicConversion {
  private readonly spec: ConversionSpec;
  private readonly converter: Converter;
  private readonly rows: TableRows[];
  /** Builders that take the rows of tables already committed past a record (crash recovery). */
  private readonly discard = new Map<number, TableRows>();
  private skippedBefore = 0;

  constructor(spec: ConversionSpec) {
    this.spec = spec;
    const file = loadTableSchemaFile(spec.schemaName);
    if (file.tables.length !== spec.tables.length) {
      throw new Error(`schema ${spec.schemaName} has ${file.tables.length} tables, the writer opened ${spec.tables.length}`);
    }
    this.converter = createConverter(file, spec.encoding);
    this.rows = spec.tables.map((t) => createTableRows(t.schema));
  }

  /**
   * Converts the records of `batches` (whole stored batches of one partition) from `fromOffset`
   * on. A table whose `skipBelow[table]` is above a record's offset already holds that record's
   * rows (it committed further than the others before a crash), so they are dropped for it.
   */
  append(partition: number, batches: Buffer, fromOffset: number, skipBelow: readonly number[]): AppendOutcome {
    let records = 0;
    // Records from here on belong in every table (the common case: no table is ahead).
    const allTablesFrom = Math.max(fromOffset, ...skipBelow);
    const result = forEachRecord(batches, (record) => {
      if (record.offset < fromOffset) return;
      const targets = record.offset >= allTablesFrom
        ? this.rows
        : this.rows.map((rows, t) => (record.offset < skipBelow[t]! ? this.discardOf(t) : rows));
      this.converter.append(record, targets);
      records++;
    }, { partition });
    const nextOffset = Math.max(fromOffset, result.nextOffset);
    for (const d of this.discard.values()) d.reset();
    const skippedNow = this.converter.skippedRecords - this.skippedBefore;
    this.skippedBefore = this.converter.skippedRecords;
    return { nextOffset, records, skippedRecords: skippedNow, bufferedBytes: this.bufferedBytes() };
  }

  private discardOf(table: number): TableRows {
    let rows = this.discard.get(table);
    if (!rows) this.discard.set(table, (rows = createTableRows(this.spec.tables[table]!.schema)));
    return rows;
  }

  bufferedBytes(): number {
    let bytes = 0;
    for (const r of this.rows) bytes += r.byteSize;
    return bytes;
  }

  /** Writes every table's buffered rows as Parquet files (one per partition) and empties the buffers. */
  async flush(): Promise<WrittenFile[]> {
    const files: WrittenFile[] = [];
    for (const [table, rows] of this.rows.entries()) {
      if (rows.rowCount === 0) continue;
      for (const group of groupRowsByPartition(rows, this.spec.tables[table]!)) {
        const parquet = await writeParquet(rows, this.spec.parquet, group.selection);
        files.push({
          table,
          partition: group.values,
          partitionPath: group.path,
          bytes: parquet.bytes,
          rowCount: parquet.rowCount,
          stats: parquet.stats,
          columnSizes: parquet.columnSizes,
        });
      }
      rows.reset();
    }
    return files;
  }

  /** Drops buffered rows (after a failed commit, the writer re-reads from the committed offsets). */
  clear(): void {
    for (const r of this.rows) r.reset();
  }
}
