// A single-node Wharf broker: wires the metadata store, object store, WAL, stream storage,
// topics and group coordinator together, and serves Kafka and the HTTP API.

import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { WharfConfig } from '../config/config.ts';
import { EmbeddedMetadataStore } from '../metadata/embedded.ts';
import { ClusterModel } from '../metadata/cluster-model.ts';
import type { MetadataStore } from '../metadata/store.ts';
import { createObjectStore, type ObjectStore, type ObjectStoreConfig } from '../storage/objectstore/index.ts';
import { FileWal } from '../storage/wal/file-wal.ts';
import { ObjectWal } from '../storage/wal/object-wal.ts';
import type { WriteAheadLog } from '../storage/wal/wal.ts';
import { JsonWalOwnerStore } from '../storage/wal/wal-owners.ts';
import { DEFAULT_PREPARE_TTL_MS, StreamStorageImpl } from '../storage/stream-storage.ts';
import { retentionPolicyOf, StorageMaintenance, type RetentionTarget } from '../storage/maintenance.ts';
import type { Stream } from '../storage/stream.ts';
import type { ProducerStateStore, ProducerStateSnapshot } from '../log/partition-log.ts';
import { GroupCoordinator } from '../groups/coordinator.ts';
import { log } from '../metrics/log.ts';
import { collectProcessMetrics } from '../metrics/registry.ts';
import { Connection } from './connection.ts';
import type { BrokerParts } from './context.ts';
import { HttpApi } from './http-api.ts';
import { Router } from './router.ts';
import { TOPIC_CONFIG_DEFAULTS, TopicRegistry } from './topics.ts';
import { InProcessProducer } from './in-process-producer.ts';
import { InProcessReader } from './in-process-consumer.ts';
import { objectUris, type ObjectUris } from '../storage/objectstore/uri.ts';

const GROUP_OFFSETS_STREAM_KEY = 'internal/group-offsets-stream';
const CLUSTER_ID_KEY = 'internal/cluster-id';

/** The object store the configuration names: `<data.dir>/objects`, or the S3 bucket. */
export function objectStoreConfig(config: WharfConfig): ObjectStoreConfig {
  return config.objectStore === 'local'
    ? { kind: 'local', rootDir: path.join(config.dataDir, 'objects') }
    : { kind: 's3', ...config.s3 };
}

export class Broker {
  readonly config: WharfConfig;
  /** The HTTP API port; connectors mount their routes on it. */
  readonly http = new HttpApi();
  /** Writes into topics from inside the process (connectors); set once start() resolves. */
  producer: InProcessProducer | undefined;
  /** Reads topics from inside the process (the table writer); set once start() resolves. */
  reader: InProcessReader | undefined;
  private readonly stopping = new AbortController();
  private readonly connections = new Set<Connection>();
  private kafkaServer: net.Server | undefined;
  private metadataStore: MetadataStore | undefined;
  private objectStore: ObjectStore | undefined;
  private storage: StreamStorageImpl | undefined;
  private maintenance: StorageMaintenance | undefined;
  private topics: TopicRegistry | undefined;
  private groups: GroupCoordinator | undefined;
  private stopped: Promise<void> | undefined;
  private readonly wrapObjectStore: ((store: ObjectStore) => ObjectStore) | undefined;

  /**
   * `options.wrapObjectStore` is a test-only injection point (fault decorators): it wraps the base
   * object store, under the metrics and retry layers.
   */
  constructor(config: WharfConfig, options: { wrapObjectStore?: (store: ObjectStore) => ObjectStore } = {}) {
    this.config = config;
    this.wrapObjectStore = options.wrapObjectStore;
  }

