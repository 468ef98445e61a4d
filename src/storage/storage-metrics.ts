// Metrics of the WAL, the log cache and stream storage, in prom-client's default registry.
//
//   wharf_wal_fsync_duration_seconds      histogram: one durable write of the file WAL (O_DSYNC write)
//   wharf_wal_bytes_written_total         bytes written to the WAL ring (records, pads, headers)
//   wharf_stream_append_bytes_total       record batch bytes appended to streams
//   wharf_stream_append_waits_total       appends that waited for room in the log cache (backpressure)
//   wharf_stream_append_wait_bytes_total  record batch bytes of those appends
//   wharf_upload_objects_total            data objects uploaded and committed
//   wharf_upload_bytes_total              bytes of those objects
//   wharf_upload_duration_seconds         histogram: freeze → commit → WAL trim of one object
//   wharf_upload_failures_total           uploads that failed (retried later)
//   wharf_log_cache_bytes{state}          gauge: cached batch bytes, uploaded | unuploaded
//   wharf_log_cache_memory_bytes          gauge: memory allocated for the log cache (its slabs)
//   wharf_object_wal_put_duration_seconds histogram: one object WAL PUT (retries included)
//   wharf_object_wal_put_bytes_total      bytes of the object WAL objects written
//   wharf_object_wal_deleted_objects_total object WAL objects deleted by trims
//
// Created once per process: a second load of this module (test isolation) reuses them.

import { Counter, Gauge, Histogram, register } from 'prom-client';

function counter(name: string, help: string): Counter {
  return (register.getSingleMetric(name) as Counter | undefined) ?? new Counter({ name, help });
}

function histogram(name: string, help: string, buckets: number[]): Histogram {
  return (register.getSingleMetric(name) as Histogram | undefined) ?? new Histogram({ name, help, buckets });
}

export const walFsyncDurationSeconds = histogram(
  'wharf_wal_fsync_duration_seconds',
  'Duration of one durable write of the file WAL (an O_DSYNC write: write and fdatasync in one call).',
  [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
);

export const walBytesWrittenTotal = counter(
  'wharf_wal_bytes_written_total',
  'Bytes written to the file WAL ring (records, pads and header slots).',
);

export const streamAppendBytesTotal = counter(
  'wharf_stream_append_bytes_total',
  'Record batch bytes appended to streams.',
);

export const streamAppendWaitsTotal = counter(
  'wharf_stream_append_waits_total',
  'Appends that waited for uploads to make room in the log cache (backpressure).',
);

export const streamAppendWaitBytesTotal = counter(
  'wharf_stream_append_wait_bytes_total',
  'Record batch bytes of the appends that waited for room in the log cache.',
);

export const uploadObjectsTotal = counter('wharf_upload_objects_total', 'Data objects uploaded and committed.');

export const uploadBytesTotal = counter('wharf_upload_bytes_total', 'Bytes of the data objects uploaded.');

export const uploadFailuresTotal = counter(
  'wharf_upload_failures_total',
  'Uploads that failed and will be retried (fenced streams included).',
);

export const uploadDurationSeconds = histogram(
  'wharf_upload_duration_seconds',
  'Duration of one upload: build the object, put it, commit it, trim the WAL.',
  [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
);

export const objectWalPutDurationSeconds = histogram(
  'wharf_object_wal_put_duration_seconds',
  'Duration of one object WAL PUT (retries included).',
  [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
);

export const objectWalPutBytesTotal = counter('wharf_object_wal_put_bytes_total', 'Bytes of the object WAL objects written.');

export const objectWalDeletedObjectsTotal = counter('wharf_object_wal_deleted_objects_total', 'Object WAL objects deleted by trims.');

const LOG_CACHE_BYTES = 'wharf_log_cache_bytes';
const LOG_CACHE_MEMORY_BYTES = 'wharf_log_cache_memory_bytes';

export interface LogCacheBytesSource {
  uploadedBytes(): number;
  unuploadedBytes(): number;
  memoryBytes(): number;
}

let logCacheSource: LogCacheBytesSource | undefined;

/** The log cache the gauge reports (the latest one created; one per process in a broker). */
export function reportLogCache(source: LogCacheBytesSource): void {
  logCacheSource = source;
}

if (register.getSingleMetric(LOG_CACHE_BYTES) === undefined) {
  new Gauge({
    name: LOG_CACHE_BYTES,
    help: 'Record batch bytes held by the log cache, by state (uploaded, unuploaded).',
    labelNames: ['state'] as const,
    collect() {
      if (logCacheSource === undefined) return;
      this.set({ state: 'uploaded' }, logCacheSource.uploadedBytes());
      this.set({ state: 'unuploaded' }, logCacheSource.unuploadedBytes());
    },
  });
}

if (register.getSingleMetric(LOG_CACHE_MEMORY_BYTES) === undefined) {
  new Gauge({
    name: LOG_CACHE_MEMORY_BYTES,
    help: 'Memory allocated for the log cache: slabs holding batches and pooled ones.',
    collect() {
      if (logCacheSource !== undefined) this.set(logCacheSource.memoryBytes());
    },
  });
}
