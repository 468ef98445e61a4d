// The message DSL and its compiler.
//
// An API's request and response are described as data (`MessageSpec`), in the shape of Apache
// Kafka's JSON message definitions (clients/src/main/resources/common/message/*.json): fields
// with `versions`, `nullableVersions`, `taggedVersions` + `tag`, `default`; messages with
// `validVersions` and `flexibleVersions`. Field names are Kafka's, in lowerCamelCase.
//
// `compileMessage(spec)` returns a MessageCodec. The first use of a version compiles that
// version into a tree of closures (one per field; nothing is interpreted per message after
// that) and caches it.
//
// Semantics, as in Kafka's generated code:
// - A field outside its `versions` is not on the wire; decoding sets its default.
// - From the first flexible version on, strings, bytes and arrays are compact (unsigned varint
//   length+1, 0 = null) and every struct, the message included, ends with a tagged-field
//   section. Unknown tags are skipped.
// - A field whose `taggedVersions` holds the version goes to the tagged section (ascending tag
//   order), and only when its value differs from its default.
// - Defaults: `default` when given, else 0, false, '', empty bytes, ZERO_UUID, [] and, for a
//   struct, a struct of defaults; `records` default to null.
// - Encoding: an undefined field is written as its default; null in a version where the field is
//   not nullable is written as its non-null default ('' / [] / 0 ...), so a handler can leave
//   version-specific fields out.
// - `ignorable` is recorded but not enforced: a non-default value for a field the version does
//   not have is dropped silently, where Kafka would refuse to encode.
// - int64 fields are JS numbers (exact within ±2^53; see primitives.ts); the encoder also takes
//   a bigint.
// - `records` fields decode to a Buffer slice (or null) and encode from Buffer | Buffer[] | null;
//   a list is written as one length prefix followed by the buffers, by reference when large.

import { ErrorCode, ProtocolError } from './errors.ts';
import { Reader, Writer, ZERO_UUID } from './primitives.ts';

export type PrimitiveType =
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint16'
  | 'float64'
  | 'bool'
  | 'string'
  | 'bytes'
  | 'records'
  | 'uuid';

export type DefaultValue = number | string | boolean | null;

export interface FieldSpec {
  /** Kafka's field name in lowerCamelCase (`partitionIndex`). */
  readonly name: string;
  /** A primitive, `[]<primitive>`, or a struct (`<Name>` / `[]<Name>`, with `fields`). */
  readonly type: string;
  /** Version range: '0+', '3-7', '5' or 'none'. */
  readonly versions: string;
  readonly nullableVersions?: string;
  readonly taggedVersions?: string;
  readonly tag?: number;
  readonly default?: DefaultValue;
  readonly ignorable?: boolean;
  readonly fields?: readonly FieldSpec[];
  readonly about?: string;
}

export interface MessageSpec {
  readonly name: string;
  readonly apiKey: number;
  readonly type: 'request' | 'response';
  readonly validVersions: string;
  readonly flexibleVersions: string;
  readonly fields: readonly FieldSpec[];
}

export interface VersionRange {
  readonly min: number;
  /** Infinity for an open range ('3+'). */
  readonly max: number;
}

const NO_VERSIONS: VersionRange = { min: 0, max: -1 };

export function parseVersions(s: string): VersionRange {
  const t = s.trim();
  if (t === 'none') return NO_VERSIONS;
  let m = /^(\d+)\+$/.exec(t);
  if (m !== null) return { min: Number(m[1]), max: Infinity };
  m = /^(\d+)-(\d+)$/.exec(t);
  if (m !== null) return { min: Number(m[1]), max: Number(m[2]) };
  m = /^(\d+)$/.exec(t);
  if (m !== null) return { min: Number(m[1]), max: Number(m[1]) };
  throw new Error(`bad version range '${s}'`);
}

export function inVersions(range: VersionRange, version: number): boolean {
  return version >= range.min && version <= range.max;
}

type Decoder = (r: Reader) => unknown;
type Encoder = (w: Writer, value: unknown) => void;
type Obj = Record<string, unknown>;

/** One version of one message, compiled. */
export interface CompiledVersion {
  readonly version: number;
  readonly flexible: boolean;
  readonly decode: (r: Reader) => Obj;
  readonly encode: (w: Writer, value: Obj) => void;
}

