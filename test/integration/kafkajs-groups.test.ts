// kafkajs: a consumer group of two members splits a 4-partition topic, commits its offsets,
// stops, and after a restart resumes right after the committed offsets: across both runs
// every produced message is consumed exactly once.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import { printBrokerLogsOnFailure, startBroker } from '../helpers/broker.ts';
import type { Broker } from '../helpers/broker.ts';
import { kafkajsClient, waitFor } from '../helpers/kafka.ts';

const TOPIC = 'orders';
const GROUP = 'order-processors';
const PARTITIONS = 4;
const MESSAGES_PER_PHASE = 2_000;
const PER_PARTITION = MESSAGES_PER_PHASE / PARTITIONS;

printBrokerLogsOnFailure();

interface Received {
  member: string;
  partition: number;
  offset: number;
  value: string;
}

interface Member {
  name: string;
  consumer: Consumer;
  /** The partitions of TOPIC in this member's latest assignment. */
  assignment: number[];
  received: Received[];
  crash: Error | undefined;
}

async function startMember(kafka: Kafka, name: string): Promise<Member> {
  const consumer = kafka.consumer({
    groupId: GROUP,
    sessionTimeout: 10_000,
    rebalanceTimeout: 10_000,
    heartbeatInterval: 300,
    maxWaitTimeInMs: 250,
  });
  const member: Member = { name, consumer, assignment: [], received: [], crash: undefined };
  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    member.assignment = [...(event.payload.memberAssignment[TOPIC] ?? [])].sort();
  });
  consumer.on(consumer.events.CRASH, (event) => {
    member.crash = event.payload.error;
  });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  await consumer.run({
    // autoCommit (the default): kafkajs commits the offsets of each batch after processing it.
    eachMessage: async ({ partition, message }) => {
      member.received.push({ member: name, partition, offset: Number(message.offset), value: message.value!.toString() });
    },
  });
  return member;
}

async function startGroup(kafka: Kafka): Promise<Member[]> {
  const members = await Promise.all([startMember(kafka, 'member-a'), startMember(kafka, 'member-b')]);
  await waitFor(
    'both members to hold two disjoint, non-empty halves of the 4 partitions',
    () => {
      for (const m of members) if (m.crash) throw new Error(`${m.name} crashed: ${m.crash.message}`);
      const [a, b] = members as [Member, Member];
      const union = [...a.assignment, ...b.assignment].sort();
      return a.assignment.length > 0 && b.assignment.length > 0 && union.join() === '0,1,2,3';
    },
    30_000,
  );
  return members;
}

async function produce(kafka: Kafka, phase: number): Promise<string[]> {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const values: string[] = [];
  try {
    for (let start = 0; start < MESSAGES_PER_PHASE; start += 200) {
      const messages = [];
      for (let i = start; i < start + 200; i++) {
        const value = `phase${phase}-${i}`;
        values.push(value);
        messages.push({ key: `customer-${i % 37}`, value, partition: i % PARTITIONS });
      }
      await producer.send({ topic: TOPIC, acks: -1, messages });
    }
  } finally {
    await producer.disconnect();
  }
  return values;
}

async function committedOffsets(admin: Admin): Promise<Map<number, number>> {
  const [topic] = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] });
  return new Map((topic?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
}

async function waitForCommittedOffsets(admin: Admin, expected: number): Promise<void> {
  await waitFor(
    `the group's committed offset of every partition to reach ${expected}`,
    async () => {
      const committed = await committedOffsets(admin);
      return [0, 1, 2, 3].every((p) => committed.get(p) === expected);
    },
    15_000,
  );
}

function duplicates(values: string[]): string[] {
  const seen = new Set<string>();
  return values.filter((v) => (seen.has(v) ? true : (seen.add(v), false)));
}

describe('kafkajs consumer group', () => {
  let broker: Broker;
  let kafka: Kafka;
  let admin: Admin;

  beforeAll(async () => {
    // Both restarted members should join the same first generation, as with Kafka's
    // group.initial.rebalance.delay.ms.
    broker = await startBroker({ name: 'groups-broker', env: { WHARF_GROUP_INITIAL_REBALANCE_DELAY_MS: '500' } });
    kafka = kafkajsClient(broker.bootstrap);
    admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true });
  });

  afterAll(async () => {
    await admin?.disconnect();
    await broker?.stop();
  });

  it('two members split the partitions, commit, and resume after a restart with nothing skipped or repeated', async () => {
    // Phase 1: the group is formed before anything is produced, so no rebalance happens
    // while messages flow.
    const phase1Members = await startGroup(kafka);
    const [a1, b1] = phase1Members as [Member, Member];
    expect(a1.assignment.filter((p) => b1.assignment.includes(p))).toEqual([]);

    const phase1Values = await produce(kafka, 1);
    const phase1Received = () => phase1Members.flatMap((m) => m.received);
    await waitFor(`${MESSAGES_PER_PHASE} phase-1 messages consumed`, () => phase1Received().length >= MESSAGES_PER_PHASE);

    // Each member consumed only its own partitions, and both did some of the work.
    for (const m of phase1Members) {
      expect(m.received.length, `${m.name} consumed something`).toBeGreaterThan(0);
      expect(new Set(m.received.map((r) => r.partition)), `${m.name} stays on its partitions`).toEqual(new Set(m.assignment));
    }

    // Offsets are committed: the group's committed offset is the end of every partition.
    await waitForCommittedOffsets(admin, PER_PARTITION);
    await Promise.all(phase1Members.map((m) => m.consumer.disconnect()));
    const phase1 = phase1Received();
    expect(duplicates(phase1.map((r) => r.value))).toEqual([]);
    expect(new Set(phase1.map((r) => r.value))).toEqual(new Set(phase1Values));

    // Phase 2: more messages while nobody consumes; then both members come back.
    const phase2Values = await produce(kafka, 2);
    const phase2Members = await startGroup(kafka);
    const phase2Received = () => phase2Members.flatMap((m) => m.received);
    await waitFor(`${MESSAGES_PER_PHASE} phase-2 messages consumed`, () => phase2Received().length >= MESSAGES_PER_PHASE);
    // Give a wrongly rewound consumer the time to deliver what it should not.
    await new Promise((resolveWait) => setTimeout(resolveWait, 1_000));
    await waitForCommittedOffsets(admin, 2 * PER_PARTITION);
    await Promise.all(phase2Members.map((m) => m.consumer.disconnect()));
    const phase2 = phase2Received();

    // Consumption resumed exactly after the committed offsets...
    for (let partition = 0; partition < PARTITIONS; partition++) {
      const offsets = phase2.filter((r) => r.partition === partition).map((r) => r.offset);
      expect(offsets, `partition ${partition} after the restart`).toEqual(
        Array.from({ length: PER_PARTITION }, (_, i) => PER_PARTITION + i),
      );
    }
    // ...so nothing from phase 1 came again and nothing from phase 2 was missed.
    expect(duplicates(phase2.map((r) => r.value))).toEqual([]);
    expect(new Set(phase2.map((r) => r.value))).toEqual(new Set(phase2Values));
    const everything = [...phase1, ...phase2].map((r) => r.value);
    expect(everything).toHaveLength(2 * MESSAGES_PER_PHASE);
    expect(new Set(everything)).toEqual(new Set([...phase1Values, ...phase2Values]));
  }, 120_000);
});
