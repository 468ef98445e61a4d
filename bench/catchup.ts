// Catch-up read throughput: stream storage on an object store, batches of 1 KiB records across 8
// streams appended (through the file WAL) and uploaded to objects with the default upload policy;
// then a fresh storage (another node: empty log cache, empty block cache, empty WAL) reads every
// stream from offset 0, 1 MiB a read, as a Kafka consumer would:
//   - sequential: one stream after the other (one consumer);
//   - parallel: the 8 streams at once (8 consumers), on another fresh storage.
// Counts object-store GETs (tails and data) per GiB read. Runs on the local directory store
// (BENCH_CATCHUP_MIB, default 1024 MiB) and on s3rver over loopback through @aws-sdk/client-s3
// (BENCH_CATCHUP_S3_MIB, default 256 MiB: s3rver writes slowly); BENCH_CATCHUP_STORES=local,s3
// chooses. Prints a table for people and one JSON line per figure: {"bench", "metric", "value",
// "unit"}; the s3rver figures are prefixed s3_.
//
//   node bench/catchup.ts
//
// The objects were just written: they are most likely in the OS page cache, so this measures
// Wharf's read path (GET planning, block cache, read-ahead, batch walking) and, on s3rver, the
// S3 client and server over HTTP, not the disk.

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { ClusterModel } from '../src/metadata/cluster-model.ts';
import { EmbeddedMetadataStore } from '../src/metadata/embedded.ts';
import { createObjectStore } from '../src/storage/objectstore/index.ts';
import { LocalObjectStore } from '../src/storage/objectstore/local.ts';
import type { ObjectStore } from '../src/storage/objectstore/objectstore.ts';
import { StreamStorageImpl } from '../src/storage/stream-storage.ts';
import { loadConfig } from '../src/config/config.ts';
import type { Stream } from '../src/storage/stream.ts';
import { FileWal } from '../src/storage/wal/file-wal.ts';
import { CountingStore } from '../test/helpers/counting-store.ts';
import { startS3rver } from '../test/helpers/s3rver.ts';
import { Figures, REPO } from './lib.ts';

const MiB = 1024 * 1024;
const LOCAL_BYTES = Number(process.env.BENCH_CATCHUP_MIB ?? 1024) * MiB;
const S3_BYTES = Number(process.env.BENCH_CATCHUP_S3_MIB ?? 256) * MiB;
const STORES = (process.env.BENCH_CATCHUP_STORES ?? 'local,s3').split(',');
const STREAMS = 8;
const RECORD_BYTES = 1024;
const RECORDS_PER_BATCH = 16;
/** A v2 batch: 61-byte header, then records (1 KiB each, framing included). */
const BATCH_BYTES = 61 + RECORDS_PER_BATCH * RECORD_BYTES;
const READ_MAX_BYTES = MiB;
/** Appends in flight per stream while loading. */
const APPEND_WINDOW = 64;

const figures = new Figures();
/** Prefix of the figures of the store being measured ('' for local, 's3_'). */
let prefix = '';
function report(metric: string, value: number, unit: string): void {
  figures.report('catchup', prefix + metric, value, unit);
}

/** A batch frame shaped like Kafka v2 (the storage never decodes records): a few templates, re-headed. */
const templates = Array.from({ length: 16 }, () => randomBytes(BATCH_BYTES));
function batchAt(baseOffset: number, n: number): Buffer {
  const batch = Buffer.from(templates[n % templates.length]!);
  batch.writeBigInt64BE(BigInt(baseOffset), 0);
  batch.writeInt32BE(BATCH_BYTES - 12, 8);
  batch.writeInt8(2, 16);
  batch.writeInt32BE(RECORDS_PER_BATCH - 1, 23);
  return batch;
}

const config = loadConfig({ env: { ...process.env, WHARF_CONFIG: '' } }); // no wharf.yaml: defaults and WHARF_* settings
let nextNodeId = 1;
async function newStorage(dir: string, metadata: ClusterModel, store: ObjectStore): Promise<{ storage: StreamStorageImpl; wal: FileWal }> {
  const nodeId = nextNodeId++;
  const wal = await FileWal.open({ path: path.join(dir, `wal-${nodeId}`), capacityBytes: 512 * MiB, nodeId });
  // The caches as a broker sizes them by default (or as WHARF_* settings say).
  const storage = new StreamStorageImpl({
    nodeId, wal, metadata, objectStore: store,
    logCacheSizeBytes: config.logCacheSizeBytes,
    blockCacheSizeBytes: config.blockCacheSizeBytes,
    readAheadMaxBytes: config.readAheadMaxBytes,
  });
  await storage.start();
  return { storage, wal };
}

async function load(stream: Stream, bytes: number): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  for (let n = 0, written = 0; written < bytes; n++, written += BATCH_BYTES) {
    const append = stream.append({ baseOffset: stream.nextOffset(), offsetCount: RECORDS_PER_BATCH, batch: batchAt(stream.nextOffset(), n) });
    inFlight.add(append);
    void append.finally(() => inFlight.delete(append));
    if (inFlight.size >= APPEND_WINDOW) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
}

