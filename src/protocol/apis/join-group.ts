// JoinGroup (API key 11). From Kafka's JoinGroupRequest.json / JoinGroupResponse.json.
//
// v1 adds rebalanceTimeoutMs, v4 makes a new member join twice (first gets MEMBER_ID_REQUIRED
// with its member id), v5 groupInstanceId, v6 is the first flexible version, v7 protocolType in
// the response (protocolName nullable), v8 reason, v9 skipAssignment.

import type { MessageSpec } from '../schema.ts';

export const apiKey = 11;

export const requestSpec: MessageSpec = {
  name: 'JoinGroupRequest',
  apiKey,
  type: 'request',
  validVersions: '0-9',
  flexibleVersions: '6+',
  fields: [
    { name: 'groupId', type: 'string', versions: '0+' },
    { name: 'sessionTimeoutMs', type: 'int32', versions: '0+' },
    // Absent in v0: the coordinator uses sessionTimeoutMs then.
    { name: 'rebalanceTimeoutMs', type: 'int32', versions: '1+', default: -1, ignorable: true },
    { name: 'memberId', type: 'string', versions: '0+' },
    { name: 'groupInstanceId', type: 'string', versions: '5+', nullableVersions: '5+', default: null },
    { name: 'protocolType', type: 'string', versions: '0+' },
    { name: 'protocols', type: '[]JoinGroupRequestProtocol', versions: '0+', fields: [
      { name: 'name', type: 'string', versions: '0+' },
      { name: 'metadata', type: 'bytes', versions: '0+' },
    ] },
    { name: 'reason', type: 'string', versions: '8+', nullableVersions: '8+', default: null, ignorable: true },
  ],
};

export const responseSpec: MessageSpec = {
  name: 'JoinGroupResponse',
  apiKey,
  type: 'response',
  validVersions: '0-9',
  flexibleVersions: '6+',
  fields: [
    { name: 'throttleTimeMs', type: 'int32', versions: '2+', ignorable: true },
    { name: 'errorCode', type: 'int16', versions: '0+' },
    { name: 'generationId', type: 'int32', versions: '0+', default: -1 },
    { name: 'protocolType', type: 'string', versions: '7+', nullableVersions: '7+', default: null, ignorable: true },
    { name: 'protocolName', type: 'string', versions: '0+', nullableVersions: '7+' },
    { name: 'leader', type: 'string', versions: '0+' },
    { name: 'skipAssignment', type: 'bool', versions: '9+', default: false },
    { name: 'memberId', type: 'string', versions: '0+' },
    { name: 'members', type: '[]JoinGroupResponseMember', versions: '0+', fields: [
      { name: 'memberId', type: 'string', versions: '0+' },
      { name: 'groupInstanceId', type: 'string', versions: '5+', nullableVersions: '5+', default: null },
      { name: 'metadata', type: 'bytes', versions: '0+' },
    ] },
  ],
};

export interface JoinGroupRequest {
  groupId: string;
  sessionTimeoutMs: number;
  /** -1 in v0 (use sessionTimeoutMs). */
  rebalanceTimeoutMs: number;
  /** '' for a new member. */
  memberId: string;
  groupInstanceId: string | null;
  protocolType: string;
  protocols: { name: string; metadata: Buffer }[];
  reason: string | null;
}

export interface JoinGroupResponse {
  throttleTimeMs?: number;
  errorCode: number;
  generationId?: number;
  protocolType?: string | null;
  /** null allowed from v7 (sent as '' before). */
  protocolName: string | null;
  leader: string;
  skipAssignment?: boolean;
  memberId: string;
  /** Filled for the leader only. */
  members: { memberId: string; groupInstanceId?: string | null; metadata: Buffer }[];
}
