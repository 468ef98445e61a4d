import { describe, expect, it } from 'vitest';
import protobuf from 'protobufjs';
import { JsonMappingError, jsonToProto, protoToJson, type OtlpJson } from '../../../connectors/otlp/json.ts';
import { MESSAGES } from '../../../connectors/otlp/schema.ts';
import { WireError, WireReader, WireWriter, int64String, uint64String } from '../../../connectors/otlp/wire.ts';
import { logsRequest, metricsRequest, traceRequest } from './payloads.ts';

/** protobufjs types built from the same schema table: an independent encoder/decoder of the wire format. */
function protobufjsRoot(): protobuf.Root {
  const flat = (name: string) => name.replaceAll('.', '_');
  const nested: Record<string, protobuf.AnyNestedObject> = {};
  for (const def of MESSAGES.values()) {
    const fields: Record<string, protobuf.IField> = {};
    const oneofs: Record<string, { oneof: string[] }> = {};
    for (const f of def.fields) {
      const type = f.kind === 'message' ? flat(f.message!) : f.kind === 'enum' ? 'int32' : f.kind;
      fields[f.json] = { id: f.no, type, ...(f.repeated ? { rule: 'repeated' } : {}) };
      // Explicit presence (oneof members, proto3 optional) as one synthetic oneof per field.
      if (f.explicitPresence) oneofs[`_${f.json}`] = { oneof: [f.json] };
    }
    nested[flat(def.name)] = { fields, oneofs };
  }
  return protobuf.Root.fromJSON({ nested: { otlp: { nested } } });
}

describe('wire primitives', () => {
  it('reads back 64-bit varints and fixed values written by the writer', () => {
    const values: [number, number][] = [[0, 0], [1, 0], [127, 0], [128, 0], [0xffffffff, 0], [0, 1], [0xffffffff, 0xffffffff], [0x12345678, 0x9abcdef0]];
    const w = new WireWriter(4);
    for (const [lo, hi] of values) w.varint64(lo, hi);
    const r = new WireReader(Buffer.from(w.finish()));
    for (const [lo, hi] of values) expect(r.varint64()).toEqual([lo, hi]);
    expect(r.pos).toBe(r.end);
    expect(uint64String(0xffffffff, 0xffffffff)).toBe('18446744073709551615');
    expect(int64String(0xffffffff, 0xffffffff)).toBe('-1');
    expect(uint64String(0x5a4d2800, 0x18786b1f)).toBe(String(0x18786b1f5a4d2800n));
  });

  it('prefixes submessages with their length, however long they grow', () => {
    for (const size of [0, 1, 127, 128, 16383, 16384, 3_000_000]) {
      const w = new WireWriter(8);
      w.tag(1, 2);
      const mark = w.beginMessage();
      w.tag(1, 2);
      w.bytes(Buffer.alloc(size, 7));
      w.endMessage(mark);
      const r = new WireReader(Buffer.from(w.finish()));
      expect(r.uint32()).toBe(0x0a);
      const len = r.length();
      expect(r.pos + len).toBe(r.end);
    }
  });

  it('refuses truncated varints and lengths that run past the message', () => {
    expect(() => new WireReader(Buffer.from([0x80, 0x80])).uint32()).toThrow(WireError);
    expect(() => new WireReader(Buffer.from([0x05, 1, 2])).length()).toThrow(/runs past the end/);
    expect(() => new WireReader(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])).skipVarint()).toThrow(/longer than 10 bytes/);
  });
});

describe('OTLP/JSON and protobuf', () => {
  const root = protobufjsRoot();
  const cases: [string, OtlpJson][] = [
    ['ExportTraceServiceRequest', traceRequest({ spans: 40, spansPerTrace: 8 })],
    ['ExportLogsServiceRequest', logsRequest({ records: 40 })],
    ['ExportMetricsServiceRequest', metricsRequest({ series: 5 })],
  ];

  for (const [type, request] of cases) {
    it(`${type}: JSON -> protobuf -> JSON gives back the request`, () => {
      const bytes = jsonToProto(type, request);
      expect(protoToJson(type, bytes)).toEqual(normalized(request));
    });

    it(`${type}: the protobuf decodes with protobufjs to the same values`, () => {
      const bytes = jsonToProto(type, request);
      const decoded = root.lookupType(`otlp.${type}`).toObject(root.lookupType(`otlp.${type}`).decode(bytes), {
        longs: String, bytes: String, defaults: false, arrays: true,
      });
      // protobufjs prints all bytes in base64; ours prints ids in hex. Compare a span/log/point deep inside.
      const ours = protoToJson(type, bytes);
      expect(JSON.stringify(Object.keys(decoded))).toBe(JSON.stringify(Object.keys(ours)));
      const reEncoded = root.lookupType(`otlp.${type}`).encode(root.lookupType(`otlp.${type}`).decode(bytes)).finish();
      expect(protoToJson(type, Buffer.from(reEncoded))).toEqual(ours);
    });
  }

  it('accepts .proto field names, numbers for 64-bit integers and ignores unknown fields', () => {
    const bytes = jsonToProto('ExportTraceServiceRequest', {
      resource_spans: [{
        scope_spans: [{
          spans: [{ trace_id: '0102030405060708090a0b0c0d0e0f10', span_id: 'AABBCCDDEEFF0011', start_time_unix_nano: 1700000000000000000, name: 'x', color: 'blue' }],
        }],
      }],
    });
    expect(protoToJson('ExportTraceServiceRequest', bytes)).toEqual({
      resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: '0102030405060708090a0b0c0d0e0f10', spanId: 'aabbccddeeff0011', startTimeUnixNano: '1700000000000000000', name: 'x' }] }] }],
    });
  });

  it('keeps zero values of oneof members (an attribute whose value is 0 or "")', () => {
    const kv = { key: 'k', value: { intValue: '0' } };
    expect(protoToJson('KeyValue', jsonToProto('KeyValue', kv))).toEqual(kv);
    const empty = { key: 'k', value: { stringValue: '' } };
    expect(protoToJson('KeyValue', jsonToProto('KeyValue', empty))).toEqual(empty);
  });

  it('says where a JSON body does not map onto OTLP', () => {
    const bad = (value: unknown) => () => jsonToProto('ExportTraceServiceRequest', value);
    expect(bad({ resourceSpans: {} })).toThrow(/resourceSpans: want an array/);
    expect(bad({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: 'xyz' }] }] }] })).toThrow(/resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.traceId: .*not a hex string/);
    expect(bad({ resourceSpans: [{ scopeSpans: [{ spans: [{ kind: 'SPAN_KIND_SERVER' }] }] }] })).toThrow(/enum values are integers/);
    expect(bad({ resourceSpans: [{ scopeSpans: [{ spans: [{ startTimeUnixNano: '12abc' }] }] }] })).toThrow(JsonMappingError);
    expect(bad([1, 2])).toThrow(/want an object/);
  });
});

/** The request as protoToJson prints it: 64-bit integers as strings, ids lower-case, empty objects kept. */
function normalized(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (key, v) => {
    if (typeof v === 'number' && /UnixNano$|^count$|^zeroCount$|^asInt$|^intValue$/.test(key)) return String(v);
    return v;
  }));
}
