// Metadata (API key 3). From Kafka's MetadataRequest.json / MetadataResponse.json.
//
// Request topics: in v0 an empty list means all topics; from v1 null means all topics and an
// empty list none. v4 adds allowAutoTopicCreation, v8 authorized operations, v9 is the first
// flexible version, v10 topic ids, v11 drops the cluster authorized operations, v12 lets a
// request name topics by id only (name null) and a response carry a null topic name.

import type { MessageSpec } from '../schema.ts';

export const apiKey = 3;

export const requestSpec: MessageSpec = {
  name: 'MetadataRequest',
  apiKey,
  type: 'request',
  validVersions: '0-12',
  flexibleVersions: '9+',
  fields: [
    { name: 'topics', type: '[]MetadataRequestTopic', versions: '0+', nullableVersions: '1+', fields: [
      { name: 'topicId', type: 'uuid', versions: '10+', ignorable: true },
      { name: 'name', type: 'string', versions: '0+', nullableVersions: '10+' },
    ] },
    { name: 'allowAutoTopicCreation', type: 'bool', versions: '4+', default: true },
    { name: 'includeClusterAuthorizedOperations', type: 'bool', versions: '8-10' },
    { name: 'includeTopicAuthorizedOperations', type: 'bool', versions: '8+' },
  ],
};

export const responseSpec: MessageSpec = {
  name: 'MetadataResponse',
  apiKey,
  type: 'response',
  validVersions: '0-12',
  flexibleVersions: '9+',
  fields: [
    { name: 'throttleTimeMs', type: 'int32', versions: '3+', ignorable: true },
    { name: 'brokers', type: '[]MetadataResponseBroker', versions: '0+', fields: [
      { name: 'nodeId', type: 'int32', versions: '0+' },
      { name: 'host', type: 'string', versions: '0+' },
      { name: 'port', type: 'int32', versions: '0+' },
      { name: 'rack', type: 'string', versions: '1+', nullableVersions: '1+', ignorable: true, default: null },
    ] },
    { name: 'clusterId', type: 'string', versions: '2+', nullableVersions: '2+', ignorable: true, default: null },
    { name: 'controllerId', type: 'int32', versions: '1+', default: -1, ignorable: true },
    { name: 'topics', type: '[]MetadataResponseTopic', versions: '0+', fields: [
      { name: 'errorCode', type: 'int16', versions: '0+' },
      { name: 'name', type: 'string', versions: '0+', nullableVersions: '12+' },
      { name: 'topicId', type: 'uuid', versions: '10+', ignorable: true },
      { name: 'isInternal', type: 'bool', versions: '1+', default: false, ignorable: true },
      { name: 'partitions', type: '[]MetadataResponsePartition', versions: '0+', fields: [
        { name: 'errorCode', type: 'int16', versions: '0+' },
        { name: 'partitionIndex', type: 'int32', versions: '0+' },
        { name: 'leaderId', type: 'int32', versions: '0+' },
        { name: 'leaderEpoch', type: 'int32', versions: '7+', default: -1, ignorable: true },
        { name: 'replicaNodes', type: '[]int32', versions: '0+' },
        { name: 'isrNodes', type: '[]int32', versions: '0+' },
        { name: 'offlineReplicas', type: '[]int32', versions: '5+', ignorable: true },
      ] },
      { name: 'topicAuthorizedOperations', type: 'int32', versions: '8+', default: -2147483648 },
    ] },
    { name: 'clusterAuthorizedOperations', type: 'int32', versions: '8-10', default: -2147483648 },
  ],
};

export interface MetadataRequest {
  /** null: all topics (v1+). In v0 an empty list means all topics. */
  topics: { topicId: string; name: string | null }[] | null;
  allowAutoTopicCreation: boolean;
  includeClusterAuthorizedOperations: boolean;
  includeTopicAuthorizedOperations: boolean;
}

export interface MetadataResponse {
  throttleTimeMs?: number;
  brokers: MetadataResponseBroker[];
  clusterId?: string | null;
  controllerId?: number;
  topics: MetadataResponseTopic[];
  clusterAuthorizedOperations?: number;
}

export interface MetadataResponseBroker {
  nodeId: number;
  host: string;
  port: number;
  rack?: string | null;
}

export interface MetadataResponseTopic {
  errorCode: number;
  /** null only in v12+ (topic asked for by id and not found). */
  name: string | null;
  topicId?: string;
  isInternal?: boolean;
  partitions: MetadataResponsePartition[];
  topicAuthorizedOperations?: number;
}

export interface MetadataResponsePartition {
  errorCode: number;
  partitionIndex: number;
  leaderId: number;
  leaderEpoch?: number;
  replicaNodes: number[];
  isrNodes: number[];
  offlineReplicas?: number[];
}
