// What stream storage needs from the metadata layer. Storage declares it; src/metadata
// implements it on the MetadataStore (DESIGN.md: lower layers declare the interfaces they need).
//
// Fencing: every stream has an epoch; openStream bumps it. Any call that carries an epoch
// older than the stream's current one fails with StreamFencedError, so a stale owner can
// never commit an object or move a stream's offsets.

export interface StreamRange {
  streamId: number;
  epoch: number;
  /** First offset held for this stream in the object (inclusive). */
  startOffset: number;
  /** One past the last offset held (exclusive). */
  endOffset: number;
}

export interface CommittedObject {
  objectId: number;
  key: string;
  sizeBytes: number;
  ranges: StreamRange[];
}

export interface StreamState {
  streamId: number;
  epoch: number;
  /** First offset still readable (after trim). */
  startOffset: number;
  /** One past the last offset committed to objects. */
  endOffset: number;
}

export interface ObjectRef {
  objectId: number;
  key: string;
  sizeBytes: number;
  /** The range of the requested stream inside this object. */
  startOffset: number;
  endOffset: number;
}

export interface StreamMetadata {
  /** Allocates a new empty stream (epoch 0, offsets 0..0). */
  createStream(): Promise<StreamState>;
  /** Takes ownership: bumps the epoch and returns the new state. */
  openStream(streamId: number, nodeId: number): Promise<StreamState>;
  getStream(streamId: number): Promise<StreamState | undefined>;
  /** Releases ownership; fenced by epoch. */
  closeStream(streamId: number, epoch: number): Promise<void>;
  /** Moves the start offset forward; fenced by epoch. */
  trimStream(streamId: number, epoch: number, newStartOffset: number): Promise<void>;
  deleteStream(streamId: number, epoch: number): Promise<void>;
  /** Reserves an object id before its PUT; a prepared object never committed is garbage. */
  prepareObject(ttlMs: number): Promise<number>;
  /**
   * Registers an uploaded object. Atomic: either every range is committed (each stream's
   * endOffset advances to the range's endOffset) or none is. Fails with StreamFencedError if any
   * range's epoch is stale, or OffsetMismatchError if a range does not start at its stream's
   * current endOffset.
   */
  commitObject(object: CommittedObject): Promise<void>;
  /** Objects holding offsets of [startOffset, endOffset) of the stream, in offset order. */
  getObjects(streamId: number, startOffset: number, endOffset: number, limit: number): Promise<ObjectRef[]>;
}

export class StreamFencedError extends Error {
  constructor(streamId: number, epoch: number, currentEpoch: number) {
    super(`stream ${streamId}: epoch ${epoch} is fenced by epoch ${currentEpoch}`);
    this.name = 'StreamFencedError';
  }
}

export class OffsetMismatchError extends Error {
  constructor(streamId: number, expected: number, got: number) {
    super(`stream ${streamId}: commit starts at ${got}, stream ends at ${expected}`);
    this.name = 'OffsetMismatchError';
  }
}
