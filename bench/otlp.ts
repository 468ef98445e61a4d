// OTLP ingest benchmark (bench/otlp.ts). Two parts:
//
// 1. Decoders, in this process: the cost per span of turning one realistic 512-span
//    ExportTraceServiceRequest into per-trace records, for the candidates: the hand-written
//    validating walk + splitter (connectors/otlp/split.ts), protobufjs (reflection from the
//    same schema table) and @bufbuild/protobuf (descriptors from the same table), each both
//    decode-only and decode + split + re-encode; and the splitter on 512 log records.
// 2. A Wharf broker process fed over OTLP/HTTP protobuf by CLIENTS concurrent keep-alive
//    clients sending pre-built payloads (512 spans or 512 log records per request, distinct
//    services and traces) as fast as answers come (every answer is a durable acks=all produce):
//    spans/s and log records/s sustained; then p50/p99 request latency at half that rate, with
//    requests sent on a fixed schedule (latency counted from the scheduled time).
//
// Prints a table for people and one JSON line per figure: {"bench", "metric", "value", "unit"}.
// BENCH_OTLP_SECONDS (default 10) per phase, BENCH_OTLP_CLIENTS (default 8),
// BENCH_OTLP_URL=http://host:port to drive a Wharf that is already running instead of starting one.

import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import protobuf from 'protobufjs';
import { create, createFileRegistry, fromBinary, toBinary, type DescMessage } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { jsonToProto } from '../connectors/otlp/json.ts';
import { MESSAGES } from '../connectors/otlp/schema.ts';
import { splitRequest } from '../connectors/otlp/split.ts';
import { logsRequest, traceRequest } from '../test/unit/otlp/payloads.ts';
import { Figures, percentile, postProtobuf as post, startBrokerProcess, type BrokerProcess } from './lib.ts';

const SECONDS = Number(process.env.BENCH_OTLP_SECONDS ?? 10);
const CLIENTS = Number(process.env.BENCH_OTLP_CLIENTS ?? 8);
const ITEMS_PER_REQUEST = 512;
const PAYLOADS = 16;

const figures = new Figures();
const report = figures.report.bind(figures);

// ---------------------------------------------------------------------------------------------
// 1. Decoders

const flat = (name: string): string => name.replaceAll('.', '_');

function protobufjsRoot(): protobuf.Root {
  const nested: Record<string, protobuf.AnyNestedObject> = {};
  for (const def of MESSAGES.values()) {
    const fields: Record<string, protobuf.IField> = {};
    for (const f of def.fields) {
      const type = f.kind === 'message' ? flat(f.message!) : f.kind === 'enum' ? 'int32' : f.kind;
      fields[f.json] = { id: f.no, type, ...(f.repeated ? { rule: 'repeated' } : {}) };
    }
    nested[flat(def.name)] = { fields };
  }
  return protobuf.Root.fromJSON({ nested: { otlp: { nested } } });
}

const DESCRIPTOR_TYPE: Record<string, number> = {
  double: 1, int64: 3, uint64: 4, int32: 5, fixed64: 6, fixed32: 7, bool: 8, string: 9,
  message: 11, bytes: 12, uint32: 13, enum: 5, sfixed64: 16, sint32: 17,
};

function bufbuildRequestType(): DescMessage {
  const messageType = [...MESSAGES.values()].map((def) => ({
    name: flat(def.name),
    field: def.fields.map((f) => ({
      name: f.name, number: f.no, jsonName: f.json, label: f.repeated ? 3 : 1, type: DESCRIPTOR_TYPE[f.kind]!,
      ...(f.kind === 'message' ? { typeName: `.otlp.${flat(f.message!)}` } : {}),
    })),
  }));
  const file = create(FileDescriptorProtoSchema, { name: 'otlp.proto', package: 'otlp', syntax: 'proto3', messageType });
  return createFileRegistry(file, () => undefined).getMessage('otlp.ExportTraceServiceRequest')!;
}

interface DecodedSpan { traceId: Uint8Array }
interface DecodedRequest {
  resourceSpans: { resource?: unknown; schemaUrl?: string; scopeSpans: { scope?: unknown; schemaUrl?: string; spans: DecodedSpan[] }[] }[];
}

