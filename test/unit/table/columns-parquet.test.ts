// Column builders and the Parquet writer, checked the way a user would: rows appended through
// the builders, the Parquet file written to disk and read back by DuckDB (values row by row,
// field ids, codec, row groups), and the Iceberg metrics compared with the appended values.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DuckDBBlobValue, DuckDBDateValue, DuckDBInstance, DuckDBListValue, DuckDBMapValue, DuckDBStructValue,
  DuckDBTimestampTZValue, DuckDBTimestampValue, DuckDBTimeValue, type DuckDBConnection, type DuckDBValue,
} from '@duckdb/node-api';
import {
  columnBuffers, createTableRows, discardPartialRow, type BinaryColumn, type BoolColumn, type ColumnBuilder, type DoubleColumn, type IntColumn,
  type ListColumn, type LongColumn, type MapColumn, type StringColumn, type StructColumn, type TableRows,
  type TimestampColumn, type UuidColumn,
} from '../../../connectors/table/columns.ts';
import { writeParquet, type ColumnStats, type ParquetWriteOptions } from '../../../connectors/table/parquet.ts';
import { compactParquet } from '../../../connectors/table/compact-parquet.ts';
import { ConversionClient } from '../../../connectors/table/worker.ts';
import { DEFAULT_UPLOAD_PART_BYTES } from '../../../src/storage/objectstore/objectstore.ts';
import { randomBytes } from 'node:crypto';
import { wasmMemory } from 'parquet-wasm';
import type { IcebergSchema, IcebergType } from '../../../connectors/table/iceberg/types.ts';

const stringMap = (keyId: number, valueId: number): IcebergType =>
  ({ type: 'map', 'key-id': keyId, key: 'string', 'value-id': valueId, value: 'string', 'value-required': false });

const SCHEMA: IcebergSchema = {
  type: 'struct', 'schema-id': 0, fields: [
    { id: 1, name: 'ts', required: true, type: 'timestamptz' },
    { id: 2, name: 'severity', required: false, type: 'int' },
    { id: 3, name: 'body', required: false, type: 'string' },
    { id: 4, name: 'flag', required: false, type: 'boolean' },
    { id: 5, name: 'count', required: false, type: 'long' },
    { id: 6, name: 'ratio', required: false, type: 'float' },
    { id: 7, name: 'score', required: false, type: 'double' },
    { id: 8, name: 'day', required: false, type: 'date' },
    { id: 9, name: 'local_ts', required: false, type: 'timestamp' },
    { id: 10, name: 'time_of_day', required: false, type: 'time' },
    { id: 11, name: 'payload', required: false, type: 'binary' },
    { id: 12, name: 'id', required: false, type: 'uuid' },
    { id: 13, name: 'scores', required: false, type: { type: 'list', 'element-id': 20, element: 'double', 'element-required': false } },
    { id: 14, name: 'labels', required: false, type: stringMap(21, 22) },
    {
      id: 15, name: 'events', required: false, type: {
        type: 'list', 'element-id': 25, 'element-required': true, element: {
          type: 'struct', fields: [
            { id: 16, name: 'time', required: true, type: 'timestamptz' },
            { id: 17, name: 'name', required: false, type: 'string' },
            { id: 18, name: 'attrs', required: false, type: stringMap(23, 24) },
          ],
        },
      },
    },
    {
      id: 19, name: 'resource', required: false, type: {
        type: 'struct', fields: [
          { id: 26, name: 'service', required: true, type: 'string' },
          { id: 27, name: 'version', required: false, type: 'string' },
        ],
      },
    },
  ],
};
const ALL_FIELD_IDS = Array.from({ length: 27 }, (_, i) => i + 1);

type Entries = [string, string | null][];
interface Row {
  ts: number; severity: number | null; body: string | null; flag: boolean | null; count: number | bigint | null;
  ratio: number | null; score: number | null; day: number | null; local_ts: number | null; time_of_day: number | null;
  payload: Uint8Array | null; id: Uint8Array | null; scores: (number | null)[] | null; labels: Entries | null;
  events: { time: number; name: string | null; attrs: Entries | null }[] | null;
  resource: { service: string; version: string | null } | null;
}

