// FindCoordinator (API key 10). From Kafka's FindCoordinatorRequest.json / ...Response.json.
//
// v1 adds keyType (0 group, 1 transaction), v3 is the first flexible version, v4 batches keys:
// `coordinatorKeys` in the request, `coordinators` in the response, replacing the single
// key/nodeId/host/port/errorCode fields.

import type { MessageSpec } from '../schema.ts';

export const apiKey = 10;

export const CoordinatorKeyType = {
  GROUP: 0,
  TRANSACTION: 1,
} as const;

export const requestSpec: MessageSpec = {
  name: 'FindCoordinatorRequest',
  apiKey,
  type: 'request',
  validVersions: '0-4',
  flexibleVersions: '3+',
  fields: [
    { name: 'key', type: 'string', versions: '0-3' },
    { name: 'keyType', type: 'int8', versions: '1+', default: 0 },
    { name: 'coordinatorKeys', type: '[]string', versions: '4+' },
  ],
};

export const responseSpec: MessageSpec = {
  name: 'FindCoordinatorResponse',
  apiKey,
  type: 'response',
  validVersions: '0-4',
  flexibleVersions: '3+',
  fields: [
    { name: 'throttleTimeMs', type: 'int32', versions: '1+', ignorable: true },
    { name: 'errorCode', type: 'int16', versions: '0-3' },
    { name: 'errorMessage', type: 'string', versions: '1-3', nullableVersions: '1-3', ignorable: true },
    { name: 'nodeId', type: 'int32', versions: '0-3' },
    { name: 'host', type: 'string', versions: '0-3' },
    { name: 'port', type: 'int32', versions: '0-3' },
    { name: 'coordinators', type: '[]Coordinator', versions: '4+', fields: [
      { name: 'key', type: 'string', versions: '4+' },
      { name: 'nodeId', type: 'int32', versions: '4+' },
      { name: 'host', type: 'string', versions: '4+' },
      { name: 'port', type: 'int32', versions: '4+' },
      { name: 'errorCode', type: 'int16', versions: '4+' },
      { name: 'errorMessage', type: 'string', versions: '4+', nullableVersions: '4+', ignorable: true },
    ] },
  ],
};

export interface FindCoordinatorRequest {
  /** v0-v3. */
  key: string;
  keyType: number;
  /** v4+. */
  coordinatorKeys: string[];
}

export interface FindCoordinatorResponseCoordinator {
  key: string;
  nodeId: number;
  host: string;
  port: number;
  errorCode: number;
  errorMessage?: string | null;
}

export interface FindCoordinatorResponse {
  throttleTimeMs?: number;
  /** v0-v3 fields. */
  errorCode?: number;
  errorMessage?: string | null;
  nodeId?: number;
  host?: string;
  port?: number;
  /** v4+. */
  coordinators?: FindCoordinatorResponseCoordinator[];
}