export class MessageCodec {
  readonly spec: MessageSpec;
  readonly validVersions: VersionRange;
  readonly flexibleVersions: VersionRange;
  private readonly compiled: (CompiledVersion | undefined)[] = [];

  constructor(spec: MessageSpec) {
    this.spec = spec;
    this.validVersions = parseVersions(spec.validVersions);
    this.flexibleVersions = parseVersions(spec.flexibleVersions);
    checkSpec(spec.fields, spec.name);
  }

  supports(version: number): boolean {
    return Number.isInteger(version) && inVersions(this.validVersions, version);
  }

  /** Whether `version` uses compact types and tagged fields (also for versions past validVersions). */
  isFlexible(version: number): boolean {
    return inVersions(this.flexibleVersions, version);
  }

  forVersion(version: number): CompiledVersion {
    const cached = this.compiled[version];
    if (cached !== undefined) return cached;
    if (!this.supports(version)) {
      throw new ProtocolError(`${this.spec.name} v${version} is not supported`, ErrorCode.UNSUPPORTED_VERSION);
    }
    const flexible = this.isFlexible(version);
    const struct = compileStruct(this.spec.fields, version, flexible);
    const compiled: CompiledVersion = {
      version,
      flexible,
      decode: struct.decode as (r: Reader) => Obj,
      encode: struct.encode as (w: Writer, value: Obj) => void,
    };
    this.compiled[version] = compiled;
    return compiled;
  }

  decode(version: number, r: Reader): Obj {
    const c = this.forVersion(version);
    try {
      return c.decode(r);
    } catch (err) {
      if (err instanceof ProtocolError) {
        throw new ProtocolError(`${this.spec.name} v${version}: ${err.message}`, err.errorCode);
      }
      throw err;
    }
  }

  encode(version: number, w: Writer, value: Obj): void {
    this.forVersion(version).encode(w, value);
  }
}

export function compileMessage(spec: MessageSpec): MessageCodec {
  return new MessageCodec(spec);
}

// ---- spec checks (once, at load) ----

const PRIMITIVES = new Set<string>([
  'int8', 'int16', 'int32', 'int64', 'uint16', 'float64', 'bool', 'string', 'bytes', 'records', 'uuid',
]);

function checkSpec(fields: readonly FieldSpec[], path: string): void {
  const names = new Set<string>();
  const tags = new Set<number>();
  for (const f of fields) {
    const where = `${path}.${f.name}`;
    if (names.has(f.name)) throw new Error(`${where}: duplicate field name`);
    names.add(f.name);
    parseVersions(f.versions);
    if (f.nullableVersions !== undefined) parseVersions(f.nullableVersions);
    if ((f.taggedVersions === undefined) !== (f.tag === undefined)) {
      throw new Error(`${where}: tag and taggedVersions go together`);
    }
    if (f.tag !== undefined) {
      if (tags.has(f.tag)) throw new Error(`${where}: duplicate tag ${f.tag}`);
      tags.add(f.tag);
    }
    const elem = f.type.startsWith('[]') ? f.type.slice(2) : f.type;
    if (PRIMITIVES.has(elem)) {
      if (f.fields !== undefined) throw new Error(`${where}: primitive type ${f.type} with fields`);
      if (f.type === '[]records') throw new Error(`${where}: records cannot be an array`);
    } else {
      if (f.fields === undefined) throw new Error(`${where}: struct type ${f.type} needs fields`);
      checkSpec(f.fields, where);
    }
  }
}

// ---- defaults ----

const EMPTY_BYTES = Buffer.alloc(0);

function primitiveEmpty(type: string): unknown {
  switch (type) {
    case 'bool':
      return false;
    case 'string':
      return '';
    case 'bytes':
      return EMPTY_BYTES;
    case 'records':
      return null;
    case 'uuid':
      return ZERO_UUID;
    default:
      return 0;
  }
}

/** A factory for the field's default (fresh objects for arrays and structs). */
function defaultFactory(f: FieldSpec): () => unknown {
  if (f.type.startsWith('[]')) {
    if (f.default === null) return () => null;
    return () => [];
  }
  if (f.fields !== undefined) {
    if (f.default === null) return () => null;
    return structDefaultFactory(f.fields);
  }
  const v = f.default !== undefined ? f.default : primitiveEmpty(f.type);
  return () => v;
}

