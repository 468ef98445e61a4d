// confluent-kafka-python (librdkafka) produces with enable.idempotence=true, acks=all and each
// compression codec in turn; a Python consumer reads every message back intact, and the broker
// keeps the batches compressed as the producer sent them.

import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { printBrokerLogsOnFailure, startBroker } from '../helpers/broker.ts';
import type { Broker } from '../helpers/broker.ts';
import { consumeAllWithPython, runPython } from '../helpers/kafka.ts';
import { batchCompression, fetchAllBatches } from '../helpers/wire.ts';

const CODECS = ['gzip', 'snappy', 'lz4', 'zstd'] as const;
type Codec = (typeof CODECS)[number];
/** Record batch attribute bits 0-2. */
const CODEC_IDS: Record<Codec, number> = { gzip: 1, snappy: 2, lz4: 3, zstd: 4 };
const MESSAGES_PER_CODEC = 5_000;
const PARTITIONS = 3;
const TOPIC_PREFIX = 'compressed';

printBrokerLogsOnFailure();

/** The value of message i of a codec, exactly as test/helpers/python/produce_compressed.py makes it. */
function valueOf(codec: Codec, i: number): Buffer {
  const digest = createHash('sha256').update(`${codec}:${i}`).digest();
  const text = Buffer.from(`${codec}:${i}:${digest.toString('hex')}`);
  return Buffer.concat([...Array.from({ length: 1 + (i % 20) }, () => text), digest.subarray(0, i % 33)]);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

interface ProduceSummary {
  codec: string;
  topic: string;
  delivered: number;
  failed: number;
  errors: string[];
}

describe('confluent-kafka-python with compression', () => {
  let broker: Broker;

  beforeAll(async () => {
    // Topics are auto-created by the producer's metadata request, with 3 partitions.
    broker = await startBroker({ name: 'compression-broker', env: { WHARF_NUM_PARTITIONS: String(PARTITIONS) } });
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('an idempotent acks=all producer using gzip, snappy, lz4 and zstd has every message read back intact', async () => {
    const produced = await runPython(
      'produce_compressed.py',
      ['--bootstrap', broker.bootstrap, '--topic-prefix', TOPIC_PREFIX, '--count', String(MESSAGES_PER_CODEC), ...CODECS],
      { timeoutMs: 150_000 },
    );
    const summaries = produced.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as ProduceSummary);
    expect(summaries.map((s) => [s.codec, s.delivered, s.failed, s.errors])).toEqual(
      CODECS.map((codec) => [codec, MESSAGES_PER_CODEC, 0, []]),
    );

    const topics = CODECS.map((codec) => `${TOPIC_PREFIX}-${codec}`);
    const messages = await consumeAllWithPython(broker.bootstrap, topics, { timeoutMs: 120_000 });

    for (const codec of CODECS) {
      const topic = `${TOPIC_PREFIX}-${codec}`;
      const ofTopic = messages.filter((m) => m.topic === topic);
      const seen = new Map<number, number>(); // message index -> times read
      const problems: string[] = [];
      for (const m of ofTopic) {
        const key = m.key?.toString() ?? '(null)';
        const index = Number(/^[a-z0-9]+-(\d+)$/.exec(key)?.[1] ?? NaN);
        if (!Number.isInteger(index) || !key.startsWith(`${codec}-`)) {
          problems.push(`${topic}/${m.partition}@${m.offset}: unexpected key ${key}`);
          continue;
        }
        seen.set(index, (seen.get(index) ?? 0) + 1);
        const expected = valueOf(codec, index);
        if (m.value === null || sha256(m.value) !== sha256(expected)) {
          problems.push(`${topic}/${m.partition}@${m.offset}: value of ${key} differs (${m.value?.length ?? 'null'} bytes, expected ${expected.length})`);
        }
        const headers = m.headers.map(([name, value]) => `${name}=${value?.toString() ?? 'null'}`).join(',');
        if (headers !== `codec=${codec},i=${index}`) problems.push(`${topic}: headers of ${key} are ${headers}`);
        if (problems.length > 20) break;
      }
      expect(problems, `${codec}: damaged messages`).toEqual([]);
      const missing = Array.from({ length: MESSAGES_PER_CODEC }, (_, i) => i).filter((i) => !seen.has(i));
      const twice = [...seen].filter(([, times]) => times > 1).map(([i]) => i);
      expect({ missing: missing.slice(0, 20), twice: twice.slice(0, 20) }, `${codec}: missing or repeated messages`).toEqual({
        missing: [],
        twice: [],
      });
      expect(ofTopic).toHaveLength(MESSAGES_PER_CODEC);
    }
  }, 300_000);

  it('stores and serves the batches compressed with the codec the producer used', async () => {
    // Runs after the test above (same file, sequential): the topics are full.
    for (const codec of CODECS) {
      const topic = `${TOPIC_PREFIX}-${codec}`;
      const codecsSeen = new Set<number>();
      let batches = 0;
      for (let partition = 0; partition < PARTITIONS; partition++) {
        const fetched = await fetchAllBatches(broker.kafkaPort, topic, partition);
        for (const batch of fetched.batches) codecsSeen.add(batchCompression(batch));
        batches += fetched.batches.length;
      }
      expect(batches, `${topic} has batches`).toBeGreaterThan(0);
      expect(
        [...codecsSeen],
        `compression of the stored ${topic} batches (0 = none: librdkafka silently sends gzip, snappy ` +
          'and lz4 uncompressed when the broker does not advertise Produce and Fetch from version 0)',
      ).toEqual([CODEC_IDS[codec]]);
    }
  }, 60_000);
});
