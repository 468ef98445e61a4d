// Reading OTLP topics back for the integration tests (test/integration/otlp-*.test.ts): every
// record of a topic up to its current end, through the Kafka protocol (kafkajs), and kcat
// output of raw values.

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { kafkajsClient, waitFor } from '../../helpers/kafka.ts';

export interface TopicRecord {
  partition: number;
  offset: number;
  key: Buffer | null;
  value: Buffer;
  timestampMs: number;
}

/** Every record of `topic` from the beginning to the end offsets as of the call; [] when the topic does not exist. */
export async function readTopic(bootstrap: string, topic: string, timeoutMs = 30_000): Promise<TopicRecord[]> {
  const kafka = kafkajsClient(bootstrap);
  const admin = kafka.admin();
  await admin.connect();
  let ends: Map<number, number>;
  try {
    const topics = await admin.listTopics();
    if (!topics.includes(topic)) return [];
    const offsets = await admin.fetchTopicOffsets(topic);
    ends = new Map(offsets.map((o) => [o.partition, Number(o.high)]));
  } finally {
    await admin.disconnect();
  }
  const total = [...ends.values()].reduce((a, b) => a + b, 0);
  const records: TopicRecord[] = [];
  if (total === 0) return records;
  const consumer = kafka.consumer({ groupId: `otlp-test-${randomUUID()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (Number(message.offset) >= (ends.get(partition) ?? 0)) return;
        records.push({
          partition,
          offset: Number(message.offset),
          key: message.key,
          value: message.value ?? Buffer.alloc(0),
          timestampMs: Number(message.timestamp),
        });
      },
    });
    await waitFor(`${total} records of ${topic}`, () => records.length >= total, timeoutMs);
  } finally {
    await consumer.disconnect();
  }
  return records;
}

/** Total records of a topic (sum of end offsets); 0 when it does not exist. */
export async function topicRecordCount(bootstrap: string, topic: string): Promise<number> {
  const admin = kafkajsClient(bootstrap).admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(topic)) return 0;
    return (await admin.fetchTopicOffsets(topic)).reduce((n, o) => n + Number(o.high), 0);
  } finally {
    await admin.disconnect();
  }
}

/** The values of every record of a topic as kcat prints them with `-f '%R%s'` (length-prefixed raw bytes). */
export async function kcatValues(bootstrap: string, topic: string): Promise<Buffer[]> {
  const stdout = await new Promise<Buffer>((resolve, reject) => {
    execFile('kcat', ['-C', '-b', bootstrap, '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%R%s'],
      { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024, timeout: 60_000 },
      (err, out, errOut) => (err ? reject(new Error(`kcat failed: ${err.message}\n${errOut.toString()}`)) : resolve(out)));
  });
  const values: Buffer[] = [];
  for (let pos = 0; pos < stdout.length;) {
    const len = stdout.readInt32BE(pos);
    pos += 4;
    values.push(stdout.subarray(pos, pos + len));
    pos += len;
  }
  return values;
}

/** kcat's view of the keys of a topic, one per line (`-f '%k\n'`). */
export async function kcatKeys(bootstrap: string, topic: string): Promise<string[]> {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile('kcat', ['-C', '-b', bootstrap, '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%k\\n'],
      { timeout: 60_000 }, (err, out, errOut) => (err ? reject(new Error(`kcat failed: ${err.message}\n${errOut}`)) : resolve(out)));
  });
  return stdout.split('\n').filter((line) => line.length > 0);
}
