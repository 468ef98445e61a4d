// Iceberg v2 manifests and manifest lists as Avro (table spec, "Manifests" and "Manifest
// Lists"; Avro mapping in "Appendix A"). Field ids as the spec assigns them:
//
//   manifest_entry: status 0, snapshot_id 1, sequence_number 3, file_sequence_number 4,
//     data_file 2 (record r2): content 134, file_path 100, file_format 101, partition 102
//     (record r102, one optional field per partition field, id = partition field id),
//     record_count 103, file_size_in_bytes 104, column_sizes 108 <117,118>, value_counts 109
//     <119,120>, null_value_counts 110 <121,122>, nan_value_counts 137 <138,139>, lower_bounds
//     125 <126,127>, upper_bounds 128 <129,130>, key_metadata 131, split_offsets 132 <133>,
//     equality_ids 135 <136>, sort_order_id 140
//   manifest_file: manifest_path 500, manifest_length 501, partition_spec_id 502, content 517,
//     sequence_number 515, min_sequence_number 516, added_snapshot_id 503, added_files_count
//     504, existing_files_count 505, deleted_files_count 506, added_rows_count 512,
//     existing_rows_count 513, deleted_rows_count 514, partitions 507 (list, element 508 =
//     record r508: contains_null 509, contains_nan 518, lower_bound 510, upper_bound 511),
//     key_metadata 519
//
// Maps with int keys are arrays of k<key id>_v<value id> records with logicalType map; optional
// fields are ["null", T] with default null. A manifest's Avro key-value metadata carries
// schema, schema-id, partition-spec (fields array), partition-spec-id, format-version and
// content (v2: all required). A manifest list's carries snapshot-id, parent-snapshot-id,
// sequence-number and format-version (as Java's ManifestListWriter.V2Writer writes them).

import { decodeAvroFile, encodeAvroFile, fieldNamesById } from './avro.ts';
import type { AvroSchemaJson } from './avro.ts';
import type { BoundPartitionSpec, PartitionValue } from './partitioning.ts';
import { compareValues, toSingleValueBinary } from './values.ts';
import type { IcebergPrimitive, IcebergSchema } from './types.ts';

/** Manifest entry status (spec: 0 EXISTING, 1 ADDED, 2 DELETED). */
export const EntryStatus = { EXISTING: 0, ADDED: 1, DELETED: 2 } as const;
export type EntryStatus = (typeof EntryStatus)[keyof typeof EntryStatus];

export type DataFileFormat = 'PARQUET' | 'AVRO' | 'ORC';

/** One data file as a manifest tracks it. Maps are keyed by column (field) id. */
export interface DataFile {
  /** Full location URI (file:///..., s3://bucket/...). */
  path: string;
  format: DataFileFormat;
  /** Partition values by partition field name. */
  partition: Record<string, PartitionValue>;
  recordCount: number;
  fileSizeBytes: number;
  columnSizes?: Map<number, number>;
  valueCounts?: Map<number, number>;
  nullValueCounts?: Map<number, number>;
  nanValueCounts?: Map<number, number>;
  /** Single-value serialized bounds (values.ts). */
  lowerBounds?: Map<number, Buffer>;
  upperBounds?: Map<number, Buffer>;
  /** Row group offsets, ascending. */
  splitOffsets?: number[];
  sortOrderId?: number;
}

export interface ManifestEntry {
  status: EntryStatus;
  /** Snapshot that added (or, for DELETED, deleted) the file. */
  snapshotId: number;
  /** Data sequence number; null in a new manifest's ADDED entries (inherited on read). */
  sequenceNumber: number | null;
  /** File sequence number; null like sequenceNumber. */
  fileSequenceNumber: number | null;
  file: DataFile;
}

export interface FieldSummary {
  containsNull: boolean;
  containsNan: boolean | null;
  lowerBound: Buffer | null;
  upperBound: Buffer | null;
}

/** One entry of a manifest list. */
export interface ManifestFile {
  path: string;
  lengthBytes: number;
  partitionSpecId: number;
  /** 0 data, 1 deletes. */
  content: 0 | 1;
  sequenceNumber: number;
  minSequenceNumber: number;
  addedSnapshotId: number;
  addedFilesCount: number;
  existingFilesCount: number;
  deletedFilesCount: number;
  addedRowsCount: number;
  existingRowsCount: number;
  deletedRowsCount: number;
  partitions: FieldSummary[] | null;
}

// ---- Avro schemas ----

