// Exactly once under SIGKILL: a raw table topic is written to its Iceberg table while the Wharf
// process is killed with SIGKILL at random moments, over and over, during reading, writing
// Parquet and committing (commits every 200 ms, files cut every 128 KiB). Each cycle produces
// more records (acks=all) before the kill. Afterwards the table holds every record of the topic
// exactly once: one row per (partition, offset) for every offset below the high watermark, with
// the record's own key and value; and no data file outside the current snapshots is left.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { printBrokerLogsOnFailure, startBroker, type Broker } from '../helpers/broker.ts';
import { kafkajsClient, waitFor } from '../helpers/kafka.ts';
import { createObjectStore, type ObjectStore } from '../../src/storage/objectstore/index.ts';
import { objectUris } from '../../src/storage/objectstore/uri.ts';
import { runQuery } from '../../connectors/table/query.ts';
import { join } from 'node:path';
import { snapshotEntries } from '../helpers/iceberg.ts';

printBrokerLogsOnFailure();

const TOPIC = 'events';
const PARTITIONS = 3;
const KILLS = 12;
const RECORDS_PER_CYCLE = 1500;

let broker: Broker;
let store: ObjectStore;

function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

beforeAll(async () => {
  broker = await startBroker({
    name: 'table-exactly-once',
    env: {
      WHARF_TABLE_BUFFER_MAX_BYTES: String(128 * 1024),
      WHARF_TABLE_FETCH_MAX_BYTES: String(16 * 1024),
      WHARF_TABLE_MAINTENANCE_INTERVAL_MS: '1000',
      WHARF_TABLE_COMPACTION_INTERVAL_MS: '1000',
      WHARF_TABLE_ORPHAN_MIN_AGE_MS: '1000',
    },
  });
  const admin = kafkajsClient(broker.bootstrap).admin();
  await admin.connect();
  await admin.createTopics({
    topics: [{
      topic: TOPIC,
      numPartitions: PARTITIONS,
      configEntries: [
        { name: 'wharf.table.enable', value: 'true' },
        { name: 'wharf.table.schema', value: 'raw' },
        { name: 'wharf.table.commit.interval.ms', value: '200' },
      ],
    }],
  });
  await admin.disconnect();
  const rootDir = join(broker.dataDir, 'objects');
  store = await createObjectStore({ kind: 'local', rootDir });
}, 60_000);

afterAll(async () => {
  await store?.close();
  await broker?.stop();
});

async function produceCycle(cycle: number): Promise<void> {
  const producer = kafkajsClient(broker.bootstrap).producer({ idempotent: true });
  await producer.connect();
  try {
    for (let sent = 0; sent < RECORDS_PER_CYCLE; sent += 250) {
      await producer.send({
        topic: TOPIC,
        acks: -1,
        messages: Array.from({ length: 250 }, (_, i) => ({
          key: `k-${cycle}-${sent + i}`,
          value: `cycle ${cycle} record ${sent + i} `.padEnd(200, '.'),
        })),
      });
    }
  } finally {
    await producer.disconnect();
  }
}

async function highWatermarks(): Promise<number[]> {
  const admin = kafkajsClient(broker.bootstrap).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(TOPIC);
    return offsets.sort((a, b) => a.partition - b.partition).map((o) => Number(o.high));
  } finally {
    await admin.disconnect();
  }
}

function query(sql: string): ReturnType<typeof runQuery> {
  return runQuery(sql, {
    catalogUrl: `${broker.httpUrl}/iceberg`,
    store,
    uris: uris(),
  });
}

/** The summed offsets the current process's events table writer resumed from (its log line). */
async function resumePosition(): Promise<number> {
  let from: number[] | undefined;
  await waitFor('the table writer to start', () => {
    const lines = broker.logs().split('\n');
    const processStart = lines.findLastIndex((l) => l.startsWith('=== ') && l.includes(' starting '));
    const start = lines.slice(processStart).find((l) => l.includes('"msg":"table writer started"') && l.includes('"topic":"events"'));
    from = start === undefined ? undefined : (JSON.parse(start) as { from: number[] }).from;
    return from !== undefined;
  }, 30_000);
  return from!.reduce((a, b) => a + b, 0);
}

