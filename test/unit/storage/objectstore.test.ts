// One contract, two implementations: the local directory store and S3 (on s3rver) must behave
// the same for everything the rest of Wharf relies on.

import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalObjectStore } from '../../../src/storage/objectstore/local.ts';
import { MIN_UPLOAD_PART_BYTES, ObjectNotFoundError, ObjectUpload, readParts } from '../../../src/storage/objectstore/objectstore.ts';
import { CountingStore } from '../../helpers/counting-store.ts';
import type { ObjectStore } from '../../../src/storage/objectstore/objectstore.ts';
import { S3ObjectStore } from '../../../src/storage/objectstore/s3.ts';
import { createObjectStore } from '../../../src/storage/objectstore/index.ts';
import { startS3rver } from '../../helpers/s3rver.ts';
import type { S3rverHandle } from '../../helpers/s3rver.ts';

interface Fixture {
  store: ObjectStore;
  cleanup(): Promise<void>;
}

async function runLimited<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: concurrency }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(workers);
}

function describeObjectStoreContract(name: string, setup: () => Promise<Fixture>): void {
  describe(`${name} object store contract`, () => {
    let fixture: Fixture;
    let store: ObjectStore;
    beforeAll(async () => {
      fixture = await setup();
      store = fixture.store;
    });
    afterAll(async () => {
      await store.close();
      await fixture.cleanup();
    });

    it('returns what was put, and the latest put of a key wins', async () => {
      await store.put('roundtrip/a', Buffer.from('first'));
      expect((await store.get('roundtrip/a')).toString()).toBe('first');
      await store.put('roundtrip/a', Buffer.from('second, longer'));
      expect((await store.get('roundtrip/a')).toString()).toBe('second, longer');
    });

    it('keeps binary bodies byte-exact, 9 MiB included, and serves ranges of them', async () => {
      const big = randomBytes(9 * 1024 * 1024 + 13);
      await store.put('binary/big', big);
      expect((await store.get('binary/big')).equals(big)).toBe(true);
      const start = 4 * 1024 * 1024 + 7;
      const range = await store.get('binary/big', { start, endExclusive: start + 1_500_000 });
      expect(range.equals(big.subarray(start, start + 1_500_000))).toBe(true);
      const tail = await store.get('binary/big', { start: big.length - 65_536, endExclusive: big.length });
      expect(tail.equals(big.subarray(big.length - 65_536))).toBe(true);
      const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await store.put('binary/all-bytes', allBytes);
      expect((await store.get('binary/all-bytes')).equals(allBytes)).toBe(true);
      await store.put('binary/empty', Buffer.alloc(0));
      expect((await store.get('binary/empty')).length).toBe(0);
    });

    it('stores a body given as chunks exactly as their concatenation', async () => {
      // 3,000 chunks of mixed sizes: more than one writev (1,024 buffers) and several sync steps.
      const chunks = Array.from({ length: 3000 }, (_, i) => randomBytes(i % 7 === 0 ? 20_000 : 1 + (i % 977)));
      await store.put('chunks/many', chunks);
      expect((await store.get('chunks/many')).equals(Buffer.concat(chunks))).toBe(true);
      expect((await store.head('chunks/many'))?.sizeBytes).toBe(Buffer.concat(chunks).length);
    });

    it('clips ranges at the end of the object', async () => {
      await store.put('range/ten', Buffer.from('0123456789'));
      expect((await store.get('range/ten', { start: 2, endExclusive: 5 })).toString()).toBe('234');
      expect((await store.get('range/ten', { start: 7, endExclusive: 100 })).toString()).toBe('789');
      expect((await store.get('range/ten', { start: 10, endExclusive: 20 })).length).toBe(0);
      expect((await store.get('range/ten', { start: 30, endExclusive: 40 })).length).toBe(0);
      expect((await store.get('range/ten', { start: 4, endExclusive: 4 })).length).toBe(0);
      await expect(store.get('range/ten', { start: 5, endExclusive: 4 })).rejects.toThrow(RangeError);
    });

    it('reads consecutive parts of an object into buffers of their own, clipped at its end', async () => {
      const body = randomBytes(3 * 1024 * 1024);
      await store.put('parts/a', body);
      const lengths = [1024 * 1024, 10, 0, 2 * 1024 * 1024];
      const parts = await readParts(store, 'parts/a', 1000, lengths);
      expect(parts.map((p) => p.length)).toEqual([1024 * 1024, 10, 0, body.length - 1000 - 1024 * 1024 - 10]);
      let at = 1000;
      for (const part of parts) {
        expect(part.equals(body.subarray(at, at + part.length))).toBe(true);
        at += part.length;
        // Its own memory: dropping it frees it, whatever happens to the other parts.
        expect(part.byteOffset).toBe(0);
        expect(part.buffer.byteLength).toBe(part.length);
      }
      // More parts than one readv takes (IOV_MAX is 1024).
      const many = await readParts(store, 'parts/a', 0, Array.from({ length: 1500 }, () => 100));
      expect(Buffer.concat(many).equals(body.subarray(0, 150_000))).toBe(true);
      await expect(readParts(store, 'parts/missing', 0, [10, 10])).rejects.toBeInstanceOf(ObjectNotFoundError);
      // At or past the end, or nothing asked: empty parts, one per length.
      expect((await readParts(store, 'parts/a', body.length, [10, 0, 5])).map((p) => p.length)).toEqual([0, 0, 0]);
      expect((await readParts(store, 'parts/a', body.length + 7, [10])).map((p) => p.length)).toEqual([0]);
      expect((await readParts(store, 'parts/a', 5, [0, 0])).map((p) => p.length)).toEqual([0, 0]);
    });

    it('reports a missing key as ObjectNotFoundError on get, undefined on head', async () => {
      await expect(store.get('missing/key')).rejects.toBeInstanceOf(ObjectNotFoundError);
      await expect(store.get('missing/key', { start: 0, endExclusive: 10 })).rejects.toBeInstanceOf(ObjectNotFoundError);
      await expect(store.get('missing/key', { start: 3, endExclusive: 3 })).rejects.toBeInstanceOf(ObjectNotFoundError);
      expect(await store.head('missing/key')).toBeUndefined();
      await store.put('head/x', Buffer.alloc(1234));
      expect(await store.head('head/x')).toEqual({ key: 'head/x', sizeBytes: 1234 });
    });

    it('lists by prefix in key order, paging past 1000 keys, and deletes them all at once', async () => {
      const keys = Array.from({ length: 1100 }, (_, i) => `many/${String(i).padStart(5, '0')}`);
      await runLimited(keys, 16, (key) => store.put(key, Buffer.from(key)));
      await store.put('manyother/x', Buffer.from('not under many/'));
      const listed = await store.list('many/');
      expect(listed.map((o) => o.key)).toEqual(keys);
      expect(listed[42]).toEqual({ key: 'many/00042', sizeBytes: 10 });
      expect((await store.list('many/0001')).map((o) => o.key)).toEqual(keys.slice(10, 20));
      expect((await store.list('many')).length).toBe(1101);
      await store.delete(keys);
      expect(await store.list('many/')).toEqual([]);
      expect((await store.list('many')).map((o) => o.key)).toEqual(['manyother/x']);
    });

    it('orders nested keys like S3 does (bytewise)', async () => {
      const keys = ['order/a/b', 'order/a.x', 'order/a-z', 'order/a', 'order/b/c/d', 'order/B'];
      for (const key of keys) {
        if (name === 'local' && key === 'order/a') continue; // a file cannot also be a directory
        await store.put(key, Buffer.from(key));
      }
      const expected = keys.filter((k) => name !== 'local' || k !== 'order/a').sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      expect((await store.list('order/')).map((o) => o.key)).toEqual(expected);
    });

    it('writes an object in parts, visible only once completed, byte for byte as written', async () => {
      const chunks = Array.from({ length: 40 }, (_, i) => randomBytes(300_000 + i * 1000)); // ~12.5 MiB
      const upload = await ObjectUpload.start(store, 'upload/parts', MIN_UPLOAD_PART_BYTES);
      for (const chunk of chunks) await upload.write([chunk]);
      expect(await store.head('upload/parts')).toBeUndefined();
      expect((await store.list('upload/')).length).toBe(0);
      await upload.complete();
      const whole = Buffer.concat(chunks);
      expect(upload.sizeBytes).toBe(whole.length);
      expect((await store.get('upload/parts')).equals(whole)).toBe(true);
      expect((await store.list('upload/')).map((o) => [o.key, o.sizeBytes])).toEqual([['upload/parts', whole.length]]);

      // One small part only (the last part may be short), and an empty object.
      const small = await ObjectUpload.start(store, 'upload/small');
      await small.write([Buffer.from('tiny')]);
      await small.complete();
      expect((await store.get('upload/small')).toString()).toBe('tiny');
      const empty = await ObjectUpload.start(store, 'upload/empty');
      await empty.complete();
      expect((await store.get('upload/empty')).length).toBe(0);

      // An object that stays under one part is one PUT; a larger one, parts only.
      const counting = new CountingStore(store);
      const one = await ObjectUpload.start(counting, 'upload/one-put');
      await one.write([randomBytes(1000)]);
      await one.complete();
      expect([counting.puts, counting.partUploads]).toEqual([1, 0]);
      const two = await ObjectUpload.start(counting, 'upload/two-parts', MIN_UPLOAD_PART_BYTES);
      await two.write([randomBytes(MIN_UPLOAD_PART_BYTES)]);
      await two.write([randomBytes(10)]);
      await two.complete();
      expect([counting.puts, counting.partUploads]).toEqual([1, 2]);
      expect((await store.head('upload/two-parts'))?.sizeBytes).toBe(MIN_UPLOAD_PART_BYTES + 10);
    });

    it('retries a part by uploading it again, and leaves nothing behind an aborted upload', async () => {
      const uploads = store.uploads!;
      const first = randomBytes(MIN_UPLOAD_PART_BYTES);
      const uploadId = await uploads.start('upload/retried');
      await uploads.uploadPart('upload/retried', uploadId, 1, randomBytes(MIN_UPLOAD_PART_BYTES + 5)); // lost answer
      const part1 = await uploads.uploadPart('upload/retried', uploadId, 1, first);
      const part2 = await uploads.uploadPart('upload/retried', uploadId, 2, [Buffer.from('end'), Buffer.from('!')]);
      await uploads.complete('upload/retried', uploadId, [part1, part2]);
      expect((await store.get('upload/retried')).equals(Buffer.concat([first, Buffer.from('end!')]))).toBe(true);

      const aborted = await ObjectUpload.start(store, 'upload/aborted', MIN_UPLOAD_PART_BYTES);
      await aborted.write([randomBytes(MIN_UPLOAD_PART_BYTES + 1)]);
      await aborted.abort();
      await aborted.abort(); // a second abort does nothing
      expect(await store.head('upload/aborted')).toBeUndefined();
      await expect(aborted.write([Buffer.from('x')])).rejects.toThrow(/aborted/);
      await uploads.abort('upload/aborted', 'no-such-upload'); // an unknown upload is not an error
    });

    it('ignores missing keys on delete and removes only the given keys', async () => {
      await store.put('del/keep', Buffer.from('k'));
      await store.put('del/drop', Buffer.from('d'));
      await store.delete(['del/drop', 'del/never-existed', 'nowhere/at/all']);
      await store.delete([]);
      expect((await store.list('del/')).map((o) => o.key)).toEqual(['del/keep']);
      await expect(store.get('del/drop')).rejects.toBeInstanceOf(ObjectNotFoundError);
    });
  });
}