function optional(name: string, fieldId: number, type: AvroSchemaJson): AvroSchemaJson {
  return { name, type: ['null', type], default: null, 'field-id': fieldId };
}

function intMap(name: string, fieldId: number, keyId: number, valueId: number, valueType: 'long' | 'bytes'): AvroSchemaJson {
  return optional(name, fieldId, {
    type: 'array',
    logicalType: 'map',
    items: {
      type: 'record',
      name: `k${keyId}_v${valueId}`,
      fields: [
        { name: 'key', type: 'int', 'field-id': keyId },
        { name: 'value', type: valueType, 'field-id': valueId },
      ],
    },
  });
}

/** The Avro type of a partition value of an Iceberg primitive type (spec Appendix A). */
function avroTypeOf(type: IcebergPrimitive): AvroSchemaJson {
  switch (type) {
    case 'date': return { type: 'int', logicalType: 'date' };
    case 'time': return { type: 'long', logicalType: 'time-micros' };
    case 'timestamp': return { type: 'long', logicalType: 'timestamp-micros', 'adjust-to-utc': false };
    case 'timestamptz': return { type: 'long', logicalType: 'timestamp-micros', 'adjust-to-utc': true };
    case 'binary': return 'bytes';
    case 'uuid': throw new Error('uuid partition values are not supported');
    default: return type;
  }
}

/** An Avro-compatible name, sanitized like Java's AvroSchemaUtil.makeCompatibleName. */
export function avroName(name: string): string {
  let out = /^[A-Za-z_]/.test(name) ? '' : '_';
  for (const ch of name) out += /[A-Za-z0-9_]/.test(ch) ? ch : `_x${ch.codePointAt(0)!.toString(16).toUpperCase()}`;
  return out;
}

export function manifestEntrySchema(bound: BoundPartitionSpec): AvroSchemaJson {
  const partition = {
    type: 'record',
    name: 'r102',
    fields: bound.fields.map((f) => optional(avroName(f.field.name), f.field['field-id'], avroTypeOf(f.resultType))),
  };
  return {
    type: 'record',
    name: 'manifest_entry',
    fields: [
      { name: 'status', type: 'int', 'field-id': 0 },
      optional('snapshot_id', 1, 'long'),
      optional('sequence_number', 3, 'long'),
      optional('file_sequence_number', 4, 'long'),
      {
        name: 'data_file',
        'field-id': 2,
        type: {
          type: 'record',
          name: 'r2',
          fields: [
            { name: 'content', type: 'int', 'field-id': 134 },
            { name: 'file_path', type: 'string', 'field-id': 100 },
            { name: 'file_format', type: 'string', 'field-id': 101 },
            { name: 'partition', type: partition, 'field-id': 102 },
            { name: 'record_count', type: 'long', 'field-id': 103 },
            { name: 'file_size_in_bytes', type: 'long', 'field-id': 104 },
            intMap('column_sizes', 108, 117, 118, 'long'),
            intMap('value_counts', 109, 119, 120, 'long'),
            intMap('null_value_counts', 110, 121, 122, 'long'),
            intMap('nan_value_counts', 137, 138, 139, 'long'),
            intMap('lower_bounds', 125, 126, 127, 'bytes'),
            intMap('upper_bounds', 128, 129, 130, 'bytes'),
            optional('key_metadata', 131, 'bytes'),
            optional('split_offsets', 132, { type: 'array', items: 'long', 'element-id': 133 }),
            optional('equality_ids', 135, { type: 'array', items: 'int', 'element-id': 136 }),
            optional('sort_order_id', 140, 'int'),
          ],
        },
      },
    ],
  };
}

export const MANIFEST_LIST_SCHEMA: AvroSchemaJson = {
  type: 'record',
  name: 'manifest_file',
  fields: [
    { name: 'manifest_path', type: 'string', 'field-id': 500 },
    { name: 'manifest_length', type: 'long', 'field-id': 501 },
    { name: 'partition_spec_id', type: 'int', 'field-id': 502 },
    { name: 'content', type: 'int', 'field-id': 517 },
    { name: 'sequence_number', type: 'long', 'field-id': 515 },
    { name: 'min_sequence_number', type: 'long', 'field-id': 516 },
    { name: 'added_snapshot_id', type: 'long', 'field-id': 503 },
    { name: 'added_files_count', type: 'int', 'field-id': 504 },
    { name: 'existing_files_count', type: 'int', 'field-id': 505 },
    { name: 'deleted_files_count', type: 'int', 'field-id': 506 },
    { name: 'added_rows_count', type: 'long', 'field-id': 512 },
    { name: 'existing_rows_count', type: 'long', 'field-id': 513 },
    { name: 'deleted_rows_count', type: 'long', 'field-id': 514 },
    optional('partitions', 507, {
      type: 'array',
      'element-id': 508,
      items: {
        type: 'record',
        name: 'r508',
        fields: [
          { name: 'contains_null', type: 'boolean', 'field-id': 509 },
          optional('contains_nan', 518, 'boolean'),
          optional('lower_bound', 510, 'bytes'),
          optional('upper_bound', 511, 'bytes'),
        ],
      },
    }),
    optional('key_metadata', 519, 'bytes'),
  ],
};

