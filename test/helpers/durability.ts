// A durability check shared by the SIGKILL tests: an idempotent acks=all load from
// test/helpers/python/produce_load.py, recording each acknowledgement (id → partition, offset),
// and the verdict afterwards: every acknowledged message is stored exactly once, at the offset it
// was acknowledged with, and the producer delivered all of its messages.

import { expect } from 'vitest';
import { consumeAllWithPython, describeFailure, startPython, waitFor } from './kafka.ts';
import type { RunningProcess, RunResult } from './kafka.ts';

/** Message i's value, as test/helpers/python/produce_load.py makes it. */
const FILLER = Buffer.from(Array.from({ length: 95 * 11 }, (_, i) => 32 + (i % 95)));
export function loadValueOf(i: number): Buffer {
  return Buffer.concat([Buffer.from(`id=${i};`), FILLER.subarray(0, 60 + ((i * 7919) % 940))]);
}

export interface Ack {
  partition: number;
  offset: number;
}

export interface ProduceLoad {
  readonly topic: string;
  readonly count: number;
  readonly startedAt: number;
  readonly producer: RunningProcess;
  readonly acked: Map<number, Ack>;
  readonly failed: Map<number, string>;
  readonly producerErrors: string[];
  doneLine: string | undefined;
}

/** Starts the load: `count` messages at `ratePerSecond`, with message.timeout.ms 60 s. */
export function startProduceLoad(options: {
  bootstrap: string;
  topic: string;
  count: number;
  ratePerSecond: number;
  timeoutMs: number;
}): ProduceLoad {
  const acked = new Map<number, Ack>();
  const failed = new Map<number, string>();
  const producerErrors: string[] = [];
  const load: { doneLine: string | undefined } = { doneLine: undefined };
  const startedAt = Date.now();
  const producer = startPython(
    'produce_load.py',
    [
      '--bootstrap', options.bootstrap,
      '--topic', options.topic,
      '--count', String(options.count),
      '--rate', String(options.ratePerSecond),
      '--message-timeout-ms', '60000',
    ],
    {
      timeoutMs: options.timeoutMs,
      onStdoutLine: (line) => {
        const [kind, ...rest] = line.split(' ');
        if (kind === 'A') acked.set(Number(rest[0]), { partition: Number(rest[1]), offset: Number(rest[2]) });
        else if (kind === 'F') failed.set(Number(rest[0]), rest.slice(1).join(' '));
        else if (kind === 'E') producerErrors.push(rest.join(' '));
        else if (kind === 'DONE') load.doneLine = line;
      },
    },
  );
  return Object.assign(load, { topic: options.topic, count: options.count, startedAt, producer, acked, failed, producerErrors });
}

/** Waits until the load has been acknowledged for a while (at least killAfterMs since its start). */
export async function waitIntoLoad(load: ProduceLoad, killAfterMs: number): Promise<void> {
  await waitFor('the first acknowledgements', () => load.acked.size >= 100 || load.producer.child.exitCode !== null, 30_000);
  const sinceStart = Date.now() - load.startedAt;
  if (sinceStart < killAfterMs) await new Promise((resolveWait) => setTimeout(resolveWait, killAfterMs - sinceStart));
}

/**
 * The verdict once the producer has finished (`result`): the kill fell inside the load, no fatal
 * producer error, every acknowledged message stored once at its acknowledged offset, nothing
 * foreign stored, and all `count` messages delivered.
 */
export async function expectEveryAckStoredOnce(load: ProduceLoad, options: {
  bootstrap: string;
  result: RunResult;
  ackedBeforeKill: number;
  restartedAfterMs: number;
  consumeTimeoutMs: number;
}): Promise<void> {
  const { acked, failed, count } = load;
  const producerReport = describeFailure(options.result);
  expect(options.ackedBeforeKill, `the kill happened while the load was running\n${producerReport}`).toBeGreaterThan(0);
  expect(options.ackedBeforeKill, `the kill happened while the load was running\n${producerReport}`).toBeLessThan(count);
  expect(load.producerErrors.filter((e) => e.startsWith('FATAL')), `fatal producer errors\n${producerReport}`).toEqual([]);

  const messages = await consumeAllWithPython(options.bootstrap, [load.topic], { timeoutMs: options.consumeTimeoutMs });
  const stored = new Map<number, Ack[]>();
  const strangers: string[] = [];
  for (const m of messages) {
    const id = Number(m.key?.toString());
    if (!Number.isInteger(id) || id < 0 || id >= count || !m.value?.equals(loadValueOf(id))) {
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
    { exitCode: options.result.code, delivered: acked.size, failed: failed.size, firstFailures: [...failed].slice(0, 3), doneLine: load.doneLine },
    `the producer finished all ${count} messages (broker back ${options.restartedAfterMs} ms after the kill)\n${producerReport}`,
  ).toEqual({
    exitCode: 0,
    delivered: count,
    failed: 0,
    firstFailures: [],
    doneLine: `DONE ${count} 0`,
  });
  expect(stored.size).toBe(count);
}
