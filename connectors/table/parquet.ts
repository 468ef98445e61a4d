// Parquet files from column builders (connectors/table/columns.ts), for Iceberg data files.
// The builders' buffers go to parquet-wasm (the Rust parquet writer) one row group at a time,
// each as an Arrow IPC stream (arrow-ipc.ts: offsets, values and validity bitmaps copied once, no
// per-value work) into its streaming writer, and the bytes of the Parquet file come back. Every
// Parquet column carries its Iceberg field id (Arrow field metadata PARQUET:field_id, which the
// Rust writer turns into the Parquet field_id), nested fields included.
//
// Alongside, the Iceberg column metrics of the top-level primitive columns: value and null
// counts, and lower/upper bounds in Iceberg's single-value serialization (spec Appendix D):
// int/date 4-byte LE, long/time/timestamp(tz) 8-byte LE, float/double IEEE LE (NaN skipped),
// boolean 1 byte, string UTF-8 truncated to 16 code points (Iceberg's default metrics mode
// truncate(16): the lower bound is the truncated minimum, the upper bound the truncated maximum
// with its last code point incremented). Binary and uuid columns get counts, no bounds.
//
// Limits of parquet-wasm 0.8: no zstd level setting (zstd is written at the Rust crate's default
// level 1 whatever options.zstdLevel says); its wasm memory never shrinks, so nothing is given
// to it whole: it holds a row group or two (it grew to about 4x the builder bytes of a file when
// files were written in one call, and to the decoded size of all inputs in compaction). A uuid is a
// FIXED_LEN_BYTE_ARRAY(16) without the UUID logical type (the build lacks Arrow extension
// types), and map entries are a repeated group named `entries` (Arrow JS's fixed name; Iceberg
// readers resolve fields by id, not by name).

import * as arrow from 'apache-arrow';
import {
  Compression, EnabledStatistics, RecordBatch as WasmRecordBatch, Table as WasmTable, WriterPropertiesBuilder, transformParquetStream,
} from 'parquet-wasm';
import { ipcStream } from './arrow-ipc.ts';
import { columnBuffers, type ColumnBuffers, type TableRows } from './columns.ts';
import type { IcebergField, IcebergSchema, IcebergType } from './iceberg/types.ts';
import { freeIfOwned, ownsBuffer } from '../../src/storage/buffers.ts';

export interface ParquetWriteOptions {
  compression: 'zstd' | 'snappy' | 'none';
  rowGroupRows: number;
  /**
   * Dictionary encoding (default off). On log rows with zstd, off writes 1.3-1.6x faster and
   * 10% smaller files (bench/table-parquet.ts): the Rust writer fills a dictionary for every
   * column, even for ids that never repeat, and zstd compresses repeated values without one.
   */
  dictionary?: boolean;
}

/** A Parquet file as the writer gave it out, in pieces (joined only by whoever needs one buffer). */
export interface ParquetChunks {
  chunks: Uint8Array[];
  sizeBytes: number;
}

export interface ColumnStats { valueCount: number; nullCount: number; lowerBound?: Buffer; upperBound?: Buffer }

export interface ParquetFile {
  bytes: Uint8Array;
  rowCount: number;
  /** By Iceberg field id, for the top-level primitive columns. */
  stats: Map<number, ColumnStats>;
  /** Not computed (would need the Parquet footer parsed back). */
  columnSizes?: Map<number, number>;
}

const FIELD_ID_KEY = 'PARQUET:field_id';
const UUID_SIZE_BYTES = 16;
const CREATED_BY = 'wharf (parquet-rs via parquet-wasm)';
/** Values (or levels) the Rust writer takes per step (its default, 1024, costs ~10% more time). */
const WRITE_BATCH_VALUES = 8192;
const COMPRESSION_CODECS = {
  zstd: Compression.ZSTD,
  snappy: Compression.SNAPPY,
  none: Compression.UNCOMPRESSED,
} as const;

/**
 * Writes the complete rows of `rows` (or those at the row indices of `selection`, in that order)
 * as one Parquet file. `rows` is left as it is; the caller resets it. The rows go to the writer
 * one row group at a time (see encodeParquet), so its memory is a row group's, not the file's.
 */
