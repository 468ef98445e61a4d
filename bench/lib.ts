// What the benchmarks share: figures printed as JSON lines and a table, percentiles, free ports,
// a broker started as a child process on free ports (the OTLP ports too, never 4317/4318), and
// the librdkafka producer load (bench/rdkafka_producer.py).

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BROKER_NODE_FLAGS } from '../src/cli/node-flags.ts';

export const REPO = path.resolve(import.meta.dirname, '..');
const PYTHON = '/usr/bin/python3';
const READY_TIMEOUT_MS = 60_000;

export interface Figure { bench: string; metric: string; value: number; unit: string }

/** Collects figures: each is printed at once as a JSON line, and all as a table at the end. */
export class Figures {
  private readonly all: Figure[] = [];

  report(bench: string, metric: string, value: number, unit: string): void {
    const figure = { bench, metric, value: Math.round(value * 1000) / 1000, unit };
    this.all.push(figure);
    console.log(JSON.stringify(figure));
  }

  printTable(): void {
    console.log('\n| bench | metric | value | unit |\n| --- | --- | --- | --- |');
    for (const f of this.all) console.log(`| ${f.bench} | ${f.metric} | ${f.value} | ${f.unit} |`);
  }
}

/** The p-quantile of ascending values (NaN when empty). */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface BrokerProcess {
  child: ChildProcess;
  bootstrap: string;
  httpPort: number;
  otlpGrpcPort: number;
  otlpHttpPort: number;
  /** SIGTERM (a clean stop) and wait for the exit; SIGKILL after 20 s. */
  stop(): Promise<void>;
}

/**
 * Starts `src/cli/main.ts start` on free ports with the data in dataDir and the given WHARF_*
 * settings, and waits for /readyz. No wharf.yaml is read. BENCH_BROKER_NODE_FLAGS adds Node
 * flags to every broker a benchmark starts (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
 */
export async function startBrokerProcess(options: {
  dataDir: string;
  env?: Record<string, string>;
  nodeFlags?: readonly string[];
}): Promise<BrokerProcess> {
  const [kafkaPort, httpPort, otlpGrpcPort, otlpHttpPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const extraFlags = process.env.BENCH_BROKER_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...BROKER_NODE_FLAGS, ...extraFlags, ...(options.nodeFlags ?? []), path.join(REPO, 'src/cli/main.ts'), 'start'], {
    cwd: REPO,
    env: {
      ...process.env,
      WHARF_CONFIG: '',
      WHARF_DATA_DIR: options.dataDir,
      WHARF_HOST: '127.0.0.1',
      WHARF_KAFKA_PORT: String(kafkaPort),
      WHARF_HTTP_PORT: String(httpPort),
      WHARF_OTLP_GRPC_PORT: String(otlpGrpcPort),
      WHARF_OTLP_HTTP_PORT: String(otlpHttpPort),
      WHARF_LOG_LEVEL: 'warn',
      ...options.env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await fetch(`http://127.0.0.1:${httpPort}/readyz`).then((r) => r.ok, () => false)) {
      return { child, bootstrap: `127.0.0.1:${kafkaPort}`, httpPort, otlpGrpcPort, otlpHttpPort, stop };
    }
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error('broker did not become ready');
}

export interface ProducerResult {
  records: number;
  errors: number;
  bytes: number;
  seconds: number;
  latency_ms: { p50: number; p99: number; max: number };
}

/**
 * Runs bench/rdkafka_producer.py (or `script`): acks=all, idempotent, recordBytes per record, for
 * durationS seconds at rateMiBs (0: as fast as it goes). Throws when any produce failed.
 */
export function runRdkafkaProducer(options: {
  bootstrap: string;
  topic: string;
  durationS: number;
  rateMiBs: number;
  recordBytes: number;
  script?: string;
  /** librdkafka settings over the script's own (BENCH_RDKAFKA_CONFIG, when set, still wins). */
  config?: Record<string, string | number | boolean>;
}): ProducerResult {
  const script = options.script ?? path.join(REPO, 'bench/rdkafka_producer.py');
  const args = [script, options.bootstrap, options.topic, String(options.durationS), String(options.rateMiBs), String(options.recordBytes)];
  const config = { ...options.config, ...(process.env.BENCH_RDKAFKA_CONFIG ? JSON.parse(process.env.BENCH_RDKAFKA_CONFIG) as object : {}) };
  const env = { ...process.env, BENCH_RDKAFKA_CONFIG: JSON.stringify(config) };
  const out = execFileSync(PYTHON, args, { encoding: 'utf8', env, maxBuffer: 1 << 20, timeout: (options.durationS + 120) * 1000 });
  const result = JSON.parse(out.trim().split('\n').pop()!) as ProducerResult;
  if (result.errors > 0) throw new Error(`${result.errors} produce errors`);
  return result;
}

/** Sums of the broker's /metrics samples, per selector: a metric name, optionally with `{label="value"`. */
export async function metricSums(httpPort: number, selectors: string[]): Promise<Map<string, number>> {
  // Retried once: a keep-alive socket the server closed meanwhile fails the first attempt.
  const get = async (): Promise<string> => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const text = await get().catch(get);
  const sums = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    for (const selector of selectors) {
      const [name, label] = selector.split('{');
      if (line.split(/[{ ]/)[0] !== name || (label !== undefined && !line.includes(label))) continue;
      sums.set(selector, (sums.get(selector) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
    }
  }
  return sums;
}

/**
 * The most resident memory the process ever had (Linux's VmHWM), in MiB: the figure for "RSS under
 * load", where the RSS read after a run may already be down from its peak. NaN when unknown.
 */
export function peakRssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? NaN : Number(match[1]) / 1024;
  } catch {
    return NaN;
  }
}

/**
 * utime + stime in seconds from a /proc stat line (clock ticks, USER_HZ = 100); with `field` 13,
 * cutime + cstime (the children waited for).
 */
export function statCpuSeconds(stat: string, field = 11): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[field]) + Number(fields[field + 1])) / 100;
}

