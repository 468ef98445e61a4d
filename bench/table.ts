// Stream-to-table benchmark (bench/table.ts): how fast the table writer turns topic records into
// committed Parquet, next to DuckDB writing the same rows, what the files cost, and how fresh the
// tables are. For logs, then spans, each in its own data directory:
//
// 1. Load: a broker process with the table writer off (WHARF_TABLE_ENABLE=false) receives
//    BENCH_TABLE_LOGS (default 2M) log records, 1,000 per OTLP/HTTP protobuf request (16
//    resource attributes with service.name, host.name, k8s.pod.name; 4 log attributes; ~80-byte
//    bodies; trace ids on half), or BENCH_TABLE_SPANS (default 2M, as many as logs) spans (8-9 attributes, an
//    exception event on 1 in 8). The ingest topic is created beforehand (Kafka CreateTopics)
//    with the ingest configs plus wharf.table.commit.interval.ms=BENCH_TABLE_COMMIT_INTERVAL_MS
//    (default 1000), so the last rows wait at most 1 s for their commit instead of 10 s (files
//    are cut by table.buffer.max.bytes during a catch-up either way).
// 2. Catch-up: the broker restarts on the same data with the writer on; rows/s = rows / seconds
//    from /readyz until the table's current snapshot (REST catalog, polled every 100 ms) holds
//    them all. Also the broker process's CPU seconds over that time (all threads).
// 3. DuckDB: the committed rows (read from the snapshot's Parquet files) in an in-memory table,
//    `COPY t TO ... (FORMAT parquet, COMPRESSION zstd)` timed with 1 thread and with all cores,
//    the broker stopped; the ratio is Wharf's rows/s over DuckDB's better one. DuckDB only
//    encodes here, Wharf also decodes the OTLP records and builds the columns.
// 4. Files: count, bytes and bytes per row of the snapshot's data files, and DuckDB's file.
//
// Then freshness: a fresh broker with the default topic configs (10 s commit interval), 2,000
// logs/s in requests of 100 for BENCH_TABLE_FRESHNESS_SECONDS (default 40); per request, the
// time from its HTTP 200 to the first committed snapshot holding its rows (catalog polled every
// 250 ms; rows found by a `req=<n>` prefix of their bodies).
//
// BENCH_TABLE_CPU_PROF=<dir> runs the catch-up brokers with --cpu-prof (one profile per thread).
// BENCH_TABLE_SIGNALS=spans (or logs) runs one signal only; BENCH_TABLE_FRESHNESS_SECONDS=0 skips
// the freshness part. The catch-up prints the broker's CPU seconds by thread name (table
// workers, V8's compiler and GC helpers, main).
//
// BENCH_TABLE_CPU=1 measures instead, in this process and without brokers, the table worker's CPU
// per row: the signal's requests (BENCH_TABLE_LOGS / BENCH_TABLE_SPANS items, the payloads
// above) split into topic records as the OTLP receiver does, one batch per request, appended to
// a TopicConversion in 4 MiB reads and written as Parquet every table.buffer.max.bytes; process
// CPU (all threads) per row for appending (decode + convert) and for writing Parquet, best and
// median of BENCH_TABLE_CPU_RUNS (default 5) passes after a first, warm-up pass.
//
// Prints a table for people and one JSON line per figure: {"bench", "metric", "value", "unit"}.

import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { Kafka, logLevel } from 'kafkajs';
import { jsonToProto, type OtlpJson } from '../connectors/otlp/json.ts';
import { splitRequest } from '../connectors/otlp/split.ts';
import { TopicConversion } from '../connectors/table/conversion.ts';
import { buildPartitionSpec } from '../connectors/table/iceberg/partitioning.ts';
import { loadTableSchemaFile } from '../connectors/table/table-schemas.ts';
import { parquetOptions } from '../connectors/table/topic-writer.ts';
import { defaultConfig } from '../src/config/config.ts';
import { encodeRecordBatch } from '../src/protocol/record-encoder.ts';
import { setBaseOffset } from '../src/protocol/records.ts';
import { readCurrentDataFiles, type DataFile } from '../connectors/table/iceberg/catalog.ts';
import { currentSnapshot, type TableMetadata } from '../connectors/table/iceberg/metadata.ts';
import { createObjectStore, type ObjectStore } from '../src/storage/objectstore/index.ts';
import { objectUris, type ObjectUris } from '../src/storage/objectstore/uri.ts';
import { logsRequest, traceRequest } from '../test/unit/otlp/payloads.ts';
import { Figures, percentile, postProtobuf, startBrokerProcess, type BrokerProcess } from './lib.ts';

