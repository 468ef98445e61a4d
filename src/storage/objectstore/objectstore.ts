// The one object-store abstraction. Every object-store call in Wharf goes through this
// interface; retries, metrics and fault injection are decorators around it (SlateDB style),
// never code inside one implementation.

export interface ObjectInfo {
  key: string;
  sizeBytes: number;
}

/**
 * An object's bytes: one buffer, or chunks written in order (so that an object built from many
 * batches need not be joined into one buffer first).
 */
export type ObjectBody = Buffer | readonly Buffer[];

export function bodyLength(body: ObjectBody): number {
  if (Buffer.isBuffer(body)) return body.length;
  let length = 0;
  for (const chunk of body) length += chunk.length;
  return length;
}

export function bodyChunks(body: ObjectBody): readonly Buffer[] {
  return Buffer.isBuffer(body) ? [body] : body;
}

export interface ObjectStore {
  /** Writes the whole object. Resolves once the object is durable and visible to get/list. */
  put(key: string, body: ObjectBody): Promise<void>;
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
