// FindCoordinator: a single node coordinates every consumer group. Transaction coordinators
// (key type 1) are not offered yet.

import type { FindCoordinatorRequest, FindCoordinatorResponse, FindCoordinatorResponseCoordinator } from '../../protocol/apis/find-coordinator.ts';
import { ErrorCode } from '../../protocol/errors.ts';
import type { RequestContext } from '../context.ts';

const KEY_TYPE_GROUP = 0;

function coordinatorFor(ctx: RequestContext, key: string, keyType: number): FindCoordinatorResponseCoordinator {
  const { config } = ctx.broker;
  if (keyType !== KEY_TYPE_GROUP) {
    return { key, nodeId: -1, host: '', port: -1, errorCode: ErrorCode.COORDINATOR_NOT_AVAILABLE, errorMessage: 'transactions are not supported yet' };
  }
  return { key, nodeId: config.nodeId, host: config.advertisedHost, port: config.kafkaPort, errorCode: ErrorCode.NONE, errorMessage: null };
}

export async function handleFindCoordinator(ctx: RequestContext, request: FindCoordinatorRequest): Promise<FindCoordinatorResponse> {
  if (ctx.apiVersion >= 4) {
    return { throttleTimeMs: 0, coordinators: request.coordinatorKeys.map((key) => coordinatorFor(ctx, key, request.keyType)) };
  }
  const c = coordinatorFor(ctx, request.key, request.keyType);
  return { throttleTimeMs: 0, errorCode: c.errorCode, errorMessage: c.errorMessage ?? null, nodeId: c.nodeId, host: c.host, port: c.port };
}
