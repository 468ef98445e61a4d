// Partition specs: parsing `hour(ts)`, `day(ts)`, `identity(service_name)`, `bucket(16, id)`,
// `truncate(4, name)` into a spec bound to a schema, computing a row's partition values, and the
// Hive-style directory of a partition tuple (`ts_hour=2026-11-21-10/service_name=checkout`).
//
// Transforms and result types (table spec, "Partition Transforms"):
//   identity      source type
//   year/month    int: years / months since 1970(-01)
//   day           int, days since 1970-01-01 (the Java implementation types it `date`, and so do
//                 we in manifests: Avro int with logicalType date)
//   hour          int: hours since 1970-01-01 00:00:00 (timestamp / timestamptz sources only)
//   bucket[N]     int: (murmur3_x86_32(value) & Integer.MAX_VALUE) % N (spec "Bucket Transform
//                 Details"; hashes per "Appendix B: 32-bit Hash Requirements")
//   truncate[W]   source type: v - (((v % W) + W) % W) for int/long, first W code points of a string
//   void          always null
// Partition field ids start at 1000 (spec "Partition Evolution": the reference implementation's
// start, kept by v2 writers) and default names follow the Java builder: `<col>` for identity,
// `<col>_year|_month|_day|_hour`, `<col>_bucket`, `<col>_trunc`, `<col>_null`.

import { findPrimitiveColumn } from './schema.ts';
import type { IcebergPrimitive, IcebergStructType } from './types.ts';

export const PARTITION_FIELD_ID_START = 1000;

export interface PartitionField {
  'source-id': number;
  'field-id': number;
  name: string;
  transform: string;
}

export interface PartitionSpec {
  'spec-id': number;
  fields: PartitionField[];
}

/** A partition value as manifests hold it: transformed, so numbers, strings, booleans or null. */
export type PartitionValue = number | string | boolean | null;
/** A source column value as column builders hold it (timestamps in microseconds). */
export type SourceValue = number | bigint | string | boolean | Uint8Array | null | undefined;

export type Transform =
  | { kind: 'identity' | 'year' | 'month' | 'day' | 'hour' | 'void' }
  | { kind: 'bucket' | 'truncate'; width: number };

export interface PartitionExpression {
  transform: Transform;
  /** Dotted source column name. */
  column: string;
  /** Explicit partition field name (`... AS name`), else the default. */
  alias: string | undefined;
}

const EXPRESSION = /^\s*(?:(\w+)\s*(?:\[\s*(\d+)\s*\])?\s*\(\s*(?:(\d+)\s*,\s*)?([\w.]+)\s*\)|([\w.]+))\s*(?:\s+as\s+(\w+))?\s*$/i;
const TRANSFORM_ALIASES: Record<string, Transform['kind']> = {
  identity: 'identity', year: 'year', years: 'year', month: 'month', months: 'month',
  day: 'day', days: 'day', date: 'day', hour: 'hour', hours: 'hour', void: 'void',
  bucket: 'bucket', truncate: 'truncate',
};

/** Parses `hour(ts)`, `days(ts)`, `service_name`, `bucket(16, id)`, `bucket[16](id)`, `... as name`. */
export function parsePartitionExpression(text: string): PartitionExpression {
  const m = EXPRESSION.exec(text);
  if (m === null) throw new Error(`cannot parse partition expression ${JSON.stringify(text)}`);
  const alias = m[6];
  if (m[5] !== undefined) return { transform: { kind: 'identity' }, column: m[5], alias };
  const kind = TRANSFORM_ALIASES[m[1]!.toLowerCase()];
  if (kind === undefined) throw new Error(`unknown partition transform ${m[1]} in ${JSON.stringify(text)}`);
  const widthText = m[2] ?? m[3];
  if (kind === 'bucket' || kind === 'truncate') {
    const width = Number(widthText);
    if (widthText === undefined || !Number.isSafeInteger(width) || width <= 0) throw new Error(`${kind} needs a positive width: ${JSON.stringify(text)}`);
    return { transform: { kind, width }, column: m[4]!, alias };
  }
  if (widthText !== undefined) throw new Error(`${kind} takes no width: ${JSON.stringify(text)}`);
  return { transform: { kind }, column: m[4]!, alias };
}

