// Every connector the single-node process runs, started after the broker and stopped before
// it (so that in-flight ingest requests can still be produced): OTLP, remote write, and the
// stream-to-table writer with its Iceberg REST catalog.

import type { ConnectorContext, RunningConnector } from './context.ts';
import { startOtlp } from './otlp/index.ts';
import { startRemoteWrite } from './prometheus/index.ts';
import { startTableWriter } from './table/index.ts';

export async function startConnectors(ctx: ConnectorContext): Promise<RunningConnector[]> {
  const running: RunningConnector[] = [];
  try {
    running.push(await startOtlp(ctx));
    running.push(await startRemoteWrite(ctx));
    running.push(await startTableWriter(ctx));
  } catch (err) {
    await stopConnectors(running);
    throw err;
  }
  return running;
}

export async function stopConnectors(running: readonly RunningConnector[]): Promise<void> {
  await Promise.allSettled(running.map((c) => c.stop()));
}
