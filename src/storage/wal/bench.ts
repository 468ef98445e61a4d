// WAL append throughput, closed loop: `concurrency` writers each append a batch, wait until it
// is durable, and append the next, for durationMs. Trims keep the ring from filling up (as
// uploads would). A library function for bench/, and a script:
//
//   npx node src/storage/wal/bench.ts [batchBytes] [concurrency] [durationMs]

import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileWal } from './file-wal.ts';

export interface WalBenchOptions {
  /** Directory for the WAL file (a temporary one by default; removed afterwards). */
  dir?: string;
  capacityBytes?: number;
  maxWriteBytes?: number;
  batchBytes?: number;
  concurrency?: number;
  durationMs?: number;
}

export interface WalBenchResult {
  batchBytes: number;
  concurrency: number;
  appends: number;
  seconds: number;
  appendsPerSecond: number;
  mibPerSecond: number;
  fsyncs: number;
  appendsPerFsync: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

const LATENCY_SAMPLES = 1 << 20;

export async function benchWalAppend(options: WalBenchOptions = {}): Promise<WalBenchResult> {
  const batchBytes = options.batchBytes ?? 16 * 1024;
  const concurrency = options.concurrency ?? 64;
  const durationMs = options.durationMs ?? 5_000;
  const capacityBytes = options.capacityBytes ?? 256 * 1024 * 1024;
  const dir = options.dir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-wal-bench-')));
  const walPath = path.join(dir, `wal-bench-${process.pid}`);
  const wal = await FileWal.open({ path: walPath, capacityBytes, maxWriteBytes: options.maxWriteBytes });
  try {
    for await (const _ of wal.recover()) {
      // a fresh file: nothing to replay
    }
    const batch = Buffer.alloc(batchBytes, 0x5a);
    const latenciesMs = new Float64Array(LATENCY_SAMPLES);
    let appends = 0;
    const fsyncsBefore = wal.stats().fsyncs;
    const started = performance.now();
    const deadline = started + durationMs;
    const writer = async (streamId: number): Promise<void> => {
      let offset = 0;
      while (performance.now() < deadline) {
        const t0 = performance.now();
        const end = await wal.append(streamId, 1, offset, 1, batch);
        latenciesMs[appends++ % LATENCY_SAMPLES] = performance.now() - t0;
        offset++;
        if (wal.usedBytes() > capacityBytes / 2) await wal.trim(end);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, (_, i) => writer(i)));
    const seconds = (performance.now() - started) / 1000;
    const fsyncs = wal.stats().fsyncs - fsyncsBefore;
    const sorted = latenciesMs.slice(0, Math.min(appends, LATENCY_SAMPLES)).sort();
    const quantile = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
    return {
      batchBytes,
      concurrency,
      appends,
      seconds,
      appendsPerSecond: appends / seconds,
      mibPerSecond: (appends * batchBytes) / seconds / (1024 * 1024),
      fsyncs,
      appendsPerFsync: fsyncs === 0 ? 0 : appends / fsyncs,
      latencyP50Ms: quantile(0.5),
      latencyP99Ms: quantile(0.99),
    };
  } finally {
    await wal.close();
    await fs.rm(walPath, { force: true });
    if (options.dir === undefined) await fs.rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const [batchBytes, concurrency, durationMs] = process.argv.slice(2).map(Number);
  const result = await benchWalAppend({ batchBytes, concurrency, durationMs });
  console.table(result);
  for (const [metric, unit] of [
    ['appendsPerSecond', 'appends/s'],
    ['mibPerSecond', 'MiB/s'],
    ['appendsPerFsync', 'appends'],
    ['latencyP50Ms', 'ms'],
    ['latencyP99Ms', 'ms'],
  ] as const) {
    console.log(JSON.stringify({ bench: 'wal-append', metric, value: result[metric], unit }));
  }
}
