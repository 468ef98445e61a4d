// Hot/cold isolation: produce latency on the tail while a consumer replays old data. A single-node
// Wharf (file WAL, local object store, default caches) gets BENCH_TAIL_HISTORY_SECONDS (default 8)
// of produce at full rate into `history` (1 KiB records, 8 partitions), flushed to objects; the
// broker restarts, so the log cache is empty and every read of `history` is a catch-up read from
// objects (block cache, read-ahead, catch-up budget). Then, on the same broker:
//   1. idle: the librdkafka producer writes `tail` at 20 MiB/s (acks=all, idempotent) for
//      BENCH_PRODUCE_SECONDS (default 15): p50/p99;
//   2. catch-up: the same produce while kcat reads `history` from the beginning, over and over
//      (as fast as it goes): p50/p99, their ratio to the idle ones (goal: p99 ≤ 1.5× idle), and
//      the catch-up read rate (fetch bytes / s) with its object-store GETs.
// The producer, kcat and the broker share the machine's cores (the load average is printed).
// Prints a table for people and one JSON line per figure: {"bench", "metric", "value", "unit"}.
//
//   node bench/tail.ts

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Figures, metricSums, peakRssMiB, REPO, runRdkafkaProducer, startBrokerProcess, type BrokerProcess } from './lib.ts';

const BENCH = 'tail';
const RECORD_BYTES = 1024;
const PARTITIONS = 8;
const RATE_MIB_S = 20;
const HISTORY_SECONDS = Number(process.env.BENCH_TAIL_HISTORY_SECONDS ?? 8);
const PRODUCE_SECONDS = Number(process.env.BENCH_PRODUCE_SECONDS ?? 15);

const FETCH_BYTES = 'wharf_fetch_bytes_total';
const GETS = 'wharf_object_store_requests_total{op="get"';
const RSS = 'wharf_process_resident_memory_bytes';
const MAJOR_GCS = 'wharf_nodejs_gc_duration_seconds_count{kind="major"';
/** Background compaction of the history's objects runs when it runs: each phase says how much it had. */
const COMPACTED = 'wharf_compaction_bytes_read_total';
/** Bounds (s) of the broker's request duration histogram buckets, for the Produce p99 as the broker sees it. */
const BUCKETS = ['0.0005', '0.001', '0.002', '0.003', '0.004', '0.005', '0.0075', '0.01', '0.015', '0.025', '0.05', '0.1', '0.25', '0.5', '1'];
const PRODUCE_BUCKETS = BUCKETS.map((le) => `wharf_kafka_request_duration_seconds_bucket{le="${le}",api="Produce"`);
const PRODUCE_COUNT = 'wharf_kafka_request_duration_seconds_count{api="Produce"';

/** Upper bound (ms) of the bucket holding the broker's p99 Produce duration between two scrapes. */
function brokerProduceP99Ms(before: Map<string, number>, after: Map<string, number>): number {
  const count = (after.get(PRODUCE_COUNT) ?? 0) - (before.get(PRODUCE_COUNT) ?? 0);
  for (const [i, name] of PRODUCE_BUCKETS.entries()) {
    if ((after.get(name) ?? 0) - (before.get(name) ?? 0) >= 0.99 * count) return Number(BUCKETS[i]) * 1000;
  }
  return Infinity;
}

const figures = new Figures();
function report(metric: string, value: number, unit: string): void {
  figures.report(BENCH, metric, value, unit);
}

function startBroker(dataDir: string): Promise<BrokerProcess> {
  return startBrokerProcess({ dataDir, env: { WHARF_NUM_PARTITIONS: String(PARTITIONS), WHARF_OTLP_ENABLE: 'false', WHARF_TABLE_ENABLE: 'false' } });
}

function produce(broker: BrokerProcess, topic: string, seconds: number, rateMiBs: number): ReturnType<typeof runRdkafkaProducer> {
  return runRdkafkaProducer({ bootstrap: broker.bootstrap, topic, durationS: seconds, rateMiBs, recordBytes: RECORD_BYTES });
}

/** kcat reading the topic from its beginning to its end, again and again, until stopped. */
function catchUpReader(bootstrap: string, topic: string): { stop(): Promise<void> } {
  const loop = `while :; do kcat -C -b ${bootstrap} -t ${topic} -o beginning -e -q -f '%o\\n' > /dev/null || exit 1; done`;
  const child = spawn('sh', ['-c', loop], { stdio: ['ignore', 'ignore', 'inherit'], detached: true });
  return {
    async stop(): Promise<void> {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(-child.pid!, 'SIGTERM');
      await exited;
    },
  };
}

