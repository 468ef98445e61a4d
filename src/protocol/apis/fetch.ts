// Fetch (API key 1). From Kafka's FetchRequest.json / FetchResponse.json.
//
// v4 is the first version with record batches (magic 2), v7 adds fetch sessions
// (sessionId/sessionEpoch/forgottenTopicsData), v11 rackId and preferredReadReplica, v12 is the
// first flexible version (tagged divergingEpoch/currentLeader/snapshotId), v13 replaces topic
// names with topic ids. The codec reads and writes v0-v13; index.ts says what we advertise.
//
// A response partition's `records` may be a list of stored batches: the encoder writes one
// length prefix and then the buffers by reference, never joining them.

import type { MessageSpec } from '../schema.ts';

export const apiKey = 1;

export const requestSpec: MessageSpec = {
  name: 'FetchRequest',
  apiKey,
  type: 'request',
  validVersions: '0-13',
  flexibleVersions: '12+',
  fields: [
    { name: 'clusterId', type: 'string', versions: '12+', nullableVersions: '12+', default: null, taggedVersions: '12+', tag: 0, ignorable: true },
    { name: 'replicaId', type: 'int32', versions: '0+' },
    { name: 'maxWaitMs', type: 'int32', versions: '0+' },
    { name: 'minBytes', type: 'int32', versions: '0+' },
    { name: 'maxBytes', type: 'int32', versions: '3+', default: 0x7fffffff, ignorable: true },
    { name: 'isolationLevel', type: 'int8', versions: '4+', default: 0, ignorable: true },
    { name: 'sessionId', type: 'int32', versions: '7+', default: 0, ignorable: true },
    { name: 'sessionEpoch', type: 'int32', versions: '7+', default: -1, ignorable: true },
    { name: 'topics', type: '[]FetchTopic', versions: '0+', fields: [
      { name: 'topic', type: 'string', versions: '0-12', ignorable: true },
      { name: 'topicId', type: 'uuid', versions: '13+', ignorable: true },
      { name: 'partitions', type: '[]FetchPartition', versions: '0+', fields: [
        { name: 'partition', type: 'int32', versions: '0+' },
        { name: 'currentLeaderEpoch', type: 'int32', versions: '9+', default: -1, ignorable: true },
        { name: 'fetchOffset', type: 'int64', versions: '0+' },
        { name: 'lastFetchedEpoch', type: 'int32', versions: '12+', default: -1 },
        { name: 'logStartOffset', type: 'int64', versions: '5+', default: -1, ignorable: true },
        { name: 'partitionMaxBytes', type: 'int32', versions: '0+' },
      ] },
    ] },
    { name: 'forgottenTopicsData', type: '[]ForgottenTopic', versions: '7+', fields: [
      { name: 'topic', type: 'string', versions: '7-12', ignorable: true },
      { name: 'topicId', type: 'uuid', versions: '13+', ignorable: true },
      { name: 'partitions', type: '[]int32', versions: '7+' },
    ] },
    { name: 'rackId', type: 'string', versions: '11+', default: '', ignorable: true },
  ],
};

