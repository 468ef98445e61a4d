// CreateTopics. Replication is the object store's job, so any replication factor is accepted
// and reported as given; topic configs must be ones Wharf knows (INVALID_CONFIG otherwise).

import type { CreateTopicsRequest, CreateTopicsResponse, CreateTopicsResponseTopic } from '../../protocol/apis/create-topics.ts';
import { ErrorCode } from '../../protocol/errors.ts';
import { InvalidTopicError, TopicExistsError, validateTopicName } from '../../metadata/cluster-model.ts';
import type { RequestContext } from '../context.ts';
import { invalidTopicConfig, TOPIC_CONFIG_DEFAULTS } from '../topics.ts';
import { topicIdHex } from './metadata.ts';

/** Kafka's ConfigSource: DEFAULT_CONFIG = 5, TOPIC_CONFIG = 1. */
const CONFIG_SOURCE_TOPIC = 1;
const CONFIG_SOURCE_DEFAULT = 5;

type CreateTopic = CreateTopicsRequest['topics'][number];

function failed(name: string, errorCode: number, errorMessage: string): CreateTopicsResponseTopic {
  return { name, errorCode, errorMessage, topicConfigErrorCode: 0, numPartitions: -1, replicationFactor: -1, configs: null };
}

export async function handleCreateTopics(ctx: RequestContext, request: CreateTopicsRequest): Promise<CreateTopicsResponse> {
  const seen = new Set<string>();
  const duplicates = new Set(request.topics.filter((t) => seen.has(t.name) || !seen.add(t.name)).map((t) => t.name));
  const topics = await Promise.all(request.topics.map((t) => createOne(ctx, t, request.validateOnly, duplicates.has(t.name))));
  return { throttleTimeMs: 0, topics };
}

async function createOne(ctx: RequestContext, t: CreateTopic, validateOnly: boolean, duplicate: boolean): Promise<CreateTopicsResponseTopic> {
  if (duplicate) return failed(t.name, ErrorCode.INVALID_REQUEST, `topic ${t.name} is listed more than once`);
  const numPartitions = t.assignments.length > 0 ? t.assignments.length : t.numPartitions === -1 ? ctx.broker.config.numPartitions : t.numPartitions;
  if (numPartitions < 1) return failed(t.name, ErrorCode.INVALID_PARTITIONS, 'number of partitions must be larger than 0');
  if (t.replicationFactor === 0 || t.replicationFactor < -1) {
    return failed(t.name, ErrorCode.INVALID_REPLICATION_FACTOR, 'replication factor must be larger than 0');
  }
  const configs: Record<string, string> = {};
  for (const c of t.configs) {
    const invalid = invalidTopicConfig(c.name, c.value ?? TOPIC_CONFIG_DEFAULTS[c.name] ?? '');
    if (invalid !== undefined) return failed(t.name, ErrorCode.INVALID_CONFIG, invalid);
    if (c.value !== null) configs[c.name] = c.value;
  }
  try {
    validateTopicName(t.name);
    if (validateOnly) {
      if (ctx.broker.topics.get(t.name) || await ctx.broker.model.getTopic(t.name)) {
        return failed(t.name, ErrorCode.TOPIC_ALREADY_EXISTS, `topic ${t.name} already exists`);
      }
    } else {
      const open = await ctx.broker.topics.create(t.name, numPartitions, configs);
      return describeCreated(t, numPartitions, configs, topicIdHex(open.info.topicId));
    }
  } catch (err) {
    if (err instanceof TopicExistsError) return failed(t.name, ErrorCode.TOPIC_ALREADY_EXISTS, `topic ${t.name} already exists`);
    if (err instanceof InvalidTopicError) return failed(t.name, ErrorCode.INVALID_TOPIC_EXCEPTION, err.message);
    throw err;
  }
  return describeCreated(t, numPartitions, configs, undefined);
}

function describeCreated(t: CreateTopic, numPartitions: number, configs: Record<string, string>, topicId: string | undefined): CreateTopicsResponseTopic {
  return {
    name: t.name,
    topicId,
    errorCode: ErrorCode.NONE,
    errorMessage: null,
    topicConfigErrorCode: 0,
    numPartitions,
    replicationFactor: t.replicationFactor === -1 ? 1 : t.replicationFactor,
    configs: Object.entries(TOPIC_CONFIG_DEFAULTS).map(([name, value]) => ({
      name,
      value: configs[name] ?? value,
      readOnly: false,
      configSource: name in configs ? CONFIG_SOURCE_TOPIC : CONFIG_SOURCE_DEFAULT,
      isSensitive: false,
    })),
  };
}