function makeRow(i: number, seed = 0): Row {
  const bodies = [`log line ${i}`, `é${i} ünïcödé and a longer tail`, '', `🚀 ${i} rocket launched today`];
  return {
    ts: 1_700_000_000_000_000 + (i + seed) * 1_000_003,
    severity: i % 7 === 3 ? null : ((i * 37) % 200) - 100,
    body: i % 5 === 4 ? null : bodies[i % 5]!,
    flag: i % 6 === 5 ? null : i % 3 === 0,
    count: i % 9 === 8 ? null : i % 4 === 0 ? -(2n ** 62n) + BigInt(i) : i * 1e12 - 5e13,
    ratio: i % 11 === 10 ? null : i * 0.5,
    score: i % 13 === 12 ? null : i === 10 ? NaN : i / 4 - 3,
    day: i % 8 === 1 ? null : 19_000 + i - 25,
    local_ts: i % 10 === 2 ? null : i * 1000,
    time_of_day: i % 12 === 3 ? null : i * 60_000_000,
    payload: i % 7 === 6 ? null : Uint8Array.of(i, i + 1, 255).subarray(0, i % 4),
    id: i % 5 === 2 ? null : Uint8Array.from({ length: 16 }, (_, b) => (i * 16 + b) & 0xff),
    scores: i % 8 === 7 ? null : Array.from({ length: i % 4 }, (_, j) => (j === 1 ? null : i + j / 8)),
    labels: i % 10 === 9 ? null : Array.from({ length: i % 3 }, (_, j): [string, string | null] => [`k${j}`, j === 1 ? null : `v${i}`]),
    events: i % 6 === 1 ? null : Array.from({ length: i % 3 }, (_, j) => ({
      time: 1_700_000_000_000_000 + j,
      name: j === 1 ? null : `event-${i}-${j}`,
      attrs: j === 0 ? null : [['http.method', 'GET'], ['http.status', i % 2 ? '200' : null]] as Entries,
    })),
    resource: i % 4 === 2 ? null : { service: `svc-${i % 3}`, version: i % 2 ? '1.2.3' : null },
  };
}

function put<C extends ColumnBuilder, V>(column: ColumnBuilder, value: V | null, append: (column: C, value: V) => void): void {
  if (value === null) column.appendNull();
  else append(column as C, value);
}

function putEntries(column: ColumnBuilder, entries: Entries | null): void {
  put(column, entries, (map: MapColumn, list) => {
    map.start();
    for (const [key, value] of list) {
      (map.key as StringColumn).append(key);
      put(map.value, value, (c: StringColumn, v) => c.append(v));
    }
    map.end();
  });
}

function appendRow(rows: TableRows, row: Row, i: number): void {
  const column = (name: string): ColumnBuilder => rows.column(name);
  (column('ts') as TimestampColumn).append(row.ts);
  put(column('severity'), row.severity, (c: IntColumn, v) => c.append(v));
  put(column('body'), row.body, (c: StringColumn, v) => {
    if (i % 2 === 0) return c.append(v);
    const framed = Buffer.from(`<<${v}>>`); // appendUtf8 takes a range of a larger buffer
    c.appendUtf8(framed, 2, framed.length - 2);
  });
  put(column('flag'), row.flag, (c: BoolColumn, v) => c.append(v));
  put(column('count'), row.count, (c: LongColumn, v) => c.append(v));
  put(column('ratio'), row.ratio, (c: DoubleColumn, v) => c.append(v));
  put(column('score'), row.score, (c: DoubleColumn, v) => c.append(v));
  put(column('day'), row.day, (c: IntColumn, v) => c.append(v));
  put(column('local_ts'), row.local_ts, (c: TimestampColumn, v) => c.append(v));
  put(column('time_of_day'), row.time_of_day, (c: TimestampColumn, v) => c.append(v));
  put(column('payload'), row.payload, (c: BinaryColumn, v) => c.append(v));
  put(column('id'), row.id, (c: UuidColumn, v) => c.append(v));
  put(column('scores'), row.scores, (list: ListColumn, values) => {
    list.start();
    for (const v of values) put(list.element, v, (c: DoubleColumn, x) => c.append(x));
    list.end();
  });
  putEntries(column('labels'), row.labels);
  put(column('events'), row.events, (list: ListColumn, events) => {
    list.start();
    const event = list.element as StructColumn;
    for (const e of events) {
      event.appendValid();
      (event.field('time') as TimestampColumn).append(e.time);
      put(event.field('name'), e.name, (c: StringColumn, v) => c.append(v));
      putEntries(event.field('attrs'), e.attrs);
    }
    list.end();
  });
  put(column('resource'), row.resource, (struct: StructColumn, v) => {
    struct.appendValid();
    (struct.field('service') as StringColumn).append(v.service);
    put(struct.field('version'), v.version, (c: StringColumn, x) => c.append(x));
  });
  rows.endRow();
}