// ---- manifests ----

export interface ManifestWriteContext {
  schema: IcebergSchema;
  bound: BoundPartitionSpec;
}

/** Encodes a data manifest (its manifest-list entry comes from summarizeManifest). */
export function encodeManifest(entries: readonly ManifestEntry[], ctx: ManifestWriteContext): Buffer {
  const partitionNames = ctx.bound.fields.map((f) => [f.field.name, avroName(f.field.name)] as const);
  const records = entries.map((e) => ({
    status: e.status,
    snapshot_id: e.snapshotId,
    sequence_number: e.sequenceNumber,
    file_sequence_number: e.fileSequenceNumber,
    data_file: dataFileRecord(e.file, partitionNames),
  }));
  return encodeAvroFile(manifestEntrySchema(ctx.bound), records, {
    schema: JSON.stringify(ctx.schema),
    'schema-id': String(ctx.schema['schema-id']),
    'partition-spec': JSON.stringify(ctx.bound.spec.fields),
    'partition-spec-id': String(ctx.bound.spec['spec-id']),
    'format-version': '2',
    content: 'data',
  });
}

function dataFileRecord(f: DataFile, partitionNames: ReadonlyArray<readonly [string, string]>): Record<string, unknown> {
  const partition: Record<string, PartitionValue> = {};
  for (const [name, avro] of partitionNames) partition[avro] = f.partition[name] ?? null;
  return {
    content: 0,
    file_path: f.path,
    file_format: f.format,
    partition,
    record_count: f.recordCount,
    file_size_in_bytes: f.fileSizeBytes,
    column_sizes: mapToArray(f.columnSizes),
    value_counts: mapToArray(f.valueCounts),
    null_value_counts: mapToArray(f.nullValueCounts),
    nan_value_counts: mapToArray(f.nanValueCounts),
    lower_bounds: mapToArray(f.lowerBounds),
    upper_bounds: mapToArray(f.upperBounds),
    key_metadata: null,
    split_offsets: f.splitOffsets ?? null,
    equality_ids: null,
    sort_order_id: f.sortOrderId ?? null,
  };
}

function mapToArray<V>(map: Map<number, V> | undefined): Array<{ key: number; value: V }> | null {
  if (map === undefined) return null;
  return Array.from(map, ([key, value]) => ({ key, value }));
}

/**
 * Decodes a manifest; null sequence numbers and snapshot ids are inherited from its manifest
 * list entry (spec "Sequence Number Inheritance").
 */
export function decodeManifest(bytes: Buffer, listed: ManifestFile): ManifestEntry[] {
  const { schema, metadata, records } = decodeAvroFile(bytes);
  const topById = fieldNamesById(schema);
  const top = names(topById, { status: 0, snapshotId: 1, sequenceNumber: 3, fileSequenceNumber: 4, dataFile: 2 });
  const dataFileById = fieldNamesById(topById.get(2)!.type);
  const df = names(dataFileById, DATA_FILE_IDS);
  const partitionNameOf = partitionNames(fieldNamesById(dataFileById.get(102)!.type), metadata['partition-spec']);
  return records.map((raw) => {
    const r = raw as Record<string, unknown>;
    const status = r[top.status] as EntryStatus;
    // Null sequence numbers are inherited for ADDED entries only; v1 manifests have none (0).
    const inherited = status === EntryStatus.ADDED ? listed.sequenceNumber : 0;
    const seq = (r[top.sequenceNumber] as number | null | undefined) ?? inherited;
    return {
      status,
      snapshotId: (r[top.snapshotId] as number | null | undefined) ?? listed.addedSnapshotId,
      sequenceNumber: seq,
      fileSequenceNumber: (r[top.fileSequenceNumber] as number | null | undefined) ?? inherited,
      file: readDataFile(r[top.dataFile] as Record<string, unknown>, df, partitionNameOf),
    };
  });
}

