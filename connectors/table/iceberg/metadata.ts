// Iceberg v2 table metadata (table spec, "Table Metadata Fields" and "Appendix C: JSON
// serialization"): the JSON types and pure functions deriving one metadata version from the
// previous one. No I/O here; catalog.ts writes the files and swaps the pointer.

import { randomBytes } from 'node:crypto';
import type { PartitionSpec } from './partitioning.ts';
import { maxFieldId, sameFields, withSchemaId } from './schema.ts';
import type { IcebergField, IcebergSchema, IcebergStructType } from './types.ts';

export const FORMAT_VERSION = 2;

/** Snapshot operations (spec "Snapshots"). */
export type SnapshotOperation = 'append' | 'replace' | 'overwrite' | 'delete';

export interface SnapshotSummary {
  operation: SnapshotOperation;
  [key: string]: string;
}

export interface Snapshot {
  'snapshot-id': number;
  'parent-snapshot-id'?: number;
  'sequence-number': number;
  'timestamp-ms': number;
  'manifest-list': string;
  summary: SnapshotSummary;
  'schema-id'?: number;
}

export interface SnapshotRef {
  'snapshot-id': number;
  type: 'branch' | 'tag';
  'min-snapshots-to-keep'?: number;
  'max-snapshot-age-ms'?: number;
  'max-ref-age-ms'?: number;
}

export interface SortOrder {
  'order-id': number;
  fields: Array<{ transform: string; 'source-id': number; direction: 'asc' | 'desc'; 'null-order': 'nulls-first' | 'nulls-last' }>;
}

export interface SnapshotLogEntry { 'snapshot-id': number; 'timestamp-ms': number }
export interface MetadataLogEntry { 'metadata-file': string; 'timestamp-ms': number }

export interface TableMetadata {
  'format-version': 2;
  'table-uuid': string;
  location: string;
  'last-sequence-number': number;
  'last-updated-ms': number;
  'last-column-id': number;
  schemas: IcebergSchema[];
  'current-schema-id': number;
  'partition-specs': PartitionSpec[];
  'default-spec-id': number;
  'last-partition-id': number;
  properties: Record<string, string>;
  /** -1 when the table has no snapshot (what Java writes for v1/v2 tables; spec Appendix F). */
  'current-snapshot-id': number;
  snapshots: Snapshot[];
  'snapshot-log': SnapshotLogEntry[];
  'metadata-log': MetadataLogEntry[];
  'sort-orders': SortOrder[];
  'default-sort-order-id': number;
  refs: Record<string, SnapshotRef>;
}

// ---- table properties (names as in Java's TableProperties) ----

export const PROPERTY = {
  maxSnapshotAgeMs: 'history.expire.max-snapshot-age-ms',
  minSnapshotsToKeep: 'history.expire.min-snapshots-to-keep',
  previousVersionsMax: 'write.metadata.previous-versions-max',
  deleteAfterCommit: 'write.metadata.delete-after-commit.enabled',
  manifestMergeEnabled: 'commit.manifest-merge.enabled',
  manifestMinCountToMerge: 'commit.manifest.min-count-to-merge',
  manifestTargetSizeBytes: 'commit.manifest.target-size-bytes',
} as const;

/**
 * Defaults written into the properties of every table Wharf creates (the caller's properties
 * win), so that other engines maintaining the table apply the same policy. Java's defaults
 * differ where a streaming writer needs tighter bounds: snapshots expire after 1 hour (Java: 5
 * days) and metadata files beyond the last 20 are deleted at commit (Java: 100, not deleted).
 */
export const DEFAULT_TABLE_PROPERTIES: Readonly<Record<string, string>> = {
  'write.format.default': 'parquet',
  [PROPERTY.maxSnapshotAgeMs]: String(60 * 60 * 1000),
  [PROPERTY.minSnapshotsToKeep]: '1',
  [PROPERTY.previousVersionsMax]: '20',
  [PROPERTY.deleteAfterCommit]: 'true',
  [PROPERTY.manifestMergeEnabled]: 'true',
  [PROPERTY.manifestMinCountToMerge]: '100',
  [PROPERTY.manifestTargetSizeBytes]: String(8 * 1024 * 1024),
};

