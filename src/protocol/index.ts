// The Kafka protocol as Wharf speaks it: the table of API keys with the versions we advertise,
// and the entry points the broker uses (decode a request, encode a response) plus their mirror
// images for tests and clients (encode a request, decode a response).
//
// Every API key is in API_TABLE, the unimplemented ones too. For an implemented key the row
// holds the versions we advertise in ApiVersions (`advertised`); the codec itself may read more
// (its spec's validVersions), e.g. Produce v0-v2 or Fetch v13.
//
// Frames: `frame` is a request or response without its 4-byte size prefix (the connection strips
// it). Encoders return Buffer chunks that START with the size prefix, ready for writev/cork; large
// byte fields (record batches) are the caller's buffers, by reference.

import * as apiVersions from './apis/api-versions.ts';
import * as createTopics from './apis/create-topics.ts';
import * as deleteTopics from './apis/delete-topics.ts';
import * as fetch from './apis/fetch.ts';
import * as findCoordinator from './apis/find-coordinator.ts';
import * as heartbeat from './apis/heartbeat.ts';
import * as initProducerId from './apis/init-producer-id.ts';
import * as joinGroup from './apis/join-group.ts';
import * as leaveGroup from './apis/leave-group.ts';
import * as listOffsets from './apis/list-offsets.ts';
import * as metadata from './apis/metadata.ts';
import * as offsetCommit from './apis/offset-commit.ts';
import * as offsetFetch from './apis/offset-fetch.ts';
import * as produce from './apis/produce.ts';
import * as syncGroup from './apis/sync-group.ts';
import type { ApiVersionRange } from './apis/api-versions.ts';
import { ErrorCode, ProtocolError } from './errors.ts';
import {
  decodeRequestHeaderVersion,
  decodeResponseHeader,
  encodeRequestHeader,
  encodeResponseHeader,
  peekApiKeyAndVersion,
  requestHeaderVersion,
  responseHeaderVersion,
  type DecodedRequestHeader,
} from './headers.ts';
import { Reader, Writer } from './primitives.ts';
import { compileMessage, type MessageCodec, type MessageSpec } from './schema.ts';

export { ErrorCode, ProtocolError, errorName } from './errors.ts';
export type { DecodedRequestHeader, RequestHeader } from './headers.ts';
export type { ApiVersionRange } from './apis/api-versions.ts';

interface ApiModule {
  readonly apiKey: number;
  readonly requestSpec: MessageSpec;
  readonly responseSpec: MessageSpec;
}

export interface ApiTableRow {
  readonly apiKey: number;
  readonly name: string;
  /** Versions advertised in ApiVersions; null when the API is not implemented. */
  readonly advertised: { readonly min: number; readonly max: number } | null;
  readonly request: MessageCodec | null;
  readonly response: MessageCodec | null;
  /** Why the advertised range is narrower than the codec's, when it is. */
  readonly note?: string;
}

function api(mod: ApiModule, name: string, min: number, max: number, note?: string): ApiTableRow {
  const request = compileMessage(mod.requestSpec);
  const response = compileMessage(mod.responseSpec);
  if (!request.supports(min) || !request.supports(max) || !response.supports(max)) {
    throw new Error(`${name}: advertised v${min}-v${max} outside the codec's versions`);
  }
  const row: ApiTableRow = { apiKey: mod.apiKey, name, advertised: { min, max }, request, response };
  return note === undefined ? row : { ...row, note };
}

function none(apiKey: number, name: string): ApiTableRow {
  return { apiKey, name, advertised: null, request: null, response: null };
}