  async start(): Promise<void> {
    const { config } = this;
    collectProcessMetrics();
    // The HTTP API comes up first so that /healthz answers and /readyz says 503 during recovery.
    await this.http.listen(config.host, config.httpPort);
    const metadataStore = await EmbeddedMetadataStore.open(path.join(config.dataDir, 'metadata'));
    this.metadataStore = metadataStore;
    const model = new ClusterModel(metadataStore);
    const clusterId = await this.clusterId(model);
    this.objectStore = await createObjectStore(objectStoreConfig(config), { wrapBase: this.wrapObjectStore });
    const wal = await this.openWal(model, this.objectStore);
    const storage = new StreamStorageImpl({
      nodeId: config.nodeId,
      wal,
      metadata: model,
      objectStore: this.objectStore,
      logCacheSizeBytes: config.logCacheSizeBytes,
      uploadIntervalMs: config.uploadIntervalMs,
      uploadSizeBytes: config.uploadSizeBytes,
      blockCacheSizeBytes: config.blockCacheSizeBytes,
      readAheadMaxBytes: config.readAheadMaxBytes,
      catchUpMaxConcurrentGets: config.catchUpMaxConcurrentGets,
      catchUpMaxInflightBytes: config.catchUpMaxInflightBytes,
      tailGuard: { targetMs: config.catchUpTailTargetMs },
      streamSplitSizeBytes: config.streamSplitSizeBytes,
    });
    this.storage = storage;
    await storage.start();
    const producerStates: ProducerStateStore = {
      load: (topic, partition) => model.loadProducerSnapshot<ProducerStateSnapshot>(topic, partition),
      save: (topic, partition, snapshot) => model.saveProducerSnapshot(topic, partition, snapshot),
    };
    this.topics = new TopicRegistry(model, storage, producerStates, config.messageMaxBytes);
    await this.topics.openAll();
    this.groups = new GroupCoordinator({
      offsetsStream: await this.internalStream(model, storage, GROUP_OFFSETS_STREAM_KEY),
      initialRebalanceDelayMs: config.groupInitialRebalanceDelayMs,
      minSessionTimeoutMs: config.groupMinSessionTimeoutMs,
      maxSessionTimeoutMs: config.groupMaxSessionTimeoutMs,
    });
    await this.groups.start();
    this.startMaintenance(model, this.objectStore, this.topics);
    const parts: BrokerParts = {
      config, model, topics: this.topics, groups: this.groups, clusterId, stopping: this.stopping.signal,
    };
    const router = new Router(parts);
    const limits = { socketRequestMaxBytes: config.socketRequestMaxBytes, maxInflightBytes: config.connectionMaxInflightBytes };
    this.kafkaServer = net.createServer((socket) => {
      const connection = new Connection(socket, router, limits);
      this.connections.add(connection);
      socket.on('close', () => this.connections.delete(connection));
    });
    await new Promise<void>((resolve, reject) => {
      this.kafkaServer!.once('error', reject);
      this.kafkaServer!.listen(config.kafkaPort, config.host, () => resolve());
    });
    this.http.add('POST /admin/flush', async (_req, res) => {
      await storage.flush();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('flushed\n');
    });
    this.producer = new InProcessProducer(this.topics, config.numPartitions);
    this.reader = new InProcessReader(this.topics);
    log.info({ kafkaPort: config.kafkaPort, httpPort: config.httpPort, dataDir: config.dataDir, clusterId }, 'broker started');
  }

  /**
   * What connectors that keep their own files (the table writer) share with the broker: the
   * object store (under their own key prefix), key <-> URI mapping, and the metadata store (under
   * their own key prefix). Only valid after start().
   */
  storageForConnectors(): { objectStore: ObjectStore; objectUris: ObjectUris; metadataStore: MetadataStore } {
    if (!this.objectStore || !this.metadataStore) throw new Error('broker not started');
    return { objectStore: this.objectStore, objectUris: objectUris(objectStoreConfig(this.config)), metadataStore: this.metadataStore };
  }

  /** /readyz answers 200 from now on (called once everything the process serves is up). */
  markReady(): void {
    this.http.ready = true;
    log.info({ kafkaPort: this.config.kafkaPort, httpPort: this.config.httpPort }, 'wharf ready');
  }

  /** Stops serving, flushes unuploaded data to objects and closes everything. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  private async doStop(): Promise<void> {
    this.http.ready = false;
    this.stopping.abort();
    this.kafkaServer?.close();
    for (const connection of this.connections) connection.socket.destroy();
    await this.groups?.stop();
    await this.maintenance?.stop();
    await this.topics?.closeAll();
    await this.storage?.shutdown();
    await this.objectStore?.close();
    await this.metadataStore?.close();
    await this.http.close();
    log.info('wharf stopped');
  }

  /**
   * The WAL: a file under <data>/wal, or (wal.kind=object) the object store itself, fenced by an
   * epoch record in metadata. In object mode nothing but the embedded metadata store is kept on
   * local disk (with etcd as the metadata store, nothing at all).
   */
  private async openWal(model: ClusterModel, objectStore: ObjectStore): Promise<WriteAheadLog> {
    const { config } = this;
    const walPath = path.join(config.dataDir, 'wal', 'wal.0');
    await this.refuseUndrainedWal(walPath, objectStore);
    if (config.walKind === 'object') {
      return ObjectWal.open({
        objectStore,
        owners: new JsonWalOwnerStore(model),
        nodeId: config.nodeId,
        intervalMs: config.walObjectIntervalMs,
        maxObjectBytes: config.walObjectMaxBytes,
        capacityBytes: config.walCapacityBytes,
      });
    }
    await mkdir(path.dirname(walPath), { recursive: true });
    return FileWal.open({ path: walPath, capacityBytes: config.walCapacityBytes, nodeId: config.nodeId });
  }

