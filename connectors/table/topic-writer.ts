// The I/O half of the table writer, for one table topic: reads the topic's partitions from the
// offsets the tables committed, hands the batches to the table worker, and every commit interval
// (or once the buffered rows pass table.buffer.max.bytes, and when a catch-up, a backlog cut that
// way several times, has been read to its end) puts the Parquet files on the object store and
// commits them as one Iceberg snapshot per table.
//
// Exactly once: each snapshot's summary carries `wharf.offsets`, the next offset of every Kafka
// partition whose records are in the table. On start the writer resumes from there; rows of a
// record that a table already holds are dropped (tables of one topic may have committed
// different offsets if the process died between their commits). Files written but not
// committed are orphans and are deleted by maintenance. A failed commit drops the buffered rows
// and re-reads from the committed offsets.

import type { PartitionRead, TopicReader } from '../../src/broker/in-process-consumer.ts';
import { ErrorCode } from '../../src/protocol/errors.ts';
import type { ObjectStore } from '../../src/storage/objectstore/index.ts';
import { log } from '../../src/metrics/log.ts';
import type { TableConfig } from '../../src/config/config.ts';
import type { ConversionClient } from './worker.ts';
import type { WrittenFile } from './conversion.ts';
import type { ParquetWriteOptions } from './parquet.ts';
import type { TableTopicSettings } from './topic-configs.ts';
import { loadTableSchemaFile } from './table-schemas.ts';
import type { DataFile, IcebergCatalog, LoadedTable } from './iceberg/catalog.ts';
import { summaryOffsets, OFFSETS_SUMMARY_KEY, TOPIC_ID_SUMMARY_KEY } from './table-state.ts';
import { currentSchema, defaultSpec } from './iceberg/metadata.ts';
import { tableMetrics } from './metrics.ts';
import { TableCompactor } from './compactor.ts';

export interface TopicWriterDeps {
  reader: TopicReader;
  store: ObjectStore;
  catalog: IcebergCatalog;
  /** The table worker threads; a topic's Kafka partitions are spread over them (lanes). */
  conversions: readonly ConversionClient[];
  config: TableConfig;
  otlpEncoding: 'otlp_proto' | 'otlp_json';
}

/** One worker thread's share of a topic: the Kafka partitions whose records it converts. */
interface Lane {
  client: ConversionClient;
  conversionId: number;
  partitions: number[];
  bufferedBytes: number;
}

interface OpenTable {
  name: string;
  table: LoadedTable;
  /** Next offset per Kafka partition whose rows the table holds (committed). */
  committed: number[];
  lastCommitMs: number;
}

/**
 * A backlog that filled the buffers this many times in a row is a catch-up (not a burst a little
 * over one buffer, whose tail may as well wait for the interval and gather more rows).
 */
const CATCH_UP_FULL_COMMITS = 3;
/** A table whose rows did not change still commits its offsets this often (so restarts stay short). */
const IDLE_OFFSETS_COMMIT_MS = 60_000;

export class TopicTableWriter {
  readonly topic: string;
  readonly topicId: string;
  readonly settings: TableTopicSettings;
  private readonly deps: TopicWriterDeps;
  private readonly partitionCount: number;
  private readonly stopping = new AbortController();
  private tables: OpenTable[] = [];
  private lanes: Lane[] = [];
  /** Next offset to read per partition. */
  private position: number[] = [];
  private nextCommitMs = 0;
  private running: Promise<void> | undefined;
  /** The put-and-commit of the last flushed files, running while reading goes on. */
  private pendingCommit: Promise<void> | undefined;
  private readonly compactor: TableCompactor;
  private nextMaintenanceMs = 0;
  /** Commits cut by table.buffer.max.bytes since the last one by time: a backlog being read. */
  private fullCommitsInARow = 0;

  constructor(topic: string, topicId: string, partitionCount: number, settings: TableTopicSettings, deps: TopicWriterDeps) {
    this.topic = topic;
    this.topicId = topicId;
    this.partitionCount = partitionCount;
    this.settings = settings;
    this.deps = deps;
    this.compactor = new TableCompactor(deps);
  }