export function transformToString(t: Transform): string {
  return t.kind === 'bucket' || t.kind === 'truncate' ? `${t.kind}[${t.width}]` : t.kind;
}

export function parseTransform(text: string): Transform {
  const m = /^(bucket|truncate)\[(\d+)\]$/.exec(text);
  if (m !== null) return { kind: m[1] as 'bucket' | 'truncate', width: Number(m[2]) };
  if (['identity', 'year', 'month', 'day', 'hour', 'void'].includes(text)) return { kind: text as 'identity' };
  throw new Error(`unsupported partition transform ${text}`);
}

const SOURCE_TYPES: Record<Transform['kind'], readonly IcebergPrimitive[]> = {
  identity: ['boolean', 'int', 'long', 'float', 'double', 'date', 'time', 'timestamp', 'timestamptz', 'string'],
  year: ['date', 'timestamp', 'timestamptz'],
  month: ['date', 'timestamp', 'timestamptz'],
  day: ['date', 'timestamp', 'timestamptz'],
  hour: ['timestamp', 'timestamptz'],
  bucket: ['int', 'long', 'date', 'time', 'timestamp', 'timestamptz', 'string', 'binary'],
  truncate: ['int', 'long', 'string'],
  void: ['boolean', 'int', 'long', 'float', 'double', 'date', 'time', 'timestamp', 'timestamptz', 'string', 'binary'],
};

/** The type of a transform's result for a source type. */
export function resultType(t: Transform, source: IcebergPrimitive): IcebergPrimitive {
  switch (t.kind) {
    case 'year': case 'month': case 'hour': case 'bucket': return 'int';
    case 'day': return 'date';
    default: return source;
  }
}

/**
 * Builds a partition spec from expressions against a schema; field ids from `firstFieldId`.
 * Throws on unknown columns, transforms that do not apply to the column's type, or duplicate names.
 */
export function buildPartitionSpec(schema: IcebergStructType, expressions: readonly string[], specId = 0, firstFieldId = PARTITION_FIELD_ID_START): PartitionSpec {
  const fields: PartitionField[] = [];
  for (const text of expressions) {
    const expr = parsePartitionExpression(text);
    const { field, type } = findPrimitiveColumn(schema, expr.column);
    if (!SOURCE_TYPES[expr.transform.kind].includes(type)) {
      throw new Error(`partition ${text}: ${transformToString(expr.transform)} does not apply to ${type} column ${expr.column}`);
    }
    const name = expr.alias ?? defaultFieldName(expr.transform, expr.column);
    if (fields.some((f) => f.name === name)) throw new Error(`partition field ${name} is defined twice`);
    fields.push({ 'source-id': field.id, 'field-id': firstFieldId + fields.length, name, transform: transformToString(expr.transform) });
  }
  return { 'spec-id': specId, fields };
}

function defaultFieldName(t: Transform, column: string): string {
  const base = column.replaceAll('.', '_');
  switch (t.kind) {
    case 'identity': return base;
    case 'bucket': return `${base}_bucket`;
    case 'truncate': return `${base}_trunc`;
    case 'void': return `${base}_null`;
    default: return `${base}_${t.kind}`;
  }
}

/** One partition field with its transform compiled for the source column's type. */
export interface BoundPartitionField {
  readonly field: PartitionField;
  readonly sourceType: IcebergPrimitive;
  readonly resultType: IcebergPrimitive;
  /** The partition value of a source value (null for null). */
  apply(value: SourceValue): PartitionValue;
  /** The value as the path shows it (Java's toHumanString: `2026-11-21-10` for an hour). */
  human(value: PartitionValue): string;
}