export async function writeParquet(rows: TableRows, options: ParquetWriteOptions, selection?: ArrayLike<number>): Promise<ParquetFile> {
  const fields = rows.schema.fields;
  let columns = fields.map((field) => completeBuffers(rows, field));
  let rowCount = rows.rowCount;
  const taken = selection !== undefined && !coversAllRows(selection, rowCount);
  if (taken) {
    const indices = checkedSelection(selection, rowCount);
    columns = columns.map((column) => takeBuffers(column, indices));
    rowCount = indices.length;
  }
  const schema = arrowSchema(rows.schema);
  const stats = new Map<number, ColumnStats>();
  fields.forEach((field, i) => {
    const columnStats = primitiveStats(field.type, columns[i]!);
    if (columnStats !== undefined) stats.set(field.id, columnStats);
  });
  const rowGroupRows = options.rowGroupRows;
  // Runs only once encodeParquet has checked rowGroupRows.
  function* rowGroups(): Generator<WasmRecordBatch> {
    // No rows still makes one (empty) batch: the writer takes its schema from the first batch.
    for (let start = 0; start === 0 || start < rowCount; start += rowGroupRows) {
      const end = Math.min(rowCount, start + rowGroupRows);
      const slice = start === 0 && end === rowCount ? columns : columns.map((column) => sliceBuffers(column, start, end));
      // fromIPCStream copies the stream into wasm memory before the next slice overwrites it.
      yield* recordBatchesOf(WasmTable.fromIPCStream(ipcStream(schema, slice, end - start)));
    }
  }
  try {
    const { chunks, sizeBytes } = await encodeParquet(rowGroups(), schema, options);
    return { bytes: joinChunks(chunks, sizeBytes), rowCount, stats };
  } finally {
    // The selected rows' copies (a flush of rows of several partitions copies them all, one
    // group at a time): freed now rather than left to the thread's next mark-compact, which the
    // table worker reaches only every 64 MB or so of garbage.
    if (taken) for (const column of columns) freeColumnBuffers(column);
  }
}

/** Frees the arrays of a column made by takeBuffers (its own memory; nothing reads them after). */
function freeColumnBuffers(column: ColumnBuffers): void {
  if (column.validity !== null) freeIfOwned(column.validity);
  switch (column.kind) {
    case 'bool': freeIfOwned(column.bits); return;
    case 'int32': case 'float32': case 'float64': freeIfOwned(column.values); return;
    case 'int64': freeIfOwned(column.words); return; // values is the same memory
    case 'bytes': freeIfOwned(column.offsets); freeIfOwned(column.bytes); return;
    case 'fixed': freeIfOwned(column.bytes); return;
    case 'list': freeIfOwned(column.offsets); freeColumnBuffers(column.element); return;
    case 'map': freeIfOwned(column.offsets); freeColumnBuffers(column.key); freeColumnBuffers(column.value); return;
    case 'struct': for (const child of column.children) freeColumnBuffers(child); return;
  }
}

/** One buffer of its own (never a slice of Node's shared pool: the worker transfers it). */
function joinChunks(chunks: readonly Uint8Array[], sizeBytes: number): Uint8Array {
  if (chunks.length === 1 && ownsBuffer(chunks[0]!)) return chunks[0]!;
  const joined = new Uint8Array(sizeBytes);
  let position = 0;
  for (const chunk of chunks) {
    joined.set(chunk, position);
    position += chunk.byteLength;
  }
  return joined;
}

function checkRowGroupRows(options: ParquetWriteOptions): void {
  if (!Number.isInteger(options.rowGroupRows) || options.rowGroupRows < 1) {
    throw new RangeError(`rowGroupRows must be a positive integer, got ${options.rowGroupRows}`);
  }
}

/** The table's record batches, each on its own (the table's memory is given back). */
export function recordBatchesOf(table: WasmTable): WasmRecordBatch[] {
  try {
    return table.recordBatches();
  } finally {
    table.free();
  }
}

function completeBuffers(rows: TableRows, field: IcebergField): ColumnBuffers {
  const buffers = columnBuffers(rows.column(field.name));
  if (buffers.length !== rows.rowCount) {
    throw new Error(`column ${field.name} has ${buffers.length} values for ${rows.rowCount} rows (a row not ended?)`);
  }
  return buffers;
}

