import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../src/protocol/errors.ts';
import {
  isLogAppendTime,
  readBaseOffset,
  readMaxTimestamp,
  readPartitionLeaderEpoch,
  validateBatch,
} from '../../../src/protocol/records.ts';
import { PartitionLog, type ProducerStateSnapshot, type ProducerStateStore } from '../../../src/log/partition-log.ts';
import { LogManager } from '../../../src/log/log-manager.ts';
import { buildBatch, idempotentBatch } from './batch-builder.ts';
import { MemoryStream } from './memory-stream.ts';

const NOW = 1_700_000_000_000;
const CREATE_TIME = { logAppendTime: false, nowMs: NOW };

class MemoryProducerStateStore implements ProducerStateStore {
  readonly snapshots = new Map<string, string>();
  saves = 0;
  async load(topic: string, partition: number): Promise<ProducerStateSnapshot | undefined> {
    const json = this.snapshots.get(`${topic}/${partition}`);
    return json === undefined ? undefined : (JSON.parse(json) as ProducerStateSnapshot);
  }
  async save(topic: string, partition: number, snapshot: ProducerStateSnapshot): Promise<void> {
    this.saves++;
    this.snapshots.set(`${topic}/${partition}`, JSON.stringify(snapshot));
  }
}

function newLog(stream = new MemoryStream(), options: Partial<ConstructorParameters<typeof PartitionLog>[1]> = {}): PartitionLog {
  return new PartitionLog(stream, { topic: 't', partition: 0, ...options });
}

describe('offset assignment', () => {
  it('gives consecutive appends consecutive offsets, one stream append per batch', async () => {
    const stream = new MemoryStream();
    const log = newLog(stream);
    const first = await log.append(await buildBatch({ values: ['a', 'b', 'c'] }), CREATE_TIME);
    expect(first).toEqual({ errorCode: 0, baseOffset: 0, logAppendTimeMs: -1, logStartOffset: 0 });
    const two = Buffer.concat([await buildBatch({ values: ['d'] }), await buildBatch({ values: ['e', 'f'] })]);
    const second = await log.append(two, CREATE_TIME);
    expect(second.baseOffset).toBe(3);
    expect(stream.appendCalls).toBe(3);
    expect(stream.storedBatches.map((b) => readBaseOffset(b, 0))).toEqual([0, 3, 4]);
    expect(stream.storedBatches.every((b) => validateBatch(b, 0) === 0)).toBe(true);
    expect(log.highWatermark()).toBe(6);
    expect(log.logEndOffset()).toBe(6);
  });

  it('keeps offsets ordered for appends issued before the first is durable', async () => {
    const stream = new MemoryStream();
    const log = newLog(stream);
    stream.hold();
    const pending = [log.append(await buildBatch({ values: ['a', 'b'] }), CREATE_TIME), log.append(await buildBatch(), CREATE_TIME)];
    expect(log.logEndOffset()).toBe(3);
    expect(log.highWatermark()).toBe(0);
    stream.release();
    expect((await Promise.all(pending)).map((r) => r.baseOffset)).toEqual([0, 2]);
  });

  it('stamps the leader epoch into stored batches', async () => {
    const stream = new MemoryStream();
    const log = newLog(stream, { leaderEpoch: 12 });
    await log.append(await buildBatch(), CREATE_TIME);
    expect(readPartitionLeaderEpoch(stream.storedBatches[0]!, 0)).toBe(12);
  });
});

describe('validation before anything is stored', () => {
  it('a bad CRC in any batch refuses the whole request and stores nothing', async () => {
    const stream = new MemoryStream();
    const log = newLog(stream);
    const bad = await buildBatch({ values: ['x'] });
    bad[bad.length - 1]! ^= 0xff;
    const result = await log.append(Buffer.concat([await buildBatch(), bad]), CREATE_TIME);
    expect(result).toEqual({ errorCode: ErrorCode.CORRUPT_MESSAGE, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1 });
    expect(stream.appendCalls).toBe(0);
    expect(log.logEndOffset()).toBe(0);
  });

  it('refuses truncated, empty, oversized and non-zero-base-offset records', async () => {
    const log = newLog(new MemoryStream(), { maxMessageBytes: 200 });
    const batch = await buildBatch();
    expect((await log.append(batch.subarray(0, batch.length - 2), CREATE_TIME)).errorCode).toBe(ErrorCode.CORRUPT_MESSAGE);
    expect((await log.append(Buffer.alloc(0), CREATE_TIME)).errorCode).toBe(ErrorCode.INVALID_RECORD);
    expect((await log.append(await buildBatch({ values: ['x'.repeat(300)] }), CREATE_TIME)).errorCode).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    const offsetSet = await buildBatch();
    offsetSet.writeInt32BE(9, 4);
    expect((await log.append(offsetSet, CREATE_TIME)).errorCode).toBe(ErrorCode.INVALID_RECORD);
    expect(log.logEndOffset()).toBe(0);
  });
});

