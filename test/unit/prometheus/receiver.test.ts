// The remote-write route in process, on a real HttpApi with a producer under the test's control:
// a 204 only once the produce is durable, 503 when it fails, 429 with Retry-After past the
// in-flight bound, 413/415/400 with a message, the 2.0 written-count headers, and stop().

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HttpApi } from '../../../src/broker/http-api.ts';
import type { BatchProducer, PartitionBatch, ProducerRecord, SendResult, TopicLayout } from '../../../src/broker/in-process-producer.ts';
import { ProduceError, encodeForPartitions } from '../../../src/broker/in-process-producer.ts';
import { RecordColumns } from '../../../src/protocol/record-encoder.ts';
import { forEachRecord } from '../../../src/protocol/record-decoder.ts';
import { validateBatch } from '../../../src/protocol/records.ts';
import { decodeWriteRequestV1 } from '../../../connectors/prometheus/remote-write-v1.ts';
import { negotiate } from '../../../connectors/prometheus/receiver.ts';
import { startRemoteWrite } from '../../../connectors/prometheus/index.ts';
import { defaultConfig } from '../../../src/config/config.ts';
import type { RunningConnector } from '../../../connectors/context.ts';
import { InvalidWriteError } from '../../../connectors/prometheus/decoded-write.ts';
import { V1_HEADERS, V2_HEADERS, encodeRequestV2, encodeWriteRequest, labels, postRemoteWrite, snappy } from '../../helpers/prometheus.ts';

const T0 = 1_700_000_000_000;

interface PendingSend {
  topic: string;
  /** Records sent (send()) or appended as batches (appendBatches(), from a decode worker). */
  recordCount: number;
  /** The batches of an appendBatches(). */
  batches?: readonly PartitionBatch[];
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * A producer whose sends wait until the test resolves or rejects them. Like the broker's, it has
 * a layout only for a topic that exists: created by the first send(), or from the start.
 */
class HeldProducer implements BatchProducer {
  readonly sends: PendingSend[] = [];
  autoResolve = false;
  private readonly topics = new Set<string>();

  constructor(existingTopics: readonly string[] = []) {
    for (const topic of existingTopics) this.topics.add(topic);
  }

  send(topic: string, records: readonly ProducerRecord[] | RecordColumns): Promise<SendResult> {
    this.topics.add(topic);
    return this.hold(topic, records.length);
  }

  layout(topic: string): TopicLayout | undefined {
    return this.topics.has(topic) ? { partitions: 4, maxBatchBytes: 1024 * 1024, unkeyedPartition: 0 } : undefined;
  }

  appendBatches(topic: string, batches: readonly PartitionBatch[]): Promise<SendResult> {
    return this.hold(topic, batches.reduce((sum, b) => sum + b.recordCount, 0), batches);
  }

