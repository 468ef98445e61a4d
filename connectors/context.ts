// What every connector gets from the process that runs it: the configuration, the in-process
// producer (the only way a connector writes to topics) and the HTTP API port, on which
// connectors may mount routes (remote write, the Iceberg REST catalog); the reader and the
// storage handles serve the table writer.

import type { WharfConfig } from '../src/config/config.ts';
import type { BatchProducer } from '../src/broker/in-process-producer.ts';
import type { HttpApi } from '../src/broker/http-api.ts';
import type { TopicReader } from '../src/broker/in-process-consumer.ts';
import type { ObjectStore } from '../src/storage/objectstore/index.ts';
import type { ObjectUris } from '../src/storage/objectstore/uri.ts';
import type { MetadataStore } from '../src/metadata/store.ts';

export interface ConnectorContext {
  config: WharfConfig;
  producer: BatchProducer;
  /** Reads topics (the table writer); like a Kafka consumer without the network hop. */
  reader: TopicReader;
  httpApi: HttpApi;
  /** The broker's object store and metadata store; a connector keeps to its own key prefix. */
  objectStore: ObjectStore;
  objectUris: ObjectUris;
  metadataStore: MetadataStore;
}

export interface RunningConnector {
  readonly name: string;
  /** Stops accepting requests, waits for those in flight, and releases its ports. */
  stop(): Promise<void>;
}
