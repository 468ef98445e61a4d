// Column builders: how converters turn Kafka records into table rows without per-row objects.
// A TableRows is built from an Iceberg schema (the JSON form of schemas/tables/*.json). Each
// top-level field becomes a ColumnBuilder; a converter appends exactly one value (or null) to
// every top-level column per row and then calls endRow(). Nested types are built the Arrow way:
// a list appends its elements to its element builder between start() and end(); a struct
// appends one value to every child field after appendValid().
//
// Values are kept in growable typed arrays and byte buffers (offsets + UTF-8 bytes for
// strings), Arrow's layouts, which connectors/table/arrow-ipc.ts copies into an Arrow IPC stream
// as they are. appendCopyOf repeats an earlier value of the batch (one copy of its bytes) for
// values many rows share.

import { isUtf8 } from 'node:buffer';
import { freeIfOwned } from '../../src/storage/buffers.ts';
import type {
  IcebergListType, IcebergMapType, IcebergSchema, IcebergStructType, IcebergType,
} from './iceberg/types.ts';

export interface ColumnBuilder {
  /** The Iceberg type this builder holds. */
  readonly type: IcebergType;
  /** Values (or list/map/struct entries) appended so far, nulls included. */
  readonly length: number;
  appendNull(): void;
  /**
   * Appends a copy of value `index` (an earlier value of this batch, null included, nested
   * values whole): what a converter does for values every row of a group shares, such as the
   * resource columns of the spans of one resource.
   */
  appendCopyOf(index: number): void;
}

export interface BoolColumn extends ColumnBuilder { append(value: boolean): void }
/** Iceberg int (32-bit). */
export interface IntColumn extends ColumnBuilder { append(value: number): void }
/** Iceberg long (64-bit): numbers must be safe integers; bigints are taken as they are. */
export interface LongColumn extends ColumnBuilder { append(value: number | bigint): void }
/** Iceberg float and double. */
export interface DoubleColumn extends ColumnBuilder { append(value: number): void }
/** Iceberg timestamp / timestamptz: microseconds since the epoch (a safe integer). */
export interface TimestampColumn extends ColumnBuilder { append(micros: number): void }
export interface StringColumn extends ColumnBuilder {
  append(value: string): void;
  /** Appends UTF-8 bytes as they are (e.g. a protobuf string field), without decoding them. */
  appendUtf8(bytes: Uint8Array, start: number, end: number): void;
  /**
   * Appends bytes [start, end) as a string: as they are when valid UTF-8 (Parquet readers refuse
   * files with invalid strings), else decoded with U+FFFD for the bad sequences.
   */
  appendText(bytes: Uint8Array, start: number, end: number): void;
  /** Appends bytes [start, end) as lowercase hex (2 characters a byte). */
  appendHex(bytes: Uint8Array, start: number, end: number): void;
}
export interface BinaryColumn extends ColumnBuilder { append(bytes: Uint8Array, start?: number, end?: number): void }

export interface ListColumn extends ColumnBuilder {
  readonly element: ColumnBuilder;
  /** Starts a non-null list; append its elements to `element`, then call end(). */
  start(): void;
  end(): void;
}
export interface MapColumn extends ColumnBuilder {
  readonly key: ColumnBuilder;
  readonly value: ColumnBuilder;
  /** Starts a non-null map; append one key and one value per entry, then call end(). */
  start(): void;
  end(): void;
}
export interface StructColumn extends ColumnBuilder {
  /** The child builder of a field, by name (throws for an unknown name). */
  field(name: string): ColumnBuilder;
  /** Marks the next struct value present; append one value to every child, then nothing else. */
  appendValid(): void;
}

export interface TableRows {
  readonly schema: IcebergSchema;
  readonly rowCount: number;
  /** Approximate bytes held (for flushing by size). */
  readonly byteSize: number;
  /** Top-level column by name (throws for an unknown name); cast to the builder of its type. */
  column(name: string): ColumnBuilder;
  /** Ends the current row: every top-level column must have rowCount + 1 values. */
  endRow(): void;
  /** Drops every value (keeps allocated memory for the next batch). */
  reset(): void;
}

/** Iceberg uuid: 16 bytes; appendString takes the text form (8-4-4-4-12 hex digits). */
export interface UuidColumn extends BinaryColumn { appendString(text: string): void }

// ---------------------------------------------------------------------------------------------
// Buffers as connectors/table/parquet.ts reads them. Views into the builders' memory: valid
// until the next append or reset(). Layouts are Arrow's: validity bit set = value present
// (null when the column has no null), offsets[i]..offsets[i+1] delimit value i.