/** The default a non-nullable version uses when handed null. */
function nonNullDefaultFactory(f: FieldSpec): () => unknown {
  if (f.type.startsWith('[]')) return () => [];
  if (f.fields !== undefined) return structDefaultFactory(f.fields);
  if (f.default !== undefined && f.default !== null) {
    const v = f.default;
    return () => v;
  }
  const v = f.type === 'records' ? EMPTY_BYTES : primitiveEmpty(f.type);
  return () => v;
}

function structDefaultFactory(fields: readonly FieldSpec[]): () => Obj {
  const names = fields.map((f) => f.name);
  const makers = fields.map(defaultFactory);
  return () => {
    const o: Obj = {};
    for (let i = 0; i < names.length; i++) o[names[i]!] = makers[i]!();
    return o;
  };
}

/** A predicate "is this value its default" (undefined counts as default). */
function isDefaultPredicate(f: FieldSpec): (v: unknown) => boolean {
  if (f.type.startsWith('[]')) {
    if (f.default === null) return (v) => v === undefined || v === null;
    return (v) => v === undefined || (Array.isArray(v) && v.length === 0);
  }
  if (f.fields !== undefined) {
    if (f.default === null) return (v) => v === undefined || v === null;
    const sub = f.fields.map((sf) => ({ name: sf.name, isDefault: isDefaultPredicate(sf) }));
    return (v) => {
      if (v === undefined) return true;
      if (v === null) return false;
      const o = v as Obj;
      return sub.every((s) => s.isDefault(o[s.name]));
    };
  }
  if (f.type === 'bytes' || f.type === 'records') {
    const d = f.default !== undefined ? f.default : primitiveEmpty(f.type);
    if (d === null) return (v) => v === undefined || v === null;
    return (v) => v === undefined || (Buffer.isBuffer(v) && v.length === 0);
  }
  const d = f.default !== undefined ? f.default : primitiveEmpty(f.type);
  return (v) => v === undefined || v === d;
}

// ---- per-version compilation ----

interface TypeCodec {
  decode: Decoder;
  encode: Encoder;
  /** Fewest bytes one value takes on the wire (for sanity checks of array counts). */
  minBytes: number;
}

interface CompiledStruct {
  decode: (r: Reader) => Obj;
  encode: (w: Writer, value: unknown) => void;
  minBytes: number;
}

function compilePrimitive(type: string, nullable: boolean, flexible: boolean): TypeCodec {
  switch (type) {
    case 'int8':
      return { decode: (r) => r.int8(), encode: (w, v) => w.int8(v as number), minBytes: 1 };
    case 'int16':
      return { decode: (r) => r.int16(), encode: (w, v) => w.int16(v as number), minBytes: 2 };
    case 'int32':
      return { decode: (r) => r.int32(), encode: (w, v) => w.int32(v as number), minBytes: 4 };
    case 'int64':
      return { decode: (r) => r.int64(), encode: (w, v) => w.int64(v as number | bigint), minBytes: 8 };
    case 'uint16':
      return { decode: (r) => r.uint16(), encode: (w, v) => w.uint16(v as number), minBytes: 2 };
    case 'float64':
      return { decode: (r) => r.float64(), encode: (w, v) => w.float64(v as number), minBytes: 8 };
    case 'bool':
      return { decode: (r) => r.bool(), encode: (w, v) => w.bool(v as boolean), minBytes: 1 };
    case 'uuid':
      return { decode: (r) => r.uuid(), encode: (w, v) => w.uuid(v as string), minBytes: 16 };
    case 'string':
      if (flexible) {
        return nullable
          ? { decode: (r) => r.compactNullableString(), encode: (w, v) => w.compactNullableString(v as string | null), minBytes: 1 }
          : { decode: (r) => r.compactString(), encode: (w, v) => w.compactString(v as string), minBytes: 1 };
      }
      return nullable
        ? { decode: (r) => r.nullableString(), encode: (w, v) => w.nullableString(v as string | null), minBytes: 2 }
        : { decode: (r) => r.string(), encode: (w, v) => w.string(v as string), minBytes: 2 };
    case 'bytes':
      if (flexible) {
        return nullable
          ? { decode: (r) => r.compactNullableBytes(), encode: (w, v) => w.compactNullableBytes(v as Buffer | null), minBytes: 1 }
          : { decode: (r) => r.compactBytes(), encode: (w, v) => w.compactBytes(v as Buffer), minBytes: 1 };
      }
      return nullable
        ? { decode: (r) => r.nullableBytes(), encode: (w, v) => w.nullableBytes(v as Buffer | null), minBytes: 4 }
        : { decode: (r) => r.bytes(), encode: (w, v) => w.bytes(v as Buffer), minBytes: 4 };
    case 'records':
      return compileRecords(nullable, flexible);
    default:
      throw new Error(`unknown primitive type ${type}`);
  }
}

