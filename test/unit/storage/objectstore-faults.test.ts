// Retries hide transient object-store failures; fault injection proves it.

import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { register } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultyObjectStore, InjectedFaultError, seededRandom } from '../../../src/storage/objectstore/faulty.ts';
import { InstrumentedObjectStore } from '../../../src/storage/objectstore/instrumented.ts';
import { LocalObjectStore } from '../../../src/storage/objectstore/local.ts';
import { MIN_UPLOAD_PART_BYTES, ObjectNotFoundError, ObjectUpload } from '../../../src/storage/objectstore/objectstore.ts';
import type { ObjectInfo, ObjectStore } from '../../../src/storage/objectstore/objectstore.ts';
import { abandonedPutAttempts, ObjectStoreTimeoutError, RetryingObjectStore } from '../../../src/storage/objectstore/retrying.ts';
import { S3ObjectStore } from '../../../src/storage/objectstore/s3.ts';
import { startS3rver } from '../../helpers/s3rver.ts';
import type { S3rverHandle } from '../../helpers/s3rver.ts';

const FAST_RETRIES = { maxAttempts: 12, baseDelayMs: 1, maxDelayMs: 20, timeoutMs: 300, timeoutMsPerMiB: 100 } as const;

/** 30% of calls fail: 20% internal errors, 5% SlowDown, 5% hangs that the retry timeout cuts. */
function thirtyPercentFaults(inner: ObjectStore, seed: number): FaultyObjectStore {
  return new FaultyObjectStore(inner, {
    errorRate: 0.2,
    slowDownRate: 0.05,
    timeoutRate: 0.05,
    hangMs: 5_000,
    latencyMs: { minMs: 0, maxMs: 3 },
    random: seededRandom(seed),
  });
}

async function mixedWorkload(store: ObjectStore, prefix: string): Promise<void> {
  const bodies = new Map<string, Buffer>();
  for (let i = 0; i < 40; i++) bodies.set(`${prefix}/obj-${String(i).padStart(3, '0')}`, randomBytes(1000 + i * 997));
  await Promise.all([...bodies].map(([key, body]) => store.put(key, body)));
  await Promise.all(
    [...bodies].map(async ([key, body]) => {
      expect((await store.get(key)).equals(body)).toBe(true);
      expect((await store.get(key, { start: 100, endExclusive: 600 })).equals(body.subarray(100, 600))).toBe(true);
      expect(await store.head(key)).toEqual({ key, sizeBytes: body.length });
    }),
  );
  expect(await store.head(`${prefix}/absent`)).toBeUndefined();
  await expect(store.get(`${prefix}/absent`)).rejects.toBeInstanceOf(ObjectNotFoundError);
  const listed = await store.list(`${prefix}/`);
  expect(listed.map((o: ObjectInfo) => o.key)).toEqual([...bodies.keys()]);
  const doomed = [...bodies.keys()].filter((_, i) => i % 2 === 0);
  await store.delete(doomed);
  expect((await store.list(`${prefix}/`)).length).toBe(20);
  // An object written in three parts: each call of the upload retried on its own.
  const parts = [randomBytes(MIN_UPLOAD_PART_BYTES), randomBytes(MIN_UPLOAD_PART_BYTES), randomBytes(1234)];
  const upload = await ObjectUpload.start(store, `${prefix}-uploads/three-parts`, MIN_UPLOAD_PART_BYTES);
  for (const part of parts) await upload.write([part]);
  await upload.complete();
  expect((await store.get(`${prefix}-uploads/three-parts`)).equals(Buffer.concat(parts))).toBe(true);
}

