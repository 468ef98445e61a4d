#!/usr/bin/env -S node --initial-heap-size=256
// wharf: the command line. `wharf start` runs a single-node Wharf on embedded defaults.

import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.ts';
import { Broker } from '../broker/broker.ts';
import { startConnectors, stopConnectors } from '../../connectors/index.ts';
import type { RunningConnector } from '../../connectors/context.ts';
import { log } from '../metrics/log.ts';

const USAGE = `usage: wharf start [--config wharf.yaml] [--set name=value ...]

  start    run a single-node Wharf (Kafka on 9092, HTTP API on 8080, data in ./data)

Settings come from wharf.yaml, then WHARF_* environment variables (e.g. WHARF_DATA_DIR,
WHARF_KAFKA_PORT, WHARF_NUM_PARTITIONS), then --set flags (e.g. --set num.partitions=8).`;

async function start(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string' }, set: { type: 'string', multiple: true } },
  });
  const overrides: Record<string, string> = {};
  for (const pair of values.set ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--set takes name=value, not ${pair}`);
    overrides[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const config = loadConfig({ file: values.config, overrides });
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
    connectors = await startConnectors({ config, producer: broker.producer!, httpApi: broker.http });
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
} else {
  console.error(USAGE);
  process.exit(command === undefined || command === 'help' || command === '--help' ? 0 : 2);
}