  private hold(topic: string, recordCount: number, batches?: readonly PartitionBatch[]): Promise<SendResult> {
    return new Promise((resolve, reject) => {
      const done = () => resolve({ topic, appends: [] });
      if (this.autoResolve) return done();
      this.sends.push({ topic, recordCount, batches, resolve: done, reject });
    });
  }
}

const running: { api: HttpApi; connector: RunningConnector }[] = [];
afterEach(async () => {
  for (const { api, connector } of running.splice(0)) {
    await connector.stop();
    await api.close();
  }
});

/**
 * Where requests are decoded: on the JS thread (no decode threads, or the topic's first request,
 * which creates it), or on the decode workers (the topic exists).
 */
const PATHS = [
  { name: 'decoded on the JS thread', decodeThreads: 0, topicExists: false },
  { name: 'decoded on the decode workers', decodeThreads: 2, topicExists: true },
];
let path = PATHS[0]!;

async function start(ingest: Partial<ReturnType<typeof defaultConfig>['ingest']> = {}) {
  const config = defaultConfig();
  config.ingest.remoteWriteDecodeThreads = path.decodeThreads;
  Object.assign(config.ingest, ingest);
  const producer = new HeldProducer(path.topicExists ? [config.ingest.prometheusTopic] : []);
  const api = new HttpApi();
  const connector = await startRemoteWrite({ config, producer, httpApi: api });
  const port = await api.listen('127.0.0.1', 0);
  running.push({ api, connector });
  return { producer, connector, url: `http://127.0.0.1:${port}/api/v1/write` };
}

function message(seriesCount: number): Buffer {
  const timeseries = Array.from({ length: seriesCount }, (_, i) => ({
    labels: labels({ __name__: 'm', i: String(i) }),
    samples: [{ value: i, timestamp: T0 }],
  }));
  return encodeWriteRequest({ timeseries });
}

function body(seriesCount: number): Buffer {
  return snappy(message(seriesCount));
}

async function waitForSends(producer: HeldProducer, count: number): Promise<void> {
  for (let i = 0; i < 200 && producer.sends.length < count; i++) await new Promise((r) => setTimeout(r, 10));
  expect(producer.sends).toHaveLength(count);
}

describe.each(PATHS)('the remote-write route, $name', (where) => {
  beforeEach(() => {
    path = where;
  });

  it('answers 204 only after the produce has resolved', async () => {
    const { producer, url } = await start();
    let answered = false;
    const response = postRemoteWrite(url, body(3)).then((r) => {
      answered = true;
      return r;
    });
    await waitForSends(producer, 1);
    expect(producer.sends[0]!.topic).toBe('prometheus_samples');
    expect(producer.sends[0]!.recordCount).toBe(3);
    await new Promise((r) => setTimeout(r, 50));
    expect(answered, 'no answer while the produce is pending').toBe(false);
    producer.sends[0]!.resolve();
    expect((await response).status).toBe(204);
  });

  it('answers 405 with Allow: POST to other methods, 404 to other paths', async () => {
    const { url } = await start();
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const response = await fetch(url, { method });
      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe('POST');
      expect(await response.text()).toMatch(new RegExp(`method ${method} is not allowed on /api/v1/write`));
    }
    expect((await fetch(`${url}/x`, { method: 'POST' })).status).toBe(404);
  });

  it('answers 503 with Retry-After when the produce fails', async () => {
    const { producer, url } = await start();
    const response = postRemoteWrite(url, body(1));
    await waitForSends(producer, 1);
    producer.sends[0]!.reject(new ProduceError('prometheus_samples', 56, 'partition 0: KAFKA_STORAGE_ERROR'));
    const r = await response;
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(r.text).toMatch(/could not write to topic prometheus_samples: .*KAFKA_STORAGE_ERROR/);
  });

  it('refuses with 429 and Retry-After past the in-flight bound, and accepts again once it drains', async () => {
    // A request holds its compressed and decompressed bytes: the bound fits one, not one more body.
    const one = body(50);
    const { producer, url } = await start({ maxInflightBytes: 2 * one.length + message(50).length - 1 });
    const first = postRemoteWrite(url, one);
    await waitForSends(producer, 1);
    const refused = await postRemoteWrite(url, one);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.text).toMatch(/in-flight request bytes/);
    producer.sends[0]!.resolve();
    expect((await first).status).toBe(204);
    producer.autoResolve = true;
    expect((await postRemoteWrite(url, one)).status).toBe(204);
  });

  it('answers 413 for a body, or a decompressed body, over the request limit', async () => {
    const { producer, url } = await start({ maxRequestBytes: 8192 });
    const big = await postRemoteWrite(url, Buffer.alloc(10_000, 1));
    expect(big.status).toBe(413);
    expect(big.text).toMatch(/body of 10000 bytes is over the limit of 8192 bytes/);
    const bomb = await postRemoteWrite(url, snappy(Buffer.alloc(100_000)));
    expect(bomb.status).toBe(413);
    expect(bomb.text).toMatch(/decompressed body of 100000 bytes is over the limit/);
    expect(producer.sends).toHaveLength(0);
  });

  it('answers 415 for a content type, proto or encoding it does not speak', async () => {
    const { url } = await start();
    const cases: [Record<string, string>, RegExp][] = [
      [{ ...V1_HEADERS, 'content-type': 'application/json' }, /Content-Type "application\/json" is not supported/],
      [{ ...V1_HEADERS, 'content-type': 'application/x-protobuf;proto=foo.Bar' }, /proto=foo\.Bar is not supported/],
      [{ ...V1_HEADERS, 'content-encoding': 'gzip' }, /Content-Encoding "gzip" is not supported/],
    ];
    for (const [headers, message] of cases) {
      const r = await postRemoteWrite(url, body(1), headers);
      expect(r.status).toBe(415);
      expect(r.text).toMatch(message);
    }
  });

