// Broker configuration: defaults, overridden by a YAML file (wharf.yaml), overridden by WHARF_*
// environment variables. Kafka settings keep Kafka's names in the file (`num.partitions`,
// `auto.create.topics.enable`, `socket.request.max.bytes`, ...); each has a WHARF_ variable
// spelled as its upper-cased name with dots as underscores.

import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';

export interface S3Config {
  endpoint: string | undefined;
  region: string;
  bucket: string;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
  forcePathStyle: boolean;
}

export interface WharfConfig {
  nodeId: number;
  dataDir: string;
  host: string;
  advertisedHost: string;
  kafkaPort: number;
  httpPort: number;
  /** Kafka's num.partitions: partition count of auto-created topics. */
  numPartitions: number;
  /** Kafka's auto.create.topics.enable. */
  autoCreateTopics: boolean;
  /** Kafka's socket.request.max.bytes: frames larger than this close the connection. */
  socketRequestMaxBytes: number;
  /** Kafka's message.max.bytes: the largest record batch accepted. */
  messageMaxBytes: number;
  /** Kafka's group.initial.rebalance.delay.ms. */
  groupInitialRebalanceDelayMs: number;
  groupMinSessionTimeoutMs: number;
  groupMaxSessionTimeoutMs: number;
  /** Where the WAL lives: a local file (`file`) or the object store (`object`). */
  walKind: 'file' | 'object';
  /** Bound of the WAL's unreleased bytes (file WAL: ring size; object WAL: bytes in objects not yet trimmed). */
  walCapacityBytes: number;
  /** Object WAL: longest an append waits for its batch's PUT to start. */
  walObjectIntervalMs: number;
  /** Object WAL: batch size at which the PUT starts at once (also the largest object). */
  walObjectMaxBytes: number;
  logCacheSizeBytes: number;
  /** Bound of the block cache: data blocks of objects read by catch-up reads (log-cache misses). */
  blockCacheSizeBytes: number;
  /** Cap of a sequential catch-up reader's read-ahead window. */
  readAheadMaxBytes: number;
  /** Catch-up budget: object-store GETs at once, and their bytes in flight. */
  catchUpMaxConcurrentGets: number;
  catchUpMaxInflightBytes: number;
  /** Most the p99 latency of appends (loop delay included) may reach while catch-up reads run (the tail guard holds it to 1.25 times its value without them); 0: never paced. */
  catchUpTailTargetMs: number;
  uploadIntervalMs: number;
  uploadSizeBytes: number;
  /** Streams with at least this much data in an upload (or compaction job) get stream objects of their own. */
  streamSplitSizeBytes: number;
  /** Storage maintenance (src/storage/maintenance.ts): how often compaction looks for work. */
  compactionIntervalMs: number;
  /** Size of the objects compaction writes (and the most one job reads). */
  compactionTargetObjectBytes: number;
  /** Bound on the bytes compaction reads per second. */
  compactionMaxBytesPerSecond: number;
  /** How long compacted or dead objects stay readable before they are deleted. */
  objectGcDelayMs: number;
  objectGcIntervalMs: number;
  /** Kafka's log.retention.check.interval.ms (retention.ms / retention.bytes are topic configs). */
  logRetentionCheckIntervalMs: number;
  objectStore: 'local' | 's3';
  s3: S3Config;
  /** Bound on bytes of requests being processed per connection before reads pause. */
  connectionMaxInflightBytes: number;
  logLevel: string;
  ingest: IngestConfig;
  table: TableConfig;
}

