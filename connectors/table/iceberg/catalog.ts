// The Iceberg catalog on Wharf's metadata store: one key per table holds the location of its
// current metadata file, and a commit is a compare-and-swap of that key (the "metastore table"
// commit of the table spec: write new metadata <V+1>-<uuid>.metadata.json, then check-and-put
// the pointer). Metadata, manifest lists and manifests are immutable and uniquely named, so a
// writer that loses the race (or crashes) leaves only unreferenced files behind: removed at
// once on a lost race, by deleteOrphans after a crash.
//
//   pointer key   <pointerPrefix><ns parts joined by '.'>/<table>   (default /wharf/tables/)
//   pointer value {"namespace":[...],"name":..,"metadataLocation":..,"version":N,"tableUuid":..}
//   files         <keyPrefix><ns parts joined by '.'>/<table>/{metadata,data}/... (layout.ts)
//
// After a successful swap, metadata/version-hint.text is rewritten (best effort) with the name
// of the current metadata file without its .metadata.json suffix, so that file-based readers
// (DuckDB's iceberg_scan with its default version_name_format '%s%s.metadata.json') find it.

import { randomUUID } from 'node:crypto';
import { log } from '../../../src/metrics/log.ts';
import { decodeJson, encodeJson } from '../../../src/metadata/store.ts';
import type { MetadataStore } from '../../../src/metadata/store.ts';
import type { ObjectStore } from '../../../src/storage/objectstore/objectstore.ts';
import type { ObjectUris } from '../../../src/storage/objectstore/uri.ts';
import { CommitConflictError } from './errors.ts';
import { VERSION_HINT, dataFileKey, metadataFileKey } from './layout.ts';
import { deleteOrphans, expireSnapshots } from './maintenance.ts';
import type { DataFile } from './manifest.ts';
import { PROPERTY, boolProperty, currentSchema, currentSnapshot, newTableMetadata, nextVersion, withCurrentSchema } from './metadata.ts';
import type { TableMetadata } from './metadata.ts';
import { buildPartitionSpec } from './partitioning.ts';
import { addMissingColumns } from './schema.ts';
import { produceAppend, produceReplace } from './snapshot.ts';
import type { SnapshotInput } from './snapshot.ts';
import { TableFiles } from './table-files.ts';
import type { TableFilesLimits } from './table-files.ts';
import type { IcebergStructType, IcebergType } from './types.ts';

export type { DataFile } from './manifest.ts';

/** Where a table's files are: its key prefix, and key <-> URI for locations in metadata. */
export interface TableLocation {
  /** Key prefix of the table on the object store, e.g. 'tables/otel/otlp_logs/'. */
  readonly keyPrefix: string;
  uriOf(key: string): string;
  keyOf(uri: string): string;
}

/** A table as loaded at one pointer revision; commits based on it fail once the pointer moved. */
export interface LoadedTable {
  readonly namespace: readonly string[];
  readonly name: string;
  /** URI of the current metadata file. */
  readonly metadataLocation: string;
  /** Version number of that file (<version>-<uuid>.metadata.json). */
  readonly version: number;
  /** Metadata store revision of the pointer key: the compare-and-swap token. */
  readonly revision: number;
  readonly metadata: TableMetadata;
  readonly location: TableLocation;
}

export interface IcebergCatalogOptions {
  store: ObjectStore;
  metadata: MetadataStore;
  /** Object keys as URIs (objectUris() of the store). */
  warehouse: ObjectUris;
  /** Object key prefix of all tables. Default 'tables/'. */
  keyPrefix?: string;
  /** Metadata store key prefix of the table pointers. Default '/wharf/tables/'. */
  pointerPrefix?: string;
  /** Clock (tests). Default Date.now. */
  nowMs?: () => number;
  limits?: Partial<TableFilesLimits>;
}

interface PointerValue {
  namespace: string[];
  name: string;
  metadataLocation: string;
  version: number;
  tableUuid: string;
}

/** Objects deleted per ObjectStore.delete call (S3 DeleteObjects takes at most 1000). */
export const DELETE_BATCH_KEYS = 1000;

const NAMESPACE_PART = /^[A-Za-z0-9_-]+$/;
const TABLE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

export class IcebergCatalog {
  private readonly store: ObjectStore;
  private readonly metadataStore: MetadataStore;
  private readonly warehouse: ObjectUris;
  private readonly keyPrefix: string;
  private readonly pointerPrefix: string;
  private readonly nowMs: () => number;
  private readonly files: TableFiles;

