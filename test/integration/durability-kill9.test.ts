// Durability: an idempotent acks=all producer (librdkafka) keeps producing while the broker is
// killed with SIGKILL and restarted on the same data directory. Every message the broker
// acknowledged is readable afterwards, at the offset it was acknowledged with, and no message
// is stored twice.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { printBrokerLogsOnFailure, startBroker } from '../helpers/broker.ts';
import type { Broker } from '../helpers/broker.ts';
import { consumeAllWithPython, describeFailure, startPython, waitFor } from '../helpers/kafka.ts';

const TOPIC = 'durability';
const MESSAGE_COUNT = 40_000;
const RATE_PER_SECOND = 8_000;
const KILL_AFTER_MS = 3_000;

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

describe('durability across SIGKILL', () => {
  let broker: Broker;

  beforeAll(async () => {
    broker = await startBroker({ name: 'durability-broker', env: { WHARF_NUM_PARTITIONS: '4' } });
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('every acknowledged message survives a kill -9 of the broker, and none is stored twice', async () => {
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
        timeoutMs: 150_000,
        onStdoutLine: (line) => {
          const [kind, ...rest] = line.split(' ');
          if (kind === 'A') acked.set(Number(rest[0]), { partition: Number(rest[1]), offset: Number(rest[2]) });
          else if (kind === 'F') failed.set(Number(rest[0]), rest.slice(1).join(' '));
          else if (kind === 'E') producerErrors.push(rest.join(' '));
          else if (kind === 'DONE') doneLine = line;
        },
      },
    );

    // Let the load run for a while, then kill the broker in the middle of it.
    await waitFor('the first acknowledgements', () => acked.size >= 100 || producer.child.exitCode !== null, 30_000);
    const sinceStart = Date.now() - startedAt;
    if (sinceStart < KILL_AFTER_MS) await new Promise((resolveWait) => setTimeout(resolveWait, KILL_AFTER_MS - sinceStart));
    const ackedBeforeKill = acked.size;
    await broker.kill('SIGKILL');
    const killedAt = Date.now();
    await broker.restart();
    const restartedAfterMs = Date.now() - killedAt;

    const result = await producer.done;
    console.log(
      `durability: ${ackedBeforeKill} of ${MESSAGE_COUNT} messages acknowledged before the SIGKILL; ` +
        `broker ready again ${restartedAfterMs} ms after it; producer done after ${Date.now() - startedAt} ms`,
    );
    const producerReport = describeFailure(result);
    expect(ackedBeforeKill, `the kill happened while the load was running\n${producerReport}`).toBeGreaterThan(0);
    expect(ackedBeforeKill, `the kill happened while the load was running\n${producerReport}`).toBeLessThan(MESSAGE_COUNT);
    expect(producerErrors.filter((e) => e.startsWith('FATAL')), `fatal producer errors\n${producerReport}`).toEqual([]);

    const messages = await consumeAllWithPython(broker.bootstrap, [TOPIC], { timeoutMs: 120_000 });
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

    // With message.timeout.ms at 60 s the producer rides out the restart and delivers everything.
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
  }, 240_000);
});
