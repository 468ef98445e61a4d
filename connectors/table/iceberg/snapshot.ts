// Producing a new snapshot: the manifests and the manifest list of an append or a replace, and
// the table metadata with the snapshot added. Nothing is committed here (catalog.ts swaps the
// pointer); the files written are returned so that a failed commit can remove them.
//
// Append (a "fast append", spec "Snapshots"): one new manifest holds only the new files; the
// list is that manifest plus the parent's manifests. When the list would reach
// commit.manifest.min-count-to-merge manifests, the parent's small manifests (below
// commit.manifest.target-size-bytes) are merged into one, their live files as EXISTING entries
// with explicit sequence numbers (spec "Sequence Number Inheritance"), as Java's merge append does.
//
// Replace (compaction): each manifest that lists a replaced file is rewritten with that file as
// DELETED (snapshot id of the replace, original sequence numbers) and its other live files as
// EXISTING; a new manifest holds the added files as ADDED. The replaced files must still be live
// (spec "Commit Conflict Resolution and Retry"). Manifests left with no live file (only
// DELETED entries of an older snapshot) are not carried into the next list.

import { ReplacedFilesMissingError } from './errors.ts';
import { manifestKeyFactory, manifestListKey } from './layout.ts';
import { EntryStatus } from './manifest.ts';
import type { DataFile, ManifestEntry, ManifestFile } from './manifest.ts';
import {
  PROPERTY, boolProperty, currentSchema, currentSnapshot, defaultSpec, intProperty, newSnapshotId, specById, withNewSnapshot,
} from './metadata.ts';
import type { Snapshot, SnapshotSummary, TableMetadata } from './metadata.ts';
import { bindPartitionSpec } from './partitioning.ts';
import type { BoundPartitionSpec } from './partitioning.ts';
import { mapLimit } from './table-files.ts';
import type { TableFiles } from './table-files.ts';

export interface SnapshotInput {
  files: TableFiles;
  metadata: TableMetadata;
  /** Key prefix of the table on the object store ('tables/ns/name/'). */
  tablePrefix: string;
  nowMs: number;
}

export interface ProducedSnapshot {
  /** The input metadata with the new snapshot added and made current. */
  metadata: TableMetadata;
  /** Keys written (manifests and manifest list). */
  writtenKeys: string[];
}

/** Summary keys of this prefix are carried from snapshot to snapshot by replaces. */
export const CARRIED_SUMMARY_PREFIX = 'wharf.';

interface Producer {
  input: SnapshotInput;
  parent: Snapshot | undefined;
  snapshotId: number;
  sequenceNumber: number;
  bound: BoundPartitionSpec;
  nextManifestKey: () => string;
  writtenKeys: string[];
}

function begin(input: SnapshotInput): Producer {
  const meta = input.metadata;
  return {
    input,
    parent: currentSnapshot(meta),
    snapshotId: newSnapshotId(meta),
    sequenceNumber: meta['last-sequence-number'] + 1,
    bound: bindPartitionSpec(currentSchema(meta), defaultSpec(meta)),
    nextManifestKey: manifestKeyFactory(input.tablePrefix, input.nowMs),
    writtenKeys: [],
  };
}

export async function produceAppend(input: SnapshotInput, added: readonly DataFile[], extraSummary: Readonly<Record<string, string>>): Promise<ProducedSnapshot> {
  const p = begin(input);
  for (const f of added) checkDataFile(f, p.bound);
  if ('operation' in extraSummary) throw new Error('extraSummary may not set operation');
  return await cleanUpOnError(input, p, async () => {
    let carried = await carriedManifests(p);
    carried = await maybeMerge(p, carried);
    const created = added.length === 0 ? [] : [await writeEntries(p, p.bound, added.map((file) => newEntry(p, file)))];
    const manifests = [...created, ...carried];
    const summary: SnapshotSummary = {
      ...extraSummary,
      operation: 'append',
      'added-data-files': String(added.length),
      'added-records': String(sum(added, (f) => f.recordCount)),
      'added-files-size': String(sum(added, (f) => f.fileSizeBytes)),
      'changed-partition-count': String(distinctPartitions(added)),
      ...totals(p, manifests, sum(added, (f) => f.fileSizeBytes)),
    };
    return await finish(p, manifests, summary);
  });
}

