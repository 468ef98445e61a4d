// Produce: validate and append each partition's batches, answer when all are durable.
// Records stay opaque: the PartitionLog reads batch headers only.

import type { ProduceRequest, ProduceResponse, ProduceResponsePartition } from '../../protocol/apis/produce.ts';
import { ErrorCode } from '../../protocol/errors.ts';
import { produceBytesTotal } from '../../metrics/registry.ts';
import type { RequestContext } from '../context.ts';

function failed(index: number, errorCode: number, errorMessage: string | null = null): ProduceResponsePartition {
  return { index, errorCode, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1, recordErrors: [], errorMessage };
}

export async function handleProduce(ctx: RequestContext, request: ProduceRequest): Promise<ProduceResponse | null> {
  const { broker } = ctx;
  const nowMs = Date.now();
  const acks = request.acks;
  const invalid = ctx.apiVersion < 3
    ? ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT
    : acks !== 0 && acks !== 1 && acks !== -1
    ? ErrorCode.INVALID_REQUIRED_ACKS
    : request.transactionalId !== null ? ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED : ErrorCode.NONE;
  const topics = await Promise.all(request.topicData.map(async (topicData) => {
    const create = broker.config.autoCreateTopics ? { numPartitions: broker.config.numPartitions } : undefined;
    const topic = broker.topics.get(topicData.name) ?? await broker.topics.ensure(topicData.name, create).catch(() => undefined);
    const partitionResponses = await Promise.all(topicData.partitionData.map(async (p): Promise<ProduceResponsePartition> => {
      if (invalid !== ErrorCode.NONE) {
        return failed(p.index, invalid, invalid === ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED ? 'transactions are not supported yet' : null);
      }
      const partitionLog = topic?.partitions[p.index];
      if (!partitionLog) return failed(p.index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
      if (!p.records || p.records.length === 0) return failed(p.index, ErrorCode.CORRUPT_MESSAGE, 'no record batch');
      const result = await partitionLog.append(p.records, { logAppendTime: topic.logAppendTime, nowMs });
      if (result.errorCode !== ErrorCode.NONE) return failed(p.index, result.errorCode);
      produceBytesTotal.inc(p.records.length);
      return {
        index: p.index,
        errorCode: ErrorCode.NONE,
        baseOffset: result.baseOffset,
        logAppendTimeMs: result.logAppendTimeMs,
        logStartOffset: result.logStartOffset,
        recordErrors: [],
        errorMessage: null,
      };
    }));
    return { name: topicData.name, partitionResponses };
  }));
  if (acks === 0) return null;
  return { responses: topics, throttleTimeMs: 0 };
}
