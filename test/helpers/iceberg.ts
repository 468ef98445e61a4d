// Reading Wharf's Iceberg tables the way an independent reader would: Avro manifest lists and
// manifests decoded with avsc straight from the object store (not with Wharf's own reader).

import avro from 'avsc';
import type { ObjectStore } from '../../src/storage/objectstore/index.ts';
import type { ObjectUris } from '../../src/storage/objectstore/uri.ts';

/** Decodes an Avro object container file with avsc's stream decoder. */
export async function readAvro(bytes: Buffer): Promise<Record<string, unknown>[]> {
  const records: Record<string, unknown>[] = [];
  await new Promise<void>((resolve, reject) => {
    const decoder = new avro.streams.BlockDecoder();
    decoder.on('data', (r: Record<string, unknown>) => records.push(r));
    decoder.on('end', () => resolve());
    decoder.on('error', reject);
    decoder.end(bytes);
  });
  return records;
}

export interface ManifestDataFile {
  status: number;
  file_path: string;
  record_count: number;
  partition: Record<string, unknown>;
}

/** The entries of every manifest of a snapshot's manifest list. */
export async function snapshotEntries(store: ObjectStore, uris: ObjectUris, manifestList: string): Promise<ManifestDataFile[]> {
  const entries: ManifestDataFile[] = [];
  for (const manifest of await readAvro(await store.get(uris.keyOf(manifestList)))) {
    for (const entry of await readAvro(await store.get(uris.keyOf(String(manifest.manifest_path))))) {
      const dataFile = entry.data_file as Omit<ManifestDataFile, 'status'>;
      entries.push({ status: Number(entry.status), ...dataFile, record_count: Number(dataFile.record_count) });
    }
  }
  return entries;
}
