// Realistic OTLP requests for tests and bench/otlp.ts, built as OTLP/JSON objects (encode them
// with jsonToProto). Deterministic: the same options give the same bytes.

import type { OtlpJson } from '../../../connectors/otlp/json.ts';

/** A small deterministic generator (xorshift32). */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }
  int(max: number): number {
    return this.next() % max;
  }
  hex(bytes: number): string {
    let s = '';
    for (let i = 0; i < bytes; i++) s += (this.int(255) + 1).toString(16).padStart(2, '0');
    return s;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

const str = (key: string, value: string): OtlpJson => ({ key, value: { stringValue: value } });
const int = (key: string, value: number): OtlpJson => ({ key, value: { intValue: String(value) } });

export function resourceOf(serviceName: string, instance: number): OtlpJson {
  return {
    attributes: [
      str('service.name', serviceName),
      str('service.version', '2.14.3'),
      str('service.namespace', 'shop'),
      str('service.instance.id', `${serviceName}-7d9f8b6c4-${instance.toString(36).padStart(5, 'x')}`),
      str('deployment.environment.name', 'production'),
      str('host.name', `ip-10-0-${instance % 250}-${(instance * 7) % 250}.eu-west-1.compute.internal`),
      str('host.arch', 'amd64'),
      str('os.type', 'linux'),
      int('process.pid', 4000 + instance),
      str('process.runtime.name', 'nodejs'),
      str('process.runtime.version', '24.11.0'),
      str('telemetry.sdk.name', 'opentelemetry'),
      str('telemetry.sdk.language', 'nodejs'),
      str('telemetry.sdk.version', '2.2.0'),
    ],
  };
}

const ROUTES = ['/api/v1/orders/{id}', '/api/v1/cart', '/api/v1/products', '/api/v1/users/{id}/addresses', '/healthz', '/api/v1/checkout'];
const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE'];
const AGENTS = [
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36',
  'okhttp/4.12.0',
  'Go-http-client/1.1',
];

export interface TraceRequestOptions {
  spans: number;
  spansPerTrace: number;
  serviceName?: string;
  instance?: number;
  seed?: number;
  /** Start of the first span, ms since the epoch. */
  startMs?: number;
}

/** An ExportTraceServiceRequest: one resource, one scope, `spans` spans in traces of `spansPerTrace`. */
export function traceRequest(options: TraceRequestOptions): OtlpJson {
  const rng = new Rng(options.seed ?? 1);
  const startNs = BigInt(options.startMs ?? 1_763_700_000_000) * 1_000_000n;
  const spans: OtlpJson[] = [];
  let traceId = '';
  let rootSpanId = '';
  for (let i = 0; i < options.spans; i++) {
    const inTrace = i % options.spansPerTrace;
    if (inTrace === 0) {
      traceId = rng.hex(16);
      rootSpanId = rng.hex(8);
    }
    const spanId = inTrace === 0 ? rootSpanId : rng.hex(8);
    const route = rng.pick(ROUTES);
    const method = rng.pick(METHODS);
    const server = inTrace === 0;
    const start = startNs + BigInt(i) * 1_000_000n + BigInt(rng.int(1_000_000));
    const durationNs = BigInt(200_000 + rng.int(40_000_000));
    const status = rng.int(20) === 0 ? 500 : 200;
    const attributes: OtlpJson[] = server
      ? [
          str('http.request.method', method),
          str('url.path', route.replace('{id}', String(rng.int(100000)))),
          str('url.scheme', 'https'),
          str('http.route', route),
          int('http.response.status_code', status),
          str('server.address', 'shop.example.com'),
          str('network.protocol.version', '1.1'),
          str('client.address', `10.1.${rng.int(255)}.${rng.int(255)}`),
          str('user_agent.original', rng.pick(AGENTS)),
        ]
      : [
          str('db.system', 'postgresql'),
          str('db.namespace', 'orders'),
          str('db.operation.name', 'SELECT'),
          str('db.query.text', 'SELECT id, status, total FROM orders WHERE customer_id = $1 LIMIT 50'),
          str('server.address', 'orders-db.internal'),
          int('server.port', 5432),
          str('network.peer.address', `10.2.${rng.int(255)}.${rng.int(255)}`),
          int('db.response.returned_rows', rng.int(50)),
        ];
    const span: OtlpJson = {
      traceId,
      spanId,
      name: server ? `${method} ${route}` : 'SELECT orders',
      kind: server ? 2 : 3,
      startTimeUnixNano: String(start),
      endTimeUnixNano: String(start + durationNs),
      attributes,
      flags: 257,
      status: status === 500 ? { code: 2, message: 'Internal Server Error' } : {},
    };
    if (!server) span.parentSpanId = rootSpanId;
    if (rng.int(8) === 0) {
      span.events = [{
        timeUnixNano: String(start + durationNs / 2n),
        name: 'exception',
        attributes: [
          str('exception.type', 'TimeoutError'),
          str('exception.message', 'query timed out after 30000 ms'),
        ],
      }];
    }
    spans.push(span);
  }
  return {
    resourceSpans: [{
      resource: resourceOf(options.serviceName ?? 'checkout', options.instance ?? 1),
      scopeSpans: [{
        scope: { name: '@opentelemetry/instrumentation-http', version: '0.57.1' },
        spans,
      }],
      schemaUrl: 'https://opentelemetry.io/schemas/1.27.0',
    }],
  };
}

const LOG_MESSAGES = [
  'order placed: customer=%d items=%d total=%d.%d EUR payment=card',
  'cache miss for product catalogue page %d, fetching from origin (latency budget %d ms)',
  'user %d signed in from a new device; sending notification id=%d',
  'retrying payment provider call attempt=%d after %d ms: connection reset by peer',
];

export interface LogsRequestOptions {
  records: number;
  serviceName?: string;
  instance?: number;
  seed?: number;
  startMs?: number;
}

/** An ExportLogsServiceRequest: one resource, one scope, `records` log records. */
export function logsRequest(options: LogsRequestOptions): OtlpJson {
  const rng = new Rng(options.seed ?? 2);
  const startNs = BigInt(options.startMs ?? 1_763_700_000_000) * 1_000_000n;
  const logRecords: OtlpJson[] = [];
  for (let i = 0; i < options.records; i++) {
    const time = startNs + BigInt(i) * 250_000n;
    let body = rng.pick(LOG_MESSAGES);
    while (body.includes('%d')) body = body.replace('%d', String(rng.int(100000)));
    const warn = rng.int(10) === 0;
    const record: OtlpJson = {
      timeUnixNano: String(time),
      observedTimeUnixNano: String(time + 1000n),
      severityNumber: warn ? 13 : 9,
      severityText: warn ? 'WARN' : 'INFO',
      body: { stringValue: body },
      attributes: [
        str('code.function.name', 'OrderService.place'),
        str('code.file.path', 'src/orders/service.ts'),
        int('thread.id', rng.int(16)),
        str('http.route', rng.pick(ROUTES)),
      ],
    };
    if (i % 2 === 0) {
      record.traceId = rng.hex(16);
      record.spanId = rng.hex(8);
      record.flags = 1;
    }
    logRecords.push(record);
  }
  return {
    resourceLogs: [{
      resource: resourceOf(options.serviceName ?? 'checkout', options.instance ?? 1),
      scopeLogs: [{ scope: { name: 'pino', version: '9.5.0' }, logRecords }],
    }],
  };
}

/** An ExportMetricsServiceRequest with a sum, a gauge, a histogram (with exemplars) and an exponential histogram. */
export function metricsRequest(options: { series: number; serviceName?: string; seed?: number; startMs?: number }): OtlpJson {
  const rng = new Rng(options.seed ?? 3);
  const startNs = BigInt(options.startMs ?? 1_763_700_000_000) * 1_000_000n;
  const time = String(startNs + 60_000_000_000n);
  const points = (make: (i: number) => OtlpJson): OtlpJson[] => Array.from({ length: options.series }, (_, i) => make(i));
  const attrs = (i: number): OtlpJson[] => [str('http.route', ROUTES[i % ROUTES.length]!), int('http.response.status_code', i % 7 === 0 ? 500 : 200)];
  return {
    resourceMetrics: [{
      resource: resourceOf(options.serviceName ?? 'checkout', 1),
      scopeMetrics: [{
        scope: { name: '@opentelemetry/instrumentation-http', version: '0.57.1' },
        metrics: [
          {
            name: 'http.server.request.count', unit: '{request}', description: 'Requests served',
            sum: {
              aggregationTemporality: 2, isMonotonic: true,
              dataPoints: points((i) => ({ attributes: attrs(i), startTimeUnixNano: String(startNs), timeUnixNano: time, asInt: String(rng.int(1_000_000)) })),
            },
          },
          {
            name: 'process.memory.usage', unit: 'By',
            gauge: { dataPoints: [{ timeUnixNano: time, asDouble: 123456789.5 }] },
          },
          {
            name: 'http.server.request.duration', unit: 's',
            histogram: {
              aggregationTemporality: 2,
              dataPoints: points((i) => ({
                attributes: attrs(i),
                startTimeUnixNano: String(startNs),
                timeUnixNano: time,
                count: '30', sum: 4.25, min: 0.001, max: 1.5,
                bucketCounts: ['1', '4', '10', '10', '5', '0'],
                explicitBounds: [0.005, 0.01, 0.05, 0.1, 0.5],
                exemplars: [{ timeUnixNano: time, asDouble: 0.42, traceId: rng.hex(16), spanId: rng.hex(8), filteredAttributes: [str('user.id', '42')] }],
              })),
            },
          },
          {
            name: 'rpc.client.duration', unit: 'ms',
            exponentialHistogram: {
              aggregationTemporality: 1,
              dataPoints: [{
                startTimeUnixNano: String(startNs), timeUnixNano: time, count: '7', sum: 12.5, scale: -2, zeroCount: '1',
                positive: { offset: -3, bucketCounts: ['1', '2', '3'] }, negative: { offset: 1, bucketCounts: ['2'] },
                zeroThreshold: 0.0001,
              }],
            },
          },
          {
            name: 'legacy.summary',
            summary: { dataPoints: [{ timeUnixNano: time, count: '10', sum: 55, quantileValues: [{ quantile: 0.5, value: 5 }, { quantile: 0.99, value: 9.9 }] }] },
          },
        ],
      }],
    }],
  };
}