  constructor(options: IcebergCatalogOptions) {
    this.store = options.store;
    this.metadataStore = options.metadata;
    this.warehouse = options.warehouse;
    this.keyPrefix = options.keyPrefix ?? 'tables/';
    this.pointerPrefix = options.pointerPrefix ?? '/wharf/tables/';
    this.nowMs = options.nowMs ?? Date.now;
    this.files = new TableFiles(options.store, options.warehouse, options.limits);
  }

  async listNamespaces(): Promise<string[][]> {
    const { kvs } = await this.metadataStore.range(this.pointerPrefix);
    const seen = new Map<string, string[]>();
    for (const kv of kvs) {
      const ns = decodeJson<PointerValue>(kv.value).namespace;
      seen.set(ns.join('.'), ns);
    }
    return [...seen.values()];
  }

  async listTables(namespace: readonly string[]): Promise<string[]> {
    checkNamespace(namespace);
    const { kvs } = await this.metadataStore.range(`${this.pointerPrefix}${namespace.join('.')}/`);
    return kvs.map((kv) => decodeJson<PointerValue>(kv.value).name);
  }

  async loadTable(namespace: readonly string[], name: string): Promise<LoadedTable | undefined> {
    const kv = await this.metadataStore.get(this.pointerKey(namespace, name));
    if (kv === undefined) return undefined;
    const pointer = decodeJson<PointerValue>(kv.value);
    const metadata = await this.files.readMetadata(pointer.metadataLocation);
    if (metadata['table-uuid'] !== pointer.tableUuid) {
      throw new Error(`table ${namespace.join('.')}.${name}: metadata uuid ${metadata['table-uuid']} is not the catalog's ${pointer.tableUuid}`);
    }
    return this.loaded(namespace, name, pointer, kv.modRevision, metadata);
  }

  /**
   * Creates the table with `schema` (its field ids kept) partitioned by expressions like
   * `hour(timestamp)`, `identity(service_name)`; properties over DEFAULT_TABLE_PROPERTIES.
   * Returns the existing table unchanged when it exists (whatever its schema and partitioning).
   */
  async createTable(namespace: readonly string[], name: string, schema: IcebergStructType, partitionBy: readonly string[], properties: Record<string, string> = {}): Promise<LoadedTable> {
    const existing = await this.loadTable(namespace, name);
    if (existing !== undefined) return existing;
    checkFieldIds(schema);
    const nowMs = this.nowMs();
    const keyPrefix = this.tableKeyPrefix(namespace, name);
    const metadata = newTableMetadata({
      tableUuid: randomUUID(),
      location: this.warehouse.uriOf(keyPrefix.slice(0, -1)),
      schema,
      spec: buildPartitionSpec(schema, partitionBy),
      properties,
      nowMs,
    });
    const key = metadataFileKey(keyPrefix, 0, nowMs);
    const uri = await this.files.writeMetadata(key, metadata);
    const pointer: PointerValue = { namespace: [...namespace], name, metadataLocation: uri, version: 0, tableUuid: metadata['table-uuid'] };
    const pointerKey = this.pointerKey(namespace, name);
    const result = await this.metadataStore.txn({
      compare: [{ key: pointerKey, target: 'version', op: '=', value: 0 }],
      success: [{ type: 'put', key: pointerKey, value: encodeJson(pointer) }],
    });
    if (!result.succeeded) {
      await this.store.delete([key]).catch(() => undefined);
      const winner = await this.loadTable(namespace, name);
      if (winner === undefined) throw new CommitConflictError(`table ${name} was created and dropped concurrently`);
      return winner;
    }
    const table = this.loaded(namespace, name, pointer, result.revision, metadata);
    await this.writeVersionHint(table);
    return table;
  }

  /**
   * Appends files as one snapshot (operation append) whose summary also carries extraSummary
   * (e.g. wharf.offsets). Throws CommitConflictError, with nothing changed, when the table moved
   * since `table` was loaded.
   */
  async commitAppend(table: LoadedTable, files: readonly DataFile[], extraSummary: Readonly<Record<string, string>> = {}): Promise<LoadedTable> {
    const produced = await produceAppend(this.snapshotInput(table), files, extraSummary);
    return (await this.commit(table, produced.metadata, produced.writtenKeys)).table;
  }

  /**
   * Replaces files by others holding the same rows (compaction), as one snapshot (operation
   * replace) that carries the parent summary's wharf.* keys. The removed files must be live.
   */
  async commitReplace(table: LoadedTable, removed: readonly DataFile[], added: readonly DataFile[]): Promise<LoadedTable> {
    const produced = await produceReplace(this.snapshotInput(table), removed, added);
    return (await this.commit(table, produced.metadata, produced.writtenKeys)).table;
  }

