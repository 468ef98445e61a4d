// Prometheus metrics of the table writer, registered once in prom-client's default registry
// (served by the HTTP API's /metrics).

import { Counter, Histogram } from 'prom-client';

export const tableMetrics = {
  recordsRead: new Counter({
    name: 'wharf_table_records_read_total',
    help: 'Kafka records read by the table writer, by topic.',
    labelNames: ['topic'] as const,
  }),
  recordsSkipped: new Counter({
    name: 'wharf_table_records_skipped_total',
    help: 'Records whose value could not be converted (malformed), by topic; they are left out of the table.',
    labelNames: ['topic'] as const,
  }),
  recordsLost: new Counter({
    name: 'wharf_table_records_lost_total',
    help: 'Records deleted by topic retention before the table writer read them, by topic.',
    labelNames: ['topic'] as const,
  }),
  rowsCommitted: new Counter({
    name: 'wharf_table_rows_committed_total',
    help: 'Rows in committed data files, by table.',
    labelNames: ['table'] as const,
  }),
  filesWritten: new Counter({
    name: 'wharf_table_files_written_total',
    help: 'Parquet data files committed, by table.',
    labelNames: ['table'] as const,
  }),
  bytesWritten: new Counter({
    name: 'wharf_table_bytes_written_total',
    help: 'Bytes of committed Parquet data files, by table.',
    labelNames: ['table'] as const,
  }),
  commits: new Counter({
    name: 'wharf_table_commits_total',
    help: 'Iceberg snapshots committed by the writer (appends), by table.',
    labelNames: ['table'] as const,
  }),
  compactions: new Counter({
    name: 'wharf_table_compactions_total',
    help: 'Small-file compactions committed (replace snapshots), by table.',
    labelNames: ['table'] as const,
  }),
  writerFailures: new Counter({
    name: 'wharf_table_writer_failures_total',
    help: 'Times a topic\'s table writer failed and restarted from the committed offsets, by topic.',
    labelNames: ['topic'] as const,
  }),
  commitSeconds: new Histogram({
    name: 'wharf_table_commit_duration_seconds',
    help: 'Time to write the buffered rows as Parquet, put them and commit the snapshots, by topic.',
    labelNames: ['topic'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  }),
};