export interface BoundPartitionSpec {
  readonly spec: PartitionSpec;
  readonly fields: readonly BoundPartitionField[];
}

export function bindPartitionSpec(schema: IcebergStructType, spec: PartitionSpec): BoundPartitionSpec {
  const fields = spec.fields.map((field) => {
    const sourceType = findSourceType(schema, field['source-id']);
    const transform = parseTransform(field.transform);
    const result = resultType(transform, sourceType);
    return {
      field,
      sourceType,
      resultType: result,
      apply: compileTransform(transform, sourceType),
      human: (value: PartitionValue) => humanString(transform, result, value),
    };
  });
  return { spec, fields };
}

function findSourceType(schema: IcebergStructType, id: number): IcebergPrimitive {
  const stack: IcebergStructType[] = [schema];
  while (stack.length > 0) {
    for (const f of stack.pop()!.fields) {
      if (f.id === id) {
        if (typeof f.type !== 'string') throw new Error(`partition source ${f.name} is not primitive`);
        return f.type;
      }
      if (typeof f.type !== 'string' && f.type.type === 'struct') stack.push(f.type);
    }
  }
  throw new Error(`partition source field id ${id} is not in the schema`);
}

/** Values of a partition tuple as a record by partition field name (DataFile.partition). */
export function partitionRecord(bound: BoundPartitionSpec, values: readonly PartitionValue[]): Record<string, PartitionValue> {
  const out: Record<string, PartitionValue> = {};
  for (let i = 0; i < bound.fields.length; i++) out[bound.fields[i]!.field.name] = values[i] ?? null;
  return out;
}

/**
 * The directory of a partition tuple under data/: `name=value` segments joined by '/'. Values are
 * shown as Java's toHumanString; characters other than [A-Za-z0-9._-] become '_' and a value is
 * cut to 100 characters, so that a key never needs escaping (the path is for people and for
 * spreading keys: readers take partition values from manifests, never from paths).
 */
export function partitionPath(bound: BoundPartitionSpec, values: readonly PartitionValue[]): string {
  const segments: string[] = [];
  for (let i = 0; i < bound.fields.length; i++) {
    const f = bound.fields[i]!;
    segments.push(`${safeSegment(f.field.name)}=${safeSegment(f.human(values[i] ?? null))}`);
  }
  return segments.join('/');
}

function safeSegment(text: string): string {
  return text.slice(0, 100).replace(/[^A-Za-z0-9._-]/g, '_');
}

// ---- transforms ----

const MICROS_PER_HOUR = 3_600_000_000;
const MICROS_PER_DAY = 86_400_000_000;

function compileTransform(t: Transform, source: IcebergPrimitive): (value: SourceValue) => PartitionValue {
  const micros = source === 'timestamp' || source === 'timestamptz';
  switch (t.kind) {
    case 'identity': return (v) => identityValue(v, source);
    case 'void': return () => null;
    case 'hour': return (v) => (v == null ? null : Math.floor(toInteger(v) / MICROS_PER_HOUR));
    case 'day': return (v) => (v == null ? null : micros ? Math.floor(toInteger(v) / MICROS_PER_DAY) : toInteger(v));
    case 'month': return (v) => (v == null ? null : monthsOf(dayOf(v, micros)));
    case 'year': return (v) => (v == null ? null : yearsOf(dayOf(v, micros)));
    case 'bucket': return (v) => (v == null ? null : ((bucketHash(v, source) & 0x7fffffff) % t.width));
    case 'truncate': return (v) => (v == null ? null : truncateValue(v, source, t.width));
  }
}

function identityValue(v: SourceValue, source: IcebergPrimitive): PartitionValue {
  if (v == null) return null;
  if (typeof v === 'bigint') return toInteger(v);
  if (v instanceof Uint8Array) throw new TypeError(`identity partitions of ${source} are not supported`);
  return v;
}

