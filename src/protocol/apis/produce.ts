// Produce (API key 0). From Kafka's ProduceRequest.json / ProduceResponse.json.
//
// v0-v2 carry message sets (magic 0/1), which Wharf does not accept: we advertise v3+ (see
// index.ts), though the codec reads all versions. v3 adds transactionalId, v5 logStartOffset in
// the response, v8 recordErrors/errorMessage, v9 is the first flexible version.
//
// `records` is a slice of the request frame (no copy): one or more record batches, opaque here.

import type { MessageSpec } from '../schema.ts';

export const apiKey = 0;

export const requestSpec: MessageSpec = {
  name: 'ProduceRequest',
  apiKey,
  type: 'request',
  validVersions: '0-9',
  flexibleVersions: '9+',
  fields: [
    { name: 'transactionalId', type: 'string', versions: '3+', nullableVersions: '3+', default: null },
    { name: 'acks', type: 'int16', versions: '0+' },
    { name: 'timeoutMs', type: 'int32', versions: '0+' },
    { name: 'topicData', type: '[]TopicProduceData', versions: '0+', fields: [
      { name: 'name', type: 'string', versions: '0+' },
      { name: 'partitionData', type: '[]PartitionProduceData', versions: '0+', fields: [
        { name: 'index', type: 'int32', versions: '0+' },
        { name: 'records', type: 'records', versions: '0+', nullableVersions: '0+' },
      ] },
    ] },
  ],
};

export const responseSpec: MessageSpec = {
  name: 'ProduceResponse',
  apiKey,
  type: 'response',
  validVersions: '0-9',
  flexibleVersions: '9+',
  fields: [
    { name: 'responses', type: '[]TopicProduceResponse', versions: '0+', fields: [
      { name: 'name', type: 'string', versions: '0+' },
      { name: 'partitionResponses', type: '[]PartitionProduceResponse', versions: '0+', fields: [
        { name: 'index', type: 'int32', versions: '0+' },
        { name: 'errorCode', type: 'int16', versions: '0+' },
        { name: 'baseOffset', type: 'int64', versions: '0+' },
        { name: 'logAppendTimeMs', type: 'int64', versions: '2+', default: -1, ignorable: true },
        { name: 'logStartOffset', type: 'int64', versions: '5+', default: -1, ignorable: true },
        { name: 'recordErrors', type: '[]BatchIndexAndErrorMessage', versions: '8+', ignorable: true, fields: [
          { name: 'batchIndex', type: 'int32', versions: '8+' },
          { name: 'batchIndexErrorMessage', type: 'string', versions: '8+', nullableVersions: '8+', default: null },
        ] },
        { name: 'errorMessage', type: 'string', versions: '8+', nullableVersions: '8+', default: null, ignorable: true },
      ] },
    ] },
    { name: 'throttleTimeMs', type: 'int32', versions: '1+', ignorable: true, default: 0 },
  ],
};

export interface ProduceRequest {
  transactionalId: string | null;
  acks: number;
  timeoutMs: number;
  topicData: ProduceRequestTopic[];
}

export interface ProduceRequestTopic {
  name: string;
  partitionData: ProduceRequestPartition[];
}

export interface ProduceRequestPartition {
  index: number;
  /** Record batches, a slice of the request frame. */
  records: Buffer | null;
}

export interface ProduceResponse {
  responses: ProduceResponseTopic[];
  throttleTimeMs?: number;
}

export interface ProduceResponseTopic {
  name: string;
  partitionResponses: ProduceResponsePartition[];
}

export interface ProduceResponsePartition {
  index: number;
  errorCode: number;
  baseOffset: number;
  /** -1 unless the topic uses LogAppendTime (v2+). */
  logAppendTimeMs?: number;
  /** v5+. */
  logStartOffset?: number;
  /** v8+. */
  recordErrors?: { batchIndex: number; batchIndexErrorMessage?: string | null }[];
  /** v8+. */
  errorMessage?: string | null;
}
