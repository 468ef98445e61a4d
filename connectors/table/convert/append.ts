// Small helpers the converters share: finding a column by name with the builder its Iceberg type
// needs (checked once per TableRows, not per row), and appending protobuf bytes as text or hex.

import type {
  BinaryColumn, BoolColumn, ColumnBuilder, DoubleColumn, IntColumn, ListColumn, LongColumn, MapColumn, StringColumn,
  StructColumn, TableRows, TimestampColumn,
} from '../columns.ts';
import type { IcebergType } from '../iceberg/types.ts';
import { Wire, type Scan } from './protobuf.ts';

interface BuilderOf {
  string: StringColumn;
  int: IntColumn;
  long: LongColumn;
  double: DoubleColumn;
  boolean: BoolColumn;
  timestamptz: TimestampColumn;
  binary: BinaryColumn;
  map: MapColumn;
  list: ListColumn;
  struct: StructColumn;
}
export type ColumnKind = keyof BuilderOf;

function kindOf(type: IcebergType): string {
  return typeof type === 'string' ? type : type.type;
}

/** Checks that the builder holds the Iceberg type the converter writes, and types it so. */
export function asColumn<K extends ColumnKind>(builder: ColumnBuilder, kind: K, what: string): BuilderOf[K] {
  const actual = kindOf(builder.type);
  if (actual !== kind) throw new Error(`column ${what} is ${actual}, the converter writes ${kind}`);
  return builder as BuilderOf[K];
}

/** The top-level column `name` of `rows`, checked to be of `kind`. */
export function column<K extends ColumnKind>(rows: TableRows, name: string, kind: K): BuilderOf[K] {
  return asColumn(rows.column(name), kind, name);
}

/** A map<string, string> column with its key and value builders. */
export interface StringMap {
  readonly map: MapColumn;
  readonly keys: StringColumn;
  readonly values: StringColumn;
}

export function stringMap(builder: ColumnBuilder, what: string): StringMap {
  const map = asColumn(builder, 'map', what);
  return { map, keys: asColumn(map.key, 'string', `${what}.key`), values: asColumn(map.value, 'string', `${what}.value`) };
}

/** The struct element builder of a list<struct> column. */
export function structList(builder: ColumnBuilder, what: string): { list: ListColumn; item: StructColumn } {
  const list = asColumn(builder, 'list', what);
  return { list, item: asColumn(list.element, 'struct', `${what}.element`) };
}

/** StringColumn.appendText, or null for an empty range (start < 0: absent). */
export function appendTextOrNull(column: StringColumn, buf: Buffer, start: number, end: number): void {
  if (start < 0 || end <= start) column.appendNull();
  else column.appendText(buf, start, end);
}

/** Bytes [start, end) as lowercase hex; null when empty (an absent id). */
export function appendHexOrNull(column: StringColumn, buf: Buffer, start: number, end: number): void {
  if (start < 0 || end <= start) column.appendNull();
  else column.appendHex(buf, start, end);
}

/** The text's UTF-8 bytes, for appending a fixed string without encoding it per row. */
export function utf8(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

/** Appends an enum value by name (names[value] as UTF-8), or its number when unknown. */
export function appendEnumName(column: StringColumn, names: readonly Buffer[], value: number): void {
  const name = names[value];
  if (name !== undefined) column.appendUtf8(name, 0, name.length);
  else column.append(String(value));
}

/** Equal bytes: buf[start, end) and key. */
export function bytesEqual(buf: Buffer, start: number, end: number, key: Buffer): boolean {
  if (end - start !== key.length) return false;
  for (let i = 0; i < key.length; i++) if (buf[start + i] !== key[i]) return false;
  return true;
}

/** A string field as text; null when absent or empty. */
export function appendLen(column: StringColumn, s: Scan, field: number): void {
  if (s.is(field, Wire.LEN)) appendTextOrNull(column, s.buf, s.start[field]!, s.stop[field]!);
  else column.appendNull();
}

/** A string field as text; "" when absent (for required columns). */
export function appendLenOrEmpty(column: StringColumn, s: Scan, field: number): void {
  if (s.is(field, Wire.LEN)) column.appendText(s.buf, s.start[field]!, s.stop[field]!);
  else column.appendUtf8(s.buf, 0, 0);
}

/** A bytes id field as lowercase hex; "" when absent (for required columns). */
export function appendIdOrEmpty(column: StringColumn, s: Scan, field: number): void {
  if (s.is(field, Wire.LEN)) column.appendHex(s.buf, s.start[field]!, s.stop[field]!);
  else column.appendUtf8(s.buf, 0, 0);
}

/** A bytes id field as lowercase hex; null when absent or empty. */
export function appendId(column: StringColumn, s: Scan, field: number): void {
  if (s.is(field, Wire.LEN)) appendHexOrNull(column, s.buf, s.start[field]!, s.stop[field]!);
  else column.appendNull();
}
