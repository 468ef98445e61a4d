// The remote-write endpoint of a running Wharf under bad and heavy input: every malformed class
// gets its 4xx with a message and writes nothing, the process stays up; a 2.0 request is
// answered with its written counts and lands as 1.0-shaped records; a request answered 204
// survives SIGKILL right after; past the in-flight bound the answer is 429 with Retry-After.

import { beforeAll, describe, expect, it } from 'vitest';
import { isReady, printBrokerLogsOnFailure, startBroker } from '../helpers/broker.ts';
import type { Broker } from '../helpers/broker.ts';
import {
  V1_HEADERS, V2_HEADERS, encodeRequestV2, encodeWriteRequest, expectRemoteWriteRoute, labels, postRemoteWrite, readSampleRecords,
  seriesKey, snappy, topicExists,
} from '../helpers/prometheus.ts';

const TOPIC = 'prometheus_samples';
const MAX_REQUEST_BYTES = 256 * 1024;
const T0 = Date.now();

printBrokerLogsOnFailure();

function series(name: string, count: number, marker: string) {
  return Array.from({ length: count }, (_, i) => ({
    labels: labels({ __name__: name, instance: `host-${i}`, job: 'bad-input-test', run: marker }),
    samples: [{ value: i + 0.5, timestamp: T0 + i }],
  }));
}

const validBody = snappy(encodeWriteRequest({ timeseries: series('valid_metric', 3, 'x') }));
const withLabels = (labelList: { name: string; value: string }[]) =>
  snappy(encodeWriteRequest({ timeseries: [...series('ok_metric', 2, 'y'), { labels: labelList, samples: [{ value: 1, timestamp: T0 }] }] }));

interface BadCase {
  name: string;
  body: Buffer;
  headers?: Record<string, string>;
  status: number;
  message: RegExp;
}

const badCases: BadCase[] = [
  { name: 'wrong content type', body: validBody, headers: { ...V1_HEADERS, 'content-type': 'application/json' }, status: 415, message: /Content-Type "application\/json" is not supported/ },
  { name: 'unknown proto= message', body: validBody, headers: { ...V1_HEADERS, 'content-type': 'application/x-protobuf;proto=io.prometheus.write.v3.Request' }, status: 415, message: /proto=io\.prometheus\.write\.v3\.Request is not supported/ },
  { name: 'not snappy-encoded', body: encodeWriteRequest({ timeseries: series('m', 2, 'z') }), headers: { ...V1_HEADERS, 'content-encoding': 'identity' }, status: 415, message: /Content-Encoding "identity" is not supported/ },
  { name: 'bad snappy', body: Buffer.from('\x10this is not snappy at all'), status: 400, message: /not valid snappy \(block format\)/ },
  { name: 'framed snappy', body: Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59, 0x00]), status: 400, message: /framed \(stream\) format/ },
  { name: 'bad protobuf', body: snappy(Buffer.from([0x0a, 0x40, 0x0a, 0x02])), status: 400, message: /invalid prometheus\.WriteRequest: length 64 at byte 1 runs past the end/ },
  { name: 'empty label name', body: withLabels([{ name: '', value: 'v' }, { name: '__name__', value: 'm' }]), status: 400, message: /timeseries\[2\].*label 0 has an empty name/ },
  { name: 'unsorted labels', body: withLabels([{ name: '__name__', value: 'm' }, { name: 'job', value: 'a' }, { name: 'instance', value: 'b' }]), status: 400, message: /labels are not sorted by name: "instance" comes after "job"/ },
  { name: 'duplicate labels', body: withLabels([{ name: '__name__', value: 'm' }, { name: 'job', value: 'a' }, { name: 'job', value: 'b' }]), status: 400, message: /duplicate label name "job"/ },
  { name: 'missing __name__', body: withLabels([{ name: 'job', value: 'a' }]), status: 400, message: /no __name__ label/ },
  { name: '2.0 symbol reference out of range', body: snappy(encodeRequestV2({ symbols: ['', '__name__', 'up'], timeseries: [{ labels_refs: [1, 3], samples: [{ value: 1, timestamp: T0 }] }] })), headers: V2_HEADERS, status: 400, message: /symbol reference 3 at byte \d+ is out of range/ },
  { name: 'body over the limit', body: snappy(Buffer.alloc(MAX_REQUEST_BYTES + 1)), status: 413, message: /decompressed body of 262145 bytes is over the limit of 262144 bytes/ },
];

