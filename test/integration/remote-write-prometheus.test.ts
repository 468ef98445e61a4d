// A real Prometheus (Debian's 2.42) scraping itself and Wharf every second, with remote_write
// pointed at Wharf's /api/v1/write, delivers what it scrapes: a kafkajs consumer reads
// prometheus_samples and finds `up` and `prometheus_build_info` as prometheus.WriteRequest
// records, one series each, keyed by the series identity, with plausible values and timestamps,
// and the metric families' metadata as "#<family>" records.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { printBrokerLogsOnFailure, startBroker } from '../helpers/broker.ts';
import type { Broker } from '../helpers/broker.ts';
import { expectRemoteWriteRoute, readSampleRecords, seriesKey, startPrometheus } from '../helpers/prometheus.ts';
import type { PrometheusServer, SampleRecord } from '../helpers/prometheus.ts';

const TOPIC = 'prometheus_samples';

printBrokerLogsOnFailure();

describe('Prometheus remote write into Wharf', () => {
  let broker: Broker;
  let prometheus: PrometheusServer | undefined;
  const startedMs = Date.now();

  beforeAll(async () => {
    broker = await startBroker();
    await expectRemoteWriteRoute(broker.httpUrl);
    prometheus = await startPrometheus({
      scrapeTargets: [`127.0.0.1:${broker.httpPort}`],
      scrapeIntervalS: 1,
      remoteWriteUrl: `${broker.httpUrl}/api/v1/write`,
    });
  });

  afterAll(async () => {
    await prometheus?.stop();
  });

  it('delivers its scraped series, decoded and keyed by series identity', async () => {
    const promTarget = `127.0.0.1:${prometheus!.port}`;
    const wharfTarget = `127.0.0.1:${broker.httpPort}`;
    const upPrometheus = `up{instance="${promTarget}",job="prometheus"}`;
    const upWharf = `up{instance="${wharfTarget}",job="targets"}`;
    const latest = new Map<string, SampleRecord>();
    let records: SampleRecord[];
    try {
      records = await readSampleRecords(broker.bootstrap, TOPIC, (all) => {
        for (const r of all) latest.set(r.key, r);
        const keys = [...latest.keys()];
        return latest.has(upPrometheus) && latest.has(upWharf)
          && keys.some((k) => k.startsWith('prometheus_build_info{'))
          && keys.some((k) => k.startsWith('wharf_remote_write_received_samples_total{'))
          && keys.some((k) => k === '#prometheus_build_info');
      }, 35_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}\nkeys seen: ${[...latest.keys()].slice(0, 30).join(' ')}\n` +
        `prometheus log tail:\n${prometheus!.logs().split('\n').slice(-30).join('\n')}`);
    }

    const series = records.filter((r) => !r.key.startsWith('#'));
    expect(series.length).toBeGreaterThan(100);
    for (const record of series) {
      expect(record.request.timeseries, `record ${record.key} holds one series`).toHaveLength(1);
      const ts = record.request.timeseries[0]!;
      expect(record.key).toBe(seriesKey(ts.labels));
      expect(ts.samples.length + ts.histograms.length + ts.exemplars.length).toBeGreaterThan(0);
      for (const sample of ts.samples) {
        const timestampMs = Number(sample.timestamp);
        expect(timestampMs).toBeGreaterThan(startedMs - 60_000);
        expect(timestampMs).toBeLessThan(Date.now() + 5_000);
      }
    }
    for (const key of [upPrometheus, upWharf]) {
      const samples = latest.get(key)!.request.timeseries[0]!.samples;
      expect(samples.every((s) => s.value === 1), `${key} is 1`).toBe(true);
    }
    const buildInfo = series.find((r) => r.key.startsWith('prometheus_build_info{'))!.request.timeseries[0]!;
    expect(buildInfo.labels.find((l) => l.name === 'version')?.value).toMatch(/^2\.42/);
    expect(buildInfo.samples[0]!.value).toBe(1);

    const metadata = records.filter((r) => r.key.startsWith('#'));
    for (const record of metadata) {
      expect(record.request.timeseries).toHaveLength(0);
      expect(record.request.metadata.map((m) => m.metric_family_name)).toEqual([record.key.slice(1)]);
    }
    const buildInfoMetadata = metadata.find((r) => r.key === '#prometheus_build_info')!.request.metadata[0]!;
    expect(buildInfoMetadata.type).toBe(2); // GAUGE
    expect(buildInfoMetadata.help).toMatch(/build/i);

    const wharfMetrics = await broker.metrics();
    const received = /^wharf_remote_write_received_samples_total\{version="1\.0"\} (\d+)/m.exec(wharfMetrics);
    expect(Number(received?.[1])).toBeGreaterThan(0);
  }, 60_000);
});
