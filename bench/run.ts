// npm run bench [-- NAME ...]: runs the benchmarks one after another, each in its own process
// (each starts what it measures: brokers, s3rver, Prometheus). Every benchmark prints a table
// for people and one JSON line per figure: {"bench", "metric", "value", "unit"}.
//
//   produce       Kafka produce throughput and p50/p99 (librdkafka, acks=all) and raw disk
//   otlp          OTLP/HTTP spans/s and log records/s, p99 at half rate
//   remote-write  remote-write samples/s next to Prometheus's own receiver
//   catchup       catch-up read throughput from objects (local store and s3rver), GETs per GiB
//   tail          produce p99 at 20 MiB/s while a consumer replays old data, as a ratio of idle
//   compaction    bytes stored per byte produced, PUTs/GETs per GiB
//   object-wal    produce p99 at 20 MiB/s with the object WAL on s3rver
//   table         OTLP topic to committed Parquet rows/s next to DuckDB's COPY, file sizes, freshness

import { spawnSync } from 'node:child_process';
import path from 'node:path';

const BENCHES = ['produce', 'otlp', 'remote-write', 'catchup', 'tail', 'compaction', 'object-wal', 'table'];
const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !BENCHES.includes(name));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')}; choose from ${BENCHES.join(', ')}`);
  process.exit(2);
}
let failed = 0;
for (const name of wanted.length > 0 ? wanted : BENCHES) {
  console.log(`\n## ${name}`);
  const result = spawnSync(process.execPath, [path.join(import.meta.dirname, `${name}.ts`)], { stdio: 'inherit' });
  if (result.status !== 0) {
    failed++;
    console.error(`bench ${name} failed (${result.signal ?? `exit ${result.status}`})`);
  }
}
process.exit(failed > 0 ? 1 : 0);
