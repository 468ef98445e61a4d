// Messages built byte by byte from the protocol guide (kafka.apache.org/protocol), checked in both
// directions. These cover the flexible versions kafkajs does not speak.

import { describe, expect, it } from 'vitest';
import {
  ApiKey,
  decodeRequest,
  decodeRequestHeader,
  decodeResponse,
  encodeRequest,
  encodeResponse,
} from '../../../src/protocol/index.ts';

/** Hex with spaces and comments allowed: '00 12 # api key'. */
function hex(s: string): Buffer {
  return Buffer.from(
    s
      .split('\n')
      .map((line) => line.replace(/#.*/, ''))
      .join('')
      .replace(/\s+/g, ''),
    'hex',
  );
}

function ascii(s: string): string {
  return Buffer.from(s).toString('hex');
}

describe('ApiVersions v3, as librdkafka sends it first', () => {
  const frame = hex(`
    0012 0003            # api key 18, version 3
    0000002a             # correlation id 42
    0007 ${ascii('rdkafka')} # client id: a classic (int16-length) string even in header v2
    00                   # header tagged fields: none
    0b ${ascii('librdkafka')} # client software name: compact string, length+1 = 11
    06 ${ascii('2.0.2')}  # client software version
    00                   # body tagged fields: none
  `);

  it('decodes header v2 and the flexible body', () => {
    const header = decodeRequestHeader(frame);
    expect(header).toEqual({ apiKey: 18, apiVersion: 3, correlationId: 42, clientId: 'rdkafka', bodyOffset: 18 });
    expect(decodeRequest(ApiKey.API_VERSIONS, 3, frame, header.bodyOffset)).toEqual({
      clientSoftwareName: 'librdkafka',
      clientSoftwareVersion: '2.0.2',
    });
  });

  it('encodes to the same bytes', () => {
    const wire = Buffer.concat(
      encodeRequest(ApiKey.API_VERSIONS, 3, { correlationId: 42, clientId: 'rdkafka' }, {
        clientSoftwareName: 'librdkafka',
        clientSoftwareVersion: '2.0.2',
      }),
    );
    expect(wire.subarray(4)).toEqual(frame);
    expect(wire.readInt32BE(0)).toBe(frame.length);
  });

  it('is answered with a v0 response header (no tagged fields) and a flexible body', () => {
    const wire = Buffer.concat(
      encodeResponse(ApiKey.API_VERSIONS, 3, 42, {
        errorCode: 0,
        apiKeys: [
          { apiKey: 0, minVersion: 3, maxVersion: 9 },
          { apiKey: 18, minVersion: 0, maxVersion: 3 },
        ],
        throttleTimeMs: 0,
      }),
    );
    expect(wire).toEqual(
      hex(`
        0000001a             # size 26
        0000002a             # correlation id; no header tagged fields for ApiVersions
        0000                 # error code
        03                   # api keys: compact array of 2
        0000 0003 0009 00    # Produce 3-9, tagged fields
        0012 0000 0003 00    # ApiVersions 0-3, tagged fields
        00000000             # throttle time
        00                   # tagged fields: none (features left at their defaults)
      `),
    );
    const back = decodeResponse(ApiKey.API_VERSIONS, 3, wire.subarray(4));
    expect(back.correlationId).toBe(42);
    expect(back.body.apiKeys).toHaveLength(2);
  });

  it('answers an unsupported version in v0 form: error code and api keys only', () => {
    const wire = Buffer.concat(encodeResponse(ApiKey.API_VERSIONS, 0, 5, { errorCode: 35, apiKeys: [{ apiKey: 18, minVersion: 0, maxVersion: 3 }] }));
    expect(wire).toEqual(hex('00000010 00000005 0023 00000001 0012 0000 0003'));
  });
});

describe('Metadata v1', () => {
  it('decodes a request for one topic', () => {
    const frame = hex(`
      0003 0001 00000007     # Metadata v1, correlation id 7
      0006 ${ascii('client')}
      00000001               # topics: 1
      0006 ${ascii('orders')}
    `);
    const header = decodeRequestHeader(frame);
    expect(header).toEqual({ apiKey: 3, apiVersion: 1, correlationId: 7, clientId: 'client', bodyOffset: 16 });
    const req = decodeRequest(ApiKey.METADATA, 1, frame, header.bodyOffset);
    expect(req.topics).toEqual([{ topicId: '00000000000000000000000000000000', name: 'orders' }]);
    expect(req.allowAutoTopicCreation).toBe(true);
  });

  it('decodes a null topic array as "all topics" and a null client id', () => {
    const frame = hex('0003 0001 00000008 ffff ffffffff');
    const header = decodeRequestHeader(frame);
    expect(header.clientId).toBeNull();
    expect(decodeRequest(ApiKey.METADATA, 1, frame, header.bodyOffset).topics).toBeNull();
  });

  it('encodes a response with rack and controller but no cluster id (v2+)', () => {
    const wire = Buffer.concat(
      encodeResponse(ApiKey.METADATA, 1, 7, {
        brokers: [{ nodeId: 1, host: 'h', port: 9092, rack: null }],
        clusterId: 'ignored in v1',
        controllerId: 1,
        topics: [{ errorCode: 0, name: 't', isInternal: false, partitions: [{ errorCode: 0, partitionIndex: 0, leaderId: 1, replicaNodes: [1], isrNodes: [1] }] }],
      }),
    );
    expect(wire.subarray(4)).toEqual(
      hex(`
        00000007                         # correlation id
        00000001 00000001 0001 ${ascii('h')} 00002384 ffff   # brokers: node 1, "h", 9092, rack null
        00000001                         # controller id
        00000001 0000 0001 ${ascii('t')} 00   # topics: error 0, "t", not internal
        00000001 0000 00000000 00000001 00000001 00000001 00000001 00000001   # partition 0, leader 1, replicas [1], isr [1]
      `),
    );
  });
});

describe('flexible request header v2', () => {
  it('skips tagged fields in the header and finds the body after them', () => {
    const frame = hex(`
      0003 0009 00000001     # Metadata v9
      0001 ${ascii('c')}     # client id "c" (int16 length)
      01 05 02 abcd          # header tagged fields: one unknown tag 5 of 2 bytes
      02                     # topics: compact array of 1
        02 ${ascii('t')} 00  # name "t", tagged fields
      01 00 00               # allowAutoTopicCreation, includeCluster..., includeTopic...
      00                     # tagged fields
    `);
    const header = decodeRequestHeader(frame);
    expect(header).toMatchObject({ apiKey: 3, apiVersion: 9, clientId: 'c', bodyOffset: 16 });
    expect(decodeRequest(ApiKey.METADATA, 9, frame, header.bodyOffset)).toEqual({
      topics: [{ topicId: '00000000000000000000000000000000', name: 't' }],
      allowAutoTopicCreation: true,
      includeClusterAuthorizedOperations: false,
      includeTopicAuthorizedOperations: false,
    });
  });

  it('uses header v1 for non-flexible versions and v2 for flexible ones', () => {
    const v8 = Buffer.concat(encodeRequest(ApiKey.METADATA, 8, { correlationId: 1, clientId: 'c' }, { topics: null }));
    const v9 = Buffer.concat(encodeRequest(ApiKey.METADATA, 9, { correlationId: 1, clientId: 'c' }, { topics: null }));
    expect(decodeRequestHeader(v8.subarray(4)).bodyOffset).toBe(11);
    expect(decodeRequestHeader(v9.subarray(4)).bodyOffset).toBe(12);
    expect(v9[4 + 11]).toBe(0); // the header's empty tagged-field section
  });
});

describe('Produce v9 (flexible)', () => {
  it('decodes compact arrays and compact record bytes', () => {
    const batch = Buffer.from('00000000000000000000000c00000000020000000000', 'hex');
    const frame = hex(`
      0000 0009 00000003 0000 00   # Produce v9, correlation 3, client id "", no tags
      00                           # transactional id: null (compact)
      ffff                         # acks -1
      00007530                     # timeout 30000
      02                           # topic data: 1
        07 ${ascii('orders')}      # name
        02                         # partition data: 1
          00000002                 # index 2
          ${(batch.length + 1).toString(16).padStart(2, '0')} ${batch.toString('hex')}   # records
          00                       # partition tagged fields
        00                         # topic tagged fields
      00                           # tagged fields
    `);
    const header = decodeRequestHeader(frame);
    const req = decodeRequest(ApiKey.PRODUCE, 9, frame, header.bodyOffset);
    expect(req).toEqual({ transactionalId: null, acks: -1, timeoutMs: 30000, topicData: [{ name: 'orders', partitionData: [{ index: 2, records: batch }] }] });
    expect(req.topicData[0]!.partitionData[0]!.records!.buffer).toBe(frame.buffer);
  });

  it('encodes a response with per-partition tagged sections', () => {
    const wire = Buffer.concat(
      encodeResponse(ApiKey.PRODUCE, 9, 3, {
        responses: [{ name: 'o', partitionResponses: [{ index: 0, errorCode: 0, baseOffset: 5 }] }],
      }),
    );
    expect(wire.subarray(4)).toEqual(
      hex(`
        00000003 00                      # correlation id, header v1 tagged fields
        02 02 ${ascii('o')}              # responses: 1, name "o"
        02 00000000 0000                 # partition responses: 1, index 0, error 0
        0000000000000005                 # base offset 5
        ffffffffffffffff                 # log append time -1
        ffffffffffffffff                 # log start offset -1
        01                               # record errors: empty
        00                               # error message: null
        00 00                            # partition and topic tagged fields
        00000000 00                      # throttle time, tagged fields
      `),
    );
  });
});

describe('Fetch v12 (flexible, tagged fields)', () => {
  it('writes currentLeader as tag 1 only when it differs from the default', () => {
    const body = {
      throttleTimeMs: 0,
      errorCode: 0,
      sessionId: 0,
      responses: [
        {
          topic: 't',
          partitions: [
            { partitionIndex: 0, errorCode: 6, highWatermark: 0, currentLeader: { leaderId: 2, leaderEpoch: 7 }, records: null },
          ],
        },
      ],
    };
    const wire = Buffer.concat(encodeResponse(ApiKey.FETCH, 12, 9, body));
    expect(wire.subarray(4)).toEqual(
      hex(`
        00000009 00                     # correlation id, header tagged fields
        00000000 0000 00000000          # throttle, error, session id
        02 02 ${ascii('t')}             # responses: 1, topic "t"
        02 00000000 0006                # partitions: 1, index 0, NOT_LEADER_OR_FOLLOWER
        0000000000000000                # high watermark
        ffffffffffffffff ffffffffffffffff   # last stable offset, log start offset
        01                              # aborted transactions: empty (compact)
        ffffffff                        # preferred read replica -1
        00                              # records: null (compact)
        01 01 09 00000002 00000007 00   # tagged: 1 field, tag 1, 9 bytes: leader 2, epoch 7, tags
        00 00                           # topic tagged fields, message tagged fields
      `),
    );
    const back = decodeResponse(ApiKey.FETCH, 12, wire.subarray(4)).body;
    expect(back.responses[0]!.partitions[0]!.currentLeader).toEqual({ leaderId: 2, leaderEpoch: 7 });
    expect(back.responses[0]!.partitions[0]!.divergingEpoch).toEqual({ epoch: -1, endOffset: -1 });
  });
});
