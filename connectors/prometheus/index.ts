// The Prometheus remote-write receiver: `POST /api/v1/write` on the HTTP API port, remote write
// 1.0 (prometheus.WriteRequest) and 2.0 (io.prometheus.write.v2.Request), written one record per
// series into the `prometheus_samples` topic (encoding `prometheus_remote_write_v1`, documented
// in schemas/prometheus_samples.json). receiver.ts has the request path and its answers.

import type { ConnectorContext, RunningConnector } from '../context.ts';
import { log } from '../../src/metrics/log.ts';
import { RemoteWriteReceiver } from './receiver.ts';
import { ingestTopicConfigs } from '../table/topic-configs.ts';

export const REMOTE_WRITE_ROUTE = 'POST /api/v1/write';

export async function startRemoteWrite(ctx: Pick<ConnectorContext, 'config' | 'producer' | 'httpApi'>): Promise<RunningConnector> {
  const { ingest } = ctx.config;
  const receiver = new RemoteWriteReceiver({
    producer: ctx.producer,
    topic: ingest.prometheusTopic,
    partitions: ingest.topicPartitions,
    topicConfigs: ingestTopicConfigs(ctx.config, 'prometheus_samples'),
    maxRequestBytes: ingest.maxRequestBytes,
    maxInflightBytes: ingest.maxInflightBytes,
    decodeThreads: ingest.remoteWriteDecodeThreads,
  });
  ctx.httpApi.add(REMOTE_WRITE_ROUTE, receiver.handle);
  log.info({ route: REMOTE_WRITE_ROUTE, topic: ingest.prometheusTopic }, 'prometheus remote write receiver started');
  return {
    name: 'prometheus-remote-write',
    stop: () => receiver.stop(),
  };
}