const BENCH = 'table';
const LOG_RECORDS = Number(process.env.BENCH_TABLE_LOGS ?? 2_000_000);
const SPANS = Number(process.env.BENCH_TABLE_SPANS ?? 2_000_000);
const ITEMS_PER_REQUEST = 1000;
const LOAD_CLIENTS = 4;
/** Distinct resources: the logs topic is keyed by service.name, so they spread over partitions. */
const SERVICES = 32;
const TOPIC_PARTITIONS = 8;
const CATCHUP_COMMIT_INTERVAL_MS = Number(process.env.BENCH_TABLE_COMMIT_INTERVAL_MS ?? 1000);
const CATCHUP_POLL_MS = 100;
const CATCHUP_TIMEOUT_MS = 240_000;
const FRESHNESS_SECONDS = Number(process.env.BENCH_TABLE_FRESHNESS_SECONDS ?? 40);
const FRESHNESS_LOGS_PER_S = 2000;
const FRESHNESS_LOGS_PER_REQUEST = 100;
const FRESHNESS_POLL_MS = 250;
/** Rows from the load sit in one hour (the tables are partitioned by hour): 2025-11-21T04:00Z. */
const LOAD_BASE_MS = 1_763_697_600_000;
const CPU_PROF_DIR = process.env.BENCH_TABLE_CPU_PROF;
const ONLY_SIGNALS = process.env.BENCH_TABLE_SIGNALS?.split(',');
const CPU_ONLY = process.env.BENCH_TABLE_CPU === '1';
const CPU_RUNS = Number(process.env.BENCH_TABLE_CPU_RUNS ?? 5);

// kafkajs (createTableTopic) sets a negative timeout when it is not throttled; Node 24 warns.
process.removeAllListeners('warning');
process.on('warning', (warning) => { if (warning.name !== 'TimeoutNegativeWarning') console.warn(warning); });

const figures = new Figures();
const report = figures.report.bind(figures);

interface SignalSpec {
  name: 'logs' | 'spans';
  table: string;
  path: string;
  items: number;
  payload(k: number): Buffer;
}

const ALL_SIGNALS: SignalSpec[] = [
  { name: 'logs', table: 'otlp_logs', path: '/v1/logs', items: LOG_RECORDS, payload: logsPayload },
  { name: 'spans', table: 'otlp_spans', path: '/v1/traces', items: SPANS, payload: spansPayload },
];
const SIGNALS = ALL_SIGNALS.filter((signal) => ONLY_SIGNALS === undefined || ONLY_SIGNALS.includes(signal.name));

// ---------------------------------------------------------------------------------------------
// Load

const str = (key: string, value: string): OtlpJson => ({ key, value: { stringValue: value } });

/** The first resource of a request, with Kubernetes attributes added to the payloads' resource. */
function addKubernetes(resources: OtlpJson[], service: string, k: number): void {
  const attributes = (resources[0]!.resource as OtlpJson).attributes as OtlpJson[];
  attributes.push(str('k8s.namespace.name', 'shop'), str('k8s.pod.name', `${service}-7d9f8b6c4-${(k % 997).toString(36).padStart(5, 'x')}`));
}

function logsPayload(k: number): Buffer {
  const service = `svc-${k % SERVICES}`;
  const request = logsRequest({ records: ITEMS_PER_REQUEST, seed: 1 + k, serviceName: service, instance: k % SERVICES, startMs: LOAD_BASE_MS + k * 250 });
  addKubernetes(request.resourceLogs as OtlpJson[], service, k);
  return jsonToProto('ExportLogsServiceRequest', request);
}

