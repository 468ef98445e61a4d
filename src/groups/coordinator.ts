// The consumer group coordinator for Kafka's classic group protocol (JoinGroup, SyncGroup,
// Heartbeat, LeaveGroup) and committed offsets (OffsetCommit, OffsetFetch), plus the group
// admin calls (DescribeGroups, ListGroups, DeleteGroups). It follows Kafka's GroupCoordinator
// (the classic-group part of GroupMetadataManager): same states, same error codes.
//
//            join                     all rejoined, or rebalance timeout
//   Empty ──────────▶ PreparingRebalance ────────────────────────────▶ CompletingRebalance
//     ▲                  │        ▲    ▲                                   │           │
//     └── no members ────┘        │    └── join, leave, expiry ────────────┘           │ leader's
//                                 │                                                     │ SyncGroup
//                                 └── join (new, leader, changed), leave, expiry ── Stable ◀┘
//
// A rebalance waits for every known member to rejoin, at most the largest rebalance timeout of
// the members; a new (Empty) group first waits `initialRebalanceDelayMs` (Kafka's
// group.initial.rebalance.delay.ms), extended while new members keep arriving. The leader gets
// every member's metadata for the selected protocol and answers with the assignments in its
// SyncGroup; followers that synced earlier are answered then. Members that stop heartbeating
// are removed after their session timeout and the group rebalances.
//
// State is kept per group (`groups`) and committed offsets per group (OffsetStore), so groups
// can later be partitioned among brokers by group id. Today this broker coordinates all groups.
// Group membership is not persisted: after a restart members get UNKNOWN_MEMBER_ID and rejoin.
//
// Each method answers like the Kafka API it is named after and never throws for a Kafka-level
// error: the error is the response's errorCode. JoinGroup and SyncGroup resolve when the
// rebalance step completes; OffsetCommit once the commit is durable.

import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { log as processLog } from '../metrics/log.ts';
import { ErrorCode } from '../protocol/errors.ts';
import type { Stream } from '../storage/stream.ts';
import { Group, Member, joinErrorResponse, syncErrorResponse, type JoinWaiter } from './group.ts';
import { countGroups } from './metrics.ts';
import { OffsetStore, type TopicCommit } from './offset-store.ts';
import {
  GroupState,
  UNKNOWN_MEMBER_ID,
  type DeleteGroupsResponse,
  type DeleteGroupsResult,
  type DescribeGroupsResponse,
  type DescribedGroup,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type JoinGroupRequest,
  type JoinGroupRequestProtocol,
  type JoinGroupResponse,
  type LeaveGroupRequest,
  type LeaveGroupResponse,
  type ListGroupsRequest,
  type ListGroupsResponse,
  type ListedGroup,
  type MemberIdentity,
  type OffsetCommitRequest,
  type OffsetCommitResponse,
  type OffsetCommitResponseTopic,
  type OffsetFetchRequest,
  type OffsetFetchResponse,
  type OffsetFetchResponseTopic,
  type SyncGroupRequest,
  type SyncGroupRequestAssignment,
  type SyncGroupResponse,
} from './types.ts';

export interface GroupCoordinatorOptions {
  /** The internal stream holding committed offsets; opened by the caller, who also closes it. */
  offsetsStream: Stream;
  /** group.initial.rebalance.delay.ms: how long a new group waits for more members. */
  initialRebalanceDelayMs?: number;
  /** group.min.session.timeout.ms / group.max.session.timeout.ms. */
  minSessionTimeoutMs?: number;
  maxSessionTimeoutMs?: number;
  /** How long a new member's JoinGroup may wait for a rebalance before it is dropped (Kafka: 5 min). */
  newMemberJoinTimeoutMs?: number;
  /** group.max.size: members (and pending members) per group. */
  maxGroupSize?: number;
  /** offset.metadata.max.bytes. */
  maxOffsetMetadataBytes?: number;
  /** Offset records between snapshots of the offsets stream; 0: never snapshot. */
  offsetsSnapshotIntervalRecords?: number;
  /** Bytes per stream read while replaying offsets at start. */
  offsetsReplayReadBytes?: number;
  logger?: Logger;
}

const DEFAULTS = {
  initialRebalanceDelayMs: 3_000,
  minSessionTimeoutMs: 6_000,
  maxSessionTimeoutMs: 1_800_000,
  newMemberJoinTimeoutMs: 300_000,
  maxGroupSize: 10_000,
  maxOffsetMetadataBytes: 4_096,
  offsetsSnapshotIntervalRecords: 10_000,
  offsetsReplayReadBytes: 1024 * 1024,
} as const;

/** Our string encoding of offset metadata has an int16 length. */
const MAX_METADATA_BYTES_LIMIT = 32_767;
const EMPTY_BYTES = Buffer.alloc(0);

const CoordinatorState = { Loading: 'loading', Active: 'active', Stopped: 'stopped' } as const;
type CoordinatorState = (typeof CoordinatorState)[keyof typeof CoordinatorState];

export class GroupCoordinator {
  private readonly initialRebalanceDelayMs: number;
  private readonly minSessionTimeoutMs: number;
  private readonly maxSessionTimeoutMs: number;
  private readonly newMemberJoinTimeoutMs: number;
  private readonly maxGroupSize: number;
  private readonly maxOffsetMetadataBytes: number;
  private readonly logger: Logger;
  private readonly offsets: OffsetStore;
  private readonly groups = new Map<string, Group>();
  private state: CoordinatorState = CoordinatorState.Loading;
  private startCalled = false;
  private uncountGroups: (() => void) | undefined;

