// Reads and writes a table's metadata files on the object store: table metadata JSON, manifest
// lists and manifests. Every such file is immutable once written, so decoded files are cached
// by location (bounded LRUs); cached values are shared and must not be mutated by callers.

import type { ObjectStore } from '../../../src/storage/objectstore/objectstore.ts';
import type { ObjectUris } from '../../../src/storage/objectstore/uri.ts';
import { decodeManifest, decodeManifestList, encodeManifest, encodeManifestList, summarizeManifest } from './manifest.ts';
import type { ManifestEntry, ManifestFile, ManifestListMetadata, ManifestWriteContext } from './manifest.ts';
import { parseTableMetadata } from './metadata.ts';
import type { Snapshot, TableMetadata } from './metadata.ts';

export interface TableFilesLimits {
  /** Decoded manifest entries kept in memory, summed over cached manifests. */
  manifestCacheEntries: number;
  /** Decoded manifest lists kept. */
  manifestListCacheCount: number;
  /** Parsed table metadata files kept. */
  metadataCacheCount: number;
  /** Manifests read concurrently. */
  readConcurrency: number;
}

export const DEFAULT_TABLE_FILES_LIMITS: TableFilesLimits = {
  manifestCacheEntries: 200_000,
  manifestListCacheCount: 64,
  metadataCacheCount: 16,
  readConcurrency: 16,
};

/** A live (ADDED or EXISTING) entry with the manifest that lists it. */
export interface LiveEntry {
  entry: ManifestEntry;
  manifest: ManifestFile;
}

export class TableFiles {
  readonly store: ObjectStore;
  readonly uris: ObjectUris;
  readonly limits: TableFilesLimits;
  private readonly manifests: WeightedLru<ManifestEntry[]>;
  private readonly lists: WeightedLru<ManifestFile[]>;
  private readonly metadata: WeightedLru<TableMetadata>;

  constructor(store: ObjectStore, uris: ObjectUris, limits: Partial<TableFilesLimits> = {}) {
    this.store = store;
    this.uris = uris;
    this.limits = { ...DEFAULT_TABLE_FILES_LIMITS, ...limits };
    this.manifests = new WeightedLru(this.limits.manifestCacheEntries);
    this.lists = new WeightedLru(this.limits.manifestListCacheCount);
    this.metadata = new WeightedLru(this.limits.metadataCacheCount);
  }

  async readMetadata(uri: string): Promise<TableMetadata> {
    const cached = this.metadata.get(uri);
    if (cached !== undefined) return cached;
    const meta = parseTableMetadata((await this.store.get(this.uris.keyOf(uri))).toString('utf8'));
    this.metadata.set(uri, meta, 1);
    return meta;
  }

  async writeMetadata(key: string, meta: TableMetadata): Promise<string> {
    const uri = this.uris.uriOf(key);
    await this.store.put(key, Buffer.from(JSON.stringify(meta), 'utf8'));
    this.metadata.set(uri, meta, 1);
    return uri;
  }

  async readManifestList(uri: string): Promise<ManifestFile[]> {
    const cached = this.lists.get(uri);
    if (cached !== undefined) return cached;
    const list = decodeManifestList(await this.store.get(this.uris.keyOf(uri)));
    this.lists.set(uri, list, 1);
    return list;
  }

  async writeManifestList(key: string, manifests: ManifestFile[], meta: ManifestListMetadata): Promise<string> {
    const uri = this.uris.uriOf(key);
    await this.store.put(key, encodeManifestList(manifests, meta));
    this.lists.set(uri, manifests, 1);
    return uri;
  }

  /** Entries of a manifest with inherited sequence numbers and snapshot ids filled in. */
  async readManifest(manifest: ManifestFile): Promise<ManifestEntry[]> {
    const cached = this.manifests.get(manifest.path);
    if (cached !== undefined) return cached;
    const entries = decodeManifest(await this.store.get(this.uris.keyOf(manifest.path)), manifest);
    this.manifests.set(manifest.path, entries, Math.max(1, entries.length));
    return entries;
  }

  /** Writes a manifest; returns its manifest-list entry for the snapshot at `sequenceNumber`. */
  async writeManifest(key: string, entries: ManifestEntry[], ctx: ManifestWriteContext, at: { snapshotId: number; sequenceNumber: number }): Promise<ManifestFile> {
    const bytes = encodeManifest(entries, ctx);
    await this.store.put(key, bytes);
    const listed = summarizeManifest(entries, ctx.bound, { path: this.uris.uriOf(key), lengthBytes: bytes.length, ...at });
    const resolved = entries.map((e) => ({
      ...e,
      sequenceNumber: e.sequenceNumber ?? at.sequenceNumber,
      fileSequenceNumber: e.fileSequenceNumber ?? at.sequenceNumber,
    }));
    this.manifests.set(listed.path, resolved, Math.max(1, resolved.length));
    return listed;
  }

  /**
   * Every ADDED or EXISTING data file entry of a snapshot. Throws for a snapshot with delete
   * files (row-level deletes, which another engine may add): its data files alone would be wrong.
   */
  async liveEntries(snapshot: Snapshot): Promise<LiveEntry[]> {
    const manifests = await this.readManifestList(snapshot['manifest-list']);
    if (manifests.some((m) => m.content !== 0)) throw new Error(`snapshot ${snapshot['snapshot-id']} has delete files, which Wharf does not read`);
    const perManifest = await mapLimit(manifests, this.limits.readConcurrency, async (manifest) => {
      const entries = await this.readManifest(manifest);
      return entries.filter((e) => e.status !== 2).map((entry) => ({ entry, manifest }));
    });
    return perManifest.flat();
  }
}

/** Runs fn over items with at most `limit` calls in flight; results in item order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** An LRU bounded by the summed weight of its values. */
class WeightedLru<V> {
  private readonly maxWeight: number;
  private readonly entries = new Map<string, { value: V; weight: number }>();
  private weight = 0;

  constructor(maxWeight: number) {
    this.maxWeight = maxWeight;
  }

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  set(key: string, value: V, weight: number): void {
    if (weight > this.maxWeight) return;
    const old = this.entries.get(key);
    if (old !== undefined) {
      this.entries.delete(key);
      this.weight -= old.weight;
    }
    this.entries.set(key, { value, weight });
    this.weight += weight;
    while (this.weight > this.maxWeight) {
      const [oldestKey, oldest] = this.entries.entries().next().value!;
      this.entries.delete(oldestKey);
      this.weight -= oldest.weight;
    }
  }
}
