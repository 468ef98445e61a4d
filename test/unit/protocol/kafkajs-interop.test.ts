// Cross-checks against an independent implementation: kafkajs 2.2.4 (a dev dependency) encodes
// requests that our codec decodes, and decodes responses our codec encodes. kafkajs speaks the
// non-flexible versions only; flexible versions are checked byte by byte in wire-bytes.test.ts.

import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  ApiKey,
  decodeRequest,
  decodeRequestHeader,
  encodeResponse,
  supportedVersions,
  type ImplementedApiKey,
  type RequestOf,
  type ResponseOf,
} from '../../../src/protocol/index.ts';

const require = createRequire(import.meta.url);

interface KafkajsRequest {
  apiKey: number;
  apiVersion: number;
  encode: () => Promise<unknown>;
}
type RequestFactory = (args: Record<string, unknown>) => KafkajsRequest;
type ResponseModule = { decode: (payload: Buffer) => Promise<Record<string, unknown>> };

const frameRequest = require('kafkajs/src/protocol/request.js') as (args: {
  correlationId: number;
  clientId: string;
  request: KafkajsRequest;
}) => Promise<{ buffer: Buffer }>;
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as {
  RecordBatch: (args: Record<string, unknown>) => Promise<{ buffer: Buffer }>;
};
const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (args: Record<string, unknown>) => unknown;

function kafkajsRequest(api: string, version: number): RequestFactory {
  return require(`kafkajs/src/protocol/requests/${api}/v${version}/request.js`) as RequestFactory;
}

function kafkajsResponse(api: string, version: number): ResponseModule {
  return require(`kafkajs/src/protocol/requests/${api}/v${version}/response.js`) as ResponseModule;
}

/** What our broker would decode from a request kafkajs sends. */
async function decodeFromKafkajs<K extends ImplementedApiKey>(apiKey: K, request: KafkajsRequest): Promise<RequestOf<K>> {
  const { buffer } = await frameRequest({ correlationId: 42, clientId: 'kafkajs-test', request });
  expect(buffer.readInt32BE(0)).toBe(buffer.length - 4);
  const frame = buffer.subarray(4);
  const header = decodeRequestHeader(frame);
  expect(header).toMatchObject({ apiKey, apiVersion: request.apiVersion, correlationId: 42, clientId: 'kafkajs-test' });
  const decoded = decodeRequest(apiKey, header.apiVersion, frame, header.bodyOffset);
  return decoded;
}

/** What kafkajs makes of a response we send (it reads the body after a v0 response header). */
async function kafkajsDecodes<K extends ImplementedApiKey>(
  apiKey: K,
  version: number,
  module: ResponseModule,
  body: ResponseOf<K>,
): Promise<Record<string, unknown>> {
  const wire = Buffer.concat(encodeResponse(apiKey, version, 7, body));
  expect(wire.readInt32BE(0)).toBe(wire.length - 4);
  expect(wire.readInt32BE(4)).toBe(7);
  return module.decode(wire.subarray(8));
}

async function batchOf(values: string[], firstOffset = 0): Promise<Buffer> {
  const records = values.map((value, i) => Record({ offsetDelta: i, value: Buffer.from(value), key: null }));
  const batch = await RecordBatch({ records, lastOffsetDelta: values.length - 1, firstTimestamp: 1_700_000_000_000, maxTimestamp: 1_700_000_000_000 });
  const bytes = batch.buffer;
  bytes.writeBigInt64BE(BigInt(firstOffset), 0);
  return bytes;
}

describe('ApiVersions with kafkajs', () => {
  it.each([0, 1, 2])('reads a kafkajs v%i request', async (v) => {
    const decoded = await decodeFromKafkajs(ApiKey.API_VERSIONS, kafkajsRequest('apiVersions', v)({}));
    expect(decoded).toEqual({ clientSoftwareName: '', clientSoftwareVersion: '' });
  });

  it('answers v2 with a list kafkajs understands', async () => {
    const out = await kafkajsDecodes(ApiKey.API_VERSIONS, 2, kafkajsResponse('apiVersions', 2), {
      errorCode: 0,
      apiKeys: supportedVersions(),
      throttleTimeMs: 3,
    });
    expect(out.errorCode).toBe(0);
    expect(out.apiVersions).toEqual(supportedVersions());
    expect(out.clientSideThrottleTime).toBe(3);
  });
});

