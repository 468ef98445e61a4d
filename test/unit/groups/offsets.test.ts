import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { register } from 'prom-client';
import { GroupCoordinator } from '../../../src/groups/coordinator.ts';
import type { OffsetCommitRequest, OffsetCommitRequestTopic } from '../../../src/groups/types.ts';
import { ErrorCode } from '../../../src/protocol/errors.ts';
import { formStableGroup, joinRequest, memberIdFor, silentLogger, startCoordinator, track } from './helpers.ts';
import { MemoryStream } from './memory-stream.ts';

let stream: MemoryStream;
let coordinator: GroupCoordinator;

beforeEach(async () => {
  vi.useFakeTimers();
  stream = new MemoryStream();
  coordinator = await startCoordinator(stream);
});

afterEach(async () => {
  await coordinator.stop();
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
});

function topic(name: string, offsets: Record<number, number>, metadata: string | null = null): OffsetCommitRequestTopic {
  return {
    name,
    partitions: Object.entries(offsets).map(([partition, offset]) => ({
      partitionIndex: Number(partition),
      committedOffset: offset,
      committedLeaderEpoch: 3,
      committedMetadata: metadata,
    })),
  };
}

function commit(overrides: Partial<OffsetCommitRequest>): Promise<ReturnType<GroupCoordinator['offsetCommit']> extends Promise<infer R> ? R : never> {
  return coordinator.offsetCommit({
    groupId: 'g',
    generationId: -1,
    memberId: '',
    groupInstanceId: null,
    topics: [topic('orders', { 0: 10 })],
    ...overrides,
  });
}

function errorCodes(response: Awaited<ReturnType<typeof commit>>): number[] {
  return response.topics.flatMap((t) => t.partitions.map((p) => p.errorCode));
}

async function fetchOffset(groupId: string, topicName: string, partition: number): Promise<number> {
  const response = await coordinator.offsetFetch({ groupId, topics: [{ name: topicName, partitionIndexes: [partition] }] });
  expect(response.errorCode).toBe(ErrorCode.NONE);
  return response.topics[0]!.partitions[0]!.committedOffset;
}

async function restart(options: Parameters<typeof startCoordinator>[1] = {}): Promise<void> {
  await coordinator.stop();
  coordinator = await startCoordinator(stream, options);
}