describe('LogAppendTime', () => {
  it('stamps the broker time, recomputes the CRC and answers with the time', async () => {
    const stream = new MemoryStream();
    const log = newLog(stream);
    const result = await log.append(await buildBatch({ values: ['a', 'b'], timestampsMs: [5, 6] }), { logAppendTime: true, nowMs: NOW });
    expect(result).toMatchObject({ errorCode: 0, baseOffset: 0, logAppendTimeMs: NOW });
    const stored = stream.storedBatches[0]!;
    expect(isLogAppendTime(stored, 0)).toBe(true);
    expect(readMaxTimestamp(stored, 0)).toBe(NOW);
    expect(validateBatch(stored, 0)).toBe(ErrorCode.NONE);
  });
});

describe('idempotent producers', () => {
  it('a retried batch is answered with its original offset and stored once', async () => {
    const stream = new MemoryStream();
    const log = newLog(stream);
    await log.append(await buildBatch({ values: ['other'] }), CREATE_TIME);
    const first = await log.append(await idempotentBatch(1000, 0, 0, 3), CREATE_TIME);
    const second = await log.append(await idempotentBatch(1000, 0, 3, 2), CREATE_TIME);
    expect([first.baseOffset, second.baseOffset]).toEqual([1, 4]);
    const retry = await log.append(await idempotentBatch(1000, 0, 0, 3), CREATE_TIME);
    expect(retry).toEqual({ errorCode: 0, baseOffset: 1, logAppendTimeMs: -1, logStartOffset: 0 });
    expect(stream.appendCalls).toBe(3);
    expect(log.logEndOffset()).toBe(6);
  });

  it('remembers the last 5 batches, not more', async () => {
    const log = newLog();
    for (let seq = 0; seq < 6; seq++) await log.append(await idempotentBatch(7, 0, seq), CREATE_TIME);
    expect((await log.append(await idempotentBatch(7, 0, 1), CREATE_TIME)).baseOffset).toBe(1);
    expect((await log.append(await idempotentBatch(7, 0, 0), CREATE_TIME)).errorCode).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
  });

  it('a retry of a batch still in flight waits for it and gets its offset', async () => {
    const stream = new MemoryStream();
    const log = newLog(stream);
    stream.hold();
    const original = log.append(await idempotentBatch(5, 0, 0, 2), CREATE_TIME);
    let retryDone = false;
    const retry = log.append(await idempotentBatch(5, 0, 0, 2), CREATE_TIME).then((r) => ((retryDone = true), r));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(retryDone).toBe(false);
    stream.release();
    expect((await original).baseOffset).toBe(0);
    expect(await retry).toMatchObject({ errorCode: 0, baseOffset: 0 });
    expect(stream.appendCalls).toBe(1);
  });

  it('pipelined batches are checked against the ones in flight', async () => {
    const stream = new MemoryStream();
    const log = newLog(stream);
    stream.hold();
    const a = log.append(await idempotentBatch(5, 0, 0, 2), CREATE_TIME);
    const b = log.append(await idempotentBatch(5, 0, 2, 2), CREATE_TIME);
    const gap = log.append(await idempotentBatch(5, 0, 9), CREATE_TIME);
    expect((await gap).errorCode).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
    stream.release();
    expect((await Promise.all([a, b])).map((r) => r.baseOffset)).toEqual([0, 2]);
  });

  it('a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER (45)', async () => {
    const log = newLog();
    await log.append(await idempotentBatch(9, 0, 0), CREATE_TIME);
    const result = await log.append(await idempotentBatch(9, 0, 2), CREATE_TIME);
    expect(result.errorCode).toBe(45);
    expect(log.logEndOffset()).toBe(1);
  });

  it('an older epoch is INVALID_PRODUCER_EPOCH (47); a newer one must start at 0', async () => {
    const log = newLog();
    await log.append(await idempotentBatch(9, 3, 0), CREATE_TIME);
    expect((await log.append(await idempotentBatch(9, 2, 1), CREATE_TIME)).errorCode).toBe(47);
    expect((await log.append(await idempotentBatch(9, 4, 5), CREATE_TIME)).errorCode).toBe(45);
    expect((await log.append(await idempotentBatch(9, 4, 0), CREATE_TIME)).errorCode).toBe(0);
    expect((await log.append(await idempotentBatch(9, 3, 1), CREATE_TIME)).errorCode).toBe(47);
  });

  it('a producer without state is accepted at any sequence (Kafka 2.5+)', async () => {
    const log = newLog();
    expect(await log.append(await idempotentBatch(77, 0, 1234), CREATE_TIME)).toMatchObject({ errorCode: 0, baseOffset: 0 });
    expect((await log.append(await idempotentBatch(77, 0, 1235), CREATE_TIME)).errorCode).toBe(0);
  });

  it('sequences wrap from int32 max to 0', async () => {
    const log = newLog();
    await log.append(await idempotentBatch(3, 0, 0x7fffffff - 1, 2), CREATE_TIME);
    expect((await log.append(await idempotentBatch(3, 0, 0), CREATE_TIME)).errorCode).toBe(0);
  });

  it('a failed durable write rolls the producer state back, so the retry is stored', async () => {
    const stream = new MemoryStream();
    const log = newLog(stream);
    await log.append(await idempotentBatch(4, 0, 0), CREATE_TIME);
    stream.hold();
    const lost = log.append(await idempotentBatch(4, 0, 1), CREATE_TIME);
    const lostToo = log.append(await idempotentBatch(4, 0, 2), CREATE_TIME);
    stream.fail();
    expect((await lost).errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    expect((await lostToo).errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    const retry = await log.append(await idempotentBatch(4, 0, 1), CREATE_TIME);
    expect(retry).toMatchObject({ errorCode: 0, baseOffset: 1 });
    expect(stream.storedBatches).toHaveLength(2);
  });
});

describe('producer state across restarts', () => {
  it('is rebuilt from the stream when there is no snapshot', async () => {
    const stream = new MemoryStream();
    const log = newLog(stream);
    for (let seq = 0; seq < 3; seq++) await log.append(await idempotentBatch(11, 0, seq * 2, 2), CREATE_TIME);
    const reopened = await PartitionLog.open(stream.reopen(), { topic: 't', partition: 0, nowMs: NOW });
    expect(reopened.producerCount()).toBe(1);
    expect(await reopened.append(await idempotentBatch(11, 0, 4, 2), CREATE_TIME)).toMatchObject({ errorCode: 0, baseOffset: 4 });
    expect(reopened.logEndOffset()).toBe(6);
    expect((await reopened.append(await idempotentBatch(11, 0, 7), CREATE_TIME)).errorCode).toBe(45);
  });

  it('after a crash, loads the last snapshot and replays the tail: retries are not duplicated', async () => {
    const store = new MemoryProducerStateStore();
    const stream = new MemoryStream();
    const log = newLog(stream, { producerStateStore: store });
    await log.append(await idempotentBatch(21, 0, 0), CREATE_TIME);
    await log.append(await idempotentBatch(22, 0, 0), CREATE_TIME);
    await log.saveSnapshot();
    expect(JSON.parse(store.snapshots.get('t/0')!)).toMatchObject({ version: 1, offset: 2 });
    await log.append(await idempotentBatch(21, 0, 1), CREATE_TIME);
    await log.append(await idempotentBatch(21, 0, 2), CREATE_TIME);
    // kill -9: no close, no final snapshot; the new owner sees the durable stream.
    const reopened = await PartitionLog.open(stream.reopen(), { topic: 't', partition: 0, producerStateStore: store, nowMs: NOW });
    expect(await reopened.append(await idempotentBatch(21, 0, 2), CREATE_TIME)).toMatchObject({ errorCode: 0, baseOffset: 3 });
    expect(await reopened.append(await idempotentBatch(21, 0, 1), CREATE_TIME)).toMatchObject({ errorCode: 0, baseOffset: 2 });
    expect(await reopened.append(await idempotentBatch(22, 0, 0), CREATE_TIME)).toMatchObject({ errorCode: 0, baseOffset: 1 });
    expect(reopened.logEndOffset()).toBe(4);
    expect(await reopened.append(await idempotentBatch(21, 0, 3), CREATE_TIME)).toMatchObject({ errorCode: 0, baseOffset: 4 });
  });

  it('restores from the snapshot without rereading what it covers', async () => {
    const store = new MemoryProducerStateStore();
    const stream = new MemoryStream();
    const log = newLog(stream, { producerStateStore: store });
    await log.append(await idempotentBatch(31, 2, 0, 3), CREATE_TIME);
    await log.close();
    const snapshot = JSON.parse(store.snapshots.get('t/0')!) as ProducerStateSnapshot;
    expect(snapshot).toMatchObject({ offset: 3, producers: [{ producerId: 31, epoch: 2, batches: [{ firstSeq: 0, lastSeq: 2, baseOffset: 0 }] }] });
    // An empty stream positioned after the snapshot: the state can only come from the snapshot.
    const empty = new MemoryStream(1, 1, [], 3);
    const reopened = await PartitionLog.open(empty, { topic: 't', partition: 0, producerStateStore: store, nowMs: NOW });
    expect(await reopened.append(await idempotentBatch(31, 2, 0, 3), CREATE_TIME)).toMatchObject({ errorCode: 0, baseOffset: 0 });
    expect((await reopened.append(await idempotentBatch(31, 1, 3), CREATE_TIME)).errorCode).toBe(47);
  });

  it('snapshots on its own every snapshotIntervalBytes', async () => {
    const store = new MemoryProducerStateStore();
    const log = newLog(new MemoryStream(), { producerStateStore: store, snapshotIntervalBytes: 150 });
    await log.append(await idempotentBatch(51, 0, 0), CREATE_TIME);
    expect(store.saves).toBe(0);
    await log.append(await idempotentBatch(51, 0, 1), CREATE_TIME);
    await log.saveSnapshot(); // joins the save in flight, if any
    expect(store.saves).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(store.snapshots.get('t/0')!)).toMatchObject({ offset: 2, producers: [{ producerId: 51 }] });
  });

  it('forgets producers idle past producer.id.expiration.ms', async () => {
    const log = newLog(new MemoryStream(), { producerIdExpirationMs: 1000 });
    await log.append(await idempotentBatch(41, 0, 0), CREATE_TIME);
    expect(log.expireProducers(NOW + 500)).toBe(0);
    expect(log.expireProducers(NOW + 1001)).toBe(1);
    expect(log.producerCount()).toBe(0);
  });
});

describe('reads', () => {
  it('serves whole batches up to the high watermark, never beyond', async () => {
    const stream = new MemoryStream();
    const log = newLog(stream);
    await log.append(await buildBatch({ values: ['a', 'b'] }), CREATE_TIME);
    await log.append(await buildBatch({ values: ['c'] }), CREATE_TIME);
    stream.hold();
    const inFlight = log.append(await buildBatch({ values: ['d'] }), CREATE_TIME);
    const read = await log.read(1, 1 << 20);
    expect(read.errorCode).toBe(0);
    expect(read.batches.map((b) => readBaseOffset(b, 0))).toEqual([0, 2]);
    expect(read.highWatermark).toBe(3);
    expect((await log.read(3, 1 << 20)).batches).toEqual([]);
    expect((await log.read(4, 1 << 20)).errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    stream.release();
    await inFlight;
    expect((await log.read(3, 1 << 20)).batches).toHaveLength(1);
  });

  it('answers OFFSET_OUT_OF_RANGE below the log start', async () => {
    const log = newLog();
    for (let i = 0; i < 3; i++) await log.append(await buildBatch(), CREATE_TIME);
    await log.trim(2);
    expect(log.logStartOffset()).toBe(2);
    expect(await log.read(1, 100)).toMatchObject({ errorCode: ErrorCode.OFFSET_OUT_OF_RANGE, logStartOffset: 2, highWatermark: 3 });
  });
});

describe('long poll', () => {
  it('wakes a waiting fetch when an append becomes durable', async () => {
    const log = newLog();
    const waiting = log.waitForData(0, 10_000);
    await log.append(await buildBatch(), CREATE_TIME);
    expect(await waiting).toBe(true);
    expect(await log.waitForData(0, 10_000)).toBe(true); // already there
  });

  it('times out, honours abort, and bounds the number of waiters', async () => {
    const log = newLog(new MemoryStream(), { maxWaiters: 1 });
    const controller = new AbortController();
    const aborted = log.waitForData(0, 10_000, controller.signal);
    expect(await log.waitForData(0, 10_000)).toBe(false); // over the bound
    controller.abort();
    expect(await aborted).toBe(false);
    const started = Date.now();
    expect(await log.waitForData(0, 20)).toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(15);
  });

  it('close releases waiters and refuses appends', async () => {
    const log = newLog();
    const waiting = log.waitForData(0, 10_000);
    await log.close();
    expect(await waiting).toBe(false);
    expect((await log.append(await buildBatch(), CREATE_TIME)).errorCode).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
  });
});

describe('ListOffsets by timestamp', () => {
  async function logWithTimestamps(options: Parameters<typeof newLog>[1] = {}): Promise<{ log: PartitionLog; stream: MemoryStream }> {
    const stream = new MemoryStream();
    const log = newLog(stream, { timeIndexIntervalBytes: 1, timeIndexMaxEntries: 4, ...options });
    // offsets 0-1 @ 100,200; 2-4 @ 300,250,500; 5 @ 600; 6-7 @ 700,800
    await log.append(await buildBatch({ values: ['a', 'b'], timestampsMs: [100, 200] }), CREATE_TIME);
    await log.append(await buildBatch({ values: ['c', 'd', 'e'], timestampsMs: [300, 250, 500] }), CREATE_TIME);
    await log.append(await buildBatch({ values: ['f'], timestampsMs: [600] }), CREATE_TIME);
    await log.append(await buildBatch({ values: ['g', 'h'], timestampsMs: [700, 800], compression: 1 }), CREATE_TIME);
    return { log, stream };
  }

  it('answers earliest, latest and exact record offsets', async () => {
    const { log } = await logWithTimestamps();
    expect(await log.offsetForTimestamp(-2)).toEqual({ errorCode: 0, offset: 0, timestampMs: -1 });
    expect(await log.offsetForTimestamp(-1)).toEqual({ errorCode: 0, offset: 8, timestampMs: -1 });
    expect(await log.offsetForTimestamp(0)).toEqual({ errorCode: 0, offset: 0, timestampMs: 100 });
    expect(await log.offsetForTimestamp(150)).toEqual({ errorCode: 0, offset: 1, timestampMs: 200 });
    expect(await log.offsetForTimestamp(260)).toEqual({ errorCode: 0, offset: 2, timestampMs: 300 });
    expect(await log.offsetForTimestamp(301)).toEqual({ errorCode: 0, offset: 4, timestampMs: 500 });
    expect(await log.offsetForTimestamp(600)).toEqual({ errorCode: 0, offset: 5, timestampMs: 600 });
    expect(await log.offsetForTimestamp(750)).toEqual({ errorCode: 0, offset: 7, timestampMs: 800 });
    expect(await log.offsetForTimestamp(801)).toEqual({ errorCode: 0, offset: -1, timestampMs: -1 });
  });

  for (const keepIndex of [true, false]) {
    it(`gives the same answers after a reopen from a snapshot ${keepIndex ? 'with' : 'without'} its time index`, async () => {
      const store = new MemoryProducerStateStore();
      const { log, stream } = await logWithTimestamps({ producerStateStore: store });
      await log.saveSnapshot();
      const saved = JSON.parse(store.snapshots.get('t/0')!) as ProducerStateSnapshot;
      expect(saved.timeIndex?.nextOffset).toBe(8);
      if (!keepIndex) store.snapshots.set('t/0', JSON.stringify({ ...saved, timeIndex: undefined }));
      const reopened = await PartitionLog.open(stream.reopen(), {
        topic: 't', partition: 0, producerStateStore: store, nowMs: NOW, timeIndexIntervalBytes: 1,
      });
      await reopened.append(await buildBatch({ values: ['i'], timestampsMs: [900] }), CREATE_TIME);
      expect(await reopened.offsetForTimestamp(150)).toMatchObject({ offset: 1, timestampMs: 200 });
      expect(await reopened.offsetForTimestamp(301)).toMatchObject({ offset: 4, timestampMs: 500 });
      expect(await reopened.offsetForTimestamp(850)).toMatchObject({ offset: 8, timestampMs: 900 });
      expect(await reopened.offsetForTimestamp(901)).toMatchObject({ offset: -1, timestampMs: -1 });
    });
  }

  it('finds the right record after retention moved the log start', async () => {
    const { log } = await logWithTimestamps();
    await log.trim(5);
    expect(await log.offsetForTimestamp(0)).toMatchObject({ offset: 5, timestampMs: 600 });
    expect(await log.offsetForTimestamp(-2)).toMatchObject({ offset: 5 });
  });
});

describe('LogManager', () => {
  it('opens, finds and closes partition logs', async () => {
    const store = new MemoryProducerStateStore();
    const manager = new LogManager({ producerStateStore: store });
    const stream = new MemoryStream();
    const [a, again] = await Promise.all([manager.open('t', 0, stream), manager.open('t', 0, stream)]);
    expect(a).toBe(again);
    await manager.open('t', 1, new MemoryStream(2));
    expect(manager.get('t', 0)).toBe(a);
    expect(manager.size).toBe(2);
    await a.append(await idempotentBatch(1, 0, 0), CREATE_TIME);
    await manager.close('t', 0);
    expect(manager.get('t', 0)).toBeUndefined();
    expect(store.snapshots.has('t/0')).toBe(true);
    await manager.closeAll();
    expect(manager.size).toBe(0);
  });
});