  /**
   * Adds the columns of `desired` that the current schema lacks, with new ids above
   * last-column-id, as a new current schema. Existing columns keep their ids; a type change
   * throws SchemaEvolutionError. Returns `table` itself when nothing is missing.
   */
  async evolveSchema(table: LoadedTable, desired: IcebergStructType): Promise<LoadedTable> {
    const meta = table.metadata;
    const { fields, lastColumnId } = addMissingColumns(currentSchema(meta), desired, meta['last-column-id']);
    if (fields === undefined) return table;
    return (await this.commit(table, withCurrentSchema(meta, fields, lastColumnId), [])).table;
  }

  /** The live data files of the current snapshot, read from its manifest list and manifests. */
  async currentDataFiles(table: LoadedTable): Promise<DataFile[]> {
    const snapshot = currentSnapshot(table.metadata);
    if (snapshot === undefined) return [];
    return (await this.files.liveEntries(snapshot)).map((live) => live.entry.file);
  }

  /**
   * Expires snapshots per history.expire.max-snapshot-age-ms and min-snapshots-to-keep and
   * deletes the manifest lists, manifests and data files only expired snapshots used.
   */
  async expireSnapshots(table: LoadedTable, nowMs: number = this.nowMs()): Promise<{ table: LoadedTable; deletedKeys: string[] }> {
    return await expireSnapshots(this.maintenance(), table, nowMs);
  }

  /**
   * Deletes files under the table's data/ and metadata/ that the current metadata does not
   * reference and that were written before `writtenBeforeMs` (by the time in their names).
   * Keep the margin larger than any writer's time from writing a file to committing it.
   */
  async deleteOrphans(table: LoadedTable, writtenBeforeMs: number): Promise<string[]> {
    const latest = (await this.loadTable(table.namespace, table.name)) ?? table;
    return await deleteOrphans(this.maintenance(), latest, writtenBeforeMs);
  }

  /** The URI of an object key (DataFile.path of a file put at `key`). */
  uriOf(key: string): string {
    return this.warehouse.uriOf(key);
  }

  /** A fresh key for a data file in a partition directory (partitionPath() or '' if unpartitioned). */
  newDataFileKey(table: LoadedTable, partitionPath: string): string {
    return dataFileKey(table.location.keyPrefix, partitionPath, this.nowMs());
  }

  // ---- the commit ----

  /**
   * Writes `metadata` as the next version of `table` and swaps the pointer to it. On a lost
   * race the files written for this commit are deleted and CommitConflictError is thrown; when
   * the metadata store fails, the outcome is unknown and the files are left (a later
   * deleteOrphans removes them if the commit did not happen).
   */
  private async commit(table: LoadedTable, metadata: TableMetadata, writtenKeys: readonly string[]): Promise<{ table: LoadedTable; deletedKeys: string[] }> {
    const nowMs = this.nowMs();
    const next = nextVersion(metadata, table.metadata, table.metadataLocation, nowMs);
    const version = table.version + 1;
    const key = metadataFileKey(table.location.keyPrefix, version, nowMs);
    let uri: string;
    try {
      uri = await this.files.writeMetadata(key, next.metadata);
    } catch (err) {
      await this.deleteKeys([...writtenKeys, key]).catch(() => undefined);
      throw err;
    }
    const pointer: PointerValue = { namespace: [...table.namespace], name: table.name, metadataLocation: uri, version, tableUuid: next.metadata['table-uuid'] };
    const pointerKey = this.pointerKey(table.namespace, table.name);
    const result = await this.metadataStore.txn({
      compare: [{ key: pointerKey, target: 'modRevision', op: '=', value: table.revision }],
      success: [{ type: 'put', key: pointerKey, value: encodeJson(pointer) }],
    });
    if (!result.succeeded) {
      await this.deleteKeys([...writtenKeys, key]).catch(() => undefined);
      throw new CommitConflictError(`table ${table.namespace.join('.')}.${table.name} changed since version ${table.version} was loaded`);
    }
    const committed = this.loaded(table.namespace, table.name, pointer, result.revision, next.metadata);
    await this.writeVersionHint(committed);
    const deletedKeys = boolProperty(next.metadata, PROPERTY.deleteAfterCommit) ? await this.deleteDropped(committed, next.droppedFiles) : [];
    return { table: committed, deletedKeys };
  }

