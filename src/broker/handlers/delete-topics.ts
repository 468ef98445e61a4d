// DeleteTopics: by name (v0-v5, and v6 with a name) or by topic id (v6).

import type { DeleteTopicsRequest, DeleteTopicsResponse } from '../../protocol/apis/delete-topics.ts';
import { ErrorCode } from '../../protocol/errors.ts';
import { TopicNotFoundError } from '../../metadata/cluster-model.ts';
import type { RequestContext } from '../context.ts';
import { topicIdHex } from './metadata.ts';

type DeleteResult = DeleteTopicsResponse['responses'][number];

export async function handleDeleteTopics(ctx: RequestContext, request: DeleteTopicsRequest): Promise<DeleteTopicsResponse> {
  const wanted = ctx.apiVersion >= 6 ? request.topics : request.topicNames.map((name) => ({ name, topicId: '' }));
  const responses = await Promise.all(wanted.map(async (t): Promise<DeleteResult> => {
    const open = t.name !== null ? ctx.broker.topics.get(t.name) : ctx.broker.topics.getById(t.topicId);
    const name = t.name ?? open?.info.name ?? null;
    if (name === null) return { name: null, topicId: t.topicId, errorCode: ErrorCode.UNKNOWN_TOPIC_ID, errorMessage: 'unknown topic id' };
    try {
      await ctx.broker.topics.delete(name);
      return { name, topicId: open ? topicIdHex(open.info.topicId) : t.topicId, errorCode: ErrorCode.NONE, errorMessage: null };
    } catch (err) {
      if (err instanceof TopicNotFoundError) {
        return { name, topicId: t.topicId, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, errorMessage: `topic ${name} does not exist` };
      }
      const message = err instanceof Error ? err.message : String(err);
      return { name, topicId: t.topicId, errorCode: ErrorCode.UNKNOWN_SERVER_ERROR, errorMessage: message };
    }
  }));
  return { throttleTimeMs: 0, responses };
}
