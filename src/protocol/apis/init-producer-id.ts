// InitProducerId (API key 22). From Kafka's InitProducerIdRequest.json / ...Response.json.
// v2 is the first flexible version, v3 lets a producer pass its current id/epoch to bump the
// epoch after an error, v4 allows the PRODUCER_FENCED error.

import type { MessageSpec } from '../schema.ts';

export const apiKey = 22;

export const requestSpec: MessageSpec = {
  name: 'InitProducerIdRequest',
  apiKey,
  type: 'request',
  validVersions: '0-4',
  flexibleVersions: '2+',
  fields: [
    { name: 'transactionalId', type: 'string', versions: '0+', nullableVersions: '0+' },
    { name: 'transactionTimeoutMs', type: 'int32', versions: '0+' },
    { name: 'producerId', type: 'int64', versions: '3+', default: -1 },
    { name: 'producerEpoch', type: 'int16', versions: '3+', default: -1 },
  ],
};

export const responseSpec: MessageSpec = {
  name: 'InitProducerIdResponse',
  apiKey,
  type: 'response',
  validVersions: '0-4',
  flexibleVersions: '2+',
  fields: [
    { name: 'throttleTimeMs', type: 'int32', versions: '0+', ignorable: true },
    { name: 'errorCode', type: 'int16', versions: '0+' },
    { name: 'producerId', type: 'int64', versions: '0+', default: -1 },
    { name: 'producerEpoch', type: 'int16', versions: '0+' },
  ],
};

export interface InitProducerIdRequest {
  /** null for an idempotent (non-transactional) producer. */
  transactionalId: string | null;
  transactionTimeoutMs: number;
  /** v3+; -1 for a new producer. */
  producerId: number;
  producerEpoch: number;
}

export interface InitProducerIdResponse {
  throttleTimeMs?: number;
  errorCode: number;
  producerId: number;
  producerEpoch: number;
}