describeObjectStoreContract('local', async () => {
  const rootDir = await mkdtemp(path.join(os.tmpdir(), 'wharf-objectstore-'));
  return {
    store: new LocalObjectStore(rootDir),
    cleanup: () => rm(rootDir, { recursive: true, force: true }),
  };
});

describeObjectStoreContract('s3', async () => {
  const s3rver = await startS3rver();
  const store = new S3ObjectStore({
    endpoint: s3rver.endpoint,
    region: s3rver.region,
    bucket: s3rver.bucket,
    accessKeyId: s3rver.accessKeyId,
    secretAccessKey: s3rver.secretAccessKey,
    forcePathStyle: true,
    prefix: 'cluster-1/',
  });
  return { store, cleanup: () => s3rver.stop() };
});

/** CRC-32C (Castagnoli, reflected 0x82F63B78) bit by bit: the test's own oracle. */
function crc32cBitwise(chunks: readonly Buffer[]): number {
  let crc = 0xffffffff;
  for (const chunk of chunks) {
    for (const byte of chunk) {
      crc ^= byte;
      for (let bit = 0; bit < 8; bit++) crc = (crc >>> 1) ^ (0x82f63b78 & -(crc & 1));
    }
  }
  return (crc ^ 0xffffffff) >>> 0;
}

interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

interface RecordingProxy {
  endpoint: string;
  seen: SeenRequest[];
  /** The next GET's response is cut (the connection closed) after this many body bytes. */
  cutNextGetAfter: number | undefined;
  close(): Promise<void>;
}

/**
 * An HTTP proxy in front of s3rver that passes requests through and keeps what was sent; it can
 * cut a response short (a fault).
 */
async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const seen: SeenRequest[] = [];
  const { hostname, port } = new URL(target);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      const upstream = http.request({ hostname, port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode!, answer.headers);
        const cutAfter = req.method === 'GET' ? proxy.cutNextGetAfter : undefined;
        if (cutAfter === undefined) {
          answer.pipe(res);
          return;
        }
        proxy.cutNextGetAfter = undefined;
        answer.once('data', (chunk: Buffer) => {
          res.write(chunk.subarray(0, cutAfter), () => res.socket?.destroy());
          answer.destroy();
        });
      });
      upstream.on('error', () => res.destroy());
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy: RecordingProxy = {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    cutNextGetAfter: undefined,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
  return proxy;
}

describe('S3 object bodies on the wire', () => {
  let s3rver: S3rverHandle;
  let proxy: RecordingProxy;
  let store: S3ObjectStore;
  beforeAll(async () => {
    s3rver = await startS3rver();
    proxy = await startRecordingProxy(s3rver.endpoint);
    store = new S3ObjectStore({
      endpoint: proxy.endpoint, region: s3rver.region, bucket: s3rver.bucket,
      accessKeyId: s3rver.accessKeyId, secretAccessKey: s3rver.secretAccessKey, forcePathStyle: true,
    });
  });
  afterAll(async () => {
    await store.close();
    await proxy.close();
    await s3rver.stop();
  });

  it('checks the oracle against the CRC-32C check value', () => {
    expect(crc32cBitwise([Buffer.from('12345'), Buffer.from('6789')])).toBe(0xe3069283);
  });

  it('sends chunks as they are, with their length and a CRC-32C S3 verifies, and no payload hash', async () => {
    const chunks = [randomBytes(70_000), randomBytes(1), Buffer.alloc(0), randomBytes(200_003)];
    const whole = Buffer.concat(chunks);
    const partChunks = [randomBytes(MIN_UPLOAD_PART_BYTES - 10), randomBytes(10)];
    await store.put('chunked', chunks);
    const uploadId = await store.uploads.start('in-parts');
    const first = await store.uploads.uploadPart('in-parts', uploadId, 1, partChunks);
    const last = await store.uploads.uploadPart('in-parts', uploadId, 2, chunks);
    await store.uploads.complete('in-parts', uploadId, [first, last]);

    const bodies = proxy.seen.filter((r) => r.method === 'PUT' && r.body.length > 0);
    expect(bodies.map((r) => r.body.length)).toEqual([whole.length, MIN_UPLOAD_PART_BYTES, whole.length]);
    for (const [request, sent] of [[bodies[0]!, chunks], [bodies[1]!, partChunks], [bodies[2]!, chunks]] as const) {
      expect(request.body.equals(Buffer.concat(sent))).toBe(true); // no aws-chunked framing
      expect(Number(request.headers['content-length'])).toBe(request.body.length);
      expect(request.headers['content-encoding']).toBeUndefined();
      const crc = Buffer.from(request.headers['x-amz-checksum-crc32c'] as string, 'base64');
      expect(crc.length).toBe(4);
      expect(crc.readUInt32BE()).toBe(crc32cBitwise(sent));
      expect(request.headers['x-amz-content-sha256']).toBe('UNSIGNED-PAYLOAD');
      expect(request.headers.authorization).toMatch(/SignedHeaders=[^,]*x-amz-content-sha256/);
    }
    expect((await store.get('chunked')).equals(whole)).toBe(true);
    expect((await store.get('in-parts')).equals(Buffer.concat([...partChunks, whole]))).toBe(true);
  });

  it('reads parts with one ranged GET, and fails a GET cut short instead of returning short parts', async () => {
    const body = randomBytes(300_000);
    await store.put('parts', body);
    const gets = (): SeenRequest[] => proxy.seen.filter((r) => r.method === 'GET' && r.url.includes('/parts'));
    const parts = await store.getParts('parts', 100, [50_000, 0, 200_000, 100_000]);
    expect(gets().map((r) => r.headers.range)).toEqual(['bytes=100-350099']);
    expect(parts.map((p) => p.length)).toEqual([50_000, 0, 200_000, 300_000 - 250_100]);
    expect(Buffer.concat(parts).equals(body.subarray(100))).toBe(true);

    proxy.cutNextGetAfter = 1000;
    await expect(store.getParts('parts', 0, [150_000, 150_000])).rejects.toThrow();
    proxy.cutNextGetAfter = 1000;
    await expect(store.get('parts')).rejects.toThrow();
    expect((await store.getParts('parts', 0, [150_000, 150_000])).every((p, i) => p.equals(body.subarray(i * 150_000, (i + 1) * 150_000)))).toBe(true);
  });
});

