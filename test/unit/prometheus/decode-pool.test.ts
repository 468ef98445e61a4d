// The remote-write decode pool on its own, with real worker threads: what a bad request gets back
// (the same InvalidWriteError the JS thread throws), a record too large for the topic's batches
// (ProduceError, MESSAGE_TOO_LARGE), and a worker that dies: its requests in flight fail (the
// receiver answers 503, senders retry) and the next request starts a new worker.

import { afterEach, describe, expect, it } from 'vitest';
import { ProduceError, type TopicLayout } from '../../../src/broker/in-process-producer.ts';
import { ErrorCode } from '../../../src/protocol/errors.ts';
import { DecodePool } from '../../../connectors/prometheus/decode-pool.ts';
import { InvalidWriteError, ProtocolVersion, RejectReason } from '../../../connectors/prometheus/decoded-write.ts';
import { encodeWriteRequest, labels, snappy } from '../../helpers/prometheus.ts';

const LAYOUT: TopicLayout = { partitions: 2, maxBatchBytes: 1024 * 1024, unkeyedPartition: 0 };
const T0 = 1_700_000_000_000;

function request(seriesCount: number, valueLabelBytes = 8): Buffer {
  return snappy(encodeWriteRequest({
    timeseries: Array.from({ length: seriesCount }, (_, i) => ({
      labels: labels({ __name__: 'pool_test', i: String(i), pad: 'x'.repeat(valueLabelBytes) }),
      samples: [{ value: i, timestamp: T0 }],
    })),
  }));
}

const pools: DecodePool[] = [];
afterEach(async () => {
  for (const pool of pools.splice(0)) await pool.close();
});

function newPool(threads = 1): DecodePool {
  const pool = new DecodePool(threads);
  pools.push(pool);
  return pool;
}

describe('the decode pool', () => {
  it('encodes every series of a request into batches for the layout, and counts its samples', async () => {
    const encoded = await newPool().decode({}, 't', ProtocolVersion.V1, request(50), LAYOUT);
    expect(encoded.samples).toBe(50);
    expect(encoded.batches.reduce((sum, b) => sum + b.recordCount, 0)).toBe(50);
    expect(new Set(encoded.batches.map((b) => b.partition))).toEqual(new Set([0, 1]));
    for (const b of encoded.batches) expect(Buffer.isBuffer(b.batch) && b.batch.length > 61).toBe(true);
  });

  it('rejects a bad body with the InvalidWriteError the JS thread would throw', async () => {
    const pool = newPool();
    const notSnappy = pool.decode({}, 't', ProtocolVersion.V1, Buffer.from([0x05, 0xff, 0xff, 0xff]), LAYOUT);
    await expect(notSnappy).rejects.toBeInstanceOf(InvalidWriteError);
    await expect(notSnappy).rejects.toMatchObject({ status: 400, reason: RejectReason.BAD_SNAPPY });
    const badProtobuf = pool.decode({}, 't', ProtocolVersion.V1, snappy(Buffer.from([0x0a, 0x7f, 0x01])), LAYOUT);
    await expect(badProtobuf).rejects.toMatchObject({ status: 400, reason: RejectReason.BAD_PROTOBUF, message: /invalid prometheus\.WriteRequest/ });
  });

  it('rejects a series too large for the topic\'s batches with MESSAGE_TOO_LARGE', async () => {
    const small: TopicLayout = { ...LAYOUT, maxBatchBytes: 512 };
    const tooLarge = newPool().decode({}, 'small_topic', ProtocolVersion.V1, request(1, 2000), small);
    await expect(tooLarge).rejects.toBeInstanceOf(ProduceError);
    await expect(tooLarge).rejects.toMatchObject({ errorCode: ErrorCode.MESSAGE_TOO_LARGE, message: /small_topic.*max\.message\.bytes/ });
  });

  it('fails the requests of a worker that exits, and starts a new one for the next request', async () => {
    const pool = newPool();
    await pool.decode({}, 't', ProtocolVersion.V1, request(5), LAYOUT); // the worker is up
    const inFlight = pool.decode({}, 't', ProtocolVersion.V1, request(20_000), LAYOUT);
    await pool.close(); // the worker is terminated under the request
    await expect(inFlight).rejects.toThrow(/decode worker exited/);
    const after = await pool.decode({}, 't', ProtocolVersion.V1, request(5), LAYOUT);
    expect(after.samples).toBe(5);
  });
});