  it('answers 400 for a body that is not snappy, or framed snappy', async () => {
    const { url } = await start();
    const garbage = await postRemoteWrite(url, Buffer.from([0x05, 0xff, 0xff, 0xff]));
    expect(garbage.status).toBe(400);
    expect(garbage.text).toMatch(/not valid snappy \(block format\)/);
    const framed = await postRemoteWrite(url, Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59, 0x01]));
    expect(framed.status).toBe(400);
    expect(framed.text).toMatch(/framed \(stream\) format/);
  });

  it('answers a 2.0 request with the written counts', async () => {
    const { producer, url } = await start();
    producer.autoResolve = true;
    const request = encodeRequestV2({
      symbols: ['', '__name__', 'up', 'job', 'a', 'b'],
      timeseries: [
        { labels_refs: [1, 2, 3, 4], samples: [{ value: 1, timestamp: T0 }, { value: 1, timestamp: T0 + 1 }] },
        { labels_refs: [1, 2, 3, 5], samples: [{ value: 0, timestamp: T0 }], exemplars: [{ value: 1, timestamp: T0 }] },
      ],
    });
    const r = await postRemoteWrite(url, snappy(request), V2_HEADERS);
    expect(r.status).toBe(204);
    expect(r.headers.get('x-prometheus-remote-write-samples-written')).toBe('3');
    expect(r.headers.get('x-prometheus-remote-write-histograms-written')).toBe('0');
    expect(r.headers.get('x-prometheus-remote-write-exemplars-written')).toBe('1');
  });

  it('stop() waits for the requests in flight, then answers 503', async () => {
    const { producer, connector, url } = await start();
    const inFlight = postRemoteWrite(url, body(1));
    await waitForSends(producer, 1);
    let stopped = false;
    const stopping = connector.stop().then(() => {
      stopped = true;
    });
    await new Promise((r) => setTimeout(r, 30));
    expect(stopped).toBe(false);
    producer.sends[0]!.resolve();
    await stopping;
    expect((await inFlight).status).toBe(204);
    const after = await postRemoteWrite(url, body(1));
    expect(after.status).toBe(503);
  });
});

describe('the decode workers', () => {
  beforeEach(() => {
    path = PATHS[1]!;
  });

  /** Key and value of every record, as hex, by partition. */
  function recordsByPartition(batches: readonly PartitionBatch[]): Map<number, string[]> {
    const byPartition = new Map<number, string[]>();
    for (const { partition, batch, recordCount } of batches) {
      expect(validateBatch(batch, 0), 'a sound batch whose CRC-32C checks').toBe(0);
      expect(batch.readInt32BE(8) + 12, 'one whole batch').toBe(batch.length);
      const list = byPartition.get(partition) ?? [];
      const { records } = forEachRecord(batch, (r) => list.push(`${r.key!.toString('hex')}=${r.value!.toString('hex')}`));
      expect(records).toBe(recordCount);
      byPartition.set(partition, list);
    }
    return byPartition;
  }

  it('append the records the JS thread would produce: one per series, keyed by its identity, in its partition', async () => {
    const { producer, url } = await start();
    const request = message(300);
    const response = postRemoteWrite(url, snappy(request));
    await waitForSends(producer, 1);
    producer.autoResolve = true;
    const { batches, resolve } = producer.sends[0]!;
    resolve(); // answered whatever the checks below find, so that stop() does not wait
    expect((await response).status).toBe(204);
    expect(batches, 'appended as encoded batches').toBeDefined();
    const onWorkers = recordsByPartition(batches!);
    // The same request decoded and encoded here, for the same layout (4 partitions).
    const expected = new HeldProducer(['prometheus_samples']);
    const layout = expected.layout('prometheus_samples')!;
    const here = recordsByPartition(encodeForPartitions('prometheus_samples', decodeWriteRequestV1(request, null).columns, layout, T0));
    expect(onWorkers).toEqual(here);
    expect([...onWorkers.values()].flat()).toHaveLength(300);
    expect(onWorkers.size, 'series spread over the partitions').toBe(4);
  });

  it('keep serving after a bad request, and answer requests of many connections at once', async () => {
    const { producer, url } = await start();
    producer.autoResolve = true;
    expect((await postRemoteWrite(url, snappy(Buffer.from([0x0a, 0x7f, 0x01])))).status).toBe(400);
    const answers = await Promise.all(Array.from({ length: 16 }, () => postRemoteWrite(url, body(20))));
    expect(answers.map((a) => a.status)).toEqual(Array(16).fill(204));
  });
});

describe('content negotiation', () => {
  const negotiated = (contentType: string | undefined, encoding: string | null = 'snappy') => {
    try {
      return negotiate({ 'content-type': contentType, 'content-encoding': encoding ?? undefined });
    } catch (err) {
      return (err as InvalidWriteError).status;
    }
  };
  it('picks the message from the proto= parameter', () => {
    expect(negotiated('application/x-protobuf')).toBe('1.0');
    expect(negotiated('application/x-protobuf;proto=prometheus.WriteRequest')).toBe('1.0');
    expect(negotiated('application/x-protobuf; proto=io.prometheus.write.v2.Request')).toBe('2.0');
    expect(negotiated('Application/X-Protobuf; charset=binary; proto="io.prometheus.write.v2.Request"')).toBe('2.0');
    expect(negotiated(undefined)).toBe(415);
    expect(negotiated('application/x-protobuf', null)).toBe(415);
    expect(negotiated('application/x-protobuf', 'identity')).toBe(415);
  });
});