/** A row as DuckDB shows it, in plain values: micros and days as numbers, bytes as hex. */
function expectedRow(row: Row): Record<string, unknown> {
  const hex = (bytes: Uint8Array | null): string | null => (bytes === null ? null : Buffer.from(bytes).toString('hex'));
  return {
    ...row,
    count: typeof row.count === 'bigint' ? row.count : row.count,
    payload: hex(row.payload),
    id: hex(row.id),
    events: row.events?.map((e) => ({ ...e })) ?? null,
    resource: row.resource === null ? null : { ...row.resource },
  };
}

function plain(value: DuckDBValue): unknown {
  if (value instanceof DuckDBTimestampTZValue || value instanceof DuckDBTimestampValue || value instanceof DuckDBTimeValue) {
    return Number(value.micros);
  }
  if (value instanceof DuckDBDateValue) return value.days;
  if (value instanceof DuckDBBlobValue) return Buffer.from(value.bytes).toString('hex');
  if (value instanceof DuckDBListValue) return value.items.map(plain);
  if (value instanceof DuckDBMapValue) return value.entries.map((e) => [plain(e.key), plain(e.value)]);
  if (value instanceof DuckDBStructValue) {
    return Object.fromEntries(Object.entries(value.entries).map(([k, v]) => [k, plain(v)]));
  }
  if (typeof value === 'bigint' && Number.isSafeInteger(Number(value))) return Number(value);
  return value;
}

const OPTIONS: ParquetWriteOptions = { compression: 'zstd', rowGroupRows: 16 };

