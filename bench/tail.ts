// Hot/cold isolation: produce latency on the tail while a consumer replays old data. A single-node
// Wharf (file WAL, local object store, default caches) gets BENCH_TAIL_HISTORY_SECONDS (default 8)
// of produce at full rate into `history` (1 KiB records, 8 partitions), flushed to objects; the
// broker restarts, so the log cache is empty and every read of `history` is a catch-up read from
// objects (block cache, read-ahead, catch-up budget). Then, on the same broker, the librdkafka
// producer writes `tail` at 20 MiB/s (acks=all, idempotent) in eight phases of
// BENCH_PRODUCE_SECONDS (default 8) each, of two kinds:
//   - idle: nothing else runs;
//   - catch-up: kcat reads `history` from the beginning, over and over (as fast as it goes).
// For each kind: the median over its phases of the producer's p50 and p99, the catch-up p99 as a
// ratio of the idle one (goal: ≤ 1.5), the highest p99 of one phase, the broker's own Produce p99
// (histogram bucket), the share of WAL writes that took over 1 ms, and for catch-up the read rate
// (fetch bytes / s) with its object-store GETs. Each phase's line also gives its WAL share and the
// bytes background compaction read in it: on the local store, compaction's object writes share the
// WAL's disk.
// The producer, kcat and the broker share the machine's cores (the load average is printed).
// Prints a table for people and one JSON line per figure: {"bench", "metric", "value", "unit"}.
//
//   node bench/tail.ts

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Figures, metricSums, peakRssMiB, REPO, runRdkafkaProducer, startBrokerProcess, type BrokerProcess, type ProducerResult } from './lib.ts';

const BENCH = 'tail';
const RECORD_BYTES = 1024;
const PARTITIONS = 8;
const RATE_MIB_S = 20;
const HISTORY_SECONDS = Number(process.env.BENCH_TAIL_HISTORY_SECONDS ?? 8);
const PHASE_SECONDS = Number(process.env.BENCH_PRODUCE_SECONDS ?? 8);
/**
 * Idle and catch-up phases alternate as ABBA BAAB, so that a drift of the machine during the run
 * weighs on both kinds alike. On the 2-core VM the disk is such a drift: after the history's burst
 * of writes it falls to ~300 MB/s for minutes (measured with no broker running), which slows the
 * WAL writes that queue behind object writes, in either kind of phase.
 */
const PHASES = ['idle', 'catchup', 'catchup', 'idle', 'catchup', 'idle', 'idle', 'catchup'] as const;

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
/**
 * The WAL's durable writes, and those that took at most 1 ms: the share of slower ones says how
 * much of a phase's p99 the disk made (on the local store, object writes share the WAL's disk).
 */
const WAL_WRITES = 'wharf_wal_fsync_duration_seconds_count';
const WAL_WRITES_1MS = 'wharf_wal_fsync_duration_seconds_bucket{le="0.001"';

const SCRAPED = [FETCH_BYTES, GETS, MAJOR_GCS, COMPACTED, WAL_WRITES, WAL_WRITES_1MS, ...PRODUCE_BUCKETS, PRODUCE_COUNT];

/** Upper bound (ms) of the bucket holding the broker's p99 Produce duration, from scraped counts. */
function brokerProduceP99Ms(count: (name: string) => number): number {
  const total = count(PRODUCE_COUNT);
  for (const [i, name] of PRODUCE_BUCKETS.entries()) {
    if (count(name) >= 0.99 * total) return Number(BUCKETS[i]) * 1000;
  }
  return Infinity;
}

/** Percentage of the WAL writes counted that took over 1 ms. */
function slowWalWritesPct(count: (name: string) => number): number {
  const writes = count(WAL_WRITES);
  return writes > 0 ? (100 * (writes - count(WAL_WRITES_1MS))) / writes : NaN;
}

/** What the phases of one kind (idle or catch-up) measured: the producer's figures of each, the broker's counters summed. */
class PhaseTotals {
  readonly results: ProducerResult[] = [];
  seconds = 0;
  private readonly deltas = new Map<string, number>();

  /** Adds one phase; returns that phase's own counts (the scrapes' differences). */
  add(result: ProducerResult, before: Map<string, number>, after: Map<string, number>): (name: string) => number {
    this.results.push(result);
    this.seconds += result.seconds;
    const phase = (name: string): number => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    for (const name of SCRAPED) this.deltas.set(name, this.sum(name) + phase(name));
    return phase;
  }

  sum(name: string): number {
    return this.deltas.get(name) ?? 0;
  }