  constructor(options: GroupCoordinatorOptions) {
    this.initialRebalanceDelayMs = options.initialRebalanceDelayMs ?? DEFAULTS.initialRebalanceDelayMs;
    this.minSessionTimeoutMs = options.minSessionTimeoutMs ?? DEFAULTS.minSessionTimeoutMs;
    this.maxSessionTimeoutMs = options.maxSessionTimeoutMs ?? DEFAULTS.maxSessionTimeoutMs;
    this.newMemberJoinTimeoutMs = options.newMemberJoinTimeoutMs ?? DEFAULTS.newMemberJoinTimeoutMs;
    this.maxGroupSize = options.maxGroupSize ?? DEFAULTS.maxGroupSize;
    this.maxOffsetMetadataBytes = options.maxOffsetMetadataBytes ?? DEFAULTS.maxOffsetMetadataBytes;
    if (this.maxOffsetMetadataBytes > MAX_METADATA_BYTES_LIMIT) {
      throw new RangeError(`maxOffsetMetadataBytes ${this.maxOffsetMetadataBytes} exceeds ${MAX_METADATA_BYTES_LIMIT}`);
    }
    if (this.minSessionTimeoutMs > this.maxSessionTimeoutMs) throw new RangeError('minSessionTimeoutMs > maxSessionTimeoutMs');
    this.logger = options.logger ?? processLog.child({ module: 'groups' });
    this.offsets = new OffsetStore({
      stream: options.offsetsStream,
      snapshotIntervalRecords: options.offsetsSnapshotIntervalRecords ?? DEFAULTS.offsetsSnapshotIntervalRecords,
      replayReadBytes: options.offsetsReplayReadBytes ?? DEFAULTS.offsetsReplayReadBytes,
      logger: this.logger,
    });
  }

  // ---- lifecycle ----

  /** Replays the committed offsets; until it resolves calls answer COORDINATOR_LOAD_IN_PROGRESS. */
  async start(): Promise<void> {
    if (this.startCalled) throw new Error('GroupCoordinator.start() called twice');
    this.startCalled = true;
    await this.offsets.load();
    if (this.state === CoordinatorState.Stopped) return;
    this.state = CoordinatorState.Active;
    this.uncountGroups = countGroups((counts) => this.countGroupsByState(counts));
  }

  /**
   * Answers every parked JoinGroup/SyncGroup with NOT_COORDINATOR, cancels every timer, and
   * waits for offset writes in flight. Calls made afterwards answer NOT_COORDINATOR.
   */
  async stop(): Promise<void> {
    if (this.state === CoordinatorState.Stopped) return;
    this.state = CoordinatorState.Stopped;
    this.uncountGroups?.();
    for (const group of this.groups.values()) {
      for (const member of group.members.values()) {
        group.completeJoin(member, joinErrorResponse(member.memberId, ErrorCode.NOT_COORDINATOR));
        group.completeSync(member, syncErrorResponse(ErrorCode.NOT_COORDINATOR));
      }
      group.clearTimers();
      group.transitionTo(GroupState.Dead);
    }
    this.groups.clear();
    await this.offsets.close();
  }

  /** FindCoordinator: this broker coordinates every group while it runs. */
  isCoordinatorFor(_groupId: string): boolean {
    return this.state === CoordinatorState.Active;
  }

  // ---- JoinGroup ----

  async joinGroup(request: JoinGroupRequest): Promise<JoinGroupResponse> {
    const { groupId, memberId } = request;
    const statusError = this.checkStatus(groupId, false);
    if (statusError !== ErrorCode.NONE) return joinErrorResponse(memberId, statusError);
    if (request.sessionTimeoutMs < this.minSessionTimeoutMs || request.sessionTimeoutMs > this.maxSessionTimeoutMs) {
      return joinErrorResponse(memberId, ErrorCode.INVALID_SESSION_TIMEOUT);
    }
    const isUnknownMember = memberId === UNKNOWN_MEMBER_ID;
    let group = this.groups.get(groupId);
    if (group === undefined) {
      // Only a member without an id may create a group.
      if (!isUnknownMember) return joinErrorResponse(memberId, ErrorCode.UNKNOWN_MEMBER_ID);
      group = new Group(groupId);
      this.groups.set(groupId, group);
    }
    const target = group;
    const replacesStaticMember = request.groupInstanceId !== null && target.staticMembers.has(request.groupInstanceId);
    if (isUnknownMember && !replacesStaticMember && target.size() >= this.maxGroupSize) {
      this.maybeDropGroup(target);
      return joinErrorResponse(UNKNOWN_MEMBER_ID, ErrorCode.GROUP_MAX_SIZE_REACHED);
    }
    const protocols = copyProtocols(request.protocols);
    const response = new Promise<JoinGroupResponse>((respond) => {
      if (isUnknownMember) this.joinNewMember(target, request, protocols, respond);
      else this.joinExistingMember(target, request, protocols, respond);
    });
    this.maybeCompleteJoinPhase(target);
    this.maybeDropGroup(target);
    return response;
  }

