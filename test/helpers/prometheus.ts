// Prometheus for tests: the remote-write messages loaded with protobufjs from the repository's
// .proto files (an encoder/decoder independent of Wharf's hand-written one), the series key as
// schemas/prometheus_samples.json describes it, snappy helpers, and a real Prometheus server
// (Debian's /usr/bin/prometheus) started in a temporary directory on a free port.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import protobuf from 'protobufjs';
import { compressSync } from 'snappy';
import { REPO_ROOT, freePort } from './broker.ts';
import { kafkajsClient, waitFor } from './kafka.ts';

export const PROMETHEUS_BIN = '/usr/bin/prometheus';
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------------------------
// Messages

function loadTypes(): { WriteRequest: protobuf.Type; RequestV2: protobuf.Type } {
  const v1 = readFileSync(join(REPO_ROOT, 'schemas', 'prometheus_remote_write_v1.proto'), 'utf8');
  const v2 = readFileSync(join(REPO_ROOT, 'connectors', 'prometheus', 'proto', 'remote_write_v2.proto'), 'utf8');
  const root = new protobuf.Root();
  protobuf.parse(v1, root, { keepCase: true });
  protobuf.parse(v2, root, { keepCase: true });
  return { WriteRequest: root.lookupType('prometheus.WriteRequest'), RequestV2: root.lookupType('io.prometheus.write.v2.Request') };
}

export const { WriteRequest, RequestV2 } = loadTypes();

export const V1_HEADERS = {
  'content-type': 'application/x-protobuf',
  'content-encoding': 'snappy',
  'x-prometheus-remote-write-version': '0.1.0',
} as const;

export const V2_HEADERS = {
  'content-type': 'application/x-protobuf;proto=io.prometheus.write.v2.Request',
  'content-encoding': 'snappy',
  'x-prometheus-remote-write-version': '2.0.0',
} as const;

export interface Label { name: string; value: string }
export interface SampleObject { value: number; timestamp: number | string }
export interface TimeSeriesObject {
  labels: Label[];
  samples?: SampleObject[];
  exemplars?: { labels?: Label[]; value: number; timestamp: number | string }[];
  histograms?: Record<string, unknown>[];
}

/** Encodes a prometheus.WriteRequest from plain objects (protobufjs; int64 as number or string). */
export function encodeWriteRequest(request: { timeseries?: TimeSeriesObject[]; metadata?: Record<string, unknown>[] }): Buffer {
  const message = WriteRequest.fromObject(request);
  return Buffer.from(WriteRequest.encode(message).finish());
}

/** Encodes an io.prometheus.write.v2.Request from plain objects. */
export function encodeRequestV2(request: Record<string, unknown>): Buffer {
  return Buffer.from(RequestV2.encode(RequestV2.fromObject(request)).finish());
}

/** A prometheus.WriteRequest as plain objects: int64 as strings, enums as numbers, defaults filled. */
export function decodeWriteRequest(bytes: Uint8Array): {
  timeseries: { labels: Label[]; samples: { value: number; timestamp: string }[]; exemplars: { labels: Label[]; value: number; timestamp: string }[]; histograms: Record<string, unknown>[] }[];
  metadata: { type: number; metric_family_name: string; help: string; unit: string }[];
} {
  return WriteRequest.toObject(WriteRequest.decode(bytes), { longs: String, enums: Number, defaults: true, arrays: true }) as never;
}

/** Labels sorted by name (as senders must send them). */
export function labels(record: Record<string, string>): Label[] {
  return Object.keys(record).sort(compareUtf8).map((name) => ({ name, value: record[name]! }));
}

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * The record key of a series, written from the description in schemas/prometheus_samples.json
 * (independently of connectors/prometheus/series-identity.ts).
 */
export function seriesKey(labelList: readonly Label[]): string {
  const escape = (text: string): string => text.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
  const name = labelList.find((l) => l.name === '__name__')!.value;
  const rest = labelList.filter((l) => l.name !== '__name__').map((l) => {
    const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/.test(l.name) ? l.name : `"${escape(l.name)}"`;
    return `${labelName}="${escape(l.value)}"`;
  });
  if (/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) return `${name}{${rest.join(',')}}`;
  return `{${[`"${escape(name)}"`, ...rest].join(',')}}`;
}

export function snappy(bytes: Uint8Array): Buffer {
  return compressSync(bytes);
}

