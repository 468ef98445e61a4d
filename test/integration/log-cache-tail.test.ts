import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kafka, logLevel } from 'kafkajs';
import { Broker } from '../../src/broker/broker.ts';
import type { WharfConfig } from '../../src/config/config.ts';
import { register } from '../../src/metrics/registry.ts';
import { inProcessBrokerConfig } from '../helpers/broker.ts';

// The log cache copies batches into slabs it reuses once their batches are evicted and the
// responses that point into them are written. Through a cache far smaller than the data, a
// consumer tailing a producer with real clients gets every record intact, and the cache's memory
// stays bounded. (When exactly a response releases its slabs is checked in connection.test.ts.)

const MiB = 1024 * 1024;
const TOPIC = 'tail-through-small-cache';
const PARTITIONS = 4;
const RECORDS = 24_000; // about 48 MiB through a 4 MiB cache

function valueOf(partition: number, i: number): string {
  const digest = createHash('sha256').update(`${partition}/${i}`).digest('hex');
  return `${partition}/${i}/${digest.repeat(31)}`; // about 2 KiB, different in every byte run
}

describe('tailing through a small log cache', () => {
  let broker: Broker | undefined;
  let dataDir: string;
  let config: WharfConfig;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-tail-cache-'));
    config = await inProcessBrokerConfig(dataDir, { logCacheSizeBytes: 4 * MiB, uploadIntervalMs: 100, uploadSizeBytes: 1 * MiB });
    broker = new Broker(config);
    await broker.start();
  });

  afterAll(async () => {
    await broker?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('serves every record intact to a consumer tailing the producer', { timeout: 90_000 }, async () => {
    const kafka = new Kafka({ brokers: [`127.0.0.1:${config.kafkaPort}`], logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true });
    await admin.disconnect();

    const seen = Array.from({ length: PARTITIONS }, () => [] as string[]);
    let wrong = 0;
    const consumer = kafka.consumer({ groupId: 'tail-reader', maxBytes: 2 * MiB, maxWaitTimeInMs: 50 });
    await consumer.connect();
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const i = seen[partition]!.length;
        const value = message.value!.toString();
        if (Number(message.offset) !== i || value !== valueOf(partition, i)) wrong++;
        seen[partition]!.push(value);
      },
    });

    let maxMemoryBytes = 0;
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    const perPartition = RECORDS / PARTITIONS;
    for (let i = 0; i < perPartition; i += 100) {
      await producer.send({
        topic: TOPIC,
        acks: -1,
        messages: Array.from({ length: PARTITIONS * 100 }, (_, k) => ({
          partition: k % PARTITIONS,
          value: valueOf(k % PARTITIONS, i + Math.floor(k / PARTITIONS)),
        })),
      });
      const memory = (await register.getSingleMetric('wharf_log_cache_memory_bytes')!.get()).values[0]!.value;
      maxMemoryBytes = Math.max(maxMemoryBytes, memory);
    }
    await producer.disconnect();

    const deadline = Date.now() + 60_000;
    while (seen.some((s) => s.length < perPartition) && Date.now() < deadline) await sleep(100);
    await consumer.disconnect();

    expect(seen.map((s) => s.length)).toEqual(Array(PARTITIONS).fill(perPartition));
    expect(wrong).toBe(0);
    // The slabs were reused rather than the cache growing with the data.
    expect(maxMemoryBytes).toBeLessThanOrEqual(config.logCacheSizeBytes * 1.25 + 2 * MiB);
  });
});