interface BuffersCommon { length: number; nullCount: number; validity: Uint8Array | null }
export type ColumnBuffers =
  | BuffersCommon & { kind: 'bool'; bits: Uint8Array }
  | BuffersCommon & { kind: 'int32'; values: Int32Array }
  /** `words` is the same memory as `values`: low then high 32 bits of each value. */
  | BuffersCommon & { kind: 'int64'; values: BigInt64Array; words: Int32Array }
  | BuffersCommon & { kind: 'float32'; values: Float32Array }
  | BuffersCommon & { kind: 'float64'; values: Float64Array }
  | BuffersCommon & { kind: 'bytes'; offsets: Int32Array; bytes: Uint8Array }
  | BuffersCommon & { kind: 'fixed'; widthBytes: number; bytes: Uint8Array }
  | BuffersCommon & { kind: 'list'; offsets: Int32Array; element: ColumnBuffers }
  | BuffersCommon & { kind: 'map'; offsets: Int32Array; key: ColumnBuffers; value: ColumnBuffers }
  /** Children in the order of the struct type's fields. */
  | BuffersCommon & { kind: 'struct'; children: ColumnBuffers[] };

/** The buffers of a column of a TableRows (throws for a builder made elsewhere). */
export function columnBuffers(column: ColumnBuilder): ColumnBuffers {
  if (!(column instanceof BaseColumn)) throw new TypeError('not a column of createTableRows()');
  return column.buffers();
}

/**
 * Builders for every field of `schema`. By Iceberg type: boolean BoolColumn, int and date (days)
 * IntColumn, long LongColumn, time/timestamp/timestamptz (micros) TimestampColumn, float and
 * double DoubleColumn, string StringColumn, binary BinaryColumn, uuid UuidColumn, list
 * ListColumn, map MapColumn (keys are required), struct StructColumn.
 */
export function createTableRows(schema: IcebergSchema): TableRows {
  return new TableRowsImpl(schema);
}

/**
 * Drops whatever was appended since the last endRow(), nested values included: a converter
 * that fails half-way through a record calls it and the batch goes on without that record.
 */
export function discardPartialRow(rows: TableRows): void {
  if (!(rows instanceof TableRowsImpl)) throw new TypeError('not a TableRows of createTableRows()');
  rows.discardPartialRow();
}

// ---------------------------------------------------------------------------------------------
// Implementation

const INITIAL_CAPACITY_VALUES = 64;
const INITIAL_CAPACITY_BYTES = 1024;
/**
 * Past these sizes an array grows by a quarter instead of doubling. Builders keep their capacity
 * from file to file, so the slack of doubling (up to as much again as the rows need) would stay
 * for good: 48 MiB of buffered rows held up to 96 MiB. A quarter costs more copies, once, while
 * the builders first grow to their working size.
 */
const LARGE_CAPACITY_VALUES = 128 * 1024;
const LARGE_CAPACITY_BYTES = 1024 * 1024;
/** Arrow Utf8/Binary offsets are int32: one column of one batch holds less than 2 GiB. */
const MAX_COLUMN_BYTES = 0x7fffffff;
const UUID_SIZE_BYTES = 16;
/** Strings up to this many UTF-16 units are copied by a JS loop (faster than a native call). */
const SHORT_STRING_CHARS = 24;
/** Byte ranges up to this size are copied 4 bytes at a time through DataViews (no view object per copy). */
const VIEW_COPY_BYTES = 64;
const HEX_DIGITS = Buffer.from('0123456789abcdef');
const TWO_POW_32 = 4294967296;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

type GrowableArray = Uint8Array | Int32Array | Float32Array | Float64Array;

/**
 * A copy of the array with room for `length` values. The old array's memory is freed at once
 * (nothing else holds a view of a builder's arrays while rows are appended): left to the GC, a
 * worker held up to 64 MB of outgrown arrays until its next mark-compact.
 */
function grownCopy<T extends GrowableArray>(array: T, length: number): T {
  const next = new (array.constructor as new (length: number) => T)(length);
  next.set(array as ArrayLike<number>);
  freeIfOwned(array);
  return next;
}

/** At least `needed`: doubling from `current` (or `initial`), by a quarter from `largeAt` on. */
function grownSize(current: number, needed: number, initial: number, largeAt: number): number {
  let size = Math.max(current, initial);
  while (size < needed) size = size >= largeAt ? Math.ceil(size * 1.25) : size * 2;
  return size;
}

function nextCapacity(current: number, needed: number): number {
  return grownSize(current, needed, INITIAL_CAPACITY_VALUES, LARGE_CAPACITY_VALUES);
}

abstract class BaseColumn implements ColumnBuilder {
  readonly type: IcebergType;
  /** Dotted name for error messages (`attributes.value`, `events.element.name`). */
  readonly path: string;
  readonly required: boolean;
  length = 0;
  nullCount = 0;
  /** Slots the value arrays hold. */
  protected capacity = 0;
  /** Arrow validity bits, in use from the first null of a batch (null: all present). */
  private validity: Uint8Array | null = null;
  private validityStore: Uint8Array | null = null;

