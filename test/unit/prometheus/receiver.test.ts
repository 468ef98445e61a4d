// The remote-write route in process, on a real HttpApi with a producer under the test's control:
// a 204 only once the produce is durable, 503 when it fails, 429 with Retry-After past the
// in-flight bound, 413/415/400 with a message, the 2.0 written-count headers, and stop().

import { afterEach, describe, expect, it } from 'vitest';
import { HttpApi } from '../../../src/broker/http-api.ts';
import type { ProducerRecord, SendResult, TopicProducer } from '../../../src/broker/in-process-producer.ts';
import { ProduceError } from '../../../src/broker/in-process-producer.ts';
import type { RecordColumns } from '../../../src/protocol/record-encoder.ts';
import { negotiate } from '../../../connectors/prometheus/receiver.ts';
import { startRemoteWrite } from '../../../connectors/prometheus/index.ts';
import { defaultConfig } from '../../../src/config/config.ts';
import type { RunningConnector } from '../../../connectors/context.ts';
import { InvalidWriteError } from '../../../connectors/prometheus/decoded-write.ts';
import { V1_HEADERS, V2_HEADERS, encodeRequestV2, encodeWriteRequest, labels, postRemoteWrite, snappy } from '../../helpers/prometheus.ts';

const T0 = 1_700_000_000_000;

interface PendingSend {
  topic: string;
  records: readonly ProducerRecord[] | RecordColumns;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** A producer whose sends wait until the test resolves or rejects them. */
class HeldProducer implements TopicProducer {
  readonly sends: PendingSend[] = [];
  autoResolve = false;
  send(topic: string, records: readonly ProducerRecord[] | RecordColumns): Promise<SendResult> {
    return new Promise((resolve, reject) => {
      const done = () => resolve({ topic, appends: [] });
      if (this.autoResolve) return done();
      this.sends.push({ topic, records, resolve: done, reject });
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

async function start(ingest: Partial<ReturnType<typeof defaultConfig>['ingest']> = {}) {
  const config = defaultConfig();
  Object.assign(config.ingest, ingest);
  const producer = new HeldProducer();
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

describe('the remote-write route', () => {
  it('answers 204 only after the produce has resolved', async () => {
    const { producer, url } = await start();
    let answered = false;
    const response = postRemoteWrite(url, body(3)).then((r) => {
      answered = true;
      return r;
    });
    await waitForSends(producer, 1);
    expect(producer.sends[0]!.topic).toBe('prometheus_samples');
    expect(producer.sends[0]!.records).toHaveLength(3);
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
