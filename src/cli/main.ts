#!/usr/bin/env -S node --initial-heap-size=256
// wharf: the command line. `wharf start` runs a single-node Wharf on embedded defaults.

import './process-env.ts'; // first: settings native code reads when first used
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.ts';
import { Broker, objectStoreConfig } from '../broker/broker.ts';
import { startConnectors, stopConnectors } from '../../connectors/index.ts';
import type { RunningConnector } from '../../connectors/context.ts';
import { log } from '../metrics/log.ts';
import { createObjectStore } from '../storage/objectstore/index.ts';
import { objectUris } from '../storage/objectstore/uri.ts';

const USAGE = `usage: wharf start [--config wharf.yaml] [--set name=value ...]
       wharf query [--config wharf.yaml] [--set name=value ...] [--catalog URL] [--format table|json|csv] "<SQL>"

  start    run a single-node Wharf (Kafka on 9092, HTTP API on 8080, data in ./data)
  query    run SQL with DuckDB over the Iceberg tables of a running Wharf (current snapshots);
           tables are views in a schema named after their namespace (default wharf), which is
           on the search path: wharf query "SELECT count(*) FROM otlp_logs"
           --catalog defaults to http://127.0.0.1:<http.port>/iceberg

Settings come from wharf.yaml, then WHARF_* environment variables (e.g. WHARF_DATA_DIR,
WHARF_KAFKA_PORT, WHARF_NUM_PARTITIONS), then --set flags (e.g. --set num.partitions=8).`;

function overridesOf(pairs: readonly string[] | undefined): Record<string, string> {
  const overrides: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--set takes name=value, not ${pair}`);
    overrides[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return overrides;
}

async function query(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string' }, set: { type: 'string', multiple: true },
      catalog: { type: 'string' }, format: { type: 'string', default: 'table' },
    },
  });
  if (positionals.length !== 1) throw new Error('wharf query takes one SQL statement (quote it)');
  if (!['table', 'json', 'csv'].includes(values.format)) throw new Error(`--format: table, json or csv, not ${values.format}`);
  const config = loadConfig({ file: values.config, overrides: overridesOf(values.set) });
  const { runQuery, formatTable, formatCsv } = await import('../../connectors/table/query.ts');
  const storeConfig = objectStoreConfig(config);
  // Reading only: a missing bucket is an error here, not something to create.
  const store = await createObjectStore(storeConfig.kind === 's3' ? { ...storeConfig, createBucket: false } : storeConfig);
  const uris = objectUris(storeConfig);
  try {
    const catalogUrl = values.catalog ?? `http://127.0.0.1:${config.httpPort}/iceberg`;
    const result = await runQuery(positionals[0]!, { catalogUrl, store, uris });
    if (values.format === 'json') for (const row of result.rows) process.stdout.write(JSON.stringify(row) + '\n');
    else process.stdout.write((values.format === 'csv' ? formatCsv(result) : formatTable(result)) + '\n');
  } finally {
    await store.close();
  }
}

async function start(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string' }, set: { type: 'string', multiple: true } },
  });
  const config = loadConfig({ file: values.config, overrides: overridesOf(values.set) });
  const broker = new Broker(config);
  let connectors: RunningConnector[] = [];
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    stopConnectors(connectors).then(() => broker.stop()).then(() => process.exit(0), (err: unknown) => {
      log.error({ err }, 'stop failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await broker.start();
    // startConnectors runs startOtlp (OTLP gRPC and HTTP) and startRemoteWrite (/api/v1/write).
    connectors = await startConnectors({
      config, producer: broker.producer!, reader: broker.reader!, httpApi: broker.http, ...broker.storageForConnectors(),
    });
    broker.markReady();
  } catch (err) {
    log.fatal({ err }, 'start failed');
    await stopConnectors(connectors);
    await broker.stop().catch(() => undefined);
    process.exit(1);
  }
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'start') {
  await start(rest);
} else if (command === 'query') {
  try {
    await query(rest);
  } catch (err) {
    console.error(`wharf query: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
} else {
  console.error(USAGE);
  process.exit(command === undefined || command === 'help' || command === '--help' ? 0 : 2);
}
