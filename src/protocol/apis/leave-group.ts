// LeaveGroup (API key 13). From Kafka's LeaveGroupRequest.json / LeaveGroupResponse.json.
// v3 batches members (`members` replaces memberId) and adds per-member results, v4 is the first
// flexible version, v5 adds a per-member reason.

import type { MessageSpec } from '../schema.ts';

export const apiKey = 13;

export const requestSpec: MessageSpec = {
  name: 'LeaveGroupRequest',
  apiKey,
  type: 'request',
  validVersions: '0-5',
  flexibleVersions: '4+',
  fields: [
    { name: 'groupId', type: 'string', versions: '0+' },
    { name: 'memberId', type: 'string', versions: '0-2' },
    { name: 'members', type: '[]MemberIdentity', versions: '3+', fields: [
      { name: 'memberId', type: 'string', versions: '3+' },
      { name: 'groupInstanceId', type: 'string', versions: '3+', nullableVersions: '3+', default: null },
      { name: 'reason', type: 'string', versions: '5+', nullableVersions: '5+', default: null, ignorable: true },
    ] },
  ],
};

export const responseSpec: MessageSpec = {
  name: 'LeaveGroupResponse',
  apiKey,
  type: 'response',
  validVersions: '0-5',
  flexibleVersions: '4+',
  fields: [
    { name: 'throttleTimeMs', type: 'int32', versions: '1+', ignorable: true },
    { name: 'errorCode', type: 'int16', versions: '0+' },
    { name: 'members', type: '[]MemberResponse', versions: '3+', fields: [
      { name: 'memberId', type: 'string', versions: '3+' },
      { name: 'groupInstanceId', type: 'string', versions: '3+', nullableVersions: '3+' },
      { name: 'errorCode', type: 'int16', versions: '3+' },
    ] },
  ],
};

export interface LeaveGroupRequest {
  groupId: string;
  /** v0-v2. */
  memberId: string;
  /** v3+. */
  members: { memberId: string; groupInstanceId: string | null; reason: string | null }[];
}

export interface LeaveGroupResponse {
  throttleTimeMs?: number;
  errorCode: number;
  /** v3+. */
  members?: { memberId: string; groupInstanceId: string | null; errorCode: number }[];
}