/** Java's defaults, used when a property is missing from a table created elsewhere. */
const JAVA_DEFAULTS: Readonly<Record<string, string>> = {
  [PROPERTY.maxSnapshotAgeMs]: String(5 * 24 * 60 * 60 * 1000),
  [PROPERTY.minSnapshotsToKeep]: '1',
  [PROPERTY.previousVersionsMax]: '100',
  [PROPERTY.deleteAfterCommit]: 'false',
  [PROPERTY.manifestMergeEnabled]: 'true',
  [PROPERTY.manifestMinCountToMerge]: '100',
  [PROPERTY.manifestTargetSizeBytes]: String(8 * 1024 * 1024),
};

export function intProperty(meta: TableMetadata, key: string): number {
  const text = meta.properties[key] ?? JAVA_DEFAULTS[key];
  const n = Number(text);
  if (text === undefined || !Number.isSafeInteger(n)) throw new Error(`table property ${key}=${text} is not an integer`);
  return n;
}

export function boolProperty(meta: TableMetadata, key: string): boolean {
  return (meta.properties[key] ?? JAVA_DEFAULTS[key]) === 'true';
}

// ---- reading ----

/** Checks what this implementation relies on; throws for other format versions (spec rule). */
export function parseTableMetadata(json: string): TableMetadata {
  const meta = JSON.parse(json) as TableMetadata;
  if (meta['format-version'] !== FORMAT_VERSION) throw new Error(`unsupported Iceberg format-version ${String(meta['format-version'])}`);
  for (const key of ['table-uuid', 'location', 'schemas', 'partition-specs', 'last-sequence-number'] as const) {
    if (meta[key] === undefined) throw new Error(`table metadata lacks ${key}`);
  }
  meta.snapshots ??= [];
  meta['snapshot-log'] ??= [];
  meta['metadata-log'] ??= [];
  meta.refs ??= {};
  meta.properties ??= {};
  meta['current-snapshot-id'] ??= -1;
  return meta;
}

export function currentSchema(meta: TableMetadata): IcebergSchema {
  return schemaById(meta, meta['current-schema-id']);
}

export function schemaById(meta: TableMetadata, schemaId: number): IcebergSchema {
  const schema = meta.schemas.find((s) => s['schema-id'] === schemaId);
  if (schema === undefined) throw new Error(`table metadata has no schema ${schemaId}`);
  return schema;
}

export function defaultSpec(meta: TableMetadata): PartitionSpec {
  return specById(meta, meta['default-spec-id']);
}

export function specById(meta: TableMetadata, specId: number): PartitionSpec {
  const spec = meta['partition-specs'].find((s) => s['spec-id'] === specId);
  if (spec === undefined) throw new Error(`table metadata has no partition spec ${specId}`);
  return spec;
}

export function currentSnapshot(meta: TableMetadata): Snapshot | undefined {
  const id = meta['current-snapshot-id'];
  return id === -1 ? undefined : snapshotById(meta, id);
}

export function snapshotById(meta: TableMetadata, snapshotId: number): Snapshot | undefined {
  return meta.snapshots.find((s) => s['snapshot-id'] === snapshotId);
}

// ---- deriving new versions ----

export interface NewTableOptions {
  tableUuid: string;
  location: string;
  schema: IcebergStructType;
  spec: PartitionSpec;
  properties: Record<string, string>;
  nowMs: number;
}

export function newTableMetadata(o: NewTableOptions): TableMetadata {
  const lastPartitionId = Math.max(999, ...o.spec.fields.map((f) => f['field-id']));
  return {
    'format-version': FORMAT_VERSION,
    'table-uuid': o.tableUuid,
    location: o.location,
    'last-sequence-number': 0,
    'last-updated-ms': o.nowMs,
    'last-column-id': maxFieldId(o.schema),
    schemas: [withSchemaId(o.schema, 0)],
    'current-schema-id': 0,
    'partition-specs': [o.spec],
    'default-spec-id': o.spec['spec-id'],
    'last-partition-id': lastPartitionId,
    properties: { ...DEFAULT_TABLE_PROPERTIES, ...o.properties },
    'current-snapshot-id': -1,
    snapshots: [],
    'snapshot-log': [],
    'metadata-log': [],
    'sort-orders': [{ 'order-id': 0, fields: [] }],
    'default-sort-order-id': 0,
    refs: {},
  };
}

