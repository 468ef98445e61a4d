// Merges small Parquet data files of one table partition into one file (background compaction,
// run in the table worker). The files are read with parquet-wasm one row group at a time and the
// record batches written again as they are, through the streaming writer (parquet.ts
// encodeParquet): same schema, field ids (kept in the Arrow field metadata), codec and row group
// size as the writer's. Wasm memory holds a row group or two, not the merged table (reading every
// input whole took hundreds of MiB of wasm memory per compaction, which wasm never gives back).

import * as arrow from 'apache-arrow';
import { ParquetFile, readParquet, readSchema, type RecordBatch as WasmRecordBatch } from 'parquet-wasm';
import { encodeParquet, recordBatchesOf, type ParquetChunks, type ParquetWriteOptions } from './parquet.ts';
import { freeIfOwned } from '../../src/storage/buffers.ts';

/** The merged file in the writer's pieces (not joined: the object store writes them as they are). */
export interface CompactedFile extends ParquetChunks {
  rowCount: number;
}

/** The files to merge, read one at a time as the merge reaches them. */
export interface CompactionInputs {
  count: number;
  read(index: number): Promise<Uint8Array>;
}

/**
 * The merged file of the inputs (Parquet files of one schema), in their order. The inputs are
 * read as the merge reaches them; with `consumeInputs`, each one's memory is given back (its
 * ArrayBuffer detached) as soon as its rows have been read. With a sink, the merged file goes to
 * it as it is written (see encodeParquet) instead of being kept: memory then holds one input and
 * a row group, whatever the size of the merge.
 */
export async function compactParquet(
  inputs: readonly Uint8Array[] | CompactionInputs,
  options: ParquetWriteOptions,
  consumeInputs = false,
  sink?: (chunk: Uint8Array) => Promise<void>,
): Promise<CompactedFile> {
  const source: CompactionInputs = isInputArray(inputs) ? { count: inputs.length, read: async (i) => inputs[i]! } : inputs;
  if (source.count === 0) throw new Error('nothing to compact');
  const first = await source.read(0);
  const schema = arrowSchemaOf(first);
  let rowCount = 0;
  async function* batches(): AsyncGenerator<WasmRecordBatch> {
    // A batch of no rows kept for its schema: every batch goes to the writer on the first file's
    // schema (the writer takes batches of its own schema only).
    let reference: WasmRecordBatch | undefined;
    try {
      for (let i = 0; i < source.count; i++) {
        const input = i === 0 ? first : await source.read(i);
        if (i > 0 && !sameFields(schema, arrowSchemaOf(input))) throw new Error('cannot compact Parquet files of different schemas');
        const rowGroups = await rowGroupCount(input);
        for (let group = 0; group < rowGroups; group++) {
          for (const batch of recordBatchesOf(readParquet(input, { rowGroups: [group], batchSize: options.rowGroupRows }))) {
            rowCount += batch.numRows;
            reference ??= batch.slice(0, 0);
            const onSchema = batch.withSchema(reference.schema);
            batch.free();
            yield onSchema;
          }
        }
        if (consumeInputs) freeIfOwned(input);
      }
    } finally {
      reference?.free();
    }
  }
  const { chunks, sizeBytes } = await encodeParquet(batches(), schema, options, sink);
  return { chunks, sizeBytes, rowCount };
}

function isInputArray(inputs: readonly Uint8Array[] | CompactionInputs): inputs is readonly Uint8Array[] {
  return Array.isArray(inputs);
}

function arrowSchemaOf(input: Uint8Array): arrow.Schema {
  return arrow.tableFromIPC(readSchema(input).intoIPCStream()).schema;
}

/**
 * The number of row groups of a Parquet file, from its footer. parquet-wasm reads metadata only
 * through ParquetFile.fromFile, which asks its handle for byte ranges (footer, page index): the
 * handle gives them out of `bytes` (a Blob of the whole file would copy it).
 */
async function rowGroupCount(bytes: Uint8Array): Promise<number> {
  const handle = { size: bytes.byteLength, slice: (start: number, end: number): Blob => new Blob([bytes.subarray(start, end)]) };
  const file = await ParquetFile.fromFile(handle as unknown as Blob);
  const metadata = file.metadata();
  try {
    return metadata.numRowGroups();
  } finally {
    metadata.free();
    file.free();
  }
}

function sameFields(a: arrow.Schema, b: arrow.Schema): boolean {
  return a.fields.length === b.fields.length
    && a.fields.every((f, i) => f.name === b.fields[i]!.name && String(f.type) === String(b.fields[i]!.type));
}