describe('Metadata with kafkajs', () => {
  it('reads v0, v1, v4 and v6 requests', async () => {
    expect((await decodeFromKafkajs(ApiKey.METADATA, kafkajsRequest('metadata', 0)({ topics: ['a', 'b'] }))).topics).toEqual([
      { topicId: '00000000000000000000000000000000', name: 'a' },
      { topicId: '00000000000000000000000000000000', name: 'b' },
    ]);
    expect((await decodeFromKafkajs(ApiKey.METADATA, kafkajsRequest('metadata', 1)({ topics: ['c'] }))).topics).toEqual([
      { topicId: '00000000000000000000000000000000', name: 'c' },
    ]);
    const v4 = await decodeFromKafkajs(ApiKey.METADATA, kafkajsRequest('metadata', 4)({ topics: ['t'], allowAutoTopicCreation: false }));
    expect(v4.allowAutoTopicCreation).toBe(false);
    const v6 = await decodeFromKafkajs(ApiKey.METADATA, kafkajsRequest('metadata', 6)({ topics: [] }));
    // kafkajs writes an empty topic list as a null array, which from v1 on means "all topics".
    expect(v6).toEqual({ topics: null, allowAutoTopicCreation: true, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false });
  });

  it('answers v6 with brokers, cluster id and partitions kafkajs reads back', async () => {
    const out = await kafkajsDecodes(ApiKey.METADATA, 6, kafkajsResponse('metadata', 6), {
      throttleTimeMs: 0,
      brokers: [{ nodeId: 1, host: 'h1', port: 9092, rack: 'az-a' }],
      clusterId: 'wharf',
      controllerId: 1,
      topics: [
        {
          errorCode: 0,
          name: 'orders',
          isInternal: false,
          partitions: [{ errorCode: 0, partitionIndex: 0, leaderId: 1, replicaNodes: [1], isrNodes: [1], offlineReplicas: [] }],
        },
      ],
    });
    expect(out.brokers).toEqual([{ nodeId: 1, host: 'h1', port: 9092, rack: 'az-a' }]);
    expect(out.clusterId).toBe('wharf');
    expect(out.controllerId).toBe(1);
    expect(out.topicMetadata).toEqual([
      {
        topicErrorCode: 0,
        topic: 'orders',
        isInternal: false,
        partitionMetadata: [{ partitionErrorCode: 0, partitionId: 0, leader: 1, replicas: [1], isr: [1], offlineReplicas: [] }],
      },
    ]);
  });
});

describe('Produce with kafkajs', () => {
  it.each([3, 7])('reads a v%i request and keeps the record batch as a slice of the frame', async (v) => {
    const request = kafkajsRequest('produce', v)({
      acks: -1,
      timeout: 30000,
      topicData: [{ topic: 'orders', partitions: [{ partition: 2, messages: [{ value: 'hello' }, { value: 'world' }] }] }],
    });
    const decoded = await decodeFromKafkajs(ApiKey.PRODUCE, request);
    expect(decoded.acks).toBe(-1);
    expect(decoded.timeoutMs).toBe(30000);
    expect(decoded.transactionalId).toBeNull();
    const part = decoded.topicData[0]!.partitionData[0]!;
    expect(part.index).toBe(2);
    const records = part.records!;
    expect(records.readInt8(16)).toBe(2); // magic
    expect(records.readInt32BE(8)).toBe(records.length - 12); // batchLength covers the rest
    expect(records.readInt32BE(23)).toBe(1); // lastOffsetDelta: two records
  });

  it('answers v7 with offsets kafkajs reads back', async () => {
    const out = await kafkajsDecodes(ApiKey.PRODUCE, 7, kafkajsResponse('produce', 7), {
      responses: [{ name: 'orders', partitionResponses: [{ index: 2, errorCode: 0, baseOffset: 1234, logAppendTimeMs: -1, logStartOffset: 0 }] }],
      throttleTimeMs: 0,
    });
    expect(out.topics).toEqual([
      { topicName: 'orders', partitions: [{ partition: 2, errorCode: 0, baseOffset: '1234', logAppendTime: '-1', logStartOffset: '0' }] },
    ]);
  });
});