/** Groups decoded spans by trace id per resource and scope, as the splitter does, building request objects. */
function groupByTrace(request: DecodedRequest): object[] {
  const out: object[] = [];
  for (const rs of request.resourceSpans) {
    const groups = new Map<string, { scope: unknown; schemaUrl?: string; spans: DecodedSpan[] }[]>();
    for (const ss of rs.scopeSpans) {
      for (const span of ss.spans) {
        const key = Buffer.from(span.traceId).toString('hex');
        let scopes = groups.get(key);
        if (!scopes) groups.set(key, (scopes = []));
        let last = scopes[scopes.length - 1];
        if (!last || last.scope !== ss.scope) scopes.push((last = { scope: ss.scope, schemaUrl: ss.schemaUrl, spans: [] }));
        last.spans.push(span);
      }
    }
    for (const scopeSpans of groups.values()) out.push({ resourceSpans: [{ resource: rs.resource, schemaUrl: rs.schemaUrl, scopeSpans }] });
  }
  return out;
}

function nsPerItem(fn: () => void, items: number): number {
  let best = Infinity;
  for (let round = 0; round < 10; round++) {
    const iterations = 50;
    const start = performance.now();
    for (let i = 0; i < iterations; i++) fn();
    const ns = ((performance.now() - start) * 1e6) / iterations / items;
    if (round >= 3) best = Math.min(best, ns); // rounds 0-2 warm the JIT up
  }
  return best;
}

function decoderBench(): void {
  const body = jsonToProto('ExportTraceServiceRequest', traceRequest({ spans: ITEMS_PER_REQUEST, spansPerTrace: 16 }));
  const logs = jsonToProto('ExportLogsServiceRequest', logsRequest({ records: ITEMS_PER_REQUEST }));
  console.log(`# decoders: one ExportTraceServiceRequest of ${ITEMS_PER_REQUEST} spans (${body.length} B, ${Math.round(body.length / ITEMS_PER_REQUEST)} B/span, 32 traces), best of 7 rounds`);
  const limits = { maxRecordBytes: 1_000_000 };
  report('otlp_decode', 'walk_split_ns_per_span', nsPerItem(() => splitRequest('traces', body, limits), ITEMS_PER_REQUEST), 'ns/span');
  report('otlp_decode', 'walk_split_logs_ns_per_record', nsPerItem(() => splitRequest('logs', logs, limits), ITEMS_PER_REQUEST), 'ns/record');

  const Request = protobufjsRoot().lookupType('otlp.ExportTraceServiceRequest');
  report('otlp_decode', 'protobufjs_decode_ns_per_span', nsPerItem(() => Request.decode(body), ITEMS_PER_REQUEST), 'ns/span');
  report('otlp_decode', 'protobufjs_split_ns_per_span', nsPerItem(() => {
    for (const part of groupByTrace(Request.decode(body) as unknown as DecodedRequest)) Request.encode(part).finish();
  }, ITEMS_PER_REQUEST), 'ns/span');

  const desc = bufbuildRequestType();
  report('otlp_decode', 'bufbuild_decode_ns_per_span', nsPerItem(() => fromBinary(desc, body), ITEMS_PER_REQUEST), 'ns/span');
  report('otlp_decode', 'bufbuild_split_ns_per_span', nsPerItem(() => {
    for (const part of groupByTrace(fromBinary(desc, body) as unknown as DecodedRequest)) toBinary(desc, create(desc, part as never));
  }, ITEMS_PER_REQUEST), 'ns/span');
}

// ---------------------------------------------------------------------------------------------
// 2. A broker process over OTLP/HTTP

/** A broker process, checked to serve OTLP/HTTP. */
async function startBroker(dataDir: string): Promise<{ broker: BrokerProcess; otlpUrl: string }> {
  const broker = await startBrokerProcess({ dataDir });
  const otlpUrl = `http://127.0.0.1:${broker.otlpHttpPort}`;
  const probe = await fetch(`${otlpUrl}/v1/traces`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }).then((r) => r.status, () => 0);
  if (probe !== 200) {
    await broker.stop();
    throw new Error(`the broker does not serve OTLP/HTTP on ${broker.otlpHttpPort}`);
  }
  return { broker, otlpUrl };
}

interface LoadResult { itemsPerSecond: number; requests: number; refused: number; failed: number; latenciesMs: number[] }

/** CLIENTS closed-loop clients, each sending the next payload when its previous answer came. */
async function maxLoad(url: URL, payloads: Buffer[], seconds: number): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const end = performance.now() + seconds * 1000;
  const result: LoadResult = { itemsPerSecond: 0, requests: 0, refused: 0, failed: 0, latenciesMs: [] };
  const started = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, async (_, client) => {
    for (let i = client; performance.now() < end; i += CLIENTS) {
      const answer = await post(agent, url, payloads[i % payloads.length]!);
      if (answer.status === 200) {
        result.requests++;
        result.latenciesMs.push(answer.ms);
      } else if (answer.status === 429 || answer.status === 503) {
        result.refused++;
        await sleep(5);
      } else result.failed++;
    }
  }));
  result.itemsPerSecond = (result.requests * ITEMS_PER_REQUEST) / ((performance.now() - started) / 1000);
  agent.destroy();
  return result;
}

