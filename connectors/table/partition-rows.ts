// Rows of a TableRows grouped by Iceberg partition: each row's partition tuple is computed from
// its source columns (the builders' buffers, no row objects) and the rows of each tuple become
// one selection, written as one Parquet file. An unpartitioned table, or a batch whose rows all
// fall in one partition (the common case: one hour, one service), is one group with no selection.

import { columnBuffers, type ColumnBuffers, type TableRows } from './columns.ts';
import {
  bindPartitionSpec, partitionPath, partitionRecord, type BoundPartitionSpec, type PartitionValue, type SourceValue,
} from './iceberg/partitioning.ts';
import type { ConversionTable } from './conversion.ts';

export interface PartitionGroup {
  values: Record<string, PartitionValue>;
  path: string;
  /** Row indexes in order, or undefined for every row. */
  selection: Uint32Array | undefined;
}

const textDecoder = new TextDecoder();
const TWO_POW_32 = 4294967296;

/** Reads row i of a top-level primitive column as the partition transforms take it. */
function sourceValue(buffers: ColumnBuffers, i: number): SourceValue {
  if (buffers.validity !== null && (buffers.validity[i >> 3]! & (1 << (i & 7))) === 0) return null;
  switch (buffers.kind) {
    case 'bool': return (buffers.bits[i >> 3]! & (1 << (i & 7))) !== 0;
    case 'int32': return buffers.values[i]!;
    case 'int64': {
      const value = buffers.words[2 * i + 1]! * TWO_POW_32 + (buffers.words[2 * i]! >>> 0); // no BigInt per row
      return Number.isSafeInteger(value) ? value : buffers.values[i]!;
    }
    case 'float32':
    case 'float64': return buffers.values[i]!;
    case 'bytes': return textDecoder.decode(buffers.bytes.subarray(buffers.offsets[i]!, buffers.offsets[i + 1]!));
    case 'fixed': return buffers.bytes.subarray(i * buffers.widthBytes, (i + 1) * buffers.widthBytes);
    default: throw new Error(`a ${buffers.kind} column cannot be a partition source`);
  }
}

/** The bound spec of each table and its source columns' names, made once (stable transforms stay optimized). */
const boundSpecs = new WeakMap<ConversionTable, { bound: BoundPartitionSpec; sourceNames: string[] }>();

function boundSpecOf(table: ConversionTable): { bound: BoundPartitionSpec; sourceNames: string[] } {
  let cached = boundSpecs.get(table);
  if (cached === undefined) {
    const bound = bindPartitionSpec(table.schema, table.spec);
    const sourceNames = bound.fields.map((f) => {
      const source = table.schema.fields.find((field) => field.id === f.field['source-id']);
      if (!source) throw new Error(`partition source ${f.field['source-id']} is not a top-level column`);
      return source.name;
    });
    boundSpecs.set(table, (cached = { bound, sourceNames }));
  }
  return cached;
}

export function groupRowsByPartition(rows: TableRows, table: ConversionTable): PartitionGroup[] {
  const { bound, sourceNames } = boundSpecOf(table);
  if (bound.fields.length === 0) return [{ values: {}, path: '', selection: undefined }];
  const sources = sourceNames.map((name) => columnBuffers(rows.column(name)));
  const groups = new Map<PartitionValue, { values: PartitionValue[]; rows: number[] }>();
  const tuple: PartitionValue[] = new Array<PartitionValue>(bound.fields.length);
  const single = bound.fields.length === 1;
  for (let i = 0; i < rows.rowCount; i++) {
    for (let f = 0; f < bound.fields.length; f++) tuple[f] = bound.fields[f]!.apply(sourceValue(sources[f]!, i));
    // One partition field (the usual hour(timestamp)): its value is the key, no string per row.
    const key = single ? tuple[0]! : JSON.stringify(tuple);
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { values: tuple.slice(), rows: [] }));
    group.rows.push(i);
  }
  const onlyGroup = groups.size === 1;
  return [...groups.values()].map((g) => ({
    values: partitionRecord(bound, g.values),
    path: partitionPath(bound, g.values),
    selection: onlyGroup ? undefined : Uint32Array.from(g.rows),
  }));
}