export const API_TABLE: readonly ApiTableRow[] = [
  // Produce and Fetch are advertised from v0 because librdkafka enables gzip, snappy and lz4 only
  // when both ranges reach v0; clients then pick the highest version. Produce v0-v2 (message
  // format v0/v1) is answered UNSUPPORTED_FOR_MESSAGE_FORMAT; Fetch v0-v3 returns v2 batches.
  api(produce,         'Produce',          0,  9, 'v0-v2: message format v0/v1 is refused'),
  api(fetch,           'Fetch',            0, 12, 'v0-v3 serve v2 batches as stored; v13 names topics by id'),
  api(listOffsets,     'ListOffsets',      0,  6, 'v7 asks for MAX_TIMESTAMP (-3), not supported yet'),
  api(metadata,        'Metadata',         0, 12),
  none(4,  'LeaderAndIsr'),
  none(5,  'StopReplica'),
  none(6,  'UpdateMetadata'),
  none(7,  'ControlledShutdown'),
  api(offsetCommit,    'OffsetCommit',     0,  8),
  api(offsetFetch,     'OffsetFetch',      0,  8),
  api(findCoordinator, 'FindCoordinator',  0,  4),
  api(joinGroup,       'JoinGroup',        0,  9),
  api(heartbeat,       'Heartbeat',        0,  4),
  api(leaveGroup,      'LeaveGroup',       0,  5),
  api(syncGroup,       'SyncGroup',        0,  5),
  none(15, 'DescribeGroups'),
  none(16, 'ListGroups'),
  none(17, 'SaslHandshake'),
  api(apiVersions,     'ApiVersions',      0,  3),
  api(createTopics,    'CreateTopics',     0,  7),
  api(deleteTopics,    'DeleteTopics',     0,  6),
  none(21, 'DeleteRecords'),
  api(initProducerId,  'InitProducerId',   0,  4),
  none(23, 'OffsetForLeaderEpoch'),
  none(24, 'AddPartitionsToTxn'),
  none(25, 'AddOffsetsToTxn'),
  none(26, 'EndTxn'),
  none(27, 'WriteTxnMarkers'),
  none(28, 'TxnOffsetCommit'),
  none(29, 'DescribeAcls'),
  none(30, 'CreateAcls'),
  none(31, 'DeleteAcls'),
  none(32, 'DescribeConfigs'),
  none(33, 'AlterConfigs'),
  none(34, 'AlterReplicaLogDirs'),
  none(35, 'DescribeLogDirs'),
  none(36, 'SaslAuthenticate'),
  none(37, 'CreatePartitions'),
  none(38, 'CreateDelegationToken'),
  none(39, 'RenewDelegationToken'),
  none(40, 'ExpireDelegationToken'),
  none(41, 'DescribeDelegationToken'),
  none(42, 'DeleteGroups'),
  none(43, 'ElectLeaders'),
  none(44, 'IncrementalAlterConfigs'),
  none(45, 'AlterPartitionReassignments'),
  none(46, 'ListPartitionReassignments'),
  none(47, 'OffsetDelete'),
  none(48, 'DescribeClientQuotas'),
  none(49, 'AlterClientQuotas'),
  none(50, 'DescribeUserScramCredentials'),
  none(51, 'AlterUserScramCredentials'),
  none(52, 'Vote'),
  none(53, 'BeginQuorumEpoch'),
  none(54, 'EndQuorumEpoch'),
  none(55, 'DescribeQuorum'),
  none(56, 'AlterPartition'),
  none(57, 'UpdateFeatures'),
  none(58, 'Envelope'),
  none(59, 'FetchSnapshot'),
  none(60, 'DescribeCluster'),
  none(61, 'DescribeProducers'),
  none(62, 'BrokerRegistration'),
  none(63, 'BrokerHeartbeat'),
  none(64, 'UnregisterBroker'),
  none(65, 'DescribeTransactions'),
  none(66, 'ListTransactions'),
  none(67, 'AllocateProducerIds'),
  none(68, 'ConsumerGroupHeartbeat'),
  none(69, 'ConsumerGroupDescribe'),
  none(70, 'ControllerRegistration'),
  none(71, 'GetTelemetrySubscriptions'),
  none(72, 'PushTelemetry'),
  none(73, 'AssignReplicasToDirs'),
  none(74, 'ListClientMetricsResources'),
  none(75, 'DescribeTopicPartitions'),
];

for (let i = 0; i < API_TABLE.length; i++) {
  if (API_TABLE[i]!.apiKey !== i) throw new Error(`API_TABLE row ${i} holds key ${API_TABLE[i]!.apiKey}`);
}