describe('Fetch with kafkajs', () => {
  it.each([4, 7, 11])('reads a v%i request', async (v) => {
    const decoded = await decodeFromKafkajs(
      ApiKey.FETCH,
      kafkajsRequest('fetch', v)({
        replicaId: -1,
        maxWaitTime: 500,
        minBytes: 1,
        maxBytes: 1 << 20,
        isolationLevel: 1,
        topics: [{ topic: 'orders', partitions: [{ partition: 0, fetchOffset: '17', maxBytes: 65536 }] }],
        rackId: 'az-b',
      }),
    );
    expect(decoded).toMatchObject({ replicaId: -1, maxWaitMs: 500, minBytes: 1, maxBytes: 1 << 20, isolationLevel: 1 });
    expect(decoded.topics[0]!.topic).toBe('orders');
    expect(decoded.topics[0]!.partitions[0]).toMatchObject({ partition: 0, fetchOffset: 17, partitionMaxBytes: 65536 });
    if (v >= 7) expect(decoded).toMatchObject({ sessionId: 0, sessionEpoch: -1, forgottenTopicsData: [] });
    expect(decoded.rackId).toBe(v >= 11 ? 'az-b' : '');
  });

  it('answers v11 with a list of stored batches that kafkajs decodes as records', async () => {
    const first = await batchOf(['a', 'b'], 10);
    const second = await batchOf(['c'], 12);
    const out = await kafkajsDecodes(ApiKey.FETCH, 11, kafkajsResponse('fetch', 11), {
      throttleTimeMs: 0,
      errorCode: 0,
      sessionId: 0,
      responses: [
        {
          topic: 'orders',
          partitions: [
            { partitionIndex: 0, errorCode: 0, highWatermark: 13, lastStableOffset: 13, logStartOffset: 0, abortedTransactions: null, preferredReadReplica: -1, records: [first, second] },
          ],
        },
      ],
    });
    const responses = out.responses as { topicName: string; partitions: { highWatermark: string; messages: { offset: string; value: Buffer }[] }[] }[];
    expect(responses[0]!.topicName).toBe('orders');
    const p = responses[0]!.partitions[0]!;
    expect(p.highWatermark).toBe('13');
    expect(p.messages.map((m) => [m.offset, m.value.toString()])).toEqual([
      ['10', 'a'],
      ['11', 'b'],
      ['12', 'c'],
    ]);
  });
});

describe('ListOffsets with kafkajs', () => {
  it('reads a v2 request', async () => {
    const decoded = await decodeFromKafkajs(
      ApiKey.LIST_OFFSETS,
      kafkajsRequest('listOffsets', 2)({ replicaId: -1, isolationLevel: 1, topics: [{ topic: 't', partitions: [{ partition: 3, timestamp: -2 }] }] }),
    );
    expect(decoded).toEqual({
      replicaId: -1,
      isolationLevel: 1,
      topics: [{ name: 't', partitions: [{ partitionIndex: 3, currentLeaderEpoch: -1, timestamp: -2, maxNumOffsets: 1 }] }],
    });
  });

  it('answers v3 with an offset kafkajs reads back', async () => {
    const out = await kafkajsDecodes(ApiKey.LIST_OFFSETS, 3, kafkajsResponse('listOffsets', 3), {
      topics: [{ name: 't', partitions: [{ partitionIndex: 3, errorCode: 0, timestamp: -1, offset: 99 }] }],
    });
    expect(out.responses).toEqual([{ topic: 't', partitions: [{ partition: 3, errorCode: 0, timestamp: '-1', offset: '99' }] }]);
  });
});

