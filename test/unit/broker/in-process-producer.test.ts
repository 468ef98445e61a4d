import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logLevel } from 'kafkajs';
import { Kafka } from 'kafkajs';
import { Broker } from '../../../src/broker/broker.ts';
import { encodeForPartitions } from '../../../src/broker/in-process-producer.ts';
import { RecordColumns } from '../../../src/protocol/record-encoder.ts';
import { inProcessBrokerConfig } from '../../helpers/broker.ts';

// The in-process producer is what connectors write with: records must come out of the Kafka
// protocol as a Kafka client wrote them, keyed records in the partition the Java client (and
// kafkajs's default partitioner, murmur2 too) would choose.
describe('the in-process producer', () => {
  let broker: Broker;
  let dataDir: string;
  let kafka: Kafka;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-producer-'));
    const config = await inProcessBrokerConfig(dataDir);
    broker = new Broker(config);
    await broker.start();
    kafka = new Kafka({ brokers: [`127.0.0.1:${config.kafkaPort}`], logLevel: logLevel.NOTHING });
  });

  afterAll(async () => {
    await broker?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('writes keyed records to the partition kafkajs picks for the same key, readable by a consumer', async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `trace-${i}`);
    const result = await broker.producer!.send('inproc', keys.map((k, i) => ({
      key: Buffer.from(k),
      value: Buffer.from(`value-${i}`),
      headers: [{ key: 'h', value: Buffer.from(String(i)) }],
      timestampMs: 1_700_000_000_000 + i,
    })), { partitions: 4 });
    expect(result.appends.reduce((n, a) => n + a.recordCount, 0)).toBe(40);

    // The same keys through kafkajs's default (murmur2) partitioner.
    const producer = kafka.producer();
    await producer.connect();
    const sent = await producer.send({ topic: 'inproc', messages: keys.map((k) => ({ key: k, value: 'again' })) });
    await producer.disconnect();
    expect(sent.length).toBeGreaterThan(0);

    const consumer = kafka.consumer({ groupId: 'inproc-reader' });
    await consumer.connect();
    await consumer.subscribe({ topic: 'inproc', fromBeginning: true });
    const seen: { partition: number; key: string; value: string; header: string | undefined; timestamp: string }[] = [];
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        seen.push({
          partition,
          key: message.key!.toString(),
          value: message.value!.toString(),
          header: message.headers?.h?.toString(),
          timestamp: message.timestamp,
        });
      },
    });
    const deadline = Date.now() + 30_000;
    while (seen.length < 80 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await consumer.disconnect();
    expect(seen).toHaveLength(80);
    for (const [i, key] of keys.entries()) {
      const mine = seen.find((m) => m.key === key && m.value === `value-${i}`)!;
      const theirs = seen.find((m) => m.key === key && m.value === 'again')!;
      expect(mine.partition).toBe(theirs.partition);
      expect(mine.header).toBe(String(i));
      expect(mine.timestamp).toBe(String(1_700_000_000_000 + i));
    }
  });

  it('splits records that exceed max.message.bytes into several batches and refuses a record too large alone', async () => {
    const big = Buffer.alloc(300_000, 7);
    const result = await broker.producer!.send('inproc-big', Array.from({ length: 8 }, () => ({ key: null, value: big })), { partitions: 1 });
    expect(result.appends.length).toBeGreaterThan(1);
    expect(result.appends.reduce((n, a) => n + a.recordCount, 0)).toBe(8);
    await expect(broker.producer!.send('inproc-big', [{ key: null, value: Buffer.alloc(2_000_000) }])).rejects.toThrow(/max.message.bytes/);
  });

  it('frees the batches it appended once they are durable, and leaves them alone when an append fails', async () => {
    const producer = broker.producer!;
    await producer.send('inproc-free', [{ key: null, value: Buffer.from('create') }], { partitions: 2 });
    const layout = producer.layout('inproc-free')!;
    const records = RecordColumns.of(Array.from({ length: 200 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.alloc(100, i) })));
    const batches = encodeForPartitions('inproc-free', records, layout, Date.now());
    expect(batches.length).toBe(2);
    expect(batches.every((b) => b.batch.byteOffset === 0 && b.batch.length === b.batch.buffer.byteLength)).toBe(true);
    const copies = batches.map((b) => Buffer.from(b.batch));
    const result = await producer.appendBatches('inproc-free', batches);
    for (const b of batches) expect((b.batch.buffer as ArrayBuffer).detached).toBe(true);

    // What was freed had been stored: the same bytes are served from the log.
    const kafkaConsumer = kafka.consumer({ groupId: 'inproc-free-reader' });
    await kafkaConsumer.connect();
    await kafkaConsumer.subscribe({ topic: 'inproc-free', fromBeginning: true });
    let values = 0;
    await kafkaConsumer.run({ eachMessage: async ({ message }) => { if (message.value!.length === 100) values++; } });
    const deadline = Date.now() + 30_000;
    while (values < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await kafkaConsumer.disconnect();
    expect(values).toBe(200);
    expect(result.appends.reduce((n, a) => n + a.recordCount, 0)).toBe(200);
    expect(copies.reduce((n, c) => n + c.length, 0)).toBeGreaterThan(20_000);

    // A batch for a partition that does not exist: refused, and nothing is freed.
    const again = encodeForPartitions('inproc-free', records, layout, Date.now());
    await expect(producer.appendBatches('inproc-free', [...again, { ...again[0]!, partition: 9 }])).rejects.toThrow(/partition 9/);
    for (const b of again) expect((b.batch.buffer as ArrayBuffer).detached).toBe(false);
  });
});
