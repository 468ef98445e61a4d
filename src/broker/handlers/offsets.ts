// OffsetCommit and OffsetFetch: committed offsets live in the coordinator's internal stream.

import type { OffsetCommitRequest, OffsetCommitResponse } from '../../protocol/apis/offset-commit.ts';
import type { OffsetFetchRequest, OffsetFetchResponse, OffsetFetchRequestTopic } from '../../protocol/apis/offset-fetch.ts';
import { ErrorCode } from '../../protocol/errors.ts';
import type { RequestContext } from '../context.ts';

export async function handleOffsetCommit(ctx: RequestContext, request: OffsetCommitRequest): Promise<OffsetCommitResponse> {
  const response = await ctx.broker.groups.offsetCommit({
    ...request,
    generationId: ctx.apiVersion === 0 ? -1 : request.generationId,
  });
  return { throttleTimeMs: 0, ...response };
}

async function fetchOne(ctx: RequestContext, groupId: string, topics: OffsetFetchRequestTopic[] | null, requireStable: boolean) {
  return ctx.broker.groups.offsetFetch({ groupId, topics, requireStable });
}

export async function handleOffsetFetch(ctx: RequestContext, request: OffsetFetchRequest): Promise<OffsetFetchResponse> {
  if (ctx.apiVersion >= 8) {
    const groups = await Promise.all(request.groups.map(async (g) => {
      const r = await fetchOne(ctx, g.groupId, g.topics, request.requireStable);
      return { groupId: g.groupId, topics: r.topics, errorCode: r.errorCode };
    }));
    return { throttleTimeMs: 0, groups };
  }
  const r = await fetchOne(ctx, request.groupId, request.topics, request.requireStable);
  if (ctx.apiVersion >= 2) return { throttleTimeMs: 0, errorCode: r.errorCode, topics: r.topics };
  // v0-v1 have no top-level error: it goes on every partition.
  const topics = r.errorCode === ErrorCode.NONE
    ? r.topics
    : (request.topics ?? []).map((t) => ({
      name: t.name,
      partitions: t.partitionIndexes.map((partitionIndex) => ({
        partitionIndex, committedOffset: -1, committedLeaderEpoch: -1, metadata: '', errorCode: r.errorCode,
      })),
    }));
  return { throttleTimeMs: 0, topics };
}