  /** Opens (creates, evolves) the tables and starts the read-convert-commit loop. */
  start(): void {
    this.running = this.run().catch((err: unknown) => {
      if (this.stopping.signal.aborted) return;
      log.error({ topic: this.topic, err }, 'table writer stopped on an error');
      tableMetrics.writerFailures.inc({ topic: this.topic });
    });
  }

  /** Stops reading; buffered rows are not committed (they are read again on the next start). */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
    await this.pendingCommit?.catch(() => undefined);
    await this.closeLanes();
  }

  private async closeLanes(): Promise<void> {
    const lanes = this.lanes;
    this.lanes = [];
    await Promise.all(lanes.map((lane) => lane.client.close(lane.conversionId).catch(() => undefined)));
  }

  private bufferedBytes(): number {
    return this.lanes.reduce((sum, lane) => sum + lane.bufferedBytes, 0);
  }

  private async run(): Promise<void> {
    let backoffMs = 500;
    while (!this.stopping.signal.aborted) {
      try {
        await this.open();
        backoffMs = 500;
        await this.loop();
      } catch (err) {
        if (this.stopping.signal.aborted) return;
        log.warn({ topic: this.topic, err: err instanceof Error ? err.message : String(err) }, 'table writer failed; reopening from the committed offsets');
        tableMetrics.writerFailures.inc({ topic: this.topic });
        await this.closeLanes();
        await sleep(backoffMs, this.stopping.signal);
        backoffMs = Math.min(backoffMs * 2, 30_000);
      }
    }
  }

  private async open(): Promise<void> {
    const { catalog, config } = this.deps;
    const file = loadTableSchemaFile(this.settings.schema);
    const namespace = [this.settings.namespace];
    this.tables = [];
    for (const def of file.tables) {
      const name = this.topic + def.suffix;
      let table = await catalog.createTable(namespace, name, def.schema, this.settings.partitionBy ?? def.partitionBy, {
        'wharf.topic': this.topic,
        'write.parquet.compression-codec': 'zstd',
      });
      table = await catalog.evolveSchema(table, def.schema);
      const committed = summaryOffsets(table, this.partitionCount, this.topicId);
      this.tables.push({ name, table, committed, lastCommitMs: Date.now() });
    }
    this.position = Array.from({ length: this.partitionCount }, (_, p) => Math.min(...this.tables.map((t) => t.committed[p]!)));
    const spec = {
      topic: this.topic,
      schemaName: this.settings.schema,
      encoding: this.deps.otlpEncoding,
      tables: this.tables.map((t) => ({ schema: currentSchema(t.table.metadata), spec: defaultSpec(t.table.metadata) })),
      parquet: parquetOptions(config),
    };
    const clients = this.deps.conversions.slice(0, Math.min(this.deps.conversions.length, this.partitionCount));
    this.lanes = await Promise.all(clients.map(async (client, i) => ({
      client,
      conversionId: await client.open(spec),
      partitions: Array.from({ length: this.partitionCount }, (_, p) => p).filter((p) => p % clients.length === i),
      bufferedBytes: 0,
    })));
    this.nextCommitMs = Date.now() + this.settings.commitIntervalMs;
    this.nextMaintenanceMs = Date.now() + this.maintenanceEveryMs();
    log.info({ topic: this.topic, tables: this.tables.map((t) => t.name), from: this.position }, 'table writer started');
  }

  private async loop(): Promise<void> {
    const { config } = this.deps;
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      // Lanes convert in their worker threads at the same time; each reads its partitions in turn.
      const progressed = (await Promise.all(this.lanes.map((lane) => this.readLane(lane)))).some((p) => p);
      const nowMs = Date.now();
      const full = this.bufferedBytes() >= config.bufferMaxBytes;
      // A catch-up read to its end is committed at once: its rows waited long enough.
      const catchUpDone = !progressed && this.fullCommitsInARow >= CATCH_UP_FULL_COMMITS && this.bufferedBytes() > 0;
      if (nowMs >= this.nextCommitMs || full || catchUpDone) {
        this.fullCommitsInARow = full ? this.fullCommitsInARow + 1 : 0;
        await this.commit();
        this.nextCommitMs = Date.now() + this.settings.commitIntervalMs;
      }
      if (nowMs >= this.nextMaintenanceMs) await this.maintain(nowMs);
      if (!progressed) {
        await this.awaitCommit();
        await this.waitForData(this.nextCommitMs - Date.now());
      }
    }
  }

  /** Reads and converts one batch of reads from each partition of the lane; true when any had records. */
  private async readLane(lane: Lane): Promise<boolean> {
    const { config } = this.deps;
    let progressed = false;
    // The next partition's read is issued while this one converts in the worker.
    let next: Promise<PartitionRead> | undefined = this.readPartition(lane.partitions[0]!);
    for (let i = 0; i < lane.partitions.length; i++) {
      const p = lane.partitions[i]!;
      const read = await next!;
      next = i + 1 < lane.partitions.length ? this.readPartition(lane.partitions[i + 1]!) : undefined;
      if (this.stopping.signal.aborted || this.bufferedBytes() >= config.bufferMaxBytes) {
        read.lease?.release();
        break;
      }
      if (read.errorCode === ErrorCode.OFFSET_OUT_OF_RANGE) {
        this.skipToLogStart(p, read.logStartOffset);
        continue;
      }
      if (read.errorCode !== ErrorCode.NONE) throw new Error(`reading ${this.topic}/${p}: Kafka error ${read.errorCode}`);
      if (read.batches.length === 0) continue;
      const skipBelow = this.tables.map((t) => t.committed[p]!);
      const appended = lane.client.append(lane.conversionId, p, read.batches, this.position[p]!, skipBelow);
      read.lease?.release(); // append() copied the batches into the message it posted
      const outcome = await appended;
      if (outcome.nextOffset <= this.position[p]!) throw new Error(`${this.topic}/${p}: read at ${this.position[p]} did not advance`);
      this.position[p] = outcome.nextOffset;
      lane.bufferedBytes = outcome.bufferedBytes;
      tableMetrics.recordsRead.inc({ topic: this.topic }, outcome.records);
      if (outcome.skippedRecords > 0) tableMetrics.recordsSkipped.inc({ topic: this.topic }, outcome.skippedRecords);
      progressed = true;
    }
    next?.then((read) => read.lease?.release(), () => undefined);
    return progressed;
  }

  private readPartition(partition: number): Promise<PartitionRead> {
    const read = this.deps.reader.read(this.topic, partition, this.position[partition]!, this.deps.config.fetchMaxBytes);
    read.catch(() => undefined);
    return read;
  }

  /** Records below the log start were deleted by retention before they reached the table. */
  private skipToLogStart(partition: number, logStartOffset: number): void {
    if (logStartOffset > this.position[partition]!) {
      log.warn({ topic: this.topic, partition, from: this.position[partition], to: logStartOffset }, 'records removed by retention before reaching the table');
      tableMetrics.recordsLost.inc({ topic: this.topic }, logStartOffset - this.position[partition]!);
      this.position[partition] = logStartOffset;
    }
  }

  private async waitForData(timeoutMs: number): Promise<void> {
    if (timeoutMs <= 0) return;
    const abort = new AbortController();
    const onStop = (): void => abort.abort();
    this.stopping.signal.addEventListener('abort', onStop, { once: true });
    try {
      await Promise.race(this.position.map((offset, p) => this.deps.reader.waitForData(this.topic, p, offset, timeoutMs, abort.signal)));
    } finally {
      abort.abort();
      this.stopping.signal.removeEventListener('abort', onStop);
    }
  }

  /**
   * Writes the buffered rows as Parquet files (in the workers) and starts putting and committing
   * them, one snapshot per table, with the offsets read so far; the workers go on converting in
   * the meantime. Commits stay in order: the previous one is awaited first.
   */
  private async commit(): Promise<void> {
    await this.awaitCommit();
    const startedMs = Date.now();
    const files = (await Promise.all(this.lanes.map((lane) => lane.client.flush(lane.conversionId)))).flat();
    for (const lane of this.lanes) lane.bufferedBytes = 0;
    const offsets = this.position.slice();
    this.pendingCommit = this.putAndCommit(files, offsets, startedMs);
    // A failure surfaces at the next awaitCommit(); until then it must not be unhandled.
    this.pendingCommit.catch(() => undefined);
  }

  /** Waits for the commit in flight; rethrows its failure (the writer then reopens). */
  private async awaitCommit(): Promise<void> {
    const pending = this.pendingCommit;
    this.pendingCommit = undefined;
    if (pending) await pending;
  }

  private async putAndCommit(files: WrittenFile[], offsets: number[], startedMs: number): Promise<void> {
    const byTable = this.tables.map(() => [] as DataFile[]);
    await Promise.all(files.map(async (file) => {
      byTable[file.table]!.push(await this.putFile(this.tables[file.table]!, file));
    }));
    for (let t = 0; t < this.tables.length; t++) {
      const open = this.tables[t]!;
      const advanced = offsets.some((offset, p) => offset > open.committed[p]!);
      const dataFiles = byTable[t]!;
      if (dataFiles.length === 0 && !(advanced && startedMs - open.lastCommitMs >= IDLE_OFFSETS_COMMIT_MS)) continue;
      open.table = await this.deps.catalog.commitAppend(open.table, dataFiles, {
        [OFFSETS_SUMMARY_KEY]: JSON.stringify(Object.fromEntries(offsets.map((o, p) => [String(p), o]))),
        [TOPIC_ID_SUMMARY_KEY]: this.topicId,
      });
      open.committed = offsets;
      open.lastCommitMs = Date.now();
      tableMetrics.commits.inc({ table: open.name });
      tableMetrics.filesWritten.inc({ table: open.name }, dataFiles.length);
      for (const f of dataFiles) {
        tableMetrics.rowsCommitted.inc({ table: open.name }, f.recordCount);
        tableMetrics.bytesWritten.inc({ table: open.name }, f.fileSizeBytes);
      }
    }
    tableMetrics.commitSeconds.observe({ topic: this.topic }, (Date.now() - startedMs) / 1000);
  }

  private async putFile(open: OpenTable, file: WrittenFile): Promise<DataFile> {
    const key = this.deps.catalog.newDataFileKey(open.table, file.partitionPath);
    const bytes = Buffer.from(file.bytes.buffer, file.bytes.byteOffset, file.bytes.byteLength);
    await this.deps.store.put(key, bytes);
    return dataFileOf(this.deps.catalog.uriOf(key), file, bytes.length);
  }

  /** Compaction of small files, snapshot expiry and orphan cleanup, between reads. */
  private async maintain(nowMs: number): Promise<void> {
    this.nextMaintenanceMs = nowMs + this.maintenanceEveryMs();
    await this.awaitCommit(); // maintenance commits too: never two commits of a table at once
    for (const open of this.tables) {
      open.table = await this.compactor.maintain(open.table, nowMs);
    }
  }

  /** How often the compactor is asked; it keeps each table's own schedule. */
  private maintenanceEveryMs(): number {
    return Math.min(this.deps.config.compactionIntervalMs, this.deps.config.maintenanceIntervalMs);
  }
}

export function parquetOptions(config: TableConfig): ParquetWriteOptions {
  return { compression: 'zstd', rowGroupRows: config.rowGroupRows };
}

export function dataFileOf(path: string, file: WrittenFile, fileSizeBytes: number): DataFile {
  const valueCounts = new Map<number, number>();
  const nullValueCounts = new Map<number, number>();
  const lowerBounds = new Map<number, Buffer>();
  const upperBounds = new Map<number, Buffer>();
  for (const [fieldId, stats] of file.stats) {
    valueCounts.set(fieldId, stats.valueCount);
    nullValueCounts.set(fieldId, stats.nullCount);
    if (stats.lowerBound !== undefined) lowerBounds.set(fieldId, Buffer.from(stats.lowerBound));
    if (stats.upperBound !== undefined) upperBounds.set(fieldId, Buffer.from(stats.upperBound));
  }
  return {
    path,
    format: 'PARQUET',
    partition: file.partition,
    recordCount: file.rowCount,
    fileSizeBytes,
    columnSizes: file.columnSizes,
    valueCounts,
    nullValueCounts,
    lowerBounds,
    upperBounds,
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
