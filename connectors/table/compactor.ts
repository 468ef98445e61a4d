// Table maintenance between commits, run by each topic's writer (so it never races the writer's
// own commits): compaction of small files and, less often, snapshot expiry and orphan cleanup.
//
// Compaction: in each partition of the current snapshot, files smaller than a quarter of the
// target file size are merged (at least table.compaction.min.files of them, at most a target
// file's worth of input) into one file, committed as an Iceberg `replace` snapshot that keeps
// the table's rows and its wharf.offsets. Expiry follows the table's history.expire.*
// properties; orphans are files under data/ and metadata/ that no retained snapshot or metadata
// file references and that are older than table.orphan.min.age.ms (a writer killed between
// putting a file and committing it leaves such files).

import { log } from '../../src/metrics/log.ts';
import type { DataFile, LoadedTable } from './iceberg/catalog.ts';
import { bindPartitionSpec, partitionPath, type PartitionValue } from './iceberg/partitioning.ts';
import { compareValues, fromSingleValueBinary } from './iceberg/values.ts';
import type { IcebergField } from './iceberg/types.ts';
import { currentSchema, defaultSpec } from './iceberg/metadata.ts';
import { tableMetrics } from './metrics.ts';
import { parquetOptions, type TopicWriterDeps } from './topic-writer.ts';
import { ObjectUpload } from '../../src/storage/objectstore/objectstore.ts';

interface Schedule { nextCompactionMs: number; nextExpiryMs: number }

export class TableCompactor {
  private readonly deps: TopicWriterDeps;
  private readonly schedules = new Map<string, Schedule>();
  private nextWorker = 0;

  constructor(deps: TopicWriterDeps) {
    this.deps = deps;
  }

  /** Runs what is due for this table; returns the table as it is after. */
  async maintain(table: LoadedTable, nowMs: number): Promise<LoadedTable> {
    const { config } = this.deps;
    const key = `${table.namespace.join('.')}.${table.name}`;
    let schedule = this.schedules.get(key);
    if (!schedule) {
      this.schedules.set(key, (schedule = { nextCompactionMs: nowMs + config.compactionIntervalMs, nextExpiryMs: nowMs }));
    }
    if (nowMs >= schedule.nextCompactionMs) {
      schedule.nextCompactionMs = nowMs + config.compactionIntervalMs;
      table = await this.compact(table);
    }
    if (nowMs >= schedule.nextExpiryMs) {
      schedule.nextExpiryMs = nowMs + config.maintenanceIntervalMs;
      const expired = await this.deps.catalog.expireSnapshots(table, nowMs);
      table = expired.table;
      const orphans = await this.deps.catalog.deleteOrphans(table, nowMs - config.orphanMinAgeMs);
      if (expired.deletedKeys.length + orphans.length > 0) {
        log.info({ table: key, expiredFiles: expired.deletedKeys.length, orphans: orphans.length }, 'table maintenance deleted files');
      }
    }
    return table;
  }

  private async compact(table: LoadedTable): Promise<LoadedTable> {
    const { config, catalog } = this.deps;
    const smallBytes = Math.floor(config.targetFileBytes / 4);
    const files = await catalog.currentDataFiles(table);
    const byPartition = new Map<string, DataFile[]>();
    for (const file of files) {
      if (file.fileSizeBytes >= smallBytes) continue;
      const partitionKey = JSON.stringify(file.partition);
      let list = byPartition.get(partitionKey);
      if (!list) byPartition.set(partitionKey, (list = []));
      list.push(file);
    }
    for (const small of byPartition.values()) {
      if (small.length < config.compactionMinFiles) continue;
      const chosen: DataFile[] = [];
      let inputBytes = 0;
      for (const file of small) {
        if (chosen.length >= 2 && inputBytes + file.fileSizeBytes > config.targetFileBytes) break;
        chosen.push(file);
        inputBytes += file.fileSizeBytes;
      }
      if (chosen.length < 2) continue;
      try {
        table = await this.merge(table, chosen);
      } catch (err) {
        log.warn({ table: table.name, files: chosen.length, err: err instanceof Error ? err.message : String(err) }, 'compaction failed; files kept');
        return table;
      }
    }
    return table;
  }

