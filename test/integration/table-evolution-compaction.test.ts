// Tables over time. Schema evolution: a table written by an older schema (the raw schema
// without its headers column, committed up to offset 2 of the topic) is picked up by the writer,
// which adds the missing column with a new field id above the table's last-column-id and
// resumes after offset 2; DuckDB reads old rows with null headers and new rows with theirs.
// Compaction: a table fed many small commits gets its small files merged in the background into
// a `replace` snapshot that keeps every row, the Kafka offsets and the Parquet field ids.

import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { printBrokerLogsOnFailure, startBroker, type Broker } from '../helpers/broker.ts';
import { kafkajsClient, waitFor } from '../helpers/kafka.ts';
import { EmbeddedMetadataStore } from '../../src/metadata/embedded.ts';
import { createObjectStore, type ObjectStore } from '../../src/storage/objectstore/index.ts';
import { objectUris } from '../../src/storage/objectstore/uri.ts';
import { IcebergCatalog } from '../../connectors/table/iceberg/catalog.ts';
import { loadTableSchemaFile } from '../../connectors/table/table-schemas.ts';
import { createTableRows, type BinaryColumn, type IntColumn, type LongColumn, type TimestampColumn } from '../../connectors/table/columns.ts';
import { writeParquet } from '../../connectors/table/parquet.ts';
import { dataFileOf } from '../../connectors/table/topic-writer.ts';
import { runQuery } from '../../connectors/table/query.ts';
import type { IcebergSchema } from '../../connectors/table/iceberg/types.ts';

printBrokerLogsOnFailure();

const brokers: Broker[] = [];
const stores: ObjectStore[] = [];
afterAll(async () => {
  for (const s of stores) await s.close();
  for (const b of brokers) await b.stop();
});

interface RestTable {
  metadata: {
    'last-column-id': number;
    'current-schema-id': number;
    'current-snapshot-id': number;
    schemas: IcebergSchema[];
    snapshots: { 'snapshot-id': number; summary: Record<string, string> }[];
  };
}

async function loadRest(broker: Broker, table: string): Promise<RestTable> {
  const res = await fetch(`${broker.httpUrl}/iceberg/v1/namespaces/wharf/tables/${table}`);
  if (!res.ok) throw new Error(`load ${table}: ${res.status}`);
  return await res.json() as RestTable;
}

async function createRawTopic(broker: Broker, topic: string, commitIntervalMs: number): Promise<void> {
  const admin = kafkajsClient(broker.bootstrap).admin();
  await admin.connect();
  await admin.createTopics({
    topics: [{
      topic,
      numPartitions: 1,
      configEntries: [
        { name: 'wharf.table.enable', value: 'true' },
        { name: 'wharf.table.commit.interval.ms', value: String(commitIntervalMs) },
      ],
    }],
  });
  await admin.disconnect();
}