  constructor(type: IcebergType, path: string, required: boolean) {
    this.type = type;
    this.path = path;
    this.required = required;
  }

  appendNull(): void {
    if (this.required) throw new TypeError(`column ${this.path} is required: null appended`);
    const index = this.reserveOne();
    this.writeNullSlot(index);
    if (this.validity === null) this.startValidity(index);
    this.validity![index >>> 3] &= ~(1 << (index & 7));
    this.nullCount++;
    this.length = index + 1;
  }

  appendCopyOf(index: number): void {
    this.checkCopySource(index, index + 1);
    if (this.isNullAt(index)) this.appendNull();
    else this.appendValueCopy(index);
  }

  /** Appends copies of values [from, to), in order. */
  appendCopiesOf(from: number, to: number): void {
    this.checkCopySource(from, to);
    for (let i = from; i < to; i++) {
      if (this.isNullAt(i)) this.appendNull();
      else this.appendValueCopy(i);
    }
  }

  protected isNullAt(index: number): boolean {
    const validity = this.validity;
    return validity !== null && ((validity[index >>> 3]! >>> (index & 7)) & 1) === 0;
  }

  protected checkCopySource(from: number, to: number): void {
    if (!(from >= 0 && from <= to && to <= this.length)) {
      throw new RangeError(`column ${this.path}: cannot copy values ${from}..${to} of ${this.length}`);
    }
  }

  /** What goes under a null struct: null if allowed, else an empty or zero value. */
  appendAbsent(): void {
    if (this.required) this.appendDefault();
    else this.appendNull();
  }

  reset(): void {
    this.length = 0;
    this.nullCount = 0;
    this.validity = null;
    this.resetValues();
  }

  /** Drops the values from `length` on. */
  truncate(length: number): void {
    if (length > this.length) throw new Error(`column ${this.path}: cannot truncate ${this.length} values to ${length}`);
    const validity = this.validity;
    if (validity !== null) {
      for (let i = length; i < this.length; i++) if (((validity[i >>> 3]! >>> (i & 7)) & 1) === 0) this.nullCount--;
    }
    this.length = length;
    this.truncateValues(length);
  }

  /** Bytes of values, offsets and validity in use. */
  abstract usedBytes(): number;
  abstract buffers(): ColumnBuffers;
  /** Fills the value slot of a null (zero, or an empty range). */
  protected abstract writeNullSlot(index: number): void;
  protected abstract appendDefault(): void;
  /** Appends a copy of the present value `index`. */
  protected abstract appendValueCopy(index: number): void;
  protected abstract growValues(capacity: number): void;
  protected resetValues(): void {}
  /** Drops what values from `length` on left behind (bytes, child values, an open list). */
  protected truncateValues(_length: number): void {}

  /** Index of the next value, with room for it. */
  protected reserveOne(): number {
    const index = this.length;
    if (index === this.capacity) this.grow(index + 1);
    return index;
  }

  /** Room for `count` more values; returns the index of the first. */
  protected reserve(count: number): number {
    const index = this.length;
    if (index + count > this.capacity) this.grow(index + count);
    return index;
  }

  /** Marks value `index` present (a no-op while the batch has no null). */
  protected setValid(index: number): void {
    const validity = this.validity;
    if (validity !== null) validity[index >>> 3] |= 1 << (index & 7);
  }

  /** Validity of `count` values copied from `from` to `at` (nothing to do while the batch has no null). */
  protected copyValidity(from: number, at: number, count: number): void {
    const validity = this.validity;
    if (validity === null) return;
    for (let i = 0; i < count; i++) {
      const source = from + i;
      const target = at + i;
      if (((validity[source >>> 3]! >>> (source & 7)) & 1) === 1) {
        validity[target >>> 3] |= 1 << (target & 7);
      } else {
        validity[target >>> 3] &= ~(1 << (target & 7));
        this.nullCount++;
      }
    }
  }

  protected common(): BuffersCommon {
    const validity = this.nullCount === 0 ? null : this.validity!.subarray(0, (this.length + 7) >>> 3);
    return { length: this.length, nullCount: this.nullCount, validity };
  }

  private grow(needed: number): void {
    const capacity = nextCapacity(this.capacity, needed);
    this.growValues(capacity);
    this.capacity = capacity;
    if (this.validity !== null && this.validity.length < (capacity + 7) >>> 3) {
      this.validity = this.validityStore = grownCopy(this.validity, (capacity + 7) >>> 3);
    }
  }

  /** First null of the batch: values 0..length-1 were all present. */
  private startValidity(length: number): void {
    const sizeBytes = (this.capacity + 7) >>> 3;
    let store = this.validityStore;
    if (store === null || store.length < sizeBytes) store = this.validityStore = new Uint8Array(sizeBytes);
    store.fill(0xff, 0, (length + 7) >>> 3);
    this.validity = store;
  }
}

