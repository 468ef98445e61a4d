// The MetadataStore interface: etcd's data model, so that the embedded store (embedded.ts) and an
// etcd-backed store (etcd3 client) are interchangeable without touching callers.
//
// Model
// - Keys are strings (compared as UTF-8 bytes, like etcd), values are Buffers.
// - One global revision. Every transaction that changes something bumps it by exactly one; all
//   of its writes share that revision (etcd's main revision). Reads and no-op writes do not.
// - Per key: createRevision (revision that created it), modRevision (last change) and version
//   (number of puts since creation; a deleted key has version 0 and the next put starts at 1).
// - Transactions: compare (all must hold) → success ops, else failure ops; atomic.
// - Leases: keys attached to a lease are deleted when it expires or is revoked.
// - Watches: events per revision, in revision order, delivered asynchronously.
//
// Portability rules (what etcd imposes, so code written against the embedded store keeps working):
// - Lease TTLs are milliseconds here; etcd has whole seconds. The etcd implementation rounds up
//   to the next second and the server may raise it to its minimum TTL (a few seconds). Never rely
//   on sub-second expiry; keepAlive at a third of the TTL or more often.
// - A transaction may not put the same key twice, nor put a key that one of its deletes covers
//   (etcd: "duplicate key given in txn request").
// - Transactions are bounded: at most `maxTxnOps` ops per branch and compares (etcd's default
//   --max-txn-ops is 128) and `maxTxnBytes` of request (etcd's default is 1.5 MiB).
// - Lease ids are opaque strings (etcd's are int64 and may exceed 2^53).
// - Watch history is bounded: watching from a revision older than what the store keeps fails
//   with WatchCompactedError (etcd: compacted revision). Re-list with range and watch from the
//   range's revision + 1.

export type LeaseId = string;

export interface KeyValue {
  key: string;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  /** Lease the key is attached to, or undefined. */
  lease: LeaseId | undefined;
}

export type CompareOp = '=' | '!=' | '<' | '>';

/**
 * A condition on one key. For a missing key, version, createRevision and modRevision are 0, and
 * any comparison of its value fails (etcd semantics).
 */
export type Compare =
  | { key: string; target: 'version' | 'modRevision' | 'createRevision'; op: CompareOp; value: number }
  | { key: string; target: 'value'; op: CompareOp; value: Buffer | string };

export interface RangeOptions {
  /** First key returned (inclusive); must start with the prefix. Default: the prefix. */
  startKey?: string;
  /** Keys returned are below this one (exclusive). Default: the end of the prefix. */
  endKey?: string;
  /** Maximum number of keys returned; 0 or undefined means no limit. */
  limit?: number;
  /** Key order; 'descend' with a limit returns the last keys of the range. */
  order?: 'ascend' | 'descend';
}

export type TxnOp =
  | { type: 'put'; key: string; value: Buffer | string; lease?: LeaseId }
  | { type: 'delete'; key: string; prefix?: boolean }
  | { type: 'get'; key: string }
  | ({ type: 'range'; prefix: string } & RangeOptions);

export type TxnOpResponse =
  | { type: 'put' }
  | { type: 'delete'; deleted: number }
  | { type: 'get'; kv: KeyValue | undefined }
  | { type: 'range'; kvs: KeyValue[]; more: boolean };

export interface TxnRequest {
  compare: Compare[];
  success: TxnOp[];
  failure?: TxnOp[];
}

export interface TxnResult {
  succeeded: boolean;
  /** One response per op of the branch that ran, in order. */
  responses: TxnOpResponse[];
  /** The store's revision after the transaction. */
  revision: number;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** True when the limit cut the result short. */
  more: boolean;
  /** The store's revision the result was read at (watch from revision + 1 to follow it). */
  revision: number;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value for a put; empty for a delete. */
  value: Buffer;
  modRevision: number;
}

/** Receives the events of one revision (one transaction), filtered by the watch's prefix. */
export type WatchCallback = (events: WatchEvent[]) => void;
export type WatchCancel = () => void;

export interface MetadataStoreLimits {
  maxTxnOps: number;
  maxTxnBytes: number;
}

export interface MetadataStore {
  readonly limits: MetadataStoreLimits;
  /** The current revision. */
  revision(): Promise<number>;
  get(key: string): Promise<KeyValue | undefined>;
  /** Keys starting with prefix, sorted by key (UTF-8 byte order). */
  range(prefix: string, options?: RangeOptions): Promise<RangeResult>;
  put(key: string, value: Buffer | string, options?: { lease?: LeaseId }): Promise<{ revision: number }>;
  /** Deletes one key, or every key starting with key when prefix is set. */
  delete(key: string, options?: { prefix?: boolean }): Promise<{ deleted: number; revision: number }>;
  txn(request: TxnRequest): Promise<TxnResult>;
  /** Grants a lease; see the note on TTL granularity above. */
  grantLease(ttlMs: number): Promise<LeaseId>;
  /** Refreshes a lease to its full TTL; returns the TTL in ms. LeaseNotFoundError if gone. */
  keepAlive(lease: LeaseId): Promise<number>;
  /** Revokes a lease and deletes its keys. LeaseNotFoundError if gone. */
  revokeLease(lease: LeaseId): Promise<void>;
  /**
   * Watches keys starting with prefix. Without fromRevision, only changes after the call are
   * delivered; with it, every change at revision >= fromRevision. Events arrive asynchronously,
   * per revision, in revision order, and only once durable. Errors (WatchCompactedError, the
   * store closing) go to onError, after which the watch is over.
   */
  watch(
    prefix: string,
    fromRevision: number | undefined,
    onEvents: WatchCallback,
    onError?: (error: Error) => void,
  ): WatchCancel;
  close(): Promise<void>;
}

// ---- errors ----

export class LeaseNotFoundError extends Error {
  readonly lease: LeaseId;
  constructor(lease: LeaseId) {
    super(`lease ${lease} not found`);
    this.name = 'LeaseNotFoundError';
    this.lease = lease;
  }
}

/** A request that breaks the transaction rules (duplicate keys, too many ops, too large). */
export class InvalidTxnError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidTxnError';
  }
}

export class WatchCompactedError extends Error {
  readonly compactRevision: number;
  constructor(fromRevision: number, compactRevision: number) {
    super(`watch from revision ${fromRevision}: history is kept only after revision ${compactRevision}`);
    this.name = 'WatchCompactedError';
    this.compactRevision = compactRevision;
  }
}

export class MetadataStoreClosedError extends Error {
  constructor() {
    super('metadata store is closed');
    this.name = 'MetadataStoreClosedError';
  }
}

// ---- helpers ----

export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** Parses a JSON value; the caller names the type it expects (not checked). */
export function decodeJson<T>(value: Buffer): T {
  return JSON.parse(value.toString('utf8')) as T;
}

export function toBuffer(value: Buffer | string): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

/** Orders keys by their UTF-8 bytes (= code point order), like etcd. */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

// UTF-16 puts surrogates (astral code points) below U+E000..U+FFFF; UTF-8 puts them above.
function codePointRank(codeUnit: number): number {
  if (codeUnit >= 0xd800 && codeUnit <= 0xdfff) return codeUnit + 0x2000;
  if (codeUnit >= 0xe000) return codeUnit - 0x800;
  return codeUnit;
}