/**
 * Writes the record batches of `batches` (in wasm memory, all of `schema`, which carries the
 * field ids) as one Parquet file with these options, through parquet-wasm's streaming writer: a
 * batch is taken only when the writer wants the next one, and the writer keeps only the row group
 * it is filling, so wasm memory holds about a row group whatever the file's size (the one-shot
 * writeParquet held the whole table and grew wasm memory, which never shrinks, to about four
 * times it). Top-level primitive columns get Parquet's page and chunk statistics; the leaves of
 * maps, lists and structs none (computing them was a tenth of the encoding time of a span, and
 * readers do not prune on attribute keys and values). `batches` may be async (compaction reads
 * its inputs as it goes). With a sink, the file's chunks go to it as the writer makes them (the
 * writer waits while the sink does) instead of being kept: `chunks` is then empty.
 */
export async function encodeParquet(
  batches: Iterator<WasmRecordBatch> | AsyncIterator<WasmRecordBatch>,
  schema: arrow.Schema,
  options: ParquetWriteOptions,
  sink?: (chunk: Uint8Array) => Promise<void>,
): Promise<ParquetChunks> {
  checkRowGroupRows(options);
  let builder = new WriterPropertiesBuilder()
    .setCompression(COMPRESSION_CODECS[options.compression])
    .setMaxRowGroupSize(options.rowGroupRows)
    .setDictionaryEnabled(options.dictionary ?? false)
    .setWriteBatchSize(WRITE_BATCH_VALUES)
    .setStatisticsEnabled(EnabledStatistics.None)
    .setCreatedBy(CREATED_BY);
  for (const field of schema.fields) {
    if (!isNested(field.type)) builder = builder.setColumnStatisticsEnabled(field.name, EnabledStatistics.Page);
  }
  // The writer ends its output quietly when its input stream fails, so the failure is kept
  // here, and a file is returned only if every batch was taken.
  let failure: { error: unknown } | undefined;
  let finished = false;
  let anyBatch = false;
  const source = new ReadableStream<WasmRecordBatch>({
    async pull(controller) {
      try {
        const next = await batches.next();
        if (next.done !== true) {
          anyBatch = true;
          controller.enqueue(next.value);
        } else if (!anyBatch) {
          throw new Error('no record batch to write (the writer takes its schema from the first)');
        } else {
          finished = true;
          controller.close();
        }
      } catch (error) {
        failure = { error };
        controller.error(error);
      }
    },
  }, { highWaterMark: 0 });
  const chunks: Uint8Array[] = [];
  let sizeBytes = 0;
  try {
    // The properties are consumed (freed) by the writer.
    const output = await transformParquetStream(source, builder.build()) as ReadableStream<Uint8Array>;
    for await (const chunk of output) {
      sizeBytes += chunk.byteLength;
      if (sink === undefined) chunks.push(chunk);
      else await sink(chunk);
    }
  } catch (error) {
    throw failure?.error ?? error;
  } finally {
    await batches.return?.();
  }
  if (failure !== undefined) throw failure.error;
  if (!finished) throw new Error('the Parquet writer stopped before the last record batch');
  return { chunks, sizeBytes };
}

// ---------------------------------------------------------------------------------------------
// Arrow schema and vectors

const arrowSchemas = new WeakMap<IcebergSchema, arrow.Schema>();

function arrowSchema(schema: IcebergSchema): arrow.Schema {
  let cached = arrowSchemas.get(schema);
  if (cached === undefined) {
    cached = new arrow.Schema(schema.fields.map(arrowField));
    arrowSchemas.set(schema, cached);
  }
  return cached;
}

function withFieldId(name: string, type: arrow.DataType, nullable: boolean, id: number): arrow.Field {
  return new arrow.Field(name, type, nullable, new Map([[FIELD_ID_KEY, String(id)]]));
}

function arrowField(field: IcebergField): arrow.Field {
  return withFieldId(field.name, arrowType(field.type), !field.required, field.id);
}

function isNested(type: arrow.DataType): boolean {
  return arrow.DataType.isStruct(type) || arrow.DataType.isList(type) || arrow.DataType.isMap(type);
}

