// Builds the configured ObjectStore: retrying(instrumented(base)). Retries wrap the metrics so
// that every attempt is counted and timed on its own.

import { promises as fs } from 'node:fs';
import { InstrumentedObjectStore } from './instrumented.ts';
import { LocalObjectStore } from './local.ts';
import type { ObjectStore } from './objectstore.ts';
import { RetryingObjectStore } from './retrying.ts';
import type { RetryOptions } from './retrying.ts';
import { S3ObjectStore } from './s3.ts';
import type { S3ObjectStoreOptions } from './s3.ts';

export type ObjectStoreConfig =
  | { kind: 'local'; rootDir: string; retry?: RetryOptions }
  | ({ kind: 's3'; retry?: RetryOptions; /** Create the bucket when missing. Default true. */ createBucket?: boolean } & S3ObjectStoreOptions);

export interface CreateObjectStoreOptions {
  /**
   * Test-only: decorates the base store, under the metrics and retry layers (so that faults
   * injected by a FaultyObjectStore are counted and retried like real backend failures).
   */
  wrapBase?: (base: ObjectStore) => ObjectStore;
}

export async function createObjectStore(config: ObjectStoreConfig, options: CreateObjectStoreOptions = {}): Promise<ObjectStore> {
  let base: ObjectStore;
  if (config.kind === 'local') {
    await fs.mkdir(config.rootDir, { recursive: true });
    base = new LocalObjectStore(config.rootDir);
  } else {
    const s3 = new S3ObjectStore(config);
    if (config.createBucket ?? true) {
      try {
        await s3.ensureBucket();
      } catch (err) {
        await s3.close();
        throw err;
      }
    }
    base = s3;
  }
  if (options.wrapBase !== undefined) base = options.wrapBase(base);
  return new RetryingObjectStore(new InstrumentedObjectStore(base), config.retry);
}

export { ObjectNotFoundError } from './objectstore.ts';
export type { ObjectInfo, ObjectStore } from './objectstore.ts';
export { LocalObjectStore } from './local.ts';
export { S3ObjectStore } from './s3.ts';
export type { S3ObjectStoreOptions } from './s3.ts';
export { InstrumentedObjectStore } from './instrumented.ts';
export { RetryingObjectStore, ObjectStoreTimeoutError } from './retrying.ts';
export type { RetryOptions } from './retrying.ts';
export { FaultyObjectStore, InjectedFaultError, seededRandom } from './faulty.ts';
export type { FaultOptions } from './faulty.ts';
