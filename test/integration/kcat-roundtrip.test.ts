// kcat (librdkafka) writes 100,000 messages of mixed sizes, with keys and headers, into a
// 4-partition topic from four concurrent producers; a second kcat reads the topic back and
// every partition holds exactly the messages sent to it, in the order they were sent.

import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { printBrokerLogsOnFailure, startBroker } from '../helpers/broker.ts';
import type { Broker } from '../helpers/broker.ts';
import { kafkajsClient, runKcat } from '../helpers/kafka.ts';

const TOPIC = 'kcat-roundtrip';
const PARTITIONS = 4;
const PRODUCERS = 4;
const MESSAGES_PER_PRODUCER = 25_000;
const KEYS_PER_PRODUCER = 250;
const MIN_SIZE_BYTES = 10;
const MAX_SIZE_BYTES = 10 * 1024;

printBrokerLogsOnFailure();

// ----- The messages: a pure function of (producer, index), regenerated to check the output. -----
//
// Input line for kcat -P -K ':'   `<key>:<payload>\n`
//   key     = `p<producer>-k<index % KEYS_PER_PRODUCER>`           (no ':')
//   payload = `m<producer>-<index>|` + alphanumeric filler, 10 B .. 10 KiB, skewed to small
// Headers (kcat -H applies to every message of one kcat run): run=<producer>, source=kcat-roundtrip

const FILLER = (() => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let state = 12345;
  let text = '';
  for (let i = 0; i < MAX_SIZE_BYTES + 2048; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    text += alphabet[state % alphabet.length];
  }
  return text;
})();

/** A deterministic value in [0, 1) for (producer, index). */
function unitRandom(producer: number, index: number): number {
  let x = (producer * 0x9e3779b1 + index * 0x85ebca6b + 0x27d4eb2f) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return (x >>> 0) / 2 ** 32;
}

function keyOf(producer: number, index: number): string {
  return `p${producer}-k${index % KEYS_PER_PRODUCER}`;
}

function payloadOf(producer: number, index: number): string {
  const prefix = `m${producer}-${index}|`;
  const u = unitRandom(producer, index);
  // u² skews sizes towards the small end: mean about 800 B, maximum 10 KiB.
  const size = Math.max(prefix.length, Math.min(MAX_SIZE_BYTES, Math.floor(MIN_SIZE_BYTES * 1024 ** (u * u))));
  const start = (index * 31) % 2048;
  return prefix + FILLER.slice(start, start + size - prefix.length);
}

function headersOf(producer: number): string {
  return `run=${producer},source=kcat-roundtrip`;
}

/** librdkafka's default partitioner (consistent_random) for a non-empty key: CRC-32(key) % n. */
function partitionOf(key: string): number {
  return crc32(Buffer.from(key)) % PARTITIONS;
}

function producerInput(producer: number): string {
  const lines: string[] = [];
  for (let i = 0; i < MESSAGES_PER_PRODUCER; i++) lines.push(`${keyOf(producer, i)}:${payloadOf(producer, i)}\n`);
  return lines.join('');
}

