// The stream-to-table connector: every topic with wharf.table.enable=true is written to Iceberg
// tables of Parquet files under tables/ on the object store (topic-writer.ts), and the tables
// are served by the Iceberg REST catalog protocol on the HTTP API (rest-catalog.ts). Topics are
// discovered by polling the broker's topic list, so a topic created with the table configs (or
// an ingest topic created by its first request) starts being written within a second.

import type { ConnectorContext, RunningConnector } from '../context.ts';
import { log } from '../../src/metrics/log.ts';
import { ConversionClient } from './worker.ts';
import { TopicTableWriter } from './topic-writer.ts';
import { tableTopicSettings } from './topic-configs.ts';
import { IcebergCatalog } from './iceberg/catalog.ts';
import { mountRestCatalog } from './rest-catalog.ts';

/** Object-store key prefix of the warehouse: tables/<namespace>/<table>/{data,metadata}/... */
export const WAREHOUSE_KEY_PREFIX = 'tables/';
const TOPIC_POLL_INTERVAL_MS = 1000;

export interface RunningTableWriter extends RunningConnector {
  readonly catalog: IcebergCatalog;
  /** The topics being written now. */
  topics(): string[];
}

export async function startTableWriter(ctx: ConnectorContext): Promise<RunningTableWriter> {
  const catalog = new IcebergCatalog({
    store: ctx.objectStore,
    metadata: ctx.metadataStore,
    warehouse: ctx.objectUris,
    keyPrefix: WAREHOUSE_KEY_PREFIX,
  });
  mountRestCatalog(ctx.httpApi, catalog);
  if (!ctx.config.table.enabled) {
    return { name: 'table-writer', catalog, topics: () => [], stop: async () => {} };
  }
  const conversions = Array.from({ length: ctx.config.table.workerThreads }, () => new ConversionClient({ nice: ctx.config.table.workerNice }));
  const writers = new Map<string, TopicTableWriter>();
  const deps = {
    reader: ctx.reader,
    store: ctx.objectStore,
    catalog,
    conversions,
    config: ctx.config.table,
    otlpEncoding: ctx.config.ingest.otlpEncoding,
  };
  const refresh = (): void => {
    const seen = new Set<string>();
    for (const topic of ctx.reader.topics()) {
      let settings;
      try {
        settings = tableTopicSettings(ctx.config, topic.configs);
      } catch (err) {
        log.warn({ topic: topic.name, err: err instanceof Error ? err.message : String(err) }, 'bad table configs; topic not written');
        continue;
      }
      if (!settings) continue;
      seen.add(topic.name);
      const running = writers.get(topic.name);
      if (running?.topicId === topic.topicId) continue;
      // A topic deleted and created again under its name: the old writer stops, a new one starts.
      if (running) void running.stop();
      const writer = new TopicTableWriter(topic.name, topic.topicId, topic.partitionCount, settings, deps);
      writers.set(topic.name, writer);
      writer.start();
    }
    for (const [topic, writer] of writers) {
      if (seen.has(topic)) continue;
      writers.delete(topic);
      void writer.stop();
    }
  };
  refresh();
  const timer = setInterval(refresh, TOPIC_POLL_INTERVAL_MS);
  log.info({ warehouse: ctx.objectUris.uriOf(WAREHOUSE_KEY_PREFIX) }, 'table writer started');
  let stopped: Promise<void> | undefined;
  return {
    name: 'table-writer',
    catalog,
    topics: () => [...writers.keys()],
    stop: () => {
      stopped ??= (async () => {
        clearInterval(timer);
        await Promise.all([...writers.values()].map((w) => w.stop()));
        writers.clear();
        await Promise.all(conversions.map((c) => c.terminate()));
      })();
      return stopped;
    },
  };
}