  private joinNewMember(group: Group, request: JoinGroupRequest, protocols: JoinGroupRequestProtocol[], respond: JoinWaiter): void {
    if (!group.supportsProtocols(request.protocolType, protocols.map((p) => p.name))) {
      respond(joinErrorResponse(UNKNOWN_MEMBER_ID, ErrorCode.INCONSISTENT_GROUP_PROTOCOL));
      return;
    }
    const instanceId = request.groupInstanceId;
    const newMemberId = `${instanceId ?? request.clientId}-${randomUUID()}`;
    const staticMemberId = instanceId === null ? undefined : group.staticMembers.get(instanceId);
    if (instanceId !== null && staticMemberId !== undefined) {
      this.rejoinStaticMember(group, request, protocols, instanceId, staticMemberId, newMemberId, respond);
    } else if (instanceId === null && request.apiVersion >= 4) {
      // KIP-394: hand out the id first; the member joins for real with its second JoinGroup.
      this.addPendingMember(group, newMemberId, request.sessionTimeoutMs);
      respond(joinErrorResponse(newMemberId, ErrorCode.MEMBER_ID_REQUIRED));
    } else {
      this.addMemberAndRebalance(group, request, protocols, newMemberId, respond);
    }
  }

  private joinExistingMember(
    group: Group,
    request: JoinGroupRequest,
    protocols: JoinGroupRequestProtocol[],
    respond: JoinWaiter,
  ): void {
    const { memberId, groupInstanceId } = request;
    if (!group.supportsProtocols(request.protocolType, protocols.map((p) => p.name))) {
      respond(joinErrorResponse(memberId, ErrorCode.INCONSISTENT_GROUP_PROTOCOL));
      return;
    }
    if (groupInstanceId === null && group.pendingJoinMembers.has(memberId)) {
      this.addMemberAndRebalance(group, request, protocols, memberId, respond);
      return;
    }
    const memberError = group.validateMember(memberId, groupInstanceId);
    if (memberError !== ErrorCode.NONE) {
      respond(joinErrorResponse(memberId, memberError));
      return;
    }
    const member = group.members.get(memberId)!;
    switch (group.state) {
      case GroupState.PreparingRebalance:
        this.updateMemberAndRebalance(group, member, request, protocols, respond, 'member rejoins during rebalance');
        return;
      case GroupState.CompletingRebalance:
        // Same metadata: it missed its JoinGroup answer; give it the current generation again.
        if (member.matches(protocols)) respond(this.joinResponse(group, memberId));
        else this.updateMemberAndRebalance(group, member, request, protocols, respond, 'member metadata changed');
        return;
      case GroupState.Stable:
        // The leader rejoins to have the group reassigned (e.g. topic metadata changed).
        if (group.isLeader(memberId) || !member.matches(protocols)) {
          this.updateMemberAndRebalance(group, member, request, protocols, respond, 'leader rejoins or metadata changed');
        } else {
          respond(this.joinResponse(group, memberId));
        }
        return;
      default:
        respond(joinErrorResponse(memberId, ErrorCode.UNKNOWN_MEMBER_ID));
    }
  }

  private addMemberAndRebalance(
    group: Group,
    request: JoinGroupRequest,
    protocols: JoinGroupRequestProtocol[],
    memberId: string,
    respond: JoinWaiter,
  ): void {
    const member = new Member({
      memberId,
      groupInstanceId: request.groupInstanceId,
      clientId: request.clientId,
      clientHost: request.clientHost,
      rebalanceTimeoutMs: request.rebalanceTimeoutMs,
      sessionTimeoutMs: request.sessionTimeoutMs,
      protocolType: request.protocolType,
      protocols,
    });
    member.isNew = true;
    if (group.is(GroupState.PreparingRebalance) && group.previousState === GroupState.Empty) group.newMemberAdded = true;
    group.add(member, respond);
    // A new member cannot heartbeat before its JoinGroup is answered: bound its wait instead.
    this.scheduleSessionExpiry(group, member, this.newMemberJoinTimeoutMs);
    this.maybePrepareRebalanceOrCompleteJoin(group, `member ${memberId} joins${clientReason(request)}`);
  }

  private updateMemberAndRebalance(
    group: Group,
    member: Member,
    request: JoinGroupRequest,
    protocols: JoinGroupRequestProtocol[],
    respond: JoinWaiter,
    reason: string,
  ): void {
    group.updateMember(member, protocols, request.rebalanceTimeoutMs, request.sessionTimeoutMs, respond);
    this.maybePrepareRebalanceOrCompleteJoin(group, `${reason}: ${member.memberId}${clientReason(request)}`);
  }