  private async writeVersionHint(table: LoadedTable): Promise<void> {
    const name = table.metadataLocation.slice(table.metadataLocation.lastIndexOf('/') + 1).replace(/\.metadata\.json$/, '');
    try {
      await this.store.put(`${table.location.keyPrefix}metadata/${VERSION_HINT}`, Buffer.from(name, 'utf8'));
    } catch (err) {
      log.warn({ err, table: table.name }, 'iceberg: version hint not written');
    }
  }

  /** Deletes metadata files dropped from metadata-log (best effort; orphans otherwise). */
  private async deleteDropped(table: LoadedTable, uris: readonly string[]): Promise<string[]> {
    const keys = uris.map((u) => table.location.keyOf(u)).filter((k) => k.startsWith(table.location.keyPrefix));
    try {
      await this.deleteKeys(keys);
      return keys;
    } catch (err) {
      log.warn({ err, table: table.name }, 'iceberg: old metadata files not deleted');
      return [];
    }
  }

  private async deleteKeys(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH_KEYS) await this.store.delete(keys.slice(i, i + DELETE_BATCH_KEYS));
  }

  private maintenance(): Parameters<typeof expireSnapshots>[0] {
    return {
      files: this.files,
      deleteKeys: (keys) => this.deleteKeys(keys),
      commit: (table, metadata) => this.commit(table, metadata, []),
    };
  }

  private snapshotInput(table: LoadedTable): SnapshotInput {
    return { files: this.files, metadata: table.metadata, tablePrefix: table.location.keyPrefix, nowMs: this.nowMs() };
  }

  private loaded(namespace: readonly string[], name: string, pointer: PointerValue, revision: number, metadata: TableMetadata): LoadedTable {
    const keyPrefix = this.tableKeyPrefix(namespace, name);
    const warehouse = this.warehouse;
    return {
      namespace: [...namespace],
      name,
      metadataLocation: pointer.metadataLocation,
      version: pointer.version,
      revision,
      metadata,
      location: { keyPrefix, uriOf: (key) => warehouse.uriOf(key), keyOf: (uri) => warehouse.keyOf(uri) },
    };
  }

  private tableKeyPrefix(namespace: readonly string[], name: string): string {
    checkNamespace(namespace);
    checkTableName(name);
    return `${this.keyPrefix}${namespace.join('.')}/${name}/`;
  }

  private pointerKey(namespace: readonly string[], name: string): string {
    checkNamespace(namespace);
    checkTableName(name);
    return `${this.pointerPrefix}${namespace.join('.')}/${name}`;
  }
}

/**
 * The live data files of a table's current snapshot, without a catalog (for readers that got
 * the metadata elsewhere, e.g. from the REST catalog).
 */
export async function readCurrentDataFiles(store: ObjectStore, uris: ObjectUris, metadata: TableMetadata): Promise<DataFile[]> {
  const snapshot = currentSnapshot(metadata);
  if (snapshot === undefined) return [];
  const files = new TableFiles(store, uris, { manifestCacheEntries: 0, manifestListCacheCount: 0, metadataCacheCount: 0 });
  return (await files.liveEntries(snapshot)).map((live) => live.entry.file);
}

function checkNamespace(namespace: readonly string[]): void {
  if (namespace.length === 0 || !namespace.every((part) => NAMESPACE_PART.test(part))) {
    throw new Error(`invalid namespace ${JSON.stringify(namespace)}: parts of [A-Za-z0-9_-]`);
  }
}

function checkTableName(name: string): void {
  if (!TABLE_NAME.test(name) || name === '..' || name.length > 200) throw new Error(`invalid table name ${JSON.stringify(name)}`);
}

/** Field ids must be positive and unique across the schema, nested ids included. */
function checkFieldIds(schema: IcebergStructType): void {
  const seen = new Set<number>();
  const visit = (type: IcebergType): void => {
    if (typeof type === 'string') return;
    const ids = type.type === 'struct' ? type.fields.map((f) => f.id) : type.type === 'list' ? [type['element-id']] : [type['key-id'], type['value-id']];
    for (const id of ids) {
      if (!Number.isSafeInteger(id) || id <= 0 || seen.has(id)) throw new Error(`schema field id ${id} is not positive and unique`);
      seen.add(id);
    }
    if (type.type === 'struct') for (const f of type.fields) visit(f.type);
    else if (type.type === 'list') visit(type.element);
    else { visit(type.key); visit(type.value); }
  };
  visit(schema);
}