/** The implemented API keys by name. */
export const ApiKey = {
  PRODUCE: produce.apiKey,
  FETCH: fetch.apiKey,
  LIST_OFFSETS: listOffsets.apiKey,
  METADATA: metadata.apiKey,
  OFFSET_COMMIT: offsetCommit.apiKey,
  OFFSET_FETCH: offsetFetch.apiKey,
  FIND_COORDINATOR: findCoordinator.apiKey,
  JOIN_GROUP: joinGroup.apiKey,
  HEARTBEAT: heartbeat.apiKey,
  LEAVE_GROUP: leaveGroup.apiKey,
  SYNC_GROUP: syncGroup.apiKey,
  API_VERSIONS: apiVersions.apiKey,
  CREATE_TOPICS: createTopics.apiKey,
  DELETE_TOPICS: deleteTopics.apiKey,
  INIT_PRODUCER_ID: initProducerId.apiKey,
} as const;

/** Decoded request and response body types by API key. */
export interface ApiMessages {
  [produce.apiKey]: { request: produce.ProduceRequest; response: produce.ProduceResponse };
  [fetch.apiKey]: { request: fetch.FetchRequest; response: fetch.FetchResponse };
  [listOffsets.apiKey]: { request: listOffsets.ListOffsetsRequest; response: listOffsets.ListOffsetsResponse };
  [metadata.apiKey]: { request: metadata.MetadataRequest; response: metadata.MetadataResponse };
  [offsetCommit.apiKey]: { request: offsetCommit.OffsetCommitRequest; response: offsetCommit.OffsetCommitResponse };
  [offsetFetch.apiKey]: { request: offsetFetch.OffsetFetchRequest; response: offsetFetch.OffsetFetchResponse };
  [findCoordinator.apiKey]: { request: findCoordinator.FindCoordinatorRequest; response: findCoordinator.FindCoordinatorResponse };
  [joinGroup.apiKey]: { request: joinGroup.JoinGroupRequest; response: joinGroup.JoinGroupResponse };
  [heartbeat.apiKey]: { request: heartbeat.HeartbeatRequest; response: heartbeat.HeartbeatResponse };
  [leaveGroup.apiKey]: { request: leaveGroup.LeaveGroupRequest; response: leaveGroup.LeaveGroupResponse };
  [syncGroup.apiKey]: { request: syncGroup.SyncGroupRequest; response: syncGroup.SyncGroupResponse };
  [apiVersions.apiKey]: { request: apiVersions.ApiVersionsRequest; response: apiVersions.ApiVersionsResponse };
  [createTopics.apiKey]: { request: createTopics.CreateTopicsRequest; response: createTopics.CreateTopicsResponse };
  [deleteTopics.apiKey]: { request: deleteTopics.DeleteTopicsRequest; response: deleteTopics.DeleteTopicsResponse };
  [initProducerId.apiKey]: { request: initProducerId.InitProducerIdRequest; response: initProducerId.InitProducerIdResponse };
}

export type ImplementedApiKey = keyof ApiMessages;
export type RequestOf<K extends ImplementedApiKey> = ApiMessages[K]['request'];
export type ResponseOf<K extends ImplementedApiKey> = ApiMessages[K]['response'];

/** Any subset of a message: what encodeRequest accepts (missing fields take their defaults). */
export type DeepPartial<T> = T extends Buffer
  ? T
  : T extends readonly (infer U)[]
    ? DeepPartial<U>[]
    : T extends object
      ? { [P in keyof T]?: DeepPartial<T[P]> }
      : T;

type Body = Record<string, unknown>;

function row(apiKey: number): ApiTableRow | undefined {
  return Number.isInteger(apiKey) && apiKey >= 0 ? API_TABLE[apiKey] : undefined;
}

function implementedRow(apiKey: number): ApiTableRow & { request: MessageCodec; response: MessageCodec } {
  const r = row(apiKey);
  if (r === undefined || r.request === null || r.response === null) {
    throw new ProtocolError(`API key ${apiKey} is not implemented`, ErrorCode.UNSUPPORTED_VERSION);
  }
  return r as ApiTableRow & { request: MessageCodec; response: MessageCodec };
}

export function isImplemented(apiKey: number): apiKey is ImplementedApiKey {
  const r = row(apiKey);
  return r !== undefined && r.request !== null;
}

/** Whether we advertise, and so accept, this version of this API. */
export function isSupported(apiKey: number, apiVersion: number): boolean {
  const a = row(apiKey)?.advertised;
  return a != null && apiVersion >= a.min && apiVersion <= a.max;
}

