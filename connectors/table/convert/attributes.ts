// OTLP attributes (repeated KeyValue) into map<string, string> columns, and AnyValue as text.
//
//   KeyValue     { 1 key string, 2 value AnyValue }
//   AnyValue     oneof { 1 string, 2 bool, 3 int64, 4 double, 5 ArrayValue, 6 KeyValueList, 7 bytes }
//   ArrayValue   { 1 repeated AnyValue }     KeyValueList { 1 repeated KeyValue }
//
// Text of a value: strings as they are, int as decimal, double as JavaScript prints a number,
// bool as true/false, bytes as base64, arrays and kvlists as JSON (ints exact as JSON numbers,
// bytes as base64 strings, NaN and infinities as strings, kvlists as objects in wire order), an
// empty AnyValue as "". String values are copied as bytes; only other kinds make JS strings.

import { int64String } from '../../otlp/wire.ts';
import { bytesEqual, type StringMap } from './append.ts';
import { isValidUtf8, type StringColumn } from '../columns.ts';
import { Fields, ProtoError, Wire, type Scan } from './protobuf.ts';

export const AnyKind = { EMPTY: 0, STRING: 1, BOOL: 2, INT: 3, DOUBLE: 4, ARRAY: 5, KVLIST: 6, BYTES: 7 } as const;

/** Bound on array / kvlist nesting when rendering JSON (the receiver allows 64 message levels). */
const MAX_JSON_DEPTH = 64;

/** Reads one AnyValue: its kind (the last oneof member on the wire wins) and where its value is. */
export class AnyValueReader {
  kind = 0;
  start = 0;
  stop = 0;
  lo = 0;
  hi = 0;
  private readonly fields = new Fields();

  read(buf: Buffer, start: number, end: number): this {
    this.kind = AnyKind.EMPTY;
    const f = this.fields.reset(buf, start, end);
    while (f.next()) {
      if (f.field < 1 || f.field > 7) continue;
      f.expect(f.field === 2 || f.field === 3 ? Wire.VARINT : f.field === 4 ? Wire.I64 : Wire.LEN);
      this.kind = f.field;
      this.start = f.start;
      this.stop = f.stop;
      this.lo = f.lo;
      this.hi = f.hi;
    }
    return this;
  }

  /** The value as text (see the file header). */
  text(buf: Buffer): string {
    switch (this.kind) {
      case AnyKind.EMPTY: return '';
      case AnyKind.STRING: return buf.toString('utf8', this.start, this.stop);
      case AnyKind.BOOL: return this.lo !== 0 || this.hi !== 0 ? 'true' : 'false';
      case AnyKind.INT: return int64String(this.lo, this.hi);
      case AnyKind.DOUBLE: return String(buf.readDoubleLE(this.start));
      case AnyKind.BYTES: return buf.toString('base64', this.start, this.stop);
      case AnyKind.ARRAY: return arrayJson(buf, this.start, this.stop, 1);
      default: return kvlistJson(buf, this.start, this.stop, 1);
    }
  }

  /** Appends the value as text; string values as their bytes. */
  appendTo(column: StringColumn, buf: Buffer): void {
    if (this.kind === AnyKind.STRING) column.appendText(buf, this.start, this.stop);
    else column.append(this.text(buf));
  }
}

function json(buf: Buffer, start: number, end: number, depth: number): string {
  if (depth > MAX_JSON_DEPTH) throw new ProtoError(`AnyValue nested deeper than ${MAX_JSON_DEPTH}`);
  const v = new AnyValueReader().read(buf, start, end);
  switch (v.kind) {
    case AnyKind.EMPTY: return 'null';
    case AnyKind.STRING: return JSON.stringify(buf.toString('utf8', v.start, v.stop));
    case AnyKind.BOOL: case AnyKind.INT: return v.text(buf);
    case AnyKind.DOUBLE: {
      const d = buf.readDoubleLE(v.start);
      return Number.isFinite(d) ? String(d) : `"${d}"`;
    }
    case AnyKind.BYTES: return `"${v.text(buf)}"`;
    case AnyKind.ARRAY: return arrayJson(buf, v.start, v.stop, depth + 1);
    default: return kvlistJson(buf, v.start, v.stop, depth + 1);
  }
}

