// /metrics: an operator sees produce and fetch traffic, per-API request latency, WAL fsync
// latency, uploads and object-store requests in Prometheus text format on the HTTP API port.

import { describe, expect, it } from 'vitest';
import { printBrokerLogsOnFailure, startBroker } from '../helpers/broker.ts';
import { kafkajsClient, waitFor } from '../helpers/kafka.ts';

printBrokerLogsOnFailure();

/** The value of the first sample whose line starts with `prefix` (name plus labels). */
function sample(text: string, prefix: string): number {
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  if (line === undefined) throw new Error(`no sample ${prefix} in /metrics`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('/metrics', () => {
  it('counts produce, fetch, WAL fsyncs, uploads and object-store requests', async () => {
    const broker = await startBroker({ name: 'metrics' });
    try {
      const kafka = kafkajsClient(broker.bootstrap);
      const producer = kafka.producer();
      await producer.connect();
      const value = 'x'.repeat(1000);
      await producer.send({ topic: 'observed', acks: -1, messages: Array.from({ length: 100 }, () => ({ value })) });
      await producer.disconnect();
      const consumer = kafka.consumer({ groupId: 'observer' });
      await consumer.connect();
      await consumer.subscribe({ topic: 'observed', fromBeginning: true });
      let consumed = 0;
      await consumer.run({ eachMessage: async () => { consumed++; } });
      await waitFor('100 messages consumed', () => consumed === 100);
      await consumer.disconnect();
      await broker.flush();

      const text = await broker.metrics();
      expect(text).toMatch(/^# TYPE wharf_kafka_request_duration_seconds histogram$/m);
      expect(sample(text, 'wharf_produce_bytes_total')).toBeGreaterThan(100 * 1000);
      expect(sample(text, 'wharf_fetch_bytes_total')).toBeGreaterThan(100 * 1000);
      expect(sample(text, 'wharf_kafka_requests_total{api="Produce",result="ok"}')).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'wharf_kafka_requests_total{api="Fetch",result="ok"}')).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'wharf_kafka_request_duration_seconds_count{api="Produce"}')).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'wharf_wal_fsync_duration_seconds_count')).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'wharf_upload_objects_total')).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'wharf_object_store_requests_total{op="put",result="ok"}')).toBeGreaterThanOrEqual(1);
    } finally {
      await broker.stop();
    }
  });
});