/** The stream-to-table writer (connectors/table): topics become Iceberg tables of Parquet files. */
export interface TableConfig {
  /** Runs the table writer in this process. */
  enabled: boolean;
  /** The four ingest topics are created as table topics (wharf.table.enable=true). */
  ingestTables: boolean;
  /** Namespace of tables whose topic does not set wharf.table.namespace. */
  namespace: string;
  /**
   * Bound on a topic's rows buffered in column builders (memory, not file size: Parquet is
   * 10-30x smaller); past it the rows are written and committed before the commit interval.
   */
  bufferMaxBytes: number;
  /** Size compaction merges small data files towards (files under a quarter of it are small). */
  targetFileBytes: number;
  /** Worker threads that convert records and write Parquet; a topic's partitions are spread over them. */
  workerThreads: number;
  /** Niceness of those threads (0-19): when CPU is short, serving clients comes before tables. */
  workerNice: number;
  /** Rows per Parquet row group. */
  rowGroupRows: number;
  /** Bytes one read of a partition asks for. */
  fetchMaxBytes: number;
  /** How often small files are looked for and compacted, and how many make a compaction. */
  compactionIntervalMs: number;
  compactionMinFiles: number;
  /** How often snapshots are expired (by the table's history.expire.* properties) and orphans removed. */
  maintenanceIntervalMs: number;
  /** Uncommitted files younger than this are never taken for orphans. */
  orphanMinAgeMs: number;
}

/** The OTLP and Prometheus remote-write front-ends (connectors/). */
export interface IngestConfig {
  otlpEnabled: boolean;
  otlpGrpcPort: number;
  otlpHttpPort: number;
  /** Topic names, and how records are encoded in them (schemas/ documents each encoding). */
  spansTopic: string;
  metricsTopic: string;
  logsTopic: string;
  prometheusTopic: string;
  otlpEncoding: 'otlp_proto' | 'otlp_json';
  /** Partitions of an ingest topic created on first use. */
  topicPartitions: number;
  /** Largest request body accepted (after decompression); larger ones get 413 / RESOURCE_EXHAUSTED. */
  maxRequestBytes: number;
  /** Bound on request bytes being decoded or produced at once; past it requests are refused (429/503, RESOURCE_EXHAUSTED). */
  maxInflightBytes: number;
  /**
   * Worker threads decoding remote-write requests (0: on the JS thread). Default: one core left to
   * the JS thread, at most 4 (1 on 2 cores: there 1 decoded 0.94-1.21M samples/s at 1.33 CPU-µs
   * a sample, 2 decoded 1.08M at 1.54).
   */
  remoteWriteDecodeThreads: number;
}

const MiB = 1024 * 1024;

export function defaultConfig(): WharfConfig {
  return {
    nodeId: 0,
    dataDir: './data',
    host: '0.0.0.0',
    advertisedHost: '127.0.0.1',
    kafkaPort: 9092,
    httpPort: 8080,
    numPartitions: 1,
    autoCreateTopics: true,
    socketRequestMaxBytes: 100 * MiB,
    messageMaxBytes: 1048588,
    groupInitialRebalanceDelayMs: 3000,
    groupMinSessionTimeoutMs: 6000,
    groupMaxSessionTimeoutMs: 1_800_000,
    walKind: 'file',
    walCapacityBytes: 512 * MiB,
    walObjectIntervalMs: 250,
    walObjectMaxBytes: 8 * MiB,
    logCacheSizeBytes: 192 * MiB,
    blockCacheSizeBytes: 64 * MiB,
    readAheadMaxBytes: 32 * MiB,
    catchUpMaxConcurrentGets: 8,
    catchUpMaxInflightBytes: 64 * MiB,
    catchUpTailTargetMs: 5,
    uploadIntervalMs: 2000,
    uploadSizeBytes: 64 * MiB,
    streamSplitSizeBytes: 16 * MiB,
    compactionIntervalMs: 30_000,
    compactionTargetObjectBytes: 64 * MiB,
    compactionMaxBytesPerSecond: 32 * MiB,
    objectGcDelayMs: 600_000,
    objectGcIntervalMs: 60_000,
    logRetentionCheckIntervalMs: 300_000,
    objectStore: 'local',
    s3: {
      endpoint: undefined,
      region: 'us-east-1',
      bucket: 'wharf',
      accessKeyId: undefined,
      secretAccessKey: undefined,
      forcePathStyle: false,
    },
    connectionMaxInflightBytes: 64 * MiB,
    logLevel: 'info',
    ingest: {
      otlpEnabled: true,
      otlpGrpcPort: 4317,
      otlpHttpPort: 4318,
      spansTopic: 'otlp_spans',
      metricsTopic: 'otlp_metrics',
      logsTopic: 'otlp_logs',
      prometheusTopic: 'prometheus_samples',
      otlpEncoding: 'otlp_proto',
      topicPartitions: 8,
      maxRequestBytes: 20 * MiB,
      maxInflightBytes: 128 * MiB,
      remoteWriteDecodeThreads: Math.max(1, Math.min(4, os.availableParallelism() - 1)),
    },
    table: {
      enabled: true,
      ingestTables: true,
      namespace: 'wharf',
      bufferMaxBytes: 48 * MiB,
      targetFileBytes: 128 * MiB,
      workerThreads: Math.max(1, Math.min(4, os.availableParallelism() - 1)),
      workerNice: 10,
      rowGroupRows: 128 * 1024,
      fetchMaxBytes: 4 * MiB,
      compactionIntervalMs: 60_000,
      compactionMinFiles: 8,
      maintenanceIntervalMs: 300_000,
      orphanMinAgeMs: 3_600_000,
    },
  };
}

