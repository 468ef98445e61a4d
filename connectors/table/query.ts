// `wharf query "<SQL>"`: SQL over Wharf's tables with DuckDB, for users who want an answer
// without setting up a lake engine. The tables are found through the Iceberg REST catalog of the
// running Wharf (their current snapshot), the data files are read from the snapshot's Avro
// manifests, and each table becomes a DuckDB view over exactly those Parquet files, in a schema
// named after its namespace (also on the search path, so `SELECT ... FROM otlp_logs` works).
// DuckDB here reads local files only (its httpfs extension cannot be downloaded), so files on
// S3 are fetched into a temporary directory first.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance, DuckDBTypeId, type DuckDBConnection, type DuckDBType } from '@duckdb/node-api';
import type { ObjectStore } from '../../src/storage/objectstore/index.ts';
import type { ObjectUris } from '../../src/storage/objectstore/uri.ts';
import { readCurrentDataFiles } from './iceberg/catalog.ts';
import type { TableMetadata } from './iceberg/metadata.ts';
import type { IcebergType } from './iceberg/types.ts';

export interface QueryOptions {
  /** Base URL of the REST catalog, e.g. http://127.0.0.1:8080/iceberg. */
  catalogUrl: string;
  store: ObjectStore;
  uris: ObjectUris;
}

export interface QueryResult {
  columns: string[];
  /** Rows as JSON-safe values (64-bit integers as numbers when safe, else strings; timestamps as ISO text). */
  rows: Record<string, unknown>[];
  /** The Parquet files each table was read from, by qualified table name. */
  files: Map<string, string[]>;
}

interface LoadedRestTable { namespace: string[]; name: string; metadata: TableMetadata }