/** Record batches: a bytes field that also encodes from a list of buffers without joining them. */
function compileRecords(nullable: boolean, flexible: boolean): TypeCodec {
  const decode: Decoder = flexible
    ? nullable ? (r) => r.compactNullableBytes() : (r) => r.compactBytes()
    : nullable ? (r) => r.nullableBytes() : (r) => r.bytes();
  const encode: Encoder = (w, v) => {
    if (v === null) {
      if (flexible) w.uvarint(0);
      else w.int32(-1);
    } else if (Array.isArray(v)) {
      w.bytesChunks(v as Buffer[], flexible);
    } else if (flexible) {
      w.compactBytes(v as Buffer);
    } else {
      w.bytes(v as Buffer);
    }
  };
  return { decode, encode, minBytes: flexible ? 1 : 4 };
}

function compileArray(elem: TypeCodec, nullable: boolean, flexible: boolean, path: string): TypeCodec {
  const decodeElem = elem.decode;
  const encodeElem = elem.encode;
  // Every element takes at least a byte in practice; the bound stops a forged count from making
  // us build millions of empty objects.
  const minElem = Math.max(1, elem.minBytes);
  const decode: Decoder = (r) => {
    const n = flexible ? r.compactArrayLength(minElem) : r.arrayLength(minElem);
    if (n < 0) {
      if (!nullable) throw new ProtocolError(`${path}: null array in a non-nullable field`);
      return null;
    }
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) out.push(decodeElem(r));
    return out;
  };
  const encode: Encoder = (w, v) => {
    if (v === null) {
      if (flexible) w.uvarint(0);
      else w.int32(-1);
      return;
    }
    const a = v as readonly unknown[];
    if (flexible) w.compactArrayLength(a.length);
    else w.arrayLength(a.length);
    for (let i = 0; i < a.length; i++) encodeElem(w, a[i]);
  };
  return { decode, encode, minBytes: flexible ? 1 : 4 };
}

/** A nullable struct (not an array element) is preceded by an int8: -1 = null, 1 = present. */
function compileNullableStruct(s: CompiledStruct): TypeCodec {
  return {
    decode: (r) => (r.int8() < 0 ? null : s.decode(r)),
    encode: (w, v) => {
      if (v === null) {
        w.int8(-1);
      } else {
        w.int8(1);
        s.encode(w, v);
      }
    },
    minBytes: 1,
  };
}

function compileFieldType(f: FieldSpec, version: number, flexible: boolean, path: string): TypeCodec {
  const nullable = f.nullableVersions !== undefined && inVersions(parseVersions(f.nullableVersions), version);
  const isArray = f.type.startsWith('[]');
  const elemType = isArray ? f.type.slice(2) : f.type;
  let elem: TypeCodec;
  if (f.fields !== undefined) {
    const s = compileStruct(f.fields, version, flexible, `${path}.${f.name}`);
    elem = { decode: s.decode, encode: s.encode, minBytes: s.minBytes };
    if (!isArray && nullable) return compileNullableStruct(s);
  } else {
    elem = compilePrimitive(elemType, isArray ? false : nullable, flexible);
  }
  return isArray ? compileArray(elem, nullable, flexible, `${path}.${f.name}`) : elem;
}

interface TaggedField {
  tag: number;
  name: string;
  decode: Decoder;
  encode: Encoder;
  isDefault: (v: unknown) => boolean;
}

/** What one field does in one version: read/written in place, tagged, or absent. */
interface FieldPlan {
  name: string;
  makeDefault: () => unknown;
  /** null when the field is absent from the version or tagged. */
  inline: { codec: TypeCodec; nonNullDefault: (() => unknown) | null } | null;
  tagged: TaggedField | null;
}