describe('column builders written as Parquet', () => {
  let dir: string;
  let db: DuckDBInstance;
  let duck: DuckDBConnection;
  let fileCount = 0;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'wharf-parquet-'));
    db = await DuckDBInstance.create(':memory:');
    duck = await db.connect();
  });
  afterAll(() => {
    duck.closeSync();
    db.closeSync();
    rmSync(dir, { recursive: true, force: true });
  });

  function saved(bytes: Uint8Array): string {
    const file = path.join(dir, `f${fileCount++}.parquet`);
    writeFileSync(file, bytes);
    return file;
  }

  async function query(sql: string): Promise<Record<string, DuckDBValue>[]> {
    return (await duck.runAndReadAll(sql)).getRowObjects();
  }

  async function readBack(file: string): Promise<Record<string, unknown>[]> {
    const rows = await query(`SELECT * FROM read_parquet('${file}')`);
    return rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, plain(v)])));
  }

  function build(count: number, seed = 0, rows = createTableRows(SCHEMA)): { rows: TableRows; expected: Row[] } {
    const expected = Array.from({ length: count }, (_, i) => makeRow(i, seed));
    expected.forEach((row, i) => appendRow(rows, row, i));
    return { rows, expected };
  }

  it('reads back in DuckDB exactly as appended, every type and nesting, nulls included', async () => {
    const { rows, expected } = build(50);
    const file = await writeParquet(rows, OPTIONS);
    expect(file.rowCount).toBe(50);
    expect(await readBack(saved(file.bytes))).toEqual(expected.map(expectedRow));
  });

  it('gives every Parquet column its Iceberg field id, compresses with zstd, cuts row groups by rows', async () => {
    const path = saved((await writeParquet(build(50).rows, OPTIONS)).bytes);
    const schema = await query(`SELECT name, field_id FROM parquet_schema('${path}')`);
    const ids = schema.map((c) => c.field_id).filter((id) => id !== null).map(Number).sort((a, b) => a - b);
    expect(ids).toEqual(ALL_FIELD_IDS);
    const topLevel = new Map(schema.map((c) => [c.name, Number(c.field_id)]));
    for (const field of SCHEMA.fields) expect(topLevel.get(field.name)).toBe(field.id);

    const chunks = await query(`SELECT row_group_id, row_group_num_rows, compression FROM parquet_metadata('${path}')`);
    expect(new Set(chunks.map((c) => c.compression))).toEqual(new Set(['ZSTD']));
    const groups = new Map(chunks.map((c) => [Number(c.row_group_id), Number(c.row_group_num_rows)]));
    expect([...groups.values()]).toEqual([16, 16, 16, 2]);
  });

  it('writes snappy and uncompressed files when asked', async () => {
    for (const [compression, codec] of [['snappy', 'SNAPPY'], ['none', 'UNCOMPRESSED']] as const) {
      const path = saved((await writeParquet(build(5).rows, { compression, rowGroupRows: 1000 })).bytes);
      const chunks = await query(`SELECT DISTINCT compression FROM parquet_metadata('${path}')`);
      expect(chunks.map((c) => c.compression)).toEqual([codec]);
    }
  });

  it('reports Iceberg counts and bounds of the top-level primitive columns', async () => {
    const { rows, expected } = build(50);
    const { stats } = await writeParquet(rows, OPTIONS);
    const nulls = (name: keyof Row): number => expected.filter((r) => r[name] === null).length;
    const present = <K extends keyof Row>(name: K): NonNullable<Row[K]>[] =>
      expected.map((r) => r[name]).filter((v): v is NonNullable<Row[K]> => v !== null);
    const int32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32LE(v); return b; };
    const int64 = (v: number | bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(v)); return b; };
    const float = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeFloatLE(v); return b; };
    const double = (v: number): Buffer => { const b = Buffer.alloc(8); b.writeDoubleLE(v); return b; };
    const minMax = <T extends number | bigint>(values: T[]): [T, T] =>
      [values.reduce((a, b) => (b < a ? b : a)), values.reduce((a, b) => (b > a ? b : a))];
    const bounds = (id: number, [lower, upper]: [Buffer, Buffer]): void => {
      expect(stats.get(id)?.lowerBound).toEqual(lower);
      expect(stats.get(id)?.upperBound).toEqual(upper);
    };

    SCHEMA.fields.slice(0, 12).forEach((field) => {
      expect(stats.get(field.id), field.name).toMatchObject({ valueCount: 50, nullCount: nulls(field.name as keyof Row) });
    });
    for (const nested of [13, 14, 15, 19]) expect(stats.has(nested)).toBe(false);

    const [tsMin, tsMax] = minMax(present('ts'));
    bounds(1, [int64(tsMin), int64(tsMax)]);
    bounds(2, minMax(present('severity')).map(int32) as [Buffer, Buffer]);
    bounds(5, minMax(present('count').map(BigInt)).map(int64) as [Buffer, Buffer]);
    bounds(6, minMax(present('ratio')).map(float) as [Buffer, Buffer]);
    bounds(7, minMax(present('score').filter((v) => !Number.isNaN(v))).map(double) as [Buffer, Buffer]);
    bounds(8, minMax(present('day')).map(int32) as [Buffer, Buffer]);
    bounds(9, minMax(present('local_ts')).map(int64) as [Buffer, Buffer]);
    bounds(10, minMax(present('time_of_day')).map(int64) as [Buffer, Buffer]);
    bounds(4, [Buffer.of(0), Buffer.of(1)]);
    // The smallest body is '', the largest a rocket line of more than 16 code points: truncated
    // to 16 code points with the last one incremented.
    const rocket = present('body').filter((b) => b.startsWith('🚀')).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))).at(-1)!;
    const rocketPrefix = Array.from(rocket).slice(0, 16);
    const incremented = rocketPrefix.slice(0, 15).join('') + String.fromCodePoint(rocketPrefix[15]!.codePointAt(0)! + 1);
    bounds(3, [Buffer.alloc(0), Buffer.from(incremented)]);
    expect(stats.get(11)).toEqual({ valueCount: 50, nullCount: nulls('payload') } satisfies ColumnStats);
  });

  it('truncates string bounds to 16 code points and keeps short ones whole', async () => {
    const schema: IcebergSchema = { type: 'struct', 'schema-id': 0, fields: [{ id: 1, name: 's', required: false, type: 'string' }] };
    const boundsOf = async (values: (string | null)[]): Promise<[string | undefined, string | undefined]> => {
      const rows = createTableRows(schema);
      for (const v of values) {
        put(rows.column('s'), v, (c: StringColumn, x) => c.append(x));
        rows.endRow();
      }
      const stats = (await writeParquet(rows, OPTIONS)).stats.get(1)!;
      return [stats.lowerBound?.toString('utf8'), stats.upperBound?.toString('utf8')];
    };
    expect(await boundsOf(['banana', 'apple pie with cream and more', null, 'cherry'])).toEqual(['apple pie with c', 'cherry']);
    expect(await boundsOf(['b', 'zzzzzzzzzzzzzzzzzzzz'])).toEqual(['b', 'zzzzzzzzzzzzzzz{']);
    expect(await boundsOf(['ääääääääääääääääää'])).toEqual(['ä'.repeat(16), 'ä'.repeat(15) + 'å']);
    expect(await boundsOf([null, null])).toEqual([undefined, undefined]);
  });

  it('appends copies of earlier values, every type and nesting, nulls included', async () => {
    const { rows, expected } = build(30);
    // Copies of rows 29, 28, ... 0, each column copied on its own, then the copies copied again.
    for (const from of [...Array.from({ length: 30 }, (_, i) => 29 - i), 30, 59]) {
      for (const field of SCHEMA.fields) rows.column(field.name).appendCopyOf(from);
      rows.endRow();
    }
    const copies = [...expected].reverse();
    const all = [...expected, ...copies, copies[0]!, copies[29]!];
    const file = await writeParquet(rows, OPTIONS);
    expect(await readBack(saved(file.bytes))).toEqual(all.map(expectedRow));
    expect(file.stats.get(2)?.nullCount).toBe(all.filter((r) => r.severity === null).length);
    expect(() => rows.column('body').appendCopyOf(rows.rowCount)).toThrow(/cannot copy values 62..63 of 62/);
  });

  it('appends text bytes as they are when UTF-8 and decoded when not, short and long', () => {
    const schema: IcebergSchema = { type: 'struct', 'schema-id': 0, fields: [{ id: 1, name: 's', required: true, type: 'string' }] };
    const rows = createTableRows(schema);
    const texts = [Buffer.from('plain'), Buffer.from('é ünïcödé'), Buffer.from('x'.repeat(40)), Buffer.from('long ünïcödé '.repeat(4)),
      Buffer.from([0x61, 0xff, 0x62]), Buffer.concat([Buffer.from('y'.repeat(30)), Buffer.from([0xc3])]), Buffer.alloc(0)];
    for (const text of texts) {
      const framed = Buffer.concat([Buffer.from('<<'), text, Buffer.from('>>')]);
      (rows.column('s') as StringColumn).appendText(framed, 2, framed.length - 2);
      rows.endRow();
    }
    const column = columnBuffers(rows.column('s'));
    if (column.kind !== 'bytes') throw new Error(column.kind);
    const values = texts.map((_, i) => Buffer.from(column.bytes.subarray(column.offsets[i]!, column.offsets[i + 1]!)).toString('utf8'));
    expect(values).toEqual(texts.map((t) => t.toString('utf8')));
    expect(values[4]).toBe('a\ufffdb');
    expect(() => (rows.column('s') as StringColumn).appendText(Buffer.from('abc'), 2, 1)).toThrow(/byte range 2..1/);
  });

  it('writes only the selected rows, in the order given', async () => {
    const { rows, expected } = build(40);
    const selection = [3, 4, 17, 21, 22, 39, 0];
    const file = await writeParquet(rows, OPTIONS, selection);
    expect(file.rowCount).toBe(selection.length);
    expect(await readBack(saved(file.bytes))).toEqual(selection.map((i) => expectedRow(expected[i]!)));
    expect(file.stats.get(2)?.nullCount).toBe(selection.filter((i) => expected[i]!.severity === null).length);
    // The selection's copies are freed once written, the rows themselves are not: the others read back too.
    const rest = expected.map((_, i) => i).filter((i) => !selection.includes(i));
    expect(await readBack(saved((await writeParquet(rows, OPTIONS, rest)).bytes))).toEqual(rest.map((i) => expectedRow(expected[i]!)));
  });

  it('starts empty after reset() and writes the next batch alone', async () => {
    const rows = build(300).rows;
    await writeParquet(rows, OPTIONS);
    rows.reset();
    expect(rows.rowCount).toBe(0);
    const { expected } = build(20, 1000, rows);
    expect(await readBack(saved((await writeParquet(rows, OPTIONS)).bytes))).toEqual(expected.map(expectedRow));
  });

  it('refuses a row that misses a column or has one twice, naming the column', () => {
    const rows = createTableRows(SCHEMA);
    appendRow(rows, makeRow(0), 0);
    for (const field of SCHEMA.fields.slice(1)) rows.column(field.name).appendNull();
    expect(() => rows.endRow()).toThrow(/column ts has 1 values, expected 2/);
    (rows.column('ts') as TimestampColumn).append(1);
    (rows.column('ts') as TimestampColumn).append(2);
    expect(() => rows.endRow()).toThrow(/column ts has 3 values, expected 2/);
  });

  it('refuses a null in a required field, top-level or nested', () => {
    const rows = createTableRows(SCHEMA);
    expect(() => rows.column('ts').appendNull()).toThrow(/column ts is required/);
    const resource = rows.column('resource') as StructColumn;
    expect(() => resource.field('service').appendNull()).toThrow(/column resource.service is required/);
    expect(() => (rows.column('labels') as MapColumn).key.appendNull()).toThrow(/labels.key is required/);
  });

  it('drops a row given up half-way, nested values included, and goes on', async () => {
    const rows = createTableRows(SCHEMA);
    const expected = [makeRow(0), makeRow(1), makeRow(2)];
    appendRow(rows, expected[0]!, 0);
    appendRow(rows, expected[1]!, 1);
    // Half a row: top-level values, an open list of structs with an entry in a nested map, a
    // struct with one of its two children.
    (rows.column('ts') as TimestampColumn).append(42);
    rows.column('severity').appendNull();
    (rows.column('body') as StringColumn).append('half');
    const events = rows.column('events') as ListColumn;
    events.start();
    const event = events.element as StructColumn;
    event.appendValid();
    (event.field('time') as TimestampColumn).append(1);
    const attrs = event.field('attrs') as MapColumn;
    attrs.start();
    (attrs.key as StringColumn).append('k');
    const resource = rows.column('resource') as StructColumn;
    resource.appendValid();
    (resource.field('service') as StringColumn).append('svc');
    discardPartialRow(rows);
    appendRow(rows, expected[2]!, 2);
    const file = await writeParquet(rows, OPTIONS);
    expect(await readBack(saved(file.bytes))).toEqual(expected.map(expectedRow));
    expect(file.stats.get(2)?.nullCount).toBe(expected.filter((r) => r.severity === null).length);
  });

  it('refuses to write a row that was not ended', async () => {
    const rows = build(3).rows;
    (rows.column('ts') as TimestampColumn).append(1);
    await expect(writeParquet(rows, OPTIONS)).rejects.toThrow(/column ts has 4 values for 3 rows/);
  });

  it('refuses values that do not fit the column type', () => {
    const rows = createTableRows(SCHEMA);
    expect(() => (rows.column('severity') as IntColumn).append(2 ** 31)).toThrow(/not a 32-bit integer/);
    expect(() => (rows.column('count') as LongColumn).append(1.5)).toThrow(/not a safe integer/);
    expect(() => (rows.column('count') as LongColumn).append(2n ** 63n)).toThrow(/not a 64-bit integer/);
    expect(() => (rows.column('id') as UuidColumn).append(new Uint8Array(15))).toThrow(/a uuid is 16 bytes/);
    expect(() => rows.column('nope')).toThrow(/no field nope/);
  });

  it('takes uuids as text and grows past its first buffers', async () => {
    const schema: IcebergSchema = {
      type: 'struct', 'schema-id': 0, fields: [
        { id: 1, name: 'id', required: true, type: 'uuid' },
        { id: 2, name: 'text', required: true, type: 'string' },
      ],
    };
    const rows = createTableRows(schema);
    const count = 5000;
    for (let i = 0; i < count; i++) {
      (rows.column('id') as UuidColumn).appendString(`123e4567-e89b-12d3-a456-${String(i).padStart(12, '0')}`);
      (rows.column('text') as StringColumn).append('x'.repeat(i % 300));
      rows.endRow();
    }
    expect(rows.byteSize).toBeGreaterThan(count * 16 + count * 149);
    const path = saved((await writeParquet(rows, OPTIONS)).bytes);
    const [summary] = await query(
      `SELECT count(*) AS n, sum(length(text)) AS chars, max(hex(id)) AS top FROM read_parquet('${path}')`,
    );
    expect(Number(summary!.n)).toBe(count);
    expect(Number(summary!.chars)).toBe(Array.from({ length: count }, (_, i) => i % 300).reduce((a, b) => a + b));
    expect(summary!.top).toBe(`123E4567E89B12D3A456${String(count - 1).padStart(12, '0')}`);
  });

  it('compacts files into one with every row in order, row groups refilled, inputs given back', async () => {
    const parts = [build(50, 0), build(7, 1000), build(40, 2000)];
    const inputs = await Promise.all(parts.map(async (p) => new Uint8Array((await writeParquet(p.rows, OPTIONS)).bytes)));
    const merged = await compactParquet(inputs, OPTIONS, true);
    expect(merged.rowCount).toBe(97);
    expect(merged.sizeBytes).toBe(merged.chunks.reduce((sum, c) => sum + c.byteLength, 0));
    const path = saved(Buffer.concat(merged.chunks));
    expect(await readBack(path)).toEqual(parts.flatMap((p) => p.expected).map(expectedRow));
    const chunks = await query(`SELECT DISTINCT row_group_id, row_group_num_rows FROM parquet_metadata('${path}') ORDER BY row_group_id`);
    expect(chunks.map((c) => Number(c.row_group_num_rows))).toEqual([16, 16, 16, 16, 16, 16, 1]);
    const ids = (await query(`SELECT field_id FROM parquet_schema('${path}')`)).map((c) => c.field_id).filter((id) => id !== null).map(Number);
    expect(ids.sort((a, b) => a - b)).toEqual(ALL_FIELD_IDS);
    expect(inputs.map((i) => i.byteLength)).toEqual([0, 0, 0]);
  });

  it('writes a file of no rows, and compacts it away beside others', async () => {
    const empty = await writeParquet(createTableRows(SCHEMA), OPTIONS);
    expect(empty.rowCount).toBe(0);
    const [count] = await query(`SELECT count(*) AS n FROM read_parquet('${saved(empty.bytes)}')`);
    expect(Number(count!.n)).toBe(0);
    const { rows, expected } = build(20);
    const merged = await compactParquet([empty.bytes, (await writeParquet(rows, OPTIONS)).bytes, empty.bytes], OPTIONS);
    expect(merged.rowCount).toBe(20);
    expect(await readBack(saved(Buffer.concat(merged.chunks)))).toEqual(expected.map(expectedRow));
    await expect(compactParquet([empty.bytes, empty.bytes], OPTIONS)).rejects.toThrow(/no record batch/);
  });

  it('refuses to compact files of different schemas or a damaged file, and the worker goes on', async () => {
    const other: IcebergSchema = { type: 'struct', 'schema-id': 0, fields: [{ id: 1, name: 'only', required: true, type: 'long' }] };
    const otherRows = createTableRows(other);
    (otherRows.column('only') as LongColumn).append(1n);
    otherRows.endRow();
    const a = (await writeParquet(build(20).rows, OPTIONS)).bytes;
    await expect(compactParquet([a, (await writeParquet(otherRows, OPTIONS)).bytes], OPTIONS)).rejects.toThrow(/different schemas/);
    const damaged = new Uint8Array(a);
    damaged.fill(0x55, 8, 200);
    await expect(compactParquet([a, damaged], OPTIONS)).rejects.toThrow();
    const again = await compactParquet([a, a], OPTIONS);
    expect(again.rowCount).toBe(40);
  });

  /** Rows of (text, n): n counts from `firstN`, text is textOf(i) for the i-th row. */
  function textRows(count: number, textOf: (i: number) => string, firstN = 0): TableRows {
    const schema: IcebergSchema = { type: 'struct', 'schema-id': 0, fields: [{ id: 1, name: 'text', required: true, type: 'string' }, { id: 2, name: 'n', required: true, type: 'long' }] };
    const rows = createTableRows(schema);
    for (let i = 0; i < count; i++) {
      (rows.column('text') as StringColumn).append(textOf(i));
      (rows.column('n') as LongColumn).append(BigInt(firstN + i));
      rows.endRow();
    }
    return rows;
  }

  it('buffers rows in little more memory than their bytes, freeing the arrays they outgrow', () => {
    const before = process.memoryUsage().arrayBuffers;
    const rows = textRows(400_000, (i) => `row ${i} ${'z'.repeat(60 + (i % 40))}`);
    const held = process.memoryUsage().arrayBuffers - before;
    // Doubling held up to twice the rows' bytes for good (builders keep their capacity from one
    // file to the next), and the outgrown arrays on top until a mark-compact.
    expect(rows.byteSize).toBeGreaterThan(36 * 2 ** 20);
    expect(held).toBeLessThan(rows.byteSize * 1.3);
  });

  it('writes a file many row groups long in wasm memory of about a row group', async () => {
    const rows = textRows(400_000, (i) => `row ${i} ${'y'.repeat(60 + (i % 40))}`);
    // ~39 MiB in the builders: given to the writer whole, wasm memory grew by about 4x that.
    expect(rows.byteSize).toBeGreaterThan(36 * 2 ** 20);
    const before = wasmMemory().buffer.byteLength;
    const file = await writeParquet(rows, { compression: 'zstd', rowGroupRows: 8192 });
    expect(wasmMemory().buffer.byteLength - before).toBeLessThan(rows.byteSize / 4);
    const path = saved(file.bytes);
    const [summary] = await query(`SELECT count(*) AS n, sum(n) AS total, max(length(text)) AS longest FROM read_parquet('${path}')`);
    expect(Number(summary!.n)).toBe(400_000);
    expect(Number(summary!.total)).toBe((400_000 * 399_999) / 2);
    expect(Number(summary!.longest)).toBe(`row 399999 `.length + 99);
    const groups = await query(`SELECT count(DISTINCT row_group_id) AS n FROM parquet_metadata('${path}')`);
    expect(Number(groups[0]!.n)).toBe(Math.ceil(400_000 / 8192));
  });

  it('compacts in wasm memory of about a row group, not the merged table', async () => {
    const options: ParquetWriteOptions = { compression: 'zstd', rowGroupRows: 8192 };
    const inputs: Uint8Array[] = [];
    let decodedBytes = 0;
    for (let file = 0; file < 8; file++) {
      const rows = textRows(50_000, (i) => `file ${file} row ${i} ${'x'.repeat(60 + (i % 40))}`, file * 50_000);
      decodedBytes += rows.byteSize; // the text's bytes, its 4-byte offset and the 8-byte n
      inputs.push((await writeParquet(rows, options)).bytes);
    }
    const before = wasmMemory().buffer.byteLength;
    const merged = await compactParquet(inputs, options);
    const grown = wasmMemory().buffer.byteLength - before;
    expect(merged.rowCount).toBe(400_000);
    // ~44 MiB of values: read whole, they alone would grow wasm memory by more than that.
    expect(decodedBytes).toBeGreaterThan(40 * 2 ** 20);
    expect(grown).toBeLessThan(decodedBytes / 4);
    const [summary] = await query(`SELECT count(*) AS n, sum(n) AS total, min(text) AS first FROM read_parquet('${saved(Buffer.concat(merged.chunks))}')`);
    expect(Number(summary!.n)).toBe(400_000);
    expect(Number(summary!.total)).toBe((400_000 * 399_999) / 2);
    expect(summary!.first).toBe(`file 0 row 0 ${'x'.repeat(60)}`);
  });
  it('streams a compaction through the worker: inputs read one at a time, the merged file handed over in parts', async () => {
    const options: ParquetWriteOptions = { compression: 'zstd', rowGroupRows: 65_536 };
    const inputs: Uint8Array[] = [];
    for (let file = 0; file < 6; file++) {
      // Random text: the merged file is about as large as the rows (~27 MiB), several parts.
      const rows = textRows(60_000, () => randomBytes(60).toString('base64'), file * 60_000);
      inputs.push((await writeParquet(rows, options)).bytes);
    }
    const client = new ConversionClient();
    try {
      const events: string[] = [];
      const parts: Uint8Array[][] = [];
      const merged = await client.compact(inputs.length, async (i) => {
        events.push(`input ${i}`);
        return new Uint8Array(inputs[i]!); // handed over: a copy, the test keeps its own
      }, options, async (chunks) => {
        events.push('part');
        parts.push(chunks);
        // A slow store: the writer reads on (and asks for inputs) while a part is being stored.
        await new Promise((resolve) => setTimeout(resolve, 50));
      });
      // Each input asked for once, in order; the first part stored before the last input is read.
      expect(events.filter((e) => e.startsWith('input'))).toEqual(inputs.map((_, i) => `input ${i}`));
      expect(events.indexOf('part')).toBeLessThan(events.indexOf(`input ${inputs.length - 1}`));
      expect(parts.length).toBeGreaterThanOrEqual(2);
      for (const part of parts) {
        const bytes = part.reduce((sum, chunk) => sum + chunk.byteLength, 0);
        expect(bytes).toBeGreaterThanOrEqual(DEFAULT_UPLOAD_PART_BYTES);
        expect(bytes).toBeLessThan(2 * DEFAULT_UPLOAD_PART_BYTES);
      }
      const file = Buffer.concat([...parts.flat(), ...merged.chunks]);
      expect(file.length).toBe(merged.sizeBytes);
      expect(merged.rowCount).toBe(360_000);
      const [summary] = await query(`SELECT count(*) AS n, sum(n) AS total FROM read_parquet('${saved(file)}')`);
      expect(Number(summary!.n)).toBe(360_000);
      expect(Number(summary!.total)).toBe((360_000 * 359_999) / 2);

      // A part that cannot be stored fails the compaction; the worker goes on with the next one.
      await expect(client.compact(inputs.length, async (i) => new Uint8Array(inputs[i]!), options, async () => {
        throw new Error('upload failed: SlowDown');
      })).rejects.toThrow(/SlowDown/);
      const again = await client.compact(2, async (i) => new Uint8Array(inputs[i]!), options, async () => {});
      expect(again.rowCount).toBe(120_000);
    } finally {
      await client.terminate();
    }
  });
});