async function getJson(url: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new Error(`cannot reach the Iceberg REST catalog at ${url}: ${err instanceof Error ? err.message : String(err)} (is Wharf running? pass --catalog)`);
  }
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}: ${await res.text()}`);
  return res.json();
}

async function loadTables(catalogUrl: string): Promise<LoadedRestTable[]> {
  const base = catalogUrl.replace(/\/$/, '');
  const { namespaces } = await getJson(`${base}/v1/namespaces`) as { namespaces: string[][] };
  const tables: LoadedRestTable[] = [];
  for (const namespace of namespaces) {
    const nsPath = namespace.map(encodeURIComponent).join('%1F');
    const { identifiers } = await getJson(`${base}/v1/namespaces/${nsPath}/tables`) as { identifiers: { name: string }[] };
    for (const { name } of identifiers) {
      const loaded = await getJson(`${base}/v1/namespaces/${nsPath}/tables/${encodeURIComponent(name)}`) as { metadata: TableMetadata };
      tables.push({ namespace, name, metadata: loaded.metadata });
    }
  }
  return tables;
}

const WIDE_INTEGER_TYPES = new Set([DuckDBTypeId.BIGINT, DuckDBTypeId.UBIGINT, DuckDBTypeId.HUGEINT, DuckDBTypeId.UHUGEINT]);

/** DuckDB's JSON form writes every 64-bit integer as a string; top-level ones that fit a double exactly become numbers. */
function safeIntegers(rows: Record<string, unknown>[], names: string[], types: readonly DuckDBType[]): Record<string, unknown>[] {
  const wide = names.filter((_, i) => WIDE_INTEGER_TYPES.has(types[i]!.typeId));
  if (wide.length === 0) return rows;
  for (const row of rows) {
    for (const name of wide) {
      const value = row[name];
      if (typeof value === 'string' && Number.isSafeInteger(Number(value))) row[name] = Number(value);
    }
  }
  return rows;
}

/** DuckDB's type for an Iceberg type (used for tables that have no data file yet). */
export function duckdbType(type: IcebergType): string {
  if (typeof type === 'string') {
    const primitive: Record<string, string> = {
      boolean: 'BOOLEAN', int: 'INTEGER', long: 'BIGINT', float: 'FLOAT', double: 'DOUBLE', date: 'DATE', time: 'TIME',
      timestamp: 'TIMESTAMP', timestamptz: 'TIMESTAMPTZ', string: 'VARCHAR', uuid: 'UUID', binary: 'BLOB',
    };
    return primitive[type] ?? 'VARCHAR';
  }
  if (type.type === 'list') return `${duckdbType(type.element)}[]`;
  if (type.type === 'map') return `MAP(${duckdbType(type.key)}, ${duckdbType(type.value)})`;
  return `STRUCT(${type.fields.map((f) => `${quoteIdent(f.name)} ${duckdbType(f.type)}`).join(', ')})`;
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function quoteString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** Local paths of the files: file:// URIs as they are, other objects fetched into tempDir. */
async function localPaths(locations: string[], options: QueryOptions, tempDir: () => Promise<string>): Promise<string[]> {
  return Promise.all(locations.map(async (location, i) => {
    if (location.startsWith('file:')) return fileURLToPath(location);
    const bytes = await options.store.get(options.uris.keyOf(location));
    const local = path.join(await tempDir(), `${i}-${path.basename(location)}`);
    await writeFile(local, bytes);
    return local;
  }));
}

async function defineTable(conn: DuckDBConnection, table: LoadedRestTable, paths: string[]): Promise<void> {
  const schemaName = quoteIdent(table.namespace.join('.'));
  const qualified = `${schemaName}.${quoteIdent(table.name)}`;
  await conn.run(`CREATE SCHEMA IF NOT EXISTS ${schemaName}`);
  if (paths.length > 0) {
    const list = paths.map(quoteString).join(', ');
    await conn.run(`CREATE VIEW ${qualified} AS SELECT * FROM read_parquet([${list}], union_by_name = true)`);
    return;
  }
  const schema = table.metadata.schemas.find((s) => s['schema-id'] === table.metadata['current-schema-id'])!;
  const columns = schema.fields.map((f) => `${quoteIdent(f.name)} ${duckdbType(f.type)}`).join(', ');
  await conn.run(`CREATE TABLE ${qualified} (${columns})`);
}

/** Runs one SQL statement over every table of the catalog. */
export async function runQuery(sql: string, options: QueryOptions): Promise<QueryResult> {
  const tables = await loadTables(options.catalogUrl);
  let temp: string | undefined;
  const tempDir = async (): Promise<string> => (temp ??= await mkdtemp(path.join(tmpdir(), 'wharf-query-')));
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    const files = new Map<string, string[]>();
    for (const table of tables) {
      const locations = (await readCurrentDataFiles(options.store, options.uris, table.metadata)).map((f) => f.path);
      files.set(`${table.namespace.join('.')}.${table.name}`, locations);
      await defineTable(conn, table, await localPaths(locations, options, tempDir));
    }
    const schemas = [...new Set(tables.map((t) => t.namespace.join('.')))];
    if (schemas.length > 0) await conn.run(`SET search_path = ${quoteString([...schemas, 'main'].join(','))}`);
    const reader = await conn.runAndReadAll(sql);
    return { columns: reader.columnNames(), rows: safeIntegers(reader.getRowObjectsJson(), reader.columnNames(), reader.columnTypes()), files };
  } finally {
    conn.closeSync();
    instance.closeSync();
    if (temp !== undefined) await rm(temp, { recursive: true, force: true });
  }
}

/** Renders rows as an aligned text table (the CLI's default output). */
export function formatTable(result: QueryResult): string {
  const cell = (v: unknown): string => (v === null || v === undefined ? 'NULL' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const widths = result.columns.map((c) => Math.max(c.length, ...result.rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]): string => values.map((v, i) => v.padEnd(widths[i]!)).join(' | ').trimEnd();
  const out = [line(result.columns), widths.map((w) => '-'.repeat(w)).join('-+-')];
  for (const row of result.rows) out.push(line(result.columns.map((c) => cell(row[c]))));
  out.push(`(${result.rows.length} row${result.rows.length === 1 ? '' : 's'})`);
  return out.join('\n');
}

/** Renders rows as CSV (RFC 4180 quoting), header first. */
export function formatCsv(result: QueryResult): string {
  const cell = (v: unknown): string => {
    if (v === null || v === undefined) return '';
    const text = typeof v === 'object' ? JSON.stringify(v) : String(v);
    return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  return [result.columns.map(cell).join(','), ...result.rows.map((r) => result.columns.map((c) => cell(r[c])).join(','))].join('\n');
}
