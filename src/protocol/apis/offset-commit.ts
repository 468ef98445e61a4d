// OffsetCommit (API key 8). From Kafka's OffsetCommitRequest.json / OffsetCommitResponse.json.
//
// v1 adds generation/member and a per-partition commitTimestamp (v1 only), v2-v4 carry
// retentionTimeMs, v6 committedLeaderEpoch, v7 groupInstanceId, v8 is the first flexible version.

import type { MessageSpec } from '../schema.ts';

export const apiKey = 8;

export const requestSpec: MessageSpec = {
  name: 'OffsetCommitRequest',
  apiKey,
  type: 'request',
  validVersions: '0-8',
  flexibleVersions: '8+',
  fields: [
    { name: 'groupId', type: 'string', versions: '0+' },
    { name: 'generationId', type: 'int32', versions: '1+', default: -1, ignorable: true },
    { name: 'memberId', type: 'string', versions: '1+', ignorable: true },
    { name: 'groupInstanceId', type: 'string', versions: '7+', nullableVersions: '7+', default: null },
    { name: 'retentionTimeMs', type: 'int64', versions: '2-4', default: -1, ignorable: true },
    { name: 'topics', type: '[]OffsetCommitRequestTopic', versions: '0+', fields: [
      { name: 'name', type: 'string', versions: '0+' },
      { name: 'partitions', type: '[]OffsetCommitRequestPartition', versions: '0+', fields: [
        { name: 'partitionIndex', type: 'int32', versions: '0+' },
        { name: 'committedOffset', type: 'int64', versions: '0+' },
        { name: 'committedLeaderEpoch', type: 'int32', versions: '6+', default: -1, ignorable: true },
        { name: 'commitTimestamp', type: 'int64', versions: '1', default: -1 },
        { name: 'committedMetadata', type: 'string', versions: '0+', nullableVersions: '0+' },
      ] },
    ] },
  ],
};

export const responseSpec: MessageSpec = {
  name: 'OffsetCommitResponse',
  apiKey,
  type: 'response',
  validVersions: '0-8',
  flexibleVersions: '8+',
  fields: [
    { name: 'throttleTimeMs', type: 'int32', versions: '3+', ignorable: true },
    { name: 'topics', type: '[]OffsetCommitResponseTopic', versions: '0+', fields: [
      { name: 'name', type: 'string', versions: '0+' },
      { name: 'partitions', type: '[]OffsetCommitResponsePartition', versions: '0+', fields: [
        { name: 'partitionIndex', type: 'int32', versions: '0+' },
        { name: 'errorCode', type: 'int16', versions: '0+' },
      ] },
    ] },
  ],
};

export interface OffsetCommitRequest {
  groupId: string;
  /** -1 (v0, or a commit outside group management). */
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  /** v2-v4; -1 = broker default. */
  retentionTimeMs: number;
  topics: {
    name: string;
    partitions: {
      partitionIndex: number;
      committedOffset: number;
      committedLeaderEpoch: number;
      /** v1 only. */
      commitTimestamp: number;
      committedMetadata: string | null;
    }[];
  }[];
}

export interface OffsetCommitResponse {
  throttleTimeMs?: number;
  topics: {
    name: string;
    partitions: { partitionIndex: number; errorCode: number }[];
  }[];
}