const DATA_FILE_IDS = {
  path: 100, format: 101, partition: 102, recordCount: 103, fileSizeBytes: 104, columnSizes: 108, valueCounts: 109,
  nullValueCounts: 110, nanValueCounts: 137, lowerBounds: 125, upperBounds: 128, splitOffsets: 132, sortOrderId: 140,
} as const;

function names<K extends string>(byId: Map<number, { name: string }>, ids: Record<K, number>): Record<K, string> {
  const out = {} as Record<K, string>;
  for (const key of Object.keys(ids) as K[]) out[key] = byId.get(ids[key])?.name as string;
  return out;
}

/**
 * Avro partition field name -> partition field name, matched by partition field id with the
 * manifest's partition-spec metadata (Avro names are sanitized, spec names are not).
 */
function partitionNames(avroById: Map<number, { name: string }>, specJson: string | undefined): Map<string, string> {
  const specNames = new Map<number, string>();
  if (specJson !== undefined) {
    for (const f of JSON.parse(specJson) as Array<{ 'field-id'?: number; name: string }>) {
      if (f['field-id'] !== undefined) specNames.set(f['field-id'], f.name);
    }
  }
  const out = new Map<string, string>();
  for (const [id, { name }] of avroById) out.set(name, specNames.get(id) ?? name);
  return out;
}

function readDataFile(r: Record<string, unknown>, n: Record<keyof typeof DATA_FILE_IDS, string>, partitionNameOf: Map<string, string>): DataFile {
  const partitionRecord = r[n.partition] as Record<string, PartitionValue>;
  const partition: Record<string, PartitionValue> = {};
  for (const [avro, name] of partitionNameOf) partition[name] = partitionRecord[avro] ?? null;
  const file: DataFile = {
    path: r[n.path] as string,
    format: (r[n.format] as string).toUpperCase() as DataFileFormat,
    partition,
    recordCount: r[n.recordCount] as number,
    fileSizeBytes: r[n.fileSizeBytes] as number,
  };
  setMap(file, 'columnSizes', r[n.columnSizes]);
  setMap(file, 'valueCounts', r[n.valueCounts]);
  setMap(file, 'nullValueCounts', r[n.nullValueCounts]);
  setMap(file, 'nanValueCounts', r[n.nanValueCounts]);
  setMap(file, 'lowerBounds', r[n.lowerBounds]);
  setMap(file, 'upperBounds', r[n.upperBounds]);
  const offsets = r[n.splitOffsets] as number[] | null | undefined;
  if (offsets != null) file.splitOffsets = [...offsets];
  const sortOrderId = r[n.sortOrderId] as number | null | undefined;
  if (sortOrderId != null) file.sortOrderId = sortOrderId;
  return file;
}

type MapKey = 'columnSizes' | 'valueCounts' | 'nullValueCounts' | 'nanValueCounts' | 'lowerBounds' | 'upperBounds';

function setMap(file: DataFile, key: MapKey, raw: unknown): void {
  if (raw == null) return;
  const map = new Map<number, never>();
  for (const kv of raw as Array<{ key: number; value: never }>) map.set(kv.key, kv.value);
  (file as unknown as Record<MapKey, Map<number, unknown>>)[key] = map;
}

// ---- manifest lists ----

export interface ManifestListMetadata {
  snapshotId: number;
  parentSnapshotId: number | undefined;
  sequenceNumber: number;
}

export function encodeManifestList(manifests: readonly ManifestFile[], meta: ManifestListMetadata): Buffer {
  const records = manifests.map((m) => ({
    manifest_path: m.path,
    manifest_length: m.lengthBytes,
    partition_spec_id: m.partitionSpecId,
    content: m.content,
    sequence_number: m.sequenceNumber,
    min_sequence_number: m.minSequenceNumber,
    added_snapshot_id: m.addedSnapshotId,
    added_files_count: m.addedFilesCount,
    existing_files_count: m.existingFilesCount,
    deleted_files_count: m.deletedFilesCount,
    added_rows_count: m.addedRowsCount,
    existing_rows_count: m.existingRowsCount,
    deleted_rows_count: m.deletedRowsCount,
    partitions: m.partitions?.map((p) => ({ contains_null: p.containsNull, contains_nan: p.containsNan, lower_bound: p.lowerBound, upper_bound: p.upperBound })) ?? null,
    key_metadata: null,
  }));
  return encodeAvroFile(MANIFEST_LIST_SCHEMA, records, {
    'snapshot-id': String(meta.snapshotId),
    'parent-snapshot-id': meta.parentSnapshotId === undefined ? 'null' : String(meta.parentSnapshotId),
    'sequence-number': String(meta.sequenceNumber),
    'format-version': '2',
  });
}

