// The OTLP messages Wharf reads and writes, written down as data. No maintained npm package
// ships the opentelemetry-proto `.proto` files, so the definitions live here; field numbers,
// types and names follow opentelemetry-proto v1.x (common/v1/common.proto, resource/v1/
// resource.proto, trace/v1/trace.proto, metrics/v1/metrics.proto, logs/v1/logs.proto and
// collector/{trace,metrics,logs}/v1/*_service.proto), plus google.rpc.Status and RetryInfo
// for error answers. Profiles are not included.
//
// One table serves every use: the wire walker (validation and splitting, walk.ts), the
// OTLP/JSON codec (json.ts) and the full decoder used for the otlp_json topic encoding.

export type ScalarKind =
  | 'string' | 'bytes' | 'bool'
  | 'int32' | 'uint32' | 'sint32' | 'enum'
  | 'int64' | 'uint64'
  | 'fixed32' | 'fixed64' | 'sfixed64'
  | 'double';

export type FieldKind = ScalarKind | 'message';

/**
 * How an id field is checked. In OTLP/JSON ids are hex strings, not base64.
 * - `trace` / `span`: the span's own ids: exactly 16 / 8 bytes, not all zero.
 * - `parent`: 0 or 8 bytes.
 * - `optionalTrace` / `optionalSpan`: ids elsewhere (links, log records, exemplars): 0 or 16 / 0 or 8.
 */
export type IdRole = 'trace' | 'span' | 'parent' | 'optionalTrace' | 'optionalSpan';

export interface FieldDef {
  readonly no: number;
  /** The .proto name (snake_case); OTLP/JSON readers accept it besides `json`. */
  readonly name: string;
  /** lowerCamelCase name used in OTLP/JSON. */
  readonly json: string;
  readonly kind: FieldKind;
  readonly repeated: boolean;
  /** The message type name, for kind 'message'. */
  readonly message?: string;
  readonly id?: IdRole;
  /** Set for members of a oneof and for proto3 `optional` fields: presence is kept even for zero values. */
  readonly explicitPresence?: boolean;
  /** Counted as one item of its signal (data points of a metric). */
  readonly countsItems?: boolean;
}

export interface MessageDef {
  readonly name: string;
  readonly fields: readonly FieldDef[];
}

