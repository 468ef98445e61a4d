// npm run bench: produce throughput and latency of a single-node Wharf driven by a
// librdkafka producer (confluent-kafka-python), next to the raw write+fdatasync throughput of
// the same disk at the same write sizes. Prints a table for people and one JSON line per
// figure: {"bench", "metric", "value", "unit"}.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BROKER_NODE_FLAGS } from '../src/cli/node-flags.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const PYTHON = '/usr/bin/python3';
const RECORD_BYTES = 1024;
const PARTITIONS = 8;
const seconds = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const DISK_SECONDS = seconds('BENCH_DISK_SECONDS', 2);
const PRODUCE_SECONDS = seconds('BENCH_PRODUCE_SECONDS', 15);

interface Figure { bench: string; metric: string; value: number; unit: string }
const figures: Figure[] = [];
function report(bench: string, metric: string, value: number, unit: string): void {
  const figure = { bench, metric, value: Math.round(value * 1000) / 1000, unit };
  figures.push(figure);
  console.log(JSON.stringify(figure));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

/** Sequential writes of `writeBytes` each followed by fdatasync, as the WAL does. */
async function diskBench(dir: string, writeBytes: number): Promise<void> {
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
  const label = writeBytes >= 1 << 20 ? `${writeBytes >> 20}MiB` : `${writeBytes >> 10}KiB`;
  report('disk', `write_fdatasync_${label}_mib_s`, written / elapsedS / 2 ** 20, 'MiB/s');
  report('disk', `write_fdatasync_${label}_p99_ms`, percentile(latencies, 0.99), 'ms');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function startBroker(dataDir: string): Promise<{ child: ChildProcess; bootstrap: string; httpPort: number }> {
  const kafkaPort = await freePort();
  const httpPort = await freePort();
  const child = spawn(process.execPath, [...BROKER_NODE_FLAGS, path.join(REPO, 'src/cli/main.ts'), 'start'], {
    cwd: REPO,
    env: {
      ...process.env,
      WHARF_DATA_DIR: dataDir,
      WHARF_HOST: '127.0.0.1',
      WHARF_KAFKA_PORT: String(kafkaPort),
      WHARF_HTTP_PORT: String(httpPort),
      WHARF_NUM_PARTITIONS: String(PARTITIONS),
      WHARF_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const ok = await fetch(`http://127.0.0.1:${httpPort}/readyz`).then((r) => r.ok, () => false);
    if (ok) return { child, bootstrap: `127.0.0.1:${kafkaPort}`, httpPort };
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error('broker did not become ready');
}

interface ProducerResult { records: number; errors: number; bytes: number; seconds: number; latency_ms: { p50: number; p99: number; max: number } }

function runProducer(bootstrap: string, topic: string, durationS: number, rateMiBs: number): ProducerResult {
  const out = execFileSync(PYTHON, [path.join(REPO, 'bench/rdkafka_producer.py'), bootstrap, topic, String(durationS), String(rateMiBs), String(RECORD_BYTES)], {
    encoding: 'utf8', maxBuffer: 1 << 20, timeout: (durationS + 120) * 1000,
  });
  const result = JSON.parse(out.trim().split('\n').pop()!) as ProducerResult;
  if (result.errors > 0) throw new Error(`${result.errors} produce errors`);
  return result;
}

async function brokerRssBytes(httpPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('wharf_process_resident_memory_bytes'));
  return line ? Number(line.split(' ')[1]) : NaN;
}

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(REPO, '.tmp-bench-'));
  try {
    console.log(`# disk: write + fdatasync, ${DISK_SECONDS}s per size, in ${work}`);
    for (const size of [64 << 10, 256 << 10, 1 << 20, 4 << 20]) await diskBench(work, size);
    const broker = await startBroker(path.join(work, 'data'));
    try {
      console.log(`# produce: acks=all, idempotent, ${RECORD_BYTES} B records, ${PARTITIONS} partitions, librdkafka producer`);
      // Latency first, on a broker with no upload backlog; then the maximum rate.
      runProducer(broker.bootstrap, 'bench-produce', 3, 20); // warm-up, creates the topic
      const paced = runProducer(broker.bootstrap, 'bench-produce', PRODUCE_SECONDS, 20);
      report('produce', 'at_20mib_s_throughput_mib_s', paced.bytes / paced.seconds / 2 ** 20, 'MiB/s');
      report('produce', 'at_20mib_s_p50_ms', paced.latency_ms.p50, 'ms');
      report('produce', 'at_20mib_s_p99_ms', paced.latency_ms.p99, 'ms');
      const max = runProducer(broker.bootstrap, 'bench-produce', PRODUCE_SECONDS, 0);
      report('produce', 'max_throughput_mib_s', max.bytes / max.seconds / 2 ** 20, 'MiB/s');
      report('produce', 'max_throughput_records_s', max.records / max.seconds, 'records/s');
      report('produce', 'max_throughput_p50_ms', max.latency_ms.p50, 'ms');
      report('produce', 'max_throughput_p99_ms', max.latency_ms.p99, 'ms');
      report('broker', 'rss_after_load_mib', (await brokerRssBytes(broker.httpPort)) / 2 ** 20, 'MiB');
    } finally {
      broker.child.kill('SIGTERM');
      await new Promise((resolve) => broker.child.once('exit', resolve));
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  console.log('\n| bench | metric | value | unit |\n| --- | --- | --- | --- |');
  for (const f of figures) console.log(`| ${f.bench} | ${f.metric} | ${f.value} | ${f.unit} |`);
}

await main();
