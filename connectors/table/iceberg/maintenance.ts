// Table maintenance: snapshot expiry (table spec, "Snapshot Retention Policy") with deletion of
// the files only expired snapshots used, and orphan cleanup (files under the table that no
// metadata references, e.g. left by a writer that crashed before its commit).
//
// Which files expiry deletes is decided by reachability rather than by DELETED entries:
// manifest lists of expired snapshots; manifests that only expired snapshots list; data files
// that expired snapshots' manifests list and that no retained snapshot has live. Files outside
// the table's key prefix are never deleted.

import type { LoadedTable } from './catalog.ts';
import { VERSION_HINT, writeTimeOfKey } from './layout.ts';
import { EntryStatus } from './manifest.ts';
import type { ManifestFile } from './manifest.ts';
import { PROPERTY, intProperty, snapshotById, withoutSnapshots } from './metadata.ts';
import type { Snapshot, TableMetadata } from './metadata.ts';
import { mapLimit } from './table-files.ts';
import type { TableFiles } from './table-files.ts';

export interface MaintenanceContext {
  files: TableFiles;
  deleteKeys(keys: readonly string[]): Promise<void>;
  /** Commits metadata as the table's next version; returns the metadata files it dropped. */
  commit(table: LoadedTable, metadata: TableMetadata): Promise<{ table: LoadedTable; deletedKeys: string[] }>;
}

/**
 * Snapshots to expire at nowMs. Every ref's snapshot is retained; along each branch, ancestors
 * are retained while among its first min-snapshots-to-keep or younger than
 * max-snapshot-age-ms (the ref's own values first, then the table properties). Refs are never
 * removed here (history.expire.max-ref-age-ms is not applied).
 */
export function snapshotsToExpire(meta: TableMetadata, nowMs: number): Set<number> {
  const retained = new Set<number>();
  const refs = Object.values(meta.refs);
  if (meta['current-snapshot-id'] !== -1 && refs.length === 0) refs.push({ 'snapshot-id': meta['current-snapshot-id'], type: 'branch' });
  for (const ref of refs) {
    retained.add(ref['snapshot-id']);
    if (ref.type !== 'branch') continue;
    const maxAgeMs = ref['max-snapshot-age-ms'] ?? intProperty(meta, PROPERTY.maxSnapshotAgeMs);
    const minKeep = ref['min-snapshots-to-keep'] ?? intProperty(meta, PROPERTY.minSnapshotsToKeep);
    let snapshot = snapshotById(meta, ref['snapshot-id']);
    for (let i = 0; snapshot !== undefined; i++) {
      if (i >= minKeep && snapshot['timestamp-ms'] < nowMs - maxAgeMs) break;
      retained.add(snapshot['snapshot-id']);
      const parent = snapshot['parent-snapshot-id'];
      snapshot = parent === undefined ? undefined : snapshotById(meta, parent);
    }
  }
  return new Set(meta.snapshots.map((s) => s['snapshot-id']).filter((id) => !retained.has(id)));
}

export async function expireSnapshots(ctx: MaintenanceContext, table: LoadedTable, nowMs: number): Promise<{ table: LoadedTable; deletedKeys: string[] }> {
  const meta = table.metadata;
  const expired = snapshotsToExpire(meta, nowMs);
  if (expired.size === 0) return { table, deletedKeys: [] };
  const isExpired = (s: Snapshot): boolean => expired.has(s['snapshot-id']);
  const kept = await referencedFiles(ctx.files, meta.snapshots.filter((s) => !isExpired(s)), true);
  const gone = await referencedFiles(ctx.files, meta.snapshots.filter(isExpired), false);
  const committed = await ctx.commit(table, withoutSnapshots(meta, expired));
  const uris = [
    ...gone.manifestLists,
    ...[...gone.manifests].filter((uri) => !kept.manifests.has(uri)),
    ...[...gone.dataFiles].filter((uri) => !kept.dataFiles.has(uri)),
  ];
  const keys = keysInTable(table, uris);
  await ctx.deleteKeys(keys);
  return { table: committed.table, deletedKeys: [...committed.deletedKeys, ...keys] };
}

/**
 * Deletes keys under the table's data/ and metadata/ that `table` (its current metadata file,
 * metadata-log, snapshots with their manifest lists, manifests and every file they list) does
 * not reference and whose name says they were written before writtenBeforeMs. Keys without a
 * write time in their name (not written by Wharf) and version-hint.text are kept.
 */
export async function deleteOrphans(ctx: MaintenanceContext, table: LoadedTable, writtenBeforeMs: number): Promise<string[]> {
  const meta = table.metadata;
  const refs = await referencedFiles(ctx.files, meta.snapshots, false);
  const referenced = new Set(keysInTable(table, [
    table.metadataLocation,
    ...meta['metadata-log'].map((e) => e['metadata-file']),
    ...refs.manifestLists,
    ...refs.manifests,
    ...refs.dataFiles,
  ]));
  const prefix = table.location.keyPrefix;
  const listed = [...await ctx.files.store.list(`${prefix}data/`), ...await ctx.files.store.list(`${prefix}metadata/`)];
  const orphans = listed.map((o) => o.key).filter((key) => {
    if (referenced.has(key) || key === `${prefix}metadata/${VERSION_HINT}`) return false;
    const writtenMs = writeTimeOfKey(key);
    return writtenMs !== undefined && writtenMs < writtenBeforeMs;
  });
  await ctx.deleteKeys(orphans);
  return orphans;
}

interface ReferencedFiles {
  manifestLists: Set<string>;
  manifests: Set<string>;
  dataFiles: Set<string>;
}

/** URIs the snapshots use; data files of DELETED entries only when liveOnly is false. */
async function referencedFiles(files: TableFiles, snapshots: readonly Snapshot[], liveOnly: boolean): Promise<ReferencedFiles> {
  const out: ReferencedFiles = { manifestLists: new Set(), manifests: new Set(), dataFiles: new Set() };
  const manifests = new Map<string, ManifestFile>();
  const lists = await mapLimit(snapshots, files.limits.readConcurrency, (s) => files.readManifestList(s['manifest-list']));
  snapshots.forEach((s, i) => {
    out.manifestLists.add(s['manifest-list']);
    for (const m of lists[i]!) manifests.set(m.path, m);
  });
  const entries = await mapLimit([...manifests.values()], files.limits.readConcurrency, (m) => files.readManifest(m));
  for (const path of manifests.keys()) out.manifests.add(path);
  for (const list of entries) {
    for (const e of list) if (!liveOnly || e.status !== EntryStatus.DELETED) out.dataFiles.add(e.file.path);
  }
  return out;
}

/** Keys of the URIs that lie under the table's key prefix (others are never touched). */
function keysInTable(table: LoadedTable, uris: readonly string[]): string[] {
  const out: string[] = [];
  for (const uri of uris) {
    let key: string;
    try {
      key = table.location.keyOf(uri);
    } catch {
      continue;
    }
    if (key.startsWith(table.location.keyPrefix)) out.push(key);
  }
  return out;
}
