// node bench/compaction.ts: storage efficiency of uploads and compaction. Produces a realistic mix
// (8 streams, two hot and six quiet, many small uploads) through StreamStorageImpl onto a local
// object store, runs compaction to completion and collects the garbage, then reads every stream
// back from a cold node. Counts object-store calls with a wrapper. Prints a table for people and
// one JSON line per figure: {"bench", "metric", "value", "unit"}.
//
//   BENCH_COMPACTION_MIB      bytes produced in all (default 256)
//   BENCH_UPLOAD_MIB          bytes per upload round (default 4: many small stream set objects)
//   BENCH_COMPACTION_RATE_MIB compaction's read rate bound in MiB/s (default: the broker default)

import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { ClusterModel } from '../src/metadata/cluster-model.ts';
import { EmbeddedMetadataStore } from '../src/metadata/embedded.ts';
import { StorageMaintenance } from '../src/storage/maintenance.ts';
import { DEFAULT_COMPACTION_MAX_BYTES_PER_SECOND } from '../src/storage/objects/compaction.ts';
import { LocalObjectStore } from '../src/storage/objectstore/local.ts';
import { bodyLength, wrapUploads } from '../src/storage/objectstore/objectstore.ts';
import type { MultipartUploads, ObjectBody, ObjectInfo, ObjectStore } from '../src/storage/objectstore/objectstore.ts';
import { StreamStorageImpl } from '../src/storage/stream-storage.ts';
import type { Stream } from '../src/storage/stream.ts';
import { FileWal } from '../src/storage/wal/file-wal.ts';
import { Figures, REPO } from './lib.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const env = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const PRODUCE_BYTES = env('BENCH_COMPACTION_MIB', 256) * MiB;
const UPLOAD_BYTES = env('BENCH_UPLOAD_MIB', 4) * MiB;
const COMPACTION_RATE = env('BENCH_COMPACTION_RATE_MIB', DEFAULT_COMPACTION_MAX_BYTES_PER_SECOND / MiB) * MiB;
/** Shares of the produced bytes: two hot streams, six quiet ones. */
const STREAM_SHARES = [0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05];
const BATCH_BYTES = 16 * 1024;
const RECORDS_PER_BATCH = 16;

const figures = new Figures();
function report(metric: string, value: number, unit: string): void {
  figures.report('compaction', metric, value, unit);
}

/**
 * Counts calls and bytes per operation; `phase` says which phase they are charged to. Multipart
 * requests (start, part, complete, abort) count as PUTs: S3 bills them so.
 */
class CountingStore implements ObjectStore {
  readonly uploads: MultipartUploads | undefined;
  readonly counts = new Map<string, { puts: number; gets: number; lists: number; deletes: number; putBytes: number; getBytes: number }>();
  phase = 'setup';
  private readonly inner: ObjectStore;

  constructor(inner: ObjectStore) {
    this.inner = inner;
    this.uploads = wrapUploads(inner.uploads, (bytes, call) => {
      const count = this.of(this.phase);
      count.puts++;
      count.putBytes += bytes;
      return call();
    });
  }

  of(phase: string): { puts: number; gets: number; lists: number; deletes: number; putBytes: number; getBytes: number } {
    let count = this.counts.get(phase);
    if (count === undefined) {
      count = { puts: 0, gets: 0, lists: 0, deletes: 0, putBytes: 0, getBytes: 0 };
      this.counts.set(phase, count);
    }
    return count;
  }

  async put(key: string, body: ObjectBody): Promise<void> {
    const count = this.of(this.phase);
    count.puts++;
    count.putBytes += bodyLength(body);
    await this.inner.put(key, body);
  }

  async get(key: string, range?: { start: number; endExclusive: number }): Promise<Buffer> {
    const count = this.of(this.phase);
    count.gets++;
    const body = await this.inner.get(key, range);
    count.getBytes += body.length;
    return body;
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    return this.inner.head(key);
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    this.of(this.phase).lists++;
    return this.inner.list(prefix);
  }

