// Prometheus metrics of the OTLP receivers, registered once in prom-client's default registry
// (served by the HTTP API's /metrics).

import { Counter, Gauge, Histogram } from 'prom-client';

export const receivedItemsTotal = new Counter({
  name: 'wharf_otlp_received_items_total',
  help: 'Spans, metric data points and log records in decoded OTLP requests (accepted and rejected), by signal and transport.',
  labelNames: ['signal', 'transport'] as const,
});

export const receivedBytesTotal = new Counter({
  name: 'wharf_otlp_received_bytes_total',
  help: 'OTLP request body bytes, by signal and transport (HTTP: as received, before decompression; gRPC: the decompressed message).',
  labelNames: ['signal', 'transport'] as const,
});

export const rejectedItemsTotal = new Counter({
  name: 'wharf_otlp_rejected_items_total',
  help: 'Items rejected from otherwise valid requests (reported in partial_success, or 400 when all were), by signal and reason (invalid_id, too_large).',
  labelNames: ['signal', 'reason'] as const,
});

export const refusedRequestsTotal = new Counter({
  name: 'wharf_otlp_refused_requests_total',
  help: 'OTLP requests refused for overload (HTTP 429, gRPC RESOURCE_EXHAUSTED), by signal and transport.',
  labelNames: ['signal', 'transport'] as const,
});

export const requestsTotal = new Counter({
  name: 'wharf_otlp_requests_total',
  help: 'OTLP requests answered, by signal, transport and outcome (ok, partial, invalid, too_large, unsupported, overloaded, unavailable).',
  labelNames: ['signal', 'transport', 'outcome'] as const,
});

export const requestDurationSeconds = new Histogram({
  name: 'wharf_otlp_request_duration_seconds',
  help: 'Time from an OTLP request body being complete to its answer (including the durable produce), by signal and transport.',
  labelNames: ['signal', 'transport'] as const,
  buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
});

export const inflightBytes = new Gauge({
  name: 'wharf_otlp_inflight_bytes',
  help: 'Request bytes being received, decoded or produced by the OTLP receivers (bounded by ingest.max.inflight.bytes).',
});
