// End to end, Zero-ETL: logs sent by the OpenTelemetry JS SDK's http/protobuf exporter, spans
// sent by its gRPC exporter, and series sent by a real Prometheus through remote write become
// rows of Iceberg tables that `wharf query` (DuckDB over the current snapshot's Parquet files)
// answers within the commit interval (the default 10 s) + 10 s. The rows equal what was sent:
// counts, ids, timestamps, severities, bodies, attributes, events and links, and every sample
// of the prometheus_samples topic once with its labels, timestamp and value.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpanKind, SpanStatusCode, type HrTime } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { BatchLogRecordProcessor, InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { printBrokerLogsOnFailure, REPO_ROOT, startBroker, type Broker } from '../helpers/broker.ts';
import { kafkajsClient, runProcess, waitFor } from '../helpers/kafka.ts';
import { readSampleRecords, startPrometheus, type PrometheusServer } from '../helpers/prometheus.ts';
import { join } from 'node:path';

printBrokerLogsOnFailure();

const SERVICE = 'checkout-e2e';
const LOGS = 60;
const SPANS = 40;
const COMMIT_INTERVAL_MS = 10_000;
const FRESHNESS_LIMIT_MS = COMMIT_INTERVAL_MS + 10_000;

let broker: Broker;

/** Runs `wharf query --format json` against the test broker and returns its rows. */
async function wharfQuery(sql: string): Promise<Record<string, unknown>[]> {
  const result = await runProcess(join(REPO_ROOT, 'node_modules', '.bin', 'node'), [join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'query', '--format', 'json', sql], {
    env: { WHARF_DATA_DIR: broker.dataDir, WHARF_HTTP_PORT: String(broker.httpPort) },
    timeoutMs: 60_000,
  });
  return result.stdout.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as Record<string, unknown>);
}

const hrMicros = (t: HrTime): number => t[0] * 1_000_000 + Math.floor(t[1] / 1000);
const isoMicros = (text: unknown): number => {
  // DuckDB renders TIMESTAMPTZ like 2026-11-21 10:00:00.123456+00
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(?:\+00)?$/.exec(String(text));
  if (!m) throw new Error(`not a DuckDB timestamp: ${String(text)}`);
  return Date.parse(`${m[1]}T${m[2]}Z`) * 1000 + Number((m[3] ?? '').padEnd(6, '0'));
};
const mapOf = (value: unknown): Record<string, string> => {
  // DuckDB's JSON form of MAP(VARCHAR, VARCHAR) is a list of {key, value}.
  const out: Record<string, string> = {};
  for (const entry of value as { key: string; value: string }[]) out[entry.key] = entry.value;
  return out;
};
const stringified = (attrs: Record<string, unknown>): Record<string, string> =>
  Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, typeof v === 'string' ? v : Array.isArray(v) ? JSON.stringify(v) : String(v)]));

beforeAll(async () => {
  broker = await startBroker({ name: 'table-e2e' });
}, 60_000);

afterAll(async () => {
  await broker?.stop();
});

