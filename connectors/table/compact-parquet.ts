// Merges small Parquet data files of one table partition into one file (background compaction,
// run in the table worker). The files are read with parquet-wasm into Arrow record batches,
// which are written again as they are: same schema, field ids (kept in the Arrow field metadata),
// codec and row groups as the writer's.

import * as arrow from 'apache-arrow';
import { readParquet } from 'parquet-wasm';
import { encodeParquet, type ParquetWriteOptions } from './parquet.ts';

export interface CompactedFile {
  bytes: Uint8Array;
  rowCount: number;
}

export function compactParquet(inputs: readonly Uint8Array[], options: ParquetWriteOptions): CompactedFile {
  if (inputs.length === 0) throw new Error('nothing to compact');
  const batches: arrow.RecordBatch[] = [];
  let schema: arrow.Schema | undefined;
  for (const input of inputs) {
    const table = arrow.tableFromIPC(readParquet(input).intoIPCStream());
    schema ??= table.schema;
    if (!sameFields(schema, table.schema)) throw new Error('cannot compact Parquet files of different schemas');
    // Batches keep their own schema object; rebuild them on the first file's schema.
    for (const batch of table.batches) batches.push(new arrow.RecordBatch(schema, batch.data));
  }
  const merged = new arrow.Table(schema!, batches);
  return { bytes: encodeParquet(arrow.tableToIPC(merged, 'stream'), merged.schema, options), rowCount: merged.numRows };
}

function sameFields(a: arrow.Schema, b: arrow.Schema): boolean {
  return a.fields.length === b.fields.length
    && a.fields.every((f, i) => f.name === b.fields[i]!.name && String(f.type) === String(b.fields[i]!.type));
}