describe('local object store on disk', () => {
  let rootDir: string;
  beforeAll(async () => {
    rootDir = await mkdtemp(path.join(os.tmpdir(), 'wharf-objectstore-disk-'));
  });
  afterAll(() => rm(rootDir, { recursive: true, force: true }));

  it('keeps no temporary files and prunes directories emptied by delete', async () => {
    const store = new LocalObjectStore(rootDir);
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.put(`deep/dir/${i}`, Buffer.alloc(100, i))));
    expect((await readdir(path.join(rootDir, 'deep/dir'))).length).toBe(20);
    await store.delete(Array.from({ length: 20 }, (_, i) => `deep/dir/${i}`));
    expect(await readdir(rootDir)).toEqual([]);
    await store.close();
  });

  it('leaves no temporary file behind an aborted upload, nor one still open when closed', async () => {
    const dir = await mkdtemp(path.join(rootDir, 'uploads-'));
    const store = new LocalObjectStore(dir);
    const aborted = await ObjectUpload.start(store, 'up/a', MIN_UPLOAD_PART_BYTES);
    await aborted.write([Buffer.alloc(MIN_UPLOAD_PART_BYTES + 1, 1)]);
    expect((await readdir(path.join(dir, 'up'))).length).toBe(1); // the upload's temporary file
    await aborted.abort();
    const open = await ObjectUpload.start(store, 'up/b');
    await open.write([Buffer.from('never completed')]);
    await store.close();
    expect(await readdir(path.join(dir, 'up'))).toEqual([]);
  });

  it('rejects keys that would escape the root directory', async () => {
    const store = new LocalObjectStore(rootDir);
    for (const key of ['../x', 'a//b', '/abs', 'a/./b', 'a/.wharf-tmp-1', '']) {
      await expect(store.put(key, Buffer.from('x'))).rejects.toThrow(/invalid object key/);
    }
  });
});