describe('consumer group APIs with kafkajs', () => {
  it('FindCoordinator v2: reads the key and type, answers with the coordinator', async () => {
    const decoded = await decodeFromKafkajs(ApiKey.FIND_COORDINATOR, kafkajsRequest('findCoordinator', 2)({ coordinatorKey: 'g1', coordinatorType: 0 }));
    expect(decoded).toEqual({ key: 'g1', keyType: 0, coordinatorKeys: [] });
    const out = await kafkajsDecodes(ApiKey.FIND_COORDINATOR, 2, kafkajsResponse('findCoordinator', 2), {
      errorCode: 0,
      errorMessage: null,
      nodeId: 1,
      host: 'broker-1',
      port: 9092,
    });
    expect(out).toMatchObject({ errorCode: 0, errorMessage: null, coordinator: { nodeId: 1, host: 'broker-1', port: 9092 } });
  });

  it('JoinGroup v5: reads protocols with their metadata bytes, answers with members', async () => {
    const decoded = await decodeFromKafkajs(
      ApiKey.JOIN_GROUP,
      kafkajsRequest('joinGroup', 5)({
        groupId: 'g1',
        sessionTimeout: 30000,
        rebalanceTimeout: 60000,
        memberId: '',
        protocolType: 'consumer',
        groupProtocols: [{ name: 'RoundRobinAssigner', metadata: Buffer.from([1, 2, 3]) }],
      }),
    );
    expect(decoded).toEqual({
      groupId: 'g1',
      sessionTimeoutMs: 30000,
      rebalanceTimeoutMs: 60000,
      memberId: '',
      groupInstanceId: null,
      protocolType: 'consumer',
      protocols: [{ name: 'RoundRobinAssigner', metadata: Buffer.from([1, 2, 3]) }],
      reason: null,
    });
    const out = await kafkajsDecodes(ApiKey.JOIN_GROUP, 5, kafkajsResponse('joinGroup', 5), {
      errorCode: 0,
      generationId: 3,
      protocolName: 'RoundRobinAssigner',
      leader: 'm-1',
      memberId: 'm-1',
      members: [{ memberId: 'm-1', groupInstanceId: null, metadata: Buffer.from([1, 2, 3]) }],
    });
    expect(out).toMatchObject({ errorCode: 0, generationId: 3, groupProtocol: 'RoundRobinAssigner', leaderId: 'm-1', memberId: 'm-1' });
    expect(out.members).toEqual([{ memberId: 'm-1', groupInstanceId: null, memberMetadata: Buffer.from([1, 2, 3]) }]);
  });

  it('SyncGroup v3: reads assignments, answers with this member assignment', async () => {
    const decoded = await decodeFromKafkajs(
      ApiKey.SYNC_GROUP,
      kafkajsRequest('syncGroup', 3)({ groupId: 'g1', generationId: 3, memberId: 'm-1', groupAssignment: [{ memberId: 'm-1', memberAssignment: Buffer.from([9]) }] }),
    );
    expect(decoded.assignments).toEqual([{ memberId: 'm-1', assignment: Buffer.from([9]) }]);
    expect(decoded).toMatchObject({ groupId: 'g1', generationId: 3, memberId: 'm-1', groupInstanceId: null });
    const out = await kafkajsDecodes(ApiKey.SYNC_GROUP, 3, kafkajsResponse('syncGroup', 3), { errorCode: 0, assignment: Buffer.from([9]) });
    expect(out).toMatchObject({ errorCode: 0, memberAssignment: Buffer.from([9]) });
  });

  it('Heartbeat v3 and LeaveGroup v3 round-trip with kafkajs', async () => {
    const hb = await decodeFromKafkajs(
      ApiKey.HEARTBEAT,
      kafkajsRequest('heartbeat', 3)({ groupId: 'g1', groupGenerationId: 3, memberId: 'm-1', groupInstanceId: null }),
    );
    expect(hb).toEqual({ groupId: 'g1', generationId: 3, memberId: 'm-1', groupInstanceId: null });
    const hbOut = await kafkajsDecodes(ApiKey.HEARTBEAT, 3, kafkajsResponse('heartbeat', 3), { errorCode: 0 });
    expect(hbOut).toMatchObject({ errorCode: 0 });

    const leave = await decodeFromKafkajs(ApiKey.LEAVE_GROUP, kafkajsRequest('leaveGroup', 3)({ groupId: 'g1', members: [{ memberId: 'm-1' }] }));
    expect(leave).toEqual({ groupId: 'g1', memberId: '', members: [{ memberId: 'm-1', groupInstanceId: null, reason: null }] });
    const leaveOut = await kafkajsDecodes(ApiKey.LEAVE_GROUP, 3, kafkajsResponse('leaveGroup', 3), {
      errorCode: 0,
      members: [{ memberId: 'm-1', groupInstanceId: null, errorCode: 0 }],
    });
    expect(leaveOut).toMatchObject({ errorCode: 0, members: [{ memberId: 'm-1', groupInstanceId: null, errorCode: 0 }] });
  });

  it('OffsetCommit v5 and OffsetFetch v4 round-trip with kafkajs', async () => {
    const commit = await decodeFromKafkajs(
      ApiKey.OFFSET_COMMIT,
      kafkajsRequest('offsetCommit', 5)({
        groupId: 'g1',
        groupGenerationId: 3,
        memberId: 'm-1',
        topics: [{ topic: 't', partitions: [{ partition: 0, offset: '41' }] }],
      }),
    );
    expect(commit).toEqual({
      groupId: 'g1',
      generationId: 3,
      memberId: 'm-1',
      groupInstanceId: null,
      retentionTimeMs: -1,
      topics: [{ name: 't', partitions: [{ partitionIndex: 0, committedOffset: 41, committedLeaderEpoch: -1, commitTimestamp: -1, committedMetadata: null }] }],
    });
    const commitOut = await kafkajsDecodes(ApiKey.OFFSET_COMMIT, 5, kafkajsResponse('offsetCommit', 5), {
      topics: [{ name: 't', partitions: [{ partitionIndex: 0, errorCode: 0 }] }],
    });
    expect(commitOut.responses).toEqual([{ topic: 't', partitions: [{ partition: 0, errorCode: 0 }] }]);

    const fetchReq = await decodeFromKafkajs(
      ApiKey.OFFSET_FETCH,
      kafkajsRequest('offsetFetch', 4)({ groupId: 'g1', topics: [{ topic: 't', partitions: [{ partition: 0 }] }] }),
    );
    expect(fetchReq).toEqual({ groupId: 'g1', topics: [{ name: 't', partitionIndexes: [0] }], groups: [], requireStable: false });
    const fetchOut = await kafkajsDecodes(ApiKey.OFFSET_FETCH, 4, kafkajsResponse('offsetFetch', 4), {
      topics: [{ name: 't', partitions: [{ partitionIndex: 0, committedOffset: 41, metadata: '', errorCode: 0 }] }],
      errorCode: 0,
    });
    expect(fetchOut.responses).toEqual([{ topic: 't', partitions: [{ partition: 0, offset: '41', metadata: '', errorCode: 0 }] }]);
  });
});

