// The topic encodings: what OtlpIngest writes with otlp_proto and otlp_json, and the encoding
// documents in schemas/ agree with the code and the configuration defaults.

import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultConfig } from '../../../src/config/config.ts';
import type { ProducerRecord, SendResult, TopicProducer } from '../../../src/broker/in-process-producer.ts';
import { OtlpIngest } from '../../../connectors/otlp/ingest.ts';
import { jsonToProto, protoToJson } from '../../../connectors/otlp/json.ts';
import { SIGNALS, SIGNAL_NAMES } from '../../../connectors/otlp/schema.ts';
import { logsRequest, traceRequest } from './payloads.ts';

class Recorder implements TopicProducer {
  sent: { topic: string; records: readonly ProducerRecord[] }[] = [];
  async send(topic: string, records: readonly ProducerRecord[]): Promise<SendResult> {
    this.sent.push({ topic, records });
    return { topic, appends: [] };
  }
}

function ingestWith(encoding: 'otlp_proto' | 'otlp_json'): { ingest: OtlpIngest; producer: Recorder } {
  const config = defaultConfig();
  config.ingest.otlpEncoding = encoding;
  const producer = new Recorder();
  return { ingest: new OtlpIngest({ ingest: config.ingest, messageMaxBytes: config.messageMaxBytes }, producer), producer };
}

describe('topic encodings', () => {
  it('otlp_json writes the same records as otlp_proto, as OTLP/JSON', async () => {
    const body = jsonToProto('ExportTraceServiceRequest', traceRequest({ spans: 24, spansPerTrace: 6 }));
    const proto = ingestWith('otlp_proto');
    const json = ingestWith('otlp_json');
    expect(await proto.ingest.export('traces', body, 'protobuf', 'http')).toEqual({ kind: 'ok', rejected: 0, message: '' });
    expect(await json.ingest.export('traces', body, 'protobuf', 'http')).toEqual({ kind: 'ok', rejected: 0, message: '' });
    const protoRecords = proto.producer.sent[0]!.records;
    const jsonRecords = json.producer.sent[0]!.records;
    expect(jsonRecords.map((r) => r.key)).toEqual(protoRecords.map((r) => r.key));
    for (const [i, record] of jsonRecords.entries()) {
      const parsed = JSON.parse(record.value!.toString('utf8'));
      expect(parsed).toEqual(protoToJson('ExportTraceServiceRequest', protoRecords[i]!.value!));
      expect(parsed.resourceSpans[0].scopeSpans[0].spans[0].traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(parsed.resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano).toMatch(/^\d+$/);
      // And it reads back as the same protobuf request.
      expect(jsonToProto('ExportTraceServiceRequest', parsed)).toEqual(Buffer.from(protoRecords[i]!.value!));
    }
  });

  it('logs go to otlp_logs keyed by service name, as one ExportLogsServiceRequest per resource', async () => {
    const { ingest, producer } = ingestWith('otlp_proto');
    await ingest.export('logs', Buffer.from(JSON.stringify(logsRequest({ records: 5, serviceName: 'billing' }))), 'json', 'http');
    expect(producer.sent[0]!.topic).toBe('otlp_logs');
    expect(producer.sent[0]!.records.map((r) => r.key?.toString())).toEqual(['billing']);
  });
});

describe('schemas/otlp_*.json', () => {
  const schemasDir = join(import.meta.dirname, '..', '..', '..', 'schemas');
  const load = (name: string) => JSON.parse(readFileSync(join(schemasDir, name), 'utf8'));
  const defaults = defaultConfig().ingest;
  const topicOf = { traces: defaults.spansTopic, metrics: defaults.metricsTopic, logs: defaults.logsTopic };
  const packages = { traces: 'trace', metrics: 'metrics', logs: 'logs' };

  it('otlp_proto.json describes every signal with the configured topics and the request messages', () => {
    const doc = load('otlp_proto.json');
    expect(doc).toMatchObject({ name: 'otlp_proto', version: 1, selectedBy: { setting: 'otlp.encoding', value: defaults.otlpEncoding } });
    expect(doc.topics.map((t: { signal: string }) => t.signal)).toEqual(SIGNAL_NAMES);
    for (const topic of doc.topics) {
      const signal = topic.signal as keyof typeof SIGNALS;
      expect(topic.topic.default).toBe(topicOf[signal]);
      expect(topic.partitions.default).toBe(defaults.topicPartitions);
      expect(topic.value.message).toBe(`opentelemetry.proto.collector.${packages[signal]}.v1.${SIGNALS[signal].request}`);
      expect(topic.value.format).toBe('protobuf');
    }
  });

  it('otlp_json.json names the same topics and messages', () => {
    const doc = load('otlp_json.json');
    expect(doc).toMatchObject({ name: 'otlp_json', version: 1, sameAs: 'otlp_proto', value: { format: 'json' } });
    for (const topic of doc.topics) {
      const signal = topic.signal as keyof typeof SIGNALS;
      expect(topic.topic.default).toBe(topicOf[signal]);
      expect(topic.message).toBe(`opentelemetry.proto.collector.${packages[signal]}.v1.${SIGNALS[signal].request}`);
    }
  });
});