/** Reads the stream from 0 to its end; checks the offsets follow on; returns the bytes read. */
async function readStream(stream: Stream): Promise<number> {
  let bytes = 0;
  for (let next = 0; next < stream.confirmedOffset(); ) {
    const result = await stream.read(next, READ_MAX_BYTES);
    for (const batch of result.batches) {
      if (Number(batch.readBigInt64BE(0)) !== next) throw new Error(`stream ${stream.streamId}: batch at ${batch.readBigInt64BE(0)}, expected ${next}`);
      next += RECORDS_PER_BATCH;
      bytes += batch.length;
    }
    if (next !== result.nextOffset) throw new Error(`stream ${stream.streamId}: nextOffset ${result.nextOffset}, expected ${next}`);
  }
  return bytes;
}

async function measure(name: string, dir: string, metadata: ClusterModel, store: CountingStore, streamIds: number[], parallel: boolean): Promise<void> {
  const { storage, wal } = await newStorage(dir, metadata, store);
  const streams: Stream[] = [];
  for (const id of streamIds) streams.push(await storage.openStream(id));
  const getsBefore = store.gets;
  const bytesBefore = store.bytesRead;
  const start = performance.now();
  let bytes = 0;
  if (parallel) {
    for (const b of await Promise.all(streams.map((stream) => readStream(stream)))) bytes += b;
  } else {
    for (const stream of streams) bytes += await readStream(stream);
  }
  const seconds = (performance.now() - start) / 1000;
  const gets = store.gets - getsBefore;
  const gib = bytes / 2 ** 30;
  report(`${name}_mib_s`, bytes / MiB / seconds, 'MiB/s');
  report(`${name}_gets_per_gib`, gets / gib, 'GETs/GiB');
  report(`${name}_get_bytes_per_byte_read`, (store.bytesRead - bytesBefore) / bytes, 'ratio');
  const cache = storage.catchUp.blockCache.stats();
  report(`${name}_block_cache_hit_ratio`, cache.hits / Math.max(1, cache.hits + cache.misses), 'ratio');
  report(`${name}_read_ahead_evicted_unread`, cache.evictedUnread, 'blocks');
  for (const stream of streams) await stream.close();
  await storage.shutdown();
  await wal.close().catch(() => {});
}

/** Loads totalBytes into the store, then measures the two catch-up reads. */
async function run(dir: string, inner: ObjectStore, totalBytes: number, where: string): Promise<void> {
  const metadataStore = await EmbeddedMetadataStore.open(path.join(dir, 'metadata'));
  try {
    const metadata = new ClusterModel(metadataStore);
    const store = new CountingStore(inner);
    console.log(`# catch-up: ${totalBytes / MiB} MiB of ${RECORD_BYTES} B records (${RECORDS_PER_BATCH} a batch) in ${STREAMS} streams, ${where}`);

    const loadStart = performance.now();
    const writer = await newStorage(dir, metadata, store);
    const streams: Stream[] = [];
    for (let s = 0; s < STREAMS; s++) streams.push(await writer.storage.createStream());
    await Promise.all(streams.map((stream) => load(stream, totalBytes / STREAMS)));
    await writer.storage.flush();
    for (const stream of streams) await stream.close();
    await writer.storage.shutdown();
    await writer.wal.close().catch(() => {});
    const objects = (await store.list('objects/')).length;
    const loadSeconds = (performance.now() - loadStart) / 1000;
    report('load_mib_s', totalBytes / MiB / loadSeconds, 'MiB/s');
    report('objects', objects, 'objects');

    const streamIds = streams.map((stream) => stream.streamId);
    await measure('sequential', dir, metadata, store, streamIds, false);
    await measure('parallel', dir, metadata, store, streamIds, true);
  } finally {
    await metadataStore.close();
  }
}

async function main(): Promise<void> {
  for (const kind of STORES) {
    const dir = await mkdtemp(path.join(REPO, `.tmp-bench-catchup-${kind}-`));
    try {
      if (kind === 'local') {
        prefix = '';
        await run(dir, new LocalObjectStore(path.join(dir, 'objects')), LOCAL_BYTES, `local object store in ${dir}`);
      } else if (kind === 's3') {
        prefix = 's3_';
        const s3 = await startS3rver();
        try {
          const store = await createObjectStore({ kind: 's3', endpoint: s3.endpoint, region: s3.region, bucket: s3.bucket, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, forcePathStyle: true });
          await run(dir, store, S3_BYTES, `s3rver at ${s3.endpoint} (@aws-sdk/client-s3, with the retry layer)`);
          await store.close();
        } finally {
          await s3.stop();
        }
      } else {
        throw new Error(`unknown store ${kind} in BENCH_CATCHUP_STORES (local, s3)`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  figures.printTable();
}

await main();