class BoolBuilder extends BaseColumn implements BoolColumn {
  private bits = new Uint8Array(0);

  append(value: boolean): void {
    const index = this.reserveOne();
    if (value) this.bits[index >>> 3] |= 1 << (index & 7);
    else this.bits[index >>> 3] &= ~(1 << (index & 7));
    this.setValid(index);
    this.length = index + 1;
  }
  protected writeNullSlot(index: number): void { this.bits[index >>> 3] &= ~(1 << (index & 7)); }
  protected appendDefault(): void { this.append(false); }
  protected appendValueCopy(index: number): void { this.append(((this.bits[index >>> 3]! >>> (index & 7)) & 1) === 1); }
  protected growValues(capacity: number): void { this.bits = grownCopy(this.bits, (capacity + 7) >>> 3); }
  usedBytes(): number { return (this.length + 7) >>> 3; }
  buffers(): ColumnBuffers {
    return { ...this.common(), kind: 'bool', bits: this.bits.subarray(0, (this.length + 7) >>> 3) };
  }
}

/** Iceberg int and date (days since 1970-01-01). */
class IntBuilder extends BaseColumn implements IntColumn {
  private values = new Int32Array(0);

  append(value: number): void {
    if ((value | 0) !== value) throw new RangeError(`column ${this.path}: ${value} is not a 32-bit integer`);
    const index = this.reserveOne();
    this.values[index] = value;
    this.setValid(index);
    this.length = index + 1;
  }
  protected writeNullSlot(index: number): void { this.values[index] = 0; }
  protected appendDefault(): void { this.append(0); }
  protected appendValueCopy(index: number): void { this.append(this.values[index]!); }
  protected growValues(capacity: number): void { this.values = grownCopy(this.values, capacity); }
  usedBytes(): number { return this.length * 4; }
  buffers(): ColumnBuffers {
    return { ...this.common(), kind: 'int32', values: this.values.subarray(0, this.length) };
  }
}

/** Iceberg long, time, timestamp and timestamptz: numbers are split into 32-bit words (no BigInt). */
class LongBuilder extends BaseColumn implements LongColumn, TimestampColumn {
  private words = new Int32Array(0);
  private bigints = new BigInt64Array(0);

  append(value: number | bigint): void {
    const index = this.reserveOne();
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) throw new RangeError(`column ${this.path}: ${value} is not a safe integer`);
      this.words[2 * index] = value;
      this.words[2 * index + 1] = Math.floor(value / TWO_POW_32);
    } else {
      if (value < INT64_MIN || value > INT64_MAX) throw new RangeError(`column ${this.path}: ${value} is not a 64-bit integer`);
      this.bigints[index] = value;
    }
    this.setValid(index);
    this.length = index + 1;
  }
  protected writeNullSlot(index: number): void { this.words[2 * index] = 0; this.words[2 * index + 1] = 0; }
  protected appendDefault(): void { this.append(0); }
  protected appendValueCopy(index: number): void {
    const at = this.reserveOne();
    this.words[2 * at] = this.words[2 * index]!;
    this.words[2 * at + 1] = this.words[2 * index + 1]!;
    this.setValid(at);
    this.length = at + 1;
  }
  protected growValues(capacity: number): void {
    this.words = grownCopy(this.words, capacity * 2);
    this.bigints = new BigInt64Array(this.words.buffer, 0, capacity);
  }
  usedBytes(): number { return this.length * 8; }
  buffers(): ColumnBuffers {
    const values = this.bigints.subarray(0, this.length);
    return { ...this.common(), kind: 'int64', values, words: this.words.subarray(0, this.length * 2) };
  }
}

class FloatBuilder extends BaseColumn implements DoubleColumn {
  private values = new Float32Array(0);

  append(value: number): void {
    const index = this.reserveOne();
    this.values[index] = value;
    this.setValid(index);
    this.length = index + 1;
  }
  protected writeNullSlot(index: number): void { this.values[index] = 0; }
  protected appendDefault(): void { this.append(0); }
  protected appendValueCopy(index: number): void { this.append(this.values[index]!); }
  protected growValues(capacity: number): void { this.values = grownCopy(this.values, capacity); }
  usedBytes(): number { return this.length * 4; }
  buffers(): ColumnBuffers {
    return { ...this.common(), kind: 'float32', values: this.values.subarray(0, this.length) };
  }
}

class DoubleBuilder extends BaseColumn implements DoubleColumn {
  private values = new Float64Array(0);

  append(value: number): void {
    const index = this.reserveOne();
    this.values[index] = value;
    this.setValid(index);
    this.length = index + 1;
  }
  protected writeNullSlot(index: number): void { this.values[index] = 0; }
  protected appendDefault(): void { this.append(0); }
  protected appendValueCopy(index: number): void { this.append(this.values[index]!); }
  protected growValues(capacity: number): void { this.values = grownCopy(this.values, capacity); }
  usedBytes(): number { return this.length * 8; }
  buffers(): ColumnBuffers {
    return { ...this.common(), kind: 'float64', values: this.values.subarray(0, this.length) };
  }
}