type Setter = (config: WharfConfig, raw: string) => void;

const int = (name: string, set: (c: WharfConfig, v: number) => void): Setter => (c, raw) => {
  const value = Number(raw);
  if (!Number.isSafeInteger(value)) throw new Error(`config ${name}: not an integer: ${raw}`);
  set(c, value);
};
const bool = (name: string, set: (c: WharfConfig, v: boolean) => void): Setter => (c, raw) => {
  const v = String(raw).toLowerCase();
  if (v !== 'true' && v !== 'false') throw new Error(`config ${name}: not true/false: ${raw}`);
  set(c, v === 'true');
};
const str = (set: (c: WharfConfig, v: string) => void): Setter => (c, raw) => set(c, String(raw));

/** Every setting by its file name; the environment variable is WHARF_<NAME_UPPERCASED>. */
const SETTINGS: Record<string, Setter> = {
  'node.id': int('node.id', (c, v) => { c.nodeId = v; }),
  'data.dir': str((c, v) => { c.dataDir = v; }),
  'host': str((c, v) => { c.host = v; }),
  'advertised.host': str((c, v) => { c.advertisedHost = v; }),
  'kafka.port': int('kafka.port', (c, v) => { c.kafkaPort = v; }),
  'http.port': int('http.port', (c, v) => { c.httpPort = v; }),
  'num.partitions': int('num.partitions', (c, v) => { c.numPartitions = v; }),
  'auto.create.topics.enable': bool('auto.create.topics.enable', (c, v) => { c.autoCreateTopics = v; }),
  'auto.create.topics': bool('auto.create.topics', (c, v) => { c.autoCreateTopics = v; }),
  'socket.request.max.bytes': int('socket.request.max.bytes', (c, v) => { c.socketRequestMaxBytes = v; }),
  'message.max.bytes': int('message.max.bytes', (c, v) => { c.messageMaxBytes = v; }),
  'group.initial.rebalance.delay.ms': int('group.initial.rebalance.delay.ms', (c, v) => { c.groupInitialRebalanceDelayMs = v; }),
  'group.min.session.timeout.ms': int('group.min.session.timeout.ms', (c, v) => { c.groupMinSessionTimeoutMs = v; }),
  'group.max.session.timeout.ms': int('group.max.session.timeout.ms', (c, v) => { c.groupMaxSessionTimeoutMs = v; }),
  'wal.kind': str((c, v) => {
    if (v !== 'file' && v !== 'object') throw new Error(`config wal.kind: file or object, not ${v}`);
    c.walKind = v;
  }),
  'wal.capacity.bytes': int('wal.capacity.bytes', (c, v) => { c.walCapacityBytes = v; }),
  'wal.object.interval.ms': int('wal.object.interval.ms', (c, v) => { c.walObjectIntervalMs = v; }),
  'wal.object.max.bytes': int('wal.object.max.bytes', (c, v) => { c.walObjectMaxBytes = v; }),
  'log.cache.size.bytes': int('log.cache.size.bytes', (c, v) => { c.logCacheSizeBytes = v; }),
  'block.cache.size.bytes': int('block.cache.size.bytes', (c, v) => { c.blockCacheSizeBytes = v; }),
  'read.ahead.max.bytes': int('read.ahead.max.bytes', (c, v) => { c.readAheadMaxBytes = v; }),
  'catchup.max.concurrent.gets': int('catchup.max.concurrent.gets', (c, v) => { c.catchUpMaxConcurrentGets = v; }),
  'catchup.max.inflight.bytes': int('catchup.max.inflight.bytes', (c, v) => { c.catchUpMaxInflightBytes = v; }),
  'catchup.tail.target.ms': int('catchup.tail.target.ms', (c, v) => { c.catchUpTailTargetMs = v; }),
  'upload.interval.ms': int('upload.interval.ms', (c, v) => { c.uploadIntervalMs = v; }),
  'upload.size.bytes': int('upload.size.bytes', (c, v) => { c.uploadSizeBytes = v; }),
  'stream.split.size.bytes': int('stream.split.size.bytes', (c, v) => { c.streamSplitSizeBytes = v; }),
  'compaction.interval.ms': int('compaction.interval.ms', (c, v) => { c.compactionIntervalMs = v; }),
  'compaction.target.object.bytes': int('compaction.target.object.bytes', (c, v) => { c.compactionTargetObjectBytes = v; }),
  'compaction.max.bytes.per.second': int('compaction.max.bytes.per.second', (c, v) => { c.compactionMaxBytesPerSecond = v; }),
  'object.gc.delay.ms': int('object.gc.delay.ms', (c, v) => { c.objectGcDelayMs = v; }),
  'object.gc.interval.ms': int('object.gc.interval.ms', (c, v) => { c.objectGcIntervalMs = v; }),
  'log.retention.check.interval.ms': int('log.retention.check.interval.ms', (c, v) => { c.logRetentionCheckIntervalMs = v; }),
  'object.store': str((c, v) => {
    if (v !== 'local' && v !== 's3') throw new Error(`config object.store: local or s3, not ${v}`);
    c.objectStore = v;
  }),
  's3.endpoint': str((c, v) => { c.s3.endpoint = v; }),
  's3.region': str((c, v) => { c.s3.region = v; }),
  's3.bucket': str((c, v) => { c.s3.bucket = v; }),
  's3.access.key.id': str((c, v) => { c.s3.accessKeyId = v; }),
  's3.secret.access.key': str((c, v) => { c.s3.secretAccessKey = v; }),
  's3.force.path.style': bool('s3.force.path.style', (c, v) => { c.s3.forcePathStyle = v; }),
  'connection.max.inflight.bytes': int('connection.max.inflight.bytes', (c, v) => { c.connectionMaxInflightBytes = v; }),
  'log.level': str((c, v) => { c.logLevel = v; }),
  'otlp.enable': bool('otlp.enable', (c, v) => { c.ingest.otlpEnabled = v; }),
  'otlp.grpc.port': int('otlp.grpc.port', (c, v) => { c.ingest.otlpGrpcPort = v; }),
  'otlp.http.port': int('otlp.http.port', (c, v) => { c.ingest.otlpHttpPort = v; }),
  'otlp.spans.topic': str((c, v) => { c.ingest.spansTopic = v; }),
  'otlp.metrics.topic': str((c, v) => { c.ingest.metricsTopic = v; }),
  'otlp.logs.topic': str((c, v) => { c.ingest.logsTopic = v; }),
  'prometheus.topic': str((c, v) => { c.ingest.prometheusTopic = v; }),
  'prometheus.decode.threads': int('prometheus.decode.threads', (c, v) => {
    if (v < 0) throw new Error(`config prometheus.decode.threads: must be 0 or more, got ${v}`);
    c.ingest.remoteWriteDecodeThreads = v;
  }),
  'otlp.encoding': str((c, v) => {
    if (v !== 'otlp_proto' && v !== 'otlp_json') throw new Error(`config otlp.encoding: otlp_proto or otlp_json, not ${v}`);
    c.ingest.otlpEncoding = v;
  }),
  'ingest.topic.partitions': int('ingest.topic.partitions', (c, v) => { c.ingest.topicPartitions = v; }),
  'ingest.max.request.bytes': int('ingest.max.request.bytes', (c, v) => { c.ingest.maxRequestBytes = v; }),
  'ingest.max.inflight.bytes': int('ingest.max.inflight.bytes', (c, v) => { c.ingest.maxInflightBytes = v; }),
  'table.enable': bool('table.enable', (c, v) => { c.table.enabled = v; }),
  'table.ingest.enable': bool('table.ingest.enable', (c, v) => { c.table.ingestTables = v; }),
  'table.namespace': str((c, v) => { c.table.namespace = v; }),
  'table.buffer.max.bytes': int('table.buffer.max.bytes', (c, v) => { c.table.bufferMaxBytes = v; }),
  'table.target.file.bytes': int('table.target.file.bytes', (c, v) => { c.table.targetFileBytes = v; }),
  'table.worker.nice': int('table.worker.nice', (c, v) => {
    if (v < 0 || v > 19) throw new Error(`config table.worker.nice: 0 to 19, not ${v}`);
    c.table.workerNice = v;
  }),
  'table.worker.threads': int('table.worker.threads', (c, v) => {
    if (v < 1 || v > 16) throw new Error(`config table.worker.threads: 1 to 16, not ${v}`);
    c.table.workerThreads = v;
  }),
  'table.row.group.rows': int('table.row.group.rows', (c, v) => { c.table.rowGroupRows = v; }),
  'table.fetch.max.bytes': int('table.fetch.max.bytes', (c, v) => { c.table.fetchMaxBytes = v; }),
  'table.compaction.interval.ms': int('table.compaction.interval.ms', (c, v) => { c.table.compactionIntervalMs = v; }),
  'table.compaction.min.files': int('table.compaction.min.files', (c, v) => { c.table.compactionMinFiles = v; }),
  'table.maintenance.interval.ms': int('table.maintenance.interval.ms', (c, v) => { c.table.maintenanceIntervalMs = v; }),
  'table.orphan.min.age.ms': int('table.orphan.min.age.ms', (c, v) => { c.table.orphanMinAgeMs = v; }),
};