function spansPayload(k: number): Buffer {
  const service = `svc-${k % SERVICES}`;
  const request = traceRequest({ spans: ITEMS_PER_REQUEST, spansPerTrace: 16, seed: 1 + k, serviceName: service, instance: k % SERVICES, startMs: LOAD_BASE_MS + k * 1000 });
  addKubernetes(request.resourceSpans as OtlpJson[], service, k);
  return jsonToProto('ExportTraceServiceRequest', request);
}

/** Posts until answered 200; 429/503 (back-pressure) are retried after a pause. */
async function postAccepted(agent: http.Agent, url: URL, body: Buffer): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const { status } = await postProtobuf(agent, url, body);
    if (status === 200) return;
    if (status !== 429 && status !== 503) throw new Error(`POST ${url.pathname}: HTTP ${status}`);
    await sleep(20);
  }
  throw new Error(`POST ${url.pathname}: still refused after 100 attempts`);
}

/** Sends every request of the signal with LOAD_CLIENTS closed-loop clients; returns items/s. */
async function load(broker: BrokerProcess, signal: SignalSpec): Promise<number> {
  const url = new URL(signal.path, `http://127.0.0.1:${broker.otlpHttpPort}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: LOAD_CLIENTS });
  const requests = Math.ceil(signal.items / ITEMS_PER_REQUEST);
  if (requests * ITEMS_PER_REQUEST !== signal.items) throw new Error(`${signal.name}: a multiple of ${ITEMS_PER_REQUEST}, please`);
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: LOAD_CLIENTS }, async () => {
    for (let k = next++; k < requests; k = next++) await postAccepted(agent, url, signal.payload(k));
  }));
  agent.destroy();
  return signal.items / ((performance.now() - started) / 1000);
}

/** The ingest topic as the OTLP receiver would create it, with a 1 s commit interval. */
async function createTableTopic(bootstrap: string, topic: string): Promise<void> {
  const admin = new Kafka({ clientId: 'bench-table', brokers: [bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{
        topic,
        numPartitions: TOPIC_PARTITIONS,
        configEntries: [
          { name: 'wharf.table.enable', value: 'true' },
          { name: 'wharf.table.schema', value: topic },
          { name: 'wharf.table.commit.interval.ms', value: String(CATCHUP_COMMIT_INTERVAL_MS) },
        ],
      }],
    });
  } finally {
    await admin.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// Catch-up

async function loadTableMetadata(broker: BrokerProcess, table: string): Promise<TableMetadata | undefined> {
  const res = await fetch(`http://127.0.0.1:${broker.httpPort}/iceberg/v1/namespaces/wharf/tables/${table}`);
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`loading table ${table}: HTTP ${res.status}`);
  return ((await res.json()) as { metadata: TableMetadata }).metadata;
}

function committedRows(metadata: TableMetadata | undefined): number {
  const snapshot = metadata && currentSnapshot(metadata);
  return snapshot ? Number(snapshot.summary['total-records'] ?? 0) : 0;
}

const CLOCK_TICKS_PER_S = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** Name and CPU seconds (user + system) of a /proc stat line: `pid (name) state ... utime stime`. */
function statCpu(stat: string): { name: string; cpuSeconds: number } {
  const nameEnd = stat.lastIndexOf(') ');
  const fields = stat.slice(nameEnd + 2).split(' ');
  return {
    name: stat.slice(stat.indexOf('(') + 1, nameEnd),
    cpuSeconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S, // utime, stime (fields 14, 15)
  };
}

/** CPU seconds (user + system, all threads) a process has used. */
async function cpuSecondsOf(pid: number): Promise<number> {
  return statCpu(await readFile(`/proc/${pid}/stat`, 'utf8')).cpuSeconds;
}

/** CPU seconds by thread, keyed `<name> <tid>` (/proc/<pid>/task/<tid>/stat). */
async function threadCpuSecondsOf(pid: number): Promise<Map<string, number>> {
  const cpu = new Map<string, number>();
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => undefined);
    if (stat === undefined) continue; // the thread ended
    const { name, cpuSeconds } = statCpu(stat);
    cpu.set(`${name} ${tid}`, cpuSeconds);
  }
  return cpu;
}

