// Who owns a node's object WAL, and which of its objects a recovery may replay.
//
// One small record per node, kept in a store with compare-and-swap (the metadata store in the
// broker: storage declares the interface, metadata implements it; see JsonWalOwnerStore):
//
//   { epoch, sealedBelow, sealed: [[epoch, lastSequence], ...] }
//
// - epoch: the epoch of the node's current WAL owner. Opening an object WAL takes epoch + 1
//   (CAS), which fences the previous owner: before acknowledging a PUT a writer reads this
//   record and stops for good when the epoch is no longer its own (object-wal.ts).
// - sealedBelow / sealed: written by a recovery right after it listed the WAL objects. Objects
//   of an epoch below sealedBelow are replayable only when `sealed` lists that epoch and their
//   sequence is at most its lastSequence; anything else of those epochs was PUT by a fenced
//   writer after the listing (and so never acknowledged) and is deleted unread. Epochs from
//   sealedBelow up to the current one are not sealed yet (their recovery did not get that far):
//   all their objects are replayable.
//
// The record is JSON so that it reads well in etcdctl / the embedded store's dump.

export interface WalOwnerRecord {
  epoch: number;
  sealedBelow: number;
  /** [epoch, last replayable sequence] for each sealed epoch that still had objects. */
  sealed: Array<[number, number]>;
}

export interface VersionedWalOwnerRecord {
  record: WalOwnerRecord;
  /** Opaque version for compare-and-swap; never 0 (0 means "absent" to write()). */
  version: number;
}

export interface WalOwnerStore {
  read(nodeId: number): Promise<VersionedWalOwnerRecord | undefined>;
  /** Writes the record if its version is still expectedVersion (0: only if absent). False when not. */
  write(nodeId: number, record: WalOwnerRecord, expectedVersion: number): Promise<boolean>;
}

/** A writer found that a newer owner took its WAL (or that its recovery lost a race for it). */
export class WalFencedError extends Error {
  readonly nodeId: number;
  readonly epoch: number;
  readonly currentEpoch: number | undefined;
  constructor(nodeId: number, epoch: number, currentEpoch: number | undefined) {
    super(`object WAL of node ${nodeId}: epoch ${epoch} is fenced (current owner epoch ${currentEpoch ?? 'none'})`);
    this.name = 'WalFencedError';
    this.nodeId = nodeId;
    this.epoch = epoch;
    this.currentEpoch = currentEpoch;
  }
}

/** What JsonWalOwnerStore needs: ClusterModel's getJson/putJson have this shape. */
export interface JsonCasStore {
  getJson<T>(path: string): Promise<{ value: T; modRevision: number } | undefined>;
  putJson(path: string, value: unknown, options?: { expectedModRevision?: number }): Promise<boolean>;
}

/** Owner records as JSON values under `<pathPrefix><nodeId>` of a store with revisions. */
export class JsonWalOwnerStore implements WalOwnerStore {
  private readonly store: JsonCasStore;
  private readonly pathPrefix: string;

  constructor(store: JsonCasStore, pathPrefix = 'wal-owners/') {
    this.store = store;
    this.pathPrefix = pathPrefix;
  }

  async read(nodeId: number): Promise<VersionedWalOwnerRecord | undefined> {
    const found = await this.store.getJson<unknown>(this.pathPrefix + nodeId);
    if (found === undefined) return undefined;
    return { record: checkOwnerRecord(found.value, nodeId), version: found.modRevision };
  }

  write(nodeId: number, record: WalOwnerRecord, expectedVersion: number): Promise<boolean> {
    return this.store.putJson(this.pathPrefix + nodeId, record, { expectedModRevision: expectedVersion });
  }
}

/** In-process owner records (tests; a single process that needs no durable fencing). */
export class MemoryWalOwnerStore implements WalOwnerStore {
  private readonly records = new Map<number, VersionedWalOwnerRecord>();
  private nextVersion = 1;

  async read(nodeId: number): Promise<VersionedWalOwnerRecord | undefined> {
    const found = this.records.get(nodeId);
    return found === undefined ? undefined : { record: structuredClone(found.record), version: found.version };
  }

  async write(nodeId: number, record: WalOwnerRecord, expectedVersion: number): Promise<boolean> {
    if ((this.records.get(nodeId)?.version ?? 0) !== expectedVersion) return false;
    this.records.set(nodeId, { record: structuredClone(checkOwnerRecord(record, nodeId)), version: this.nextVersion++ });
    return true;
  }
}

function checkOwnerRecord(value: unknown, nodeId: number): WalOwnerRecord {
  const record = value as Partial<WalOwnerRecord> | null;
  const ok =
    record !== null &&
    typeof record === 'object' &&
    isCount(record.epoch) &&
    isCount(record.sealedBelow) &&
    record.sealedBelow <= record.epoch &&
    Array.isArray(record.sealed) &&
    record.sealed.every((entry) => Array.isArray(entry) && entry.length === 2 && isCount(entry[0]) && isCount(entry[1]));
  if (!ok) throw new Error(`object WAL owner record of node ${nodeId} is malformed: ${JSON.stringify(value)}`);
  return record as WalOwnerRecord;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
