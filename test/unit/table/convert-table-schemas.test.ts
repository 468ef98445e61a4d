// The table definitions in schemas/tables/: every file loads, builds column builders and names a
// converter; field ids are unique and stable; a file that breaks the rules is refused with a
// message naming the fault.

import { describe, expect, it } from 'vitest';
import { createTableRows } from '../../../connectors/table/columns.ts';
import { createConverter } from '../../../connectors/table/convert/index.ts';
import {
  TableSchemaError, loadTableSchemaFile, loadTableSchemaFiles, maxFieldId, parseTableSchemaFile, tableName,
} from '../../../connectors/table/table-schemas.ts';

describe('table schema files', () => {
  it('holds the five telemetry and raw definitions, each usable by its converter', () => {
    const files = loadTableSchemaFiles();
    expect([...files.keys()]).toEqual(['otlp_logs', 'otlp_metrics', 'otlp_spans', 'prometheus_samples', 'raw']);
    for (const file of files.values()) {
      expect(file.converter).toBe(file.name);
      const converter = createConverter(file);
      expect(converter.tables).toEqual(file.tables.map((t) => t.suffix));
      for (const table of file.tables) {
        expect(table.schema['schema-id']).toBe(0);
        expect(createTableRows(table.schema).rowCount).toBe(0);
      }
    }
    const metrics = files.get('otlp_metrics')!;
    expect(metrics.tables.map((t) => tableName('otlp_metrics', t))).toEqual([
      'otlp_metrics_gauge', 'otlp_metrics_sum', 'otlp_metrics_histogram', 'otlp_metrics_exponential_histogram', 'otlp_metrics_summary',
    ]);
  });

  it('keeps the field ids tables were created with (ids are never renumbered)', () => {
    const logs = loadTableSchemaFile('otlp_logs').tables[0]!.schema;
    const ids = Object.fromEntries(logs.fields.map((f) => [f.name, f.id]));
    expect(ids).toMatchObject({ timestamp: 1, body: 5, trace_id: 6, service_name: 10, resource_attributes: 17, dropped_attributes_count: 24 });
    const lastIds = [...loadTableSchemaFiles().values()].flatMap((f) => f.tables.map((t) => [tableName(f.name, t), maxFieldId(t.schema)]));
    expect(Object.fromEntries(lastIds)).toEqual({
      otlp_logs: 30,
      otlp_metrics_gauge: 28,
      otlp_metrics_sum: 30,
      otlp_metrics_histogram: 35,
      otlp_metrics_exponential_histogram: 40,
      otlp_metrics_summary: 32,
      otlp_spans: 50,
      prometheus_samples: 8,
      prometheus_samples_histograms: 23,
      raw: 9,
    });
  });

  it('refuses files that break the rules', () => {
    const good = JSON.parse(JSON.stringify(loadTableSchemaFile('raw'))) as Record<string, any>;
    const broken = (change: (file: Record<string, any>) => void): unknown => {
      const copy = JSON.parse(JSON.stringify(good)) as Record<string, any>;
      change(copy);
      return copy;
    };
    expect(() => parseTableSchemaFile(good, 'raw.json')).not.toThrow();
    expect(() => parseTableSchemaFile(broken((f) => { f.tables[0].schema.fields[1].id = 1; }), 'raw.json')).toThrow(/raw.json: tables\[0\]: field id 1 is used twice/);
    expect(() => parseTableSchemaFile(broken((f) => { f.tables[0].partitionBy = ['hour(nope)']; }), 'raw.json')).toThrow(TableSchemaError);
    expect(() => parseTableSchemaFile(broken((f) => { f.tables[0].partitionBy = ['hourly(timestamp)']; }), 'raw.json')).toThrow(/not transform\(column\)/);
    expect(() => parseTableSchemaFile(broken((f) => { f.tables[0].promoted = { offset: 'x' }; }), 'raw.json')).toThrow(/no top-level string column/);
    expect(() => parseTableSchemaFile(broken((f) => { f.converter = 'csv'; }), 'raw.json')).toThrow(/"converter" must be one of/);
    expect(() => parseTableSchemaFile(broken((f) => { f.tables.push(f.tables[0]); }), 'raw.json')).toThrow(/appears twice/);
  });
});
