// The tables through independent readers, on the local directory store and on S3 (s3rver):
// iceberg-js (a REST catalog client) lists Wharf's namespaces and tables and loads each table's
// metadata; the current snapshot's manifest list and manifests, decoded here with avsc straight
// from the object store, name exactly the Parquet files whose rows DuckDB counts in
// `wharf query`, and their record counts add up to that count and to the snapshot summary.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IcebergRestCatalog } from 'iceberg-js';
import { join } from 'node:path';
import { printBrokerLogsOnFailure, startBroker, type Broker } from '../helpers/broker.ts';
import { kafkajsClient, waitFor } from '../helpers/kafka.ts';
import { s3BrokerEnv, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import { createObjectStore, type ObjectStore } from '../../src/storage/objectstore/index.ts';
import { objectUris, type ObjectUris } from '../../src/storage/objectstore/uri.ts';
import { runQuery } from '../../connectors/table/query.ts';
import { snapshotEntries } from '../helpers/iceberg.ts';

printBrokerLogsOnFailure();

const TOPIC = 'clicks';
const RECORDS = 1200;

for (const kind of ['local', 's3'] as const) {
  describe(`tables on the ${kind === 'local' ? 'local directory' : 'S3 (s3rver)'} object store`, () => {
    let s3: S3rverHandle | undefined;
    let broker: Broker;
    let store: ObjectStore;
    let uris: ObjectUris;

    beforeAll(async () => {
      let env: Record<string, string> = {};
      if (kind === 's3') {
        s3 = await startS3rver({ bucket: 'wharf-table-test' });
        env = s3BrokerEnv(s3);
      }
      broker = await startBroker({ name: `table-catalog-${kind}`, env: { ...env, WHARF_TABLE_NAMESPACE: 'lake' } });
      if (kind === 's3') {
        store = await createObjectStore({ kind: 's3', ...s3!, forcePathStyle: true, createBucket: false });
        uris = objectUris({ kind: 's3', bucket: s3!.bucket });
      } else {
        store = await createObjectStore({ kind: 'local', rootDir: join(broker.dataDir, 'objects') });
        uris = objectUris({ kind: 'local', rootDir: join(broker.dataDir, 'objects') });
      }
      const kafka = kafkajsClient(broker.bootstrap);
      const admin = kafka.admin();
      await admin.connect();
      await admin.createTopics({
        topics: [{
          topic: TOPIC,
          numPartitions: 2,
          configEntries: [
            { name: 'wharf.table.enable', value: 'true' },
            { name: 'wharf.table.commit.interval.ms', value: '500' },
            { name: 'wharf.table.partition.by', value: 'identity(partition)' },
          ],
        }],
      });
      await admin.disconnect();
      const producer = kafka.producer();
      await producer.connect();
      for (let sent = 0; sent < RECORDS; sent += 300) {
        await producer.send({
          topic: TOPIC,
          messages: Array.from({ length: 300 }, (_, i) => ({ key: `user-${(sent + i) % 17}`, value: `click ${sent + i}`, headers: { source: 'test' } })),
        });
        await new Promise((r) => setTimeout(r, 700));
      }
      await producer.disconnect();
    }, 90_000);

    it('refuses table configs that cannot work, with INVALID_CONFIG', async () => {
      const admin = kafkajsClient(broker.bootstrap).admin();
      await admin.connect();
      try {
        for (const [name, value] of [['wharf.table.schema', 'nope'], ['wharf.table.enable', 'yes'], ['wharf.table.commit.interval.ms', '5']]) {
          const err = await admin.createTopics({ topics: [{ topic: `bad-${kind}`, configEntries: [{ name: name!, value: value! }] }] })
            .then(() => undefined, (e: unknown) => e as { errors?: { type: string }[] });
          expect(err?.errors?.[0]?.type, `${name}=${value}`).toBe('INVALID_CONFIG');
        }
      } finally {
        await admin.disconnect();
      }
    });

    afterAll(async () => {
      await store?.close();
      await broker?.stop();
      await s3?.stop();
    });

    it('is listed and loaded by iceberg-js, and its manifests name exactly the files DuckDB counts', async () => {
      const query = (sql: string) => runQuery(sql, { catalogUrl: `${broker.httpUrl}/iceberg`, store, uris });
      await waitFor('every record in the table', async () => {
        const result = await query(`SELECT count(*) AS n FROM ${TOPIC}`).catch(() => undefined);
        return Number(result?.rows[0]?.n ?? 0) >= RECORDS;
      }, 30_000);

      const catalog = new IcebergRestCatalog({ baseUrl: `${broker.httpUrl}/iceberg` });
      const { namespaces } = await catalog.listNamespaces();
      expect(namespaces).toContainEqual({ namespace: ['lake'] });
      const { identifiers } = await catalog.listTables({ namespace: ['lake'] });
      expect(identifiers.map((t) => t.name)).toContain(TOPIC);
      for (const id of identifiers) {
        const metadata = await catalog.loadTable(id);
        expect(metadata['format-version']).toBe(2);
      }
      const metadata = await catalog.loadTable({ namespace: ['lake'], name: TOPIC });
      const schema = metadata.schemas.find((s) => s['schema-id'] === metadata['current-schema-id'])!;
      expect(schema.fields.map((f) => f.name)).toEqual(['partition', 'offset', 'timestamp', 'key', 'value', 'headers']);
      const snapshot = metadata.snapshots!.find((s) => s['snapshot-id'] === metadata['current-snapshot-id'])!;
      expect(snapshot.summary['wharf.offsets']).toBeDefined();
      expect(metadata['partition-specs']![0]!.fields.map((f) => f.transform)).toEqual(['identity']);

      // The snapshot's files, from its Avro manifest list and manifests, read here with avsc.
      const files = new Map<string, number>();
      for (const entry of await snapshotEntries(store, uris, snapshot['manifest-list'])) {
        if (entry.status === 2) continue; // DELETED
        files.set(entry.file_path, entry.record_count);
        expect(Object.keys(entry.partition)).toEqual(['partition']);
      }
      const manifestRows = [...files.values()].reduce((a, b) => a + b, 0);

      const counted = await query(`SELECT count(*) AS n, count(DISTINCT "offset" || '-' || "partition") AS d FROM ${TOPIC}`);
      expect(Number(counted.rows[0]!.n)).toBe(RECORDS);
      expect(Number(counted.rows[0]!.d)).toBe(RECORDS);
      expect(manifestRows).toBe(RECORDS);
      expect(Number(snapshot.summary['total-records'])).toBe(RECORDS);
      expect(new Set(counted.files.get(`lake.${TOPIC}`))).toEqual(new Set(files.keys()));
      for (const path of files.keys()) expect(path.startsWith(kind === 'local' ? 'file:///' : `s3://${s3!.bucket}/tables/lake/${TOPIC}/data/`)).toBe(true);

      // Errors as the REST spec's ErrorModel; the catalog is read-only.
      const missing = await fetch(`${broker.httpUrl}/iceberg/v1/namespaces/lake/tables/nope`);
      expect(missing.status).toBe(404);
      expect((await missing.json() as { error: { type: string } }).error.type).toBe('NoSuchTableException');
      expect((await fetch(`${broker.httpUrl}/iceberg/v1/namespaces/nope/tables`)).status).toBe(404);
      const drop = await fetch(`${broker.httpUrl}/iceberg/v1/namespaces/lake/tables/${TOPIC}`, { method: 'DELETE' });
      expect(drop.status).toBe(405);
      expect(await catalog.loadTable({ namespace: ['lake'], name: TOPIC })).toEqual(metadata);

      const values = await query(`SELECT decode("value") AS v, decode("key") AS k, headers FROM ${TOPIC} WHERE decode("value") = 'click 7'`);
      expect(values.rows).toEqual([{ v: 'click 7', k: 'user-7', headers: [{ key: 'source', value: expect.anything() }] }]);
    }, 90_000);
  });
}