describe('admin and producer-id APIs with kafkajs', () => {
  it('CreateTopics v3: reads topics with configs and assignments', async () => {
    const decoded = await decodeFromKafkajs(
      ApiKey.CREATE_TOPICS,
      kafkajsRequest('createTopics', 3)({
        topics: [
          { topic: 'a', numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '1000' }] },
          { topic: 'b', replicaAssignment: [{ partition: 0, replicas: [1] }] },
        ],
        validateOnly: true,
        timeout: 5000,
      }),
    );
    expect(decoded).toEqual({
      topics: [
        { name: 'a', numPartitions: 3, replicationFactor: 1, assignments: [], configs: [{ name: 'retention.ms', value: '1000' }] },
        { name: 'b', numPartitions: -1, replicationFactor: -1, assignments: [{ partitionIndex: 0, brokerIds: [1] }], configs: [] },
      ],
      timeoutMs: 5000,
      validateOnly: true,
    });
    const out = await kafkajsDecodes(ApiKey.CREATE_TOPICS, 3, kafkajsResponse('createTopics', 3), {
      topics: [{ name: 'a', errorCode: 36, errorMessage: 'exists' }],
    });
    expect(out.topicErrors).toEqual([{ topic: 'a', errorCode: 36, errorMessage: 'exists' }]);
  });

  it('DeleteTopics v1 and InitProducerId v1 round-trip with kafkajs', async () => {
    const del = await decodeFromKafkajs(ApiKey.DELETE_TOPICS, kafkajsRequest('deleteTopics', 1)({ topics: ['a', 'b'], timeout: 1000 }));
    expect(del).toEqual({ topics: [], topicNames: ['a', 'b'], timeoutMs: 1000 });
    const delOut = await kafkajsDecodes(ApiKey.DELETE_TOPICS, 1, kafkajsResponse('deleteTopics', 1), {
      responses: [{ name: 'a', errorCode: 0 }],
    });
    expect(delOut.topicErrors).toEqual([{ topic: 'a', errorCode: 0 }]);

    const init = await decodeFromKafkajs(ApiKey.INIT_PRODUCER_ID, kafkajsRequest('initProducerId', 1)({ transactionalId: null, transactionTimeout: 60000 }));
    expect(init).toEqual({ transactionalId: null, transactionTimeoutMs: 60000, producerId: -1, producerEpoch: -1 });
    const initOut = await kafkajsDecodes(ApiKey.INIT_PRODUCER_ID, 1, kafkajsResponse('initProducerId', 1), {
      errorCode: 0,
      producerId: 4000,
      producerEpoch: 0,
    });
    expect(initOut).toMatchObject({ errorCode: 0, producerId: '4000', producerEpoch: 0 });
  });
});
