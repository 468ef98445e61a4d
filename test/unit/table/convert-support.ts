// For the converter tests: records through the real path (a Kafka batch encoded by
// record-encoder.ts, read back by record-decoder.ts, converted into column builders), rows read
// back from the builders' buffers as plain objects, and rows read by DuckDB from the Parquet file
// the table writer would write.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { columnBuffers, createTableRows, type ColumnBuffers, type TableRows } from '../../../connectors/table/columns.ts';
import { createConverter, type Converter, type ValueEncoding } from '../../../connectors/table/convert/index.ts';
import type { IcebergType } from '../../../connectors/table/iceberg/types.ts';
import { writeParquet } from '../../../connectors/table/parquet.ts';
import { loadTableSchemaFile, type TableSchemaFile } from '../../../connectors/table/table-schemas.ts';
import { encodeRecordBatch, type EncodableRecord } from '../../../src/protocol/record-encoder.ts';
import { forEachRecord } from '../../../src/protocol/record-decoder.ts';
import { setBaseOffset } from '../../../src/protocol/records.ts';

export type Row = Record<string, unknown>;

export interface Tables {
  file: TableSchemaFile;
  converter: Converter;
  rows: TableRows[];
  /** Rows of the table with this suffix, as plain objects. */
  table(suffix: string): Row[];
}

/** A converter for schemas/tables/<name>.json and empty builders for its tables. */
export function openTables(name: string, encoding: ValueEncoding = 'otlp_proto'): Tables {
  const file = loadTableSchemaFile(name);
  const converter = createConverter(file, encoding);
  const rows = file.tables.map((t) => createTableRows(t.schema));
  return {
    file,
    converter,
    rows,
    table: (suffix) => {
      const i = converter.tables.indexOf(suffix);
      if (i < 0) throw new Error(`no table ${suffix}`);
      return rowsOf(rows[i]!);
    },
  };
}

/** Encodes the records as one batch at `baseOffset`, decodes it and converts every record. */
export function convert(tables: Tables, records: EncodableRecord[], options: { baseOffset?: number; partition?: number } = {}): void {
  const batch = encodeRecordBatch(records, Date.now());
  setBaseOffset(batch, 0, options.baseOffset ?? 0);
  forEachRecord(batch, (record) => tables.converter.append(record, tables.rows), { partition: options.partition ?? 0 });
}

/** The rows of a TableRows, read from its column buffers (values as the builders hold them). */
export function rowsOf(rows: TableRows): Row[] {
  const fields = rows.schema.fields;
  const columns = fields.map((f) => columnBuffers(rows.column(f.name)));
  const out: Row[] = [];
  for (let i = 0; i < rows.rowCount; i++) {
    const row: Row = {};
    fields.forEach((f, c) => {
      row[f.name] = valueAt(columns[c]!, f.type, i);
    });
    out.push(row);
  }
  return out;
}

function isNull(b: ColumnBuffers, i: number): boolean {
  return b.validity !== null && (b.validity[i >>> 3]! & (1 << (i & 7))) === 0;
}

function valueAt(b: ColumnBuffers, type: IcebergType, i: number): unknown {
  if (isNull(b, i)) return null;
  switch (b.kind) {
    case 'bool': return (b.bits[i >>> 3]! & (1 << (i & 7))) !== 0;
    case 'int32': case 'float32': case 'float64': return b.values[i];
    case 'int64': {
      const v = b.values[i]!;
      return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case 'bytes': {
      const bytes = Buffer.from(b.bytes.buffer, b.bytes.byteOffset + b.offsets[i]!, b.offsets[i + 1]! - b.offsets[i]!);
      return type === 'string' ? bytes.toString('utf8') : Buffer.from(bytes);
    }
    case 'fixed': return Buffer.from(b.bytes.subarray(i * b.widthBytes, (i + 1) * b.widthBytes));
    case 'list': {
      if (typeof type !== 'object' || type.type !== 'list') throw new Error('list buffers for a non-list type');
      const items: unknown[] = [];
      for (let j = b.offsets[i]!; j < b.offsets[i + 1]!; j++) items.push(valueAt(b.element, type.element, j));
      return items;
    }
    case 'map': {
      if (typeof type !== 'object' || type.type !== 'map') throw new Error('map buffers for a non-map type');
      const entries: [unknown, unknown][] = [];
      for (let j = b.offsets[i]!; j < b.offsets[i + 1]!; j++) entries.push([valueAt(b.key, type.key, j), valueAt(b.value, type.value, j)]);
      return Object.fromEntries(entries);
    }
    case 'struct': {
      if (typeof type !== 'object' || type.type !== 'struct') throw new Error('struct buffers for a non-struct type');
      const value: Row = {};
      type.fields.forEach((f, c) => {
        value[f.name] = valueAt(b.children[c]!, f.type, i);
      });
      return value;
    }
  }
}

/**
 * Writes the rows as the table writer would (Parquet, zstd) into a temporary file and runs `sql`
 * on it with DuckDB (the view `rows` reads the file); rows come back as JSON-like objects.
 */
export async function queryParquet(rows: TableRows, sql: string): Promise<Row[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'wharf-convert-'));
  try {
    const file = path.join(dir, 'rows.parquet');
    writeFileSync(file, (await writeParquet(rows, { compression: 'zstd', rowGroupRows: 10_000 })).bytes);
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      await connection.run(`CREATE VIEW rows AS SELECT * FROM read_parquet('${file}')`);
      const reader = await connection.runAndReadAll(sql);
      return reader.getRowObjectsJson() as Row[];
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
