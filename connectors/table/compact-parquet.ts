// Merges small Parquet data files of one table partition into one file (background compaction,
// run in the table worker). The files are read with parquet-wasm one row group at a time and the
// record batches written again as they are, through the streaming writer (parquet.ts
// encodeParquet): same schema, field ids (kept in the Arrow field metadata), codec and row group
// size as the writer's. Wasm memory holds a row group or two, not the merged table (reading every
// input whole took hundreds of MiB of wasm memory per compaction, which wasm never gives back).

import * as arrow from 'apache-arrow';
import { ParquetFile, readParquet, readSchema, type RecordBatch as WasmRecordBatch } from 'parquet-wasm';
import { encodeParquet, recordBatchesOf, type ParquetChunks, type ParquetWriteOptions } from './parquet.ts';
import { ownsBuffer } from '../transfer.ts';

/** The merged file in the writer's pieces (not joined: the object store writes them as they are). */
export interface CompactedFile extends ParquetChunks {
  rowCount: number;
}

/**
 * The merged file of `inputs` (Parquet files of one schema), in their order. With
 * `consumeInputs`, each input's memory is given back (its ArrayBuffer detached) as soon as its
 * rows have been read, so that inputs and output are not all held at once.
 */
export async function compactParquet(inputs: readonly Uint8Array[], options: ParquetWriteOptions, consumeInputs = false): Promise<CompactedFile> {
  if (inputs.length === 0) throw new Error('nothing to compact');
  const schemas = inputs.map((input) => arrowSchemaOf(input));
  const schema = schemas[0]!;
  if (!schemas.every((s) => sameFields(schema, s))) throw new Error('cannot compact Parquet files of different schemas');
  const rowGroupCounts = await Promise.all(inputs.map((input) => rowGroupCount(input)));
  let rowCount = 0;
  function* batches(): Generator<WasmRecordBatch> {
    // A batch of no rows kept for its schema: every batch goes to the writer on the first file's
    // schema (the writer takes batches of its own schema only).
    let reference: WasmRecordBatch | undefined;
    try {
      for (const [i, input] of inputs.entries()) {
        for (let group = 0; group < rowGroupCounts[i]!; group++) {
          for (const batch of recordBatchesOf(readParquet(input, { rowGroups: [group], batchSize: options.rowGroupRows }))) {
            rowCount += batch.numRows;
            reference ??= batch.slice(0, 0);
            const onSchema = batch.withSchema(reference.schema);
            batch.free();
            yield onSchema;
          }
        }
        if (consumeInputs && ownsBuffer(input)) {
          (input.buffer as ArrayBuffer).transfer(0);
        }
      }
    } finally {
      reference?.free();
    }
  }
  const { chunks, sizeBytes } = await encodeParquet(batches(), schema, options);
  return { chunks, sizeBytes, rowCount };
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
