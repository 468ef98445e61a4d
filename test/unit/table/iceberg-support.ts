// Shared setup of the Iceberg catalog tests: a local-directory object store and an embedded
// metadata store in a temporary directory, a controllable clock, and data files put on the store.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IcebergCatalog } from '../../../connectors/table/iceberg/catalog.ts';
import type { DataFile, LoadedTable } from '../../../connectors/table/iceberg/catalog.ts';
import type { IcebergSchema } from '../../../connectors/table/iceberg/types.ts';
import { EmbeddedMetadataStore } from '../../../src/metadata/embedded.ts';
import { createObjectStore } from '../../../src/storage/objectstore/index.ts';
import type { ObjectStore } from '../../../src/storage/objectstore/index.ts';
import { objectUris } from '../../../src/storage/objectstore/uri.ts';
import type { ObjectUris } from '../../../src/storage/objectstore/uri.ts';

export const logsSchema: IcebergSchema = {
  type: 'struct',
  'schema-id': 0,
  fields: [
    { id: 1, name: 'timestamp', required: true, type: 'timestamptz' },
    { id: 2, name: 'service_name', required: false, type: 'string' },
    { id: 3, name: 'body', required: false, type: 'string' },
    {
      id: 4, name: 'resource', required: false,
      type: { type: 'struct', fields: [{ id: 5, name: 'host', required: false, type: 'string' }] },
    },
  ],
};

export class IcebergFixture {
  dir = '';
  rootDir = '';
  store!: ObjectStore;
  metadata!: EmbeddedMetadataStore;
  uris!: ObjectUris;
  catalog!: IcebergCatalog;
  clockMs = Date.UTC(2026, 10, 21, 10);

  async open(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'wharf-iceberg-'));
    this.rootDir = join(this.dir, 'objects');
    this.store = await createObjectStore({ kind: 'local', rootDir: this.rootDir });
    this.metadata = await EmbeddedMetadataStore.open(join(this.dir, 'meta'));
    this.uris = objectUris({ kind: 'local', rootDir: this.rootDir });
    this.catalog = this.newCatalog();
  }

  /** A catalog with empty caches, as another process would have. */
  newCatalog(): IcebergCatalog {
    return new IcebergCatalog({ store: this.store, metadata: this.metadata, warehouse: this.uris, nowMs: () => this.clockMs });
  }

  /** Closes and reopens the metadata store (a restart), then builds a fresh catalog. */
  async restart(): Promise<IcebergCatalog> {
    await this.metadata.close();
    this.metadata = await EmbeddedMetadataStore.open(join(this.dir, 'meta'));
    this.catalog = this.newCatalog();
    return this.catalog;
  }

  async close(): Promise<void> {
    await this.metadata.close();
    await this.store.close();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Puts a (fake) data file under the table and returns its DataFile. */
  async putDataFile(table: LoadedTable, hour: number, service: string, rows: number): Promise<DataFile> {
    const key = this.catalog.newDataFileKey(table, `timestamp_hour=${hour}/service_name=${service}`);
    const bytes = Buffer.alloc(100 + rows, 1);
    await this.store.put(key, bytes);
    return {
      path: this.catalog.uriOf(key),
      format: 'PARQUET',
      partition: { timestamp_hour: hour, service_name: service },
      recordCount: rows,
      fileSizeBytes: bytes.length,
      valueCounts: new Map([[1, rows]]),
      nullValueCounts: new Map([[1, 0]]),
    };
  }

  /** Every key under a prefix. */
  async keys(prefix: string): Promise<string[]> {
    return (await this.store.list(prefix)).map((o) => o.key);
  }

  async exists(uriOrKey: string): Promise<boolean> {
    const key = uriOrKey.includes('://') ? this.uris.keyOf(uriOrKey) : uriOrKey;
    return (await this.store.head(key)) !== undefined;
  }

  async metadataDirFiles(table: LoadedTable): Promise<string[]> {
    return (await readdir(join(this.rootDir, table.location.keyPrefix, 'metadata'))).sort();
  }
}
