// ListOffsets: earliest (-2), latest (-1) or the first offset at or after a timestamp.
// Without transactions the last stable offset is the high watermark, so READ_COMMITTED
// answers the same.

import type { ListOffsetsRequest, ListOffsetsResponse, ListOffsetsResponsePartition } from '../../protocol/apis/list-offsets.ts';
import { ErrorCode } from '../../protocol/errors.ts';
import type { RequestContext } from '../context.ts';

export async function handleListOffsets(ctx: RequestContext, request: ListOffsetsRequest): Promise<ListOffsetsResponse> {
  const topics = await Promise.all(request.topics.map(async (t) => {
    const open = ctx.broker.topics.get(t.name);
    const partitions = await Promise.all(t.partitions.map(async (p): Promise<ListOffsetsResponsePartition> => {
      const partitionLog = open?.partitions[p.partitionIndex];
      if (!partitionLog) {
        return { partitionIndex: p.partitionIndex, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, oldStyleOffsets: [], timestamp: -1, offset: -1, leaderEpoch: -1 };
      }
      const found = await partitionLog.offsetForTimestamp(p.timestamp);
      const leaderEpoch = open.info.partitions[p.partitionIndex]!.leaderEpoch;
      return {
        partitionIndex: p.partitionIndex,
        errorCode: found.errorCode,
        oldStyleOffsets: found.offset >= 0 && p.maxNumOffsets > 0 ? [found.offset] : [],
        timestamp: found.timestampMs,
        offset: found.offset,
        leaderEpoch: found.offset >= 0 ? leaderEpoch : -1,
      };
    }));
    return { name: t.name, partitions };
  }));
  return { throttleTimeMs: 0, topics };
}
