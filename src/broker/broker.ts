// A single-node Wharf broker: wires the metadata store, object store, WAL, stream storage,
// topics and group coordinator together, and serves Kafka and the HTTP API.

import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { WharfConfig } from '../config/config.ts';
import { EmbeddedMetadataStore } from '../metadata/embedded.ts';
import { ClusterModel } from '../metadata/cluster-model.ts';
import type { MetadataStore } from '../metadata/store.ts';
import { createObjectStore, type ObjectStore } from '../storage/objectstore/index.ts';
import { FileWal } from '../storage/wal/file-wal.ts';
import { StreamStorageImpl } from '../storage/stream-storage.ts';
import type { Stream } from '../storage/stream.ts';
import type { ProducerStateStore, ProducerStateSnapshot } from '../log/partition-log.ts';
import { GroupCoordinator } from '../groups/coordinator.ts';
import { log } from '../metrics/log.ts';
import { collectProcessMetrics } from '../metrics/registry.ts';
import { Connection } from './connection.ts';
import type { BrokerParts } from './context.ts';
import { HttpApi } from './http-api.ts';
import { Router } from './router.ts';
import { TopicRegistry } from './topics.ts';
import { InProcessProducer } from './in-process-producer.ts';

const GROUP_OFFSETS_STREAM_KEY = 'internal/group-offsets-stream';
const CLUSTER_ID_KEY = 'internal/cluster-id';

export class Broker {
  readonly config: WharfConfig;
  /** The HTTP API port; connectors mount their routes on it. */
  readonly http = new HttpApi();
  /** Writes into topics from inside the process (connectors); set once start() resolves. */
  producer: InProcessProducer | undefined;
  private readonly stopping = new AbortController();
  private readonly connections = new Set<Connection>();
  private kafkaServer: net.Server | undefined;
  private metadataStore: MetadataStore | undefined;
  private objectStore: ObjectStore | undefined;
  private storage: StreamStorageImpl | undefined;
  private topics: TopicRegistry | undefined;
  private groups: GroupCoordinator | undefined;
  private stopped: Promise<void> | undefined;

  constructor(config: WharfConfig) {
    this.config = config;
  }

  async start(): Promise<void> {
    const { config } = this;
    collectProcessMetrics();
    // The HTTP API comes up first so that /healthz answers and /readyz says 503 during recovery.
    await this.http.listen(config.host, config.httpPort);
    const walDir = path.join(config.dataDir, 'wal');
    await mkdir(walDir, { recursive: true });
    const metadataStore = await EmbeddedMetadataStore.open(path.join(config.dataDir, 'metadata'));
    this.metadataStore = metadataStore;
    const model = new ClusterModel(metadataStore);
    const clusterId = await this.clusterId(model);
    this.objectStore = await createObjectStore(config.objectStore === 'local'
      ? { kind: 'local', rootDir: path.join(config.dataDir, 'objects') }
      : { kind: 's3', ...config.s3 });
    const wal = await FileWal.open({ path: path.join(walDir, 'wal.0'), capacityBytes: config.walCapacityBytes, nodeId: config.nodeId });
    const storage = new StreamStorageImpl({
      nodeId: config.nodeId,
      wal,
      metadata: model,
      objectStore: this.objectStore,
      logCacheSizeBytes: config.logCacheSizeBytes,
      uploadIntervalMs: config.uploadIntervalMs,
      uploadSizeBytes: config.uploadSizeBytes,
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
    log.info({ kafkaPort: config.kafkaPort, httpPort: config.httpPort, dataDir: config.dataDir, clusterId }, 'broker started');
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
    await this.topics?.closeAll();
    await this.storage?.shutdown();
    await this.objectStore?.close();
    await this.metadataStore?.close();
    await this.http.close();
    log.info('wharf stopped');
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
