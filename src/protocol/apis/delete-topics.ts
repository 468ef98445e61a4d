// DeleteTopics (API key 20). From Kafka's DeleteTopicsRequest.json / DeleteTopicsResponse.json.
// v4 is the first flexible version, v5 adds errorMessage, v6 names topics by name or id
// (`topics` replaces `topicNames`).

import type { MessageSpec } from '../schema.ts';

export const apiKey = 20;

export const requestSpec: MessageSpec = {
  name: 'DeleteTopicsRequest',
  apiKey,
  type: 'request',
  validVersions: '0-6',
  flexibleVersions: '4+',
  fields: [
    { name: 'topics', type: '[]DeleteTopicState', versions: '6+', fields: [
      { name: 'name', type: 'string', versions: '6+', nullableVersions: '6+', default: null },
      { name: 'topicId', type: 'uuid', versions: '6+' },
    ] },
    { name: 'topicNames', type: '[]string', versions: '0-5', ignorable: true },
    { name: 'timeoutMs', type: 'int32', versions: '0+' },
  ],
};

export const responseSpec: MessageSpec = {
  name: 'DeleteTopicsResponse',
  apiKey,
  type: 'response',
  validVersions: '0-6',
  flexibleVersions: '4+',
  fields: [
    { name: 'throttleTimeMs', type: 'int32', versions: '1+', ignorable: true },
    { name: 'responses', type: '[]DeletableTopicResult', versions: '0+', fields: [
      { name: 'name', type: 'string', versions: '0+', nullableVersions: '6+' },
      { name: 'topicId', type: 'uuid', versions: '6+', ignorable: true },
      { name: 'errorCode', type: 'int16', versions: '0+' },
      { name: 'errorMessage', type: 'string', versions: '5+', nullableVersions: '5+', ignorable: true, default: null },
    ] },
  ],
};

export interface DeleteTopicsRequest {
  /** v6+: by name, or by id with name null. */
  topics: { name: string | null; topicId: string }[];
  /** v0-v5. */
  topicNames: string[];
  timeoutMs: number;
}

export interface DeleteTopicsResponse {
  throttleTimeMs?: number;
  responses: {
    name: string | null;
    topicId?: string;
    errorCode: number;
    errorMessage?: string | null;
  }[];
}