  /** A static member rejoins without its member id (a restarted instance): it takes a new id. */
  private rejoinStaticMember(
    group: Group,
    request: JoinGroupRequest,
    protocols: JoinGroupRequestProtocol[],
    instanceId: string,
    oldMemberId: string,
    newMemberId: string,
    respond: JoinWaiter,
  ): void {
    const previousLeader = group.leaderId ?? '';
    const member = group.replaceStaticMember(instanceId, oldMemberId, newMemberId);
    this.scheduleSessionExpiry(group, member, member.sessionTimeoutMs);
    group.updateMember(member, protocols, request.rebalanceTimeoutMs, request.sessionTimeoutMs, respond);
    this.logger.info({ groupId: group.groupId, instanceId, oldMemberId, newMemberId }, 'static member rejoins');
    switch (group.state) {
      case GroupState.Stable:
        if (group.selectProtocol() !== group.protocolName) {
          this.maybePrepareRebalanceOrCompleteJoin(group, `static member ${newMemberId} changes the group protocol`);
          return;
        }
        // No rebalance: the member keeps its assignment. Before v9 the old leader id is
        // returned so that a replaced leader does not compute an assignment nobody would get.
        if (request.apiVersion >= 9) {
          const isLeader = group.isLeader(newMemberId);
          group.completeJoin(member, { ...this.joinResponse(group, newMemberId), skipAssignment: isLeader });
        } else {
          group.completeJoin(member, { ...this.joinResponse(group, newMemberId), members: [], leader: previousLeader });
        }
        return;
      case GroupState.CompletingRebalance:
        // The leader may have been given the old id: rebalance so that assignments match ids.
        this.prepareRebalance(group, `static member ${instanceId} rejoins during CompletingRebalance`);
        return;
      case GroupState.PreparingRebalance:
        this.maybeCompleteJoinPhase(group);
        return;
      default:
        throw new Error(`group ${group.groupId}: static member ${instanceId} in state ${group.state}`);
    }
  }

  private addPendingMember(group: Group, memberId: string, sessionTimeoutMs: number): void {
    const expiry = this.setTimer(sessionTimeoutMs, () => {
      if (!group.removePendingMember(memberId)) return;
      this.logger.info({ groupId: group.groupId, memberId }, 'pending member expired');
      this.maybeCompleteJoinPhase(group);
      this.maybeDropGroup(group);
    });
    group.addPendingMember(memberId, expiry);
  }

  /** The JoinGroup answer for the current generation; the member list goes to the leader only. */
  private joinResponse(group: Group, memberId: string): JoinGroupResponse {
    return {
      errorCode: ErrorCode.NONE,
      generationId: group.generationId,
      protocolType: group.protocolType,
      protocolName: group.protocolName,
      leader: group.leaderId ?? '',
      skipAssignment: false,
      memberId,
      members: group.isLeader(memberId) ? group.currentMemberMetadata() : [],
    };
  }

  // ---- rebalance ----

  private maybePrepareRebalanceOrCompleteJoin(group: Group, reason: string): void {
    if (group.canRebalance()) this.prepareRebalance(group, reason);
    else this.maybeCompleteJoinPhase(group);
  }

  private prepareRebalance(group: Group, reason: string): void {
    // Members waiting for their assignment must rejoin instead.
    if (group.is(GroupState.CompletingRebalance)) this.resetAndPropagateAssignmentError(group, ErrorCode.REBALANCE_IN_PROGRESS);
    group.clearSyncTimer();
    const fromEmpty = group.is(GroupState.Empty);
    group.transitionTo(GroupState.PreparingRebalance);
    this.logger.info({ groupId: group.groupId, generationId: group.generationId, reason }, 'preparing to rebalance');
    if (fromEmpty) {
      const delayMs = this.initialRebalanceDelayMs;
      this.scheduleInitialJoin(group, delayMs, Math.max(group.rebalanceTimeoutMs() - delayMs, 0));
    } else {
      this.scheduleJoinTimeout(group);
      this.maybeCompleteJoinPhase(group);
    }
  }

  /** Kafka's InitialDelayedJoin: wait delayMs, and again while new members keep joining. */
  private scheduleInitialJoin(group: Group, delayMs: number, remainingMs: number): void {
    group.clearJoinTimer();
    group.joinTimer = this.setTimer(delayMs, () => {
      group.joinTimer = undefined;
      if (group.newMemberAdded && remainingMs !== 0) {
        group.newMemberAdded = false;
        const nextDelayMs = Math.min(this.initialRebalanceDelayMs, remainingMs);
        this.scheduleInitialJoin(group, nextDelayMs, Math.max(remainingMs - delayMs, 0));
      } else {
        this.completeJoinPhase(group);
      }
    });
  }

  private scheduleJoinTimeout(group: Group): void {
    group.clearJoinTimer();
    group.joinTimer = this.setTimer(group.rebalanceTimeoutMs(), () => {
      group.joinTimer = undefined;
      this.completeJoinPhase(group);
    });
  }

  /** Completes the join phase early once everyone rejoined (never during the initial delay). */
  private maybeCompleteJoinPhase(group: Group): void {
    if (
      group.is(GroupState.PreparingRebalance) &&
      group.previousState !== GroupState.Empty &&
      group.hasAllMembersJoined()
    ) {
      this.completeJoinPhase(group);
    }
  }

  private completeJoinPhase(group: Group): void {
    group.clearJoinTimer();
    if (!group.is(GroupState.PreparingRebalance)) return;
    // Dynamic members that did not rejoin in time are out; static ones keep their place.
    for (const member of group.notYetRejoinedMembers()) {
      if (member.groupInstanceId !== null) continue;
      this.logger.info({ groupId: group.groupId, memberId: member.memberId }, 'member did not rejoin in time');
      this.evictMember(group, member);
    }
    if (!group.maybeElectNewJoinedLeader() && group.members.size > 0) {
      // Only static members that have not rejoined: wait for them (or their session expiry).
      this.logger.warn({ groupId: group.groupId }, 'no member rejoined; rebalance postponed');
      this.scheduleJoinTimeout(group);
      return;
    }
    group.initNextGeneration();
    if (group.is(GroupState.Empty)) {
      this.logger.info({ groupId: group.groupId, generationId: group.generationId }, 'group is empty');
      this.maybeDropGroup(group);
      return;
    }
    this.logger.info(
      { groupId: group.groupId, generationId: group.generationId, protocol: group.protocolName, members: group.members.size },
      'group rebalanced',
    );
    for (const member of group.members.values()) {
      group.completeJoin(member, this.joinResponse(group, member.memberId));
      this.scheduleSessionExpiry(group, member, member.sessionTimeoutMs);
      member.isNew = false;
      group.pendingSyncMembers.add(member.memberId);
    }
    this.schedulePendingSyncExpiry(group);
  }

