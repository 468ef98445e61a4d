// ListOffsets (API key 2). From Kafka's ListOffsetsRequest.json / ListOffsetsResponse.json.
//
// Timestamps in the request: -1 latest (end offset), -2 earliest (log start), -3 max timestamp
// (v7+). v0 asks for up to maxNumOffsets offsets and gets `oldStyleOffsets` back; v1+ get one
// timestamp/offset pair. v2 adds isolationLevel, v4 leader epochs, v6 is the first flexible
// version.

import type { MessageSpec } from '../schema.ts';

export const apiKey = 2;

export const requestSpec: MessageSpec = {
  name: 'ListOffsetsRequest',
  apiKey,
  type: 'request',
  validVersions: '0-7',
  flexibleVersions: '6+',
  fields: [
    { name: 'replicaId', type: 'int32', versions: '0+' },
    { name: 'isolationLevel', type: 'int8', versions: '2+' },
    { name: 'topics', type: '[]ListOffsetsTopic', versions: '0+', fields: [
      { name: 'name', type: 'string', versions: '0+' },
      { name: 'partitions', type: '[]ListOffsetsPartition', versions: '0+', fields: [
        { name: 'partitionIndex', type: 'int32', versions: '0+' },
        { name: 'currentLeaderEpoch', type: 'int32', versions: '4+', default: -1, ignorable: true },
        { name: 'timestamp', type: 'int64', versions: '0+' },
        { name: 'maxNumOffsets', type: 'int32', versions: '0', default: 1 },
      ] },
    ] },
  ],
};

export const responseSpec: MessageSpec = {
  name: 'ListOffsetsResponse',
  apiKey,
  type: 'response',
  validVersions: '0-7',
  flexibleVersions: '6+',
  fields: [
    { name: 'throttleTimeMs', type: 'int32', versions: '2+', ignorable: true },
    { name: 'topics', type: '[]ListOffsetsTopicResponse', versions: '0+', fields: [
      { name: 'name', type: 'string', versions: '0+' },
      { name: 'partitions', type: '[]ListOffsetsPartitionResponse', versions: '0+', fields: [
        { name: 'partitionIndex', type: 'int32', versions: '0+' },
        { name: 'errorCode', type: 'int16', versions: '0+' },
        { name: 'oldStyleOffsets', type: '[]int64', versions: '0' },
        { name: 'timestamp', type: 'int64', versions: '1+', default: -1 },
        { name: 'offset', type: 'int64', versions: '1+', default: -1 },
        { name: 'leaderEpoch', type: 'int32', versions: '4+', default: -1 },
      ] },
    ] },
  ],
};

export const ListOffsetsTimestamp = {
  LATEST: -1,
  EARLIEST: -2,
  MAX_TIMESTAMP: -3,
} as const;

export interface ListOffsetsRequest {
  replicaId: number;
  isolationLevel: number;
  topics: {
    name: string;
    partitions: {
      partitionIndex: number;
      currentLeaderEpoch: number;
      timestamp: number;
      /** v0 only. */
      maxNumOffsets: number;
    }[];
  }[];
}

export interface ListOffsetsResponse {
  throttleTimeMs?: number;
  topics: {
    name: string;
    partitions: ListOffsetsResponsePartition[];
  }[];
}

export interface ListOffsetsResponsePartition {
  partitionIndex: number;
  errorCode: number;
  /** v0 only: the offsets found (at most maxNumOffsets). */
  oldStyleOffsets?: number[];
  /** v1+. */
  timestamp?: number;
  /** v1+. */
  offset?: number;
  /** v4+. */
  leaderEpoch?: number;
}
