// Shared set-up for the group coordinator tests.

import { expect, vi } from 'vitest';
import { pino } from 'pino';
import { GroupCoordinator, type GroupCoordinatorOptions } from '../../../src/groups/coordinator.ts';
import type { JoinGroupRequest, JoinGroupResponse, SyncGroupResponse } from '../../../src/groups/types.ts';
import { ErrorCode } from '../../../src/protocol/errors.ts';
import { MemoryStream } from './memory-stream.ts';

export const silentLogger = pino({ level: 'silent' });

export const SESSION_TIMEOUT_MS = 1_000;
export const REBALANCE_TIMEOUT_MS = 5_000;
export const INITIAL_DELAY_MS = 100;
/**
 * When members join a new group together, the first fills the initial delay and the others
 * extend it once (Kafka's InitialDelayedJoin): the rebalance completes after two delays.
 */
export const NEW_GROUP_DELAY_MS = 2 * INITIAL_DELAY_MS;

export async function startCoordinator(
  stream: MemoryStream = new MemoryStream(),
  options: Partial<GroupCoordinatorOptions> = {},
): Promise<GroupCoordinator> {
  const coordinator = new GroupCoordinator({
    offsetsStream: stream,
    initialRebalanceDelayMs: INITIAL_DELAY_MS,
    minSessionTimeoutMs: 100,
    logger: silentLogger,
    ...options,
  });
  await coordinator.start();
  return coordinator;
}

export function joinRequest(clientId: string, overrides: Partial<JoinGroupRequest> = {}): JoinGroupRequest {
  return {
    groupId: 'g',
    sessionTimeoutMs: SESSION_TIMEOUT_MS,
    rebalanceTimeoutMs: REBALANCE_TIMEOUT_MS,
    memberId: '',
    groupInstanceId: null,
    protocolType: 'consumer',
    protocols: [{ name: 'range', metadata: Buffer.from(`subscription of ${clientId}`) }],
    clientId,
    clientHost: '/127.0.0.1',
    apiVersion: 5,
    ...overrides,
  };
}

/** The v4+ dance: a first JoinGroup gets MEMBER_ID_REQUIRED and an id; returns that id. */
export async function memberIdFor(
  coordinator: GroupCoordinator,
  clientId: string,
  overrides: Partial<JoinGroupRequest> = {},
): Promise<string> {
  const first = await coordinator.joinGroup(joinRequest(clientId, overrides));
  expect(first.errorCode).toBe(ErrorCode.MEMBER_ID_REQUIRED);
  return first.memberId;
}

/** Tracks whether a promise has settled, for asserting that a call is still parked. */
export function track<T>(promise: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let done = false;
  void promise.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  return { promise, settled: () => done };
}

export interface StableGroup {
  generationId: number;
  leader: string;
  /** Member ids, in the order of clientIds. */
  memberIds: string[];
  joins: JoinGroupResponse[];
  syncs: SyncGroupResponse[];
}

export function assignmentFor(memberId: string): Buffer {
  return Buffer.from(`partitions for ${memberId}`);
}

/**
 * Joins one member per client id into a new group (fake timers: advances past the initial
 * delay and its extension), then syncs with the leader handing each member `assignmentFor(memberId)`.
 */
export async function formStableGroup(coordinator: GroupCoordinator, clientIds: string[], groupId = 'g'): Promise<StableGroup> {
  const memberIds: string[] = [];
  for (const clientId of clientIds) memberIds.push(await memberIdFor(coordinator, clientId, { groupId }));
  const pending = clientIds.map((clientId, i) => coordinator.joinGroup(joinRequest(clientId, { groupId, memberId: memberIds[i]! })));
  await vi.advanceTimersByTimeAsync(clientIds.length > 1 ? NEW_GROUP_DELAY_MS : INITIAL_DELAY_MS);
  const joins = await Promise.all(pending);
  for (const join of joins) expect(join.errorCode).toBe(ErrorCode.NONE);
  const { generationId, leader } = joins[0]!;
  const syncs = await Promise.all(
    memberIds.map((memberId) =>
      coordinator.syncGroup({
        groupId,
        generationId,
        memberId,
        groupInstanceId: null,
        protocolType: 'consumer',
        protocolName: 'range',
        assignments: memberId === leader ? memberIds.map((id) => ({ memberId: id, assignment: assignmentFor(id) })) : [],
      }),
    ),
  );
  for (const sync of syncs) expect(sync.errorCode).toBe(ErrorCode.NONE);
  return { generationId, leader, memberIds, joins, syncs };
}
