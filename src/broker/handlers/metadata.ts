// Metadata: this broker is the only one and leads every partition.

import type { MetadataRequest, MetadataResponse, MetadataResponseTopic } from '../../protocol/apis/metadata.ts';
import { ErrorCode } from '../../protocol/errors.ts';
import { InvalidTopicError } from '../../metadata/cluster-model.ts';
import type { RequestContext } from '../context.ts';
import type { OpenTopic } from '../topics.ts';

/** Kafka's "authorized operations not requested" value. */
const OPERATIONS_OMITTED = -2147483648;

export function topicIdHex(topicId: string): string {
  return topicId.replaceAll('-', '');
}

function describe(ctx: RequestContext, topic: OpenTopic): MetadataResponseTopic {
  const nodeId = ctx.broker.config.nodeId;
  return {
    errorCode: ErrorCode.NONE,
    name: topic.info.name,
    topicId: topicIdHex(topic.info.topicId),
    isInternal: false,
    partitions: topic.info.partitions.map((p) => ({
      errorCode: ErrorCode.NONE,
      partitionIndex: p.partition,
      leaderId: nodeId,
      leaderEpoch: p.leaderEpoch,
      replicaNodes: [nodeId],
      isrNodes: [nodeId],
      offlineReplicas: [],
    })),
    topicAuthorizedOperations: OPERATIONS_OMITTED,
  };
}

function failed(name: string | null, errorCode: number, topicId?: string): MetadataResponseTopic {
  return { errorCode, name, topicId, isInternal: false, partitions: [], topicAuthorizedOperations: OPERATIONS_OMITTED };
}

export async function handleMetadata(ctx: RequestContext, request: MetadataRequest): Promise<MetadataResponse> {
  const { broker } = ctx;
  const allTopics = request.topics === null || (ctx.apiVersion === 0 && request.topics.length === 0);
  let topics: MetadataResponseTopic[];
  if (allTopics) {
    topics = broker.topics.all().map((t) => describe(ctx, t));
  } else {
    // v0-v3 always allow auto-creation; v4+ ask for it.
    const allow = broker.config.autoCreateTopics && (ctx.apiVersion < 4 || request.allowAutoTopicCreation);
    const create = allow ? { numPartitions: broker.config.numPartitions } : undefined;
    topics = await Promise.all((request.topics ?? []).map(async (t): Promise<MetadataResponseTopic> => {
      if (t.name === null) {
        const open = broker.topics.getById(t.topicId);
        return open ? describe(ctx, open) : failed(null, ErrorCode.UNKNOWN_TOPIC_ID, t.topicId);
      }
      try {
        const open = await broker.topics.ensure(t.name, create);
        return open ? describe(ctx, open) : failed(t.name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
      } catch (err) {
        if (err instanceof InvalidTopicError) return failed(t.name, ErrorCode.INVALID_TOPIC_EXCEPTION);
        throw err;
      }
    }));
  }
  return {
    throttleTimeMs: 0,
    brokers: [{
      nodeId: broker.config.nodeId,
      host: broker.config.advertisedHost,
      port: broker.config.kafkaPort,
      rack: null,
    }],
    clusterId: broker.clusterId,
    controllerId: broker.config.nodeId,
    topics,
    clusterAuthorizedOperations: OPERATIONS_OMITTED,
  };
}
