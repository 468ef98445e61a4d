// The one object-store abstraction. Every object-store call in Wharf goes through this
// interface; retries, metrics and fault injection are decorators around it (SlateDB style),
// never code inside one implementation.

export interface ObjectInfo {
  key: string;
  sizeBytes: number;
}

export interface ObjectStore {
  /** Writes the whole object. Resolves once the object is durable and visible to get/list. */
  put(key: string, body: Buffer): Promise<void>;
  /**
   * Reads bytes [start, endExclusive) of an object; the whole object when no range is given.
   * Bytes past the end of the object are not returned (the result is shorter, possibly empty).
   * Rejects with ObjectNotFoundError when the object does not exist.
   */
  get(key: string, range?: { start: number; endExclusive: number }): Promise<Buffer>;
  /** Size of an object, or undefined when it does not exist. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with prefix, in key order. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Deletes the objects; deleting a missing key is not an error. */
  delete(keys: string[]): Promise<void>;
  close(): Promise<void>;
}

export class ObjectNotFoundError extends Error {
  readonly key: string;
  constructor(key: string) {
    super(`object not found: ${key}`);
    this.name = 'ObjectNotFoundError';
    this.key = key;
  }
}
