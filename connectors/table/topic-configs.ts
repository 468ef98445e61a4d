// The table configs of a topic: which topics are table topics and how they are written. The
// settings are topic configs (wharf.table.*, defaults in src/broker/topics.ts) so that any Kafka
// tool that creates a topic can make it a table topic; the ingest topics get them on creation.

import type { WharfConfig } from '../../src/config/config.ts';
import { invalidTopicConfig, TOPIC_CONFIG_DEFAULTS } from '../../src/broker/topics.ts';

export interface TableTopicSettings {
  /** Iceberg namespace (one level) and table base name (the topic name). */
  namespace: string;
  /** A schema in schemas/tables/ by name, or 'raw'. */
  schema: string;
  commitIntervalMs: number;
  /** Iceberg partition transforms, e.g. ['hour(timestamp)']; undefined = the schema's default. */
  partitionBy: string[] | undefined;
}

/** Configs the ingest front-ends create their topics with. */
export function ingestTopicConfigs(config: WharfConfig, schema: string): Record<string, string> {
  if (!config.table.ingestTables) return {};
  return { 'wharf.table.enable': 'true', 'wharf.table.schema': schema };
}

/** The table settings of a topic, or undefined when it is not a table topic. */
export function tableTopicSettings(config: WharfConfig, topicConfigs: Readonly<Record<string, string>>): TableTopicSettings | undefined {
  const get = (name: string): string => {
    const value = topicConfigs[name] ?? TOPIC_CONFIG_DEFAULTS[name]!;
    const invalid = invalidTopicConfig(name, value);
    if (invalid !== undefined) throw new Error(invalid);
    return value;
  };
  if (get('wharf.table.enable') !== 'true') return undefined;
  const commitIntervalMs = Number(get('wharf.table.commit.interval.ms'));
  const partitionBy = get('wharf.table.partition.by').split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  return {
    namespace: get('wharf.table.namespace') || config.table.namespace,
    schema: get('wharf.table.schema'),
    commitIntervalMs,
    partitionBy: partitionBy.length > 0 ? partitionBy : undefined,
  };
}