/** CPU seconds each kind of thread used between two readings (threads of one name summed). */
function threadCpuLine(before: Map<string, number>, after: Map<string, number>): string {
  const byName = new Map<string, number>();
  for (const [key, seconds] of after) {
    const name = key.slice(0, key.lastIndexOf(' '));
    byName.set(name, (byName.get(name) ?? 0) + seconds - (before.get(key) ?? 0));
  }
  return [...byName].filter(([, s]) => s >= 0.01).sort((a, b) => b[1] - a[1]).map(([n, s]) => `${n} ${s.toFixed(2)}`).join(', ');
}

interface CatchUp { broker: BrokerProcess; seconds: number; cpuSeconds: number; metadata: TableMetadata }

/** Restarts the broker with the writer on and waits until the table holds `rows`. */
async function catchUp(dataDir: string, signal: SignalSpec): Promise<CatchUp> {
  const nodeFlags = CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(CPU_PROF_DIR, signal.name)}`] : [];
  const broker = await startBrokerProcess({ dataDir, nodeFlags });
  const readyMs = performance.now();
  const cpuAtReady = await cpuSecondsOf(broker.child.pid!);
  const threadsAtReady = await threadCpuSecondsOf(broker.child.pid!);
  const deadline = readyMs + CATCHUP_TIMEOUT_MS;
  let metadata: TableMetadata | undefined;
  while (committedRows(metadata) < signal.items) {
    if (performance.now() > deadline) throw new Error(`${signal.table}: ${committedRows(metadata)} of ${signal.items} rows after ${CATCHUP_TIMEOUT_MS} ms`);
    await sleep(CATCHUP_POLL_MS);
    metadata = await loadTableMetadata(broker, signal.table);
  }
  const seconds = (performance.now() - readyMs) / 1000;
  const cpuSeconds = (await cpuSecondsOf(broker.child.pid!)) - cpuAtReady;
  console.log(`# ${signal.name}: broker CPU s by thread: ${threadCpuLine(threadsAtReady, await threadCpuSecondsOf(broker.child.pid!))}`);
  if (committedRows(metadata) !== signal.items) throw new Error(`${signal.table}: ${committedRows(metadata)} rows committed, ${signal.items} sent`);
  return { broker, seconds, cpuSeconds, metadata: metadata! };
}

// ---------------------------------------------------------------------------------------------
// DuckDB and files

interface LocalStore { store: ObjectStore; uris: ObjectUris }

async function openLocalStore(dataDir: string): Promise<LocalStore> {
  const rootDir = path.join(dataDir, 'objects');
  return { store: await createObjectStore({ kind: 'local', rootDir }), uris: objectUris({ kind: 'local', rootDir }) };
}

const sqlList = (paths: readonly string[]): string => `[${paths.map((p) => `'${p.replaceAll("'", "''")}'`).join(', ')}]`;

async function timedCopy(duck: DuckDBConnection, threads: number, out: string): Promise<number> {
  await duck.run(`SET threads = ${threads}`);
  const started = performance.now();
  await duck.run(`COPY t TO '${out}' (FORMAT parquet, COMPRESSION zstd)`);
  return (performance.now() - started) / 1000;
}

/** DuckDB's COPY of the same rows, with 1 thread and all cores; rows/s and its file size. */
async function duckdbReference(files: readonly DataFile[], rows: number, work: string, signal: SignalSpec, wharfRowsPerS: number): Promise<void> {
  const cores = os.availableParallelism();
  const db = await DuckDBInstance.create(':memory:');
  const duck = await db.connect();
  try {
    await duck.run(`CREATE TABLE t AS SELECT * FROM read_parquet(${sqlList(files.map((f) => fileURLToPath(f.path)))})`);
    const counted = Number((await duck.runAndReadAll('SELECT count(*) FROM t')).getRows()[0]![0]);
    if (counted !== rows) throw new Error(`DuckDB read ${counted} rows of ${signal.table}, the snapshot says ${rows}`);
    let bestRowsPerS = 0;
    for (const threads of [1, cores]) {
      const out = path.join(work, `duckdb-${signal.name}-${threads}.parquet`);
      const rowsPerS = rows / await timedCopy(duck, threads, out);
      bestRowsPerS = Math.max(bestRowsPerS, rowsPerS);
      report(BENCH, `${signal.name}_duckdb_copy_${threads === 1 ? '1_thread' : `${threads}_threads`}_rows_per_s`, rowsPerS, 'rows/s');
      if (threads === 1) {
        const sizeBytes = (await stat(out)).size;
        report(BENCH, `${signal.name}_duckdb_file_mib`, sizeBytes / 2 ** 20, 'MiB');
        report(BENCH, `${signal.name}_duckdb_bytes_per_row`, sizeBytes / rows, 'B/row');
      }
    }
    report(BENCH, `${signal.name}_wharf_vs_duckdb_best`, wharfRowsPerS / bestRowsPerS, 'x');
  } finally {
    duck.closeSync();
    db.closeSync();
  }
}