describe('schema evolution', () => {
  it('adds a new column with a new field id to a table written by an older schema, and resumes after its offsets', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'wharf-evolution-'));
    const rootDir = join(dataDir, 'objects');
    const uris = objectUris({ kind: 'local', rootDir });
    // The table as an older Wharf left it: raw without headers, rows of offsets 0 and 1.
    const raw = loadTableSchemaFile('raw').tables[0]!.schema;
    const oldSchema: IcebergSchema = { ...raw, fields: raw.fields.filter((f) => f.name !== 'headers') };
    const oldLastColumnId = Math.max(...oldSchema.fields.map((f) => f.id));
    {
      const metadata = await EmbeddedMetadataStore.open(join(dataDir, 'metadata'));
      const store = await createObjectStore({ kind: 'local', rootDir });
      const catalog = new IcebergCatalog({ store, metadata, warehouse: uris });
      let table = await catalog.createTable(['wharf'], 'evo', oldSchema, [], {});
      const rows = createTableRows(oldSchema);
      for (let offset = 0; offset < 2; offset++) {
        (rows.column('partition') as IntColumn).append(0);
        (rows.column('offset') as LongColumn).append(offset);
        (rows.column('timestamp') as TimestampColumn).append(Date.now() * 1000);
        (rows.column('key') as BinaryColumn).append(Buffer.from(`old-${offset}`));
        (rows.column('value') as BinaryColumn).append(Buffer.from(`old value ${offset}`));
        rows.endRow();
      }
      const file = await writeParquet(rows, { compression: 'zstd', rowGroupRows: 1000 });
      const key = catalog.newDataFileKey(table, '');
      await store.put(key, Buffer.from(file.bytes));
      const written = { table: 0, partition: {}, partitionPath: '', bytes: file.bytes, rowCount: file.rowCount, stats: file.stats, columnSizes: undefined };
      table = await catalog.commitAppend(table, [dataFileOf(uris.uriOf(key), written, file.bytes.length)], { 'wharf.offsets': '{"0":2}' });
      await store.close();
      await metadata.close();
    }

    const broker = await startBroker({ name: 'table-evolution', dataDir });
    brokers.push(broker);
    await createRawTopic(broker, 'evo', 200);
    const producer = kafkajsClient(broker.bootstrap).producer();
    await producer.connect();
    await producer.send({
      topic: 'evo',
      messages: Array.from({ length: 5 }, (_, i) => ({ key: `new-${i}`, value: `new value ${i}`, headers: { origin: `h${i}` } })),
    });
    await producer.disconnect();

    const store = await createObjectStore({ kind: 'local', rootDir });
    stores.push(store);
    const query = (sql: string) => runQuery(sql, { catalogUrl: `${broker.httpUrl}/iceberg`, store, uris });
    await waitFor('the new rows', async () => Number((await query('SELECT count(*) AS n FROM evo')).rows[0]!.n) >= 5, 30_000);

    const loaded = await loadRest(broker, 'evo');
    const schema = loaded.metadata.schemas.find((s) => s['schema-id'] === loaded.metadata['current-schema-id'])!;
    expect(loaded.metadata['current-schema-id']).toBeGreaterThan(0);
    const headers = schema.fields.find((f) => f.name === 'headers')!;
    expect(headers.id).toBeGreaterThan(oldLastColumnId);
    for (const f of oldSchema.fields) expect(schema.fields.find((g) => g.name === f.name)!.id).toBe(f.id);
    expect(loaded.metadata['last-column-id']).toBeGreaterThan(oldLastColumnId);

    // Offsets 0 and 1 came from the old snapshot; the writer resumed at 2 (records 2, 3, 4).
    const rows = await query(`SELECT "offset", decode("key") AS k, len(headers) AS h FROM evo ORDER BY "offset", k`);
    expect(rows.rows).toEqual([
      { offset: 0, k: 'old-0', h: null },
      { offset: 1, k: 'old-1', h: null },
      { offset: 2, k: 'new-2', h: 1 },
      { offset: 3, k: 'new-3', h: 1 },
      { offset: 4, k: 'new-4', h: 1 },
    ]);
  }, 90_000);
});

