// Partition specs and values as Iceberg defines them: hour(ts) is hours since the epoch,
// identity keeps the value, bucket hashes with murmur3 (test vectors from the table spec's
// Appendix B), truncate rounds down; and the Hive-style directory of a partition.
import { describe, expect, it } from 'vitest';
import {
  bindPartitionSpec, buildPartitionSpec, murmur3x86_32, parsePartitionExpression, partitionPath, partitionRecord,
} from '../../../connectors/table/iceberg/partitioning.ts';
import { compareValues, fromSingleValueBinary, toSingleValueBinary } from '../../../connectors/table/iceberg/values.ts';
import type { IcebergSchema } from '../../../connectors/table/iceberg/types.ts';

const schema: IcebergSchema = {
  type: 'struct',
  'schema-id': 0,
  fields: [
    { id: 1, name: 'timestamp', required: true, type: 'timestamptz' },
    { id: 2, name: 'service_name', required: false, type: 'string' },
    { id: 3, name: 'severity', required: false, type: 'int' },
    { id: 4, name: 'day', required: false, type: 'date' },
    { id: 5, name: 'resource', required: false, type: { type: 'struct', fields: [{ id: 6, name: 'host', required: false, type: 'string' }] } },
    { id: 7, name: 'count', required: false, type: 'long' },
  ],
};

const micros = (iso: string): number => Date.parse(iso) * 1000;

describe('partition specs', () => {
  it('parses transforms, Spark-style plurals, bucket widths and aliases', () => {
    expect(parsePartitionExpression('hour(timestamp)')).toEqual({ transform: { kind: 'hour' }, column: 'timestamp', alias: undefined });
    expect(parsePartitionExpression('days(ts)').transform).toEqual({ kind: 'day' });
    expect(parsePartitionExpression('service_name')).toEqual({ transform: { kind: 'identity' }, column: 'service_name', alias: undefined });
    expect(parsePartitionExpression('bucket(16, id)').transform).toEqual({ kind: 'bucket', width: 16 });
    expect(parsePartitionExpression('bucket[16](id)').transform).toEqual({ kind: 'bucket', width: 16 });
    expect(parsePartitionExpression('identity(resource.host) AS host').alias).toBe('host');
    expect(() => parsePartitionExpression('minute(ts)')).toThrow(/unknown partition transform/);
    expect(() => parsePartitionExpression('bucket(ts)')).toThrow(/positive width/);
  });

  it('assigns partition field ids from 1000 and Java default names', () => {
    const spec = buildPartitionSpec(schema, ['hour(timestamp)', 'identity(service_name)', 'bucket(8, severity)', 'truncate(10, count)', 'resource.host']);
    expect(spec).toEqual({
      'spec-id': 0,
      fields: [
        { 'source-id': 1, 'field-id': 1000, name: 'timestamp_hour', transform: 'hour' },
        { 'source-id': 2, 'field-id': 1001, name: 'service_name', transform: 'identity' },
        { 'source-id': 3, 'field-id': 1002, name: 'severity_bucket', transform: 'bucket[8]' },
        { 'source-id': 7, 'field-id': 1003, name: 'count_trunc', transform: 'truncate[10]' },
        { 'source-id': 6, 'field-id': 1004, name: 'resource_host', transform: 'identity' },
      ],
    });
  });

  it('rejects unknown columns and transforms that do not fit the column type', () => {
    expect(() => buildPartitionSpec(schema, ['hour(nope)'])).toThrow(/no column nope/);
    expect(() => buildPartitionSpec(schema, ['hour(service_name)'])).toThrow(/does not apply to string/);
    expect(() => buildPartitionSpec(schema, ['hour(day)'])).toThrow(/does not apply to date/);
    expect(() => buildPartitionSpec(schema, ['service_name', 'identity(service_name)'])).toThrow(/defined twice/);
  });
});

