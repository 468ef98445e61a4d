// OTLP/JSON <-> protobuf, driven by the schema table. OTLP/JSON is the proto3 JSON mapping with
// OTLP's deviations (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding):
// trace and span ids are hex strings (not base64), enum values are integers, field names are
// lowerCamelCase (the .proto names are accepted too), unknown fields are ignored. 64-bit
// integers are accepted as numbers or decimal strings and written as strings.
//
// JSON bodies are decoded in full and re-encoded as protobuf, then take the same path as
// protobuf bodies (split.ts). The reverse direction serves the otlp_json topic encoding.

import { messageDef, type FieldDef, type MessageDef } from './schema.ts';
import { MAX_NESTING_DEPTH } from './walk.ts';
import { WireError, WireReader, WireType, WireWriter, int64String, uint64String } from './wire.ts';

/** A JSON body that does not map onto the OTLP message. Answered with 400 / INVALID_ARGUMENT. */
export class JsonMappingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonMappingError';
  }
}

interface CompiledMessage {
  readonly def: MessageDef;
  /** By JSON name and by .proto name. */
  readonly byName: Map<string, FieldDef>;
  /** By field number. */
  readonly byNumber: (FieldDef | undefined)[];
}

const compiled = new Map<string, CompiledMessage>();
function compile(name: string): CompiledMessage {
  let c = compiled.get(name);
  if (c) return c;
  const def = messageDef(name);
  const byName = new Map<string, FieldDef>();
  const byNumber: (FieldDef | undefined)[] = [];
  for (const field of def.fields) {
    byName.set(field.json, field);
    byName.set(field.name, field);
    byNumber[field.no] = field;
  }
  c = { def, byName, byNumber };
  compiled.set(name, c);
  return c;
}

// ---------------------------------------------------------------------------------------------
// JSON -> protobuf