describe('remote write: bad input, 2.0, durability and overload', () => {
  let broker: Broker;
  let url: string;

  beforeAll(async () => {
    broker = await startBroker({ env: { WHARF_INGEST_MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES) } });
    url = `${broker.httpUrl}/api/v1/write`;
    await expectRemoteWriteRoute(broker.httpUrl);
  });

  it('answers each malformed request with its 4xx and a message, writes nothing, and stays up', async () => {
    for (const bad of badCases) {
      const response = await postRemoteWrite(url, bad.body, bad.headers);
      expect(response.status, `${bad.name}: ${response.text}`).toBe(bad.status);
      expect(response.text, bad.name).toMatch(bad.message);
      expect(broker.isRunning(), `process alive after ${bad.name}`).toBe(true);
    }
    expect(await isReady(broker)).toBe(true);
    expect(await topicExists(broker.bootstrap, TOPIC), 'nothing of a bad request was produced').toBe(false);
    const metrics = await broker.metrics();
    const rejected = { unsupported_media_type: 3, bad_snappy: 2, bad_protobuf: 1, invalid_series: 5, too_large: 1 };
    for (const [reason, count] of Object.entries(rejected)) {
      expect(metrics).toContain(`wharf_remote_write_rejected_requests_total{reason="${reason}"} ${count}\n`);
    }
    expect((await postRemoteWrite(url, validBody)).status, 'a valid request after all that').toBe(204);
  });

  it('accepts a 2.0 request with the written counts and stores it as 1.0-shaped records', async () => {
    const body = encodeRequestV2({
      symbols: ['', '__name__', 'rw2_requests_total', 'job', 'v2-test', 'trace_id', 'abc', 'Requests.'],
      timeseries: [
        {
          labels_refs: [1, 2, 3, 4],
          samples: [{ value: 5, timestamp: T0 }, { value: 6, timestamp: T0 + 1000 }],
          exemplars: [{ labels_refs: [5, 6], value: 1, timestamp: T0 + 1000 }],
          metadata: { type: 1, help_ref: 7 },
        },
      ],
    });
    const response = await postRemoteWrite(url, snappy(body), V2_HEADERS);
    expect(response.status).toBe(204);
    expect(response.headers.get('x-prometheus-remote-write-samples-written')).toBe('2');
    expect(response.headers.get('x-prometheus-remote-write-histograms-written')).toBe('0');
    expect(response.headers.get('x-prometheus-remote-write-exemplars-written')).toBe('1');
    const key = 'rw2_requests_total{job="v2-test"}';
    const records = await readSampleRecords(broker.bootstrap, TOPIC, (all) => all.some((r) => r.key === key));
    const request = records.find((r) => r.key === key)!.request;
    expect(request.timeseries).toEqual([{
      labels: [{ name: '__name__', value: 'rw2_requests_total' }, { name: 'job', value: 'v2-test' }],
      samples: [{ value: 5, timestamp: String(T0) }, { value: 6, timestamp: String(T0 + 1000) }],
      exemplars: [{ labels: [{ name: 'trace_id', value: 'abc' }], value: 1, timestamp: String(T0 + 1000) }],
      histograms: [],
    }]);
    expect(request.metadata).toEqual([{ type: 1, metric_family_name: 'rw2_requests_total', help: 'Requests.', unit: '' }]);
  });

  it('loses nothing of a request answered 204 when the process is SIGKILLed right after', async () => {
    const written = series('kill9_metric', 2000, `kill-${Date.now()}`);
    const response = await postRemoteWrite(url, snappy(encodeWriteRequest({ timeseries: written })));
    expect(response.status).toBe(204);
    await broker.kill('SIGKILL');
    await broker.restart();
    const wanted = new Set(written.map((s) => seriesKey(s.labels)));
    const records = await readSampleRecords(broker.bootstrap, TOPIC, (all) => all.filter((r) => wanted.has(r.key)).length >= wanted.size);
    for (const s of written) {
      const record = records.find((r) => r.key === seriesKey(s.labels))!;
      expect(record.request.timeseries[0]!.samples).toEqual([{ value: s.samples[0]!.value, timestamp: String(s.samples[0]!.timestamp) }]);
    }
  });

  it('refuses with 429 and Retry-After past the in-flight bound, and stays up', async () => {
    await broker.restart({ env: { WHARF_INGEST_MAX_INFLIGHT_BYTES: '1024' } });
    const body = snappy(encodeWriteRequest({ timeseries: series('overload_metric', 200, 'o') }));
    expect(body.length).toBeGreaterThan(1024);
    const response = await postRemoteWrite(url, body);
    expect(response.status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('1');
    expect(response.text).toMatch(/bound of 1024 in-flight request bytes/);
    expect(await isReady(broker)).toBe(true);
    expect(await broker.metrics()).toMatch(/wharf_remote_write_refused_requests_total 1/);
  });
});