function planField(f: FieldSpec, version: number, flexible: boolean, path: string): FieldPlan {
  const plan: FieldPlan = { name: f.name, makeDefault: defaultFactory(f), inline: null, tagged: null };
  if (!inVersions(parseVersions(f.versions), version)) return plan;
  const codec = compileFieldType(f, version, flexible, path);
  if (flexible && f.taggedVersions !== undefined && inVersions(parseVersions(f.taggedVersions), version)) {
    plan.tagged = { tag: f.tag!, name: f.name, decode: codec.decode, encode: codec.encode, isDefault: isDefaultPredicate(f) };
    return plan;
  }
  const nullable = f.nullableVersions !== undefined && inVersions(parseVersions(f.nullableVersions), version);
  plan.inline = { codec, nonNullDefault: nullable ? null : nonNullDefaultFactory(f) };
  return plan;
}

function compileStruct(fields: readonly FieldSpec[], version: number, flexible: boolean, path = ''): CompiledStruct {
  const plans = fields.map((f) => planField(f, version, flexible, path));
  const tagged = plans.flatMap((p) => (p.tagged === null ? [] : [p.tagged])).sort((a, b) => a.tag - b.tag);
  let minBytes = flexible ? 1 : 0;
  for (const p of plans) if (p.inline !== null) minBytes += p.inline.codec.minBytes;
  return {
    decode: structDecoder(plans, tagged, flexible),
    encode: structEncoder(plans, tagged, flexible),
    minBytes,
  };
}

/**
 * Each step reads a field or sets its default, in field order, so every object decoded for a
 * version has the same keys in the same order (one hidden class). Tagged values overwrite
 * their defaults afterwards.
 */
function structDecoder(plans: readonly FieldPlan[], tagged: readonly TaggedField[], flexible: boolean): (r: Reader) => Obj {
  const names = plans.map((p) => p.name);
  const readers = plans.map((p) => (p.inline === null ? null : p.inline.codec.decode));
  const defaults = plans.map((p) => p.makeDefault);
  const tagsByNumber = new Map(tagged.map((t) => [t.tag, t]));
  const count = names.length;
  return (r) => {
    const o: Obj = {};
    for (let i = 0; i < count; i++) {
      const read = readers[i];
      o[names[i]!] = read != null ? read(r) : defaults[i]!();
    }
    if (flexible) {
      const fieldCount = r.uvarint();
      for (let i = 0; i < fieldCount; i++) {
        const tag = r.uvarint();
        const size = r.uvarint();
        r.need(size);
        const t = tagsByNumber.get(tag);
        if (t !== undefined) o[t.name] = t.decode(new Reader(r.buf, r.pos, r.pos + size));
        r.pos += size;
      }
    }
    return o;
  };
}

/** Writes the version's fields in order; undefined means default, null in a non-nullable version means the non-null default. */
function structEncoder(plans: readonly FieldPlan[], tagged: readonly TaggedField[], flexible: boolean): (w: Writer, value: unknown) => void {
  const inline = plans.filter((p) => p.inline !== null);
  const names = inline.map((p) => p.name);
  const writers = inline.map((p) => p.inline!.codec.encode);
  const defaults = inline.map((p) => p.makeDefault);
  const nonNullDefaults = inline.map((p) => p.inline!.nonNullDefault);
  const count = names.length;
  return (w, value) => {
    const o = (value ?? {}) as Obj;
    for (let i = 0; i < count; i++) {
      let v = o[names[i]!];
      if (v === undefined) v = defaults[i]!();
      if (v === null) {
        const nonNull = nonNullDefaults[i];
        if (nonNull != null) v = nonNull();
      }
      writers[i]!(w, v);
    }
    if (flexible) {
      if (tagged.length === 0) w.emptyTaggedFields();
      else encodeTaggedFields(w, tagged, o);
    }
  };
}

function encodeTaggedFields(w: Writer, tagged: readonly TaggedField[], o: Obj): void {
  const present: TaggedField[] = [];
  for (const t of tagged) if (!t.isDefault(o[t.name])) present.push(t);
  w.uvarint(present.length);
  for (const t of present) {
    const sub = new Writer(64);
    t.encode(sub, o[t.name]);
    const bytes = sub.toBuffer();
    w.uvarint(t.tag);
    w.uvarint(bytes.length);
    w.raw(bytes);
  }
}