describe('partition values', () => {
  const bound = bindPartitionSpec(schema, buildPartitionSpec(schema, ['hour(timestamp)', 'identity(service_name)']));
  const [hour, service] = bound.fields;

  it('hour(timestamp) is whole hours since 1970-01-01T00:00Z, an int', () => {
    expect(hour!.resultType).toBe('int');
    expect(hour!.apply(micros('1970-01-01T00:59:59.999Z'))).toBe(0);
    expect(hour!.apply(micros('1970-01-01T01:00:00Z'))).toBe(1);
    expect(hour!.apply(micros('2026-11-21T10:15:30.123Z'))).toBe(Date.UTC(2026, 10, 21, 10) / 3_600_000);
    expect(hour!.apply(BigInt(micros('2026-11-21T10:15:30Z')))).toBe(Date.UTC(2026, 10, 21, 10) / 3_600_000);
    expect(hour!.apply(micros('1969-12-31T23:30:00Z'))).toBe(-1);
    expect(hour!.apply(null)).toBeNull();
  });

  it('identity(service_name) keeps the string', () => {
    expect(service!.resultType).toBe('string');
    expect(service!.apply('checkout')).toBe('checkout');
    expect(service!.apply(null)).toBeNull();
  });

  it('the path is Hive-style with Java human strings', () => {
    const values = [hour!.apply(micros('2026-11-21T10:15:30Z')), service!.apply('checkout')];
    expect(partitionPath(bound, values)).toBe('timestamp_hour=2026-11-21-10/service_name=checkout');
    expect(partitionRecord(bound, values)).toEqual({ timestamp_hour: values[0], service_name: 'checkout' });
    expect(partitionPath(bound, [null, null])).toBe('timestamp_hour=null/service_name=null');
  });

  it('path segments never need escaping', () => {
    expect(partitionPath(bound, [0, 'a/b c%d?é'])).toBe('timestamp_hour=1970-01-01-00/service_name=a_b_c_d__');
  });

  it('day, month and year count from the epoch; day shows as a date', () => {
    const spec = bindPartitionSpec(schema, buildPartitionSpec(schema, ['day(timestamp)', 'month(timestamp)', 'year(timestamp)', 'day(day)']));
    const ts = micros('2026-11-21T10:15:30Z');
    const values = spec.fields.map((f, i) => f.apply(i === 3 ? 20_000 : ts));
    expect(values).toEqual([Date.UTC(2026, 10, 21) / 86_400_000, (2026 - 1970) * 12 + 10, 2026 - 1970, 20_000]);
    expect(spec.fields[0]!.resultType).toBe('date');
    expect(partitionPath(spec, values)).toBe('timestamp_day=2026-11-21/timestamp_month=2026-11/timestamp_year=2026/day_day=2024-10-04');
  });

  it('bucket hashes with murmur3 x86 32 as the spec test vectors say', () => {
    const le = (n: number): Buffer => { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(n)); return b; };
    expect(murmur3x86_32(le(34))).toBe(2017239379);
    expect(murmur3x86_32(Buffer.from('iceberg'))).toBe(1210000089);
    expect(murmur3x86_32(le(17486))).toBe(-653330422); // date 2017-11-16
    expect(murmur3x86_32(le(micros('2017-11-16T22:31:08Z')))).toBe(-2047944441);
    expect(murmur3x86_32(le(micros('2017-11-16T22:31:08Z') + 1))).toBe(-1207196810);
    expect(murmur3x86_32(Buffer.from([0, 1, 2, 3]))).toBe(-188683207);
    const spec = bindPartitionSpec(schema, buildPartitionSpec(schema, ['bucket(16, severity)', 'bucket(16, service_name)']));
    expect(spec.fields[0]!.apply(34)).toBe((2017239379 & 0x7fffffff) % 16);
    expect(spec.fields[1]!.apply('iceberg')).toBe((1210000089 & 0x7fffffff) % 16);
  });

  it('truncate rounds toward negative infinity and cuts strings by code points', () => {
    const spec = bindPartitionSpec(schema, buildPartitionSpec(schema, ['truncate(10, severity)', 'truncate(3, service_name)']));
    expect(spec.fields[0]!.apply(1)).toBe(0);
    expect(spec.fields[0]!.apply(-1)).toBe(-10);
    expect(spec.fields[1]!.apply('iceberg')).toBe('ice');
    expect(spec.fields[1]!.apply('🧊🧊🧊🧊')).toBe('🧊🧊🧊');
  });
});

describe('single-value serialization (spec Appendix D)', () => {
  it('writes little-endian ints and longs, UTF-8 strings, IEEE doubles', () => {
    expect(toSingleValueBinary('int', 1).toString('hex')).toBe('01000000');
    expect(toSingleValueBinary('date', -1).toString('hex')).toBe('ffffffff');
    expect(toSingleValueBinary('timestamptz', 1).toString('hex')).toBe('0100000000000000');
    expect(toSingleValueBinary('long', -2).toString('hex')).toBe('feffffffffffffff');
    expect(toSingleValueBinary('string', 'é').toString('hex')).toBe('c3a9');
    expect(toSingleValueBinary('double', 1).toString('hex')).toBe('000000000000f03f');
    expect(toSingleValueBinary('boolean', true).toString('hex')).toBe('01');
    for (const [type, v] of [['int', -7], ['long', 2 ** 40], ['string', 'checkout'], ['double', 0.5], ['boolean', false]] as const) {
      expect(fromSingleValueBinary(type, toSingleValueBinary(type, v))).toBe(v);
    }
  });

  it('orders strings by code point, not UTF-16 unit', () => {
    expect(compareValues('\u{ff61}', '\u{1f9ca}')).toBeLessThan(0);
    expect(compareValues(2, 10)).toBeLessThan(0);
  });
});