/** Adds a snapshot and makes it current on the main branch. */
export function withNewSnapshot(meta: TableMetadata, snapshot: Snapshot): TableMetadata {
  if (snapshot['sequence-number'] !== meta['last-sequence-number'] + 1) throw new Error('snapshot sequence number must follow last-sequence-number');
  if (snapshotById(meta, snapshot['snapshot-id']) !== undefined) throw new Error(`snapshot id ${snapshot['snapshot-id']} exists`);
  const id = snapshot['snapshot-id'];
  return {
    ...meta,
    'last-sequence-number': snapshot['sequence-number'],
    'current-snapshot-id': id,
    snapshots: [...meta.snapshots, snapshot],
    'snapshot-log': [...meta['snapshot-log'], { 'snapshot-id': id, 'timestamp-ms': snapshot['timestamp-ms'] }],
    refs: { ...meta.refs, main: { ...meta.refs.main, 'snapshot-id': id, type: 'branch' } },
  };
}

/**
 * Makes `fields` the current schema: reuses an identical existing schema's id (as Java does),
 * else adds a schema with the next id.
 */
export function withCurrentSchema(meta: TableMetadata, fields: IcebergField[], lastColumnId: number): TableMetadata {
  const current = currentSchema(meta);
  const struct: IcebergStructType = { type: 'struct', fields };
  const existing = meta.schemas.find((s) => sameFields(s, struct));
  const schemaId = existing?.['schema-id'] ?? Math.max(...meta.schemas.map((s) => s['schema-id'])) + 1;
  const schemas = existing !== undefined ? meta.schemas : [...meta.schemas, withSchemaId({ ...struct, 'identifier-field-ids': current['identifier-field-ids'] }, schemaId)];
  return { ...meta, schemas, 'current-schema-id': schemaId, 'last-column-id': Math.max(meta['last-column-id'], lastColumnId) };
}

/**
 * Removes snapshots; drops snapshot-log entries up to the last one of a removed snapshot (spec:
 * "all entries before a snapshot that has expired should be removed").
 */
export function withoutSnapshots(meta: TableMetadata, removed: ReadonlySet<number>): TableMetadata {
  if (removed.has(meta['current-snapshot-id'])) throw new Error('cannot remove the current snapshot');
  const log = meta['snapshot-log'];
  let cut = 0;
  for (let i = 0; i < log.length; i++) if (removed.has(log[i]!['snapshot-id'])) cut = i + 1;
  return { ...meta, snapshots: meta.snapshots.filter((s) => !removed.has(s['snapshot-id'])), 'snapshot-log': log.slice(cut) };
}

/**
 * The metadata to write as the version after the one at `previousLocation`: sets last-updated-ms
 * and appends the previous file to metadata-log, keeping at most previous-versions-max entries.
 * Returns the metadata files dropped from the log (deleted after the commit when
 * write.metadata.delete-after-commit.enabled is true).
 */
export function nextVersion(meta: TableMetadata, base: TableMetadata, previousLocation: string, nowMs: number): { metadata: TableMetadata; droppedFiles: string[] } {
  const max = Math.max(1, intProperty(meta, PROPERTY.previousVersionsMax));
  const log = [...meta['metadata-log'], { 'metadata-file': previousLocation, 'timestamp-ms': base['last-updated-ms'] }];
  const dropped = log.length > max ? log.splice(0, log.length - max).map((e) => e['metadata-file']) : [];
  const lastUpdatedMs = Math.max(nowMs, base['last-updated-ms']);
  return { metadata: { ...meta, 'last-updated-ms': lastUpdatedMs, 'metadata-log': log }, droppedFiles: dropped };
}

/**
 * A new positive snapshot id below 2^53 (JS numbers and JSON round-trip it exactly), distinct
 * from the table's existing ones. Java uses 63 random bits; 53 keep collisions negligible.
 */
export function newSnapshotId(meta: TableMetadata): number {
  for (;;) {
    const id = Number(randomBytes(8).readBigUInt64BE() & 0x1f_ffff_ffff_ffffn);
    if (id > 0 && snapshotById(meta, id) === undefined) return id;
  }
}

/** The snapshots of the main branch from the current one back through parents. */
export function mainAncestry(meta: TableMetadata): Snapshot[] {
  const out: Snapshot[] = [];
  let snapshot = currentSnapshot(meta);
  while (snapshot !== undefined) {
    out.push(snapshot);
    const parent = snapshot['parent-snapshot-id'];
    snapshot = parent === undefined ? undefined : snapshotById(meta, parent);
  }
  return out;
}