/** CPU seconds (user + system) a process has used so far, all its threads, from /proc. */
export async function cpuSeconds(pid: number): Promise<number> {
  return statCpuSeconds(await readFile(`/proc/${pid}/stat`, 'utf8'));
}

/** Node's thread names (comm), by the kind of work they do; the main thread (tid = pid) is js_main. */
const THREAD_KINDS: Record<string, string> = {
  V8Worker: 'v8_helpers', 'libuv-worker': 'libuv_pool', WorkerThread: 'worker_threads',
};

/** CPU seconds used so far by each live thread of a process, by tid, with its kind. */
export async function threadCpuSeconds(pid: number): Promise<Map<string, { kind: string; seconds: number }>> {
  const threads = new Map<string, { kind: string; seconds: number }>();
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => undefined);
    if (stat === undefined) continue; // the thread has exited
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    threads.set(tid, { kind: tid === String(pid) ? 'js_main' : THREAD_KINDS[comm] ?? 'other', seconds: statCpuSeconds(stat) });
  }
  return threads;
}

/** CPU seconds by kind of thread between two snapshots (a thread started in between counts from 0). */
export function cpuByKind(before: Map<string, { kind: string; seconds: number }>, after: Map<string, { kind: string; seconds: number }>): Record<string, number> {
  const byKind: Record<string, number> = {};
  for (const [tid, { kind, seconds }] of after) byKind[kind] = (byKind[kind] ?? 0) + seconds - (before.get(tid)?.seconds ?? 0);
  return byKind;
}

/**
 * CPU seconds (user + system) used so far by this process's children that have exited and been
 * waited for (a producer run with execFileSync), from /proc/self/stat.
 */
export function waitedChildrenCpuSeconds(): number {
  return statCpuSeconds(readFileSync('/proc/self/stat', 'utf8'), 13);
}

/** An HTTP answer's status and the time from sending the request to its end. */
export interface Answer { status: number; ms: number }

/** POSTs a protobuf body (OTLP/HTTP) on the agent's connections; resolves when the answer has been read. */
export function postProtobuf(agent: http.Agent, url: URL, body: Buffer): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request({
      agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST',
      headers: { 'content-type': 'application/x-protobuf', 'content-length': body.length },
    }, (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
    });
    req.once('error', reject);
    req.end(body);
  });
}
