// Object WAL durability: a broker with wal.kind=object against S3 (s3rver) keeps its WAL in the
// bucket, not on local disk. An idempotent acks=all producer (librdkafka) keeps producing while
// the broker is killed with SIGKILL and restarted on the same data directory (which holds only
// the embedded metadata). Uploads are held back (a long upload interval), so what was
// acknowledged before the kill lives only in WAL objects: every acknowledged message is readable
// afterwards, at its acknowledged offset, and none is stored twice.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../src/storage/objectstore/s3.ts';
import { printBrokerLogsOnFailure, startBroker } from '../helpers/broker.ts';
import type { Broker } from '../helpers/broker.ts';
import { consumeAllWithPython, describeFailure, startPython, waitFor } from '../helpers/kafka.ts';
import { startS3rver } from '../helpers/s3rver.ts';
import type { S3rverHandle } from '../helpers/s3rver.ts';

const TOPIC = 'object-wal-durability';
const MESSAGE_COUNT = 24_000;
const RATE_PER_SECOND = 6_000;
const KILL_AFTER_MS = 2_500;

printBrokerLogsOnFailure();

/** Message i's value, as test/helpers/python/produce_load.py makes it. */
const FILLER = Buffer.from(Array.from({ length: 95 * 11 }, (_, i) => 32 + (i % 95)));
function valueOf(i: number): Buffer {
  return Buffer.concat([Buffer.from(`id=${i};`), FILLER.subarray(0, 60 + ((i * 7919) % 940))]);
}

interface Ack {
  partition: number;
  offset: number;
}

