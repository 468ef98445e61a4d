// Manifests and manifest lists are Avro container files that another Avro reader (avsc's own
// BlockDecoder here) decodes, whose embedded schema carries the Iceberg field ids and record
// names of the spec, and whose key-value metadata has what v2 requires.
import { Readable } from 'node:stream';
import avsc from 'avsc';
import { describe, expect, it } from 'vitest';
import { decodeAvroFile, encodeAvroFile } from '../../../connectors/table/iceberg/avro.ts';
import {
  EntryStatus, decodeManifest, decodeManifestList, encodeManifest, encodeManifestList, summarizeManifest,
} from '../../../connectors/table/iceberg/manifest.ts';
import type { DataFile, ManifestEntry } from '../../../connectors/table/iceberg/manifest.ts';
import { bindPartitionSpec, buildPartitionSpec } from '../../../connectors/table/iceberg/partitioning.ts';
import type { IcebergSchema } from '../../../connectors/table/iceberg/types.ts';

const schema: IcebergSchema = {
  type: 'struct',
  'schema-id': 0,
  fields: [
    { id: 1, name: 'timestamp', required: true, type: 'timestamptz' },
    { id: 2, name: 'service_name', required: false, type: 'string' },
    { id: 3, name: 'body', required: false, type: 'string' },
  ],
};
const bound = bindPartitionSpec(schema, buildPartitionSpec(schema, ['hour(timestamp)', 'identity(service_name)']));

const file = (name: string, hour: number, service: string | null, rows: number): DataFile => ({
  path: `s3://bucket/tables/otel/logs/data/${name}.parquet`,
  format: 'PARQUET',
  partition: { timestamp_hour: hour, service_name: service },
  recordCount: rows,
  fileSizeBytes: rows * 10,
  columnSizes: new Map([[1, 80], [2, 30]]),
  valueCounts: new Map([[1, rows], [2, rows]]),
  nullValueCounts: new Map([[1, 0], [2, 1]]),
  lowerBounds: new Map([[2, Buffer.from('a')]]),
  upperBounds: new Map([[2, Buffer.from('z')]]),
});

const entries: ManifestEntry[] = [
  { status: EntryStatus.ADDED, snapshotId: 77, sequenceNumber: null, fileSequenceNumber: null, file: file('a', 500_000, 'checkout', 10) },
  { status: EntryStatus.EXISTING, snapshotId: 66, sequenceNumber: 3, fileSequenceNumber: 3, file: file('b', 499_999, null, 5) },
  { status: EntryStatus.DELETED, snapshotId: 77, sequenceNumber: 2, fileSequenceNumber: 2, file: file('c', 500_001, 'cart', 7) },
];

interface DecodedWithAvsc { header: { meta: Record<string, Buffer> }; records: Array<Record<string, unknown>> }

async function decodeWithAvsc(bytes: Buffer): Promise<DecodedWithAvsc> {
  const decoder = new avsc.streams.BlockDecoder();
  const records: Array<Record<string, unknown>> = [];
  let header: DecodedWithAvsc['header'] | undefined;
  decoder.on('metadata', (_type: unknown, _codec: string, h: DecodedWithAvsc['header']) => { header = h; });
  decoder.on('data', (r: Record<string, unknown>) => records.push(r));
  await new Promise<void>((resolve, reject) => {
    decoder.on('end', resolve);
    decoder.on('error', reject);
    Readable.from([bytes]).pipe(decoder);
  });
  return { header: header!, records };
}

type Field = { name: string; type: unknown; 'field-id'?: number; default?: unknown };
const fieldOf = (record: unknown, name: string): Field => (record as { fields: Field[] }).fields.find((f) => f.name === name)!;
const nonNull = (type: unknown): Record<string, unknown> => (Array.isArray(type) ? type.find((t) => t !== 'null') : type) as Record<string, unknown>;