/** Encodes a parsed OTLP/JSON value as the protobuf message `messageName`. */
export function jsonToProto(messageName: string, value: unknown): Buffer {
  const w = new WireWriter(64 * 1024);
  writeMessage(w, compile(messageName), value, '', 0);
  return w.finish();
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? `the string ${JSON.stringify(value.slice(0, 40))}` : `a ${typeof value}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function writeMessage(w: WireWriter, c: CompiledMessage, value: unknown, path: string, depth: number): void {
  if (!isObject(value)) throw new JsonMappingError(`${path || c.def.name}: want an object, got ${describe(value)}`);
  if (depth > MAX_NESTING_DEPTH) throw new JsonMappingError(`${path}: nested deeper than ${MAX_NESTING_DEPTH}`);
  for (const key in value) {
    const field = c.byName.get(key);
    const fieldValue = value[key];
    if (field === undefined || fieldValue === null || fieldValue === undefined) continue;
    const fieldPath = path ? `${path}.${key}` : key;
    if (!field.repeated) {
      writeField(w, field, fieldValue, fieldPath, depth);
      continue;
    }
    if (!Array.isArray(fieldValue)) throw new JsonMappingError(`${fieldPath}: want an array, got ${describe(fieldValue)}`);
    if (field.kind !== 'message' && field.kind !== 'string' && field.kind !== 'bytes') {
      writePacked(w, field, fieldValue, fieldPath);
      continue;
    }
    for (let i = 0; i < fieldValue.length; i++) {
      writeField(w, field, fieldValue[i], `${fieldPath}[${i}]`, depth, true);
    }
  }
}

/** Writes one value of a field; defaults are left out unless presence is explicit or in a list. */
function writeField(w: WireWriter, field: FieldDef, value: unknown, path: string, depth: number, inList = false): void {
  const keep = inList || field.explicitPresence === true;
  switch (field.kind) {
    case 'message': {
      w.tag(field.no, WireType.LEN);
      const mark = w.beginMessage();
      writeMessage(w, compile(field.message!), value, path, depth + 1);
      w.endMessage(mark);
      return;
    }
    case 'string': {
      if (typeof value !== 'string') throw new JsonMappingError(`${path}: want a string, got ${describe(value)}`);
      if (value.length === 0 && !keep) return;
      w.tag(field.no, WireType.LEN);
      w.string(value);
      return;
    }
    case 'bytes': {
      const bytes = field.id ? hexBytes(value, path) : base64Bytes(value, path);
      if (bytes.length === 0 && !keep) return;
      w.tag(field.no, WireType.LEN);
      w.bytes(bytes);
      return;
    }
    case 'bool': {
      if (typeof value !== 'boolean') throw new JsonMappingError(`${path}: want true or false, got ${describe(value)}`);
      if (!value && !keep) return;
      w.tag(field.no, WireType.VARINT);
      w.uint32(value ? 1 : 0);
      return;
    }
    case 'double': {
      const n = jsonDouble(value, path);
      if (Object.is(n, 0) && !keep) return;
      w.tag(field.no, WireType.I64);
      w.double(n);
      return;
    }
    case 'fixed32': {
      const n = jsonInt(value, path, 0, 0xffffffff);
      if (n === 0 && !keep) return;
      w.tag(field.no, WireType.I32);
      w.fixed32(n);
      return;
    }
    case 'int32': case 'enum': case 'uint32': case 'sint32': {
      const n = field.kind === 'uint32' ? jsonInt(value, path, 0, 0xffffffff) : jsonInt(value, path, -0x80000000, 0x7fffffff, field.kind === 'enum');
      if (n === 0 && !keep) return;
      w.tag(field.no, WireType.VARINT);
      if (field.kind === 'sint32') w.uint32(((n << 1) ^ (n >> 31)) >>> 0);
      else if (n < 0) w.varint64(n >>> 0, 0xffffffff); // negative int32: sign-extended to 10 bytes
      else w.uint32(n);
      return;
    }
    default: {
      // int64, uint64, fixed64, sfixed64
      const [lo, hi] = jsonInt64(value, path, field.kind === 'int64' || field.kind === 'sfixed64');
      if (lo === 0 && hi === 0 && !keep) return;
      if (field.kind === 'fixed64' || field.kind === 'sfixed64') {
        w.tag(field.no, WireType.I64);
        w.fixed64(lo, hi);
      } else {
        w.tag(field.no, WireType.VARINT);
        w.varint64(lo, hi);
      }
    }
  }
}

/** Repeated numeric scalars are written packed (proto3's default). */
function writePacked(w: WireWriter, field: FieldDef, values: unknown[], path: string): void {
  if (values.length === 0) return;
  w.tag(field.no, WireType.LEN);
  const mark = w.beginMessage();
  for (let i = 0; i < values.length; i++) {
    const itemPath = `${path}[${i}]`;
    if (field.kind === 'double') w.double(jsonDouble(values[i], itemPath));
    else if (field.kind === 'fixed64' || field.kind === 'uint64') {
      const [lo, hi] = jsonInt64(values[i], itemPath, false);
      if (field.kind === 'fixed64') w.fixed64(lo, hi);
      else w.varint64(lo, hi);
    } else {
      throw new JsonMappingError(`${path}: repeated ${field.kind} is not supported`);
    }
  }
  w.endMessage(mark);
}

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
function hexBytes(value: unknown, path: string): Buffer {
  if (typeof value !== 'string') throw new JsonMappingError(`${path}: want a hex string, got ${describe(value)}`);
  if (!HEX.test(value)) throw new JsonMappingError(`${path}: ${JSON.stringify(value.slice(0, 40))} is not a hex string (ids are hex in OTLP/JSON)`);
  return Buffer.from(value, 'hex');
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
function base64Bytes(value: unknown, path: string): Buffer {
  if (typeof value !== 'string' || !BASE64.test(value)) {
    throw new JsonMappingError(`${path}: want a base64 string, got ${describe(value)}`);
  }
  return Buffer.from(value, 'base64');
}

function jsonInt(value: unknown, path: string, min: number, max: number, isEnum = false): number {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^-?\d+$/.test(value)) n = Number(value);
  else {
    const hint = isEnum && typeof value === 'string' ? ' (enum values are integers in OTLP/JSON)' : '';
    throw new JsonMappingError(`${path}: want an integer, got ${describe(value)}${hint}`);
  }
  if (!Number.isInteger(n) || n < min || n > max) throw new JsonMappingError(`${path}: ${n} is not an integer in [${min}, ${max}]`);
  return n;
}

const INT64 = /^-?\d{1,20}$/;
const TWO_POW_64 = 1n << 64n;
/** A 64-bit integer (number or decimal string) as two's complement [low, high] halves. */
function jsonInt64(value: unknown, path: string, signed: boolean): [number, number] {
  let big: bigint;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new JsonMappingError(`${path}: ${value} is not an integer`);
    if (value >= 0 && value <= Number.MAX_SAFE_INTEGER) return [value % 4294967296, Math.floor(value / 4294967296)];
    big = BigInt(value);
  } else if (typeof value === 'string' && INT64.test(value)) {
    big = BigInt(value);
  } else {
    throw new JsonMappingError(`${path}: want a 64-bit integer (number or decimal string), got ${describe(value)}`);
  }
  const min = signed ? -(1n << 63n) : 0n;
  const max = signed ? (1n << 63n) - 1n : TWO_POW_64 - 1n;
  if (big < min || big > max) throw new JsonMappingError(`${path}: ${big} is out of range for a ${signed ? 'signed' : 'unsigned'} 64-bit integer`);
  const u = big < 0n ? big + TWO_POW_64 : big;
  return [Number(u & 0xffffffffn), Number(u >> 32n)];
}

function jsonDouble(value: unknown, path: string): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string') {
    if (value === 'NaN') return NaN;
    if (value === 'Infinity') return Infinity;
    if (value === '-Infinity') return -Infinity;
    const n = Number(value);
    if (value.trim() !== '' && Number.isFinite(n)) return n;
  }
  throw new JsonMappingError(`${path}: want a number, got ${describe(value)}`);
}

// ---------------------------------------------------------------------------------------------
// protobuf -> OTLP/JSON value

export type OtlpJson = { [key: string]: OtlpJsonValue };
export type OtlpJsonValue = string | number | boolean | OtlpJson | OtlpJsonValue[];

/** Decodes protobuf message `messageName` into its OTLP/JSON form (a plain object). */
export function protoToJson(messageName: string, buf: Uint8Array): OtlpJson {
  const bytes = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const r = new WireReader(bytes);
  return readMessage(r, compile(messageName), 0);
}

function readMessage(r: WireReader, c: CompiledMessage, depth: number, into: OtlpJson = {}): OtlpJson {
  if (depth > MAX_NESTING_DEPTH) throw new WireError(`${c.def.name}: nested deeper than ${MAX_NESTING_DEPTH}`);
  const end = r.end;
  while (r.pos < end) {
    const tag = r.uint32();
    const fieldNo = tag >>> 3;
    const wireType = tag & 7;
    const field = c.byNumber[fieldNo];
    if (field === undefined) {
      r.skip(wireType, fieldNo);
      continue;
    }
    if (field.repeated && field.kind !== 'message' && field.kind !== 'string' && field.kind !== 'bytes' && wireType === WireType.LEN) {
      const len = r.length();
      const stop = r.pos + len;
      const list = (into[field.json] ??= []) as OtlpJsonValue[];
      r.end = stop;
      while (r.pos < stop) list.push(readScalar(r, field, scalarWireType(field)));
      r.end = end;
      continue;
    }
    if (field.kind === 'message') {
      if (wireType !== WireType.LEN) throw new WireError(`${c.def.name}.${field.name}: wire type ${wireType}, want 2`);
      const len = r.length();
      const stop = r.pos + len;
      r.end = stop;
      const sub = compile(field.message!);
      if (field.repeated) ((into[field.json] ??= []) as OtlpJsonValue[]).push(readMessage(r, sub, depth + 1));
      else into[field.json] = readMessage(r, sub, depth + 1, (into[field.json] as OtlpJson | undefined) ?? {});
      r.end = end;
      continue;
    }
    const value = readScalar(r, field, wireType);
    if (field.repeated) ((into[field.json] ??= []) as OtlpJsonValue[]).push(value);
    else into[field.json] = value;
  }
  return into;
}

function scalarWireType(field: FieldDef): number {
  switch (field.kind) {
    case 'fixed64': case 'sfixed64': case 'double': return WireType.I64;
    case 'fixed32': return WireType.I32;
    default: return WireType.VARINT;
  }
}

function readScalar(r: WireReader, field: FieldDef, wireType: number): OtlpJsonValue {
  const want = field.kind === 'string' || field.kind === 'bytes' ? WireType.LEN : scalarWireType(field);
  if (wireType !== want) throw new WireError(`${field.name}: wire type ${wireType}, want ${want}`);
  const buf = r.buf;
  switch (field.kind) {
    case 'string': {
      const len = r.length();
      const s = buf.toString('utf8', r.pos, r.pos + len);
      r.pos += len;
      return s;
    }
    case 'bytes': {
      const len = r.length();
      const s = buf.toString(field.id ? 'hex' : 'base64', r.pos, r.pos + len);
      r.pos += len;
      return s;
    }
    case 'double': {
      r.need(8);
      const d = buf.readDoubleLE(r.pos);
      r.pos += 8;
      return Number.isFinite(d) ? d : String(d);
    }
    case 'fixed64': case 'sfixed64': {
      r.need(8);
      const lo = buf.readUInt32LE(r.pos);
      const hi = buf.readUInt32LE(r.pos + 4);
      r.pos += 8;
      return field.kind === 'fixed64' ? uint64String(lo, hi) : int64String(lo, hi);
    }
    case 'fixed32': {
      r.need(4);
      const v = buf.readUInt32LE(r.pos);
      r.pos += 4;
      return v;
    }
    default: {
      const [lo, hi] = r.varint64();
      switch (field.kind) {
        case 'bool': return lo !== 0 || hi !== 0;
        case 'uint32': return lo >>> 0;
        case 'sint32': return (lo >>> 1) ^ -(lo & 1);
        case 'int64': return int64String(lo, hi);
        case 'uint64': return uint64String(lo, hi);
        default: return lo | 0; // int32, enum
      }
    }
  }
}
