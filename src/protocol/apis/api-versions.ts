// ApiVersions (API key 18). From Kafka's ApiVersionsRequest.json / ApiVersionsResponse.json.
//
// v3 is flexible (clientSoftwareName/Version in the request, tagged feature fields in the
// response), but the RESPONSE HEADER is always v0 (no tagged fields) so that any client can read
// the error code. When a client asks with a version we do not support, the broker answers in v0
// with UNSUPPORTED_VERSION and the full apiKeys list (KIP-511).

import type { MessageSpec } from '../schema.ts';

export const apiKey = 18;

export const requestSpec: MessageSpec = {
  name: 'ApiVersionsRequest',
  apiKey,
  type: 'request',
  validVersions: '0-3',
  flexibleVersions: '3+',
  fields: [
    { name: 'clientSoftwareName', type: 'string', versions: '3+', ignorable: true },
    { name: 'clientSoftwareVersion', type: 'string', versions: '3+', ignorable: true },
  ],
};

export const responseSpec: MessageSpec = {
  name: 'ApiVersionsResponse',
  apiKey,
  type: 'response',
  validVersions: '0-3',
  flexibleVersions: '3+',
  fields: [
    { name: 'errorCode', type: 'int16', versions: '0+' },
    { name: 'apiKeys', type: '[]ApiVersion', versions: '0+', fields: [
      { name: 'apiKey', type: 'int16', versions: '0+' },
      { name: 'minVersion', type: 'int16', versions: '0+' },
      { name: 'maxVersion', type: 'int16', versions: '0+' },
    ] },
    { name: 'throttleTimeMs', type: 'int32', versions: '1+', ignorable: true },
    { name: 'supportedFeatures', type: '[]SupportedFeatureKey', versions: '3+', taggedVersions: '3+', tag: 0, ignorable: true, fields: [
      { name: 'name', type: 'string', versions: '3+' },
      { name: 'minVersion', type: 'int16', versions: '3+' },
      { name: 'maxVersion', type: 'int16', versions: '3+' },
    ] },
    { name: 'finalizedFeaturesEpoch', type: 'int64', versions: '3+', taggedVersions: '3+', tag: 1, default: -1, ignorable: true },
    { name: 'finalizedFeatures', type: '[]FinalizedFeatureKey', versions: '3+', taggedVersions: '3+', tag: 2, ignorable: true, fields: [
      { name: 'name', type: 'string', versions: '3+' },
      { name: 'maxVersionLevel', type: 'int16', versions: '3+' },
      { name: 'minVersionLevel', type: 'int16', versions: '3+' },
    ] },
  ],
};

export interface ApiVersionsRequest {
  /** v3+ ('' before). */
  clientSoftwareName: string;
  clientSoftwareVersion: string;
}

export interface ApiVersionRange {
  apiKey: number;
  minVersion: number;
  maxVersion: number;
}

export interface ApiVersionsResponse {
  errorCode: number;
  apiKeys: ApiVersionRange[];
  throttleTimeMs?: number;
  supportedFeatures?: { name: string; minVersion: number; maxVersion: number }[];
  finalizedFeaturesEpoch?: number;
  finalizedFeatures?: { name: string; maxVersionLevel: number; minVersionLevel: number }[];
}
