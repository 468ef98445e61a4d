// The Iceberg catalog on a real object store (local directory) and the embedded metadata store:
// tables survive a restart, metadata files carry what format v2 requires, a stale commit loses
// without changing anything, compaction keeps the rows, schema evolution keeps column ids.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DataFile, LoadedTable } from '../../../connectors/table/iceberg/catalog.ts';
import { CommitConflictError, ReplacedFilesMissingError } from '../../../connectors/table/iceberg/errors.ts';
import { decodeManifest, decodeManifestList } from '../../../connectors/table/iceberg/manifest.ts';
import { currentSnapshot } from '../../../connectors/table/iceberg/metadata.ts';
import { SchemaEvolutionError } from '../../../connectors/table/iceberg/schema.ts';
import type { IcebergSchema } from '../../../connectors/table/iceberg/types.ts';
import { IcebergFixture, logsSchema } from './iceberg-support.ts';

const fx = new IcebergFixture();
const ns = ['otel'];
const offsets = (n: number): Record<string, string> => ({ 'wharf.offsets': JSON.stringify({ 0: n, 1: n * 2 }) });

beforeEach(async () => {
  await fx.open();
});

afterEach(async () => {
  await fx.close();
});

async function createLogs(): Promise<LoadedTable> {
  return await fx.catalog.createTable(ns, 'otlp_logs', logsSchema, ['hour(timestamp)', 'identity(service_name)'], { 'wharf.topic': 'otlp_logs' });
}

