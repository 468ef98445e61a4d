// What the group coordinator takes and answers: plain shapes after the Kafka messages, in the
// lowerCamelCase of Kafka's JSON schema field names, so a broker handler maps a decoded request
// onto a call (and a result onto a response) field by field. Throttle times are the handler's.
//
// Fields a request version lacks are passed as Kafka's defaults: groupInstanceId null (before
// JoinGroup v5), rebalanceTimeoutMs = sessionTimeoutMs (JoinGroup v0), generationId -1 and
// memberId '' (OffsetCommit v0), protocolType/protocolName null (SyncGroup before v5).

/** Group states of Kafka's classic group coordinator; the strings are Kafka's state names. */
export const GroupState = {
  Empty: 'Empty',
  PreparingRebalance: 'PreparingRebalance',
  CompletingRebalance: 'CompletingRebalance',
  Stable: 'Stable',
  Dead: 'Dead',
} as const;
export type GroupState = (typeof GroupState)[keyof typeof GroupState];

/** Member id of a member that does not have one yet (JoinGroup) or of "no member" (OffsetCommit). */
export const UNKNOWN_MEMBER_ID = '';
/** Generation of a request made outside group management (OffsetCommit by a simple consumer). */
export const NO_GENERATION = -1;

// ---- JoinGroup (API key 11) ----

export interface JoinGroupRequestProtocol {
  name: string;
  /** Assignor-specific subscription bytes, passed to the leader untouched. */
  metadata: Buffer;
}

export interface JoinGroupRequest {
  groupId: string;
  sessionTimeoutMs: number;
  /** v1+; for v0 pass sessionTimeoutMs. */
  rebalanceTimeoutMs: number;
  /** '' on a member's first join. */
  memberId: string;
  /** v5+ static membership (group.instance.id); null for dynamic members. */
  groupInstanceId: string | null;
  protocolType: string;
  /** In the member's order of preference. */
  protocols: JoinGroupRequestProtocol[];
  /** v8+; logged only. */
  reason?: string | null;
  /** From the request header. */
  clientId: string;
  /** The peer address, shown by DescribeGroups. */
  clientHost: string;
  /** The request's version: v4+ gets MEMBER_ID_REQUIRED first; v9+ may get skipAssignment. */
  apiVersion: number;
}

export interface JoinGroupResponseMember {
  memberId: string;
  groupInstanceId: string | null;
  /** The member's metadata for the selected protocol, as it sent it. */
  metadata: Buffer;
}

export interface JoinGroupResponse {
  errorCode: number;
  generationId: number;
  /** v7+; null on error (older versions write the protocol name as ''). */
  protocolType: string | null;
  protocolName: string | null;
  /** Member id of the leader; '' on error. */
  leader: string;
  /** v9+: the leader of a stable group replaced by a static rejoin need not reassign. */
  skipAssignment: boolean;
  memberId: string;
  /** Every member, for the leader only; empty for followers. */
  members: JoinGroupResponseMember[];
}

// ---- SyncGroup (API key 14) ----

export interface SyncGroupRequestAssignment {
  memberId: string;
  assignment: Buffer;
}

export interface SyncGroupRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  /** v5+; checked against the group's when given. */
  protocolType: string | null;
  protocolName: string | null;
  /** The leader's assignments; empty from followers. */
  assignments: SyncGroupRequestAssignment[];
}

export interface SyncGroupResponse {
  errorCode: number;
  protocolType: string | null;
  protocolName: string | null;
  /** This member's assignment; empty on error. */
  assignment: Buffer;
}

// ---- Heartbeat (API key 12) ----

export interface HeartbeatRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
}

export interface HeartbeatResponse {
  errorCode: number;
}

// ---- LeaveGroup (API key 13) ----

export interface MemberIdentity {
  /** '' to remove a static member by groupInstanceId alone (admin removal, v3+). */
  memberId: string;
  groupInstanceId: string | null;
  reason?: string | null;
}

export interface LeaveGroupRequest {
  groupId: string;
  /** v3+ list; for v0-2 pass the request's one memberId as a single entry. */
  members: MemberIdentity[];
}

export interface LeaveGroupResponseMember {
  memberId: string;
  groupInstanceId: string | null;
  errorCode: number;
}

export interface LeaveGroupResponse {
  /** Top-level error. For v0-2 responses answer members[0].errorCode when this is NONE. */
  errorCode: number;
  members: LeaveGroupResponseMember[];
}

// ---- OffsetCommit (API key 8) ----

export interface OffsetCommitRequestPartition {
  partitionIndex: number;
  committedOffset: number;
  /** v6+; -1 when unknown. */
  committedLeaderEpoch: number;
  /** v1 only; -1 (or absent) means now. */
  commitTimestamp?: number;
  committedMetadata: string | null;
}

export interface OffsetCommitRequestTopic {
  name: string;
  partitions: OffsetCommitRequestPartition[];
}

export interface OffsetCommitRequest {
  groupId: string;
  /** GenerationIdOrMemberEpoch in newer schemas; -1 for commits outside group management. */
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  /** v2-4; accepted and ignored (offsets are kept until the group is deleted). */
  retentionTimeMs?: number;
  topics: OffsetCommitRequestTopic[];
}

export interface OffsetCommitResponsePartition {
  partitionIndex: number;
  errorCode: number;
}

export interface OffsetCommitResponseTopic {
  name: string;
  partitions: OffsetCommitResponsePartition[];
}

export interface OffsetCommitResponse {
  topics: OffsetCommitResponseTopic[];
}

// ---- OffsetFetch (API key 9), one group (v8+ handlers call once per group) ----

export interface OffsetFetchRequestTopic {
  name: string;
  partitionIndexes: number[];
}

export interface OffsetFetchRequest {
  groupId: string;
  /** null: every committed partition of the group (v2+). */
  topics: OffsetFetchRequestTopic[] | null;
  /** v7+; there are no transactional offsets yet, so every offset is stable. */
  requireStable?: boolean;
}

export interface OffsetFetchResponsePartition {
  partitionIndex: number;
  /** -1 when nothing is committed. */
  committedOffset: number;
  committedLeaderEpoch: number;
  metadata: string | null;
  errorCode: number;
}

export interface OffsetFetchResponseTopic {
  name: string;
  partitions: OffsetFetchResponsePartition[];
}

export interface OffsetFetchResponse {
  /** v2+ top-level error; for v0-1 put it on every partition. */
  errorCode: number;
  topics: OffsetFetchResponseTopic[];
}

// ---- DescribeGroups (15), ListGroups (16), DeleteGroups (42) ----

export interface DescribedGroupMember {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  /** Metadata for the selected protocol; empty unless the group is Stable (as Kafka). */
  memberMetadata: Buffer;
  memberAssignment: Buffer;
}

export interface DescribedGroup {
  errorCode: number;
  groupId: string;
  groupState: GroupState;
  protocolType: string;
  /** The selected protocol's name when Stable, else ''. */
  protocolData: string;
  members: DescribedGroupMember[];
}

export interface DescribeGroupsResponse {
  groups: DescribedGroup[];
}

export interface ListGroupsRequest {
  /** v4+; empty or absent: every state. Kafka's state names (case-insensitive). */
  statesFilter?: string[];
}

export interface ListedGroup {
  groupId: string;
  protocolType: string;
  groupState: GroupState;
}

export interface ListGroupsResponse {
  errorCode: number;
  groups: ListedGroup[];
}

export interface DeleteGroupsResult {
  groupId: string;
  errorCode: number;
}

export interface DeleteGroupsResponse {
  results: DeleteGroupsResult[];
}