/** Variable-length bytes (string, binary): int32 offsets and one byte buffer. */
abstract class VarBytesBuilder extends BaseColumn {
  private offsets = new Int32Array(1);
  protected bytes: Buffer = Buffer.allocUnsafeSlow(0);
  private bytesView = new DataView(this.bytes.buffer, this.bytes.byteOffset, 0);
  /** The buffer last copied from and a view of it (a batch's values come from one buffer). */
  private source: Uint8Array | null = null;
  private sourceView = this.bytesView;
  /** Bytes in use: offsets[length]. */
  protected usedByteCount = 0;

  protected appendRange(source: Uint8Array, start: number, end: number): void {
    this.checkRange(source, start, end);
    const index = this.reserveOne();
    const sizeBytes = end - start;
    this.reserveBytes(sizeBytes);
    const position = this.usedByteCount;
    this.copyIn(source, start, end, position);
    this.endValue(index, position + sizeBytes);
  }

  protected checkRange(source: Uint8Array, start: number, end: number): void {
    if (!(start >= 0 && start <= end && end <= source.length)) {
      throw new RangeError(`column ${this.path}: byte range ${start}..${end} outside 0..${source.length}`);
    }
  }

  /**
   * Copies source[start, end) (source may be this.bytes, the ranges apart) to bytes[position..],
   * reserved. Returns the OR of the bytes copied (high bits clear: ASCII), or -1 for a long
   * range, copied natively and not looked at.
   */
  protected copyIn(source: Uint8Array, start: number, end: number, position: number): number {
    const sizeBytes = end - start;
    if (sizeBytes <= VIEW_COPY_BYTES) return copyWords(this.bytesView, position, this.viewOf(source), start, sizeBytes);
    if (source === this.bytes) this.bytes.copyWithin(position, start, end);
    else this.bytes.set(source.subarray(start, end), position);
    return -1;
  }

  private viewOf(source: Uint8Array): DataView {
    if (source === this.bytes) return this.bytesView;
    if (source !== this.source) {
      this.source = source;
      this.sourceView = new DataView(source.buffer, source.byteOffset, source.byteLength);
    }
    return this.sourceView;
  }

  /** Records value `index` as ending at byte `endPosition`. */
  protected endValue(index: number, endPosition: number): void {
    this.usedByteCount = endPosition;
    this.offsets[index + 1] = endPosition;
    this.setValid(index);
    this.length = index + 1;
  }

  protected reserveBytes(sizeBytes: number): void {
    const needed = this.usedByteCount + sizeBytes;
    if (needed > this.bytes.length) this.growBytes(needed);
  }

  private growBytes(needed: number): void {
    if (needed > MAX_COLUMN_BYTES) throw new RangeError(`column ${this.path}: over 2 GiB in one batch`);
    const capacity = grownSize(this.bytes.length, needed, INITIAL_CAPACITY_BYTES, LARGE_CAPACITY_BYTES);
    const next = Buffer.allocUnsafeSlow(Math.min(capacity, MAX_COLUMN_BYTES));
    next.set(this.bytes.subarray(0, this.usedByteCount));
    freeIfOwned(this.bytes);
    this.bytes = next;
    this.bytesView = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  protected writeNullSlot(index: number): void { this.offsets[index + 1] = this.usedByteCount; }
  protected appendDefault(): void {
    const index = this.reserveOne();
    this.endValue(index, this.usedByteCount);
  }
  protected appendValueCopy(index: number): void {
    const at = this.reserveOne();
    const sourceStart = this.offsets[index]!;
    const sizeBytes = this.offsets[index + 1]! - sourceStart;
    this.reserveBytes(sizeBytes);
    const position = this.usedByteCount;
    this.copyIn(this.bytes, sourceStart, sourceStart + sizeBytes, position);
    this.endValue(at, position + sizeBytes);
  }

  /** One copy of the bytes of values [from, to) and their offsets shifted; nulls stay null. */
  override appendCopiesOf(from: number, to: number): void {
    this.checkCopySource(from, to);
    const count = to - from;
    const at = this.reserve(count);
    const sourceStart = this.offsets[from]!;
    const sizeBytes = this.offsets[to]! - sourceStart;
    this.reserveBytes(sizeBytes);
    const position = this.usedByteCount;
    this.copyIn(this.bytes, sourceStart, sourceStart + sizeBytes, position);
    const offsets = this.offsets;
    const shift = position - sourceStart;
    for (let i = 0; i < count; i++) offsets[at + i + 1] = offsets[from + i + 1]! + shift;
    this.usedByteCount = position + sizeBytes;
    this.copyValidity(from, at, count);
    this.length = at + count;
  }
  protected growValues(capacity: number): void { this.offsets = grownCopy(this.offsets, capacity + 1); }
  protected override resetValues(): void {
    this.usedByteCount = 0;
    this.source = null; // not kept alive past its batch
    this.sourceView = this.bytesView;
  }
  protected override truncateValues(length: number): void { this.usedByteCount = this.offsets[length]!; }
  usedBytes(): number { return this.usedByteCount + this.length * 4; }
  buffers(): ColumnBuffers {
    const offsets = this.offsets.subarray(0, this.length + 1);
    const bytes = this.bytes.subarray(0, this.usedByteCount);
    return { ...this.common(), kind: 'bytes', offsets, bytes };
  }
}

class StringBuilder extends VarBytesBuilder implements StringColumn {
  append(value: string): void {
    const index = this.reserveOne();
    const length = value.length;
    this.reserveBytes(length * 3);
    const bytes = this.bytes;
    const position = this.usedByteCount;
    if (length <= SHORT_STRING_CHARS) {
      let i = 0;
      for (; i < length; i++) {
        const code = value.charCodeAt(i);
        if (code >= 0x80) break;
        bytes[position + i] = code;
      }
      this.endValue(index, position + (i === length ? length : bytes.write(value, position)));
    } else {
      this.endValue(index, position + bytes.write(value, position));
    }
  }

