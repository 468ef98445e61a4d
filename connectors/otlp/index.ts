// The OTLP ingest front-end: OTLP/gRPC on ingest.otlpGrpcPort and OTLP/HTTP on
// ingest.otlpHttpPort, both on config.host, writing spans, metrics and logs into their topics
// (schemas/otlp_proto.json, schemas/otlp_json.json) through the in-process producer.

import type { ConnectorContext, RunningConnector } from '../context.ts';
import { log } from '../../src/metrics/log.ts';
import type { TopicProducer } from '../../src/broker/in-process-producer.ts';
import { startOtlpGrpc, type OtlpGrpcServer } from './grpc.ts';
import { startOtlpHttp, type OtlpHttpServer } from './http.ts';
import { OtlpIngest } from './ingest.ts';
import { ingestTopicConfigs } from '../table/topic-configs.ts';

export interface RunningOtlp extends RunningConnector {
  /** Bound ports (differ from the configured ones when those are 0); undefined when disabled. */
  readonly grpcPort: number | undefined;
  readonly httpPort: number | undefined;
}

/** Starts the OTLP receivers; does nothing when ingest.otlpEnabled is false. */
export async function startOtlp(ctx: Pick<ConnectorContext, 'config'> & { producer: TopicProducer }): Promise<RunningOtlp> {
  const { config } = ctx;
  const ingestConfig = config.ingest;
  if (!ingestConfig.otlpEnabled) {
    return { name: 'otlp', grpcPort: undefined, httpPort: undefined, stop: async () => {} };
  }
  const topicConfigs = {
    traces: ingestTopicConfigs(config, 'otlp_spans'),
    metrics: ingestTopicConfigs(config, 'otlp_metrics'),
    logs: ingestTopicConfigs(config, 'otlp_logs'),
  };
  const ingest = new OtlpIngest({ ingest: ingestConfig, messageMaxBytes: config.messageMaxBytes, topicConfigs }, ctx.producer);
  const grpcServer: OtlpGrpcServer = await startOtlpGrpc(ingest, config.host, ingestConfig.otlpGrpcPort, ingestConfig.maxRequestBytes);
  let httpServer: OtlpHttpServer;
  try {
    httpServer = await startOtlpHttp(ingest, config.host, ingestConfig.otlpHttpPort, ingestConfig.maxRequestBytes);
  } catch (err) {
    await grpcServer.close();
    throw err;
  }
  log.info({ grpcPort: grpcServer.port, httpPort: httpServer.port, encoding: ingestConfig.otlpEncoding }, 'otlp receivers started');
  let stopped: Promise<void> | undefined;
  return {
    name: 'otlp',
    grpcPort: grpcServer.port,
    httpPort: httpServer.port,
    stop: () => {
      stopped ??= Promise.all([grpcServer.close(), httpServer.close()]).then(() => undefined);
      return stopped;
    },
  };
}

export { OtlpIngest, InflightBudget, type ExportOutcome, type Transport } from './ingest.ts';
export { splitRequest, type SplitRecord, type SplitResult } from './split.ts';
export { jsonToProto, protoToJson, JsonMappingError, type OtlpJson, type OtlpJsonValue } from './json.ts';
export { WireError } from './wire.ts';
export { SIGNALS, SIGNAL_NAMES, type Signal } from './schema.ts';