function arrowType(type: IcebergType): arrow.DataType {
  if (typeof type === 'object') {
    switch (type.type) {
      case 'struct':
        return new arrow.Struct(type.fields.map(arrowField));
      case 'list':
        return new arrow.List(withFieldId('element', arrowType(type.element), !type['element-required'], type['element-id']));
      case 'map': {
        const key = withFieldId('key', arrowType(type.key), false, type['key-id']);
        const value = withFieldId('value', arrowType(type.value), !type['value-required'], type['value-id']);
        // Arrow JS names the entries `entries` whatever it is given (Iceberg's own writer says
        // key_value); readers find map fields by field id.
        const entries = new arrow.Struct<{ key: arrow.DataType; value: arrow.DataType }>([key, value]);
        return new arrow.Map_(new arrow.Field('entries', entries, false));
      }
    }
  }
  switch (type) {
    case 'boolean': return new arrow.Bool();
    case 'int': return new arrow.Int32();
    case 'long': return new arrow.Int64();
    case 'float': return new arrow.Float32();
    case 'double': return new arrow.Float64();
    case 'date': return new arrow.DateDay();
    case 'time': return new arrow.TimeMicrosecond();
    case 'timestamp': return new arrow.TimestampMicrosecond(null);
    case 'timestamptz': return new arrow.TimestampMicrosecond('UTC');
    case 'string': return new arrow.Utf8();
    case 'binary': return new arrow.Binary();
    case 'uuid': return new arrow.FixedSizeBinary(UUID_SIZE_BYTES);
  }
  throw new TypeError(`unsupported Iceberg type ${JSON.stringify(type)}`);
}

// ---------------------------------------------------------------------------------------------
// Row selection (a partition's rows out of a batch): a gather over every buffer

function coversAllRows(selection: ArrayLike<number>, rowCount: number): boolean {
  if (selection.length !== rowCount) return false;
  for (let i = 0; i < rowCount; i++) if (selection[i] !== i) return false;
  return true;
}

function checkedSelection(selection: ArrayLike<number>, rowCount: number): Int32Array {
  const indices = Int32Array.from(selection);
  for (let i = 0; i < indices.length; i++) {
    const row = indices[i]!;
    if (row < 0 || row >= rowCount || row !== selection[i]) throw new RangeError(`selection: no row ${selection[i]}`);
  }
  return indices;
}

function takeBuffers(column: ColumnBuffers, indices: Int32Array): ColumnBuffers {
  const common = commonOf(indices.length, column.validity === null ? null : takeBits(column.validity, indices));
  switch (column.kind) {
    case 'bool': return { ...common, kind: 'bool', bits: takeBits(column.bits, indices) };
    case 'int32': return { ...common, kind: 'int32', values: gather(column.values, indices, new Int32Array(indices.length)) };
    case 'float32': return { ...common, kind: 'float32', values: gather(column.values, indices, new Float32Array(indices.length)) };
    case 'float64': return { ...common, kind: 'float64', values: gather(column.values, indices, new Float64Array(indices.length)) };
    case 'int64': {
      const words = new Int32Array(indices.length * 2);
      for (let i = 0; i < indices.length; i++) {
        words[2 * i] = column.words[2 * indices[i]!]!;
        words[2 * i + 1] = column.words[2 * indices[i]! + 1]!;
      }
      return { ...common, kind: 'int64', words, values: new BigInt64Array(words.buffer) };
    }
    case 'fixed': {
      const width = column.widthBytes;
      const bytes = new Uint8Array(indices.length * width);
      indices.forEach((row, i) => bytes.set(column.bytes.subarray(row * width, (row + 1) * width), i * width));
      return { ...common, kind: 'fixed', widthBytes: width, bytes };
    }
    case 'bytes': {
      const offsets = takeOffsets(column.offsets, indices);
      const bytes = new Uint8Array(offsets[indices.length]!);
      for (let i = 0; i < indices.length; i++) {
        bytes.set(column.bytes.subarray(column.offsets[indices[i]!]!, column.offsets[indices[i]! + 1]!), offsets[i]!);
      }
      return { ...common, kind: 'bytes', offsets, bytes };
    }
    case 'list': {
      const offsets = takeOffsets(column.offsets, indices);
      return { ...common, kind: 'list', offsets, element: takeBuffers(column.element, childRows(column.offsets, indices, offsets)) };
    }
    case 'map': {
      const offsets = takeOffsets(column.offsets, indices);
      const entries = childRows(column.offsets, indices, offsets);
      return { ...common, kind: 'map', offsets, key: takeBuffers(column.key, entries), value: takeBuffers(column.value, entries) };
    }
    case 'struct':
      return { ...common, kind: 'struct', children: column.children.map((child) => takeBuffers(child, indices)) };
  }
}

