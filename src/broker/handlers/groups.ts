// JoinGroup, SyncGroup, Heartbeat, LeaveGroup: the classic group protocol, mapped onto the
// coordinator. The coordinator's types follow Kafka's field names, so the mapping is thin.

import type { JoinGroupRequest, JoinGroupResponse } from '../../protocol/apis/join-group.ts';
import type { SyncGroupRequest, SyncGroupResponse } from '../../protocol/apis/sync-group.ts';
import type { HeartbeatRequest, HeartbeatResponse } from '../../protocol/apis/heartbeat.ts';
import type { LeaveGroupRequest, LeaveGroupResponse } from '../../protocol/apis/leave-group.ts';
import { ErrorCode } from '../../protocol/errors.ts';
import type { RequestContext } from '../context.ts';

export async function handleJoinGroup(ctx: RequestContext, request: JoinGroupRequest): Promise<JoinGroupResponse> {
  const response = await ctx.broker.groups.joinGroup({
    groupId: request.groupId,
    sessionTimeoutMs: request.sessionTimeoutMs,
    rebalanceTimeoutMs: ctx.apiVersion === 0 || request.rebalanceTimeoutMs < 0 ? request.sessionTimeoutMs : request.rebalanceTimeoutMs,
    memberId: request.memberId,
    groupInstanceId: request.groupInstanceId,
    protocolType: request.protocolType,
    protocols: request.protocols,
    reason: request.reason,
    clientId: ctx.clientId ?? '',
    clientHost: ctx.connection.socket.remoteAddress ?? '',
    apiVersion: ctx.apiVersion,
  });
  return {
    throttleTimeMs: 0,
    ...response,
    protocolName: ctx.apiVersion < 7 ? response.protocolName ?? '' : response.protocolName,
  };
}

export async function handleSyncGroup(ctx: RequestContext, request: SyncGroupRequest): Promise<SyncGroupResponse> {
  const response = await ctx.broker.groups.syncGroup(request);
  return { throttleTimeMs: 0, ...response };
}

export async function handleHeartbeat(ctx: RequestContext, request: HeartbeatRequest): Promise<HeartbeatResponse> {
  const response = await ctx.broker.groups.heartbeat(request);
  return { throttleTimeMs: 0, ...response };
}

export async function handleLeaveGroup(ctx: RequestContext, request: LeaveGroupRequest): Promise<LeaveGroupResponse> {
  const members = ctx.apiVersion >= 3 ? request.members : [{ memberId: request.memberId, groupInstanceId: null, reason: null }];
  const response = await ctx.broker.groups.leaveGroup({ groupId: request.groupId, members });
  if (ctx.apiVersion >= 3) return { throttleTimeMs: 0, ...response };
  const errorCode = response.errorCode !== ErrorCode.NONE ? response.errorCode : response.members[0]?.errorCode ?? ErrorCode.NONE;
  return { throttleTimeMs: 0, errorCode };
}