function arrayJson(buf: Buffer, start: number, end: number, depth: number): string {
  const parts: string[] = [];
  const f = new Fields().reset(buf, start, end);
  while (f.next()) {
    if (f.field !== 1) continue;
    f.expect(Wire.LEN);
    parts.push(json(buf, f.start, f.stop, depth));
  }
  return `[${parts.join(',')}]`;
}

function kvlistJson(buf: Buffer, start: number, end: number, depth: number): string {
  const parts: string[] = [];
  const f = new Fields().reset(buf, start, end);
  const kv = new KeyValueReader();
  while (f.next()) {
    if (f.field !== 1) continue;
    f.expect(Wire.LEN);
    kv.read(buf, f.start, f.stop);
    const value = kv.valueStart < 0 ? 'null' : json(buf, kv.valueStart, kv.valueStop, depth);
    parts.push(`${JSON.stringify(buf.toString('utf8', kv.keyStart, kv.keyStop))}:${value}`);
  }
  return `{${parts.join(',')}}`;
}

/** Reads one KeyValue: where its key is and where its AnyValue is (valueStart -1: none). */
class KeyValueReader {
  keyStart = 0;
  keyStop = 0;
  valueStart = -1;
  valueStop = -1;
  private readonly fields = new Fields();

  read(buf: Buffer, start: number, end: number): void {
    this.keyStart = this.keyStop = start;
    this.valueStart = this.valueStop = -1;
    const f = this.fields.reset(buf, start, end);
    while (f.next()) {
      if (f.field === 1) {
        f.expect(Wire.LEN);
        this.keyStart = f.start;
        this.keyStop = f.stop;
      } else if (f.field === 2) {
        f.expect(Wire.LEN);
        this.valueStart = f.start;
        this.valueStop = f.stop;
      }
    }
  }
}

/** Streams the KeyValue entries of field `fieldNo` of a message into a map column. */
export class AttributeWriter {
  private readonly fields = new Fields();
  private readonly kv = new KeyValueReader();
  private readonly value = new AnyValueReader();

  /** Appends one map (possibly empty) holding the attributes (field `fieldNo`) of the scanned message [.., end). */
  append(out: StringMap, scan: Scan, fieldNo: number, end: number): void {
    out.map.start();
    const buf = scan.buf;
    const f = this.fields.only(scan, fieldNo, end);
    while (f.nextOf()) {
      f.expect(Wire.LEN);
      if (appendShortStringEntry(out, buf, f.start, f.stop)) continue;
      this.kv.read(buf, f.start, f.stop);
      out.keys.appendText(buf, this.kv.keyStart, this.kv.keyStop);
      if (this.kv.valueStart < 0) out.values.appendUtf8(buf, 0, 0);
      else this.value.read(buf, this.kv.valueStart, this.kv.valueStop).appendTo(out.values, buf);
    }
    out.map.end();
  }
}

/** Tags of KeyValue.key, KeyValue.value and AnyValue.string_value (LEN fields 1, 2 and 1). */
const KEY_TAG = 0x0a;
const VALUE_TAG = 0x12;
const STRING_VALUE_TAG = 0x0a;

/**
 * The common KeyValue, a key and a string value of less than 128 bytes each, laid out as
 * `0a klen key 12 vlen 0a slen string` and nothing else: appended without the general readers.
 * False (nothing appended) for any other layout.
 */