describe('OTLP from the OpenTelemetry SDK to queryable tables', () => {
  const resource = resourceFromAttributes({
    'service.name': SERVICE, 'host.name': 'node-7', 'k8s.pod.name': 'checkout-5d9f', 'deployment.environment': 'e2e',
  });
  const sentLogs = new InMemoryLogRecordExporter();
  const sentSpans = new InMemorySpanExporter();
  let sentAtMs = 0;
  let logsSent: ReadableLogRecord[] = [];
  let spansSent: ReadableSpan[] = [];

  beforeAll(async () => {
    const loggerProvider = new LoggerProvider({
      resource,
      processors: [
        new BatchLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `http://127.0.0.1:${broker.otlpHttpPort}/v1/logs` }) }),
        new SimpleLogRecordProcessor({ exporter: sentLogs }),
      ],
    });
    const tracerProvider = new BasicTracerProvider({
      resource,
      spanProcessors: [
        new BatchSpanProcessor(new OTLPTraceExporter({ url: `http://127.0.0.1:${broker.otlpGrpcPort}` })),
        new SimpleSpanProcessor(sentSpans),
      ],
    });
    const logger = loggerProvider.getLogger('e2e-logger', '1.2.3');
    const tracer = tracerProvider.getTracer('e2e-tracer', '4.5.6');
    for (let i = 0; i < SPANS; i++) {
      const span = tracer.startSpan(`GET /cart/${i}`, {
        kind: i % 2 === 0 ? SpanKind.SERVER : SpanKind.CLIENT,
        attributes: { 'http.route': '/cart/:id', 'http.status_code': 200 + (i % 3), 'retry': i % 2 === 0 },
      });
      span.addEvent('cache-miss', { key: `cart-${i}` });
      if (i % 4 === 0) span.setStatus({ code: SpanStatusCode.ERROR, message: `failed ${i}` });
      span.end();
    }
    for (let i = 0; i < LOGS; i++) {
      logger.emit({
        severityNumber: i % 2 === 0 ? SeverityNumber.INFO : SeverityNumber.ERROR,
        severityText: i % 2 === 0 ? 'INFO' : 'ERROR',
        body: `order ${i} placed`,
        attributes: { 'order.id': i, 'user': `u${i % 7}`, 'amount': i * 1.5 },
      });
    }
    await Promise.all([loggerProvider.forceFlush(), tracerProvider.forceFlush()]);
    sentAtMs = Date.now();
    // Copied before shutdown, which empties the in-memory exporters.
    logsSent = [...sentLogs.getFinishedLogRecords()];
    spansSent = [...sentSpans.getFinishedSpans()];
    await Promise.all([loggerProvider.shutdown(), tracerProvider.shutdown()]);
  }, 60_000);

  it('answers with every log within the commit interval + 10 s, rows equal to what the SDK sent', async () => {
    let count = 0;
    await waitFor('the logs to be queryable', async () => {
      const rows = await wharfQuery(`SELECT count(*) AS n FROM otlp_logs WHERE service_name = '${SERVICE}'`).catch(() => [{ n: 0 }]);
      count = Number(rows[0]!.n);
      return count >= LOGS;
    }, FRESHNESS_LIMIT_MS + 15_000);
    const freshnessMs = Date.now() - sentAtMs;
    expect(count).toBe(LOGS);
    expect(freshnessMs).toBeLessThanOrEqual(FRESHNESS_LIMIT_MS);

    const rows = await wharfQuery(`SELECT * FROM otlp_logs WHERE service_name = '${SERVICE}' ORDER BY body`);
    const sent = [...logsSent].sort((a, b) => String(a.body).localeCompare(String(b.body)));
    expect(rows).toHaveLength(sent.length);
    rows.forEach((row, i) => {
      const log: ReadableLogRecord = sent[i]!;
      expect(row.body).toBe(log.body);
      expect(row.severity_number).toBe(log.severityNumber);
      expect(row.severity_text).toBe(log.severityText);
      expect(isoMicros(row.timestamp)).toBe(hrMicros(log.hrTime));
      expect(isoMicros(row.observed_timestamp)).toBe(hrMicros(log.hrTimeObserved));
      expect(row.service_name).toBe(SERVICE);
      expect(row.host_name).toBe('node-7');
      expect(row.k8s_pod_name).toBe('checkout-5d9f');
      expect(row.scope_name).toBe('e2e-logger');
      expect(row.scope_version).toBe('1.2.3');
      expect(mapOf(row.log_attributes)).toEqual(stringified(log.attributes));
      expect(mapOf(row.resource_attributes)).toMatchObject(stringified(resource.attributes as Record<string, unknown>));
    });
  }, 90_000);

  it('answers with every span, ids, times, kinds, statuses, attributes and events as sent', async () => {
    await waitFor('the spans to be queryable', async () => {
      const rows = await wharfQuery(`SELECT count(*) AS n FROM otlp_spans WHERE service_name = '${SERVICE}'`).catch(() => [{ n: 0 }]);
      return Number(rows[0]!.n) >= SPANS;
    }, FRESHNESS_LIMIT_MS + 15_000);
    const rows = await wharfQuery(`SELECT * FROM otlp_spans WHERE service_name = '${SERVICE}' ORDER BY span_id`);
    const sent = [...spansSent].sort((a, b) => a.spanContext().spanId.localeCompare(b.spanContext().spanId));
    expect(rows).toHaveLength(SPANS);
    rows.forEach((row, i) => {
      const span: ReadableSpan = sent[i]!;
      expect(row.trace_id).toBe(span.spanContext().traceId);
      expect(row.span_id).toBe(span.spanContext().spanId);
      expect(row.name).toBe(span.name);
      expect(row.kind).toBe(span.kind === SpanKind.SERVER ? 'SPAN_KIND_SERVER' : 'SPAN_KIND_CLIENT');
      expect(isoMicros(row.start_time)).toBe(hrMicros(span.startTime));
      expect(isoMicros(row.end_time)).toBe(hrMicros(span.endTime));
      expect(Number(row.duration_ns)).toBe(span.duration[0] * 1e9 + span.duration[1]);
      expect(row.status_code).toBe(span.status.code === SpanStatusCode.ERROR ? 'STATUS_CODE_ERROR' : 'STATUS_CODE_UNSET');
      if (span.status.code === SpanStatusCode.ERROR) expect(row.status_message).toBe(span.status.message);
      expect(row.scope_name).toBe('e2e-tracer');
      expect(mapOf(row.span_attributes)).toEqual(stringified(span.attributes));
      const events = row.events as { name: string; time: string; attributes: unknown }[];
      expect(events.map((e) => ({ name: e.name, time: isoMicros(e.time), attributes: mapOf(e.attributes) })))
        .toEqual(span.events.map((e) => ({ name: e.name, time: hrMicros(e.time), attributes: stringified(e.attributes ?? {}) })));
    });
  }, 90_000);
});