describe('committed offsets', () => {
  it('a consumer that restarts resumes after its committed offsets (a new coordinator replays the stream)', async () => {
    const group = await formStableGroup(coordinator, ['client-a', 'client-b']);
    const a = group.memberIds[0]!;
    const committed = await commit({
      generationId: 1,
      memberId: a,
      topics: [topic('orders', { 0: 42, 1: 7 }, 'from a'), topic('payments', { 3: 1_000_000_000_000 })],
    });
    expect(errorCodes(committed)).toEqual([ErrorCode.NONE, ErrorCode.NONE, ErrorCode.NONE]);
    expect(errorCodes(await commit({ groupId: 'simple', topics: [topic('orders', { 0: 5 })] }))).toEqual([ErrorCode.NONE]);
    expect(errorCodes(await commit({ generationId: 1, memberId: a, topics: [topic('orders', { 0: 43 })] }))).toEqual([ErrorCode.NONE]);

    await restart();
    const fetched = await coordinator.offsetFetch({
      groupId: 'g',
      topics: [{ name: 'orders', partitionIndexes: [0, 1, 2] }, { name: 'unknown', partitionIndexes: [0] }],
    });
    expect(fetched).toEqual({
      errorCode: ErrorCode.NONE,
      topics: [
        {
          name: 'orders',
          partitions: [
            { partitionIndex: 0, committedOffset: 43, committedLeaderEpoch: 3, metadata: '', errorCode: ErrorCode.NONE },
            { partitionIndex: 1, committedOffset: 7, committedLeaderEpoch: 3, metadata: 'from a', errorCode: ErrorCode.NONE },
            { partitionIndex: 2, committedOffset: -1, committedLeaderEpoch: -1, metadata: '', errorCode: ErrorCode.NONE },
          ],
        },
        { name: 'unknown', partitions: [{ partitionIndex: 0, committedOffset: -1, committedLeaderEpoch: -1, metadata: '', errorCode: ErrorCode.NONE }] },
      ],
    });
    const all = await coordinator.offsetFetch({ groupId: 'g', topics: null });
    expect(all.topics.map((t) => [t.name, t.partitions.map((p) => [p.partitionIndex, p.committedOffset])])).toEqual([
      ['orders', [[0, 43], [1, 7]]],
      ['payments', [[3, 1_000_000_000_000]]],
    ]);
    expect(await fetchOffset('simple', 'orders', 0)).toBe(5);
    expect(await fetchOffset('nobody', 'orders', 0)).toBe(-1);
    expect((await coordinator.offsetFetch({ groupId: 'nobody', topics: null })).topics).toEqual([]);
    // Membership is not persisted: the old member rejoins from scratch.
    expect((await coordinator.heartbeat({ groupId: 'g', generationId: 1, memberId: a, groupInstanceId: null })).errorCode).toBe(
      ErrorCode.UNKNOWN_MEMBER_ID,
    );
  });

  it('a commit is answered only once it is durable, and is invisible until then', async () => {
    stream.holdAppends = true;
    const pending = track(commit({ topics: [topic('orders', { 0: 99 })] }));
    await vi.advanceTimersByTimeAsync(10);
    expect(pending.settled()).toBe(false);
    expect(await fetchOffset('g', 'orders', 0)).toBe(-1);
    stream.releaseAppends();
    expect(errorCodes(await pending.promise)).toEqual([ErrorCode.NONE]);
    expect(await fetchOffset('g', 'orders', 0)).toBe(99);
  });

  it('checks the member and generation as Kafka does', async () => {
    const group = await formStableGroup(coordinator, ['client-a', 'client-b']);
    const a = group.memberIds[0]!;
    const codeOf = async (overrides: Partial<OffsetCommitRequest>) => errorCodes(await commit(overrides))[0];
    expect(await codeOf({ generationId: 1, memberId: 'nobody' })).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(await codeOf({ generationId: 0, memberId: a })).toBe(ErrorCode.ILLEGAL_GENERATION);
    expect(await codeOf({ generationId: -1, memberId: '' })).toBe(ErrorCode.UNKNOWN_MEMBER_ID); // group has members
    expect(await codeOf({ generationId: 1, memberId: a, groupInstanceId: 'not-mine' })).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(await codeOf({ groupId: 'absent', generationId: 4, memberId: a })).toBe(ErrorCode.ILLEGAL_GENERATION);
    expect(await codeOf({ groupId: 'absent', generationId: -1, memberId: '' })).toBe(ErrorCode.NONE);
    expect(await codeOf({ groupId: '', generationId: -1 })).toBe(ErrorCode.NONE); // allowed for commits, as Kafka

    const tooLarge = await commit({
      generationId: 1,
      memberId: a,
      topics: [topic('orders', { 0: 1 }, 'x'.repeat(4097)), topic('payments', { 0: 2 })],
    });
    expect(errorCodes(tooLarge)).toEqual([ErrorCode.OFFSET_METADATA_TOO_LARGE, ErrorCode.NONE]);

    // During CompletingRebalance the new generation's members must wait for their assignment.
    const b = group.memberIds[1]!;
    const c = await memberIdFor(coordinator, 'client-c');
    const joins = [
      coordinator.joinGroup(joinRequest('client-a', { memberId: a })),
      coordinator.joinGroup(joinRequest('client-c', { memberId: c })),
    ];
    expect(await codeOf({ generationId: 1, memberId: b })).toBe(ErrorCode.NONE); // still allowed while PreparingRebalance
    joins.push(coordinator.joinGroup(joinRequest('client-b', { memberId: b })));
    await Promise.all(joins);
    expect(await codeOf({ generationId: 2, memberId: a })).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    expect(await codeOf({ generationId: 1, memberId: a })).toBe(ErrorCode.ILLEGAL_GENERATION);
  });

  it('a failed append answers COORDINATOR_NOT_AVAILABLE and stops further writes', async () => {
    stream.holdAppends = true;
    const pending = commit({});
    stream.failAppends(new Error('disk on fire'));
    expect(errorCodes(await pending)).toEqual([ErrorCode.COORDINATOR_NOT_AVAILABLE]);
    stream.holdAppends = false;
    expect(errorCodes(await commit({}))).toEqual([ErrorCode.COORDINATOR_NOT_AVAILABLE]);
    expect(await fetchOffset('g', 'orders', 0)).toBe(-1);
  });

  it('snapshots trim the stream and the offsets replay the same', async () => {
    await restart({ offsetsSnapshotIntervalRecords: 4 });
    for (let i = 0; i < 10; i++) {
      expect(errorCodes(await commit({ groupId: `g${i % 3}`, topics: [topic('orders', { [i % 4]: i })] }))).toEqual([ErrorCode.NONE]);
    }
    await coordinator.stop(); // waits for the snapshot in flight
    expect(stream.startOffset()).toBeGreaterThan(0);
    expect(stream.batchCount()).toBeLessThan(10);
    coordinator = await startCoordinator(stream, { offsetsSnapshotIntervalRecords: 4 });
    const expected: Record<string, Record<number, number>> = { g0: {}, g1: {}, g2: {} };
    for (let i = 0; i < 10; i++) expected[`g${i % 3}`]![i % 4] = i;
    for (const [groupId, partitions] of Object.entries(expected)) {
      for (const [partition, offset] of Object.entries(partitions)) {
        expect(await fetchOffset(groupId, 'orders', Number(partition))).toBe(offset);
      }
    }
  });

  it('commits made while a snapshot is written are kept', async () => {
    await restart({ offsetsSnapshotIntervalRecords: 2 });
    stream.holdAppends = true;
    const commits = [];
    for (let i = 0; i < 6; i++) commits.push(commit({ topics: [topic('orders', { [i]: 100 + i })] }));
    for (let i = 0; i < 5; i++) {
      await vi.advanceTimersByTimeAsync(0);
      stream.releaseAppends();
    }
    stream.holdAppends = false;
    stream.releaseAppends();
    for (const response of await Promise.all(commits)) expect(errorCodes(response)).toEqual([ErrorCode.NONE]);
    await restart();
    for (let i = 0; i < 6; i++) expect(await fetchOffset('g', 'orders', i)).toBe(100 + i);
  });
});

