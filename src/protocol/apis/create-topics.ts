// CreateTopics (API key 19). From Kafka's CreateTopicsRequest.json / CreateTopicsResponse.json.
//
// v1 adds validateOnly and per-topic error messages, v4 allows numPartitions/replicationFactor
// -1 (broker defaults), v5 is the first flexible version and returns the created topic's
// partitions, replication factor and configs, v7 returns its topic id.

import type { MessageSpec } from '../schema.ts';

export const apiKey = 19;

export const requestSpec: MessageSpec = {
  name: 'CreateTopicsRequest',
  apiKey,
  type: 'request',
  validVersions: '0-7',
  flexibleVersions: '5+',
  fields: [
    { name: 'topics', type: '[]CreatableTopic', versions: '0+', fields: [
      { name: 'name', type: 'string', versions: '0+' },
      { name: 'numPartitions', type: 'int32', versions: '0+' },
      { name: 'replicationFactor', type: 'int16', versions: '0+' },
      { name: 'assignments', type: '[]CreatableReplicaAssignment', versions: '0+', fields: [
        { name: 'partitionIndex', type: 'int32', versions: '0+' },
        { name: 'brokerIds', type: '[]int32', versions: '0+' },
      ] },
      { name: 'configs', type: '[]CreateableTopicConfig', versions: '0+', fields: [
        { name: 'name', type: 'string', versions: '0+' },
        { name: 'value', type: 'string', versions: '0+', nullableVersions: '0+' },
      ] },
    ] },
    { name: 'timeoutMs', type: 'int32', versions: '0+', default: 60000 },
    { name: 'validateOnly', type: 'bool', versions: '1+', default: false },
  ],
};

export const responseSpec: MessageSpec = {
  name: 'CreateTopicsResponse',
  apiKey,
  type: 'response',
  validVersions: '0-7',
  flexibleVersions: '5+',
  fields: [
    { name: 'throttleTimeMs', type: 'int32', versions: '2+', ignorable: true },
    { name: 'topics', type: '[]CreatableTopicResult', versions: '0+', fields: [
      { name: 'name', type: 'string', versions: '0+' },
      { name: 'topicId', type: 'uuid', versions: '7+', ignorable: true },
      { name: 'errorCode', type: 'int16', versions: '0+' },
      { name: 'errorMessage', type: 'string', versions: '1+', nullableVersions: '0+', ignorable: true },
      { name: 'topicConfigErrorCode', type: 'int16', versions: '5+', taggedVersions: '5+', tag: 0, ignorable: true },
      { name: 'numPartitions', type: 'int32', versions: '5+', default: -1, ignorable: true },
      { name: 'replicationFactor', type: 'int16', versions: '5+', default: -1, ignorable: true },
      { name: 'configs', type: '[]CreatableTopicConfigs', versions: '5+', nullableVersions: '5+', ignorable: true, fields: [
        { name: 'name', type: 'string', versions: '5+' },
        { name: 'value', type: 'string', versions: '5+', nullableVersions: '5+' },
        { name: 'readOnly', type: 'bool', versions: '5+' },
        { name: 'configSource', type: 'int8', versions: '5+', default: -1, ignorable: true },
        { name: 'isSensitive', type: 'bool', versions: '5+' },
      ] },
    ] },
  ],
};

export interface CreateTopicsRequest {
  topics: {
    name: string;
    /** -1: broker default (v4+), or given by `assignments`. */
    numPartitions: number;
    replicationFactor: number;
    assignments: { partitionIndex: number; brokerIds: number[] }[];
    configs: { name: string; value: string | null }[];
  }[];
  timeoutMs: number;
  validateOnly: boolean;
}

export interface CreateTopicsResponseTopic {
  name: string;
  topicId?: string;
  errorCode: number;
  errorMessage?: string | null;
  topicConfigErrorCode?: number;
  numPartitions?: number;
  replicationFactor?: number;
  configs?: {
    name: string;
    value: string | null;
    readOnly: boolean;
    configSource?: number;
    isSensitive: boolean;
  }[] | null;
}

export interface CreateTopicsResponse {
  throttleTimeMs?: number;
  topics: CreateTopicsResponseTopic[];
}