describe('createObjectStore', () => {
  let s3rver: S3rverHandle;
  let rootDir: string;
  beforeAll(async () => {
    s3rver = await startS3rver();
    rootDir = await mkdtemp(path.join(os.tmpdir(), 'wharf-objectstore-create-'));
  });
  afterAll(async () => {
    await s3rver.stop();
    await rm(rootDir, { recursive: true, force: true });
  });

  it('builds a working local store, creating its directory', async () => {
    const store = await createObjectStore({ kind: 'local', rootDir: path.join(rootDir, 'objects') });
    await store.put('k', Buffer.from('v'));
    expect((await store.get('k')).toString()).toBe('v');
    // Through the decorators (retries, metrics) as from the store itself.
    expect(store.getParts).toBeDefined();
    expect((await readParts(store, 'k', 0, [1, 5])).map((p) => p.toString())).toEqual(['v', '']);
    await store.close();
  });

  it('builds a working S3 store, creating a missing bucket', async () => {
    const store = await createObjectStore({
      kind: 's3',
      endpoint: s3rver.endpoint,
      region: s3rver.region,
      bucket: 'created-on-demand',
      accessKeyId: s3rver.accessKeyId,
      secretAccessKey: s3rver.secretAccessKey,
      forcePathStyle: true,
    });
    await store.put('k', Buffer.from('v'));
    expect(await store.list('')).toEqual([{ key: 'k', sizeBytes: 1 }]);
    await store.close();
  });
});
