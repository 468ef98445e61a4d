// Where a table's files live on the object store, and the write time each file name carries
// (the object store has no mtime; orphan cleanup needs an age).
//
//   <table>/metadata/<00000 version>-<uuid>.metadata.json   table metadata (immutable)
//   <table>/metadata/snap-<snapshot id>-<attempt>-<uuid>.avro manifest list
//   <table>/metadata/<uuid>-m<n>.avro                         manifest
//   <table>/metadata/version-hint.text                        name of the current metadata file
//   <table>/data/<partition path>/<write ms>-<uuid>.parquet   data files
//
// Names follow the Java implementation; the uuids of metadata files are version 7 (RFC 9562), whose
// first 48 bits are the write time in Unix ms, so every file Wharf writes has a readable age.

import { randomBytes, randomUUID } from 'node:crypto';

export const VERSION_HINT = 'version-hint.text';

/** A UUID version 7 for the given time: 48-bit ms timestamp, version, variant, random bits. */
export function uuidV7(nowMs: number): string {
  const bytes = randomBytes(16);
  const ms = BigInt(Math.max(0, Math.floor(nowMs)));
  for (let i = 0; i < 6; i++) bytes[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function metadataFileKey(tablePrefix: string, version: number, nowMs: number): string {
  return `${tablePrefix}metadata/${String(version).padStart(5, '0')}-${uuidV7(nowMs)}.metadata.json`;
}

export function manifestListKey(tablePrefix: string, snapshotId: number, nowMs: number): string {
  return `${tablePrefix}metadata/snap-${snapshotId}-1-${uuidV7(nowMs)}.avro`;
}

/** Keys for the manifests of one commit, one per call: <uuid>-m0.avro, <uuid>-m1.avro, ... */
export function manifestKeyFactory(tablePrefix: string, nowMs: number): () => string {
  const uuid = uuidV7(nowMs);
  let next = 0;
  return () => `${tablePrefix}metadata/${uuid}-m${next++}.avro`;
}

/** A fresh data file key under data/, in the partition's directory ('' for unpartitioned). */
export function dataFileKey(tablePrefix: string, partitionPath: string, nowMs: number): string {
  const dir = partitionPath === '' ? '' : partitionPath + '/';
  return `${tablePrefix}data/${dir}${Math.floor(nowMs)}-${randomUUID()}.parquet`;
}

/** The version number of a metadata file name (00012-<uuid>.metadata.json -> 12). */
export function versionOfMetadataFile(keyOrUri: string): number {
  const m = /(?:^|\/)(\d+)-[0-9a-f-]{36}\.metadata\.json$/.exec(keyOrUri);
  if (m === null) throw new Error(`not a metadata file name: ${keyOrUri}`);
  return Number(m[1]);
}

const DATA_FILE = /\/data\/(?:.+\/)?(\d{13})-[0-9a-f-]{36}\.parquet$/;
const UUID_V7 = /([0-9a-f]{8})-([0-9a-f]{4})-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/;
const METADATA_FILE = /\/metadata\/(?:\d+-|snap-\d+-\d+-)?([0-9a-f-]{36})(?:-m\d+\.avro|\.avro|\.metadata\.json)$/;

/**
 * When a file Wharf wrote was written (Unix ms), from its name; undefined for names it did not
 * produce (those are never treated as orphans).
 */
export function writeTimeOfKey(key: string): number | undefined {
  const data = DATA_FILE.exec(key);
  if (data !== null) return Number(data[1]);
  const meta = METADATA_FILE.exec(key);
  if (meta === null) return undefined;
  const uuid = UUID_V7.exec(meta[1]!);
  if (uuid === null) return undefined;
  return parseInt(uuid[1]! + uuid[2]!, 16);
}