/** Length, null count and validity (none when no value is null) of `length` taken or sliced values. */
function commonOf(length: number, validity: Uint8Array | null): { length: number; nullCount: number; validity: Uint8Array | null } {
  const nullCount = validity === null ? 0 : length - countSetBits(validity, length);
  return { length, nullCount, validity: nullCount === 0 ? null : validity };
}

function gather<T extends Int32Array | Float32Array | Float64Array>(source: T, indices: Int32Array, target: T): T {
  for (let i = 0; i < indices.length; i++) target[i] = source[indices[i]!]!;
  return target;
}

function takeBits(bits: Uint8Array, indices: Int32Array): Uint8Array {
  const taken = new Uint8Array((indices.length + 7) >>> 3);
  for (let i = 0; i < indices.length; i++) {
    const row = indices[i]!;
    if ((bits[row >>> 3]! >>> (row & 7)) & 1) taken[i >>> 3]! |= 1 << (i & 7);
  }
  return taken;
}

function countSetBits(bits: Uint8Array, length: number): number {
  let count = 0;
  for (let i = 0; i < length; i++) count += (bits[i >>> 3]! >>> (i & 7)) & 1;
  return count;
}

/** Offsets of the taken variable-length values. */
function takeOffsets(offsets: Int32Array, indices: Int32Array): Int32Array {
  const taken = new Int32Array(indices.length + 1);
  for (let i = 0; i < indices.length; i++) {
    const row = indices[i]!;
    taken[i + 1] = taken[i]! + offsets[row + 1]! - offsets[row]!;
  }
  return taken;
}

/** The child indices (list elements, map entries) under the taken rows, in order. */
function childRows(offsets: Int32Array, indices: Int32Array, takenOffsets: Int32Array): Int32Array {
  const children = new Int32Array(takenOffsets[indices.length]!);
  let next = 0;
  for (let i = 0; i < indices.length; i++) {
    const row = indices[i]!;
    for (let child = offsets[row]!; child < offsets[row + 1]!; child++) children[next++] = child;
  }
  return children;
}

// ---------------------------------------------------------------------------------------------
// Row ranges (a row group's rows out of a batch): views where Arrow's layout allows, so only
// offsets (rebased to start at 0) and bitmaps that do not start on a byte are copied

function sliceBuffers(column: ColumnBuffers, start: number, end: number): ColumnBuffers {
  const length = end - start;
  const common = commonOf(length, column.validity === null ? null : sliceBits(column.validity, start, length));
  switch (column.kind) {
    case 'bool': return { ...common, kind: 'bool', bits: sliceBits(column.bits, start, length) };
    case 'int32': return { ...common, kind: 'int32', values: column.values.subarray(start, end) };
    case 'float32': return { ...common, kind: 'float32', values: column.values.subarray(start, end) };
    case 'float64': return { ...common, kind: 'float64', values: column.values.subarray(start, end) };
    case 'int64': return { ...common, kind: 'int64', values: column.values.subarray(start, end), words: column.words.subarray(2 * start, 2 * end) };
    case 'fixed': return { ...common, kind: 'fixed', widthBytes: column.widthBytes, bytes: column.bytes.subarray(start * column.widthBytes, end * column.widthBytes) };
    case 'bytes': return { ...common, kind: 'bytes', offsets: rebasedOffsets(column.offsets, start, end), bytes: column.bytes.subarray(column.offsets[start]!, column.offsets[end]!) };
    case 'list': {
      const [from, to] = [column.offsets[start]!, column.offsets[end]!];
      return { ...common, kind: 'list', offsets: rebasedOffsets(column.offsets, start, end), element: sliceBuffers(column.element, from, to) };
    }
    case 'map': {
      const [from, to] = [column.offsets[start]!, column.offsets[end]!];
      return { ...common, kind: 'map', offsets: rebasedOffsets(column.offsets, start, end), key: sliceBuffers(column.key, from, to), value: sliceBuffers(column.value, from, to) };
    }
    case 'struct':
      return { ...common, kind: 'struct', children: column.children.map((child) => sliceBuffers(child, start, end)) };
  }
}

