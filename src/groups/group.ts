// One consumer group's membership state (Kafka's ClassicGroup / GroupMetadata): members, the
// protocol vote, the leader, the generation, and the timers that belong to the group. The rules
// of the protocol (who may join when, what triggers a rebalance) are in coordinator.ts; this
// file only keeps the bookkeeping consistent.

import { ErrorCode } from '../protocol/errors.ts';
import {
  GroupState,
  type JoinGroupRequestProtocol,
  type JoinGroupResponse,
  type JoinGroupResponseMember,
  type SyncGroupResponse,
} from './types.ts';

const EMPTY_BYTES = Buffer.alloc(0);

/** Allowed transitions, keyed by target state: the states one may come from (Kafka's table). */
const VALID_PREVIOUS_STATES: Record<GroupState, readonly GroupState[]> = {
  [GroupState.Empty]: [GroupState.PreparingRebalance],
  [GroupState.PreparingRebalance]: [GroupState.Stable, GroupState.CompletingRebalance, GroupState.Empty],
  [GroupState.CompletingRebalance]: [GroupState.PreparingRebalance],
  [GroupState.Stable]: [GroupState.CompletingRebalance],
  [GroupState.Dead]: [
    GroupState.Stable,
    GroupState.PreparingRebalance,
    GroupState.CompletingRebalance,
    GroupState.Empty,
    GroupState.Dead,
  ],
};

export type JoinWaiter = (response: JoinGroupResponse) => void;
export type SyncWaiter = (response: SyncGroupResponse) => void;

export interface MemberInit {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  rebalanceTimeoutMs: number;
  sessionTimeoutMs: number;
  protocolType: string;
  protocols: JoinGroupRequestProtocol[];
}

export class Member {
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  readonly clientId: string;
  readonly clientHost: string;
  readonly protocolType: string;
  rebalanceTimeoutMs: number;
  sessionTimeoutMs: number;
  protocols: JoinGroupRequestProtocol[];
  /** The last assignment the leader gave this member. */
  assignment: Buffer = EMPTY_BYTES;
  /** Joined but no JoinGroup answered yet: expires on the new-member timeout, not the session. */
  isNew = false;
  /** Set when it leaves, so a racing session expiry does nothing. */
  isLeaving = false;
  /** The pending JoinGroup's answer, while the member waits for the rebalance. */
  joinWaiter: JoinWaiter | undefined;
  /** The pending SyncGroup's answer, while the member waits for the leader's assignment. */
  syncWaiter: SyncWaiter | undefined;
  /** Session (or new-member join) expiry. */
  sessionTimer: NodeJS.Timeout | undefined;

  constructor(init: MemberInit, assignment: Buffer = EMPTY_BYTES) {
    this.memberId = init.memberId;
    this.groupInstanceId = init.groupInstanceId;
    this.clientId = init.clientId;
    this.clientHost = init.clientHost;
    this.protocolType = init.protocolType;
    this.rebalanceTimeoutMs = init.rebalanceTimeoutMs;
    this.sessionTimeoutMs = init.sessionTimeoutMs;
    this.protocols = init.protocols;
    this.assignment = assignment;
  }

  get isAwaitingJoin(): boolean {
    return this.joinWaiter !== undefined;
  }

  get isAwaitingSync(): boolean {
    return this.syncWaiter !== undefined;
  }

  /** Same protocols, in the same order, with the same metadata bytes. */
  matches(protocols: readonly JoinGroupRequestProtocol[]): boolean {
    if (protocols.length !== this.protocols.length) return false;
    return protocols.every((p, i) => p.name === this.protocols[i]!.name && p.metadata.equals(this.protocols[i]!.metadata));
  }

  metadataFor(protocolName: string): Buffer {
    const protocol = this.protocols.find((p) => p.name === protocolName);
    if (protocol === undefined) throw new Error(`member ${this.memberId} does not support protocol ${protocolName}`);
    return protocol.metadata;
  }

  /** The member's most preferred protocol among the candidates. */
  vote(candidates: ReadonlySet<string>): string {
    const choice = this.protocols.find((p) => candidates.has(p.name));
    if (choice === undefined) throw new Error(`member ${this.memberId} supports none of ${[...candidates].join(', ')}`);
    return choice.name;
  }

  clearSessionTimer(): void {
    if (this.sessionTimer !== undefined) clearTimeout(this.sessionTimer);
    this.sessionTimer = undefined;
  }
}

