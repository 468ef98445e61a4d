// Bad input over a raw socket: a truncated frame, an unknown API key, a frame over the size
// limit, a record batch with a wrong CRC and an unsupported ApiVersions version each get the
// Kafka answer (an error code, or a closed connection where Kafka closes it), and after each
// the broker keeps serving other clients (a kafkajs producer and consumer).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Consumer, Kafka } from 'kafkajs';
import { isReady, printBrokerLogsOnFailure, startBroker } from '../helpers/broker.ts';
import type { Broker } from '../helpers/broker.ts';
import { kafkajsClient, waitFor } from '../helpers/kafka.ts';
import {
  ApiKey,
  RawConnection,
  apiVersionsBody,
  batchBaseOffset,
  batchRecordCount,
  encodeRecordBatch,
  encodeRequest,
  fetchAllBatches,
  parseApiVersionsV0,
  parseProduceV3,
  produceV3Body,
} from '../helpers/wire.ts';

const MAX_REQUEST_BYTES = 1024 * 1024;
const CANARY_TOPIC = 'canary';
const CRC_TOPIC = 'crc-check';
const SIZE_TOPIC = 'size-check';

/** Kafka error codes used here. */
const ErrorCode = {
  NONE: 0,
  CORRUPT_MESSAGE: 2,
  UNSUPPORTED_VERSION: 35,
} as const;

printBrokerLogsOnFailure();