function rebasedOffsets(offsets: Int32Array, start: number, end: number): Int32Array {
  const rebased = offsets.slice(start, end + 1);
  const base = offsets[start]!;
  if (base !== 0) for (let i = 0; i < rebased.length; i++) rebased[i]! -= base;
  return rebased;
}

function sliceBits(bits: Uint8Array, start: number, length: number): Uint8Array {
  if ((start & 7) === 0) return bits.subarray(start >>> 3, (start + length + 7) >>> 3);
  const sliced = new Uint8Array((length + 7) >>> 3);
  for (let i = 0; i < length; i++) {
    const row = start + i;
    if ((bits[row >>> 3]! >>> (row & 7)) & 1) sliced[i >>> 3]! |= 1 << (i & 7);
  }
  return sliced;
}

// ---------------------------------------------------------------------------------------------
// Iceberg metrics of top-level primitive columns

/** Strings bounds keep 16 code points (Iceberg's default truncate(16)); they fit in 64 bytes. */
const STRING_BOUND_CODE_POINTS = 16;
const STRING_COMPARE_BYTES = STRING_BOUND_CODE_POINTS * 4;
const MAX_CODE_POINT = 0x10ffff;

function primitiveStats(type: IcebergType, column: ColumnBuffers): ColumnStats | undefined {
  if (typeof type === 'object') return undefined;
  const stats: ColumnStats = { valueCount: column.length, nullCount: column.nullCount };
  if (column.nullCount === column.length) return stats;
  let bounds: [Buffer, Buffer | undefined] | undefined;
  switch (column.kind) {
    case 'int32': bounds = int32Bounds(column.values, column.validity); break;
    case 'int64': bounds = int64Bounds(column.words, column.validity); break;
    case 'float32': bounds = floatBounds(column.values, column.validity, 4); break;
    case 'float64': bounds = floatBounds(column.values, column.validity, 8); break;
    case 'bool': bounds = boolBounds(column.bits, column.validity, column.length); break;
    case 'bytes': if (type === 'string') bounds = stringBounds(column.offsets, column.bytes, column.validity); break;
  }
  if (bounds !== undefined) {
    stats.lowerBound = bounds[0];
    if (bounds[1] !== undefined) stats.upperBound = bounds[1];
  }
  return stats;
}

function isValid(validity: Uint8Array | null, index: number): boolean {
  return validity === null || ((validity[index >>> 3]! >>> (index & 7)) & 1) === 1;
}

function int32Bounds(values: Int32Array, validity: Uint8Array | null): [Buffer, Buffer] {
  let min = 0x7fffffff;
  let max = -0x80000000;
  for (let i = 0; i < values.length; i++) {
    if (validity !== null && !isValid(validity, i)) continue;
    const value = values[i]!;
    if (value < min) min = value;
    if (value > max) max = value;
  }
  const lower = Buffer.alloc(4);
  const upper = Buffer.alloc(4);
  lower.writeInt32LE(min);
  upper.writeInt32LE(max);
  return [lower, upper];
}

/** Compares (high word signed, low word unsigned) without making BigInts. */
function int64Bounds(words: Int32Array, validity: Uint8Array | null): [Buffer, Buffer] {
  let minHigh = 0x7fffffff, minLow = 0xffffffff;
  let maxHigh = -0x80000000, maxLow = 0;
  for (let i = 0; i < words.length >>> 1; i++) {
    if (validity !== null && !isValid(validity, i)) continue;
    const high = words[2 * i + 1]!;
    const low = words[2 * i]! >>> 0;
    if (high < minHigh || (high === minHigh && low < minLow)) { minHigh = high; minLow = low; }
    if (high > maxHigh || (high === maxHigh && low > maxLow)) { maxHigh = high; maxLow = low; }
  }
  return [int64Bytes(minHigh, minLow), int64Bytes(maxHigh, maxLow)];
}

function int64Bytes(high: number, low: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeUInt32LE(low, 0);
  bytes.writeInt32LE(high, 4);
  return bytes;
}

