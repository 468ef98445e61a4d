// Metrics of the remote-write receiver, registered once in prom-client's default registry
// (served on the HTTP API's /metrics).

import { Counter, Histogram } from 'prom-client';

export const receivedSamplesTotal = new Counter({
  name: 'wharf_remote_write_received_samples_total',
  help: 'Float samples written to the topic from accepted remote-write requests, by protocol version (1.0, 2.0).',
  labelNames: ['version'] as const,
});

export const receivedHistogramsTotal = new Counter({
  name: 'wharf_remote_write_received_histograms_total',
  help: 'Native histogram samples written to the topic from accepted remote-write requests, by protocol version.',
  labelNames: ['version'] as const,
});

export const receivedExemplarsTotal = new Counter({
  name: 'wharf_remote_write_received_exemplars_total',
  help: 'Exemplars written to the topic from accepted remote-write requests, by protocol version.',
  labelNames: ['version'] as const,
});

export const receivedBytesTotal = new Counter({
  name: 'wharf_remote_write_received_bytes_total',
  help: 'Request body bytes read (snappy-compressed, as on the wire), accepted or not, by protocol version.',
  labelNames: ['version'] as const,
});

export const rejectedRequestsTotal = new Counter({
  name: 'wharf_remote_write_rejected_requests_total',
  help: 'Remote-write requests answered with an error other than overload, by reason (4xx: the sender must not retry; unavailable: 503, retried).',
  labelNames: ['reason'] as const,
});

export const refusedRequestsTotal = new Counter({
  name: 'wharf_remote_write_refused_requests_total',
  help: 'Remote-write requests refused with 429 because the in-flight byte bound was reached.',
});

export const requestDurationSeconds = new Histogram({
  name: 'wharf_remote_write_request_duration_seconds',
  help: 'Time from a remote-write request arriving to its answer (after the produce is durable for 204s), by status code.',
  labelNames: ['code'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
});