describe('manifest files', () => {
  it('another Avro reader decodes a manifest and finds the v2 key-value metadata', async () => {
    const bytes = encodeManifest(entries, { schema, bound });
    const { header, records } = await decodeWithAvsc(bytes);
    const meta = Object.fromEntries(Object.entries(header.meta).map(([k, v]) => [k, v.toString()]));
    expect(meta['avro.codec']).toBe('deflate');
    expect(JSON.parse(meta.schema!)).toEqual(schema);
    expect(meta['schema-id']).toBe('0');
    expect(JSON.parse(meta['partition-spec']!)).toEqual(bound.spec.fields);
    expect(meta['partition-spec-id']).toBe('0');
    expect(meta['format-version']).toBe('2');
    expect(meta.content).toBe('data');
    expect(records).toHaveLength(3);
    const first = records[0]!;
    expect(first.status).toBe(1);
    expect(first.snapshot_id).toBe(77);
    expect(first.sequence_number).toBeNull();
    const dataFile = first.data_file as Record<string, unknown>;
    expect(dataFile.file_path).toBe('s3://bucket/tables/otel/logs/data/a.parquet');
    expect(dataFile.file_format).toBe('PARQUET');
    expect(dataFile.content).toBe(0);
    expect({ ...(dataFile.partition as object) }).toEqual({ timestamp_hour: 500_000, service_name: 'checkout' });
    expect((dataFile.column_sizes as Array<{ key: number; value: number }>).map((kv) => [kv.key, kv.value])).toEqual([[1, 80], [2, 30]]);
  });

  it('the embedded Avro schema carries the spec field ids and record names', async () => {
    const { header } = await decodeWithAvsc(encodeManifest(entries, { schema, bound }));
    const avroSchema = JSON.parse(header.meta['avro.schema']!.toString()) as Record<string, unknown>;
    expect(avroSchema.name).toBe('manifest_entry');
    const ids = (record: unknown): Record<string, number | undefined> =>
      Object.fromEntries((record as { fields: Field[] }).fields.map((f) => [f.name, f['field-id']]));
    expect(ids(avroSchema)).toEqual({ status: 0, snapshot_id: 1, sequence_number: 3, file_sequence_number: 4, data_file: 2 });
    expect(fieldOf(avroSchema, 'snapshot_id')).toMatchObject({ type: ['null', 'long'], default: null });
    const dataFile = fieldOf(avroSchema, 'data_file').type as Record<string, unknown>;
    expect(dataFile.name).toBe('r2');
    expect(ids(dataFile)).toEqual({
      content: 134, file_path: 100, file_format: 101, partition: 102, record_count: 103, file_size_in_bytes: 104,
      column_sizes: 108, value_counts: 109, null_value_counts: 110, nan_value_counts: 137, lower_bounds: 125,
      upper_bounds: 128, key_metadata: 131, split_offsets: 132, equality_ids: 135, sort_order_id: 140,
    });
    const partition = fieldOf(dataFile, 'partition').type as Record<string, unknown>;
    expect(partition.name).toBe('r102');
    expect(ids(partition)).toEqual({ timestamp_hour: 1000, service_name: 1001 });
    expect(fieldOf(partition, 'timestamp_hour').type).toEqual(['null', 'int']);
    const columnSizes = nonNull(fieldOf(dataFile, 'column_sizes').type);
    expect(columnSizes.type).toBe('array');
    expect(columnSizes.logicalType).toBe('map');
    expect(columnSizes.items).toEqual({
      type: 'record', name: 'k117_v118',
      fields: [{ name: 'key', type: 'int', 'field-id': 117 }, { name: 'value', type: 'long', 'field-id': 118 }],
    });
    expect((nonNull(fieldOf(dataFile, 'lower_bounds').type).items as { name: string }).name).toBe('k126_v127');
    expect(nonNull(fieldOf(dataFile, 'split_offsets').type)['element-id']).toBe(133);
  });

  it('decodes back with inherited sequence numbers and snapshot ids for added entries', () => {
    const bytes = encodeManifest(entries, { schema, bound });
    const listed = summarizeManifest(entries, bound, { path: 'm', lengthBytes: bytes.length, snapshotId: 77, sequenceNumber: 9 });
    const decoded = decodeManifest(bytes, listed);
    expect(decoded.map((e) => [e.status, e.snapshotId, e.sequenceNumber, e.fileSequenceNumber])).toEqual([[1, 77, 9, 9], [0, 66, 3, 3], [2, 77, 2, 2]]);
    expect(decoded[0]!.file).toEqual(entries[0]!.file);
    expect(decoded[1]!.file.partition).toEqual({ timestamp_hour: 499_999, service_name: null });
  });

  it('a partition field name that Avro cannot hold is sanitized and read back by field id', () => {
    const odd: IcebergSchema = { ...schema, fields: [...schema.fields, { id: 9, name: 'k8s.pod', required: false, type: 'string' }] };
    const oddBound = bindPartitionSpec(odd, buildPartitionSpec(odd, ['identity(service_name) as 9lives']));
    const e: ManifestEntry = { ...entries[0]!, file: { ...entries[0]!.file, partition: { '9lives': 'x' } } };
    const bytes = encodeManifest([e], { schema: odd, bound: oddBound });
    const listed = summarizeManifest([e], oddBound, { path: 'm', lengthBytes: bytes.length, snapshotId: 77, sequenceNumber: 1 });
    expect(decodeManifest(bytes, listed)[0]!.file.partition).toEqual({ '9lives': 'x' });
  });
});