  /** The median over the phases of the producer's latency percentile. */
  median(p: 'p50' | 'p99'): number {
    const values = this.results.map((r) => r.latency_ms[p]).sort((a, b) => a - b);
    const mid = values.length >> 1;
    return values.length % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
  }

  /** The highest p99 of one phase: what the median leaves out. */
  worstP99(): number {
    return Math.max(...this.results.map((r) => r.latency_ms.p99));
  }

  slowWalWritesPct(): number {
    return slowWalWritesPct((name) => this.sum(name));
  }

  /** Upper bound (ms) of the bucket holding the broker's p99 Produce duration over these phases. */
  brokerProduceP99Ms(): number {
    return brokerProduceP99Ms((name) => this.sum(name));
  }
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
      console.log(`# tail produce: ${RATE_MIB_S} MiB/s, acks=all, idempotent, ${RECORD_BYTES} B records, ${PARTITIONS} partitions, ${PHASE_SECONDS} s per phase; load average ${loadAverage()}`);
      produce(broker, 'tail', 3, RATE_MIB_S); // warm-up, creates the topic
      const phases = { idle: new PhaseTotals(), catchup: new PhaseTotals() };
      let reader: { stop(): Promise<void> } | undefined;
      try {
        for (const kind of PHASES) {
          if (kind === 'catchup' && reader === undefined) {
            reader = catchUpReader(broker.bootstrap, 'history');
            await new Promise((resolve) => setTimeout(resolve, 2000)); // let the catch-up get going
          } else if (kind === 'idle' && reader !== undefined) {
            await reader.stop();
            reader = undefined;
          }
          const before = await metricSums(broker.httpPort, SCRAPED);
          const result = produce(broker, 'tail', PHASE_SECONDS, RATE_MIB_S);
          const after = await metricSums(broker.httpPort, SCRAPED);
          const phase = phases[kind].add(result, before, after);
          const slowPct = slowWalWritesPct(phase).toFixed(1);
          const compactedMiB = (phase(COMPACTED) / 2 ** 20).toFixed(0);
          const brokerP99 = brokerProduceP99Ms(phase);
          console.log(`# ${kind}: p50 ${result.latency_ms.p50} ms, p99 ${result.latency_ms.p99} ms (broker ≤ ${brokerP99} ms); WAL writes over 1 ms ${slowPct}%, compaction read ${compactedMiB} MiB; load average ${loadAverage()}`);
        }
      } finally {
        await reader?.stop();
      }
      const { idle, catchup } = phases;
      report('idle_p50_ms', idle.median('p50'), 'ms');
      report('idle_p99_ms', idle.median('p99'), 'ms');
      report('idle_worst_phase_p99_ms', idle.worstP99(), 'ms');
      report('idle_broker_produce_p99_le_ms', idle.brokerProduceP99Ms(), 'ms');
      report('idle_wal_writes_over_1ms_pct', idle.slowWalWritesPct(), '%');
      report('idle_major_gcs_per_s', idle.sum(MAJOR_GCS) / idle.seconds, '1/s');
      report('idle_compaction_read_mib', idle.sum(COMPACTED) / 2 ** 20, 'MiB');
      report('catchup_p50_ms', catchup.median('p50'), 'ms');
      report('catchup_p99_ms', catchup.median('p99'), 'ms');
      report('catchup_p99_over_idle_p99', catchup.median('p99') / idle.median('p99'), 'x');
      report('catchup_worst_phase_p99_ms', catchup.worstP99(), 'ms');
      report('catchup_broker_produce_p99_le_ms', catchup.brokerProduceP99Ms(), 'ms');
      report('catchup_wal_writes_over_1ms_pct', catchup.slowWalWritesPct(), '%');
      report('catchup_read_mib_s', catchup.sum(FETCH_BYTES) / 2 ** 20 / catchup.seconds, 'MiB/s');
      report('catchup_major_gcs_per_s', catchup.sum(MAJOR_GCS) / catchup.seconds, '1/s');
      report('catchup_compaction_read_mib', catchup.sum(COMPACTED) / 2 ** 20, 'MiB');
      const catchUpGiB = catchup.sum(FETCH_BYTES) / 2 ** 30;
      report('catchup_gets_per_gib', catchUpGiB > 0 ? catchup.sum(GETS) / catchUpGiB : NaN, 'GETs/GiB');
      report('broker_rss_mib', ((await metricSums(broker.httpPort, [RSS])).get(RSS) ?? NaN) / 2 ** 20, 'MiB');
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
