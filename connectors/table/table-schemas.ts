// The table definitions of schemas/tables/*.json: which Iceberg tables a topic becomes and which
// converter (connectors/table/convert/) fills them. The files are data, checked on load:
//
//   {
//     "name": "otlp_logs",                  file name without .json; the default topic's name
//     "version": 1,                         bumped when the file changes
//     "description": "...",
//     "converter": "otlp_logs",             one of CONVERTER_NAMES
//     "notes": ["..."],                     decisions a reader of the tables needs (optional)
//     "tables": [{
//       "suffix": "" | "_gauge" | ...,      table name = topic name + suffix
//       "schema": { Iceberg schema JSON },  schema-id 0; field ids unique in the table and stable
//                                           (evolution adds columns with new ids, never renumbers)
//       "partitionBy": ["hour(timestamp)"], Iceberg transforms of top-level columns
//       "promoted": { "service_name": "service.name" }
//                                           string column <- resource attribute (OTLP) or label
//                                           (Prometheus); the value stays in the map as well
//     }]
//   }

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IcebergField, IcebergSchema, IcebergType } from './iceberg/types.ts';

export const CONVERTER_NAMES = ['otlp_logs', 'otlp_spans', 'otlp_metrics', 'prometheus_samples', 'raw'] as const;
export type ConverterName = (typeof CONVERTER_NAMES)[number];

export interface TableDef {
  readonly suffix: string;
  readonly schema: IcebergSchema;
  /** Iceberg partition transforms, e.g. "hour(timestamp)", "day(timestamp)", "identity(job)". */
  readonly partitionBy: readonly string[];
  /** Column name -> attribute key (OTLP resource attribute) or label name (Prometheus). */
  readonly promoted: Readonly<Record<string, string>>;
}

export interface TableSchemaFile {
  readonly name: string;
  readonly version: number;
  readonly description: string;
  readonly converter: ConverterName;
  readonly notes: readonly string[];
  readonly tables: readonly TableDef[];
}

/** A schema file that does not say what it must. */
export class TableSchemaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TableSchemaError';
  }
}

export const TABLE_SCHEMAS_DIR = fileURLToPath(new URL('../../schemas/tables/', import.meta.url));

const PARTITION_TRANSFORM = /^(identity|year|month|day|hour|void|bucket\[\d+\]|truncate\[\d+\])\(([A-Za-z0-9_]+)\)$/;

/** Reads and checks schemas/tables/<name>.json. */
export function loadTableSchemaFile(name: string, dir: string = TABLE_SCHEMAS_DIR): TableSchemaFile {
  const path = join(dir, `${name}.json`);
  return parseTableSchemaFile(JSON.parse(readFileSync(path, 'utf8')) as unknown, path);
}

/** Every file of the directory, by name. */
export function loadTableSchemaFiles(dir: string = TABLE_SCHEMAS_DIR): Map<string, TableSchemaFile> {
  const files = new Map<string, TableSchemaFile>();
  for (const entry of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const file = loadTableSchemaFile(entry.slice(0, -'.json'.length), dir);
    files.set(file.name, file);
  }
  return files;
}

/** The Iceberg table name of one table of a topic. */
export function tableName(topic: string, table: TableDef): string {
  return topic + table.suffix;
}

/** The largest field id of a schema, nested ids included (Iceberg's last-column-id). */
export function maxFieldId(schema: IcebergSchema): number {
  let max = 0;
  forEachFieldId(schema, (id) => {
    if (id > max) max = id;
  });
  return max;
}

