// Metrics decorator: counts requests by result, bytes moved, and latency per operation.
//
//   wharf_object_store_requests_total{op,result}        result: ok | not_found | error
//   wharf_object_store_request_duration_seconds{op}     histogram
//   wharf_object_store_bytes_total{op}                  put: bytes written, get: bytes read
//
// The metrics live in prom-client's default registry and are created once per process: a second
// load of this module (test isolation) picks up the registered ones instead of throwing.

import { Counter, Histogram, register } from 'prom-client';
import { isObjectNotFound } from './util.ts';
import { bodyLength, readParts, wrapUploads } from './objectstore.ts';
import type { MultipartUploads, ObjectBody, ObjectInfo, ObjectStore } from './objectstore.ts';

export const OBJECT_STORE_OPS = ['put', 'get', 'head', 'list', 'delete'] as const;
export type ObjectStoreOp = (typeof OBJECT_STORE_OPS)[number];

const REQUESTS_NAME = 'wharf_object_store_requests_total';
const DURATION_NAME = 'wharf_object_store_request_duration_seconds';
const BYTES_NAME = 'wharf_object_store_bytes_total';

const requestsTotal =
  (register.getSingleMetric(REQUESTS_NAME) as Counter<'op' | 'result'> | undefined) ??
  new Counter({
    name: REQUESTS_NAME,
    help: 'Object store requests by operation and result (ok, not_found, error).',
    labelNames: ['op', 'result'] as const,
  });

const requestDurationSeconds =
  (register.getSingleMetric(DURATION_NAME) as Histogram<'op'> | undefined) ??
  new Histogram({
    name: DURATION_NAME,
    help: 'Object store request latency by operation.',
    labelNames: ['op'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });

const bytesTotal =
  (register.getSingleMetric(BYTES_NAME) as Counter<'op'> | undefined) ??
  new Counter({
    name: BYTES_NAME,
    help: 'Bytes written (put) and read (get) through the object store.',
    labelNames: ['op'] as const,
  });

export class InstrumentedObjectStore implements ObjectStore {
  private readonly inner: ObjectStore;
  readonly readsPartsInPlace: boolean;
  readonly uploads: MultipartUploads | undefined;

  constructor(inner: ObjectStore) {
    this.inner = inner;
    this.readsPartsInPlace = inner.readsPartsInPlace === true;
    // Each upload call is a put-class request (as S3 bills them); parts count as bytes put.
    this.uploads = wrapUploads(inner.uploads, async (bytes, call) => {
      const result = await this.measure('put', call);
      bytesTotal.inc({ op: 'put' }, bytes);
      return result;
    });
  }

  async put(key: string, body: ObjectBody): Promise<void> {
    await this.measure('put', () => this.inner.put(key, body));
    bytesTotal.inc({ op: 'put' }, bodyLength(body));
  }

  async get(key: string, range?: { start: number; endExclusive: number }): Promise<Buffer> {
    const body = await this.measure('get', () => this.inner.get(key, range));
    bytesTotal.inc({ op: 'get' }, body.length);
    return body;
  }

  async getParts(key: string, start: number, lengths: readonly number[]): Promise<Buffer[]> {
    const parts = await this.measure('get', () => readParts(this.inner, key, start, lengths));
    for (const part of parts) bytesTotal.inc({ op: 'get' }, part.length);
    return parts;
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    return this.measure('head', () => this.inner.head(key));
  }

  list(prefix: string): Promise<ObjectInfo[]> {
    return this.measure('list', () => this.inner.list(prefix));
  }

  delete(keys: string[]): Promise<void> {
    return this.measure('delete', () => this.inner.delete(keys));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async measure<T>(op: ObjectStoreOp, call: () => Promise<T>): Promise<T> {
    const stopTimer = requestDurationSeconds.startTimer({ op });
    try {
      const result = await call();
      requestsTotal.inc({ op, result: 'ok' });
      return result;
    } catch (err) {
      requestsTotal.inc({ op, result: isObjectNotFound(err) ? 'not_found' : 'error' });
      throw err;
    } finally {
      stopTimer();
    }
  }
}
