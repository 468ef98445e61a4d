// Broker-level Prometheus metrics. Every module registers its metrics in prom-client's default
// registry once, at module load; `/metrics` serves that registry.
import { Counter, Histogram, Gauge, register, collectDefaultMetrics } from 'prom-client';

export { register };

let defaultsCollected = false;
export function collectProcessMetrics(): void {
  if (defaultsCollected) return;
  defaultsCollected = true;
  collectDefaultMetrics({ prefix: 'wharf_' });
}

/** Fine below 20 ms, where produce latency goals lie (a p99 of 5 ms is told from one of 4 or 7.5). */
const LATENCY_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export const requestsTotal = new Counter({
  name: 'wharf_kafka_requests_total',
  help: 'Kafka requests handled, by API and error.',
  labelNames: ['api', 'result'] as const,
});

export const requestDurationSeconds = new Histogram({
  name: 'wharf_kafka_request_duration_seconds',
  help: 'Time from a Kafka request frame arriving to its response being queued, by API.',
  labelNames: ['api'] as const,
  buckets: LATENCY_BUCKETS_SECONDS,
});

export const produceBytesTotal = new Counter({
  name: 'wharf_produce_bytes_total',
  help: 'Record batch bytes accepted by Produce.',
});

export const fetchBytesTotal = new Counter({
  name: 'wharf_fetch_bytes_total',
  help: 'Record batch bytes returned by Fetch.',
});

export const connectionsActive = new Gauge({
  name: 'wharf_kafka_connections',
  help: 'Open Kafka client connections.',
});

export const connectionsRejectedTotal = new Counter({
  name: 'wharf_kafka_connection_errors_total',
  help: 'Connections closed for a protocol error, by reason.',
  labelNames: ['reason'] as const,
});