describe('manifest lists', () => {
  it('another Avro reader decodes a list; counts, sequence numbers and partition bounds are there', async () => {
    const listed = summarizeManifest(entries, bound, { path: 's3://bucket/m0.avro', lengthBytes: 1234, snapshotId: 77, sequenceNumber: 9 });
    expect(listed).toMatchObject({
      addedFilesCount: 1, existingFilesCount: 1, deletedFilesCount: 1, addedRowsCount: 10, existingRowsCount: 5, deletedRowsCount: 7,
      minSequenceNumber: 3, sequenceNumber: 9,
    });
    const bytes = encodeManifestList([listed], { snapshotId: 77, parentSnapshotId: 66, sequenceNumber: 9 });
    const { header, records } = await decodeWithAvsc(bytes);
    const meta = Object.fromEntries(Object.entries(header.meta).map(([k, v]) => [k, v.toString()]));
    expect(meta).toMatchObject({ 'snapshot-id': '77', 'parent-snapshot-id': '66', 'sequence-number': '9', 'format-version': '2' });
    const avroSchema = JSON.parse(meta['avro.schema']!) as Record<string, unknown>;
    expect(avroSchema.name).toBe('manifest_file');
    expect(Object.fromEntries((avroSchema as { fields: Field[] }).fields.map((f) => [f.name, f['field-id']]))).toEqual({
      manifest_path: 500, manifest_length: 501, partition_spec_id: 502, content: 517, sequence_number: 515,
      min_sequence_number: 516, added_snapshot_id: 503, added_files_count: 504, existing_files_count: 505,
      deleted_files_count: 506, added_rows_count: 512, existing_rows_count: 513, deleted_rows_count: 514,
      partitions: 507, key_metadata: 519,
    });
    const partitions = nonNull(fieldOf(avroSchema, 'partitions').type);
    expect(partitions['element-id']).toBe(508);
    expect((partitions.items as { name: string }).name).toBe('r508');
    expect((partitions.items as { fields: Field[] }).fields.map((f) => [f.name, f['field-id']])).toEqual([
      ['contains_null', 509], ['contains_nan', 518], ['lower_bound', 510], ['upper_bound', 511],
    ]);
    expect(records[0]).toMatchObject({ manifest_path: 's3://bucket/m0.avro', manifest_length: 1234, sequence_number: 9, added_snapshot_id: 77 });
    const summaries = records[0]!.partitions as Array<Record<string, unknown>>;
    expect((summaries[0]!.lower_bound as Buffer).readInt32LE()).toBe(499_999);
    expect((summaries[0]!.upper_bound as Buffer).readInt32LE()).toBe(500_001);
    expect(summaries[1]).toMatchObject({ contains_null: true, contains_nan: false });
    expect((summaries[1]!.lower_bound as Buffer).toString()).toBe('cart');
    expect((summaries[1]!.upper_bound as Buffer).toString()).toBe('checkout');
    expect(decodeManifestList(bytes)).toEqual([listed]);
  });

  it('reads lists whose field names differ, by field id', () => {
    const renamed = JSON.parse(JSON.stringify({
      type: 'record', name: 'manifest_file', fields: [
        { name: 'manifest_path', type: 'string', 'field-id': 500 },
        { name: 'manifest_length', type: 'long', 'field-id': 501 },
        { name: 'partition_spec_id', type: 'int', 'field-id': 502 },
        { name: 'added_snapshot_id', type: ['null', 'long'], default: null, 'field-id': 503 },
        { name: 'added_data_files_count', type: ['null', 'int'], default: null, 'field-id': 504 },
      ],
    })) as Record<string, unknown>;
    const bytes = encodeAvroFile(renamed, [{ manifest_path: 'p', manifest_length: 1, partition_spec_id: 0, added_snapshot_id: 5, added_data_files_count: 3 }], {}, 'null');
    expect(decodeManifestList(bytes)[0]).toMatchObject({ path: 'p', addedSnapshotId: 5, addedFilesCount: 3, sequenceNumber: 0 });
  });
});

describe('Avro container', () => {
  it('splits many records into blocks and reads them back', () => {
    const records = Array.from({ length: 30_000 }, (_, i) => ({ n: i, s: 'x'.repeat(50) }));
    const bytes = encodeAvroFile({ type: 'record', name: 'r', fields: [{ name: 'n', type: 'long' }, { name: 's', type: 'string' }] }, records, { k: 'v' });
    const decoded = decodeAvroFile(bytes);
    expect(decoded.metadata).toEqual({ k: 'v' });
    expect(decoded.records).toHaveLength(30_000);
    expect(decoded.records[29_999]).toEqual(records[29_999]);
  });

  it('rejects a corrupt sync marker', () => {
    const bytes = encodeAvroFile({ type: 'record', name: 'r', fields: [{ name: 'n', type: 'long' }] }, [{ n: 1 }], {}, 'null');
    bytes[bytes.length - 1] ^= 0xff;
    expect(() => decodeAvroFile(bytes)).toThrow(/sync marker/);
  });
});