function reportFiles(signal: SignalSpec, files: readonly DataFile[], rows: number): void {
  const totalBytes = files.reduce((n, f) => n + f.fileSizeBytes, 0);
  report(BENCH, `${signal.name}_files`, files.length, 'files');
  report(BENCH, `${signal.name}_files_mib`, totalBytes / 2 ** 20, 'MiB');
  report(BENCH, `${signal.name}_file_mean_mib`, totalBytes / files.length / 2 ** 20, 'MiB');
  report(BENCH, `${signal.name}_bytes_per_row`, totalBytes / rows, 'B/row');
}

async function signalBench(work: string, signal: SignalSpec): Promise<void> {
  const dataDir = path.join(work, signal.name);
  const loader = await startBrokerProcess({ dataDir, env: { WHARF_TABLE_ENABLE: 'false' } });
  try {
    await createTableTopic(loader.bootstrap, signal.table);
    const itemsPerS = await load(loader, signal);
    console.log(`# ${signal.name}: ${signal.items} sent over OTLP/HTTP at ${Math.round(itemsPerS)}/s (writer off); catching up`);
  } finally {
    await loader.stop();
  }
  const run = await catchUp(dataDir, signal);
  const local = await openLocalStore(dataDir);
  try {
    const rowsPerS = signal.items / run.seconds;
    report(BENCH, `${signal.name}_topic_to_parquet_rows_per_s`, rowsPerS, 'rows/s');
    report(BENCH, `${signal.name}_catchup_s`, run.seconds, 's');
    report(BENCH, `${signal.name}_rows_per_broker_cpu_s`, signal.items / run.cpuSeconds, 'rows/cpu-s');
    report(BENCH, `${signal.name}_snapshots`, run.metadata.snapshots.length, 'snapshots');
    const added = run.metadata.snapshots.map((s) => Number(s.summary['added-records'] ?? 0)).sort((a, b) => a - b);
    console.log(`# ${signal.name}: rows per snapshot min ${added[0]}, median ${percentile(added, 0.5)}, max ${added[added.length - 1]}`);
    const files = await readCurrentDataFiles(local.store, local.uris, run.metadata);
    reportFiles(signal, files, signal.items);
    await run.broker.stop();
    await duckdbReference(files, signal.items, work, signal, rowsPerS);
  } finally {
    await run.broker.stop();
    await local.store.close();
  }
}

// ---------------------------------------------------------------------------------------------
// CPU per row, in process

/** The signal's requests as stored batches, joined into reads of about fetchMaxBytes. */
function topicReads(signal: SignalSpec, readBytes: number): Buffer[] {
  const reads: Buffer[] = [];
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let offset = 0;
  for (let k = 0; k < signal.items / ITEMS_PER_REQUEST; k++) {
    const split = splitRequest(signal.name === 'spans' ? 'traces' : 'logs', signal.payload(k), { maxRecordBytes: 1 << 20 });
    const batch = encodeRecordBatch(split.records.map((r) => ({ key: r.key, value: r.value, timestampMs: LOAD_BASE_MS })), LOAD_BASE_MS);
    setBaseOffset(batch, 0, offset);
    offset += split.records.length;
    pending.push(batch);
    pendingBytes += batch.length;
    if (pendingBytes >= readBytes) {
      reads.push(Buffer.concat(pending));
      pending = [];
      pendingBytes = 0;
    }
  }
  if (pending.length > 0) reads.push(Buffer.concat(pending));
  return reads;
}