/** Checks a parsed schema file; throws TableSchemaError naming `source` and the fault. */
export function parseTableSchemaFile(json: unknown, source: string): TableSchemaFile {
  const fail = (message: string): never => {
    throw new TableSchemaError(`${source}: ${message}`);
  };
  if (!isObject(json)) return fail('not a JSON object');
  const { name, version, description, converter, notes, tables } = json;
  if (typeof name !== 'string' || name === '') fail('"name" must be a non-empty string');
  if (typeof version !== 'number' || !Number.isInteger(version)) fail('"version" must be an integer');
  if (typeof description !== 'string') fail('"description" must be a string');
  if (!(CONVERTER_NAMES as readonly unknown[]).includes(converter)) fail(`"converter" must be one of ${CONVERTER_NAMES.join(', ')}`);
  if (notes !== undefined && !(Array.isArray(notes) && notes.every((n) => typeof n === 'string'))) fail('"notes" must be a list of strings');
  if (!Array.isArray(tables) || tables.length === 0) return fail('"tables" must be a non-empty list');
  const suffixes = new Set<string>();
  const checked = tables.map((table, i) => {
    const def = checkTable(table, (message) => fail(`tables[${i}]: ${message}`));
    if (suffixes.has(def.suffix)) fail(`tables[${i}]: suffix ${JSON.stringify(def.suffix)} appears twice`);
    suffixes.add(def.suffix);
    return def;
  });
  return {
    name: name as string,
    version: version as number,
    description: description as string,
    converter: converter as ConverterName,
    notes: (notes as string[] | undefined) ?? [],
    tables: checked,
  };
}

function checkTable(table: unknown, fail: (message: string) => never): TableDef {
  if (!isObject(table)) return fail('not an object');
  const { suffix, schema, partitionBy, promoted } = table;
  if (typeof suffix !== 'string' || !/^(_[a-z0-9_]+)?$/.test(suffix)) fail('"suffix" must be "" or _lowercase_words');
  if (!isObject(schema) || schema.type !== 'struct' || !Array.isArray(schema.fields)) return fail('"schema" must be an Iceberg struct schema');
  if (schema['schema-id'] !== 0) fail('"schema-id" must be 0');
  const typed = schema as unknown as IcebergSchema;
  checkFieldIds(typed, fail);
  const topLevel = new Map(typed.fields.map((f) => [f.name, f]));
  if (topLevel.size !== typed.fields.length) fail('two top-level fields have the same name');
  if (!Array.isArray(partitionBy)) return fail('"partitionBy" must be a list');
  for (const spec of partitionBy) {
    const match = typeof spec === 'string' ? PARTITION_TRANSFORM.exec(spec) : null;
    if (!match) fail(`partitionBy ${JSON.stringify(spec)} is not transform(column)`);
    if (!topLevel.has(match![2]!)) fail(`partitionBy ${spec} names no top-level column`);
  }
  const promotedMap = promoted ?? {};
  if (!isObject(promotedMap)) return fail('"promoted" must be an object');
  for (const [column, key] of Object.entries(promotedMap)) {
    if (typeof key !== 'string' || key === '') fail(`promoted ${column}: the attribute key must be a non-empty string`);
    if (topLevel.get(column)?.type !== 'string') fail(`promoted ${column}: no top-level string column of that name`);
  }
  return { suffix: suffix as string, schema: typed, partitionBy: partitionBy as string[], promoted: promotedMap as Record<string, string> };
}

function checkFieldIds(schema: IcebergSchema, fail: (message: string) => never): void {
  const seen = new Set<number>();
  forEachFieldId(schema, (id) => {
    if (!Number.isInteger(id) || id <= 0) fail(`field id ${id} is not a positive integer`);
    if (seen.has(id)) fail(`field id ${id} is used twice`);
    seen.add(id);
  });
}

function forEachFieldId(type: IcebergType, visit: (id: number) => void): void {
  if (typeof type === 'string') return;
  switch (type.type) {
    case 'struct':
      type.fields.forEach((f: IcebergField) => {
        visit(f.id);
        forEachFieldId(f.type, visit);
      });
      return;
    case 'list':
      visit(type['element-id']);
      forEachFieldId(type.element, visit);
      return;
    case 'map':
      visit(type['key-id']);
      visit(type['value-id']);
      forEachFieldId(type.key, visit);
      forEachFieldId(type.value, visit);
      return;
    default:
      throw new TableSchemaError(`unknown Iceberg type ${JSON.stringify(type)}`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
