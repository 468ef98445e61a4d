// Objects: once data is uploaded (POST /admin/flush), the broker can lose its whole WAL and
// still serve every old offset from the object store alone — with the local directory store
// and with S3 (s3rver on loopback through @aws-sdk/client-s3).

import { existsSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { printBrokerLogsOnFailure, startBroker } from '../helpers/broker.ts';
import type { Broker } from '../helpers/broker.ts';
import { kafkajsClient, runKcat } from '../helpers/kafka.ts';
import { s3BrokerEnv, startS3rver } from '../helpers/s3rver.ts';
import type { S3rverHandle } from '../helpers/s3rver.ts';

const TOPIC = 'archive';
const PARTITIONS = 3;
const MESSAGE_COUNT = 9_000;
const PER_PARTITION = MESSAGE_COUNT / PARTITIONS;

printBrokerLogsOnFailure();

const FILLER = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.repeat(60);

/** Message i: partition i % 3, key k<i>, header n=<i>, a printable value of 100..3000 bytes. */
function valueOf(i: number): string {
  const prefix = `v${i}:`;
  return prefix + FILLER.slice(i % 61, (i % 61) + 100 + ((i * 37) % 2900) - prefix.length);
}

async function produceAll(broker: Broker): Promise<number> {
  const kafka = kafkajsClient(broker.bootstrap);
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true });
  await admin.disconnect();
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  let valueBytes = 0;
  try {
    for (let start = 0; start < MESSAGE_COUNT; start += 500) {
      const messages = [];
      for (let i = start; i < start + 500; i++) {
        const value = valueOf(i);
        valueBytes += value.length;
        messages.push({ partition: i % PARTITIONS, key: `k${i}`, value, headers: { n: String(i) } });
      }
      await producer.send({ topic: TOPIC, acks: -1, messages });
    }
  } finally {
    await producer.disconnect();
  }
  return valueBytes;
}

async function endOffsets(broker: Broker): Promise<number[]> {
  const admin = kafkajsClient(broker.bootstrap).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(TOPIC);
    return offsets.sort((a, b) => a.partition - b.partition).map((o) => Number(o.high));
  } finally {
    await admin.disconnect();
  }
}

/** Reads the whole topic with kcat and checks every partition holds exactly what was produced. */
async function expectAllMessagesServed(broker: Broker): Promise<void> {
  const nextOffset = [0, 0, 0];
  const problems: string[] = [];
  let lines = 0;
  await runKcat(
    ['-C', '-b', broker.bootstrap, '-t', TOPIC, '-o', 'beginning', '-e', '-f', '%p\t%o\t%k\t%h\t%s\n', '-X', 'check.crcs=true'],
    {
      timeoutMs: 60_000,
      onStdoutLine: (line) => {
        lines++;
        const [partitionText, offsetText, key, headers, value] = line.split('\t');
        const partition = Number(partitionText);
        const offset = Number(offsetText);
        const i = offset * PARTITIONS + partition; // message i went to partition i % 3 at offset i / 3
        const expected = `${partition}\t${nextOffset[partition]}\tk${i}\tn=${i}\t${valueOf(i)}`;
        if (offset !== nextOffset[partition] || `${partitionText}\t${offsetText}\t${key}\t${headers}\t${value}` !== expected) {
          if (problems.length < 10) problems.push(`got ${line.slice(0, 120)}... expected ${expected.slice(0, 120)}...`);
        }
        nextOffset[partition] = offset + 1;
      },
    },
  );
  expect(problems).toEqual([]);
  expect(nextOffset).toEqual([PER_PARTITION, PER_PARTITION, PER_PARTITION]);
  expect(lines).toBe(MESSAGE_COUNT);
}

async function filesUnder(dir: string): Promise<Array<{ path: string; sizeBytes: number }>> {
  if (!existsSync(dir)) return [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  return Promise.all(files.map(async (path) => ({ path, sizeBytes: (await stat(path)).size })));
}

async function listBucket(s3: S3rverHandle): Promise<Array<{ key: string; sizeBytes: number }>> {
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    const objects: Array<{ key: string; sizeBytes: number }> = [];
    let continuationToken: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: s3.bucket, ContinuationToken: continuationToken }),
      );
      for (const o of page.Contents ?? []) objects.push({ key: o.Key ?? '', sizeBytes: o.Size ?? 0 });
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken);
    return objects;
  } finally {
    client.destroy();
  }
}

/**
 * Produce, upload, kill -9, delete the WAL, restart: the broker serves every old offset from
 * objects, its partitions end where they ended, and new data continues after them.
 */
async function restartFromObjectsAlone(broker: Broker, expectObjectsHold: (valueBytes: number) => Promise<void>) {
  const valueBytes = await produceAll(broker);
  expect(await endOffsets(broker)).toEqual([PER_PARTITION, PER_PARTITION, PER_PARTITION]);

  await broker.flush();
  await broker.kill('SIGKILL');
  const walDir = join(broker.dataDir, 'wal');
  expect(existsSync(walDir), `${walDir} exists`).toBe(true);
  await rm(walDir, { recursive: true, force: true });
  await expectObjectsHold(valueBytes);

  await broker.restart();
  expect(await endOffsets(broker)).toEqual([PER_PARTITION, PER_PARTITION, PER_PARTITION]);
  await expectAllMessagesServed(broker);

  // New data goes after the old, not over it.
  const producer = kafkajsClient(broker.bootstrap).producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    const [result] = await producer.send({ topic: TOPIC, acks: -1, messages: [{ partition: 0, value: 'after restart' }] });
    expect(result?.baseOffset).toBe(String(PER_PARTITION));
  } finally {
    await producer.disconnect();
  }
}

describe('restart from objects alone', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('with the local directory store, serves old offsets after the WAL is deleted', async () => {
    const broker = await startBroker({
      name: 'local-objects-broker',
      env: { WHARF_OBJECT_STORE: 'local', WHARF_UPLOAD_INTERVAL_MS: '600000' },
    });
    cleanups.push(() => broker.stop());
    await restartFromObjectsAlone(broker, async (valueBytes) => {
      const objects = await filesUnder(join(broker.dataDir, 'objects'));
      expect(objects.length, 'files in <data>/objects').toBeGreaterThan(0);
      expect(objects.reduce((sum, o) => sum + o.sizeBytes, 0)).toBeGreaterThanOrEqual(valueBytes);
    });
  }, 120_000);

  it('with S3 (s3rver), serves old offsets after the WAL is deleted', async () => {
    const s3 = await startS3rver({ bucket: 'wharf-objects-test' });
    cleanups.push(() => s3.stop());
    const broker = await startBroker({
      name: 's3-objects-broker',
      env: {
        ...s3BrokerEnv(s3),
        WHARF_UPLOAD_INTERVAL_MS: '600000',
      },
    });
    cleanups.push(() => broker.stop());
    await restartFromObjectsAlone(broker, async (valueBytes) => {
      const objects = await listBucket(s3);
      expect(objects.length, `objects in bucket ${s3.bucket}`).toBeGreaterThan(0);
      expect(objects.reduce((sum, o) => sum + o.sizeBytes, 0)).toBeGreaterThanOrEqual(valueBytes);
    });
  }, 120_000);
});