  /** Members that never send SyncGroup within the rebalance timeout are removed. */
  private schedulePendingSyncExpiry(group: Group): void {
    group.clearSyncTimer();
    const generationId = group.generationId;
    group.syncTimer = this.setTimer(group.rebalanceTimeoutMs(), () => {
      group.syncTimer = undefined;
      const waiting = group.is(GroupState.CompletingRebalance) || group.is(GroupState.Stable);
      if (group.generationId !== generationId || !waiting || group.pendingSyncMembers.size === 0) return;
      const expired = [...group.pendingSyncMembers];
      this.logger.info({ groupId: group.groupId, members: expired }, 'members did not sync in time');
      for (const memberId of expired) {
        const member = group.members.get(memberId);
        if (member !== undefined) this.evictMember(group, member);
      }
      this.prepareRebalance(group, 'pending sync expired');
    });
  }

  private removePendingSync(group: Group, memberId: string): void {
    group.pendingSyncMembers.delete(memberId);
    if (group.pendingSyncMembers.size === 0) group.clearSyncTimer();
  }

  private setAndPropagateAssignment(group: Group, assignments: readonly SyncGroupRequestAssignment[]): void {
    const byMember = new Map<string, Buffer>();
    for (const { memberId, assignment } of assignments) byMember.set(memberId, Buffer.from(assignment));
    for (const member of group.members.values()) member.assignment = byMember.get(member.memberId) ?? EMPTY_BYTES;
    group.transitionTo(GroupState.Stable);
    this.logger.info({ groupId: group.groupId, generationId: group.generationId }, 'assignment received from leader');
    for (const member of group.members.values()) {
      const answered = group.completeSync(member, {
        errorCode: ErrorCode.NONE,
        protocolType: group.protocolType,
        protocolName: group.protocolName,
        assignment: member.assignment,
      });
      if (answered) this.scheduleSessionExpiry(group, member, member.sessionTimeoutMs);
    }
  }

  private resetAndPropagateAssignmentError(group: Group, errorCode: number): void {
    for (const member of group.members.values()) {
      member.assignment = EMPTY_BYTES;
      if (group.completeSync(member, syncErrorResponse(errorCode))) {
        this.scheduleSessionExpiry(group, member, member.sessionTimeoutMs);
      }
    }
  }

  // ---- membership expiry and removal ----

  private scheduleSessionExpiry(group: Group, member: Member, timeoutMs: number): void {
    member.clearSessionTimer();
    member.sessionTimer = this.setTimer(timeoutMs, () => {
      member.sessionTimer = undefined;
      if (group.members.get(member.memberId) !== member || member.isLeaving) return;
      // A member parked in a rebalance is alive; its timer restarts when the step completes.
      if (!member.isNew && (member.isAwaitingJoin || member.isAwaitingSync)) return;
      this.logger.info({ groupId: group.groupId, memberId: member.memberId, isNew: member.isNew }, 'member session expired');
      this.removeMember(group, member);
      this.maybeDropGroup(group);
    });
  }

  /** Removes a member (leave, expiry) and moves the group on: rebalance or finish the join. */
  private removeMember(group: Group, member: Member): void {
    this.evictMember(group, member);
    switch (group.state) {
      case GroupState.Stable:
      case GroupState.CompletingRebalance:
        this.maybePrepareRebalanceOrCompleteJoin(group, `member ${member.memberId} removed`);
        break;
      case GroupState.PreparingRebalance:
        this.maybeCompleteJoinPhase(group);
        break;
      default:
        break;
    }
  }

  /** Takes the member out of the group, answering its parked requests; the caller moves the group on. */
  private evictMember(group: Group, member: Member): void {
    member.isLeaving = true;
    group.completeJoin(member, joinErrorResponse(UNKNOWN_MEMBER_ID, ErrorCode.UNKNOWN_MEMBER_ID));
    group.completeSync(member, syncErrorResponse(ErrorCode.UNKNOWN_MEMBER_ID));
    group.remove(member.memberId);
  }

  /** Forgets a group with nobody in it (its committed offsets stay in the offset store). */
  private maybeDropGroup(group: Group): void {
    if (
      group.is(GroupState.Empty) &&
      group.members.size === 0 &&
      group.pendingJoinMembers.size === 0 &&
      this.groups.get(group.groupId) === group
    ) {
      this.dropGroup(group);
    }
  }

  private dropGroup(group: Group): void {
    group.clearTimers();
    group.transitionTo(GroupState.Dead);
    this.groups.delete(group.groupId);
  }

  // ---- SyncGroup ----