function uris(): ReturnType<typeof objectUris> {
  return objectUris({ kind: 'local', rootDir: join(broker.dataDir, 'objects') });
}

/** Data files named by any manifest of any snapshot the table keeps (read with avsc). */
async function filesOfRetainedSnapshots(): Promise<Set<string>> {
  const res = await fetch(`${broker.httpUrl}/iceberg/v1/namespaces/wharf/tables/events`);
  const { metadata } = await res.json() as { metadata: { snapshots: { 'manifest-list': string }[] } };
  const files = new Set<string>();
  for (const snapshot of metadata.snapshots) {
    for (const entry of await snapshotEntries(store, uris(), snapshot['manifest-list'])) files.add(entry.file_path);
  }
  return files;
}

describe('table writer under SIGKILL', () => {
  it('holds every record of the topic exactly once after many kills during writing and committing', async () => {
    const random = seeded(20261121);
    let killedWhileBehind = 0;
    for (let cycle = 0; cycle < KILLS; cycle++) {
      await produceCycle(cycle);
      await new Promise((r) => setTimeout(r, Math.floor(random() * 300)));
      await broker.kill('SIGKILL');
      await broker.restart();
      // Where the restarted writer resumes: below what was produced means the kill caught it
      // reading, writing or committing.
      const resumedFrom = await resumePosition();
      if (resumedFrom < (cycle + 1) * RECORDS_PER_CYCLE) killedWhileBehind++;
    }
    expect(killedWhileBehind, 'kills that caught the writer behind the topic').toBeGreaterThanOrEqual(KILLS / 3);
    await produceCycle(KILLS);
    const expected = await highWatermarks();
    const total = expected.reduce((a, b) => a + b, 0);
    expect(total).toBe((KILLS + 1) * RECORDS_PER_CYCLE);

    let counted = -1;
    await waitFor('the table to hold every record', async () => {
      const result = await query('SELECT count(*) AS n FROM events').catch(() => undefined);
      counted = Number(result?.rows[0]?.n ?? -1);
      return counted >= total;
    }, 60_000);

    const perPartition = await query(
      'SELECT "partition" AS p, count(*) AS n, count(DISTINCT "offset") AS distinct_offsets, min("offset") AS lo, max("offset") AS hi FROM events GROUP BY 1 ORDER BY 1');
    expect(perPartition.rows.map((r) => ({ p: Number(r.p), n: Number(r.n), d: Number(r.distinct_offsets), lo: Number(r.lo), hi: Number(r.hi) })))
      .toEqual(expected.map((hw, p) => ({ p, n: hw, d: hw, lo: 0, hi: hw - 1 })));

    // Every row carries its record's own key and value.
    const mismatched = await query(`SELECT count(*) AS n FROM events
      WHERE NOT starts_with(decode("value"), 'cycle ' || split_part(decode("key"), '-', 2) || ' record ' || split_part(decode("key"), '-', 3) || ' ')`);
    expect(Number(mismatched.rows[0]!.n)).toBe(0);
    const keys = await query('SELECT count(DISTINCT decode("key")) AS n FROM events');
    expect(Number(keys.rows[0]!.n)).toBe(total);

    // Orphans (files written by a killed writer before its commit) are cleaned up: every data
    // file left on the store is named by a manifest of a snapshot the table still keeps.
    await waitFor('orphan data files to be deleted', async () => {
      const referenced = await filesOfRetainedSnapshots();
      const stored = (await store.list('tables/wharf/events/data/')).map((o) => uris().uriOf(o.key));
      return stored.length > 0 && stored.every((uri) => referenced.has(uri));
    }, 30_000);
  }, 300_000);
});