/** Requests on a fixed schedule (open loop) at `requestsPerSecond`; latency from the scheduled time. */
async function pacedLoad(url: URL, payloads: Buffer[], requestsPerSecond: number, seconds: number): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const result: LoadResult = { itemsPerSecond: 0, requests: 0, refused: 0, failed: 0, latenciesMs: [] };
  const intervalMs = 1000 / requestsPerSecond;
  const count = Math.floor(seconds * requestsPerSecond);
  const start = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const due = start + i * intervalMs;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(post(agent, url, payloads[i % payloads.length]!).then((answer) => {
      if (answer.status === 200) {
        result.requests++;
        result.latenciesMs.push(performance.now() - due);
      } else if (answer.status === 429 || answer.status === 503) result.refused++;
      else result.failed++;
    }));
  }
  await Promise.all(pending);
  result.itemsPerSecond = (result.requests * ITEMS_PER_REQUEST) / ((performance.now() - start) / 1000);
  agent.destroy();
  return result;
}

async function signalBench(otlpUrl: string, signal: 'spans' | 'logs', payloads: Buffer[]): Promise<void> {
  const url = new URL(signal === 'spans' ? '/v1/traces' : '/v1/logs', otlpUrl);
  const unit = signal === 'spans' ? 'spans/s' : 'log records/s';
  const bytes = Math.round(payloads.reduce((n, p) => n + p.length, 0) / payloads.length);
  console.log(`# ${signal}: ${ITEMS_PER_REQUEST} per request (${bytes} B protobuf), ${CLIENTS} clients, ${SECONDS} s, acks=all`);
  await maxLoad(url, payloads, 2); // warm-up: creates the topic, warms the JIT
  const max = await maxLoad(url, payloads, SECONDS);
  if (max.failed > 0) throw new Error(`${max.failed} ${signal} requests failed`);
  report(`otlp_http_${signal}`, 'max_items_per_s', max.itemsPerSecond, unit);
  report(`otlp_http_${signal}`, 'max_mib_per_s', (max.itemsPerSecond / ITEMS_PER_REQUEST) * bytes / 2 ** 20, 'MiB/s');
  const maxSorted = max.latenciesMs.sort((a, b) => a - b);
  report(`otlp_http_${signal}`, 'max_p99_ms', percentile(maxSorted, 0.99), 'ms');
  report(`otlp_http_${signal}`, 'max_refused_requests', max.refused, 'requests');
  const half = await pacedLoad(url, payloads, max.itemsPerSecond / 2 / ITEMS_PER_REQUEST, SECONDS);
  const sorted = half.latenciesMs.sort((a, b) => a - b);
  report(`otlp_http_${signal}`, 'half_rate_items_per_s', half.itemsPerSecond, unit);
  report(`otlp_http_${signal}`, 'half_rate_p50_ms', percentile(sorted, 0.5), 'ms');
  report(`otlp_http_${signal}`, 'half_rate_p99_ms', percentile(sorted, 0.99), 'ms');
  if (half.refused + half.failed > 0) report(`otlp_http_${signal}`, 'half_rate_refused_or_failed', half.refused + half.failed, 'requests');
}

async function main(): Promise<void> {
  decoderBench();
  const spans = Array.from({ length: PAYLOADS }, (_, i) =>
    jsonToProto('ExportTraceServiceRequest', traceRequest({ spans: ITEMS_PER_REQUEST, spansPerTrace: 16, seed: 1000 + i, serviceName: `svc-${i}`, instance: i })));
  const logs = Array.from({ length: PAYLOADS }, (_, i) =>
    jsonToProto('ExportLogsServiceRequest', logsRequest({ records: ITEMS_PER_REQUEST, seed: 2000 + i, serviceName: `svc-${i}`, instance: i })));

  const work = await mkdtemp(path.join(os.tmpdir(), 'wharf-bench-otlp-'));
  let broker: Awaited<ReturnType<typeof startBroker>> | undefined;
  try {
    const otlpUrl = process.env.BENCH_OTLP_URL ?? (broker = await startBroker(path.join(work, 'data'))).otlpUrl;
    await signalBench(otlpUrl, 'spans', spans);
    await signalBench(otlpUrl, 'logs', logs);
  } finally {
    await broker?.broker.stop();
    await rm(work, { recursive: true, force: true });
  }
  figures.printTable();
}

await main();
