// Heartbeat (API key 12). From Kafka's HeartbeatRequest.json / HeartbeatResponse.json.
// v3 adds groupInstanceId, v4 is the first flexible version.

import type { MessageSpec } from '../schema.ts';

export const apiKey = 12;

export const requestSpec: MessageSpec = {
  name: 'HeartbeatRequest',
  apiKey,
  type: 'request',
  validVersions: '0-4',
  flexibleVersions: '4+',
  fields: [
    { name: 'groupId', type: 'string', versions: '0+' },
    { name: 'generationId', type: 'int32', versions: '0+' },
    { name: 'memberId', type: 'string', versions: '0+' },
    { name: 'groupInstanceId', type: 'string', versions: '3+', nullableVersions: '3+', default: null },
  ],
};

export const responseSpec: MessageSpec = {
  name: 'HeartbeatResponse',
  apiKey,
  type: 'response',
  validVersions: '0-4',
  flexibleVersions: '4+',
  fields: [
    { name: 'throttleTimeMs', type: 'int32', versions: '1+', ignorable: true },
    { name: 'errorCode', type: 'int16', versions: '0+' },
  ],
};

export interface HeartbeatRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
}

export interface HeartbeatResponse {
  throttleTimeMs?: number;
  errorCode: number;
}