export class Group {
  readonly groupId: string;
  state: GroupState = GroupState.Empty;
  previousState: GroupState = GroupState.Empty;
  generationId = 0;
  /** The protocol type of the members (e.g. 'consumer'); null while the group has never had one. */
  protocolType: string | null = null;
  /** The protocol selected for the current generation. */
  protocolName: string | null = null;
  leaderId: string | null = null;
  /** In join order (a Map keeps insertion order): the next leader is the oldest member. */
  readonly members = new Map<string, Member>();
  /** groupInstanceId → memberId. */
  readonly staticMembers = new Map<string, string>();
  /** Member ids handed out with MEMBER_ID_REQUIRED, not joined yet → their expiry timer. */
  readonly pendingJoinMembers = new Map<string, NodeJS.Timeout>();
  /** Members of the current generation that have not sent SyncGroup yet. */
  readonly pendingSyncMembers = new Set<string>();
  /** Set when a member joins during the initial delay: the delay is extended once more. */
  newMemberAdded = false;
  /** Rebalance completion: the initial delay or the rebalance timeout. */
  joinTimer: NodeJS.Timeout | undefined;
  /** Pending-sync expiry: members that never send SyncGroup are removed. */
  syncTimer: NodeJS.Timeout | undefined;

  private numMembersAwaitingJoin = 0;
  /** Protocol name → number of members supporting it. */
  private readonly supportedProtocols = new Map<string, number>();

  constructor(groupId: string) {
    this.groupId = groupId;
  }

  is(state: GroupState): boolean {
    return this.state === state;
  }

  transitionTo(target: GroupState): void {
    if (!VALID_PREVIOUS_STATES[target].includes(this.state)) {
      throw new Error(`group ${this.groupId}: illegal transition ${this.state} → ${target}`);
    }
    this.previousState = this.state;
    this.state = target;
  }

  canRebalance(): boolean {
    return VALID_PREVIOUS_STATES[GroupState.PreparingRebalance].includes(this.state);
  }

  /** Members and pending members: what counts against the group size limit. */
  size(): number {
    return this.members.size + this.pendingJoinMembers.size;
  }

  isLeader(memberId: string): boolean {
    return this.leaderId === memberId;
  }

  add(member: Member, joinWaiter: JoinWaiter | undefined): void {
    if (this.members.size === 0) this.protocolType = member.protocolType;
    if (member.protocolType !== this.protocolType) throw new Error(`group ${this.groupId}: protocol type mismatch`);
    if (this.members.has(member.memberId)) throw new Error(`group ${this.groupId}: member ${member.memberId} exists`);
    this.members.set(member.memberId, member);
    this.countProtocols(member, 1);
    if (this.leaderId === null) this.leaderId = member.memberId;
    if (member.groupInstanceId !== null) this.staticMembers.set(member.groupInstanceId, member.memberId);
    this.removePendingMember(member.memberId);
    this.setJoinWaiter(member, joinWaiter);
  }

  /** Removes the member and cancels its timer. Its waiters must have been answered by the caller. */
  remove(memberId: string): void {
    const member = this.members.get(memberId);
    if (member !== undefined) {
      this.members.delete(memberId);
      this.countProtocols(member, -1);
      if (member.isAwaitingJoin) this.numMembersAwaitingJoin--;
      member.joinWaiter = undefined;
      member.syncWaiter = undefined;
      member.clearSessionTimer();
      if (member.groupInstanceId !== null && this.staticMembers.get(member.groupInstanceId) === memberId) {
        this.staticMembers.delete(member.groupInstanceId);
      }
    }
    if (this.isLeader(memberId)) {
      const next = this.members.keys().next();
      this.leaderId = next.done === true ? null : next.value;
    }
    this.removePendingMember(memberId);
    this.pendingSyncMembers.delete(memberId);
  }

  updateMember(
    member: Member,
    protocols: JoinGroupRequestProtocol[],
    rebalanceTimeoutMs: number,
    sessionTimeoutMs: number,
    joinWaiter: JoinWaiter | undefined,
  ): void {
    this.countProtocols(member, -1);
    member.protocols = protocols;
    this.countProtocols(member, 1);
    member.rebalanceTimeoutMs = rebalanceTimeoutMs;
    member.sessionTimeoutMs = sessionTimeoutMs;
    this.setJoinWaiter(member, joinWaiter);
  }