const cpuMicros = (since: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(since);
  return used.user + used.system;
};

/** One pass over the reads: CPU µs per row appending, and writing Parquet. */
function conversionPass(conversion: TopicConversion, reads: readonly Buffer[], rows: number, bufferMaxBytes: number): [number, number] {
  let appendMicros = 0;
  let writeMicros = 0;
  let next = 0;
  const write = (): void => {
    const started = process.cpuUsage();
    conversion.flush();
    writeMicros += cpuMicros(started);
  };
  for (const read of reads) {
    const started = process.cpuUsage();
    const outcome = conversion.append(0, read, next, [0]);
    appendMicros += cpuMicros(started);
    next = outcome.nextOffset;
    if (outcome.bufferedBytes >= bufferMaxBytes) write();
  }
  write();
  return [appendMicros / rows, writeMicros / rows];
}

function cpuBench(signal: SignalSpec): void {
  const { table } = defaultConfig();
  const file = loadTableSchemaFile(signal.table);
  const reads = topicReads(signal, table.fetchMaxBytes);
  const conversion = new TopicConversion({
    topic: signal.table,
    schemaName: signal.table,
    encoding: 'otlp_proto',
    tables: file.tables.map((t) => ({ schema: t.schema, spec: buildPartitionSpec(t.schema, t.partitionBy) })),
    parquet: parquetOptions(table),
  });
  conversionPass(conversion, reads, signal.items, table.bufferMaxBytes); // warm-up
  const passes = Array.from({ length: CPU_RUNS }, () => conversionPass(conversion, reads, signal.items, table.bufferMaxBytes));
  const totals = passes.map(([append, write]) => append + write).sort((a, b) => a - b);
  const best = (i: number): number => Math.min(...passes.map((p) => p[i]!));
  report(BENCH, `${signal.name}_cpu_append_us_per_row`, best(0), 'µs/row');
  report(BENCH, `${signal.name}_cpu_parquet_us_per_row`, best(1), 'µs/row');
  report(BENCH, `${signal.name}_cpu_total_us_per_row_best`, totals[0]!, 'µs/row');
  report(BENCH, `${signal.name}_cpu_total_us_per_row_median`, percentile(totals, 0.5), 'µs/row');
}

// ---------------------------------------------------------------------------------------------
// Freshness

function freshnessPayload(k: number): Buffer {
  const service = `svc-${k % SERVICES}`;
  const request = logsRequest({ records: FRESHNESS_LOGS_PER_REQUEST, seed: 1 + k, serviceName: service, instance: k % SERVICES, startMs: Date.now() });
  addKubernetes(request.resourceLogs as OtlpJson[], service, k);
  const records = ((request.resourceLogs as OtlpJson[])[0]!.scopeLogs as OtlpJson[])[0]!.logRecords as OtlpJson[];
  for (const record of records) {
    const body = record.body as OtlpJson;
    body.stringValue = `req=${k} ${String(body.stringValue)}`;
  }
  return jsonToProto('ExportLogsServiceRequest', request);
}

