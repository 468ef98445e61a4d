// Picks the converter a schema file names (schemas/tables/*.json "converter"). Each converter
// turns one Kafka record into rows of the file's tables; see types.ts for the contract.

import type { TableSchemaFile } from '../table-schemas.ts';
import { OtlpLogsConverter } from './otlp-logs.ts';
import { OtlpMetricsConverter } from './otlp-metrics.ts';
import { OtlpSpansConverter } from './otlp-spans.ts';
import { PrometheusSamplesConverter } from './prometheus-samples.ts';
import { RawConverter } from './raw.ts';
import type { Converter, ValueEncoding } from './types.ts';

export type { Converter, RecordView, ValueEncoding } from './types.ts';

/** A converter for the file's tables; `encoding` matters for the OTLP converters only. */
export function createConverter(def: TableSchemaFile, encoding: ValueEncoding = 'otlp_proto'): Converter {
  switch (def.converter) {
    case 'otlp_logs': return new OtlpLogsConverter(def, encoding);
    case 'otlp_spans': return new OtlpSpansConverter(def, encoding);
    case 'otlp_metrics': return new OtlpMetricsConverter(def, encoding);
    case 'prometheus_samples': return new PrometheusSamplesConverter(def);
    case 'raw': return new RawConverter(def);
  }
}