  /**
   * Parks (or clears) the member's JoinGroup. A JoinGroup already parked for the same member (a
   * client retrying on a new connection) is answered REBALANCE_IN_PROGRESS so that no caller
   * waits forever.
   */
  private setJoinWaiter(member: Member, joinWaiter: JoinWaiter | undefined): void {
    const previous = member.joinWaiter;
    if (previous !== undefined && joinWaiter !== undefined) {
      previous(joinErrorResponse(member.memberId, ErrorCode.REBALANCE_IN_PROGRESS));
    }
    if (previous === undefined && joinWaiter !== undefined) this.numMembersAwaitingJoin++;
    if (previous !== undefined && joinWaiter === undefined) this.numMembersAwaitingJoin--;
    member.joinWaiter = joinWaiter;
  }

  /** Answers the member's parked JoinGroup, if any. */
  completeJoin(member: Member, response: JoinGroupResponse): boolean {
    const waiter = member.joinWaiter;
    if (waiter === undefined) return false;
    member.joinWaiter = undefined;
    this.numMembersAwaitingJoin--;
    waiter(response);
    return true;
  }

  /** Parks the member's SyncGroup; a SyncGroup already parked for it is answered first. */
  setSyncWaiter(member: Member, syncWaiter: SyncWaiter): void {
    member.syncWaiter?.(syncErrorResponse(ErrorCode.REBALANCE_IN_PROGRESS));
    member.syncWaiter = syncWaiter;
  }

  completeSync(member: Member, response: SyncGroupResponse): boolean {
    const waiter = member.syncWaiter;
    if (waiter === undefined) return false;
    member.syncWaiter = undefined;
    waiter(response);
    return true;
  }

  addPendingMember(memberId: string, expiry: NodeJS.Timeout): void {
    if (this.members.has(memberId)) throw new Error(`group ${this.groupId}: pending member ${memberId} is a member`);
    this.pendingJoinMembers.set(memberId, expiry);
  }

  removePendingMember(memberId: string): boolean {
    const timer = this.pendingJoinMembers.get(memberId);
    if (timer === undefined) return false;
    clearTimeout(timer);
    this.pendingJoinMembers.delete(memberId);
    return true;
  }

  /**
   * [Static members] Moves the member under a new member id, keeping its assignment; the old
   * id's parked requests are answered FENCED_INSTANCE_ID.
   */
  replaceStaticMember(groupInstanceId: string, oldMemberId: string, newMemberId: string): Member {
    const old = this.members.get(oldMemberId);
    if (old === undefined) throw new Error(`group ${this.groupId}: no member ${oldMemberId} to replace`);
    this.completeJoin(old, joinErrorResponse(oldMemberId, ErrorCode.FENCED_INSTANCE_ID));
    this.completeSync(old, syncErrorResponse(ErrorCode.FENCED_INSTANCE_ID));
    old.clearSessionTimer();
    this.members.delete(oldMemberId);
    this.countProtocols(old, -1);
    const replacement = new Member({ ...old, memberId: newMemberId }, old.assignment);
    this.members.set(newMemberId, replacement);
    this.countProtocols(replacement, 1);
    if (this.isLeader(oldMemberId)) this.leaderId = newMemberId;
    if (this.pendingSyncMembers.delete(oldMemberId)) this.pendingSyncMembers.add(newMemberId);
    this.staticMembers.set(groupInstanceId, newMemberId);
    return replacement;
  }

  /**
   * Kafka's check for requests naming a member: a groupInstanceId that is not a known static
   * member → UNKNOWN_MEMBER_ID; one mapped to another member id → FENCED_INSTANCE_ID; an
   * unknown member id → UNKNOWN_MEMBER_ID. NONE when the member is current.
   */
  validateMember(memberId: string, groupInstanceId: string | null): number {
    if (groupInstanceId !== null) {
      const current = this.staticMembers.get(groupInstanceId);
      if (current === undefined) return ErrorCode.UNKNOWN_MEMBER_ID;
      if (current !== memberId) return ErrorCode.FENCED_INSTANCE_ID;
    }
    return this.members.has(memberId) ? ErrorCode.NONE : ErrorCode.UNKNOWN_MEMBER_ID;
  }