describe('compaction of small files', () => {
  it('merges small files into one in a replace snapshot that keeps rows, offsets and field ids', async () => {
    const broker = await startBroker({
      name: 'table-compaction',
      env: { WHARF_TABLE_COMPACTION_INTERVAL_MS: '1000', WHARF_TABLE_COMPACTION_MIN_FILES: '4' },
    });
    brokers.push(broker);
    await createRawTopic(broker, 'small', 100);
    const producer = kafkajsClient(broker.bootstrap).producer();
    await producer.connect();
    // Eight sends, each committed before the next: eight small files.
    for (let send = 0; send < 8; send++) {
      await producer.send({ topic: 'small', messages: Array.from({ length: 50 }, (_, i) => ({ key: `${send}-${i}`, value: `v${send}-${i}` })) });
      await waitFor(`send ${send} committed`, async () => {
        const loaded = await loadRest(broker, 'small').catch(() => undefined);
        const current = loaded?.metadata.snapshots.find((s) => s['snapshot-id'] === loaded.metadata['current-snapshot-id']);
        return Number(current?.summary['total-records'] ?? 0) >= (send + 1) * 50;
      }, 20_000);
    }
    await producer.disconnect();

    const rootDir = join(broker.dataDir, 'objects');
    const uris = objectUris({ kind: 'local', rootDir });
    const store = await createObjectStore({ kind: 'local', rootDir });
    stores.push(store);
    const query = (sql: string) => runQuery(sql, { catalogUrl: `${broker.httpUrl}/iceberg`, store, uris });
    let files: string[] = [];
    await waitFor('a compaction', async () => {
      const loaded = await loadRest(broker, 'small');
      const current = loaded.metadata.snapshots.find((s) => s['snapshot-id'] === loaded.metadata['current-snapshot-id']);
      const result = await query('SELECT count(*) AS n FROM small');
      files = result.files.get('wharf.small') ?? [];
      return loaded.metadata.snapshots.some((s) => s.summary.operation === 'replace')
        && Number(result.rows[0]!.n) === 400 && current?.summary['wharf.offsets'] === '{"0":400}';
    }, 30_000);
    const loaded = await loadRest(broker, 'small');
    const replace = loaded.metadata.snapshots.filter((s) => s.summary.operation === 'replace');
    expect(Number(replace[0]!.summary['deleted-data-files'])).toBeGreaterThanOrEqual(4);
    expect(replace[0]!.summary['wharf.offsets']).toBeDefined();
    expect(files.length).toBeLessThan(8);
    const distinct = await query('SELECT count(DISTINCT decode("key")) AS n FROM small');
    expect(Number(distinct.rows[0]!.n)).toBe(400);

    // The merged file still carries every column's Iceberg field id.
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const paths = files.map((f) => `'${fileURLToPath(f)}'`).join(',');
    const ids = await conn.runAndReadAll(`SELECT name, field_id FROM parquet_schema([${paths}]) WHERE name IN ('partition', 'offset', 'key', 'value')`);
    conn.closeSync();
    db.closeSync();
    const idRows = ids.getRowObjectsJson();
    expect(idRows.length).toBeGreaterThanOrEqual(4);
    for (const row of idRows) expect(row.field_id).not.toBeNull();
  }, 90_000);
});

describe('a table topic deleted and created again', () => {
  it('writes the new topic from its first offset into the same table', async () => {
    const broker = await startBroker({ name: 'table-recreate' });
    brokers.push(broker);
    const rootDir = join(broker.dataDir, 'objects');
    const store = await createObjectStore({ kind: 'local', rootDir });
    stores.push(store);
    const query = (sql: string) => runQuery(sql, { catalogUrl: `${broker.httpUrl}/iceberg`, store, uris: objectUris({ kind: 'local', rootDir }) });
    const count = async (): Promise<number> => Number((await query('SELECT count(*) AS n FROM again').catch(() => undefined))?.rows[0]?.n ?? 0);
    const produce = async (prefix: string, n: number): Promise<void> => {
      const producer = kafkajsClient(broker.bootstrap).producer();
      await producer.connect();
      await producer.send({ topic: 'again', messages: Array.from({ length: n }, (_, i) => ({ key: `${prefix}-${i}`, value: prefix })) });
      await producer.disconnect();
    };

    await createRawTopic(broker, 'again', 200);
    await produce('first', 10);
    await waitFor('the first topic\'s rows', async () => (await count()) === 10, 20_000);
    const admin = kafkajsClient(broker.bootstrap).admin();
    await admin.connect();
    await admin.deleteTopics({ topics: ['again'] });
    await admin.disconnect();
    await createRawTopic(broker, 'again', 200);
    await produce('second', 4);
    await waitFor('the second topic\'s rows', async () => (await count()) === 14, 20_000);
    const second = await query(`SELECT "offset" FROM again WHERE decode("value") = 'second' ORDER BY 1`);
    expect(second.rows.map((r) => r.offset)).toEqual([0, 1, 2, 3]);
    const loaded = await loadRest(broker, 'again');
    const current = loaded.metadata.snapshots.find((s) => s['snapshot-id'] === loaded.metadata['current-snapshot-id'])!;
    expect(current.summary['wharf.offsets']).toBe('{"0":4}');
  }, 90_000);
});