  async syncGroup(request: SyncGroupRequest): Promise<SyncGroupResponse> {
    const { groupId, memberId } = request;
    const statusError = this.checkStatus(groupId, false);
    // While loading the rebalance state is lost anyway: have the member rejoin (as Kafka).
    if (statusError === ErrorCode.COORDINATOR_LOAD_IN_PROGRESS) return syncErrorResponse(ErrorCode.REBALANCE_IN_PROGRESS);
    if (statusError !== ErrorCode.NONE) return syncErrorResponse(statusError);
    const group = this.groups.get(groupId);
    if (group === undefined) return syncErrorResponse(ErrorCode.UNKNOWN_MEMBER_ID);
    const memberError = group.validateMember(memberId, request.groupInstanceId);
    if (memberError !== ErrorCode.NONE) return syncErrorResponse(memberError);
    if (request.generationId !== group.generationId) return syncErrorResponse(ErrorCode.ILLEGAL_GENERATION);
    if (
      (request.protocolType !== null && request.protocolType !== group.protocolType) ||
      (request.protocolName !== null && request.protocolName !== group.protocolName)
    ) {
      return syncErrorResponse(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    }
    const member = group.members.get(memberId)!;
    switch (group.state) {
      case GroupState.PreparingRebalance:
        return syncErrorResponse(ErrorCode.REBALANCE_IN_PROGRESS);
      case GroupState.CompletingRebalance:
        return new Promise<SyncGroupResponse>((respond) => {
          group.setSyncWaiter(member, respond);
          this.removePendingSync(group, memberId);
          if (group.isLeader(memberId)) this.setAndPropagateAssignment(group, request.assignments);
        });
      case GroupState.Stable:
        this.removePendingSync(group, memberId);
        this.scheduleSessionExpiry(group, member, member.sessionTimeoutMs);
        return {
          errorCode: ErrorCode.NONE,
          protocolType: group.protocolType,
          protocolName: group.protocolName,
          assignment: member.assignment,
        };
      default:
        return syncErrorResponse(ErrorCode.UNKNOWN_MEMBER_ID);
    }
  }

  // ---- Heartbeat ----

  async heartbeat(request: HeartbeatRequest): Promise<HeartbeatResponse> {
    const statusError = this.checkStatus(request.groupId, false);
    // Kafka answers heartbeats blindly while loading: older clients treat the error as fatal.
    if (statusError === ErrorCode.COORDINATOR_LOAD_IN_PROGRESS) return { errorCode: ErrorCode.NONE };
    if (statusError !== ErrorCode.NONE) return { errorCode: statusError };
    const group = this.groups.get(request.groupId);
    if (group === undefined) return { errorCode: ErrorCode.UNKNOWN_MEMBER_ID };
    const memberError = group.validateMember(request.memberId, request.groupInstanceId);
    if (memberError !== ErrorCode.NONE) return { errorCode: memberError };
    if (request.generationId !== group.generationId) return { errorCode: ErrorCode.ILLEGAL_GENERATION };
    const member = group.members.get(request.memberId)!;
    switch (group.state) {
      case GroupState.PreparingRebalance:
        this.scheduleSessionExpiry(group, member, member.sessionTimeoutMs);
        return { errorCode: ErrorCode.REBALANCE_IN_PROGRESS };
      case GroupState.CompletingRebalance:
      case GroupState.Stable:
        this.scheduleSessionExpiry(group, member, member.sessionTimeoutMs);
        return { errorCode: ErrorCode.NONE };
      default:
        return { errorCode: ErrorCode.UNKNOWN_MEMBER_ID };
    }
  }

  // ---- LeaveGroup ----

  async leaveGroup(request: LeaveGroupRequest): Promise<LeaveGroupResponse> {
    const statusError = this.checkStatus(request.groupId, false);
    if (statusError !== ErrorCode.NONE) return { errorCode: statusError, members: [] };
    const group = this.groups.get(request.groupId);
    const members = request.members.map((identity) => ({
      memberId: identity.memberId,
      groupInstanceId: identity.groupInstanceId,
      errorCode: group === undefined ? ErrorCode.UNKNOWN_MEMBER_ID : this.leaveOne(group, identity),
    }));
    if (group !== undefined) this.maybeDropGroup(group);
    return { errorCode: ErrorCode.NONE, members };
  }

  private leaveOne(group: Group, identity: MemberIdentity): number {
    const { memberId, groupInstanceId } = identity;
    let member: Member | undefined;
    if (memberId === UNKNOWN_MEMBER_ID) {
      // Removal of a static member by its instance id alone (kafka-consumer-groups, admin).
      const currentId = groupInstanceId === null ? undefined : group.staticMembers.get(groupInstanceId);
      member = currentId === undefined ? undefined : group.members.get(currentId);
      if (member === undefined) return ErrorCode.UNKNOWN_MEMBER_ID;
    } else if (groupInstanceId === null && group.pendingJoinMembers.has(memberId)) {
      group.removePendingMember(memberId);
      this.maybeCompleteJoinPhase(group);
      return ErrorCode.NONE;
    } else {
      const memberError = group.validateMember(memberId, groupInstanceId);
      if (memberError !== ErrorCode.NONE) return memberError;
      member = group.members.get(memberId)!;
    }
    this.logger.info({ groupId: group.groupId, memberId: member.memberId, reason: identity.reason }, 'member leaves');
    this.removeMember(group, member);
    return ErrorCode.NONE;
  }

  // ---- OffsetCommit ----

  async offsetCommit(request: OffsetCommitRequest): Promise<OffsetCommitResponse> {
    const statusError = this.checkStatus(request.groupId, true);
    if (statusError !== ErrorCode.NONE) return commitResponse(request, () => statusError);
    const group = this.groups.get(request.groupId);
    const commitError = group === undefined
      ? (request.generationId < 0 ? ErrorCode.NONE : ErrorCode.ILLEGAL_GENERATION)
      : this.validateOffsetCommit(group, request);
    if (commitError !== ErrorCode.NONE) return commitResponse(request, () => commitError);
    const member = group?.members.get(request.memberId);
    if (group !== undefined && member !== undefined) this.scheduleSessionExpiry(group, member, member.sessionTimeoutMs);

    const nowMs = Date.now();
    const commit: TopicCommit[] = [];
    const errors = new Map<string, Map<number, number>>();
    for (const topic of request.topics) {
      const partitions: TopicCommit['partitions'] = [];
      const topicErrors = new Map<number, number>();
      errors.set(topic.name, topicErrors);
      for (const p of topic.partitions) {
        const metadata = p.committedMetadata ?? '';
        if (Buffer.byteLength(metadata, 'utf8') > this.maxOffsetMetadataBytes) {
          topicErrors.set(p.partitionIndex, ErrorCode.OFFSET_METADATA_TOO_LARGE);
          continue;
        }
        const commitTimestamp = p.commitTimestamp ?? -1;
        partitions.push({
          partition: p.partitionIndex,
          offset: p.committedOffset,
          leaderEpoch: p.committedLeaderEpoch,
          metadata,
          commitTimestampMs: commitTimestamp >= 0 ? commitTimestamp : nowMs,
        });
      }
      if (partitions.length > 0) commit.push({ topic: topic.name, partitions });
    }
    let storeError: number = ErrorCode.NONE;
    if (commit.length > 0) {
      try {
        await this.offsets.commit(request.groupId, commit);
      } catch (error) {
        this.logger.error({ err: error, groupId: request.groupId }, 'offset commit failed');
        storeError = ErrorCode.COORDINATOR_NOT_AVAILABLE;
      }
    }
    return commitResponse(request, (topic, partition) => errors.get(topic)?.get(partition) ?? storeError);
  }

  /** Kafka's ClassicGroup.validateOffsetCommit. */
  private validateOffsetCommit(group: Group, request: OffsetCommitRequest): number {
    const { generationId, memberId, groupInstanceId } = request;
    // No group management (simple consumer, admin): allowed while nobody is a member.
    if (generationId < 0 && group.is(GroupState.Empty)) return ErrorCode.NONE;
    if (generationId >= 0 || memberId !== UNKNOWN_MEMBER_ID || groupInstanceId !== null) {
      const memberError = group.validateMember(memberId, groupInstanceId);
      if (memberError !== ErrorCode.NONE) return memberError;
      if (generationId !== group.generationId) return ErrorCode.ILLEGAL_GENERATION;
    } else if (!group.is(GroupState.Empty)) {
      return ErrorCode.UNKNOWN_MEMBER_ID;
    }
    // Valid member of the generation, but it has not got its assignment yet.
    if (group.is(GroupState.CompletingRebalance)) return ErrorCode.REBALANCE_IN_PROGRESS;
    return ErrorCode.NONE;
  }

  // ---- OffsetFetch ----

  async offsetFetch(request: OffsetFetchRequest): Promise<OffsetFetchResponse> {
    const statusError = this.checkStatus(request.groupId, true);
    if (statusError !== ErrorCode.NONE) return { errorCode: statusError, topics: [] };
    const committed = this.offsets.groupOffsets(request.groupId);
    if (request.topics === null) {
      const topics: OffsetFetchResponseTopic[] = [];
      for (const [name, partitions] of committed ?? []) {
        topics.push({
          name,
          partitions: [...partitions].map(([partitionIndex, o]) => ({
            partitionIndex,
            committedOffset: o.offset,
            committedLeaderEpoch: o.leaderEpoch,
            metadata: o.metadata,
            errorCode: ErrorCode.NONE,
          })),
        });
      }
      return { errorCode: ErrorCode.NONE, topics };
    }
    const topics = request.topics.map((topic) => ({
      name: topic.name,
      partitions: topic.partitionIndexes.map((partitionIndex) => {
        const o = committed?.get(topic.name)?.get(partitionIndex);
        return {
          partitionIndex,
          committedOffset: o?.offset ?? -1,
          committedLeaderEpoch: o?.leaderEpoch ?? -1,
          metadata: o?.metadata ?? '',
          errorCode: ErrorCode.NONE,
        };
      }),
    }));
    return { errorCode: ErrorCode.NONE, topics };
  }

  // ---- DescribeGroups, ListGroups, DeleteGroups ----

  async describeGroups(groupIds: readonly string[]): Promise<DescribeGroupsResponse> {
    return { groups: groupIds.map((groupId) => this.describeGroup(groupId)) };
  }

  private describeGroup(groupId: string): DescribedGroup {
    const described: DescribedGroup = {
      errorCode: this.checkStatus(groupId, true),
      groupId,
      groupState: GroupState.Dead,
      protocolType: '',
      protocolData: '',
      members: [],
    };
    if (described.errorCode !== ErrorCode.NONE) return described;
    const group = this.groups.get(groupId);
    if (group === undefined) {
      if (this.offsets.hasGroup(groupId)) described.groupState = GroupState.Empty;
      return described;
    }
    const stable = group.is(GroupState.Stable);
    const protocolName = group.protocolName ?? '';
    described.groupState = group.state;
    described.protocolType = group.protocolType ?? '';
    described.protocolData = stable ? protocolName : '';
    described.members = [...group.members.values()].map((m) => ({
      memberId: m.memberId,
      groupInstanceId: m.groupInstanceId,
      clientId: m.clientId,
      clientHost: m.clientHost,
      memberMetadata: stable ? m.metadataFor(protocolName) : EMPTY_BYTES,
      memberAssignment: stable ? m.assignment : EMPTY_BYTES,
    }));
    return described;
  }

  async listGroups(request: ListGroupsRequest = {}): Promise<ListGroupsResponse> {
    const statusError = this.checkStatus('', true);
    if (statusError !== ErrorCode.NONE) return { errorCode: statusError, groups: [] };
    const states = new Set((request.statesFilter ?? []).map((s) => s.toLowerCase()));
    const groups: ListedGroup[] = [];
    for (const group of this.groups.values()) {
      groups.push({ groupId: group.groupId, protocolType: group.protocolType ?? '', groupState: group.state });
    }
    for (const groupId of this.offsets.groupIds()) {
      if (!this.groups.has(groupId)) groups.push({ groupId, protocolType: '', groupState: GroupState.Empty });
    }
    return {
      errorCode: ErrorCode.NONE,
      groups: states.size === 0 ? groups : groups.filter((g) => states.has(g.groupState.toLowerCase())),
    };
  }

  /** Deletes empty groups and their committed offsets (a tombstone in the offsets stream). */
  async deleteGroups(groupIds: readonly string[]): Promise<DeleteGroupsResponse> {
    const results = await Promise.all(groupIds.map((groupId) => this.deleteGroup(groupId)));
    return { results };
  }

  private async deleteGroup(groupId: string): Promise<DeleteGroupsResult> {
    const statusError = this.checkStatus(groupId, true);
    if (statusError !== ErrorCode.NONE) return { groupId, errorCode: statusError };
    const group = this.groups.get(groupId);
    if (group !== undefined && !group.is(GroupState.Empty)) return { groupId, errorCode: ErrorCode.NON_EMPTY_GROUP };
    const hasOffsets = this.offsets.hasGroup(groupId);
    if (group === undefined && !hasOffsets) return { groupId, errorCode: ErrorCode.GROUP_ID_NOT_FOUND };
    if (group !== undefined) this.dropGroup(group);
    if (!hasOffsets) return { groupId, errorCode: ErrorCode.NONE };
    try {
      await this.offsets.deleteGroup(groupId);
      this.logger.info({ groupId }, 'group deleted');
      return { groupId, errorCode: ErrorCode.NONE };
    } catch (error) {
      this.logger.error({ err: error, groupId }, 'group deletion failed');
      return { groupId, errorCode: ErrorCode.COORDINATOR_NOT_AVAILABLE };
    }
  }

  // ---- helpers ----

  /**
   * Kafka's validateGroupStatus: the group id (which must not be empty for membership calls),
   * then whether this coordinator is loading or has stopped.
   */
  private checkStatus(groupId: string, allowEmptyGroupId: boolean): number {
    if (!allowEmptyGroupId && groupId.length === 0) return ErrorCode.INVALID_GROUP_ID;
    if (this.state === CoordinatorState.Loading) return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS;
    if (this.state === CoordinatorState.Stopped) return ErrorCode.NOT_COORDINATOR;
    return ErrorCode.NONE;
  }

  private setTimer(delayMs: number, onTimeout: () => void): NodeJS.Timeout {
    const timer = setTimeout(onTimeout, delayMs);
    timer.unref();
    return timer;
  }

  private countGroupsByState(counts: Map<GroupState, number>): void {
    for (const group of this.groups.values()) counts.set(group.state, (counts.get(group.state) ?? 0) + 1);
    let offsetOnly = 0;
    for (const groupId of this.offsets.groupIds()) if (!this.groups.has(groupId)) offsetOnly++;
    counts.set(GroupState.Empty, (counts.get(GroupState.Empty) ?? 0) + offsetOnly);
  }
}

/**
 * The member's protocols, first occurrence of each name kept (Kafka keys them by name), with
 * the metadata copied out of the request frame: the group keeps it for generations.
 */
function copyProtocols(protocols: readonly JoinGroupRequestProtocol[]): JoinGroupRequestProtocol[] {
  const seen = new Set<string>();
  const result: JoinGroupRequestProtocol[] = [];
  for (const { name, metadata } of protocols) {
    if (seen.has(name)) continue;
    seen.add(name);
    result.push({ name, metadata: Buffer.from(metadata) });
  }
  return result;
}

function clientReason(request: JoinGroupRequest): string {
  return request.reason ? `; client reason: ${request.reason}` : '';
}

function commitResponse(
  request: OffsetCommitRequest,
  errorFor: (topic: string, partition: number) => number,
): OffsetCommitResponse {
  const topics: OffsetCommitResponseTopic[] = request.topics.map((topic) => ({
    name: topic.name,
    partitions: topic.partitions.map((p) => ({ partitionIndex: p.partitionIndex, errorCode: errorFor(topic.name, p.partitionIndex) })),
  }));
  return { topics };
}