describe('Prometheus remote write to a queryable table', () => {
  let prometheus: PrometheusServer | undefined;

  afterAll(async () => {
    await prometheus?.stop();
  });

  it('holds every sample Prometheus sent, once, with its labels, timestamp and value', async () => {
    prometheus = await startPrometheus({
      scrapeTargets: [`127.0.0.1:${broker.httpPort}`],
      scrapeIntervalS: 1,
      remoteWriteUrl: `${broker.httpUrl}/api/v1/write`,
    });
    const firstSentMs = Date.now();
    const upQuery = `SELECT count(*) AS n FROM prometheus_samples WHERE metric_name = 'up' AND job = 'prometheus'`;
    await waitFor('the first up samples to be queryable', async () => {
      const rows = await wharfQuery(upQuery).catch(() => [{ n: 0 }]);
      return Number(rows[0]!.n) > 0;
    }, 10_000 + FRESHNESS_LIMIT_MS + 20_000);
    // Prometheus sends its first batch about 10 s after start; a row must follow within the limit.
    expect(Date.now() - firstSentMs).toBeLessThanOrEqual(10_000 + FRESHNESS_LIMIT_MS + 5_000);
    await prometheus.stop();
    prometheus = undefined;

    const admin = kafkajsClient(broker.bootstrap).admin();
    await admin.connect();
    const offsets = await admin.fetchTopicOffsets('prometheus_samples');
    await admin.disconnect();
    const total = offsets.reduce((sum, o) => sum + Number(o.high), 0);
    const records = await readSampleRecords(broker.bootstrap, 'prometheus_samples', (all) => all.length >= total, 20_000);
    const expected = new Map<string, number>();
    for (const record of records) {
      for (const ts of record.request.timeseries) {
        const labels = Object.fromEntries(ts.labels.map((l) => [l.name, l.value]));
        const name = labels.__name__!;
        delete labels.__name__;
        const labelText = JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));
        for (const s of ts.samples) expected.set(`${name} ${labelText} ${Number(s.timestamp)}`, s.value);
      }
    }
    expect(expected.size).toBeGreaterThan(100);
    let rows: Record<string, unknown>[] = [];
    await waitFor('every sample of the topic to be in the table', async () => {
      rows = await wharfQuery('SELECT metric_name, labels, epoch_ms(timestamp) AS ts, value FROM prometheus_samples');
      return rows.length >= expected.size;
    }, FRESHNESS_LIMIT_MS + 10_000);
    expect(rows).toHaveLength(expected.size);
    for (const row of rows) {
      const labels = mapOf(row.labels);
      const labelText = JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));
      const key = `${String(row.metric_name)} ${labelText} ${Number(row.ts)}`;
      expect(expected.has(key), `row ${key} was sent`).toBe(true);
      const value = expected.get(key)!;
      if (Number.isNaN(value)) expect(row.value).toBe('NaN');
      else expect(Number(row.value)).toBe(value);
    }
  }, 120_000);
});