/** POSTs a remote-write body; returns status, headers and text. */
export async function postRemoteWrite(
  url: string,
  body: Uint8Array,
  headers: Record<string, string> = V1_HEADERS,
): Promise<{ status: number; headers: Headers; text: string }> {
  const response = await fetch(url, { method: 'POST', body, headers, signal: AbortSignal.timeout(30_000) });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

// ---------------------------------------------------------------------------------------------
// A Prometheus server

export interface PrometheusOptions {
  /** `host:port` targets scraped every scrapeIntervalS under job "targets" (Prometheus scrapes itself too, job "prometheus"). */
  scrapeTargets?: string[];
  scrapeIntervalS?: number;
  /** remote_write URL (e.g. Wharf's /api/v1/write), with short queue deadlines. */
  remoteWriteUrl?: string;
  /** Serve /api/v1/write itself (--web.enable-remote-write-receiver). */
  remoteWriteReceiver?: boolean;
}

export interface PrometheusServer {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** Everything it logged so far (bounded). */
  logs(): string;
  stop(): Promise<void>;
}

const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

function configYaml(port: number, opts: PrometheusOptions): string {
  const interval = `${opts.scrapeIntervalS ?? 1}s`;
  const lines = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  evaluation_interval: ${interval}`,
    'scrape_configs:',
    '  - job_name: prometheus',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${port}']`,
  ];
  if (opts.scrapeTargets && opts.scrapeTargets.length > 0) {
    lines.push('  - job_name: targets', '    static_configs:', `      - targets: [${opts.scrapeTargets.map((t) => `'${t}'`).join(', ')}]`);
  }
  if (opts.remoteWriteUrl) {
    lines.push(
      'remote_write:',
      `  - url: ${opts.remoteWriteUrl}`,
      '    remote_timeout: 10s',
      '    queue_config:',
      '      batch_send_deadline: 1s',
      '      min_backoff: 50ms',
      '      max_backoff: 1s',
      '      retry_on_http_429: true',
      '    metadata_config:',
      '      send: true',
      '      send_interval: 2s',
    );
  }
  return `${lines.join('\n')}\n`;
}

export async function startPrometheus(opts: PrometheusOptions = {}): Promise<PrometheusServer> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-prometheus-'));
  const port = await freePort();
  const configPath = join(dir, 'prometheus.yml');
  await writeFile(configPath, configYaml(port, opts));
  const args = [
    `--config.file=${configPath}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=info',
  ];
  if (opts.remoteWriteReceiver) args.push('--web.enable-remote-write-receiver');
  const child = spawn(PROMETHEUS_BIN, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  let logText = '';
  const append = (text: string): void => {
    logText += text;
    if (logText.length > 2 * 1024 * 1024) logText = logText.slice(-1024 * 1024);
  };
  child.stdout!.setEncoding('utf8').on('data', append);
  child.stderr!.setEncoding('utf8').on('data', append);
  const exited = new Promise<void>((resolveExit) => {
    child.once('error', (err) => {
      append(`\nspawn failed: ${err.message}\n`);
      resolveExit();
    });
    child.once('exit', () => resolveExit());
  });
  exited.then(() => liveChildren.delete(child), () => undefined);

  let stopped = false;
  const server: PrometheusServer = {
    port,
    url: `http://127.0.0.1:${port}`,
    dir,
    logs: () => logText,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    const ready = await fetch(`${server.url}/-/ready`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.status === 200, () => false);
    if (ready) return server;
    await sleep(100);
  }
  const output = logText.split('\n').slice(-40).join('\n');
  await server.stop();
  throw new Error(`prometheus did not become ready on port ${port}:\n${output}`);
}

// ---------------------------------------------------------------------------------------------
// Reading prometheus_samples back through the Kafka protocol

export interface SampleRecord {
  partition: number;
  offset: string;
  key: string;
  headers: Record<string, string>;
  request: ReturnType<typeof decodeWriteRequest>;
}

/** True once the topic exists (reading it earlier would auto-create it with the broker's default partitions). */
export async function topicExists(bootstrap: string, topic: string): Promise<boolean> {
  const admin = kafkajsClient(bootstrap).admin();
  await admin.connect();
  try {
    return (await admin.listTopics()).includes(topic);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Reads the topic from the beginning with a kafkajs consumer (fresh group), decoding every value
 * as a prometheus.WriteRequest, until `done(records)` holds; throws after timeoutMs.
 */
export async function readSampleRecords(
  bootstrap: string,
  topic: string,
  done: (records: SampleRecord[]) => boolean,
  timeoutMs = 30_000,
): Promise<SampleRecord[]> {
  await waitFor(`topic ${topic} to exist`, () => topicExists(bootstrap, topic), timeoutMs);
  const records: SampleRecord[] = [];
  const consumer = kafkajsClient(bootstrap).consumer({ groupId: `test-${process.pid}-${Date.now()}-${Math.random()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = String(value);
        records.push({
          partition,
          offset: message.offset,
          key: message.key!.toString('utf8'),
          headers,
          request: decodeWriteRequest(message.value!),
        });
      },
    });
    await waitFor(`records of ${topic} to satisfy the test (${records.length} read so far)`, () => done(records), timeoutMs);
    return records;
  } finally {
    await consumer.disconnect();
  }
}

/** Fails with a clear message when the broker does not serve remote write (connector not wired into the CLI). */
export async function expectRemoteWriteRoute(httpUrl: string): Promise<void> {
  const response = await postRemoteWrite(`${httpUrl}/api/v1/write`, snappy(Buffer.alloc(0)));
  if (response.status === 404) {
    throw new Error('the broker answers 404 to POST /api/v1/write: startRemoteWrite (connectors/prometheus) is not wired into src/cli/main.ts');
  }
}