function appendShortStringEntry(out: StringMap, buf: Buffer, start: number, end: number): boolean {
  const keyLength = buf[start + 1]!;
  if (buf[start] !== KEY_TAG || keyLength >= 0x80) return false;
  const keyEnd = start + 2 + keyLength;
  const valueLength = buf[keyEnd + 1]!;
  if (keyEnd + 2 + valueLength !== end || buf[keyEnd] !== VALUE_TAG || valueLength >= 0x80) return false;
  const stringLength = buf[keyEnd + 3]!;
  if (buf[keyEnd + 2] !== STRING_VALUE_TAG || stringLength + 2 !== valueLength) return false;
  out.keys.appendText(buf, start + 2, keyEnd);
  out.values.appendText(buf, keyEnd + 4, end);
  return true;
}

/**
 * The attributes of one resource or scope, read once and appended to every row of it: keys and
 * string values as positions in the record (UTF-8 checked once here), other values rendered once.
 */
export class AttributeList {
  count = 0;
  private buf: Buffer = Buffer.alloc(0);
  private keyStart: number[] = [];
  private keyStop: number[] = [];
  /** Decoded key when its bytes are not valid UTF-8 (undefined: use the bytes). */
  private keyText: (string | undefined)[] = [];
  private valueStart: number[] = [];
  private valueStop: number[] = [];
  /** Text of values that are not valid UTF-8 strings (undefined: use the bytes). */
  private valueText: (string | undefined)[] = [];
  private readonly fields = new Fields();
  private readonly kv = new KeyValueReader();
  private readonly value = new AnyValueReader();

  /** Reads the KeyValue entries of field `fieldNo` of message [start, end); start -1: none. */
  read(buf: Buffer, start: number, end: number, fieldNo: number): void {
    this.buf = buf;
    this.count = 0;
    if (start < 0) return;
    const f = this.fields.reset(buf, start, end);
    while (f.next()) {
      if (f.field !== fieldNo) continue;
      f.expect(Wire.LEN);
      this.add(buf, f.start, f.stop);
    }
  }

  private add(buf: Buffer, start: number, end: number): void {
    const kv = this.kv;
    kv.read(buf, start, end);
    const i = this.count++;
    this.keyStart[i] = kv.keyStart;
    this.keyStop[i] = kv.keyStop;
    this.keyText[i] = isValidUtf8(buf, kv.keyStart, kv.keyStop) ? undefined : buf.toString('utf8', kv.keyStart, kv.keyStop);
    this.valueStart[i] = this.valueStop[i] = 0;
    this.valueText[i] = undefined;
    if (kv.valueStart < 0) return;
    const v = this.value.read(buf, kv.valueStart, kv.valueStop);
    if (v.kind === AnyKind.STRING && isValidUtf8(buf, v.start, v.stop)) {
      this.valueStart[i] = v.start;
      this.valueStop[i] = v.stop;
    } else {
      this.valueText[i] = v.text(buf);
    }
  }

  /** Index of the first entry with this key, or -1. */
  find(key: Buffer): number {
    for (let i = 0; i < this.count; i++) {
      if (bytesEqual(this.buf, this.keyStart[i]!, this.keyStop[i]!, key)) return i;
    }
    return -1;
  }

  appendValue(column: StringColumn, i: number): void {
    const text = this.valueText[i];
    if (text !== undefined) column.append(text);
    else column.appendUtf8(this.buf, this.valueStart[i]!, this.valueStop[i]!);
  }

  /** Appends entry i's value, or null when i is -1. */
  appendValueOrNull(column: StringColumn, i: number): void {
    if (i < 0) column.appendNull();
    else this.appendValue(column, i);
  }

  /** Appends all entries as one map. */
  appendMap(out: StringMap): void {
    out.map.start();
    for (let i = 0; i < this.count; i++) {
      const key = this.keyText[i];
      if (key !== undefined) out.keys.append(key);
      else out.keys.appendUtf8(this.buf, this.keyStart[i]!, this.keyStop[i]!);
      this.appendValue(out.values, i);
    }
    out.map.end();
  }
}
