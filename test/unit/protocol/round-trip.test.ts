// Every implemented API, every version the codec knows, both directions: a message with a
// non-default value in every field decodes back to itself (fields the version lacks come back as
// their defaults), re-encodes to the same bytes, and any truncation of it is a ProtocolError.

import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../../src/protocol/errors.ts';
import {
  API_TABLE,
  decodeRequest,
  decodeRequestHeader,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  type ImplementedApiKey,
} from '../../../src/protocol/index.ts';
import { ZERO_UUID } from '../../../src/protocol/primitives.ts';
import { inVersions, parseVersions, type FieldSpec, type MessageCodec } from '../../../src/protocol/schema.ts';

type Obj = Record<string, unknown>;

let seed = 0;

function inRange(range: string | undefined, v: number): boolean {
  return range !== undefined && inVersions(parseVersions(range), v);
}

/** The default a decoder must produce for a field the version does not carry. */
function defaultOf(f: FieldSpec): unknown {
  if (f.type.startsWith('[]')) return f.default === null ? null : [];
  if (f.fields !== undefined) return f.default === null ? null : Object.fromEntries(f.fields.map((s) => [s.name, defaultOf(s)]));
  if (f.default !== undefined) return f.default;
  switch (f.type) {
    case 'bool': return false;
    case 'string': return '';
    case 'bytes': return Buffer.alloc(0);
    case 'records': return null;
    case 'uuid': return ZERO_UUID;
    default: return 0;
  }
}

function primitiveSample(type: string): unknown {
  const n = ++seed;
  switch (type) {
    case 'int8': return (n % 100) + 1;
    case 'int16': return (n % 30000) + 1;
    case 'uint16': return (n % 60000) + 1;
    case 'int32': return n * 1000 + 7;
    case 'int64': return n * 2 ** 40 + 3;
    case 'float64': return n + 0.5;
    case 'bool': return true;
    case 'string': return `s${n}-é`;
    case 'bytes': return Buffer.from([n & 0xff, 1, 2]);
    case 'records': return Buffer.alloc(n % 2 === 0 ? 1500 : 7, n & 0xff);
    case 'uuid': return n.toString(16).padStart(32, '0');
    default: throw new Error(type);
  }
}

/** A value for every field (non-default where the version has it) and what decoding should give. */
function sample(fields: readonly FieldSpec[], version: number): { value: Obj; expected: Obj } {
  const value: Obj = {};
  const expected: Obj = {};
  for (const f of fields) {
    if (!inRange(f.versions, version)) {
      value[f.name] = defaultOf(f);
      expected[f.name] = defaultOf(f);
      continue;
    }
    const nullable = inRange(f.nullableVersions, version);
    let v: unknown;
    let e: unknown;
    if (nullable && ++seed % 4 === 0) {
      v = null;
      e = null;
    } else if (f.type.startsWith('[]')) {
      const elem = f.type.slice(2);
      const pairs = [0, 1].map(() => (f.fields !== undefined ? sample(f.fields, version) : { value: primitiveSample(elem), expected: undefined }));
      v = pairs.map((p) => p.value);
      e = pairs.map((p) => (f.fields !== undefined ? p.expected : p.value));
    } else if (f.fields !== undefined) {
      const s = sample(f.fields, version);
      v = s.value;
      e = s.expected;
    } else {
      v = primitiveSample(f.type);
      if (f.type === 'bool' && f.default === true) v = false;
      e = v;
    }
    value[f.name] = v;
    expected[f.name] = e;
  }
  return { value, expected };
}

function versionsOf(codec: MessageCodec): number[] {
  const out: number[] = [];
  for (let v = codec.validVersions.min; v <= codec.validVersions.max; v++) out.push(v);
  return out;
}

function cutPoints(length: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < length; i += i < 300 ? 1 : 97) out.push(i);
  return out;
}

const implemented = API_TABLE.filter((r) => r.request !== null);

describe.each(implemented.map((r) => [r.name, r] as const))('%s', (_name, row) => {
  const apiKey = row.apiKey as ImplementedApiKey;
  const requestCodec = row.request!;
  const responseCodec = row.response!;

  it.each(versionsOf(requestCodec))('request v%i round-trips, and truncations are ProtocolErrors', (version) => {
    const { value, expected } = sample(requestCodec.spec.fields, version);
    const chunks = encodeRequest(apiKey, version, { correlationId: 99, clientId: 'rt' }, value as never);
    const wire = Buffer.concat(chunks);
    expect(wire.readInt32BE(0)).toBe(wire.length - 4);
    const frame = wire.subarray(4);
    const header = decodeRequestHeader(frame);
    expect(header).toMatchObject({ apiKey, apiVersion: version, correlationId: 99, clientId: 'rt' });
    const decoded = decodeRequest(apiKey, version, frame, header.bodyOffset);
    expect(decoded).toEqual(expected);
    expect(Buffer.concat(encodeRequest(apiKey, version, { correlationId: 99, clientId: 'rt' }, decoded as never))).toEqual(wire);
    for (const cut of cutPoints(frame.length - header.bodyOffset)) {
      const truncated = frame.subarray(0, header.bodyOffset + cut);
      expect(() => decodeRequest(apiKey, version, truncated, header.bodyOffset)).toThrow(ProtocolError);
    }
  });

  it.each(versionsOf(responseCodec))('response v%i round-trips', (version) => {
    const { value, expected } = sample(responseCodec.spec.fields, version);
    const wire = Buffer.concat(encodeResponse(apiKey, version, 12345, value as never));
    expect(wire.readInt32BE(0)).toBe(wire.length - 4);
    const { correlationId, body } = decodeResponse(apiKey, version, wire.subarray(4));
    expect(correlationId).toBe(12345);
    expect(body).toEqual(expected);
    expect(Buffer.concat(encodeResponse(apiKey, version, 12345, body as never))).toEqual(wire);
    for (const cut of cutPoints(wire.length - 4)) {
      expect(() => decodeResponse(apiKey, version, wire.subarray(4, 4 + cut))).toThrow(ProtocolError);
    }
  });
});