function toInteger(v: SourceValue): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') {
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw new RangeError(`partition source value ${v} exceeds 2^53`);
    return n;
  }
  throw new TypeError(`integer source value expected, got ${typeof v}`);
}

function dayOf(v: SourceValue, micros: boolean): number {
  return micros ? Math.floor(toInteger(v) / MICROS_PER_DAY) : toInteger(v);
}

function monthsOf(day: number): number {
  const d = new Date(day * 86_400_000);
  return (d.getUTCFullYear() - 1970) * 12 + d.getUTCMonth();
}

function yearsOf(day: number): number {
  return new Date(day * 86_400_000).getUTCFullYear() - 1970;
}

function truncateValue(v: SourceValue, source: IcebergPrimitive, width: number): PartitionValue {
  if (source === 'string') {
    if (typeof v !== 'string') throw new TypeError('string source value expected');
    return Array.from(v).slice(0, width).join('');
  }
  const n = toInteger(v);
  return n - (((n % width) + width) % width);
}

// ---- human strings (Java TransformUtil) ----

function humanString(t: Transform, result: IcebergPrimitive, value: PartitionValue): string {
  if (value === null) return 'null';
  if (typeof value !== 'number') return String(value);
  switch (t.kind) {
    case 'hour': return isoDate(value * 3_600_000) + '-' + pad(new Date(value * 3_600_000).getUTCHours(), 2);
    case 'year': return pad(1970 + value, 4);
    case 'month': return `${pad(1970 + Math.floor(value / 12), 4)}-${pad((((value % 12) + 12) % 12) + 1, 2)}`;
    default: return humanOfType(result, value);
  }
}

function humanOfType(type: IcebergPrimitive, value: number): string {
  switch (type) {
    case 'date': return isoDate(value * 86_400_000);
    case 'timestamp': return isoMicros(value);
    case 'timestamptz': return isoMicros(value) + '+00:00';
    default: return String(value);
  }
}

function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function isoMicros(micros: number): string {
  const ms = Math.floor(micros / 1000);
  return new Date(ms).toISOString().slice(0, 19) + '.' + pad(((micros % 1_000_000) + 1_000_000) % 1_000_000, 6);
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

// ---- bucket hashing: murmur3 x86 32-bit, seed 0 (spec Appendix B) ----

function bucketHash(v: SourceValue, source: IcebergPrimitive): number {
  switch (source) {
    case 'string':
      if (typeof v !== 'string') throw new TypeError('string source value expected');
      return murmur3x86_32(Buffer.from(v, 'utf8'));
    case 'binary':
      if (!(v instanceof Uint8Array)) throw new TypeError('binary source value expected');
      return murmur3x86_32(v);
    default: {
      // int, long, date, time and timestamps all hash as hashLong: 8 little-endian bytes, so
      // that promoting int to long keeps bucket values (Appendix B, note 1).
      const bytes = Buffer.allocUnsafe(8);
      bytes.writeBigInt64LE(BigInt(toInteger(v)));
      return murmur3x86_32(bytes);
    }
  }
}

/** MurmurHash3 x86 32-bit with seed 0, as a signed 32-bit integer (like Guava's asInt()). */
export function murmur3x86_32(bytes: Uint8Array): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = 0;
  const blocks = bytes.length >>> 2;
  for (let i = 0; i < blocks; i++) {
    const o = i * 4;
    let k = bytes[o]! | (bytes[o + 1]! << 8) | (bytes[o + 2]! << 16) | (bytes[o + 3]! << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = blocks * 4;
  const rest = bytes.length & 3;
  if (rest > 0) {
    let k = 0;
    if (rest === 3) k ^= bytes[tail + 2]! << 16;
    if (rest >= 2) k ^= bytes[tail + 1]! << 8;
    k ^= bytes[tail]!;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}