  async delete(keys: string[]): Promise<void> {
    this.of(this.phase).deletes += keys.length;
    await this.inner.delete(keys);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

function makeBatch(baseOffset: number, timestampMs: number): Buffer {
  const batch = randomBytes(BATCH_BYTES);
  batch.writeBigInt64BE(BigInt(baseOffset), 0);
  batch.writeInt32BE(BATCH_BYTES - 12, 8);
  batch.writeInt8(2, 16);
  batch.writeInt32BE(RECORDS_PER_BATCH - 1, 23);
  batch.writeBigInt64BE(BigInt(timestampMs), 27);
  batch.writeBigInt64BE(BigInt(timestampMs), 35);
  return batch;
}

/** Appends the mix, one upload (flush) per UPLOAD_BYTES; returns the batch bytes produced. */
async function produce(storage: StreamStorageImpl, streams: Stream[], hashes: ReturnType<typeof createHash>[]): Promise<number> {
  const rounds = Math.ceil(PRODUCE_BYTES / UPLOAD_BYTES);
  let produced = 0;
  for (let round = 0; round < rounds; round++) {
    const appends: Promise<void>[] = [];
    for (const [i, stream] of streams.entries()) {
      const batches = Math.max(1, Math.round((UPLOAD_BYTES * STREAM_SHARES[i]!) / BATCH_BYTES));
      for (let b = 0; b < batches; b++) {
        const batch = makeBatch(stream.nextOffset(), Date.now());
        hashes[i]!.update(batch);
        produced += batch.length;
        appends.push(stream.append({ baseOffset: stream.nextOffset(), offsetCount: RECORDS_PER_BATCH, batch }));
      }
    }
    await Promise.all(appends);
    await storage.flush();
  }
  return produced;
}

async function consume(stream: Stream): Promise<{ bytes: number; digest: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for (let next = stream.startOffset(); next < stream.confirmedOffset(); ) {
    const result = await stream.read(next, 4 * MiB);
    for (const batch of result.batches) {
      hash.update(batch);
      bytes += batch.length;
    }
    next = result.nextOffset;
  }
  return { bytes, digest: hash.digest('hex') };
}

async function storedObjects(store: ObjectStore): Promise<{ count: number; bytes: number }> {
  const objects = await store.list('objects/');
  return { count: objects.length, bytes: objects.reduce((sum, o) => sum + o.sizeBytes, 0) };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(REPO, '.tmp-bench-compaction-'));
  const metadataStore = await EmbeddedMetadataStore.open(path.join(dir, 'metadata'));
  const metadata = new ClusterModel(metadataStore);
  const store = new CountingStore(new LocalObjectStore(path.join(dir, 'objects')));
  const open = async (nodeId: number): Promise<StreamStorageImpl> => {
    const wal = await FileWal.open({ path: path.join(dir, `wal-${nodeId}`), capacityBytes: 256 * MiB, nodeId });
    const storage = new StreamStorageImpl({
      nodeId, wal, metadata, objectStore: store, uploadIntervalMs: 3_600_000, uploadSizeBytes: 2 * UPLOAD_BYTES, logCacheSizeBytes: 64 * MiB,
    });
    await storage.start();
    return storage;
  };
  try {
    store.phase = 'produce';
    const writer = await open(1);
    const streams: Stream[] = [];
    for (let i = 0; i < STREAM_SHARES.length; i++) streams.push(await writer.createStream());
    const hashes = streams.map(() => createHash('sha256'));
    const produceStarted = performance.now();
    const producedBatchBytes = await produce(writer, streams, hashes);
    const produceSeconds = (performance.now() - produceStarted) / 1000;
    const before = await storedObjects(store);
    await writer.shutdown();

    store.phase = 'compaction';
    const maintenance = new StorageMaintenance({ metadata, objectStore: store, prepareTtlMs: 600_000, gcDelayMs: 0, compactionMaxBytesPerSecond: COMPACTION_RATE });
    const compactionStarted = performance.now();
    const jobs = await maintenance.compact();
    const compactionSeconds = (performance.now() - compactionStarted) / 1000;
    const gc = await maintenance.collectGarbage();
    const after = await storedObjects(store);

    store.phase = 'consume';
    const reader = await open(2);
    let consumed = 0;
    for (const [i, stream] of streams.entries()) {
      const read = await consume(await reader.openStream(stream.streamId));
      consumed += read.bytes;
      if (read.digest !== hashes[i]!.digest('hex')) throw new Error(`stream ${stream.streamId}: the bytes read back differ from those produced`);
    }
    await reader.shutdown();

    const p = store.of('produce');
    const c = store.of('compaction');
    const r = store.of('consume');
    const rows: [string, string][] = [
      ['produced (record batches)', `${(producedBatchBytes / MiB).toFixed(1)} MiB in ${produceSeconds.toFixed(1)} s, ${Math.ceil(PRODUCE_BYTES / UPLOAD_BYTES)} uploads`],
      ['objects before → after', `${before.count} → ${after.count} (${jobs.length} jobs, ${gc.deletedObjects} deleted)`],
      ['bytes stored / produced', `${(before.bytes / producedBatchBytes).toFixed(4)} → ${(after.bytes / producedBatchBytes).toFixed(4)}`],
      ['compaction', `${(c.getBytes / MiB).toFixed(1)} MiB read, ${(c.putBytes / MiB).toFixed(1)} MiB written in ${compactionSeconds.toFixed(1)} s (bound ${(COMPACTION_RATE / MiB).toFixed(0)} MiB/s)`],
      ['PUTs per GiB produced', `${((p.puts * GiB) / producedBatchBytes).toFixed(1)} upload + ${((c.puts * GiB) / producedBatchBytes).toFixed(1)} compaction`],
      ['GETs per GiB produced', `${((c.gets * GiB) / producedBatchBytes).toFixed(1)} compaction`],
      ['GETs per GiB consumed', `${((r.gets * GiB) / consumed).toFixed(1)} (cold reader, after compaction)`],
    ];
    console.log('');
    for (const [name, value] of rows) console.log(`${name.padEnd(28)} ${value}`);
    console.log('');
    report('bytes_stored_per_byte_produced_before', before.bytes / producedBatchBytes, 'ratio');
    report('bytes_stored_per_byte_produced_after', after.bytes / producedBatchBytes, 'ratio');
    report('objects_before', before.count, 'objects');
    report('objects_after', after.count, 'objects');
    report('compaction_jobs', jobs.length, 'jobs');
    report('compaction_read_mib_s', c.getBytes / MiB / compactionSeconds, 'MiB/s');
    report('upload_puts_per_gib_produced', (p.puts * GiB) / producedBatchBytes, 'PUTs/GiB');
    report('compaction_puts_per_gib_produced', (c.puts * GiB) / producedBatchBytes, 'PUTs/GiB');
    report('compaction_gets_per_gib_produced', (c.gets * GiB) / producedBatchBytes, 'GETs/GiB');
    report('consume_gets_per_gib_consumed', (r.gets * GiB) / consumed, 'GETs/GiB');
  } finally {
    await store.close();
    await metadataStore.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