interface FieldOptions {
  repeated?: boolean;
  message?: string;
  id?: IdRole;
  presence?: boolean;
  countsItems?: boolean;
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function f(no: number, name: string, kind: FieldKind, options: FieldOptions = {}): FieldDef {
  return {
    no,
    name,
    json: camel(name),
    kind,
    repeated: options.repeated ?? false,
    ...(options.message ? { message: options.message } : {}),
    ...(options.id ? { id: options.id } : {}),
    ...(options.presence ? { explicitPresence: true } : {}),
    ...(options.countsItems ? { countsItems: true } : {}),
  };
}
const msg = (no: number, name: string, type: string, options: FieldOptions = {}): FieldDef =>
  f(no, name, 'message', { ...options, message: type });
const rep = (no: number, name: string, type: string, options: FieldOptions = {}): FieldDef =>
  msg(no, name, type, { ...options, repeated: true });
const oneof = (no: number, name: string, kind: FieldKind, type?: string): FieldDef =>
  f(no, name, kind, { presence: true, ...(type ? { message: type } : {}) });

const definitions: MessageDef[] = [
  // opentelemetry.proto.common.v1
  { name: 'AnyValue', fields: [
    oneof(1, 'string_value', 'string'),
    oneof(2, 'bool_value', 'bool'),
    oneof(3, 'int_value', 'int64'),
    oneof(4, 'double_value', 'double'),
    oneof(5, 'array_value', 'message', 'ArrayValue'),
    oneof(6, 'kvlist_value', 'message', 'KeyValueList'),
    oneof(7, 'bytes_value', 'bytes'),
  ] },
  { name: 'ArrayValue', fields: [rep(1, 'values', 'AnyValue')] },
  { name: 'KeyValueList', fields: [rep(1, 'values', 'KeyValue')] },
  { name: 'KeyValue', fields: [f(1, 'key', 'string'), msg(2, 'value', 'AnyValue')] },
  { name: 'InstrumentationScope', fields: [
    f(1, 'name', 'string'),
    f(2, 'version', 'string'),
    rep(3, 'attributes', 'KeyValue'),
    f(4, 'dropped_attributes_count', 'uint32'),
  ] },
  { name: 'EntityRef', fields: [
    f(1, 'schema_url', 'string'),
    f(2, 'type', 'string'),
    f(3, 'id_keys', 'string', { repeated: true }),
    f(4, 'description_keys', 'string', { repeated: true }),
  ] },
  // opentelemetry.proto.resource.v1
  { name: 'Resource', fields: [
    rep(1, 'attributes', 'KeyValue'),
    f(2, 'dropped_attributes_count', 'uint32'),
    rep(3, 'entity_refs', 'EntityRef'),
  ] },

  // opentelemetry.proto.trace.v1 and collector.trace.v1
  { name: 'ExportTraceServiceRequest', fields: [rep(1, 'resource_spans', 'ResourceSpans')] },
  { name: 'ResourceSpans', fields: [
    msg(1, 'resource', 'Resource'),
    rep(2, 'scope_spans', 'ScopeSpans'),
    f(3, 'schema_url', 'string'),
  ] },
  { name: 'ScopeSpans', fields: [
    msg(1, 'scope', 'InstrumentationScope'),
    rep(2, 'spans', 'Span'),
    f(3, 'schema_url', 'string'),
  ] },
  { name: 'Span', fields: [
    f(1, 'trace_id', 'bytes', { id: 'trace' }),
    f(2, 'span_id', 'bytes', { id: 'span' }),
    f(3, 'trace_state', 'string'),
    f(4, 'parent_span_id', 'bytes', { id: 'parent' }),
    f(16, 'flags', 'fixed32'),
    f(5, 'name', 'string'),
    f(6, 'kind', 'enum'),
    f(7, 'start_time_unix_nano', 'fixed64'),
    f(8, 'end_time_unix_nano', 'fixed64'),
    rep(9, 'attributes', 'KeyValue'),
    f(10, 'dropped_attributes_count', 'uint32'),
    rep(11, 'events', 'Span.Event'),
    f(12, 'dropped_events_count', 'uint32'),
    rep(13, 'links', 'Span.Link'),
    f(14, 'dropped_links_count', 'uint32'),
    msg(15, 'status', 'Status'),
  ] },
  { name: 'Span.Event', fields: [
    f(1, 'time_unix_nano', 'fixed64'),
    f(2, 'name', 'string'),
    rep(3, 'attributes', 'KeyValue'),
    f(4, 'dropped_attributes_count', 'uint32'),
  ] },
  { name: 'Span.Link', fields: [
    f(1, 'trace_id', 'bytes', { id: 'optionalTrace' }),
    f(2, 'span_id', 'bytes', { id: 'optionalSpan' }),
    f(3, 'trace_state', 'string'),
    rep(4, 'attributes', 'KeyValue'),
    f(5, 'dropped_attributes_count', 'uint32'),
    f(6, 'flags', 'fixed32'),
  ] },
  { name: 'Status', fields: [f(2, 'message', 'string'), f(3, 'code', 'enum')] },
  { name: 'ExportTraceServiceResponse', fields: [msg(1, 'partial_success', 'ExportTracePartialSuccess')] },
  { name: 'ExportTracePartialSuccess', fields: [f(1, 'rejected_spans', 'int64'), f(2, 'error_message', 'string')] },

  // opentelemetry.proto.logs.v1 and collector.logs.v1
  { name: 'ExportLogsServiceRequest', fields: [rep(1, 'resource_logs', 'ResourceLogs')] },
  { name: 'ResourceLogs', fields: [
    msg(1, 'resource', 'Resource'),
    rep(2, 'scope_logs', 'ScopeLogs'),
    f(3, 'schema_url', 'string'),
  ] },
  { name: 'ScopeLogs', fields: [
    msg(1, 'scope', 'InstrumentationScope'),
    rep(2, 'log_records', 'LogRecord'),
    f(3, 'schema_url', 'string'),
  ] },
  { name: 'LogRecord', fields: [
    f(1, 'time_unix_nano', 'fixed64'),
    f(11, 'observed_time_unix_nano', 'fixed64'),
    f(2, 'severity_number', 'enum'),
    f(3, 'severity_text', 'string'),
    msg(5, 'body', 'AnyValue'),
    rep(6, 'attributes', 'KeyValue'),
    f(7, 'dropped_attributes_count', 'uint32'),
    f(8, 'flags', 'fixed32'),
    f(9, 'trace_id', 'bytes', { id: 'optionalTrace' }),
    f(10, 'span_id', 'bytes', { id: 'optionalSpan' }),
    f(12, 'event_name', 'string'),
  ] },
  { name: 'ExportLogsServiceResponse', fields: [msg(1, 'partial_success', 'ExportLogsPartialSuccess')] },
  { name: 'ExportLogsPartialSuccess', fields: [f(1, 'rejected_log_records', 'int64'), f(2, 'error_message', 'string')] },

  // opentelemetry.proto.metrics.v1 and collector.metrics.v1
  { name: 'ExportMetricsServiceRequest', fields: [rep(1, 'resource_metrics', 'ResourceMetrics')] },
  { name: 'ResourceMetrics', fields: [
    msg(1, 'resource', 'Resource'),
    rep(2, 'scope_metrics', 'ScopeMetrics'),
    f(3, 'schema_url', 'string'),
  ] },
  { name: 'ScopeMetrics', fields: [
    msg(1, 'scope', 'InstrumentationScope'),
    rep(2, 'metrics', 'Metric'),
    f(3, 'schema_url', 'string'),
  ] },
  { name: 'Metric', fields: [
    f(1, 'name', 'string'),
    f(2, 'description', 'string'),
    f(3, 'unit', 'string'),
    oneof(5, 'gauge', 'message', 'Gauge'),
    oneof(7, 'sum', 'message', 'Sum'),
    oneof(9, 'histogram', 'message', 'Histogram'),
    oneof(10, 'exponential_histogram', 'message', 'ExponentialHistogram'),
    oneof(11, 'summary', 'message', 'Summary'),
    rep(12, 'metadata', 'KeyValue'),
  ] },
  { name: 'Gauge', fields: [rep(1, 'data_points', 'NumberDataPoint', { countsItems: true })] },
  { name: 'Sum', fields: [
    rep(1, 'data_points', 'NumberDataPoint', { countsItems: true }),
    f(2, 'aggregation_temporality', 'enum'),
    f(3, 'is_monotonic', 'bool'),
  ] },
  { name: 'Histogram', fields: [
    rep(1, 'data_points', 'HistogramDataPoint', { countsItems: true }),
    f(2, 'aggregation_temporality', 'enum'),
  ] },
  { name: 'ExponentialHistogram', fields: [
    rep(1, 'data_points', 'ExponentialHistogramDataPoint', { countsItems: true }),
    f(2, 'aggregation_temporality', 'enum'),
  ] },
  { name: 'Summary', fields: [rep(1, 'data_points', 'SummaryDataPoint', { countsItems: true })] },
  { name: 'NumberDataPoint', fields: [
    rep(7, 'attributes', 'KeyValue'),
    f(2, 'start_time_unix_nano', 'fixed64'),
    f(3, 'time_unix_nano', 'fixed64'),
    oneof(4, 'as_double', 'double'),
    oneof(6, 'as_int', 'sfixed64'),
    rep(5, 'exemplars', 'Exemplar'),
    f(8, 'flags', 'uint32'),
  ] },
  { name: 'HistogramDataPoint', fields: [
    rep(9, 'attributes', 'KeyValue'),
    f(2, 'start_time_unix_nano', 'fixed64'),
    f(3, 'time_unix_nano', 'fixed64'),
    f(4, 'count', 'fixed64'),
    f(5, 'sum', 'double', { presence: true }),
    f(6, 'bucket_counts', 'fixed64', { repeated: true }),
    f(7, 'explicit_bounds', 'double', { repeated: true }),
    rep(8, 'exemplars', 'Exemplar'),
    f(10, 'flags', 'uint32'),
    f(11, 'min', 'double', { presence: true }),
    f(12, 'max', 'double', { presence: true }),
  ] },
  { name: 'ExponentialHistogramDataPoint', fields: [
    rep(1, 'attributes', 'KeyValue'),
    f(2, 'start_time_unix_nano', 'fixed64'),
    f(3, 'time_unix_nano', 'fixed64'),
    f(4, 'count', 'fixed64'),
    f(5, 'sum', 'double', { presence: true }),
    f(6, 'scale', 'sint32'),
    f(7, 'zero_count', 'fixed64'),
    msg(8, 'positive', 'ExponentialHistogramDataPoint.Buckets'),
    msg(9, 'negative', 'ExponentialHistogramDataPoint.Buckets'),
    f(10, 'flags', 'uint32'),
    rep(11, 'exemplars', 'Exemplar'),
    f(12, 'min', 'double', { presence: true }),
    f(13, 'max', 'double', { presence: true }),
    f(14, 'zero_threshold', 'double'),
  ] },
  { name: 'ExponentialHistogramDataPoint.Buckets', fields: [
    f(1, 'offset', 'sint32'),
    f(2, 'bucket_counts', 'uint64', { repeated: true }),
  ] },
  { name: 'SummaryDataPoint', fields: [
    rep(7, 'attributes', 'KeyValue'),
    f(2, 'start_time_unix_nano', 'fixed64'),
    f(3, 'time_unix_nano', 'fixed64'),
    f(4, 'count', 'fixed64'),
    f(5, 'sum', 'double'),
    rep(6, 'quantile_values', 'SummaryDataPoint.ValueAtQuantile'),
    f(8, 'flags', 'uint32'),
  ] },
  { name: 'SummaryDataPoint.ValueAtQuantile', fields: [f(1, 'quantile', 'double'), f(2, 'value', 'double')] },
  { name: 'Exemplar', fields: [
    rep(7, 'filtered_attributes', 'KeyValue'),
    f(2, 'time_unix_nano', 'fixed64'),
    oneof(3, 'as_double', 'double'),
    oneof(6, 'as_int', 'sfixed64'),
    f(4, 'span_id', 'bytes', { id: 'optionalSpan' }),
    f(5, 'trace_id', 'bytes', { id: 'optionalTrace' }),
  ] },
  { name: 'ExportMetricsServiceResponse', fields: [msg(1, 'partial_success', 'ExportMetricsPartialSuccess')] },
  { name: 'ExportMetricsPartialSuccess', fields: [f(1, 'rejected_data_points', 'int64'), f(2, 'error_message', 'string')] },

  // google.rpc.Status with google.protobuf.Any details; google.rpc.RetryInfo.
  { name: 'google.rpc.Status', fields: [
    f(1, 'code', 'int32'),
    f(2, 'message', 'string'),
    rep(3, 'details', 'google.protobuf.Any'),
  ] },
  { name: 'google.protobuf.Any', fields: [f(1, 'type_url', 'string'), f(2, 'value', 'bytes')] },
  { name: 'google.rpc.RetryInfo', fields: [msg(1, 'retry_delay', 'google.protobuf.Duration')] },
  { name: 'google.protobuf.Duration', fields: [f(1, 'seconds', 'int64'), f(2, 'nanos', 'int32')] },
];

export const MESSAGES: ReadonlyMap<string, MessageDef> = new Map(definitions.map((d) => [d.name, d]));

export function messageDef(name: string): MessageDef {
  const def = MESSAGES.get(name);
  if (!def) throw new Error(`OTLP schema: no message ${name}`);
  return def;
}

// Every referenced message must exist: fail at load, not on the first request that uses it.
for (const def of definitions) {
  for (const field of def.fields) {
    if (field.kind === 'message' && !MESSAGES.has(field.message ?? '')) {
      throw new Error(`OTLP schema: ${def.name}.${field.name} refers to unknown message ${field.message}`);
    }
  }
}

/** The three signals and the names of their messages. */
export const SIGNALS = {
  traces: {
    request: 'ExportTraceServiceRequest',
    response: 'ExportTraceServiceResponse',
    resourceContainer: 'ResourceSpans',
    scopeContainer: 'ScopeSpans',
    item: 'Span',
    rejectedField: 'rejected_spans',
    itemNoun: 'span',
    grpcService: 'opentelemetry.proto.collector.trace.v1.TraceService',
    httpPath: '/v1/traces',
  },
  metrics: {
    request: 'ExportMetricsServiceRequest',
    response: 'ExportMetricsServiceResponse',
    resourceContainer: 'ResourceMetrics',
    scopeContainer: 'ScopeMetrics',
    item: 'Metric',
    rejectedField: 'rejected_data_points',
    itemNoun: 'data point',
    grpcService: 'opentelemetry.proto.collector.metrics.v1.MetricsService',
    httpPath: '/v1/metrics',
  },
  logs: {
    request: 'ExportLogsServiceRequest',
    response: 'ExportLogsServiceResponse',
    resourceContainer: 'ResourceLogs',
    scopeContainer: 'ScopeLogs',
    item: 'LogRecord',
    rejectedField: 'rejected_log_records',
    itemNoun: 'log record',
    grpcService: 'opentelemetry.proto.collector.logs.v1.LogsService',
    httpPath: '/v1/logs',
  },
} as const;

export type Signal = keyof typeof SIGNALS;
export const SIGNAL_NAMES: readonly Signal[] = ['traces', 'metrics', 'logs'];