describe('kcat round trip', () => {
  let broker: Broker;

  beforeAll(async () => {
    broker = await startBroker({ name: 'kcat-broker' });
    const admin = kafkajsClient(broker.bootstrap).admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true });
      const metadata = await admin.fetchTopicMetadata({ topics: [TOPIC] });
      expect(metadata.topics[0]!.partitions).toHaveLength(PARTITIONS);
    } finally {
      await admin.disconnect();
    }
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('reads back exactly the 100,000 messages kcat produced, in order, per partition', async () => {
    // Four kcat producers at once, each with its own keys and its own headers.
    const inputs = Array.from({ length: PRODUCERS }, (_, producer) => producerInput(producer));
    const inputBytes = inputs.reduce((sum, input) => sum + input.length, 0);
    const produceStartedAt = Date.now();
    await Promise.all(
      Array.from({ length: PRODUCERS }, (_, producer) =>
        runKcat(
          [
            '-P',
            '-b', broker.bootstrap,
            '-t', TOPIC,
            '-K', ':',
            '-H', `run=${producer}`,
            '-H', 'source=kcat-roundtrip',
            '-X', 'acks=all',
            '-X', 'linger.ms=10',
            '-X', 'batch.num.messages=10000',
            '-X', 'queue.buffering.max.messages=200000',
            '-X', 'message.timeout.ms=60000',
          ],
          { input: inputs[producer], timeoutMs: 90_000 },
        ),
      ),
    );

    // What each partition must hold: for every producer, its messages for that partition in
    // the order it sent them. (The interleaving of different producers is up to the broker.)
    const expectedIndexes = new Map<string, number[]>(); // `${partition}/${producer}` -> indexes
    for (let producer = 0; producer < PRODUCERS; producer++) {
      for (let i = 0; i < MESSAGES_PER_PRODUCER; i++) {
        const slot = `${partitionOf(keyOf(producer, i))}/${producer}`;
        let list = expectedIndexes.get(slot);
        if (!list) expectedIndexes.set(slot, (list = []));
        list.push(i);
      }
    }
    const produceMs = Date.now() - produceStartedAt;
    const consumeStartedAt = Date.now();
    const consumedCount = new Map<string, number>();
    const nextOffset = new Map<number, number>();
    const problems: string[] = [];
    let lines = 0;
    const complain = (problem: string) => {
      if (problems.length < 20) problems.push(problem);
    };

    await runKcat(
      [
        '-C',
        '-b', broker.bootstrap,
        '-t', TOPIC,
        '-o', 'beginning',
        '-e',
        '-f', '%p\t%o\t%k\t%h\t%S\t%s\n',
        '-X', 'check.crcs=true',
        '-X', 'fetch.wait.max.ms=100',
      ],
      {
        timeoutMs: 90_000,
        onStdoutLine: (line) => {
          lines++;
          const fields = line.split('\t');
          if (fields.length !== 6) return complain(`malformed line ${lines}: ${line.slice(0, 200)}`);
          const [partitionText, offsetText, key, headers, sizeText, payload] = fields as [
            string, string, string, string, string, string,
          ];
          const partition = Number(partitionText);
          const offset = Number(offsetText);
          const expectedOffset = nextOffset.get(partition) ?? 0;
          if (offset !== expectedOffset) complain(`partition ${partition}: offset ${offset} where ${expectedOffset} was next`);
          nextOffset.set(partition, offset + 1);

          const id = /^m(\d+)-(\d+)\|/.exec(payload);
          if (!id) return complain(`partition ${partition} offset ${offset}: payload not ours: ${payload.slice(0, 80)}`);
          const producer = Number(id[1]);
          const index = Number(id[2]);
          const slot = `${partition}/${producer}`;
          const position = consumedCount.get(slot) ?? 0;
          consumedCount.set(slot, position + 1);
          const expectedIndex = expectedIndexes.get(slot)?.[position];
          if (expectedIndex !== index) {
            return complain(
              `partition ${partition} offset ${offset}: producer ${producer}'s message ${index} where its ` +
                `message ${expectedIndex ?? '(none: too many)'} was due (key ${key})`,
            );
          }
          if (key !== keyOf(producer, index)) complain(`m${producer}-${index}: key ${key}, expected ${keyOf(producer, index)}`);
          if (headers !== headersOf(producer)) complain(`m${producer}-${index}: headers ${headers}, expected ${headersOf(producer)}`);
          const expectedPayload = payloadOf(producer, index);
          if (payload !== expectedPayload || Number(sizeText) !== expectedPayload.length) {
            complain(`m${producer}-${index}: payload differs (${sizeText} bytes, expected ${expectedPayload.length})`);
          }
        },
      },
    );

    console.log(
      `kcat: ${lines} messages (${(inputBytes / 1e6).toFixed(1)} MB of input) produced in ${produceMs} ms, ` +
        `read back in ${Date.now() - consumeStartedAt} ms`,
    );
    expect(problems).toEqual([]);
    for (const [slot, indexes] of expectedIndexes) {
      expect(consumedCount.get(slot) ?? 0, `messages read back for partition/producer ${slot}`).toBe(indexes.length);
    }
    expect(lines).toBe(PRODUCERS * MESSAGES_PER_PRODUCER);
    // Every partition got some of the keys, so the test covered all four.
    expect([...nextOffset.keys()].sort()).toEqual([0, 1, 2, 3]);
  }, 180_000);
});
