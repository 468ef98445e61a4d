// What every connector gets from the process that runs it: the configuration, the in-process
// producer (the only way a connector writes to topics) and the HTTP API port, on which
// connectors may mount routes (remote write, the Iceberg REST catalog).

import type { WharfConfig } from '../src/config/config.ts';
import type { TopicProducer } from '../src/broker/in-process-producer.ts';
import type { HttpApi } from '../src/broker/http-api.ts';

export interface ConnectorContext {
  config: WharfConfig;
  producer: TopicProducer;
  httpApi: HttpApi;
}

export interface RunningConnector {
  readonly name: string;
  /** Stops accepting requests, waits for those in flight, and releases its ports. */
  stop(): Promise<void>;
}