describe('retrying over 30% injected faults', () => {
  let s3rver: S3rverHandle;
  let rootDir: string;
  beforeAll(async () => {
    s3rver = await startS3rver();
    rootDir = await mkdtemp(path.join(os.tmpdir(), 'wharf-objectstore-faults-'));
  });
  afterAll(async () => {
    await s3rver.stop();
    await rm(rootDir, { recursive: true, force: true });
  });

  it('every operation on the local store still succeeds', async () => {
    const faulty = thirtyPercentFaults(new LocalObjectStore(rootDir), 1);
    const store = new RetryingObjectStore(new InstrumentedObjectStore(faulty), FAST_RETRIES);
    await mixedWorkload(store, 'local');
    expect(faulty.injected.error).toBeGreaterThan(10);
    expect(faulty.injected.slowDown).toBeGreaterThan(0);
    expect(faulty.injected.timeout).toBeGreaterThan(0);
    await store.close();
  });

  it('every operation on S3 (s3rver) still succeeds', async () => {
    const s3 = new S3ObjectStore({ ...s3rver, forcePathStyle: true });
    const faulty = thirtyPercentFaults(s3, 2);
    const store = new RetryingObjectStore(new InstrumentedObjectStore(faulty), { ...FAST_RETRIES, timeoutMs: 600 });
    await mixedWorkload(store, 's3');
    expect(faulty.injected.error + faulty.injected.slowDown + faulty.injected.timeout).toBeGreaterThan(10);
    await store.close();
  });

  it('a retried complete whose first answer was lost finds the object on S3 (s3rver)', async () => {
    const s3 = new S3ObjectStore({ ...s3rver, forcePathStyle: true });
    // The complete runs on the server, then its answer is lost; the retry meets an upload that is gone.
    const faulty = new FaultyObjectStore(s3, { errorRate: 1, lostResponseFraction: 1, enabled: false });
    const retried: unknown[] = [];
    const store = new RetryingObjectStore(faulty, {
      ...FAST_RETRIES,
      maxAttempts: 3,
      onRetry: (_op, _attempt, err) => {
        retried.push(err);
        faulty.setEnabled(false);
      },
    });
    const parts = [randomBytes(MIN_UPLOAD_PART_BYTES), randomBytes(MIN_UPLOAD_PART_BYTES)];
    const upload = await ObjectUpload.start(store, 'lost-answer/object', MIN_UPLOAD_PART_BYTES);
    for (const part of parts) await upload.write([part]);
    faulty.setEnabled(true); // both parts are stored: the complete is the next call
    await upload.complete();
    expect(retried).toHaveLength(1);
    expect(retried[0]).toBeInstanceOf(InjectedFaultError);
    expect((await store.get('lost-answer/object')).equals(Buffer.concat(parts))).toBe(true);
    await store.close();
  });
});

