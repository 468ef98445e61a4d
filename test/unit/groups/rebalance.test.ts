import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { GroupCoordinator } from '../../../src/groups/coordinator.ts';
import { GroupState } from '../../../src/groups/types.ts';
import { ErrorCode } from '../../../src/protocol/errors.ts';
import {
  INITIAL_DELAY_MS,
  NEW_GROUP_DELAY_MS,
  REBALANCE_TIMEOUT_MS,
  SESSION_TIMEOUT_MS,
  assignmentFor,
  formStableGroup,
  joinRequest,
  memberIdFor,
  startCoordinator,
  track,
} from './helpers.ts';

let coordinator: GroupCoordinator;

beforeEach(async () => {
  vi.useFakeTimers();
  coordinator = await startCoordinator();
});

afterEach(async () => {
  await coordinator.stop();
  expect(vi.getTimerCount()).toBe(0);
  vi.useRealTimers();
});

function heartbeat(memberId: string, generationId: number, groupInstanceId: string | null = null) {
  return coordinator.heartbeat({ groupId: 'g', generationId, memberId, groupInstanceId });
}

async function groupState(groupId = 'g') {
  const { groups } = await coordinator.describeGroups([groupId]);
  return groups[0]!;
}

describe('joining and syncing', () => {
  it('two members join: the leader gets both subscriptions, sync hands out the assignments', async () => {
    const a = await memberIdFor(coordinator, 'client-a');
    const b = await memberIdFor(coordinator, 'client-b');
    expect(a).toMatch(/^client-a-[0-9a-f-]{36}$/);
    expect(b).toMatch(/^client-b-[0-9a-f-]{36}$/);

    const joinA = track(coordinator.joinGroup(joinRequest('client-a', { memberId: a })));
    const joinB = track(coordinator.joinGroup(joinRequest('client-b', { memberId: b })));
    await vi.advanceTimersByTimeAsync(INITIAL_DELAY_MS);
    // A new group waits the initial delay, and once more because b joined during it.
    expect(joinA.settled() || joinB.settled()).toBe(false);
    await vi.advanceTimersByTimeAsync(INITIAL_DELAY_MS - 1);
    expect(joinA.settled() || joinB.settled()).toBe(false);
    await vi.advanceTimersByTimeAsync(1);

    const [responseA, responseB] = await Promise.all([joinA.promise, joinB.promise]);
    for (const response of [responseA, responseB]) {
      expect(response.errorCode).toBe(ErrorCode.NONE);
      expect(response.generationId).toBe(1);
      expect(response.protocolType).toBe('consumer');
      expect(response.protocolName).toBe('range');
      expect(response.leader).toBe(a);
    }
    expect(responseA.members).toEqual([
      { memberId: a, groupInstanceId: null, metadata: Buffer.from('subscription of client-a') },
      { memberId: b, groupInstanceId: null, metadata: Buffer.from('subscription of client-b') },
    ]);
    expect(responseB.members).toEqual([]);
    expect((await groupState()).groupState).toBe(GroupState.CompletingRebalance);

    const followerSync = track(
      coordinator.syncGroup({ groupId: 'g', generationId: 1, memberId: b, groupInstanceId: null, protocolType: 'consumer', protocolName: 'range', assignments: [] }),
    );
    await vi.advanceTimersByTimeAsync(0);
    expect(followerSync.settled()).toBe(false); // waits for the leader

    const leaderSync = await coordinator.syncGroup({
      groupId: 'g',
      generationId: 1,
      memberId: a,
      groupInstanceId: null,
      protocolType: 'consumer',
      protocolName: 'range',
      assignments: [
        { memberId: a, assignment: assignmentFor(a) },
        { memberId: b, assignment: assignmentFor(b) },
      ],
    });
    expect(leaderSync).toEqual({ errorCode: ErrorCode.NONE, protocolType: 'consumer', protocolName: 'range', assignment: assignmentFor(a) });
    expect((await followerSync.promise).assignment).toEqual(assignmentFor(b));

    const described = await groupState();
    expect(described.groupState).toBe(GroupState.Stable);
    expect(described.protocolData).toBe('range');
    expect(described.members.map((m) => m.memberAssignment)).toEqual([assignmentFor(a), assignmentFor(b)]);
    expect((await heartbeat(a, 1)).errorCode).toBe(ErrorCode.NONE);
    expect((await heartbeat(b, 1)).errorCode).toBe(ErrorCode.NONE);
  });

  it('a member that joins a stable group triggers a rebalance that waits for the others to rejoin', async () => {
    const group = await formStableGroup(coordinator, ['client-a', 'client-b']);
    const [a, b] = group.memberIds as [string, string];
    const c = await memberIdFor(coordinator, 'client-c');
    const joinC = track(coordinator.joinGroup(joinRequest('client-c', { memberId: c })));
    expect((await heartbeat(a, 1)).errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);

    const joinA = coordinator.joinGroup(joinRequest('client-a', { memberId: a }));
    await vi.advanceTimersByTimeAsync(0);
    expect(joinC.settled()).toBe(false); // b has not rejoined yet
    const joinB = coordinator.joinGroup(joinRequest('client-b', { memberId: b }));
    const responses = await Promise.all([joinA, joinB, joinC.promise]); // completes as soon as all rejoined
    expect(responses.map((r) => r.generationId)).toEqual([2, 2, 2]);
    expect(responses[0]!.members.map((m) => m.memberId).sort()).toEqual([a, b, c].sort());
  });

  it('a member that joined but never syncs is removed after the rebalance timeout', async () => {
    const a = await memberIdFor(coordinator, 'client-a');
    const b = await memberIdFor(coordinator, 'client-b');
    const joins = [coordinator.joinGroup(joinRequest('client-a', { memberId: a })), coordinator.joinGroup(joinRequest('client-b', { memberId: b }))];
    await vi.advanceTimersByTimeAsync(NEW_GROUP_DELAY_MS);
    await Promise.all(joins);
    const leaderSync = await coordinator.syncGroup({
      groupId: 'g', generationId: 1, memberId: a, groupInstanceId: null, protocolType: null, protocolName: null, assignments: [],
    });
    expect(leaderSync.errorCode).toBe(ErrorCode.NONE);
    // b keeps heartbeating but never sends SyncGroup.
    for (let t = 0; t < REBALANCE_TIMEOUT_MS; t += SESSION_TIMEOUT_MS / 2) {
      await heartbeat(a, 1);
      await heartbeat(b, 1);
      await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS / 2);
    }
    expect((await heartbeat(b, 1)).errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect((await heartbeat(a, 1)).errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
  });
});

describe('MEMBER_ID_REQUIRED (JoinGroup v4+)', () => {
  it('a first join gets a member id to rejoin with; v3 joins at once', async () => {
    const first = await coordinator.joinGroup(joinRequest('client-a'));
    expect(first).toMatchObject({ errorCode: ErrorCode.MEMBER_ID_REQUIRED, generationId: -1, leader: '', members: [] });
    expect(first.memberId.startsWith('client-a-')).toBe(true);

    const second = coordinator.joinGroup(joinRequest('client-a', { memberId: first.memberId }));
    const old = coordinator.joinGroup(joinRequest('client-v3', { apiVersion: 3 }));
    await vi.advanceTimersByTimeAsync(NEW_GROUP_DELAY_MS);
    const [joined, joinedV3] = await Promise.all([second, old]);
    expect(joined).toMatchObject({ errorCode: ErrorCode.NONE, memberId: first.memberId, generationId: 1 });
    expect(joinedV3.errorCode).toBe(ErrorCode.NONE);
    expect(joinedV3.memberId.startsWith('client-v3-')).toBe(true);
    expect(joined.members).toHaveLength(2);
  });

  it('a member id handed out but never used expires after the session timeout', async () => {
    const memberId = await memberIdFor(coordinator, 'client-a');
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS);
    const late = await coordinator.joinGroup(joinRequest('client-a', { memberId }));
    expect(late.errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect((await coordinator.listGroups()).groups).toEqual([]);
  });

  it('a rebalance waits for a pending member to come back with its id', async () => {
    const group = await formStableGroup(coordinator, ['client-a']);
    const a = group.memberIds[0]!;
    const pendingId = await memberIdFor(coordinator, 'client-b');
    const rejoinA = track(coordinator.joinGroup(joinRequest('client-a', { memberId: a })));
    await vi.advanceTimersByTimeAsync(0);
    expect(rejoinA.settled()).toBe(false);
    const joinB = coordinator.joinGroup(joinRequest('client-b', { memberId: pendingId }));
    expect((await rejoinA.promise).members.map((m) => m.memberId)).toEqual([a, pendingId]);
    expect((await joinB).generationId).toBe(2);
  });
});

describe('protocol selection', () => {
  it('picks the protocol all members support with the most votes', async () => {
    const protocols = (...names: string[]) => names.map((name) => ({ name, metadata: Buffer.from(name) }));
    const requests = [
      joinRequest('c1', { apiVersion: 3, protocols: protocols('cooperative-sticky', 'range', 'roundrobin') }),
      joinRequest('c2', { apiVersion: 3, protocols: protocols('roundrobin', 'range') }),
      joinRequest('c3', { apiVersion: 3, protocols: protocols('roundrobin', 'range', 'cooperative-sticky') }),
    ];
    const joins = requests.map((r) => coordinator.joinGroup(r));
    await vi.advanceTimersByTimeAsync(NEW_GROUP_DELAY_MS);
    const responses = await Promise.all(joins);
    // cooperative-sticky is not supported by c2; c1 votes range, c2 and c3 vote roundrobin.
    expect(responses.map((r) => r.protocolName)).toEqual(['roundrobin', 'roundrobin', 'roundrobin']);
    const leader = responses.find((r) => r.members.length > 0)!;
    expect(leader.members.map((m) => m.metadata.toString())).toEqual(['roundrobin', 'roundrobin', 'roundrobin']);
  });

  it('refuses a member with no protocol in common, or another protocol type', async () => {
    await formStableGroup(coordinator, ['client-a']);
    const other = await coordinator.joinGroup(joinRequest('client-b', { protocols: [{ name: 'sticky', metadata: Buffer.alloc(0) }] }));
    expect(other.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    const connect = await coordinator.joinGroup(joinRequest('client-b', { protocolType: 'connect' }));
    expect(connect.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    const empty = await coordinator.joinGroup(joinRequest('client-b', { groupId: 'h', protocols: [] }));
    expect(empty.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
  });
});

describe('leaving and expiring', () => {
  it('a member that stops heartbeating is expired and the group rebalances without it', async () => {
    const group = await formStableGroup(coordinator, ['client-a', 'client-b']);
    const [a, b] = group.memberIds as [string, string];
    // a heartbeats every 400 ms; b is silent.
    let last = await heartbeat(a, 1);
    for (let elapsed = 0; elapsed < SESSION_TIMEOUT_MS && last.errorCode === ErrorCode.NONE; elapsed += 400) {
      await vi.advanceTimersByTimeAsync(400);
      last = await heartbeat(a, 1);
    }
    expect(last.errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    expect((await heartbeat(b, 1)).errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);

    const rejoin = await coordinator.joinGroup(joinRequest('client-a', { memberId: a })); // only member: completes at once
    expect(rejoin).toMatchObject({ errorCode: ErrorCode.NONE, generationId: 2, leader: a });
    expect(rejoin.members.map((m) => m.memberId)).toEqual([a]);
  });

  it('a member that does not rejoin during a rebalance is dropped at the rebalance timeout', async () => {
    const group = await formStableGroup(coordinator, ['client-a', 'client-b']);
    const [a, b] = group.memberIds as [string, string];
    const rejoinA = track(coordinator.joinGroup(joinRequest('client-a', { memberId: a, protocols: [{ name: 'range', metadata: Buffer.from('new topics') }] })));
    // b heartbeats (and learns of the rebalance) but never rejoins.
    for (let t = 0; t < REBALANCE_TIMEOUT_MS - 500; t += 500) {
      expect((await heartbeat(b, 1)).errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
      await vi.advanceTimersByTimeAsync(500);
    }
    expect(rejoinA.settled()).toBe(false);
    await vi.advanceTimersByTimeAsync(500);
    const response = await rejoinA.promise;
    expect(response.generationId).toBe(2);
    expect(response.members).toEqual([{ memberId: a, groupInstanceId: null, metadata: Buffer.from('new topics') }]);
    expect((await heartbeat(b, 1)).errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
  });

  it('leaving triggers a rebalance; the last member leaving empties the group', async () => {
    const group = await formStableGroup(coordinator, ['client-a', 'client-b']);
    const [a, b] = group.memberIds as [string, string];
    const left = await coordinator.leaveGroup({ groupId: 'g', members: [{ memberId: b, groupInstanceId: null }] });
    expect(left).toEqual({ errorCode: ErrorCode.NONE, members: [{ memberId: b, groupInstanceId: null, errorCode: ErrorCode.NONE }] });
    expect((await heartbeat(a, 1)).errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    const rejoin = await coordinator.joinGroup(joinRequest('client-a', { memberId: a }));
    expect(rejoin.generationId).toBe(2);
    expect(rejoin.members.map((m) => m.memberId)).toEqual([a]);

    const unknown = await coordinator.leaveGroup({ groupId: 'g', members: [{ memberId: b, groupInstanceId: null }, { memberId: a, groupInstanceId: null }] });
    expect(unknown.members.map((m) => m.errorCode)).toEqual([ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.NONE]);
    // a left while CompletingRebalance: the rebalance finds nobody and the group is gone.
    expect((await groupState()).groupState).toBe(GroupState.Dead);
    const noGroup = await coordinator.leaveGroup({ groupId: 'g', members: [{ memberId: a, groupInstanceId: null }] });
    expect(noGroup.members[0]!.errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
  });

  it('a leave during the join phase answers the leaver and lets the rebalance finish', async () => {
    const group = await formStableGroup(coordinator, ['client-a', 'client-b']);
    const [a, b] = group.memberIds as [string, string];
    const rejoinA = coordinator.joinGroup(joinRequest('client-a', { memberId: a }));
    const rejoinB = coordinator.joinGroup(joinRequest('client-b', { memberId: b, protocols: [{ name: 'range', metadata: Buffer.from('changed') }] }));
    expect((await rejoinA).generationId).toBe(2);
    expect((await rejoinB).generationId).toBe(2);
    const rejoinAgain = coordinator.joinGroup(joinRequest('client-a', { memberId: a, protocols: [{ name: 'range', metadata: Buffer.from('x') }] }));
    await coordinator.leaveGroup({ groupId: 'g', members: [{ memberId: b, groupInstanceId: null }] });
    const response = await rejoinAgain;
    expect(response.generationId).toBe(3);
    expect(response.members.map((m) => m.memberId)).toEqual([a]);
  });
});

describe('generation and member checks', () => {
  it('answers UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION and REBALANCE_IN_PROGRESS as Kafka does', async () => {
    const group = await formStableGroup(coordinator, ['client-a', 'client-b']);
    const [a] = group.memberIds as [string, string];
    expect((await heartbeat('nobody', 1)).errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect((await heartbeat(a, 0)).errorCode).toBe(ErrorCode.ILLEGAL_GENERATION);
    expect((await coordinator.heartbeat({ groupId: 'other', generationId: 1, memberId: a, groupInstanceId: null })).errorCode).toBe(
      ErrorCode.UNKNOWN_MEMBER_ID,
    );
    const badSync = (generationId: number, memberId: string, protocolName: string | null = null) =>
      coordinator.syncGroup({ groupId: 'g', generationId, memberId, groupInstanceId: null, protocolType: null, protocolName, assignments: [] });
    expect((await badSync(7, a)).errorCode).toBe(ErrorCode.ILLEGAL_GENERATION);
    expect((await badSync(1, 'nobody')).errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect((await badSync(1, a, 'roundrobin')).errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    expect((await badSync(1, a)).assignment).toEqual(assignmentFor(a)); // stable: the current assignment again

    expect((await coordinator.joinGroup(joinRequest('client-a', { memberId: 'nobody' }))).errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect((await coordinator.joinGroup(joinRequest('client-a', { groupId: '' }))).errorCode).toBe(ErrorCode.INVALID_GROUP_ID);
    expect((await coordinator.joinGroup(joinRequest('client-a', { sessionTimeoutMs: 10 }))).errorCode).toBe(ErrorCode.INVALID_SESSION_TIMEOUT);

    // Once a rebalance starts, the old generation's SyncGroup must rejoin first.
    void coordinator.joinGroup(joinRequest('client-a', { memberId: a }));
    expect((await badSync(1, a)).errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
  });

  it('a follower waiting in SyncGroup is told to rejoin when the group rebalances', async () => {
    const a = await memberIdFor(coordinator, 'client-a');
    const b = await memberIdFor(coordinator, 'client-b');
    const joins = [coordinator.joinGroup(joinRequest('client-a', { memberId: a })), coordinator.joinGroup(joinRequest('client-b', { memberId: b }))];
    await vi.advanceTimersByTimeAsync(NEW_GROUP_DELAY_MS);
    await Promise.all(joins);
    const followerSync = coordinator.syncGroup({ groupId: 'g', generationId: 1, memberId: b, groupInstanceId: null, protocolType: null, protocolName: null, assignments: [] });
    const c = await memberIdFor(coordinator, 'client-c');
    void coordinator.joinGroup(joinRequest('client-c', { memberId: c }));
    expect((await followerSync).errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
  });
});

describe('static membership', () => {
  it('a restarted static member takes a new id without a rebalance; the old id is fenced', async () => {
    const joins = [
      coordinator.joinGroup(joinRequest('client-a', { groupInstanceId: 'instance-a' })),
      coordinator.joinGroup(joinRequest('client-b', { groupInstanceId: 'instance-b' })),
    ];
    await vi.advanceTimersByTimeAsync(NEW_GROUP_DELAY_MS);
    const [joinA, joinB] = await Promise.all(joins);
    expect(joinA!.memberId.startsWith('instance-a-')).toBe(true); // static members never get MEMBER_ID_REQUIRED
    const leader = joinA!.leader;
    const [a, b] = [joinA!.memberId, joinB!.memberId];
    const sync = (memberId: string, instance: string, assignments: { memberId: string; assignment: Buffer }[] = []) =>
      coordinator.syncGroup({ groupId: 'g', generationId: 1, memberId, groupInstanceId: instance, protocolType: null, protocolName: null, assignments });
    await Promise.all([
      sync(a, 'instance-a', leader === a ? [{ memberId: a, assignment: assignmentFor(a) }, { memberId: b, assignment: assignmentFor(b) }] : []),
      sync(b, 'instance-b', leader === b ? [{ memberId: a, assignment: assignmentFor(a) }, { memberId: b, assignment: assignmentFor(b) }] : []),
    ]);

    const rejoin = await coordinator.joinGroup(joinRequest('client-b', { groupInstanceId: 'instance-b' }));
    expect(rejoin.errorCode).toBe(ErrorCode.NONE);
    expect(rejoin.generationId).toBe(1);
    expect(rejoin.memberId).not.toBe(b);
    expect((await groupState()).groupState).toBe(GroupState.Stable);
    expect((await heartbeat(b, 1, 'instance-b')).errorCode).toBe(ErrorCode.FENCED_INSTANCE_ID);
    expect((await heartbeat(rejoin.memberId, 1, 'instance-b')).errorCode).toBe(ErrorCode.NONE);
    expect((await sync(rejoin.memberId, 'instance-b')).assignment).toEqual(assignmentFor(b)); // keeps its assignment

    // Admin removal by instance id alone.
    const removed = await coordinator.leaveGroup({ groupId: 'g', members: [{ memberId: '', groupInstanceId: 'instance-b' }] });
    expect(removed.members[0]!.errorCode).toBe(ErrorCode.NONE);
    expect((await heartbeat(a, 1, 'instance-a')).errorCode).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
  });
});

describe('lifecycle', () => {
  it('stop answers parked joins with NOT_COORDINATOR and cancels every timer', async () => {
    const memberId = await memberIdFor(coordinator, 'client-a');
    const parked = coordinator.joinGroup(joinRequest('client-a', { memberId }));
    await memberIdFor(coordinator, 'client-b'); // a pending member with its own timer
    expect(vi.getTimerCount()).toBeGreaterThan(0);
    await coordinator.stop();
    expect((await parked).errorCode).toBe(ErrorCode.NOT_COORDINATOR);
    expect(vi.getTimerCount()).toBe(0);
    expect((await heartbeat(memberId, 1)).errorCode).toBe(ErrorCode.NOT_COORDINATOR);
    expect(coordinator.isCoordinatorFor('g')).toBe(false);
  });

  it('a group emptied by expiry leaves no timers behind', async () => {
    await formStableGroup(coordinator, ['client-a', 'client-b']);
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS + REBALANCE_TIMEOUT_MS);
    expect((await coordinator.listGroups()).groups).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