function floatBounds(values: Float32Array | Float64Array, validity: Uint8Array | null, sizeBytes: 4 | 8): [Buffer, Buffer] | undefined {
  let min = Infinity;
  let max = -Infinity;
  let seen = false;
  for (let i = 0; i < values.length; i++) {
    if (validity !== null && !isValid(validity, i)) continue;
    const value = values[i]!;
    if (value !== value) continue; // NaN: Iceberg bounds leave it out
    seen = true;
    if (value < min) min = value;
    if (value > max) max = value;
  }
  if (!seen) return undefined;
  const lower = Buffer.alloc(sizeBytes);
  const upper = Buffer.alloc(sizeBytes);
  if (sizeBytes === 4) { lower.writeFloatLE(min); upper.writeFloatLE(max); }
  else { lower.writeDoubleLE(min); upper.writeDoubleLE(max); }
  return [lower, upper];
}

function boolBounds(bits: Uint8Array, validity: Uint8Array | null, length: number): [Buffer, Buffer] {
  let sawFalse = false;
  let sawTrue = false;
  for (let i = 0; i < length; i++) {
    if (validity !== null && !isValid(validity, i)) continue;
    if ((bits[i >>> 3]! >>> (i & 7)) & 1) sawTrue = true;
    else sawFalse = true;
  }
  return [Buffer.of(sawFalse ? 0 : 1), Buffer.of(sawTrue ? 1 : 0)];
}

/**
 * Minimum and maximum by unsigned bytes (UTF-8 byte order is code point order), comparing at
 * most the first 64 bytes of each value: the truncated bounds need no more.
 */
function stringBounds(offsets: Int32Array, bytes: Uint8Array, validity: Uint8Array | null): [Buffer, Buffer | undefined] {
  let minRow = -1;
  let maxRow = -1;
  for (let row = 0; row < offsets.length - 1; row++) {
    if (validity !== null && !isValid(validity, row)) continue;
    if (minRow < 0) { minRow = maxRow = row; continue; }
    const toMin = comparePrefixes(bytes, offsets, row, minRow);
    if (toMin < 0) minRow = row;
    else if (toMin > 0 && comparePrefixes(bytes, offsets, row, maxRow) > 0) maxRow = row;
  }
  const min = bytes.subarray(offsets[minRow]!, offsets[minRow + 1]!);
  const max = bytes.subarray(offsets[maxRow]!, offsets[maxRow + 1]!);
  const lower = Buffer.from(min.subarray(0, codePointPrefixBytes(min, STRING_BOUND_CODE_POINTS)));
  return [lower, stringUpperBound(max)];
}

function comparePrefixes(bytes: Uint8Array, offsets: Int32Array, a: number, b: number): number {
  const startA = offsets[a]!;
  const startB = offsets[b]!;
  const lengthA = Math.min(offsets[a + 1]! - startA, STRING_COMPARE_BYTES);
  const lengthB = Math.min(offsets[b + 1]! - startB, STRING_COMPARE_BYTES);
  const common = Math.min(lengthA, lengthB);
  for (let i = 0; i < common; i++) {
    const difference = bytes[startA + i]! - bytes[startB + i]!;
    if (difference !== 0) return difference;
  }
  return lengthA - lengthB;
}

/** Bytes taken by the first `count` code points of UTF-8 `bytes`. */
function codePointPrefixBytes(bytes: Uint8Array, count: number): number {
  let seen = 0;
  for (let i = 0; i < bytes.length; i++) {
    if ((bytes[i]! & 0xc0) !== 0x80 && seen++ === count) return i;
  }
  return bytes.length;
}

/**
 * The maximum itself when short, else its first 16 code points with the last one incremented
 * (dropping code points that cannot be); undefined when none can (no upper bound then). A
 * maximum of 64 bytes or more is treated as truncated, since only 64 bytes were compared.
 */
function stringUpperBound(max: Uint8Array): Buffer | undefined {
  const prefixBytes = codePointPrefixBytes(max, STRING_BOUND_CODE_POINTS);
  if (prefixBytes === max.length && max.length < STRING_COMPARE_BYTES) return Buffer.from(max);
  const codePoints = Array.from(Buffer.from(max.subarray(0, prefixBytes)).toString('utf8'), (c) => c.codePointAt(0)!);
  while (codePoints.length > 0) {
    const last = codePoints.pop()!;
    if (last < MAX_CODE_POINT) {
      codePoints.push(last + 1 === 0xd800 ? 0xe000 : last + 1);
      return Buffer.from(String.fromCodePoint(...codePoints), 'utf8');
    }
  }
  return undefined;
}
