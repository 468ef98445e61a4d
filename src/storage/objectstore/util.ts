// Small helpers shared by the ObjectStore implementations and decorators.

/** Asserts 0 <= start <= endExclusive, both safe integers. */
export function checkRange(range: { start: number; endExclusive: number }): void {
  const { start, endExclusive } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(endExclusive) || start < 0 || endExclusive < start) {
    throw new RangeError(`invalid byte range [${start}, ${endExclusive})`);
  }
}

/** Checks getParts' arguments (a start and part lengths, each a non-negative integer); returns the bytes asked for. */
export function checkParts(start: number, lengths: readonly number[]): number {
  let total = 0;
  for (const length of lengths) total += length;
  if (!(Number.isSafeInteger(start) && start >= 0) || !lengths.every((l) => Number.isSafeInteger(l) && l >= 0) || !Number.isSafeInteger(start + total)) {
    throw new RangeError(`invalid parts: from ${start}, lengths ${JSON.stringify(lengths)}`);
  }
  return total;
}

/** S3 orders keys by their UTF-8 bytes; so do we (UTF-16 order differs above U+D7FF). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** True for ObjectNotFoundError, also across duplicated module instances (test isolation). */
export function isObjectNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'ObjectNotFoundError';
}

/** The HTTP status of an SDK error, when it carries one. */
export function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const metadata = (err as { $metadata?: { httpStatusCode?: number } }).$metadata;
  return metadata?.httpStatusCode;
}