const loadAverage = (): string => os.loadavg().map((l) => l.toFixed(1)).join(' ');

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(REPO, '.tmp-bench-tail-'));
  const dataDir = path.join(work, 'data');
  try {
    let broker = await startBroker(dataDir);
    try {
      const history = produce(broker, 'history', HISTORY_SECONDS, 0);
      report('history_mib', history.bytes / 2 ** 20, 'MiB');
      const flushed = await fetch(`http://127.0.0.1:${broker.httpPort}/admin/flush`, { method: 'POST' });
      if (!flushed.ok) throw new Error(`flush answered ${flushed.status}`);
    } finally {
      await broker.stop();
    }
    broker = await startBroker(dataDir); // empty log cache and block cache: history is read from objects
    try {
      console.log(`# tail produce: ${RATE_MIB_S} MiB/s, acks=all, idempotent, ${RECORD_BYTES} B records, ${PARTITIONS} partitions, ${PRODUCE_SECONDS} s; load average ${loadAverage()}`);
      produce(broker, 'tail', 3, RATE_MIB_S); // warm-up, creates the topic
      const idleBefore = await metricSums(broker.httpPort, [MAJOR_GCS, COMPACTED, ...PRODUCE_BUCKETS, PRODUCE_COUNT]);
      const idle = produce(broker, 'tail', PRODUCE_SECONDS, RATE_MIB_S);
      const idleAfter = await metricSums(broker.httpPort, [MAJOR_GCS, COMPACTED, ...PRODUCE_BUCKETS, PRODUCE_COUNT]);
      report('idle_p50_ms', idle.latency_ms.p50, 'ms');
      report('idle_p99_ms', idle.latency_ms.p99, 'ms');
      report('idle_broker_produce_p99_le_ms', brokerProduceP99Ms(idleBefore, idleAfter), 'ms');
      report('idle_major_gcs_per_s', ((idleAfter.get(MAJOR_GCS) ?? 0) - (idleBefore.get(MAJOR_GCS) ?? 0)) / idle.seconds, '1/s');
      report('idle_compaction_read_mib', ((idleAfter.get(COMPACTED) ?? 0) - (idleBefore.get(COMPACTED) ?? 0)) / 2 ** 20, 'MiB');

      console.log(`# the same, while kcat replays history from objects; load average ${loadAverage()}`);
      const reader = catchUpReader(broker.bootstrap, 'history');
      let busy: ReturnType<typeof produce>;
      let before: Map<string, number>;
      let after: Map<string, number>;
      try {
        await new Promise((resolve) => setTimeout(resolve, 2000)); // let the catch-up get going
        before = await metricSums(broker.httpPort, [FETCH_BYTES, GETS, MAJOR_GCS, COMPACTED, ...PRODUCE_BUCKETS, PRODUCE_COUNT]);
        busy = produce(broker, 'tail', PRODUCE_SECONDS, RATE_MIB_S);
        after = await metricSums(broker.httpPort, [FETCH_BYTES, GETS, MAJOR_GCS, COMPACTED, RSS, ...PRODUCE_BUCKETS, PRODUCE_COUNT]);
      } finally {
        await reader.stop();
      }
      const delta = (name: string): number => (after.get(name) ?? 0) - (before.get(name) ?? 0);
      const catchUpBytes = delta(FETCH_BYTES);
      report('catchup_p50_ms', busy.latency_ms.p50, 'ms');
      report('catchup_p99_ms', busy.latency_ms.p99, 'ms');
      report('catchup_p99_over_idle_p99', busy.latency_ms.p99 / idle.latency_ms.p99, 'x');
      report('catchup_broker_produce_p99_le_ms', brokerProduceP99Ms(before, after), 'ms');
      report('catchup_read_mib_s', catchUpBytes / 2 ** 20 / busy.seconds, 'MiB/s');
      report('catchup_major_gcs_per_s', delta(MAJOR_GCS) / busy.seconds, '1/s');
      report('catchup_compaction_read_mib', delta(COMPACTED) / 2 ** 20, 'MiB');
      report('catchup_gets_per_gib', catchUpBytes > 0 ? delta(GETS) / (catchUpBytes / 2 ** 30) : NaN, 'GETs/GiB');
      report('broker_rss_mib', (after.get(RSS) ?? NaN) / 2 ** 20, 'MiB');
      report('broker_rss_peak_mib', peakRssMiB(broker.child.pid), 'MiB');
    } finally {
      await broker.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  figures.printTable();
}

await main();
