import { appendFile, mkdtemp, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedMetadataStore } from '../../../src/metadata/embedded.ts';
import { logFileName } from '../../../src/metadata/embedded-format.ts';
import {
  decodeJson,
  encodeJson,
  InvalidTxnError,
  LeaseNotFoundError,
  WatchCompactedError,
} from '../../../src/metadata/store.ts';
import type { KeyValue, WatchEvent } from '../../../src/metadata/store.ts';

let dir: string;
const open: EmbeddedMetadataStore[] = [];

async function openStore(options: Parameters<typeof EmbeddedMetadataStore.open>[1] = {}): Promise<EmbeddedMetadataStore> {
  const store = await EmbeddedMetadataStore.open(dir, options);
  open.push(store);
  return store;
}

function text(kv: KeyValue | undefined): string | undefined {
  return kv?.value.toString('utf8');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(5);
  }
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wharf-meta-'));
});

afterEach(async () => {
  for (const store of open.splice(0)) await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('revisions and versions', () => {
  it('every change bumps the revision once; keys track create, mod and version', async () => {
    const store = await openStore();
    expect(await store.revision()).toBe(0);
    expect((await store.put('/a', 'one')).revision).toBe(1);
    expect((await store.put('/b', 'bee')).revision).toBe(2);
    expect((await store.put('/a', 'two')).revision).toBe(3);
    const a = await store.get('/a');
    expect(a).toMatchObject({ key: '/a', createRevision: 1, modRevision: 3, version: 2, lease: undefined });
    expect(text(a)).toBe('two');
    expect(await store.get('/missing')).toBeUndefined();
  });

  it('a deleted key comes back at version 1 with a new create revision', async () => {
    const store = await openStore();
    await store.put('/k', 'x');
    await store.put('/k', 'y');
    expect(await store.delete('/k')).toEqual({ deleted: 1, revision: 3 });
    expect(await store.delete('/k')).toEqual({ deleted: 0, revision: 3 });
    await store.put('/k', 'z');
    expect(await store.get('/k')).toMatchObject({ createRevision: 4, modRevision: 4, version: 1 });
  });

  it('a transaction writing several keys takes one revision', async () => {
    const store = await openStore();
    const result = await store.txn({
      compare: [],
      success: [
        { type: 'put', key: '/x', value: '1' },
        { type: 'put', key: '/y', value: '2' },
      ],
    });
    expect(result.revision).toBe(1);
    expect((await store.get('/x'))?.modRevision).toBe(1);
    expect((await store.get('/y'))?.modRevision).toBe(1);
  });
});

describe('range', () => {
  it('returns keys under a prefix in byte order, with limits, bounds and descending order', async () => {
    const store = await openStore();
    for (const key of ['/t/c', '/t/a', '/u/a', '/t/b', '/t', '/t/é', '/t/😀', '/t/\uffff']) await store.put(key, key);
    const all = await store.range('/t/');
    expect(all.kvs.map((kv) => kv.key)).toEqual(['/t/a', '/t/b', '/t/c', '/t/é', '/t/\uffff', '/t/😀']);
    expect(all.revision).toBe(8);
    expect(all.more).toBe(false);
    const limited = await store.range('/t/', { limit: 2 });
    expect(limited.kvs.map((kv) => kv.key)).toEqual(['/t/a', '/t/b']);
    expect(limited.more).toBe(true);
    const bounded = await store.range('/t/', { startKey: '/t/b', endKey: '/t/d' });
    expect(bounded.kvs.map((kv) => kv.key)).toEqual(['/t/b', '/t/c']);
    const last = await store.range('/t/', { endKey: '/t/c\u0000', order: 'descend', limit: 1 });
    expect(last.kvs.map((kv) => kv.key)).toEqual(['/t/c']);
  });

  it('deletes every key under a prefix', async () => {
    const store = await openStore();
    await store.put('/p/1', 'a');
    await store.put('/p/2', 'b');
    await store.put('/q/1', 'c');
    expect((await store.delete('/p/', { prefix: true })).deleted).toBe(2);
    expect((await store.range('/')).kvs.map((kv) => kv.key)).toEqual(['/q/1']);
  });
});

describe('transactions', () => {
  it('compare-and-swap on version, modRevision, createRevision and value', async () => {
    const store = await openStore();
    const create = await store.txn({
      compare: [{ key: '/lock', target: 'version', op: '=', value: 0 }],
      success: [{ type: 'put', key: '/lock', value: 'me' }],
      failure: [{ type: 'get', key: '/lock' }],
    });
    expect(create.succeeded).toBe(true);
    const again = await store.txn({
      compare: [{ key: '/lock', target: 'version', op: '=', value: 0 }],
      success: [{ type: 'put', key: '/lock', value: 'you' }],
      failure: [{ type: 'get', key: '/lock' }],
    });
    expect(again.succeeded).toBe(false);
    expect(again.revision).toBe(1);
    const response = again.responses[0];
    expect(response?.type === 'get' ? text(response.kv) : undefined).toBe('me');

    const byValue = await store.txn({
      compare: [
        { key: '/lock', target: 'value', op: '=', value: 'me' },
        { key: '/lock', target: 'modRevision', op: '<', value: 2 },
        { key: '/lock', target: 'createRevision', op: '=', value: 1 },
      ],
      success: [{ type: 'put', key: '/lock', value: 'me2' }],
    });
    expect(byValue.succeeded).toBe(true);
    expect(text(await store.get('/lock'))).toBe('me2');
  });

  it('a value comparison on a missing key fails, even with !=', async () => {
    const store = await openStore();
    const result = await store.txn({
      compare: [{ key: '/none', target: 'value', op: '!=', value: 'x' }],
      success: [{ type: 'put', key: '/none', value: 'x' }],
    });
    expect(result.succeeded).toBe(false);
  });

  it('reads inside a transaction see its earlier writes', async () => {
    const store = await openStore();
    const result = await store.txn({
      compare: [],
      success: [
        { type: 'put', key: '/r/1', value: encodeJson({ n: 1 }) },
        { type: 'range', prefix: '/r/' },
      ],
    });
    const range = result.responses[1];
    expect(range?.type === 'range' ? range.kvs.map((kv) => decodeJson<{ n: number }>(kv.value).n) : []).toEqual([1]);
  });

  it('rejects a key put twice, or put and deleted, in one branch; nothing is applied', async () => {
    const store = await openStore();
    await expect(
      store.txn({
        compare: [],
        success: [
          { type: 'put', key: '/d', value: '1' },
          { type: 'put', key: '/d', value: '2' },
        ],
      }),
    ).rejects.toBeInstanceOf(InvalidTxnError);
    await expect(
      store.txn({
        compare: [],
        success: [
          { type: 'delete', key: '/d', prefix: true },
          { type: 'put', key: '/d/x', value: '2' },
        ],
      }),
    ).rejects.toBeInstanceOf(InvalidTxnError);
    expect(await store.revision()).toBe(0);
  });

  it('enforces the op-count bound', async () => {
    const store = await openStore({ maxTxnOps: 4 });
    const success = Array.from({ length: 5 }, (_, i) => ({ type: 'put' as const, key: `/k${i}`, value: 'v' }));
    await expect(store.txn({ compare: [], success })).rejects.toBeInstanceOf(InvalidTxnError);
  });
});

describe('leases', () => {
  it('an expired lease deletes its keys; keepAlive keeps them', async () => {
    const store = await openStore();
    const short = await store.grantLease(200);
    const kept = await store.grantLease(200);
    await store.put('/brokers/1', 'short', { lease: short });
    await store.put('/brokers/2', 'kept', { lease: kept });
    expect((await store.get('/brokers/1'))?.lease).toBe(short);
    const deadline = Date.now() + 500;
    while (Date.now() < deadline) {
      await store.keepAlive(kept);
      await sleep(20);
    }
    expect(await store.get('/brokers/1')).toBeUndefined();
    expect(text(await store.get('/brokers/2'))).toBe('kept');
    await expect(store.keepAlive(short)).rejects.toBeInstanceOf(LeaseNotFoundError);
  });

  it('revoking a lease deletes its keys at once; a put without the lease detaches the key', async () => {
    const store = await openStore();
    const lease = await store.grantLease(60_000);
    await store.put('/a', '1', { lease });
    await store.put('/b', '1', { lease });
    await store.put('/b', '2');
    await store.revokeLease(lease);
    expect(await store.get('/a')).toBeUndefined();
    expect(text(await store.get('/b'))).toBe('2');
    await expect(store.put('/c', 'x', { lease })).rejects.toBeInstanceOf(LeaseNotFoundError);
    await expect(store.revokeLease(lease)).rejects.toBeInstanceOf(LeaseNotFoundError);
  });

  it('leases survive a restart with a fresh TTL, then expire', async () => {
    const first = await openStore();
    const lease = await first.grantLease(150);
    await first.put('/owned', 'x', { lease });
    await first.close();
    await sleep(200); // longer than the TTL while down
    const second = await openStore();
    expect(text(await second.get('/owned'))).toBe('x');
    expect(await second.keepAlive(lease)).toBe(150);
    await sleep(300);
    expect(await second.get('/owned')).toBeUndefined();
    const next = await second.grantLease(1000);
    expect(next).not.toBe(lease);
  });
});

describe('watches', () => {
  it('delivers events under the prefix in revision order, one batch per revision', async () => {
    const store = await openStore();
    const batches: WatchEvent[][] = [];
    const cancel = store.watch('/w/', undefined, (events) => batches.push(events));
    await store.put('/w/a', '1');
    await store.put('/other', 'x');
    await store.txn({
      compare: [],
      success: [
        { type: 'put', key: '/w/b', value: '2' },
        { type: 'delete', key: '/w/a' },
      ],
    });
    await until(() => batches.length === 2);
    expect(batches.map((b) => b.map((e) => [e.type, e.key, e.modRevision]))).toEqual([
      [['put', '/w/a', 1]],
      [
        ['put', '/w/b', 3],
        ['delete', '/w/a', 3],
      ],
    ]);
    cancel();
    await store.put('/w/c', '3');
    await sleep(20);
    expect(batches.length).toBe(2);
  });

  it('replays events from a past revision, then continues live, without gaps or repeats', async () => {
    const store = await openStore();
    for (let i = 1; i <= 5; i++) await store.put(`/h/${i}`, String(i));
    const seen: number[] = [];
    store.watch('/h/', 3, (events) => seen.push(...events.map((e) => e.modRevision)));
    const writes = [store.put('/h/6', '6'), store.put('/h/7', '7')];
    await Promise.all(writes);
    await until(() => seen.length === 5);
    expect(seen).toEqual([3, 4, 5, 6, 7]);
  });

  it('a watch from a revision older than the kept history fails with WatchCompactedError', async () => {
    const store = await openStore({ watchHistoryEvents: 3 });
    for (let i = 1; i <= 10; i++) await store.put(`/c/${i}`, 'x');
    const error = await new Promise<Error>((resolve) => store.watch('/c/', 2, () => undefined, resolve));
    expect(error).toBeInstanceOf(WatchCompactedError);
    expect((error as WatchCompactedError).compactRevision).toBe(7);
    const seen: number[] = [];
    store.watch('/c/', 8, (events) => seen.push(...events.map((e) => e.modRevision)));
    await until(() => seen.length === 3);
    expect(seen).toEqual([8, 9, 10]);
  });

  it('lease expiry is seen by watchers as deletes', async () => {
    const store = await openStore();
    const events: WatchEvent[] = [];
    store.watch('/live/', undefined, (batch) => events.push(...batch));
    const lease = await store.grantLease(30);
    await store.put('/live/1', 'x', { lease });
    await until(() => events.length === 2);
    expect(events.map((e) => [e.type, e.key])).toEqual([
      ['put', '/live/1'],
      ['delete', '/live/1'],
    ]);
  });
});

describe('durability', () => {
  it('reopening after close gives the same state and revision', async () => {
    const first = await openStore();
    await first.put('/a', '1');
    await first.put('/a', '2');
    await first.put('/b', Buffer.from([0, 1, 2, 255]));
    await first.delete('/b');
    await first.put('/c', 'c');
    await first.close();
    const second = await openStore();
    expect(await second.revision()).toBe(5);
    expect(await second.get('/a')).toMatchObject({ createRevision: 1, modRevision: 2, version: 2 });
    expect(await second.get('/b')).toBeUndefined();
    expect(text(await second.get('/c'))).toBe('c');
    expect((await second.put('/d', 'd')).revision).toBe(6);
  });

  it('a store that never closed (crash) is recovered by a second instance', async () => {
    const crashed = await openStore();
    for (let i = 0; i < 20; i++) await crashed.put(`/k/${i}`, String(i));
    await crashed.put('/k/0', 'changed');
    const second = await EmbeddedMetadataStore.open(dir);
    open.push(second);
    expect(await second.revision()).toBe(21);
    expect((await second.range('/k/')).kvs.length).toBe(20);
    expect(text(await second.get('/k/0'))).toBe('changed');
  });

  it('a torn tail (log cut mid-record) is truncated; recovery keeps the last good record', async () => {
    const first = await openStore();
    await first.put('/a', '1');
    await first.put('/b', '2');
    await first.put('/c', 'a value long enough to cut in the middle');
    await first.close();
    const logPath = join(dir, logFileName(0));
    const size = (await stat(logPath)).size;
    await truncate(logPath, size - 10);
    const second = await openStore();
    expect(await second.revision()).toBe(2);
    expect(text(await second.get('/b'))).toBe('2');
    expect(await second.get('/c')).toBeUndefined();
    await second.put('/d', 'after');
    await second.close();
    const third = await openStore();
    expect(await third.revision()).toBe(3);
    expect(text(await third.get('/d'))).toBe('after');
  });

  it('a record with a bad CRC ends recovery there', async () => {
    const first = await openStore();
    await first.put('/a', '1');
    await first.close();
    const logPath = join(dir, logFileName(0));
    const garbage = Buffer.alloc(20);
    garbage.writeUInt32LE(12, 0);
    garbage.writeUInt32LE(0xdeadbeef, 4);
    await appendFile(logPath, garbage);
    const sizeBefore = (await stat(logPath)).size;
    const second = await openStore();
    expect(await second.revision()).toBe(1);
    expect((await stat(logPath)).size).toBe(sizeBefore - 20);
  });

  it('snapshots when the log grows, starts a new log, and replays snapshot + log', async () => {
    const first = await openStore({ snapshotLogBytes: 2048 });
    const lease = await first.grantLease(60_000);
    await first.put('/leased', 'x', { lease });
    for (let i = 0; i < 100; i++) await first.put(`/s/${i % 10}`, `value ${i}`);
    expect(first.stats().snapshots).toBeGreaterThan(0);
    const logs = (await readdir(dir)).filter((name) => name.startsWith('log-'));
    expect(logs.length).toBe(1);
    expect(logs[0]).not.toBe(logFileName(0));
    await first.close();
    const second = await openStore({ snapshotLogBytes: 2048 });
    expect(await second.revision()).toBe(101);
    expect(await second.get('/s/3')).toMatchObject({ version: 10, createRevision: 5 });
    expect(text(await second.get('/s/9'))).toBe('value 99');
    expect((await second.get('/leased'))?.lease).toBe(lease);
    await second.revokeLease(lease);
    expect(await second.get('/leased')).toBeUndefined();
  });

  it('snapshots taken while writes are queued lose none of them', async () => {
    // Small groups, so that a snapshot starts while records still wait for the disk.
    const first = await openStore({ snapshotLogBytes: 1024, maxGroupBytes: 300 });
    for (let round = 0; round < 5; round++) {
      await Promise.all(Array.from({ length: 50 }, (_, i) => first.put(`/q/${round}/${i}`, 'v'.repeat(40))));
    }
    expect(first.stats().snapshots).toBeGreaterThan(1);
    await first.close();
    await writeFile(join(dir, 'snapshot.tmp'), 'a half-written snapshot from a crash');
    const second = await openStore({ snapshotLogBytes: 1024 });
    expect(await second.revision()).toBe(250);
    expect((await second.range('/q/')).kvs.length).toBe(250);
    expect((await readdir(dir)).includes('snapshot.tmp')).toBe(false);
  });

  it('concurrent transactions are group-committed and serialized', async () => {
    const store = await openStore();
    await store.put('/counter', '0');
    const syncsBefore = store.stats().logSyncs;
    // 100 concurrent increments by CAS on the value: each txn sees the previous one's write.
    const increments = Array.from({ length: 100 }, async () => {
      for (;;) {
        const kv = await store.get('/counter');
        const n = Number(text(kv));
        const result = await store.txn({
          compare: [{ key: '/counter', target: 'modRevision', op: '=', value: kv?.modRevision ?? 0 }],
          success: [{ type: 'put', key: '/counter', value: String(n + 1) }],
        });
        if (result.succeeded) return;
      }
    });
    await Promise.all(increments);
    expect(text(await store.get('/counter'))).toBe('100');
    const puts = await Promise.all(Array.from({ length: 200 }, (_, i) => store.put(`/g/${i}`, 'x')));
    expect(new Set(puts.map((p) => p.revision)).size).toBe(200);
    const syncs = store.stats().logSyncs - syncsBefore;
    expect(syncs).toBeLessThan(150);
    await store.close();
    const reopened = await openStore();
    expect(text(await reopened.get('/counter'))).toBe('100');
    expect((await reopened.range('/g/')).kvs.length).toBe(200);
  });

  it('200 concurrent puts share a handful of fsyncs', async () => {
    const store = await openStore();
    const before = store.stats().logSyncs;
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.put(`/p/${i}`, 'x')));
    expect(store.stats().logSyncs - before).toBeLessThanOrEqual(3);
  });
});
