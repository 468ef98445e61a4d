// What every converter (a Kafka record in, table rows out) offers, and what it reads of a record.
// A DecodedRecord of src/protocol/record-decoder.ts is a RecordView as it is.

import type { HeaderVisitor } from '../../../src/protocol/record-decoder.ts';
import type { TableRows } from '../columns.ts';

/** One Kafka record; key, value and headers are positions in `buf` (start -1: null). */
export interface RecordView {
  readonly partition: number;
  readonly offset: number;
  readonly timestampMs: number;
  readonly buf: Buffer;
  readonly keyStart: number;
  readonly keyEnd: number;
  readonly valueStart: number;
  readonly valueEnd: number;
  readonly headerCount: number;
  forEachHeader(visit: HeaderVisitor): void;
}

/** How OTLP record values are encoded (schemas/otlp_proto.json, schemas/otlp_json.json). */
export type ValueEncoding = 'otlp_proto' | 'otlp_json';

export interface Converter {
  /** Table suffixes, in the order append() expects their rows. */
  readonly tables: readonly string[];
  /** Records that produced no rows because their value was malformed (or null). */
  readonly skippedRecords: number;
  /** Why the last skipped record was skipped (for logs), or undefined. */
  readonly lastSkipReason: string | undefined;
  /**
   * Appends the record's rows (zero or more per table). A malformed value is skipped and
   * counted: it appends nothing, because the value is checked whole before the first row is
   * written. An exception out of append is a bug (the check passed, the row pass failed) and
   * may leave a row half-written: drop the builders' rows then.
   */
  append(record: RecordView, out: readonly TableRows[]): void;
}
