// Object WAL bench: produce latency and throughput of a single-node Wharf whose WAL is the object
// store (wal.kind=object), against s3rver on loopback, driven by the librdkafka producer at a
// fixed rate (default 20 MiB/s: goal p99 ≤ 300 ms with the default 250 ms batching interval).
// Prints one JSON line per figure ({"bench", "metric", "value", "unit"}) and a table.
//
//   node bench/object-wal.ts
//   BENCH_RATE_MIB_S=20 BENCH_PRODUCE_SECONDS=20 WHARF_WAL_OBJECT_INTERVAL_MS=250 node bench/object-wal.ts
//   BENCH_PRODUCER_SCRIPT=<a variant of bench/rdkafka_producer.py>
//   BENCH_RDKAFKA_CONFIG='{"enable.idempotence": false, "max.in.flight.requests.per.connection": 32}'
//
// librdkafka (2.0 here) puts one partition in a ProduceRequest and an idempotent producer keeps at
// most 5 in flight per connection, so with 8 partitions and acknowledgements that take an object
// WAL cycle (~250 ms) it waits for request slots: its records wait ~1.5 cycles in the client, and
// it cannot reach 20 MiB/s. Both it and a pipelined producer are measured (CLIENTS).
//
// s3rver, the broker and the producer share the machine's cores: run it on an otherwise idle
// machine (the load average is printed) or the PUT latencies measure the neighbours.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { s3BrokerEnv, startS3rver, type S3rverHandle } from '../test/helpers/s3rver.ts';
import { Figures, metricSums, peakRssMiB, REPO, runRdkafkaProducer, startBrokerProcess, type BrokerProcess, type ProducerResult } from './lib.ts';

const RECORD_BYTES = 1024;
const PARTITIONS = 8;
const BENCH = 'object_wal';
const PRODUCE_SECONDS = Number(process.env.BENCH_PRODUCE_SECONDS ?? 15);
const RATE_MIB_S = Number(process.env.BENCH_RATE_MIB_S ?? 20);
const INTERVAL_MS = process.env.WHARF_WAL_OBJECT_INTERVAL_MS ?? '250';
const PRODUCER_SCRIPT = process.env.BENCH_PRODUCER_SCRIPT ?? path.join(REPO, 'bench/rdkafka_producer.py');

const figures = new Figures();
function report(metric: string, value: number, unit: string): void {
  figures.report(BENCH, metric, value, unit);
}

function startBroker(dataDir: string, s3: S3rverHandle): Promise<BrokerProcess> {
  return startBrokerProcess({
    dataDir,
    env: {
      WHARF_OTLP_ENABLE: 'false',
      WHARF_NUM_PARTITIONS: String(PARTITIONS),
      WHARF_WAL_KIND: 'object',
      WHARF_WAL_OBJECT_INTERVAL_MS: INTERVAL_MS,
      ...s3BrokerEnv(s3),
    },
  });
}

function runProducer(bootstrap: string, topic: string, durationS: number, rateMiBs: number, config?: Record<string, string | number | boolean>): ProducerResult {
  return runRdkafkaProducer({ bootstrap, topic, durationS, rateMiBs, recordBytes: RECORD_BYTES, script: PRODUCER_SCRIPT, config });
}

/**
 * The two producers measured, one after the other on the same broker: the script's idempotent
 * one (5 requests in flight), and one that keeps as many requests in flight as a WAL cycle needs
 * (acks=all still; without idempotence librdkafka has no cap of 5), as a producer writing to a
 * high-latency WAL is configured.
 */
const CLIENTS: [string, Record<string, string | number | boolean>][] = [
  ['idempotent', {}],
  ['pipelined', { 'enable.idempotence': false, 'max.in.flight.requests.per.connection': 1_000_000 }],
];

const PRODUCE_COUNT = 'wharf_kafka_request_duration_seconds_count{api="Produce"';
const PRODUCE_SUM = 'wharf_kafka_request_duration_seconds_sum{api="Produce"';
const METRICS = [
  'wharf_object_wal_put_duration_seconds_count',
  'wharf_object_wal_put_duration_seconds_sum',
  'wharf_object_wal_put_bytes_total',
  'wharf_process_resident_memory_bytes',
  PRODUCE_COUNT,
  PRODUCE_SUM,
];

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'wharf-bench-object-wal-'));
  const s3 = await startS3rver({ bucket: 'wharf-bench' });
  try {
    const broker = await startBroker(path.join(work, 'data'), s3);
    try {
      console.log(`# object WAL against s3rver: ${path.basename(PRODUCER_SCRIPT)} (acks=all), ${RECORD_BYTES} B records, ${PARTITIONS} partitions, ` +
        `${RATE_MIB_S} MiB/s for ${PRODUCE_SECONDS} s, wal.object.interval.ms=${INTERVAL_MS}; ` +
        `load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} on ${os.availableParallelism()} CPUs`);
      runProducer(broker.bootstrap, 'bench-object-wal', 3, RATE_MIB_S); // warm-up, creates the topic
      for (const [client, config] of CLIENTS) {
        const before = await metricSums(broker.httpPort, METRICS);
        const paced = runProducer(broker.bootstrap, 'bench-object-wal', PRODUCE_SECONDS, RATE_MIB_S, config);
        const after = await metricSums(broker.httpPort, METRICS);
        const delta = (name: string): number => (after.get(name) ?? 0) - (before.get(name) ?? 0);
        const puts = delta('wharf_object_wal_put_duration_seconds_count');
        report(`${client}_produce_throughput_mib_s`, paced.bytes / paced.seconds / 2 ** 20, 'MiB/s');
        report(`${client}_produce_p50_ms`, paced.latency_ms.p50, 'ms');
        report(`${client}_produce_p99_ms`, paced.latency_ms.p99, 'ms');
        report(`${client}_produce_max_ms`, paced.latency_ms.max, 'ms');
        report(`${client}_wal_puts_per_s`, puts / paced.seconds, 'PUT/s');
        report(`${client}_wal_put_mean_ms`, puts > 0 ? (delta('wharf_object_wal_put_duration_seconds_sum') / puts) * 1000 : NaN, 'ms');
        report(`${client}_wal_mean_object_mib`, puts > 0 ? delta('wharf_object_wal_put_bytes_total') / puts / 2 ** 20 : NaN, 'MiB');
        const requests = delta(PRODUCE_COUNT);
        report(`${client}_produce_requests_per_s`, requests / paced.seconds, 'req/s');
        report(`${client}_produce_request_mean_ms`, requests > 0 ? (delta(PRODUCE_SUM) / requests) * 1000 : NaN, 'ms');
        report(`${client}_broker_rss_mib`, (after.get('wharf_process_resident_memory_bytes') ?? NaN) / 2 ** 20, 'MiB');
        report(`${client}_broker_rss_peak_mib`, peakRssMiB(broker.child.pid), 'MiB');
      }
    } finally {
      await broker.stop();
    }
  } finally {
    await s3.stop();
    await rm(work, { recursive: true, force: true });
  }
  figures.printTable();
}

await main();
