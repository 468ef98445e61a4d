// Durability: an idempotent acks=all producer (librdkafka) keeps producing while the broker is
// killed with SIGKILL and restarted on the same data directory. Every message the broker
// acknowledged is readable afterwards, at the offset it was acknowledged with, and no message
// is stored twice.

import { afterAll, beforeAll, describe, it } from 'vitest';
import { printBrokerLogsOnFailure, startBroker } from '../helpers/broker.ts';
import type { Broker } from '../helpers/broker.ts';
import { expectEveryAckStoredOnce, startProduceLoad, waitIntoLoad } from '../helpers/durability.ts';

const TOPIC = 'durability';
const MESSAGE_COUNT = 40_000;
const RATE_PER_SECOND = 8_000;
const KILL_AFTER_MS = 3_000;

printBrokerLogsOnFailure();

describe('durability across SIGKILL', () => {
  let broker: Broker;

  beforeAll(async () => {
    broker = await startBroker({ name: 'durability-broker', env: { WHARF_NUM_PARTITIONS: '4' } });
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('every acknowledged message survives a kill -9 of the broker, and none is stored twice', async () => {
    const load = startProduceLoad({
      bootstrap: broker.bootstrap, topic: TOPIC, count: MESSAGE_COUNT, ratePerSecond: RATE_PER_SECOND, timeoutMs: 150_000,
    });

    // Let the load run for a while, then kill the broker in the middle of it.
    await waitIntoLoad(load, KILL_AFTER_MS);
    const ackedBeforeKill = load.acked.size;
    await broker.kill('SIGKILL');
    const killedAt = Date.now();
    await broker.restart();
    const restartedAfterMs = Date.now() - killedAt;

    const result = await load.producer.done;
    console.log(
      `durability: ${ackedBeforeKill} of ${MESSAGE_COUNT} messages acknowledged before the SIGKILL; ` +
        `broker ready again ${restartedAfterMs} ms after it; producer done after ${Date.now() - load.startedAt} ms`,
    );
    await expectEveryAckStoredOnce(load, {
      bootstrap: broker.bootstrap, result, ackedBeforeKill, restartedAfterMs, consumeTimeoutMs: 120_000,
    });
  }, 240_000);
});