export async function produceReplace(input: SnapshotInput, removed: readonly DataFile[], added: readonly DataFile[]): Promise<ProducedSnapshot> {
  const p = begin(input);
  for (const f of added) checkDataFile(f, p.bound);
  const removedRows = sum(removed, (f) => f.recordCount);
  const addedRows = sum(added, (f) => f.recordCount);
  if (removed.length === 0) throw new Error('a replace must remove at least one file');
  if (removedRows !== addedRows) throw new Error(`a replace must keep the rows: removes ${removedRows}, adds ${addedRows}`);
  const removedPaths = new Set(removed.map((f) => f.path));
  if (removedPaths.size !== removed.length) throw new Error('a replace lists a removed file twice');
  return await cleanUpOnError(input, p, async () => {
    const { manifests: carried, deleted } = await rewriteWithout(p, removedPaths);
    const created = added.length === 0 ? [] : [await writeEntries(p, p.bound, added.map((file) => newEntry(p, file)))];
    const manifests = [...created, ...carried];
    const removedBytes = sum(deleted, (e) => e.file.fileSizeBytes);
    const summary: SnapshotSummary = {
      ...carriedSummary(p.parent),
      operation: 'replace',
      'added-data-files': String(added.length),
      'deleted-data-files': String(deleted.length),
      'added-records': String(addedRows),
      'deleted-records': String(removedRows),
      'added-files-size': String(sum(added, (f) => f.fileSizeBytes)),
      'removed-files-size': String(removedBytes),
      'changed-partition-count': String(distinctPartitions([...added, ...deleted.map((e) => e.file)])),
      ...totals(p, manifests, sum(added, (f) => f.fileSizeBytes) - removedBytes),
    };
    return await finish(p, manifests, summary);
  });
}

/** The parent's manifests that still list live files. */
async function carriedManifests(p: Producer): Promise<ManifestFile[]> {
  if (p.parent === undefined) return [];
  const list = await p.input.files.readManifestList(p.parent['manifest-list']);
  return list.filter((m) => m.addedFilesCount + m.existingFilesCount > 0);
}

async function maybeMerge(p: Producer, carried: ManifestFile[]): Promise<ManifestFile[]> {
  const meta = p.input.metadata;
  if (!boolProperty(meta, PROPERTY.manifestMergeEnabled)) return carried;
  if (carried.length + 1 < intProperty(meta, PROPERTY.manifestMinCountToMerge)) return carried;
  const target = intProperty(meta, PROPERTY.manifestTargetSizeBytes);
  const specId = p.bound.spec['spec-id'];
  const small = carried.filter((m) => m.partitionSpecId === specId && m.content === 0 && m.lengthBytes < target);
  if (small.length < 2) return carried;
  const perManifest = await mapLimit(small, p.input.files.limits.readConcurrency, (m) => p.input.files.readManifest(m));
  const existing = perManifest.flat().filter((e) => e.status !== EntryStatus.DELETED).map((e) => ({ ...e, status: EntryStatus.EXISTING }));
  const merged = await writeEntries(p, p.bound, existing);
  const smallPaths = new Set(small.map((m) => m.path));
  return [merged, ...carried.filter((m) => !smallPaths.has(m.path))];
}

/** The parent's manifests with `removed` marked DELETED in rewritten copies. */
async function rewriteWithout(p: Producer, removed: ReadonlySet<string>): Promise<{ manifests: ManifestFile[]; deleted: ManifestEntry[] }> {
  const carried = await carriedManifests(p);
  const entries = await mapLimit(carried, p.input.files.limits.readConcurrency, (m) => p.input.files.readManifest(m));
  const deleted: ManifestEntry[] = [];
  const rewrites: Array<{ index: number; entries: ManifestEntry[] }> = [];
  carried.forEach((m, index) => {
    const live = entries[index]!.filter((e) => e.status !== EntryStatus.DELETED);
    if (!live.some((e) => removed.has(e.file.path))) return;
    rewrites.push({
      index,
      entries: live.map((e) => {
        if (!removed.has(e.file.path)) return { ...e, status: EntryStatus.EXISTING };
        const gone = { ...e, status: EntryStatus.DELETED, snapshotId: p.snapshotId };
        deleted.push(gone);
        return gone;
      }),
    });
  });
  if (deleted.length !== removed.size) {
    const found = new Set(deleted.map((e) => e.file.path));
    throw new ReplacedFilesMissingError([...removed].filter((path) => !found.has(path)));
  }
  const manifests = [...carried];
  for (const r of rewrites) {
    const spec = specById(p.input.metadata, carried[r.index]!.partitionSpecId);
    manifests[r.index] = await writeEntries(p, bindPartitionSpec(currentSchema(p.input.metadata), spec), r.entries);
  }
  return { manifests, deleted };
}