/** The apiKeys list of an ApiVersions response. */
export function supportedVersions(): ApiVersionRange[] {
  const out: ApiVersionRange[] = [];
  for (const r of API_TABLE) {
    if (r.advertised !== null) out.push({ apiKey: r.apiKey, minVersion: r.advertised.min, maxVersion: r.advertised.max });
  }
  return out;
}

/**
 * Request header version of (apiKey, apiVersion): v2 when the body version is flexible, else v1.
 * Flexibility comes from the spec's flexibleVersions, so it is right also for versions above the
 * ones we support; for unimplemented APIs we cannot know and say v1.
 */
export function requestHeaderVersionOf(apiKey: number, apiVersion: number): 0 | 1 | 2 {
  const codec = row(apiKey)?.request ?? null;
  return requestHeaderVersion(apiKey, apiVersion, codec !== null && codec.isFlexible(apiVersion));
}

/** Response header version: v1 for flexible responses, else v0; always v0 for ApiVersions. */
export function responseHeaderVersionOf(apiKey: number, apiVersion: number): 0 | 1 {
  const codec = row(apiKey)?.response ?? null;
  return responseHeaderVersion(apiKey, codec !== null && codec.isFlexible(apiVersion));
}

/**
 * Decodes the request header at the start of `frame`. Works for any API key and version (so the
 * broker can answer UNSUPPORTED_VERSION with the right correlation id); for unimplemented keys
 * with flexible versions `bodyOffset` points at the header's tagged fields.
 */
export function decodeRequestHeader(frame: Buffer): DecodedRequestHeader {
  const { apiKey, apiVersion } = peekApiKeyAndVersion(frame);
  return decodeRequestHeaderVersion(frame, requestHeaderVersionOf(apiKey, apiVersion));
}

/** Decodes a request body. Throws ProtocolError when malformed, truncated, or of a version the codec lacks. */
export function decodeRequest<K extends ImplementedApiKey>(
  apiKey: K,
  apiVersion: number,
  frame: Buffer,
  bodyOffset: number,
): RequestOf<K> {
  const codec = implementedRow(apiKey).request;
  return codec.decode(apiVersion, new Reader(frame, bodyOffset)) as unknown as RequestOf<K>;
}

/** Encodes a response: size prefix + response header + body, as chunks for writev. */
export function encodeResponse<K extends ImplementedApiKey>(
  apiKey: K,
  apiVersion: number,
  correlationId: number,
  body: ResponseOf<K>,
): Buffer[] {
  const compiled = implementedRow(apiKey).response.forVersion(apiVersion);
  const w = new Writer(apiKey === ApiKey.FETCH || apiKey === ApiKey.METADATA ? 1024 : 256);
  const size = w.reserveInt32();
  encodeResponseHeader(w, correlationId, responseHeaderVersion(apiKey, compiled.flexible));
  compiled.encode(w, body as unknown as Body);
  Writer.patchInt32(size, w.length - 4);
  return w.finish();
}

/** Encodes a request: size prefix + request header + body (for tests and in-process clients). */
export function encodeRequest<K extends ImplementedApiKey>(
  apiKey: K,
  apiVersion: number,
  header: { correlationId: number; clientId: string | null },
  body: DeepPartial<RequestOf<K>>,
): Buffer[] {
  const compiled = implementedRow(apiKey).request.forVersion(apiVersion);
  const w = new Writer(256);
  const size = w.reserveInt32();
  const headerVersion = requestHeaderVersion(apiKey, apiVersion, compiled.flexible);
  encodeRequestHeader(w, { apiKey, apiVersion, ...header }, headerVersion);
  compiled.encode(w, body as unknown as Body);
  Writer.patchInt32(size, w.length - 4);
  return w.finish();
}

/** Decodes a response frame (without its size prefix): header and body. */
export function decodeResponse<K extends ImplementedApiKey>(
  apiKey: K,
  apiVersion: number,
  frame: Buffer,
): { correlationId: number; body: ResponseOf<K> } {
  const codec = implementedRow(apiKey).response;
  const r = new Reader(frame);
  const correlationId = decodeResponseHeader(r, responseHeaderVersion(apiKey, codec.isFlexible(apiVersion)));
  const body = codec.decode(apiVersion, r) as unknown as ResponseOf<K>;
  return { correlationId, body };
}