const MANIFEST_FILE_IDS = {
  path: 500, length: 501, specId: 502, content: 517, seq: 515, minSeq: 516, snapshotId: 503, addedFiles: 504,
  existingFiles: 505, deletedFiles: 506, addedRows: 512, existingRows: 513, deletedRows: 514, partitions: 507,
} as const;

export function decodeManifestList(bytes: Buffer): ManifestFile[] {
  const { schema, records } = decodeAvroFile(bytes);
  const n = names(fieldNamesById(schema), MANIFEST_FILE_IDS);
  return records.map((raw) => {
    const r = raw as Record<string, unknown>;
    const num = (key: keyof typeof MANIFEST_FILE_IDS, fallback: number): number => (r[n[key]] as number | null | undefined) ?? fallback;
    const partitions = r[n.partitions] as Array<Record<string, unknown>> | null | undefined;
    return {
      path: r[n.path] as string,
      lengthBytes: num('length', 0),
      partitionSpecId: num('specId', 0),
      content: num('content', 0) as 0 | 1,
      sequenceNumber: num('seq', 0),
      minSequenceNumber: num('minSeq', 0),
      addedSnapshotId: num('snapshotId', 0),
      addedFilesCount: num('addedFiles', 0),
      existingFilesCount: num('existingFiles', 0),
      deletedFilesCount: num('deletedFiles', 0),
      addedRowsCount: num('addedRows', 0),
      existingRowsCount: num('existingRows', 0),
      deletedRowsCount: num('deletedRows', 0),
      partitions: partitions == null ? null : partitions.map(readFieldSummary),
    };
  });
}

function readFieldSummary(p: Record<string, unknown>): FieldSummary {
  return {
    containsNull: p.contains_null as boolean,
    containsNan: (p.contains_nan as boolean | null | undefined) ?? null,
    lowerBound: (p.lower_bound as Buffer | null | undefined) ?? null,
    upperBound: (p.upper_bound as Buffer | null | undefined) ?? null,
  };
}

// ---- manifest-list entry of a new manifest ----

/**
 * The manifest-list entry for a manifest written in the snapshot with `sequenceNumber`:
 * counts by status, min data sequence number of its live files, partition field summaries.
 */
export function summarizeManifest(entries: readonly ManifestEntry[], bound: BoundPartitionSpec, at: { path: string; lengthBytes: number; snapshotId: number; sequenceNumber: number }): ManifestFile {
  const m: ManifestFile = {
    path: at.path, lengthBytes: at.lengthBytes, partitionSpecId: bound.spec['spec-id'], content: 0,
    sequenceNumber: at.sequenceNumber, minSequenceNumber: at.sequenceNumber, addedSnapshotId: at.snapshotId,
    addedFilesCount: 0, existingFilesCount: 0, deletedFilesCount: 0, addedRowsCount: 0, existingRowsCount: 0, deletedRowsCount: 0,
    partitions: partitionSummaries(entries, bound),
  };
  for (const e of entries) {
    const rows = e.file.recordCount;
    if (e.status === EntryStatus.ADDED) { m.addedFilesCount++; m.addedRowsCount += rows; }
    else if (e.status === EntryStatus.EXISTING) { m.existingFilesCount++; m.existingRowsCount += rows; }
    else { m.deletedFilesCount++; m.deletedRowsCount += rows; }
    if (e.status !== EntryStatus.DELETED && e.sequenceNumber !== null) m.minSequenceNumber = Math.min(m.minSequenceNumber, e.sequenceNumber);
  }
  return m;
}

function partitionSummaries(entries: readonly ManifestEntry[], bound: BoundPartitionSpec): FieldSummary[] {
  return bound.fields.map((f) => {
    let containsNull = false;
    let containsNan = false;
    let lower: PartitionValue = null;
    let upper: PartitionValue = null;
    for (const e of entries) {
      const v = e.file.partition[f.field.name] ?? null;
      if (v === null) { containsNull = true; continue; }
      if (typeof v === 'number' && Number.isNaN(v)) { containsNan = true; continue; }
      if (lower === null || compareValues(v, lower) < 0) lower = v;
      if (upper === null || compareValues(v, upper) > 0) upper = v;
    }
    return {
      containsNull,
      containsNan,
      lowerBound: lower === null ? null : toSingleValueBinary(f.resultType, lower),
      upperBound: upper === null ? null : toSingleValueBinary(f.resultType, upper),
    };
  });
}