describe('bad input', () => {
  let broker: Broker;
  let kafka: Kafka;
  let canaryConsumer: Consumer;
  const canarySeen = new Set<string>();
  let canaryCount = 0;

  /** The broker process is up and a kafkajs producer and consumer still get through. */
  async function expectStillServing(after: string): Promise<void> {
    expect(broker.isRunning(), `broker process alive after ${after}`).toBe(true);
    expect(await isReady(broker), `/readyz after ${after}`).toBe(true);
    const value = `canary-${++canaryCount}-after-${after}`;
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    try {
      await producer.send({ topic: CANARY_TOPIC, acks: -1, messages: [{ value }] });
    } finally {
      await producer.disconnect();
    }
    await waitFor(`the canary consumer to receive "${value}"`, () => canarySeen.has(value), 15_000);
  }

  beforeAll(async () => {
    broker = await startBroker({
      name: 'bad-input-broker',
      env: { WHARF_SOCKET_REQUEST_MAX_BYTES: String(MAX_REQUEST_BYTES) },
    });
    kafka = kafkajsClient(broker.bootstrap);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [CANARY_TOPIC, CRC_TOPIC, SIZE_TOPIC].map((topic) => ({ topic, numPartitions: 1 })),
      waitForLeaders: true,
    });
    await admin.disconnect();

    // A consumer that stays connected through all the abuse.
    canaryConsumer = kafka.consumer({ groupId: 'canary-readers', heartbeatInterval: 500, maxWaitTimeInMs: 100 });
    let joined = false;
    canaryConsumer.on(canaryConsumer.events.GROUP_JOIN, () => {
      joined = true;
    });
    await canaryConsumer.connect();
    await canaryConsumer.subscribe({ topic: CANARY_TOPIC, fromBeginning: true });
    await canaryConsumer.run({
      eachMessage: async ({ message }) => {
        canarySeen.add(message.value!.toString());
      },
    });
    await waitFor('the canary consumer to join its group', () => joined, 30_000);
    await expectStillServing('start');
  });

  afterAll(async () => {
    await canaryConsumer?.disconnect();
    await broker?.stop();
  });

  it('a frame that ends before its size prefix promised is dropped without harm', async () => {
    // (1) Size prefix says 100 bytes; 20 arrive (a valid ApiVersions header start); then FIN.
    const cut = await RawConnection.open(broker.kafkaPort);
    const frame = encodeRequest({ apiKey: ApiKey.ApiVersions, apiVersion: 0, correlationId: 1 });
    const promised = Buffer.alloc(4);
    promised.writeInt32BE(100);
    cut.write(Buffer.concat([promised, frame.subarray(4, 24)]));
    cut.endWriting();
    expect(await cut.nextFrame(5_000), 'the broker answers nothing and closes').toBe('closed');

    // (2) Only half of a size prefix, then FIN.
    const half = await RawConnection.open(broker.kafkaPort);
    half.write(Buffer.from([0x00, 0x00]));
    half.endWriting();
    expect(await half.nextFrame(5_000)).toBe('closed');

    // (3) A promised frame, then the client vanishes (RST).
    const vanished = await RawConnection.open(broker.kafkaPort);
    vanished.write(Buffer.concat([promised, frame.subarray(4, 10)]));
    await new Promise((resolveWait) => setTimeout(resolveWait, 100));
    vanished.destroy();

    await expectStillServing('truncated frames');
  });

  it('an unknown API key is answered with an error or the connection is closed, as Kafka does', async () => {
    const conn = await RawConnection.open(broker.kafkaPort);
    try {
      // Header v1: api_key 999, api_version 0, correlation_id 4242, client_id; no body.
      conn.write(encodeRequest({ apiKey: 999, apiVersion: 0, correlationId: 4242 }));
      const answer = await conn.nextFrame(5_000);
      if (answer !== 'closed') {
        // Answered: a response header v0 with our correlation id, then a non-zero error code.
        expect(answer.readInt32BE(0), 'correlation id of the answer').toBe(4242);
        expect(answer.length, 'answer holds an error code').toBeGreaterThanOrEqual(6);
        expect(answer.readInt16BE(4), 'error code of the answer').not.toBe(ErrorCode.NONE);
      }
    } finally {
      conn.destroy();
    }
    await expectStillServing('an unknown API key');
  });

  it('a frame larger than socket.request.max.bytes closes the connection without an answer', async () => {
    const conn = await RawConnection.open(broker.kafkaPort);
    // Size prefix of 2 MiB (the limit is 1 MiB) followed by a plausible header; the rest never comes.
    const header = encodeRequest({ apiKey: ApiKey.ApiVersions, apiVersion: 0, correlationId: 5 }).subarray(4);
    const size = Buffer.alloc(4);
    size.writeInt32BE(2 * 1024 * 1024);
    conn.write(Buffer.concat([size, header]));
    expect(await conn.nextFrame(5_000), 'the broker closes at once, without waiting for 2 MiB').toBe('closed');

    // A request under the limit (a produce of about 700 KiB) is still served.
    const big = await RawConnection.open(broker.kafkaPort);
    try {
      const records = encodeRecordBatch([{ key: null, value: Buffer.alloc(700 * 1024, 0x61) }]);
      const response = await big.request(
        { apiKey: ApiKey.Produce, apiVersion: 3, correlationId: 6 },
        produceV3Body({ acks: -1, timeoutMs: 10_000, topics: [{ name: SIZE_TOPIC, partitions: [{ index: 0, records }] }] }),
      );
      expect(response.correlationId).toBe(6);
      expect(parseProduceV3(response.body).map((r) => r.errorCode)).toEqual([ErrorCode.NONE]);
    } finally {
      big.destroy();
    }
    await expectStillServing('an oversized frame');
  });

  it('a record batch with a wrong CRC is refused with CORRUPT_MESSAGE and nothing is stored', async () => {
    const records = [0, 1, 2].map((i) => ({
      key: Buffer.from(`key-${i}`),
      value: Buffer.from(`payload number ${i} that must arrive intact`),
      headers: [['trace', Buffer.from(`t${i}`)]] as Array<[string, Buffer]>,
    }));
    const valid = encodeRecordBatch(records);
    const corrupt = Buffer.from(valid);
    const flipAt = corrupt.lastIndexOf(Buffer.from('payload number 2'));
    corrupt[flipAt] = corrupt[flipAt]! ^ 0x20; // 'p' -> 'P': the CRC no longer matches

    const conn = await RawConnection.open(broker.kafkaPort);
    try {
      const produce = async (batch: Buffer, correlationId: number) => {
        const response = await conn.request(
          { apiKey: ApiKey.Produce, apiVersion: 3, correlationId },
          produceV3Body({ acks: -1, timeoutMs: 10_000, topics: [{ name: CRC_TOPIC, partitions: [{ index: 0, records: batch }] }] }),
        );
        expect(response.correlationId).toBe(correlationId);
        return parseProduceV3(response.body);
      };
      const refused = await produce(corrupt, 21);
      expect(refused.map((r) => [r.topic, r.partition, r.errorCode])).toEqual([[CRC_TOPIC, 0, ErrorCode.CORRUPT_MESSAGE]]);

      // The same batch with its bytes intact is accepted at offset 0: the corrupt one took no offset.
      const accepted = await produce(valid, 22);
      expect(accepted.map((r) => [r.errorCode, r.baseOffset])).toEqual([[ErrorCode.NONE, 0n]]);
    } finally {
      conn.destroy();
    }

    // A consumer finds only the intact batch, stored as it was sent.
    const { batches, highWatermark } = await fetchAllBatches(broker.kafkaPort, CRC_TOPIC, 0);
    expect(highWatermark).toBe(3n);
    expect(batches).toHaveLength(1);
    const stored = batches[0]!;
    expect(batchBaseOffset(stored)).toBe(0n);
    expect(batchRecordCount(stored)).toBe(3);
    expect(stored.length).toBe(valid.length);
    // From the magic byte on (CRC, attributes, records) the stored batch is byte-for-byte the
    // one sent; only base offset and partition leader epoch are the broker's to set.
    expect(stored.subarray(16).equals(valid.subarray(16)), 'stored batch bytes equal the sent ones').toBe(true);

    await expectStillServing('a corrupt batch');
  });

  it('ApiVersions with an unsupported version gets UNSUPPORTED_VERSION and the supported list, on an open connection', async () => {
    const conn = await RawConnection.open(broker.kafkaPort);
    try {
      // v99 from a "newer client": flexible header v2 and a v3-shaped body.
      const future = await conn.request(
        { apiKey: ApiKey.ApiVersions, apiVersion: 99, correlationId: 31, headerVersion: 2 },
        apiVersionsBody(3),
      );
      expect(future.correlationId).toBe(31);
      // Kafka answers in the v0 format so that any client can read it.
      const answer = parseApiVersionsV0(future.body);
      expect(answer.errorCode).toBe(ErrorCode.UNSUPPORTED_VERSION);
      const apiVersions = answer.apis.find((a) => a.apiKey === ApiKey.ApiVersions);
      expect(apiVersions, 'ApiVersions is in the supported list').toBeDefined();
      expect(apiVersions!.minVersion).toBe(0);
      expect(apiVersions!.maxVersion).toBeGreaterThanOrEqual(3);
      expect(answer.apis.map((a) => a.apiKey)).toEqual(expect.arrayContaining([ApiKey.Produce, ApiKey.Fetch]));

      // The connection stays open: the client retries with a version it can use.
      const retry = await conn.request({ apiKey: ApiKey.ApiVersions, apiVersion: 0, correlationId: 32 });
      expect(retry.correlationId).toBe(32);
      const retried = parseApiVersionsV0(retry.body);
      expect(retried.errorCode).toBe(ErrorCode.NONE);
      expect(retried.apis.length).toBeGreaterThan(0);
    } finally {
      conn.destroy();
    }
    await expectStillServing('an unsupported ApiVersions version');
  });
});
