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
import { expectEveryAckStoredOnce, startProduceLoad, waitIntoLoad } from '../helpers/durability.ts';
import { s3BrokerEnv, startS3rver } from '../helpers/s3rver.ts';
import type { S3rverHandle } from '../helpers/s3rver.ts';

const TOPIC = 'object-wal-durability';
const MESSAGE_COUNT = 24_000;
const RATE_PER_SECOND = 6_000;
const KILL_AFTER_MS = 2_500;

printBrokerLogsOnFailure();

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
        ...s3BrokerEnv(s3),
      },
    });
  }, 60_000);

  afterAll(async () => {
    await broker?.stop();
    await bucket?.close();
    await s3?.stop();
  });

  it('loses no acknowledged message and stores none twice; no WAL on local disk', async () => {
    const load = startProduceLoad({
      bootstrap: broker.bootstrap, topic: TOPIC, count: MESSAGE_COUNT, ratePerSecond: RATE_PER_SECOND, timeoutMs: 120_000,
    });
    await waitIntoLoad(load, KILL_AFTER_MS);
    const ackedBeforeKill = load.acked.size;
    const walObjectsBeforeKill = (await bucket.list('wal/')).length;
    const dataObjectsBeforeKill = (await bucket.list('objects/')).length;
    await broker.kill('SIGKILL');
    const killedAt = Date.now();
    expect(existsSync(join(broker.dataDir, 'wal')), 'a local WAL directory').toBe(false);
    await broker.restart();
    const restartedAfterMs = Date.now() - killedAt;

    const result = await load.producer.done;
    console.log(
      `object WAL: ${ackedBeforeKill} of ${MESSAGE_COUNT} messages acknowledged before the SIGKILL, ` +
        `${walObjectsBeforeKill} WAL objects and ${dataObjectsBeforeKill} data objects in the bucket then; ` +
        `broker ready again ${restartedAfterMs} ms after it; producer done after ${Date.now() - load.startedAt} ms`,
    );
    expect(walObjectsBeforeKill, 'WAL objects in the bucket before the kill').toBeGreaterThan(0);
    expect(broker.logs()).toMatch(/object WAL recovered/);
    await expectEveryAckStoredOnce(load, {
      bootstrap: broker.bootstrap, result, ackedBeforeKill, restartedAfterMs, consumeTimeoutMs: 60_000,
    });
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
