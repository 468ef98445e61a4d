// The Iceberg side of the table writer: catalog and commits (catalog.ts), data file records
// (manifest.ts), partitioning (partitioning.ts), single-value bounds (values.ts) and metadata
// types (metadata.ts). Import from here.

export { IcebergCatalog, DELETE_BATCH_KEYS, readCurrentDataFiles } from './catalog.ts';
export type { IcebergCatalogOptions, LoadedTable, TableLocation } from './catalog.ts';
export { CommitConflictError, ReplacedFilesMissingError } from './errors.ts';
export { EntryStatus } from './manifest.ts';
export type { DataFile, DataFileFormat, ManifestEntry, ManifestFile } from './manifest.ts';
export { DEFAULT_TABLE_PROPERTIES, PROPERTY, currentSchema, currentSnapshot, defaultSpec } from './metadata.ts';
export type { Snapshot, SnapshotSummary, TableMetadata } from './metadata.ts';
export { bindPartitionSpec, buildPartitionSpec, parsePartitionExpression, partitionPath, partitionRecord } from './partitioning.ts';
export type { BoundPartitionField, BoundPartitionSpec, PartitionField, PartitionSpec, PartitionValue, SourceValue } from './partitioning.ts';
export { SchemaEvolutionError } from './schema.ts';
export { snapshotsToExpire } from './maintenance.ts';
export { CARRIED_SUMMARY_PREFIX } from './snapshot.ts';
export { compareValues, fromSingleValueBinary, toSingleValueBinary } from './values.ts';
export type { SingleValue } from './values.ts';