function newEntry(p: Producer, file: DataFile): ManifestEntry {
  return { status: EntryStatus.ADDED, snapshotId: p.snapshotId, sequenceNumber: null, fileSequenceNumber: null, file };
}

async function writeEntries(p: Producer, bound: BoundPartitionSpec, entries: ManifestEntry[]): Promise<ManifestFile> {
  const key = p.nextManifestKey();
  p.writtenKeys.push(key);
  const ctx = { schema: currentSchema(p.input.metadata), bound };
  return await p.input.files.writeManifest(key, entries, ctx, { snapshotId: p.snapshotId, sequenceNumber: p.sequenceNumber });
}

async function finish(p: Producer, manifests: ManifestFile[], summary: SnapshotSummary): Promise<ProducedSnapshot> {
  const key = manifestListKey(p.input.tablePrefix, p.snapshotId, p.input.nowMs);
  p.writtenKeys.push(key);
  const parentId = p.parent?.['snapshot-id'];
  const listUri = await p.input.files.writeManifestList(key, manifests, { snapshotId: p.snapshotId, parentSnapshotId: parentId, sequenceNumber: p.sequenceNumber });
  const snapshot: Snapshot = {
    'snapshot-id': p.snapshotId,
    ...(parentId === undefined ? {} : { 'parent-snapshot-id': parentId }),
    'sequence-number': p.sequenceNumber,
    'timestamp-ms': Math.max(p.input.nowMs, p.parent?.['timestamp-ms'] ?? 0),
    'manifest-list': listUri,
    summary,
    'schema-id': p.input.metadata['current-schema-id'],
  };
  return { metadata: withNewSnapshot(p.input.metadata, snapshot), writtenKeys: p.writtenKeys };
}

async function cleanUpOnError(input: SnapshotInput, p: Producer, body: () => Promise<ProducedSnapshot>): Promise<ProducedSnapshot> {
  try {
    return await body();
  } catch (err) {
    await input.files.store.delete(p.writtenKeys).catch(() => undefined);
    throw err;
  }
}

// ---- summaries ----

function totals(p: Producer, manifests: readonly ManifestFile[], sizeDeltaBytes: number): Record<string, string> {
  const out: Record<string, string> = {
    'total-data-files': String(sum(manifests, (m) => m.addedFilesCount + m.existingFilesCount)),
    'total-records': String(sum(manifests, (m) => m.addedRowsCount + m.existingRowsCount)),
    'total-delete-files': '0',
    'total-position-deletes': '0',
    'total-equality-deletes': '0',
  };
  const parentSize = p.parent === undefined ? 0 : Number(p.parent.summary['total-files-size']);
  if (Number.isSafeInteger(parentSize)) out['total-files-size'] = String(parentSize + sizeDeltaBytes);
  return out;
}

function carriedSummary(parent: Snapshot | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (parent === undefined) return out;
  for (const [key, value] of Object.entries(parent.summary)) if (key.startsWith(CARRIED_SUMMARY_PREFIX)) out[key] = value;
  return out;
}

function distinctPartitions(files: readonly DataFile[]): number {
  return new Set(files.map((f) => JSON.stringify(f.partition))).size;
}

function sum<T>(items: readonly T[], of: (item: T) => number): number {
  let total = 0;
  for (const item of items) total += of(item);
  return total;
}

/** A data file must carry exactly the spec's partition fields and sane counts. */
function checkDataFile(f: DataFile, bound: BoundPartitionSpec): void {
  if (!Number.isSafeInteger(f.recordCount) || f.recordCount < 0) throw new Error(`${f.path}: bad recordCount ${f.recordCount}`);
  if (!Number.isSafeInteger(f.fileSizeBytes) || f.fileSizeBytes <= 0) throw new Error(`${f.path}: bad fileSizeBytes ${f.fileSizeBytes}`);
  const names = bound.fields.map((b) => b.field.name);
  const keys = Object.keys(f.partition);
  if (keys.length !== names.length || !names.every((n) => n in f.partition)) {
    throw new Error(`${f.path}: partition ${JSON.stringify(f.partition)} does not match the spec fields ${names.join(', ')}`);
  }
}