/** Requests on a fixed schedule; the time each was answered 200, by request number. */
async function pacedLogs(broker: BrokerProcess, ackedMs: Map<number, number>): Promise<void> {
  const url = new URL('/v1/logs', `http://127.0.0.1:${broker.otlpHttpPort}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const requestsPerS = FRESHNESS_LOGS_PER_S / FRESHNESS_LOGS_PER_REQUEST;
  const count = Math.floor(FRESHNESS_SECONDS * requestsPerS);
  const start = performance.now();
  const pending: Promise<void>[] = [];
  for (let k = 0; k < count; k++) {
    const wait = start + (k * 1000) / requestsPerS - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(postAccepted(agent, url, freshnessPayload(k)).then(() => { ackedMs.set(k, performance.now()); }));
  }
  await Promise.all(pending);
  agent.destroy();
}

/** Watches the table's snapshots; the time each request's rows were first seen committed. */
class SnapshotWatcher {
  readonly visibleMs = new Map<number, number>();
  private readonly counts = new Map<number, number>();
  private readonly queriedFiles = new Set<string>();
  private lastSnapshotId = -1;

  private readonly deps: { broker: BrokerProcess; local: LocalStore; duck: DuckDBConnection };

  constructor(deps: { broker: BrokerProcess; local: LocalStore; duck: DuckDBConnection }) {
    this.deps = deps;
  }

  /** One poll: when the snapshot changed, finds the requests whose rows it made complete. */
  async poll(): Promise<void> {
    const metadata = await loadTableMetadata(this.deps.broker, 'otlp_logs');
    const seenMs = performance.now();
    const snapshot = metadata && currentSnapshot(metadata);
    if (!snapshot || snapshot['snapshot-id'] === this.lastSnapshotId) return;
    this.lastSnapshotId = snapshot['snapshot-id'];
    const files = (await readCurrentDataFiles(this.deps.local.store, this.deps.local.uris, metadata)).map((f) => fileURLToPath(f.path));
    const added = files.filter((f) => !this.queriedFiles.has(f));
    for (const f of added) this.queriedFiles.add(f);
    if (snapshot.summary.operation !== 'append' || added.length === 0) return; // compaction rewrites rows already seen
    const reader = await this.deps.duck.runAndReadAll(
      `SELECT CAST(substr(split_part(body, ' ', 1), 5) AS INTEGER) AS req, count(*)::INTEGER AS n FROM read_parquet(${sqlList(added)}) GROUP BY 1`);
    for (const [req, n] of reader.getRows() as [number, number][]) {
      const total = (this.counts.get(req) ?? 0) + n;
      this.counts.set(req, total);
      if (total >= FRESHNESS_LOGS_PER_REQUEST && !this.visibleMs.has(req)) this.visibleMs.set(req, seenMs);
    }
  }
}

async function freshnessBench(work: string): Promise<void> {
  const dataDir = path.join(work, 'freshness');
  const broker = await startBrokerProcess({ dataDir });
  const local = await openLocalStore(dataDir);
  const db = await DuckDBInstance.create(':memory:', { threads: '1' });
  const duck = await db.connect();
  try {
    console.log(`# freshness: ${FRESHNESS_LOGS_PER_S} logs/s for ${FRESHNESS_SECONDS} s, default commit interval, catalog polled every ${FRESHNESS_POLL_MS} ms`);
    const ackedMs = new Map<number, number>();
    const watcher = new SnapshotWatcher({ broker, local, duck });
    let sending = true;
    const sender = pacedLogs(broker, ackedMs).finally(() => { sending = false; });
    let deadline = Infinity;
    while (sending || (watcher.visibleMs.size < ackedMs.size && performance.now() < deadline)) {
      if (!sending && deadline === Infinity) deadline = performance.now() + 30_000;
      await sleep(FRESHNESS_POLL_MS);
      await watcher.poll();
    }
    await sender;
    const delaysS = [...ackedMs].flatMap(([k, ack]) => {
      const visible = watcher.visibleMs.get(k);
      return visible === undefined ? [] : [(visible - ack) / 1000];
    }).sort((a, b) => a - b);
    report(BENCH, 'freshness_requests', delaysS.length, 'requests');
    if (delaysS.length < ackedMs.size) report(BENCH, 'freshness_never_visible', ackedMs.size - delaysS.length, 'requests');
    report(BENCH, 'freshness_p50_s', percentile(delaysS, 0.5), 's');
    report(BENCH, 'freshness_p99_s', percentile(delaysS, 0.99), 's');
    report(BENCH, 'freshness_max_s', delaysS[delaysS.length - 1] ?? NaN, 's');
  } finally {
    duck.closeSync();
    db.closeSync();
    await broker.stop();
    await local.store.close();
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  if (CPU_ONLY) {
    for (const signal of SIGNALS) cpuBench(signal);
    figures.printTable();
    return;
  }
  const work = await mkdtemp(path.join(os.tmpdir(), 'wharf-bench-table-'));
  try {
    for (const signal of SIGNALS) await signalBench(work, signal);
    if (FRESHNESS_SECONDS > 0) await freshnessBench(work);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  report(BENCH, 'bench_runtime_s', (performance.now() - started) / 1000, 's');
  figures.printTable();
}

await main();