  private async merge(table: LoadedTable, files: DataFile[]): Promise<LoadedTable> {
    const { catalog, store, conversions, config } = this.deps;
    const schema = currentSchema(table.metadata);
    const bound = bindPartitionSpec(schema, defaultSpec(table.metadata));
    const values: PartitionValue[] = bound.fields.map((f) => files[0]!.partition[f.field.name] ?? null);
    const key = catalog.newDataFileKey(table, partitionPath(bound, values));
    // Streamed both ways: each input is read when the worker reaches it (and handed over), and
    // the merged file is uploaded in parts as it is written, visible only once complete. Memory
    // holds an input and a part, not a table.target.file.bytes merge and its inputs.
    const worker = conversions[this.nextWorker++ % conversions.length]!;
    const upload = await ObjectUpload.start(store, key);
    let merged;
    try {
      merged = await worker.compact(
        files.length,
        (i) => store.get(table.location.keyOf(files[i]!.path)),
        parquetOptions(config),
        (chunks) => upload.write(chunks.map(asBuffer)),
      );
      const expectedRows = files.reduce((sum, f) => sum + f.recordCount, 0);
      if (merged.rowCount !== expectedRows) throw new Error(`compacted file has ${merged.rowCount} rows, inputs ${expectedRows}`);
      await upload.write(merged.chunks.map(asBuffer));
      if (upload.sizeBytes !== merged.sizeBytes) throw new Error(`compacted file: ${upload.sizeBytes} bytes stored of ${merged.sizeBytes}`);
      await upload.complete();
    } catch (err) {
      await upload.abort().catch(() => {});
      throw err;
    }
    const added: DataFile = {
      ...mergedStats(files, schema.fields),
      path: catalog.uriOf(key), format: 'PARQUET', partition: files[0]!.partition, recordCount: merged.rowCount, fileSizeBytes: merged.sizeBytes,
    };
    const after = await catalog.commitReplace(table, files, [added]);
    tableMetrics.compactions.inc({ table: table.name });
    log.info({ table: table.name, files: files.length, rows: merged.rowCount, bytes: merged.sizeBytes }, 'compacted small files');
    return after;
  }
}

function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** Column metrics of the merged file: counts added, bounds the min of lowers and max of uppers. */
function mergedStats(files: DataFile[], fields: readonly IcebergField[]): Pick<DataFile, 'valueCounts' | 'nullValueCounts' | 'lowerBounds' | 'upperBounds'> {
  const valueCounts = new Map<number, number>();
  const nullValueCounts = new Map<number, number>();
  const lowerBounds = new Map<number, Buffer>();
  const upperBounds = new Map<number, Buffer>();
  for (const { id, type: primitive } of fields) {
    if (typeof primitive !== 'string') continue;
    if (files.every((f) => f.valueCounts?.has(id))) valueCounts.set(id, files.reduce((s, f) => s + f.valueCounts!.get(id)!, 0));
    if (files.every((f) => f.nullValueCounts?.has(id))) nullValueCounts.set(id, files.reduce((s, f) => s + f.nullValueCounts!.get(id)!, 0));
    const pick = (bounds: (f: DataFile) => Buffer | undefined, better: (c: number) => boolean): Buffer | undefined => {
      let best: Buffer | undefined;
      for (const f of files) {
        const b = bounds(f);
        if (b === undefined) return undefined; // a file without a bound: the merged bound is unknown
        if (best === undefined || better(compareValues(fromSingleValueBinary(primitive, b), fromSingleValueBinary(primitive, best)))) best = b;
      }
      return best;
    };
    const lower = pick((f) => f.lowerBounds?.get(id), (c) => c < 0);
    const upper = pick((f) => f.upperBounds?.get(id), (c) => c > 0);
    if (lower !== undefined) lowerBounds.set(id, lower);
    if (upper !== undefined) upperBounds.set(id, upper);
  }
  return { valueCounts, nullValueCounts, lowerBounds, upperBounds };
}