  /**
   * A switch of wal.kind must not strand acknowledged records in the other kind of WAL: start
   * fails while it holds any (start once more with the previous kind: recovery drains it).
   */
  private async refuseUndrainedWal(walPath: string, objectStore: ObjectStore): Promise<void> {
    const { config } = this;
    if (config.walKind === 'object') {
      if (!existsSync(walPath)) return;
      const fileWal = await FileWal.open({ path: walPath, nodeId: config.nodeId });
      let records = 0;
      try {
        for await (const _record of fileWal.recover()) records++;
      } finally {
        await fileWal.close();
      }
      if (records > 0) {
        throw new Error(`wal.kind=object, but the file WAL ${walPath} still holds ${records} records: ` +
          'start once with wal.kind=file to upload them');
      }
      log.info({ path: walPath }, 'wal.kind=object: the file WAL left from wal.kind=file is empty; it is no longer used');
      return;
    }
    const pending = await ObjectWal.pendingObjectCount(objectStore, config.nodeId);
    if (pending > 0) {
      throw new Error(`wal.kind=file, but the object store holds ${pending} object WAL objects of node ${config.nodeId}: ` +
        'start once with wal.kind=object to upload them');
    }
  }

  /** Retention, compaction and object garbage collection in the background (src/storage/maintenance.ts). */
  private startMaintenance(model: ClusterModel, objectStore: ObjectStore, topics: TopicRegistry): void {
    const { config } = this;
    // Retention trims the partitions led here, with their topics' current configs.
    const retentionTargets = async (): Promise<RetentionTarget[]> =>
      (await model.listTopics()).flatMap((info) => {
        const policy = retentionPolicyOf(info.configs, TOPIC_CONFIG_DEFAULTS);
        const open = topics.get(info.name);
        if (policy === undefined || open === undefined) return [];
        return info.partitions.flatMap((p) => {
          const partitionLog = open.partitions[p.partition];
          return partitionLog === undefined ? [] : [{ streamId: p.streamId, ...policy, trim: (offset: number) => partitionLog.trim(offset) }];
        });
      });
    this.maintenance = new StorageMaintenance({
      metadata: model,
      objectStore,
      prepareTtlMs: DEFAULT_PREPARE_TTL_MS,
      retentionTargets,
      retentionCheckIntervalMs: config.logRetentionCheckIntervalMs,
      gcIntervalMs: config.objectGcIntervalMs,
      gcDelayMs: config.objectGcDelayMs,
      compactionIntervalMs: config.compactionIntervalMs,
      compactionTargetObjectBytes: config.compactionTargetObjectBytes,
      compactionMaxBytesPerSecond: config.compactionMaxBytesPerSecond,
      streamSplitSizeBytes: config.streamSplitSizeBytes,
    });
    this.maintenance.start();
  }

  private async clusterId(model: ClusterModel): Promise<string> {
    const existing = await model.getJson<string>(CLUSTER_ID_KEY);
    if (existing) return existing.value;
    const fresh = randomBytes(16).toString('base64url');
    await model.putJson(CLUSTER_ID_KEY, fresh, { expectedModRevision: 0 });
    return (await model.getJson<string>(CLUSTER_ID_KEY))!.value;
  }

  /** Opens (creating it the first time) an internal stream whose id is kept under `key`. */
  private async internalStream(model: ClusterModel, storage: StreamStorageImpl, key: string): Promise<Stream> {
    const existing = await model.getJson<number>(key);
    if (existing) return storage.openStream(existing.value);
    const stream = await storage.createStream();
    if (await model.putJson(key, stream.streamId, { expectedModRevision: 0 })) return stream;
    await stream.close();
    return storage.openStream((await model.getJson<number>(key))!.value);
  }
}