  appendUtf8(bytes: Uint8Array, start: number, end: number): void { this.appendRange(bytes, start, end); }

  /** Copied first (checked for ASCII on the way when short), then kept or replaced by its decoding. */
  appendText(source: Uint8Array, start: number, end: number): void {
    this.checkRange(source, start, end);
    const index = this.reserveOne();
    const sizeBytes = end - start;
    this.reserveBytes(sizeBytes);
    const position = this.usedByteCount;
    const bits = this.copyIn(source, start, end, position);
    if ((bits & 0x80808080) === 0 || isUtf8(source.subarray(start, end))) this.endValue(index, position + sizeBytes);
    else this.append(this.bytes.toString('utf8', position, position + sizeBytes));
  }

  appendHex(source: Uint8Array, start: number, end: number): void {
    this.checkRange(source, start, end);
    const index = this.reserveOne();
    const sizeBytes = 2 * (end - start);
    this.reserveBytes(sizeBytes);
    const bytes = this.bytes;
    const position = this.usedByteCount;
    for (let i = start, at = position; i < end; i++, at += 2) {
      const b = source[i]!;
      bytes[at] = HEX_DIGITS[b >>> 4]!;
      bytes[at + 1] = HEX_DIGITS[b & 15]!;
    }
    this.endValue(index, position + sizeBytes);
  }
}

/** True when bytes [start, end) are valid UTF-8 (ASCII answered without leaving JS). */
export function isValidUtf8(bytes: Uint8Array, start: number, end: number): boolean {
  return isAscii(bytes, start, end) || isUtf8(bytes.subarray(start, end));
}

/** True when bytes [start, end) are all below 0x80 (four at a time: fewer branches than one by one). */
function isAscii(bytes: Uint8Array, start: number, end: number): boolean {
  let bits = 0;
  let i = start;
  for (; i + 4 <= end; i += 4) bits |= bytes[i]! | bytes[i + 1]! | bytes[i + 2]! | bytes[i + 3]!;
  for (; i < end; i++) bits |= bytes[i]!;
  return bits < 0x80;
}

/** Copies `sizeBytes` bytes 4 at a time; returns the OR of the words and bytes copied. */
function copyWords(target: DataView, position: number, source: DataView, start: number, sizeBytes: number): number {
  let bits = 0;
  let i = 0;
  for (; i + 4 <= sizeBytes; i += 4) {
    const word = source.getInt32(start + i, true);
    bits |= word;
    target.setInt32(position + i, word, true);
  }
  for (; i < sizeBytes; i++) {
    const b = source.getUint8(start + i);
    bits |= b;
    target.setUint8(position + i, b);
  }
  return bits;
}

class BinaryBuilder extends VarBytesBuilder implements BinaryColumn {
  append(bytes: Uint8Array, start = 0, end = bytes.length): void { this.appendRange(bytes, start, end); }
}

/** Iceberg uuid: 16-byte values (Arrow FixedSizeBinary(16)). */
class UuidBuilder extends BaseColumn implements UuidColumn {
  private bytes = new Uint8Array(0);

