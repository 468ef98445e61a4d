// Table maintenance on a real object store: expiring snapshots deletes exactly the files that
// only expired snapshots used, old metadata files go after each commit, and orphan cleanup
// removes files no commit references (a crashed writer's) while keeping committed ones.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DataFile, LoadedTable } from '../../../connectors/table/iceberg/catalog.ts';
import { decodeManifestList } from '../../../connectors/table/iceberg/manifest.ts';
import { snapshotsToExpire } from '../../../connectors/table/iceberg/maintenance.ts';
import { currentSnapshot } from '../../../connectors/table/iceberg/metadata.ts';
import { produceAppend } from '../../../connectors/table/iceberg/snapshot.ts';
import { TableFiles } from '../../../connectors/table/iceberg/table-files.ts';
import { IcebergFixture, logsSchema } from './iceberg-support.ts';

const fx = new IcebergFixture();
const ns = ['otel'];

beforeEach(async () => {
  await fx.open();
});

afterEach(async () => {
  await fx.close();
});

async function createTable(properties: Record<string, string> = {}): Promise<LoadedTable> {
  return await fx.catalog.createTable(ns, 'logs', logsSchema, ['hour(timestamp)', 'identity(service_name)'], properties);
}

/** Keys of everything the current snapshot needs: its list, manifests and data files. */
async function filesOfCurrent(table: LoadedTable): Promise<string[]> {
  const snapshot = currentSnapshot(table.metadata)!;
  const list = decodeManifestList(await fx.store.get(fx.uris.keyOf(snapshot['manifest-list'])));
  const data = await fx.newCatalog().currentDataFiles(table);
  return [snapshot['manifest-list'], ...list.map((m) => m.path), ...data.map((f) => f.path)].map((u) => fx.uris.keyOf(u));
}

describe('expireSnapshots', () => {
  it('deletes what only expired snapshots referenced and keeps all the current snapshot needs', async () => {
    let table = await createTable({ 'history.expire.max-snapshot-age-ms': '60000' });
    const a = await fx.putDataFile(table, 1, 'x', 10);
    table = await fx.catalog.commitAppend(table, [a], { 'wharf.offsets': '{"0":1}' });
    const s1 = currentSnapshot(table.metadata)!;
    const s1Manifests = decodeManifestList(await fx.store.get(fx.uris.keyOf(s1['manifest-list'])));
    fx.clockMs += 1000;
    const b = await fx.putDataFile(table, 1, 'x', 20);
    table = await fx.catalog.commitAppend(table, [b], { 'wharf.offsets': '{"0":2}' });
    const s2 = currentSnapshot(table.metadata)!;
    fx.clockMs += 1000;
    const c = await fx.putDataFile(table, 1, 'x', 10);
    table = await fx.catalog.commitReplace(table, [a], [c]);
    const s3 = currentSnapshot(table.metadata)!;

    // Nothing is old enough yet.
    const early = await fx.catalog.expireSnapshots(table, fx.clockMs + 1000);
    expect(early.deletedKeys).toEqual([]);
    expect(early.table).toBe(table);

    fx.clockMs += 120_000;
    const { table: after, deletedKeys } = await fx.catalog.expireSnapshots(table, fx.clockMs);
    expect(after.metadata.snapshots.map((s) => s['snapshot-id'])).toEqual([s3['snapshot-id']]);
    expect(after.metadata['snapshot-log'].map((e) => e['snapshot-id'])).toEqual([s3['snapshot-id']]);
    expect(currentSnapshot(after.metadata)!.summary['wharf.offsets']).toBe('{"0":2}');
    // a's manifest (rewritten by the replace), both old lists and a itself go; b's manifest,
    // carried into s3, stays.
    expect(deletedKeys.sort()).toEqual([s1['manifest-list'], s2['manifest-list'], s1Manifests[0]!.path, a.path].map((u) => fx.uris.keyOf(u)).sort());
    for (const key of deletedKeys) expect(await fx.exists(key)).toBe(false);
    for (const key of await filesOfCurrent(after)) expect(await fx.exists(key)).toBe(true);
    expect((await fx.newCatalog().currentDataFiles(after)).map((f) => f.path).sort()).toEqual([b.path, c.path].sort());
  });

  it('keeps min-snapshots-to-keep snapshots however old', async () => {
    let table = await createTable({ 'history.expire.max-snapshot-age-ms': '1000', 'history.expire.min-snapshots-to-keep': '2' });
    const files: DataFile[] = [];
    for (let i = 0; i < 4; i++) {
      files.push(await fx.putDataFile(table, i, 'x', 1));
      table = await fx.catalog.commitAppend(table, [files[i]!]);
    }
    fx.clockMs += 10_000;
    const { table: after, deletedKeys } = await fx.catalog.expireSnapshots(table, fx.clockMs);
    expect(after.metadata.snapshots).toHaveLength(2);
    // Appends delete no data file: every file is still live in the current snapshot.
    expect(deletedKeys.filter((k) => k.includes('/data/'))).toEqual([]);
    expect(await fx.catalog.currentDataFiles(after)).toHaveLength(4);
  });

  it('retention follows the main branch and refs (spec retention policy)', async () => {
    let table = await createTable({ 'history.expire.max-snapshot-age-ms': '5000' });
    for (let i = 0; i < 3; i++) {
      table = await fx.catalog.commitAppend(table, [await fx.putDataFile(table, i, 'x', 1)]);
      fx.clockMs += 3000;
    }
    const ids = table.metadata.snapshots.map((s) => s['snapshot-id']);
    // Snapshots aged 9 s, 6 s and 3 s: only the current one is younger than 5 s. Two seconds
    // earlier they were 7, 4 and 1 s old: the first alone had expired.
    expect([...snapshotsToExpire(table.metadata, fx.clockMs)].sort()).toEqual([ids[0]!, ids[1]!].sort());
    expect([...snapshotsToExpire(table.metadata, fx.clockMs - 2000)]).toEqual([ids[0]!]);
  });
});

