// npm run bench: produce throughput and latency of a single-node Wharf driven by a
// librdkafka producer (confluent-kafka-python), next to the raw write+fdatasync throughput of
// the same disk at the same write sizes (and, after the maximum-rate run, at the mean size of the
// WAL's writes in it: the produce/raw ratio). Prints a table for people and one JSON line per
// figure: {"bench", "metric", "value", "unit"}.

import { mkdtemp, open, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  cpuByKind, cpuSeconds, Figures, metricSums, peakRssMiB, percentile, REPO, runRdkafkaProducer, startBrokerProcess, threadCpuSeconds,
  waitedChildrenCpuSeconds, type ProducerResult,
} from './lib.ts';

const RECORD_BYTES = 1024;
const PARTITIONS = 8;
const seconds = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const DISK_SECONDS = seconds('BENCH_DISK_SECONDS', 2);
const PRODUCE_SECONDS = seconds('BENCH_PRODUCE_SECONDS', 15);

const RSS = 'wharf_process_resident_memory_bytes';
const WAL_BYTES = 'wharf_wal_bytes_written_total';
const WAL_WRITES = 'wharf_wal_fsync_duration_seconds_count';
const figures = new Figures();
const report = figures.report.bind(figures);

/** Sequential writes of `writeBytes` each followed by fdatasync, as the WAL does; returns MiB/s. */
async function diskBench(dir: string, writeBytes: number): Promise<number> {
  const file = await open(path.join(dir, `disk-${writeBytes}`), 'w');
  const buf = Buffer.alloc(writeBytes, 7);
  const fileBytes = 256 * 1024 * 1024;
  const latencies: number[] = [];
  let written = 0;
  const start = performance.now();
  while (performance.now() - start < DISK_SECONDS * 1000) {
    const t = performance.now();
    await file.write(buf, 0, buf.length, written % fileBytes);
    await file.datasync();
    latencies.push(performance.now() - t);
    written += buf.length;
  }
  const elapsedS = (performance.now() - start) / 1000;
  await file.close();
  latencies.sort((a, b) => a - b);
  const label = writeBytes >= 1 << 20 && writeBytes % (1 << 20) === 0 ? `${writeBytes >> 20}MiB` : `${writeBytes >> 10}KiB`;
  report('disk', `write_fdatasync_${label}_mib_s`, written / elapsedS / 2 ** 20, 'MiB/s');
  report('disk', `write_fdatasync_${label}_p99_ms`, percentile(latencies, 0.99), 'ms');
  return written / elapsedS / 2 ** 20;
}

function runProducer(bootstrap: string, topic: string, durationS: number, rateMiBs: number): ProducerResult {
  return runRdkafkaProducer({ bootstrap, topic, durationS, rateMiBs, recordBytes: RECORD_BYTES });
}

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(REPO, '.tmp-bench-'));
  try {
    console.log(`# disk: write + fdatasync, ${DISK_SECONDS}s per size, in ${work}`);
    for (const size of [64 << 10, 256 << 10, 1 << 20, 4 << 20]) await diskBench(work, size);
    const broker = await startBrokerProcess({ dataDir: path.join(work, 'data'), env: { WHARF_NUM_PARTITIONS: String(PARTITIONS) } });
    try {
      console.log(`# produce: acks=all, idempotent, ${RECORD_BYTES} B records, ${PARTITIONS} partitions, librdkafka producer`);
      // Latency first, on a broker with no upload backlog; then the maximum rate.
      runProducer(broker.bootstrap, 'bench-produce', 3, 20); // warm-up, creates the topic
      const paced = runProducer(broker.bootstrap, 'bench-produce', PRODUCE_SECONDS, 20);
      report('produce', 'at_20mib_s_throughput_mib_s', paced.bytes / paced.seconds / 2 ** 20, 'MiB/s');
      report('produce', 'at_20mib_s_p50_ms', paced.latency_ms.p50, 'ms');
      report('produce', 'at_20mib_s_p99_ms', paced.latency_ms.p99, 'ms');
      const walBefore = await metricSums(broker.httpPort, [WAL_BYTES, WAL_WRITES]);
      const pid = broker.child.pid!;
      const [brokerCpuBefore, threadsBefore, producerCpuBefore] = [await cpuSeconds(pid), await threadCpuSeconds(pid), waitedChildrenCpuSeconds()];
      const max = runProducer(broker.bootstrap, 'bench-produce', PRODUCE_SECONDS, 0);
      const [brokerCpuAfter, threadsAfter, producerCpuAfter] = [await cpuSeconds(pid), await threadCpuSeconds(pid), waitedChildrenCpuSeconds()];
      const walAfter = await metricSums(broker.httpPort, [WAL_BYTES, WAL_WRITES]);
      const maxMiBs = max.bytes / max.seconds / 2 ** 20;
      report('produce', 'max_throughput_mib_s', maxMiBs, 'MiB/s');
      report('produce', 'max_throughput_records_s', max.records / max.seconds, 'records/s');
      report('produce', 'max_throughput_p50_ms', max.latency_ms.p50, 'ms');
      report('produce', 'max_throughput_p99_ms', max.latency_ms.p99, 'ms');
      // Where the 2 cores went: the broker (by kind of thread) and the producer (its whole run,
      // start-up included), in CPU seconds per GiB produced.
      const gib = max.bytes / 2 ** 30;
      report('produce', 'max_throughput_broker_cpu_s_per_gib', (brokerCpuAfter - brokerCpuBefore) / gib, 'cpu_s');
      for (const [kind, seconds] of Object.entries(cpuByKind(threadsBefore, threadsAfter))) {
        report('produce', `max_throughput_broker_cpu_s_per_gib_${kind}`, seconds / gib, 'cpu_s');
      }
      report('produce', 'max_throughput_producer_cpu_s_per_gib', (producerCpuAfter - producerCpuBefore) / gib, 'cpu_s');
      report('broker', 'rss_after_load_mib', ((await metricSums(broker.httpPort, [RSS])).get(RSS) ?? NaN) / 2 ** 20, 'MiB');
      report('broker', 'rss_peak_mib', peakRssMiB(broker.child.pid), 'MiB');
      // The raw disk at the WAL's own write size during the maximum rate (one group commit: one
      // O_DSYNC write), measured once the broker is stopped: the ratio the storage goal names.
      const writes = (walAfter.get(WAL_WRITES) ?? 0) - (walBefore.get(WAL_WRITES) ?? 0);
      const walWriteBytes = ((walAfter.get(WAL_BYTES) ?? 0) - (walBefore.get(WAL_BYTES) ?? 0)) / Math.max(1, writes);
      const groupBytes = Math.max(4096, Math.round(walWriteBytes / 4096) * 4096);
      report('produce', 'max_throughput_wal_write_kib', walWriteBytes / 1024, 'KiB');
      await broker.stop();
      const rawMiBs = await diskBench(work, groupBytes);
      report('produce', 'max_throughput_over_raw_disk_ratio', maxMiBs / rawMiBs, 'x');
    } finally {
      await broker.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  figures.printTable();
}

await main();