  append(source: Uint8Array, start = 0, end = source.length): void {
    if (end - start !== UUID_SIZE_BYTES || start < 0 || end > source.length) {
      throw new RangeError(`column ${this.path}: a uuid is ${UUID_SIZE_BYTES} bytes, got range ${start}..${end}`);
    }
    const index = this.reserveOne();
    const position = index * UUID_SIZE_BYTES;
    for (let i = 0; i < UUID_SIZE_BYTES; i++) this.bytes[position + i] = source[start + i]!;
    this.setValid(index);
    this.length = index + 1;
  }
  appendString(text: string): void {
    const hex = text.length === 36 ? text.replace(/-/g, '') : '';
    if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`column ${this.path}: not a uuid: ${text}`);
    this.append(Buffer.from(hex, 'hex'));
  }
  protected writeNullSlot(index: number): void {
    this.bytes.fill(0, index * UUID_SIZE_BYTES, (index + 1) * UUID_SIZE_BYTES);
  }
  protected appendDefault(): void { this.append(new Uint8Array(UUID_SIZE_BYTES)); }
  protected appendValueCopy(index: number): void {
    const at = this.reserveOne();
    this.bytes.copyWithin(at * UUID_SIZE_BYTES, index * UUID_SIZE_BYTES, (index + 1) * UUID_SIZE_BYTES);
    this.setValid(at);
    this.length = at + 1;
  }
  protected growValues(capacity: number): void { this.bytes = grownCopy(this.bytes, capacity * UUID_SIZE_BYTES); }
  usedBytes(): number { return this.length * UUID_SIZE_BYTES; }
  buffers(): ColumnBuffers {
    const bytes = this.bytes.subarray(0, this.length * UUID_SIZE_BYTES);
    return { ...this.common(), kind: 'fixed', widthBytes: UUID_SIZE_BYTES, bytes };
  }
}

/** Offsets into a child builder, shared by list and map. */
abstract class NestedBuilder extends BaseColumn {
  protected offsets = new Int32Array(1);
  private open = false;

  start(): void {
    if (this.open) throw new Error(`column ${this.path}: start() called twice without end()`);
    this.open = true;
  }

  end(): void {
    if (!this.open) throw new Error(`column ${this.path}: end() without start()`);
    this.open = false;
    const entryCount = this.entryCount();
    const index = this.reserveOne();
    this.offsets[index + 1] = entryCount;
    this.setValid(index);
    this.length = index + 1;
  }

  /** Child values appended so far (checks that the children agree). */
  protected abstract entryCount(): number;

  protected writeNullSlot(index: number): void {
    if (this.open) throw new Error(`column ${this.path}: appendNull() between start() and end()`);
    this.offsets[index + 1] = this.offsets[index]!;
  }
  protected appendDefault(): void {
    this.start();
    this.end();
  }
  protected growValues(capacity: number): void { this.offsets = grownCopy(this.offsets, capacity + 1); }
  protected override resetValues(): void { this.open = false; }
  protected override truncateValues(_length: number): void { this.open = false; }

  protected checkedOffsets(): Int32Array {
    if (this.open) throw new Error(`column ${this.path}: a value was started and not ended`);
    const offsets = this.offsets.subarray(0, this.length + 1);
    const entryCount = this.entryCount();
    if (offsets[this.length] !== entryCount) {
      throw new Error(`column ${this.path}: ${entryCount} entries appended outside start()/end()`);
    }
    return offsets;
  }
}

class ListBuilder extends NestedBuilder implements ListColumn {
  readonly element: BaseColumn;

  constructor(type: IcebergListType, path: string, required: boolean) {
    super(type, path, required);
    this.element = createColumn(type.element, `${path}.element`, type['element-required']);
  }
  protected entryCount(): number { return this.element.length; }
  protected appendValueCopy(index: number): void {
    this.start();
    this.element.appendCopiesOf(this.offsets[index]!, this.offsets[index + 1]!);
    this.end();
  }
  override reset(): void { super.reset(); this.element.reset(); }
  protected override truncateValues(length: number): void {
    super.truncateValues(length);
    this.element.truncate(this.offsets[length]!);
  }
  usedBytes(): number { return this.length * 4 + this.element.usedBytes(); }
  buffers(): ColumnBuffers {
    const offsets = this.checkedOffsets();
    return { ...this.common(), kind: 'list', offsets, element: this.element.buffers() };
  }
}

class MapBuilder extends NestedBuilder implements MapColumn {
  readonly key: BaseColumn;
  readonly value: BaseColumn;

  constructor(type: IcebergMapType, path: string, required: boolean) {
    super(type, path, required);
    this.key = createColumn(type.key, `${path}.key`, true);
    this.value = createColumn(type.value, `${path}.value`, type['value-required']);
  }
  protected entryCount(): number {
    if (this.key.length !== this.value.length) {
      throw new Error(`column ${this.path}: ${this.key.length} keys but ${this.value.length} values`);
    }
    return this.key.length;
  }
  protected appendValueCopy(index: number): void {
    const from = this.offsets[index]!;
    const to = this.offsets[index + 1]!;
    this.start();
    this.key.appendCopiesOf(from, to);
    this.value.appendCopiesOf(from, to);
    this.end();
  }
  override reset(): void { super.reset(); this.key.reset(); this.value.reset(); }
  protected override truncateValues(length: number): void {
    super.truncateValues(length);
    this.key.truncate(Math.min(this.offsets[length]!, this.key.length));
    this.value.truncate(Math.min(this.offsets[length]!, this.value.length));
  }
  usedBytes(): number { return this.length * 4 + this.key.usedBytes() + this.value.usedBytes(); }
  buffers(): ColumnBuffers {
    const offsets = this.checkedOffsets();
    return { ...this.common(), kind: 'map', offsets, key: this.key.buffers(), value: this.value.buffers() };
  }
}