describe('retrying object store', () => {
  let rootDir: string;
  beforeAll(async () => {
    rootDir = await mkdtemp(path.join(os.tmpdir(), 'wharf-objectstore-retry-'));
  });
  afterAll(() => rm(rootDir, { recursive: true, force: true }));

  it('counts a PUT attempt abandoned on its timeout, which may still read the body', async () => {
    const local = new LocalObjectStore(rootDir);
    let calls = 0;
    const slowFirst: ObjectStore = {
      put: async (k, b) => {
        if (calls++ === 0) await new Promise((resolve) => setTimeout(resolve, 300)); // outlives its timeout
        return local.put(k, b);
      },
      get: (k, r) => local.get(k, r),
      head: (k) => local.head(k),
      list: (p) => local.list(p),
      delete: (ks) => local.delete(ks),
      close: () => local.close(),
    };
    const store = new RetryingObjectStore(slowFirst, { ...FAST_RETRIES, timeoutMs: 100, timeoutMsPerMiB: 0 });
    const before = abandonedPutAttempts();
    await store.put('abandoned/a', Buffer.from('body'));
    expect(calls).toBe(2);
    expect(abandonedPutAttempts()).toBe(before + 1);
    await store.put('abandoned/b', Buffer.from('body')); // a PUT that did not time out counts nothing
    expect(abandonedPutAttempts()).toBe(before + 1);
    await new Promise((resolve) => setTimeout(resolve, 300)); // let the abandoned attempt finish
  });

  it('does not retry a missing object', async () => {
    const attempts: string[] = [];
    const local = new LocalObjectStore(rootDir);
    const counting: ObjectStore = {
      put: (k, b) => local.put(k, b),
      get: (k, r) => {
        attempts.push(k);
        return local.get(k, r);
      },
      head: (k) => local.head(k),
      list: (p) => local.list(p),
      delete: (ks) => local.delete(ks),
      close: () => local.close(),
    };
    const store = new RetryingObjectStore(counting, FAST_RETRIES);
    await expect(store.get('nope')).rejects.toBeInstanceOf(ObjectNotFoundError);
    expect(attempts).toEqual(['nope']);
  });

  it('gives up after maxAttempts with the last error', async () => {
    const faulty = new FaultyObjectStore(new LocalObjectStore(rootDir), { errorRate: 1 });
    const retries: number[] = [];
    const store = new RetryingObjectStore(faulty, {
      maxAttempts: 4,
      baseDelayMs: 1,
      onRetry: (_op, attempt) => retries.push(attempt),
    });
    await expect(store.head('x')).rejects.toBeInstanceOf(InjectedFaultError);
    expect(retries).toEqual([1, 2, 3]);
    expect(faulty.injected.error).toBe(4);
  });

  it('abandons an attempt that outlives its timeout and retries', async () => {
    const local = new LocalObjectStore(rootDir);
    await local.put('slow', Buffer.from('eventually'));
    const faulty = new FaultyObjectStore(local, { timeoutRate: 1, hangMs: 10_000, lostResponseFraction: 0 });
    const errors: unknown[] = [];
    const store = new RetryingObjectStore(faulty, {
      maxAttempts: 3,
      baseDelayMs: 1,
      timeoutMs: 50,
      onRetry: (_op, _attempt, err) => {
        errors.push(err);
        if (errors.length === 1) faulty.setEnabled(false); // the network heals
      },
    });
    const started = Date.now();
    expect((await store.get('slow')).toString()).toBe('eventually');
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(errors[0]).toBeInstanceOf(ObjectStoreTimeoutError);
  });

  it('passes everything through when faults are switched off', async () => {
    const faulty = new FaultyObjectStore(new LocalObjectStore(rootDir), { errorRate: 1, enabled: false });
    await faulty.put('clean', Buffer.from('ok'));
    expect((await faulty.get('clean')).toString()).toBe('ok');
    faulty.setEnabled(true);
    await expect(faulty.get('clean')).rejects.toMatchObject({ $metadata: { httpStatusCode: 500 } });
    faulty.configure({ errorRate: 0, slowDownRate: 1 });
    await expect(faulty.get('clean')).rejects.toMatchObject({ name: 'SlowDown', $metadata: { httpStatusCode: 503 } });
  });
});

describe('instrumented object store', () => {
  it('counts requests by result, bytes and latency in the default registry', async () => {
    const rootDir = await mkdtemp(path.join(os.tmpdir(), 'wharf-objectstore-metrics-'));
    try {
      const store = new InstrumentedObjectStore(new LocalObjectStore(rootDir));
      new InstrumentedObjectStore(new LocalObjectStore(rootDir)); // a second instance must not re-register
      const before = await register.getSingleMetricAsString('wharf_object_store_requests_total');
      const body = Buffer.alloc(4096, 7);
      await store.put('m/one', body);
      await store.get('m/one', { start: 0, endExclusive: 1000 });
      await expect(store.get('m/none')).rejects.toBeInstanceOf(ObjectNotFoundError);
      const text = await register.metrics();
      expect(before).toContain('wharf_object_store_requests_total');
      expect(text).toMatch(/wharf_object_store_requests_total\{op="put",result="ok"\} \d+/);
      expect(text).toMatch(/wharf_object_store_requests_total\{op="get",result="not_found"\} \d+/);
      expect(text).toMatch(/wharf_object_store_request_duration_seconds_count\{op="get"\} \d+/);
      const bytesPut = /wharf_object_store_bytes_total\{op="put"\} (\d+)/.exec(text);
      expect(Number(bytesPut?.[1])).toBeGreaterThanOrEqual(4096);
      const digest = createHash('sha256').update(await store.get('m/one')).digest('hex');
      expect(digest).toBe(createHash('sha256').update(body).digest('hex'));
    } finally {
      await rm(rootDir, { recursive: true, force: true });
    }
  });
});