  /**
   * Whether a member with these protocols may join: any non-empty set into an empty group,
   * otherwise the group's protocol type and at least one protocol every member supports.
   */
  supportsProtocols(protocolType: string, protocolNames: readonly string[]): boolean {
    if (this.is(GroupState.Empty)) return protocolType.length > 0 && protocolNames.length > 0;
    return (
      this.protocolType === protocolType &&
      protocolNames.some((name) => (this.supportedProtocols.get(name) ?? 0) === this.members.size)
    );
  }

  /**
   * Kafka's rule: among the protocols every member supports, each member votes for its most
   * preferred one; the most votes wins. Ties go to the protocol voted first in join order.
   */
  selectProtocol(): string {
    if (this.members.size === 0) throw new Error(`group ${this.groupId}: cannot select a protocol without members`);
    const candidates = new Set<string>();
    for (const [name, count] of this.supportedProtocols) if (count === this.members.size) candidates.add(name);
    const votes = new Map<string, number>();
    for (const member of this.members.values()) {
      const name = member.vote(candidates);
      votes.set(name, (votes.get(name) ?? 0) + 1);
    }
    let winner = '';
    let most = 0;
    for (const [name, count] of votes) {
      if (count > most) {
        winner = name;
        most = count;
      }
    }
    return winner;
  }

  hasAllMembersJoined(): boolean {
    return this.members.size === this.numMembersAwaitingJoin && this.pendingJoinMembers.size === 0;
  }

  notYetRejoinedMembers(): Member[] {
    return [...this.members.values()].filter((m) => !m.isAwaitingJoin);
  }

  /** Keeps the leader if it rejoined, else picks a member that did. False if none did. */
  maybeElectNewJoinedLeader(): boolean {
    if (this.leaderId === null) return false;
    if (this.members.get(this.leaderId)?.isAwaitingJoin === true) return true;
    for (const member of this.members.values()) {
      if (member.isAwaitingJoin) {
        this.leaderId = member.memberId;
        return true;
      }
    }
    return false;
  }

  /** The largest rebalance timeout among members: how long a rebalance waits for rejoins. */
  rebalanceTimeoutMs(): number {
    let max = 0;
    for (const member of this.members.values()) max = Math.max(max, member.rebalanceTimeoutMs);
    return max;
  }

  initNextGeneration(): void {
    this.generationId++;
    if (this.members.size > 0) {
      this.protocolName = this.selectProtocol();
      this.transitionTo(GroupState.CompletingRebalance);
    } else {
      this.protocolName = null;
      this.transitionTo(GroupState.Empty);
    }
    this.pendingSyncMembers.clear();
  }

  /** The leader's view: every member with its metadata for the selected protocol. */
  currentMemberMetadata(): JoinGroupResponseMember[] {
    const protocolName = this.protocolName;
    if (protocolName === null) throw new Error(`group ${this.groupId}: no protocol selected`);
    return [...this.members.values()].map((m) => ({
      memberId: m.memberId,
      groupInstanceId: m.groupInstanceId,
      metadata: m.metadataFor(protocolName),
    }));
  }

  clearJoinTimer(): void {
    if (this.joinTimer !== undefined) clearTimeout(this.joinTimer);
    this.joinTimer = undefined;
  }

  clearSyncTimer(): void {
    if (this.syncTimer !== undefined) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
  }

  /** Cancels every timer the group owns (its own, its members', its pending members'). */
  clearTimers(): void {
    this.clearJoinTimer();
    this.clearSyncTimer();
    for (const member of this.members.values()) member.clearSessionTimer();
    for (const timer of this.pendingJoinMembers.values()) clearTimeout(timer);
    this.pendingJoinMembers.clear();
  }

  private countProtocols(member: Member, delta: 1 | -1): void {
    for (const { name } of member.protocols) {
      const count = (this.supportedProtocols.get(name) ?? 0) + delta;
      if (count === 0) this.supportedProtocols.delete(name);
      else this.supportedProtocols.set(name, count);
    }
  }
}

export function joinErrorResponse(memberId: string, errorCode: number): JoinGroupResponse {
  return {
    errorCode,
    generationId: -1,
    protocolType: null,
    protocolName: null,
    leader: '',
    skipAssignment: false,
    memberId,
    members: [],
  };
}

export function syncErrorResponse(errorCode: number): SyncGroupResponse {
  return { errorCode, protocolType: null, protocolName: null, assignment: EMPTY_BYTES };
}