describe('creating and appending', () => {
  it('a table appended to three times is read back whole by a restarted process', async () => {
    let table = await createLogs();
    const written: DataFile[] = [];
    for (let i = 1; i <= 3; i++) {
      fx.clockMs += 1000;
      const file = await fx.putDataFile(table, 500_000 + i, 'checkout', 10 * i);
      written.push(file);
      table = await fx.catalog.commitAppend(table, [file], offsets(i));
    }
    const catalog = await fx.restart();
    const reloaded = (await catalog.loadTable(ns, 'otlp_logs'))!;
    expect(reloaded.version).toBe(3);
    expect(reloaded.metadataLocation).toBe(table.metadataLocation);
    const files = await catalog.currentDataFiles(reloaded);
    expect(files.map((f) => f.path).sort()).toEqual(written.map((f) => f.path).sort());
    const byPath = new Map(files.map((f) => [f.path, f]));
    for (const f of written) {
      expect(byPath.get(f.path)).toMatchObject({ recordCount: f.recordCount, fileSizeBytes: f.fileSizeBytes, partition: f.partition });
      expect(byPath.get(f.path)!.valueCounts).toEqual(f.valueCounts);
    }
    const meta = reloaded.metadata;
    expect(meta.snapshots.map((s) => s['sequence-number'])).toEqual([1, 2, 3]);
    expect(meta.snapshots[1]!['parent-snapshot-id']).toBe(meta.snapshots[0]!['snapshot-id']);
    const current = currentSnapshot(meta)!;
    expect(current.summary).toMatchObject({
      operation: 'append', 'added-data-files': '1', 'added-records': '30', 'total-records': '60', 'total-data-files': '3', ...offsets(3),
    });
    expect(meta.refs).toEqual({ main: { 'snapshot-id': current['snapshot-id'], type: 'branch' } });
  });

  it('createTable returns the existing table; namespaces and tables are listed', async () => {
    const first = await createLogs();
    const again = await fx.catalog.createTable(ns, 'otlp_logs', { ...logsSchema, fields: [] }, []);
    expect(again.metadataLocation).toBe(first.metadataLocation);
    await fx.catalog.createTable(['metrics', 'prom'], 'samples', logsSchema, []);
    expect(await fx.catalog.listNamespaces()).toEqual([['metrics', 'prom'], ['otel']]);
    expect(await fx.catalog.listTables(ns)).toEqual(['otlp_logs']);
    expect(await fx.catalog.listTables(['metrics'])).toEqual([]);
    expect(await fx.catalog.loadTable(ns, 'nope')).toBeUndefined();
    expect(() => fx.catalog.newDataFileKey(first, '')).not.toThrow();
    await expect(fx.catalog.createTable(['a/b'], 't', logsSchema, [])).rejects.toThrow(/invalid namespace/);
  });

  it('the metadata file on disk has every field format v2 requires', async () => {
    let table = await createLogs();
    table = await fx.catalog.commitAppend(table, [await fx.putDataFile(table, 500_000, 'cart', 5)], offsets(1));
    const meta = JSON.parse(await readFile(fileURLToPath(table.metadataLocation), 'utf8')) as Record<string, unknown>;
    expect(table.metadataLocation).toMatch(/\/tables\/otel\/otlp_logs\/metadata\/00001-[0-9a-f-]{36}\.metadata\.json$/);
    expect(meta).toMatchObject({
      'format-version': 2,
      location: fx.uris.uriOf('tables/otel/otlp_logs'),
      'last-sequence-number': 1,
      'last-updated-ms': fx.clockMs,
      'last-column-id': 5,
      'current-schema-id': 0,
      'default-spec-id': 0,
      'last-partition-id': 1001,
      'default-sort-order-id': 0,
      'sort-orders': [{ 'order-id': 0, fields: [] }],
      'partition-specs': [{
        'spec-id': 0,
        fields: [
          { 'source-id': 1, 'field-id': 1000, name: 'timestamp_hour', transform: 'hour' },
          { 'source-id': 2, 'field-id': 1001, name: 'service_name', transform: 'identity' },
        ],
      }],
      schemas: [{ ...logsSchema, 'schema-id': 0 }],
    });
    expect(meta['table-uuid']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect((meta.properties as Record<string, string>)['wharf.topic']).toBe('otlp_logs');
    const [snapshot] = meta.snapshots as Array<Record<string, unknown>>;
    expect(Object.keys(snapshot!).sort()).toEqual(['manifest-list', 'schema-id', 'sequence-number', 'snapshot-id', 'summary', 'timestamp-ms']);
    expect(meta['current-snapshot-id']).toBe(snapshot!['snapshot-id']);
    expect(meta['snapshot-log']).toEqual([{ 'snapshot-id': snapshot!['snapshot-id'], 'timestamp-ms': fx.clockMs }]);
    expect((meta['metadata-log'] as Array<{ 'metadata-file': string }>).map((e) => e['metadata-file'])).toEqual([
      expect.stringMatching(/\/00000-[0-9a-f-]{36}\.metadata\.json$/),
    ]);
    // The manifest list and the manifests it names exist and decode.
    const listUri = snapshot!['manifest-list'] as string;
    expect(listUri).toMatch(new RegExp(`/metadata/snap-${snapshot!['snapshot-id']}-1-[0-9a-f-]{36}\\.avro$`));
    const list = decodeManifestList(await readFile(fileURLToPath(listUri)));
    expect(list).toHaveLength(1);
    expect(list[0]!.path).toMatch(/\/metadata\/[0-9a-f-]{36}-m0\.avro$/);
    expect(decodeManifest(await readFile(fileURLToPath(list[0]!.path)), list[0]!)).toHaveLength(1);
  });

  it('an unpartitioned table takes files, and a commit without files still records offsets', async () => {
    let table = await fx.catalog.createTable(ns, 'plain', logsSchema, []);
    expect(table.metadata['last-partition-id']).toBe(999);
    const key = fx.catalog.newDataFileKey(table, '');
    expect(key).toMatch(/^tables\/otel\/plain\/data\/\d{13}-[0-9a-f-]{36}\.parquet$/);
    await fx.store.put(key, Buffer.from('x'));
    const file: DataFile = { path: fx.catalog.uriOf(key), format: 'PARQUET', partition: {}, recordCount: 3, fileSizeBytes: 1 };
    table = await fx.catalog.commitAppend(table, [file], offsets(1));
    table = await fx.catalog.commitAppend(table, [], offsets(2));
    const reloaded = (await fx.newCatalog().loadTable(ns, 'plain'))!;
    expect(await fx.newCatalog().currentDataFiles(reloaded)).toEqual([file]);
    expect(currentSnapshot(reloaded.metadata)!.summary).toMatchObject({ 'added-data-files': '0', 'total-records': '3', ...offsets(2) });
    await expect(fx.catalog.commitAppend(table, [{ ...file, partition: { service_name: 'a' } }])).rejects.toThrow(/does not match the spec/);
  });

  it('version-hint.text names the current metadata file', async () => {
    let table = await createLogs();
    table = await fx.catalog.commitAppend(table, [await fx.putDataFile(table, 1, 'a', 1)]);
    const hint = (await fx.store.get(`${table.location.keyPrefix}metadata/version-hint.text`)).toString();
    expect(`${hint}.metadata.json`).toBe(table.metadataLocation.slice(table.metadataLocation.lastIndexOf('/') + 1));
  });

  it('DuckDB reads the committed data files at the paths the manifests give', async () => {
    let table = await createLogs();
    const key = fx.catalog.newDataFileKey(table, 'timestamp_hour=1/service_name=a');
    const scratch = join(fx.dir, 'scratch.parquet');
    const duck = await DuckDBInstance.create(':memory:');
    const conn = await duck.connect();
    try {
      await conn.run(`COPY (SELECT range AS n FROM range(42)) TO '${scratch}' (FORMAT parquet)`);
      await fx.store.put(key, await readFile(scratch));
      const size = (await fx.store.head(key))!.sizeBytes;
      table = await fx.catalog.commitAppend(table, [{ path: fx.catalog.uriOf(key), format: 'PARQUET', partition: { timestamp_hour: 1, service_name: 'a' }, recordCount: 42, fileSizeBytes: size }]);
      const files = await fx.newCatalog().currentDataFiles((await fx.newCatalog().loadTable(ns, 'otlp_logs'))!);
      const reader = await conn.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM read_parquet('${fileURLToPath(files[0]!.path)}')`);
      expect(reader.getRowObjectsJson()).toEqual([{ n: 42 }]);
    } finally {
      conn.closeSync();
      duck.closeSync();
    }
  });
});

describe('commit conflicts', () => {
  it('a commit from a stale table throws CommitConflictError and changes nothing', async () => {
    const base = await createLogs();
    const winner = await fx.catalog.commitAppend(base, [await fx.putDataFile(base, 1, 'a', 1)], offsets(1));
    const metadataBefore = await fx.metadataDirFiles(base);
    const loser = await fx.putDataFile(base, 1, 'b', 2);
    await expect(fx.catalog.commitAppend(base, [loser], offsets(2))).rejects.toBeInstanceOf(CommitConflictError);
    const now = (await fx.newCatalog().loadTable(ns, 'otlp_logs'))!;
    expect(now.metadataLocation).toBe(winner.metadataLocation);
    expect(now.revision).toBe(winner.revision);
    expect(currentSnapshot(now.metadata)!.summary['wharf.offsets']).toBe(offsets(1)['wharf.offsets']);
    expect((await fx.catalog.currentDataFiles(now)).map((f) => f.path)).not.toContain(loser.path);
    expect(await fx.metadataDirFiles(base)).toEqual(metadataBefore);
  });

  it('of two concurrent commits from one base exactly one wins', async () => {
    const base = await createLogs();
    const files = [await fx.putDataFile(base, 1, 'a', 1), await fx.putDataFile(base, 1, 'b', 1)];
    const results = await Promise.allSettled(files.map((f, i) => fx.catalog.commitAppend(base, [f], offsets(i))));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.reason).toBeInstanceOf(CommitConflictError);
    const now = (await fx.catalog.loadTable(ns, 'otlp_logs'))!;
    expect(now.version).toBe(1);
    expect(await fx.catalog.currentDataFiles(now)).toHaveLength(1);
  });
});

describe('replace (compaction)', () => {
  it('keeps the row count, drops the replaced files and carries wharf.* summary keys', async () => {
    let table = await createLogs();
    const [a, b, c] = [await fx.putDataFile(table, 7, 'x', 10), await fx.putDataFile(table, 7, 'x', 20), await fx.putDataFile(table, 8, 'y', 5)];
    table = await fx.catalog.commitAppend(table, [a!, b!], offsets(1));
    table = await fx.catalog.commitAppend(table, [c!], offsets(2));
    const merged = await fx.putDataFile(table, 7, 'x', 30);
    table = await fx.catalog.commitReplace(table, [a!, b!], [merged]);
    const files = await fx.newCatalog().currentDataFiles(table);
    expect(files.map((f) => f.path).sort()).toEqual([c!.path, merged.path].sort());
    expect(files.reduce((n, f) => n + f.recordCount, 0)).toBe(35);
    const summary = currentSnapshot(table.metadata)!.summary;
    expect(summary).toMatchObject({
      operation: 'replace', 'added-data-files': '1', 'deleted-data-files': '2', 'added-records': '30', 'deleted-records': '30',
      'total-records': '35', 'total-data-files': '2', ...offsets(2),
    });
    // The rewritten manifest records the replaced files as DELETED by this snapshot, with the
    // sequence number they were added at.
    const list = decodeManifestList(await fx.store.get(fx.uris.keyOf(currentSnapshot(table.metadata)!['manifest-list'])));
    const entries = (await Promise.all(list.map(async (m) => decodeManifest(await fx.store.get(fx.uris.keyOf(m.path)), m)))).flat();
    const deleted = entries.filter((e) => e.status === 2);
    expect(deleted.map((e) => [e.file.path, e.snapshotId, e.sequenceNumber])).toEqual(
      [a!, b!].map((f) => [f.path, currentSnapshot(table.metadata)!['snapshot-id'], 1]),
    );
    expect(entries.find((e) => e.file.path === c!.path)).toMatchObject({ status: 1, sequenceNumber: 2 });
  });

  it('refuses to replace files that are no longer in the table, or to change the row count', async () => {
    let table = await createLogs();
    const a = await fx.putDataFile(table, 7, 'x', 10);
    table = await fx.catalog.commitAppend(table, [a]);
    const b = await fx.putDataFile(table, 7, 'x', 10);
    table = await fx.catalog.commitReplace(table, [a], [b]);
    const c = await fx.putDataFile(table, 7, 'x', 10);
    const before = await fx.metadataDirFiles(table);
    await expect(fx.catalog.commitReplace(table, [a], [c])).rejects.toBeInstanceOf(ReplacedFilesMissingError);
    await expect(fx.catalog.commitReplace(table, [b], [{ ...c, recordCount: 9 }])).rejects.toThrow(/keep the rows/);
    expect(await fx.metadataDirFiles(table)).toEqual(before);
  });
});

describe('schema evolution', () => {
  const desired: IcebergSchema = {
    type: 'struct',
    'schema-id': 0,
    fields: [
      // Same names, different ids in the desired schema: the table's ids win.
      { id: 11, name: 'timestamp', required: true, type: 'timestamptz' },
      { id: 12, name: 'service_name', required: false, type: 'string' },
      { id: 13, name: 'body', required: false, type: 'string' },
      {
        id: 14, name: 'resource', required: false,
        type: { type: 'struct', fields: [{ id: 15, name: 'host', required: false, type: 'string' }, { id: 16, name: 'pod', required: true, type: 'string' }] },
      },
      { id: 17, name: 'attributes', required: true, type: { type: 'map', 'key-id': 18, key: 'string', 'value-id': 19, value: 'string', 'value-required': false } },
      { id: 20, name: 'tags', required: false, type: { type: 'list', 'element-id': 21, element: 'string', 'element-required': true } },
    ],
  };

  it('adds missing columns with new ids above last-column-id and keeps existing ids', async () => {
    const table = await createLogs();
    const evolved = await fx.catalog.evolveSchema(table, desired);
    const meta = (await fx.newCatalog().loadTable(ns, 'otlp_logs'))!.metadata;
    expect(meta['current-schema-id']).toBe(1);
    expect(meta.schemas.map((s) => s['schema-id'])).toEqual([0, 1]);
    expect(meta.schemas[0]).toEqual({ ...logsSchema, 'schema-id': 0 });
    const schema = meta.schemas[1]!;
    expect(schema.fields.map((f) => [f.name, f.id])).toEqual([['timestamp', 1], ['service_name', 2], ['body', 3], ['resource', 4], ['attributes', 7], ['tags', 10]]);
    expect(schema.fields[3]!.type).toEqual({ type: 'struct', fields: [{ id: 5, name: 'host', required: false, type: 'string' }, { id: 6, name: 'pod', required: false, type: 'string' }] });
    expect(schema.fields[4]).toEqual({ id: 7, name: 'attributes', required: false, type: { type: 'map', 'key-id': 8, key: 'string', 'value-id': 9, value: 'string', 'value-required': false } });
    expect(schema.fields[5]!.type).toMatchObject({ 'element-id': 11 });
    expect(meta['last-column-id']).toBe(11);
    expect(evolved.version).toBe(1);
    // Nothing missing any more: no new version.
    expect(await fx.catalog.evolveSchema(evolved, desired)).toBe(evolved);
    expect(await fx.catalog.evolveSchema(evolved, logsSchema)).toBe(evolved);
  });

  it('a type change is refused', async () => {
    const table = await createLogs();
    const changed: IcebergSchema = { ...logsSchema, fields: [{ id: 1, name: 'timestamp', required: true, type: 'long' }] };
    await expect(fx.catalog.evolveSchema(table, changed)).rejects.toBeInstanceOf(SchemaEvolutionError);
  });

  it('appends after evolution record the new schema id on the snapshot', async () => {
    let table = await fx.catalog.evolveSchema(await createLogs(), desired);
    table = await fx.catalog.commitAppend(table, [await fx.putDataFile(table, 1, 'a', 1)]);
    expect(currentSnapshot(table.metadata)!['schema-id']).toBe(1);
  });
});

describe('manifest merging', () => {
  it('keeps the manifest list short and the files and their sequence numbers intact', async () => {
    let table = await fx.catalog.createTable(ns, 'merged', logsSchema, ['hour(timestamp)', 'identity(service_name)'], { 'commit.manifest.min-count-to-merge': '4' });
    const written: DataFile[] = [];
    for (let i = 0; i < 9; i++) {
      const f = await fx.putDataFile(table, i, 's', i + 1);
      written.push(f);
      table = await fx.catalog.commitAppend(table, [f]);
      const list = decodeManifestList(await fx.store.get(fx.uris.keyOf(currentSnapshot(table.metadata)!['manifest-list'])));
      expect(list.length).toBeLessThan(4);
    }
    const list = decodeManifestList(await fx.store.get(fx.uris.keyOf(currentSnapshot(table.metadata)!['manifest-list'])));
    const entries = (await Promise.all(list.map(async (m) => decodeManifest(await fx.store.get(fx.uris.keyOf(m.path)), m)))).flat();
    expect(entries.map((e) => e.file.path).sort()).toEqual(written.map((f) => f.path).sort());
    for (const e of entries) {
      const appendedAt = written.findIndex((f) => f.path === e.file.path) + 1;
      expect(e.sequenceNumber).toBe(appendedAt);
      expect(e.fileSequenceNumber).toBe(appendedAt);
    }
    expect(currentSnapshot(table.metadata)!.summary['total-records']).toBe(String(45));
  });
});