describe('group admin', () => {
  it('lists, describes and deletes groups; a deleted group stays deleted after a restart', async () => {
    await formStableGroup(coordinator, ['client-a'], 'active');
    await commit({ groupId: 'simple' });

    const listed = await coordinator.listGroups();
    expect(listed.groups).toEqual([
      { groupId: 'active', protocolType: 'consumer', groupState: 'Stable' },
      { groupId: 'simple', protocolType: '', groupState: 'Empty' },
    ]);
    expect((await coordinator.listGroups({ statesFilter: ['empty'] })).groups.map((g) => g.groupId)).toEqual(['simple']);
    const described = await coordinator.describeGroups(['active', 'simple', 'missing']);
    expect(described.groups.map((g) => [g.groupId, g.groupState, g.members.length])).toEqual([
      ['active', 'Stable', 1],
      ['simple', 'Empty', 0],
      ['missing', 'Dead', 0],
    ]);
    expect(described.groups[0]!.members[0]).toMatchObject({ clientId: 'client-a', clientHost: '/127.0.0.1' });

    const deleted = await coordinator.deleteGroups(['simple', 'active', 'missing']);
    expect(deleted.results).toEqual([
      { groupId: 'simple', errorCode: ErrorCode.NONE },
      { groupId: 'active', errorCode: ErrorCode.NON_EMPTY_GROUP },
      { groupId: 'missing', errorCode: ErrorCode.GROUP_ID_NOT_FOUND },
    ]);
    expect(await fetchOffset('simple', 'orders', 0)).toBe(-1);
    await restart();
    expect(await fetchOffset('simple', 'orders', 0)).toBe(-1);
    expect((await coordinator.listGroups()).groups).toEqual([]);
  });

  it('counts groups by state for /metrics', async () => {
    await formStableGroup(coordinator, ['client-a'], 'active');
    await commit({ groupId: 'simple' });
    const metric = await register.getSingleMetric('wharf_consumer_groups')!.get();
    const byState = Object.fromEntries(metric.values.map((v) => [v.labels.state, v.value]));
    expect(byState).toMatchObject({ Stable: 1, Empty: 1, PreparingRebalance: 0 });
  });
});

describe('before start', () => {
  it('answers as a loading coordinator does', async () => {
    const loading = new GroupCoordinator({ offsetsStream: new MemoryStream(2), logger: silentLogger });
    expect(errorCodes(await loading.offsetCommit({ groupId: 'g', generationId: -1, memberId: '', groupInstanceId: null, topics: [topic('t', { 0: 1 })] }))).toEqual([
      ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    ]);
    expect((await loading.offsetFetch({ groupId: 'g', topics: null })).errorCode).toBe(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS);
    expect((await loading.joinGroup(joinRequest('c'))).errorCode).toBe(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS);
    expect((await loading.heartbeat({ groupId: 'g', generationId: 1, memberId: 'm', groupInstanceId: null })).errorCode).toBe(ErrorCode.NONE);
    expect(
      (await loading.syncGroup({ groupId: 'g', generationId: 1, memberId: 'm', groupInstanceId: null, protocolType: null, protocolName: null, assignments: [] }))
        .errorCode,
    ).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    expect(loading.isCoordinatorFor('g')).toBe(false);
    await loading.stop();
  });
});