class StructBuilder extends BaseColumn implements StructColumn {
  readonly children: BaseColumn[];
  private readonly byName = new Map<string, BaseColumn>();

  constructor(type: IcebergStructType, path: string, required: boolean) {
    super(type, path, required);
    this.children = type.fields.map((field) => {
      const child = createColumn(field.type, path === '' ? field.name : `${path}.${field.name}`, field.required);
      this.byName.set(field.name, child);
      return child;
    });
  }

  field(name: string): ColumnBuilder {
    const child = this.byName.get(name);
    if (child === undefined) throw new Error(this.path === '' ? `the table has no field ${name}` : `struct ${this.path} has no field ${name}`);
    return child;
  }
  appendValid(): void {
    const index = this.reserveOne();
    this.setValid(index);
    this.length = index + 1;
  }
  /** Throws unless every child (and every child struct's child) holds `length` values. */
  checkChildren(length: number): void {
    for (const child of this.children) {
      if (child.length !== length) {
        throw new Error(`column ${child.path} has ${child.length} values, expected ${length}`);
      }
      if (child instanceof StructBuilder) child.checkChildren(length);
    }
  }
  protected writeNullSlot(): void {
    for (const child of this.children) child.appendAbsent();
  }
  protected appendDefault(): void {
    this.appendValid();
    for (const child of this.children) child.appendAbsent();
  }
  protected appendValueCopy(index: number): void {
    this.appendValid();
    for (const child of this.children) child.appendCopyOf(index);
  }
  protected growValues(): void {}
  protected override truncateValues(length: number): void {
    for (const child of this.children) child.truncate(Math.min(length, child.length));
  }
  override reset(): void {
    super.reset();
    for (const child of this.children) child.reset();
  }
  usedBytes(): number {
    let sizeBytes = 0;
    for (const child of this.children) sizeBytes += child.usedBytes();
    return sizeBytes;
  }
  buffers(): ColumnBuffers {
    this.checkChildren(this.length);
    return { ...this.common(), kind: 'struct', children: this.children.map((child) => child.buffers()) };
  }
}

function createColumn(type: IcebergType, path: string, required: boolean): BaseColumn {
  if (typeof type === 'object') {
    if (type.type === 'struct') return new StructBuilder(type, path, required);
    if (type.type === 'list') return new ListBuilder(type, path, required);
    if (type.type === 'map') return new MapBuilder(type, path, required);
  }
  switch (type) {
    case 'boolean': return new BoolBuilder(type, path, required);
    case 'int': case 'date': return new IntBuilder(type, path, required);
    case 'long': case 'time': case 'timestamp': case 'timestamptz': return new LongBuilder(type, path, required);
    case 'float': return new FloatBuilder(type, path, required);
    case 'double': return new DoubleBuilder(type, path, required);
    case 'string': return new StringBuilder(type, path, required);
    case 'binary': return new BinaryBuilder(type, path, required);
    case 'uuid': return new UuidBuilder(type, path, required);
  }
  throw new TypeError(`column ${path}: unsupported Iceberg type ${JSON.stringify(type)}`);
}

class TableRowsImpl implements TableRows {
  readonly schema: IcebergSchema;
  rowCount = 0;
  private readonly root: StructBuilder;
  private readonly columns: BaseColumn[];
  private readonly structColumns: StructBuilder[];

  constructor(schema: IcebergSchema) {
    this.schema = schema;
    this.root = new StructBuilder(schema, '', true);
    this.columns = this.root.children;
    this.structColumns = this.columns.filter((column) => column instanceof StructBuilder);
  }

  get byteSize(): number { return this.root.usedBytes(); }

  column(name: string): ColumnBuilder {
    return this.root.field(name);
  }

  endRow(): void {
    const expected = this.rowCount + 1;
    const columns = this.columns;
    for (let i = 0; i < columns.length; i++) {
      const column = columns[i]!;
      if (column.length !== expected) {
        throw new Error(`row ${this.rowCount}: column ${column.path} has ${column.length} values, expected ${expected}`);
      }
    }
    for (const column of this.structColumns) column.checkChildren(expected);
    this.rowCount = expected;
  }

  reset(): void {
    this.root.reset();
    this.rowCount = 0;
  }

  discardPartialRow(): void {
    for (const column of this.columns) column.truncate(Math.min(this.rowCount, column.length));
  }
}