describe('object WAL durability across SIGKILL (s3rver)', () => {
  let s3: S3rverHandle;
  let bucket: S3ObjectStore;
  let broker: Broker;

  beforeAll(async () => {
    s3 = await startS3rver({ bucket: 'wharf-object-wal-test' });
    bucket = new S3ObjectStore({ ...s3, forcePathStyle: true });
    broker = await startBroker({
      name: 'object-wal-broker',
      env: {
        WHARF_NUM_PARTITIONS: '4',
        WHARF_WAL_KIND: 'object',
        WHARF_UPLOAD_INTERVAL_MS: '600000',
        WHARF_OBJECT_STORE: 's3',
        WHARF_S3_ENDPOINT: s3.endpoint,
        WHARF_S3_BUCKET: s3.bucket,
        WHARF_S3_REGION: s3.region,
        WHARF_S3_ACCESS_KEY_ID: s3.accessKeyId,
        WHARF_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
        WHARF_S3_FORCE_PATH_STYLE: 'true',
      },
    });
  }, 60_000);

  afterAll(async () => {
    await broker?.stop();
    await bucket?.close();
    await s3?.stop();
  });

  it('loses no acknowledged message and stores none twice; no WAL on local disk', async () => {
    const acked = new Map<number, Ack>();
    const failed = new Map<number, string>();
    const producerErrors: string[] = [];
    let doneLine: string | undefined;
    const startedAt = Date.now();
    const producer = startPython(
      'produce_load.py',
      [
        '--bootstrap', broker.bootstrap,
        '--topic', TOPIC,
        '--count', String(MESSAGE_COUNT),
        '--rate', String(RATE_PER_SECOND),
        '--message-timeout-ms', '60000',
      ],
      {
        timeoutMs: 120_000,
        onStdoutLine: (line) => {
          const [kind, ...rest] = line.split(' ');
          if (kind === 'A') acked.set(Number(rest[0]), { partition: Number(rest[1]), offset: Number(rest[2]) });
          else if (kind === 'F') failed.set(Number(rest[0]), rest.slice(1).join(' '));
          else if (kind === 'E') producerErrors.push(rest.join(' '));
          else if (kind === 'DONE') doneLine = line;
        },
      },
    );

    await waitFor('the first acknowledgements', () => acked.size >= 100 || producer.child.exitCode !== null, 30_000);
    const sinceStart = Date.now() - startedAt;
    if (sinceStart < KILL_AFTER_MS) await new Promise((resolveWait) => setTimeout(resolveWait, KILL_AFTER_MS - sinceStart));
    const ackedBeforeKill = acked.size;
    const walObjectsBeforeKill = (await bucket.list('wal/')).length;
    const dataObjectsBeforeKill = (await bucket.list('objects/')).length;
    await broker.kill('SIGKILL');
    const killedAt = Date.now();
    expect(existsSync(join(broker.dataDir, 'wal')), 'a local WAL directory').toBe(false);
    await broker.restart();
    const restartedAfterMs = Date.now() - killedAt;

    const result = await producer.done;
    console.log(
      `object WAL: ${ackedBeforeKill} of ${MESSAGE_COUNT} messages acknowledged before the SIGKILL, ` +
        `${walObjectsBeforeKill} WAL objects and ${dataObjectsBeforeKill} data objects in the bucket then; ` +
        `broker ready again ${restartedAfterMs} ms after it; producer done after ${Date.now() - startedAt} ms`,
    );
    const producerReport = describeFailure(result);
    expect(ackedBeforeKill, `the kill happened while the load was running\n${producerReport}`).toBeGreaterThan(0);
    expect(ackedBeforeKill, `the kill happened while the load was running\n${producerReport}`).toBeLessThan(MESSAGE_COUNT);
    expect(walObjectsBeforeKill, 'WAL objects in the bucket before the kill').toBeGreaterThan(0);
    expect(producerErrors.filter((e) => e.startsWith('FATAL')), `fatal producer errors\n${producerReport}`).toEqual([]);
    expect(broker.logs()).toMatch(/object WAL recovered/);

    const messages = await consumeAllWithPython(broker.bootstrap, [TOPIC], { timeoutMs: 60_000 });
    const stored = new Map<number, Ack[]>();
    const strangers: string[] = [];
    for (const m of messages) {
      const id = Number(m.key?.toString());
      if (!Number.isInteger(id) || id < 0 || id >= MESSAGE_COUNT || !m.value?.equals(valueOf(id))) {
        strangers.push(`${m.partition}@${m.offset}: key ${m.key?.toString()}, value ${m.value?.subarray(0, 20).toString()}`);
        continue;
      }
      const places = stored.get(id) ?? [];
      places.push({ partition: m.partition, offset: m.offset });
      stored.set(id, places);
    }
    expect(strangers.slice(0, 10), 'messages that are not what the producer sent').toEqual([]);

    const storedTwice = [...stored].filter(([, places]) => places.length > 1);
    expect(storedTwice.slice(0, 10), 'messages stored more than once').toEqual([]);

    const lost = [...acked.keys()].filter((id) => !stored.has(id));
    expect({ lost: lost.length, firstLost: lost.slice(0, 10) }, 'acknowledged messages missing after the restart').toEqual({
      lost: 0,
      firstLost: [],
    });

    const moved = [...acked].filter(([id, ack]) => {
      const place = stored.get(id)![0]!;
      return place.partition !== ack.partition || place.offset !== ack.offset;
    });
    expect(
      moved.slice(0, 10).map(([id, ack]) => ({ id, acked: ack, stored: stored.get(id)![0] })),
      'acknowledged messages stored at another offset than the acknowledged one',
    ).toEqual([]);

    expect(
      { exitCode: result.code, delivered: acked.size, failed: failed.size, firstFailures: [...failed].slice(0, 3), doneLine },
      `the producer finished all ${MESSAGE_COUNT} messages (broker back ${restartedAfterMs} ms after the kill)\n${producerReport}`,
    ).toEqual({
      exitCode: 0,
      delivered: MESSAGE_COUNT,
      failed: 0,
      firstFailures: [],
      doneLine: `DONE ${MESSAGE_COUNT} 0`,
    });
    expect(stored.size).toBe(MESSAGE_COUNT);
    expect(existsSync(join(broker.dataDir, 'wal')), 'a local WAL directory').toBe(false);
  }, 90_000);

  it('will not start with wal.kind=file while WAL objects may hold records', async () => {
    await broker.kill('SIGKILL'); // uploads are held back: the WAL objects keep the recent records
    expect((await bucket.list('wal/')).length).toBeGreaterThan(0);
    await expect(broker.restart({ env: { WHARF_WAL_KIND: 'file' } })).rejects.toThrow(/start once with wal.kind=object/);
    await broker.restart({ env: { WHARF_WAL_KIND: 'object' } });
    await broker.flush();
    expect(await bucket.list('wal/')).toEqual([]);
  }, 60_000);
});