describe('old metadata files', () => {
  it('are deleted after each commit beyond write.metadata.previous-versions-max', async () => {
    let table = await createTable({ 'write.metadata.previous-versions-max': '2' });
    const first = table.metadataLocation;
    for (let i = 0; i < 5; i++) table = await fx.catalog.commitAppend(table, [await fx.putDataFile(table, i, 'x', 1)]);
    expect(table.metadata['metadata-log']).toHaveLength(2);
    const metadataFiles = (await fx.metadataDirFiles(table)).filter((n) => n.endsWith('.metadata.json'));
    expect(metadataFiles.map((n) => n.slice(0, 5))).toEqual(['00003', '00004', '00005']);
    expect(await fx.exists(first)).toBe(false);
  });

  it('are kept when write.metadata.delete-after-commit.enabled is false', async () => {
    let table = await createTable({ 'write.metadata.previous-versions-max': '1', 'write.metadata.delete-after-commit.enabled': 'false' });
    for (let i = 0; i < 3; i++) table = await fx.catalog.commitAppend(table, [await fx.putDataFile(table, i, 'x', 1)]);
    expect(table.metadata['metadata-log']).toHaveLength(1);
    expect((await fx.metadataDirFiles(table)).filter((n) => n.endsWith('.metadata.json'))).toHaveLength(4);
  });
});

describe('deleteOrphans', () => {
  it('removes an uncommitted data file and a crashed commit\'s manifests, keeps committed and young files', async () => {
    let table = await createTable();
    const committed = await fx.putDataFile(table, 1, 'x', 5);
    table = await fx.catalog.commitAppend(table, [committed]);
    // A writer that put a file and died before committing it.
    const lost = await fx.putDataFile(table, 1, 'x', 7);
    // A writer that wrote its manifest and manifest list and died before the pointer swap.
    const crashedFile = await fx.putDataFile(table, 2, 'y', 3);
    const crashed = await produceAppend(
      { files: new TableFiles(fx.store, fx.uris), metadata: table.metadata, tablePrefix: table.location.keyPrefix, nowMs: fx.clockMs },
      [crashedFile], {},
    );
    expect(crashed.writtenKeys).toHaveLength(2);
    // A file some other tool put there, without a write time in its name.
    const foreign = `${table.location.keyPrefix}data/imported.parquet`;
    await fx.store.put(foreign, Buffer.from('x'));
    fx.clockMs += 60_000;
    const young = await fx.putDataFile(table, 3, 'z', 1);
    const before = await fx.keys(table.location.keyPrefix);

    const deleted = await fx.catalog.deleteOrphans(table, fx.clockMs - 30_000);
    const expected = [lost.path, crashedFile.path].map((u) => fx.uris.keyOf(u)).concat(crashed.writtenKeys);
    expect(deleted.sort()).toEqual(expected.sort());
    const after = await fx.keys(table.location.keyPrefix);
    expect(after.sort()).toEqual(before.filter((k) => !expected.includes(k)).sort());
    for (const key of [...await filesOfCurrent(table), fx.uris.keyOf(young.path), foreign, `${table.location.keyPrefix}metadata/version-hint.text`]) {
      expect(after).toContain(key);
    }
    expect(after.filter((k) => k.endsWith('.metadata.json'))).toHaveLength(2);
  });

  it('judges against the latest commit, not the table it was given', async () => {
    const stale = await createTable();
    const file = await fx.putDataFile(stale, 1, 'x', 1);
    await fx.catalog.commitAppend(stale, [file]);
    fx.clockMs += 60_000;
    expect(await fx.catalog.deleteOrphans(stale, fx.clockMs)).toEqual([]);
    expect(await fx.exists(file.path)).toBe(true);
  });
});