export const responseSpec: MessageSpec = {
  name: 'FetchResponse',
  apiKey,
  type: 'response',
  validVersions: '0-13',
  flexibleVersions: '12+',
  fields: [
    { name: 'throttleTimeMs', type: 'int32', versions: '1+', ignorable: true },
    { name: 'errorCode', type: 'int16', versions: '7+', ignorable: true },
    { name: 'sessionId', type: 'int32', versions: '7+', default: 0 },
    { name: 'responses', type: '[]FetchableTopicResponse', versions: '0+', fields: [
      { name: 'topic', type: 'string', versions: '0-12', ignorable: true },
      { name: 'topicId', type: 'uuid', versions: '13+', ignorable: true },
      { name: 'partitions', type: '[]PartitionData', versions: '0+', fields: [
        { name: 'partitionIndex', type: 'int32', versions: '0+' },
        { name: 'errorCode', type: 'int16', versions: '0+' },
        { name: 'highWatermark', type: 'int64', versions: '0+' },
        { name: 'lastStableOffset', type: 'int64', versions: '4+', default: -1, ignorable: true },
        { name: 'logStartOffset', type: 'int64', versions: '5+', default: -1, ignorable: true },
        { name: 'divergingEpoch', type: 'EpochEndOffset', versions: '12+', taggedVersions: '12+', tag: 0, fields: [
          { name: 'epoch', type: 'int32', versions: '12+', default: -1 },
          { name: 'endOffset', type: 'int64', versions: '12+', default: -1 },
        ] },
        { name: 'currentLeader', type: 'LeaderIdAndEpoch', versions: '12+', taggedVersions: '12+', tag: 1, fields: [
          { name: 'leaderId', type: 'int32', versions: '12+', default: -1 },
          { name: 'leaderEpoch', type: 'int32', versions: '12+', default: -1 },
        ] },
        { name: 'snapshotId', type: 'SnapshotId', versions: '12+', taggedVersions: '12+', tag: 2, fields: [
          { name: 'endOffset', type: 'int64', versions: '0+', default: -1 },
          { name: 'epoch', type: 'int32', versions: '0+', default: -1 },
        ] },
        { name: 'abortedTransactions', type: '[]AbortedTransaction', versions: '4+', nullableVersions: '4+', ignorable: true, fields: [
          { name: 'producerId', type: 'int64', versions: '4+' },
          { name: 'firstOffset', type: 'int64', versions: '4+' },
        ] },
        { name: 'preferredReadReplica', type: 'int32', versions: '11+', default: -1 },
        { name: 'records', type: 'records', versions: '0+', nullableVersions: '0+' },
      ] },
    ] },
  ],
};

export interface FetchRequest {
  /** Tagged (v12+); null unless a broker sends it. */
  clusterId: string | null;
  /** -1 for consumers. */
  replicaId: number;
  maxWaitMs: number;
  minBytes: number;
  maxBytes: number;
  /** 0 READ_UNCOMMITTED, 1 READ_COMMITTED. */
  isolationLevel: number;
  sessionId: number;
  sessionEpoch: number;
  topics: FetchRequestTopic[];
  forgottenTopicsData: FetchForgottenTopic[];
  rackId: string;
}

export interface FetchRequestTopic {
  /** v0-v12 ('' from v13). */
  topic: string;
  /** v13+ (ZERO_UUID before). */
  topicId: string;
  partitions: FetchRequestPartition[];
}

export interface FetchRequestPartition {
  partition: number;
  currentLeaderEpoch: number;
  fetchOffset: number;
  lastFetchedEpoch: number;
  logStartOffset: number;
  partitionMaxBytes: number;
}

export interface FetchForgottenTopic {
  topic: string;
  topicId: string;
  partitions: number[];
}

export interface FetchResponse {
  throttleTimeMs?: number;
  /** Top-level error (fetch sessions), v7+. */
  errorCode?: number;
  sessionId?: number;
  responses: FetchResponseTopic[];
}

export interface FetchResponseTopic {
  /** v0-v12. */
  topic?: string;
  /** v13+. */
  topicId?: string;
  partitions: FetchResponsePartition[];
}

export interface FetchResponsePartition {
  partitionIndex: number;
  errorCode: number;
  highWatermark: number;
  lastStableOffset?: number;
  logStartOffset?: number;
  divergingEpoch?: { epoch?: number; endOffset?: number };
  currentLeader?: { leaderId?: number; leaderEpoch?: number };
  snapshotId?: { endOffset?: number; epoch?: number };
  abortedTransactions?: { producerId: number; firstOffset: number }[] | null;
  preferredReadReplica?: number;
  /** Stored batches as they are: one buffer, a list of buffers (sent without joining), or null. */
  records: Buffer | Buffer[] | null;
}