export function envName(setting: string): string {
  return 'WHARF_' + setting.toUpperCase().replaceAll('.', '_');
}

function flatten(prefix: string, value: unknown, out: Map<string, string>): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(prefix ? `${prefix}.${k}` : k, v, out);
  } else {
    out.set(prefix, String(value));
  }
}

/** Builds the configuration: defaults < file < environment < explicit overrides. */
export function loadConfig(options: {
  file?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: Record<string, string>;
} = {}): WharfConfig {
  const config = defaultConfig();
  const env = options.env ?? process.env;
  const file = options.file ?? env.WHARF_CONFIG ?? (existsSync('wharf.yaml') ? 'wharf.yaml' : undefined);
  const apply = (name: string, raw: string, source: string): void => {
    const setter = SETTINGS[name];
    if (!setter) throw new Error(`${source}: unknown setting ${name}`);
    setter(config, raw);
  };
  if (file) {
    const parsed: unknown = parseYaml(readFileSync(file, 'utf8'));
    const flat = new Map<string, string>();
    flatten('', parsed ?? {}, flat);
    for (const [name, raw] of flat) apply(name, raw, file);
  }
  for (const name of Object.keys(SETTINGS)) {
    const raw = env[envName(name)];
    if (raw !== undefined && raw !== '') apply(name, raw, envName(name));
  }
  for (const [name, raw] of Object.entries(options.overrides ?? {})) apply(name, raw, 'flag');
  config.dataDir = path.resolve(config.dataDir);
  return config;
}
