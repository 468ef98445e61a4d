// Builds real Kafka v2 record batches with kafkajs's own encoder (test-only use of its internals).

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface KafkajsEncoder {
  buffer: Buffer;
}

interface KafkajsRecordBatchOptions {
  compression?: number;
  firstTimestamp: number;
  maxTimestamp: number;
  lastOffsetDelta: number;
  producerId?: number;
  producerEpoch?: number;
  firstSequence?: number;
  transactional?: boolean;
  records: unknown[];
}

const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0') as {
  RecordBatch: (options: KafkajsRecordBatchOptions) => Promise<KafkajsEncoder>;
};
const Record = require('kafkajs/src/protocol/recordBatch/record/v0') as (options: {
  offsetDelta: number;
  timestampDelta: number;
  key: Buffer | null;
  value: Buffer;
}) => unknown;

export interface BatchSpec {
  /** Record values; default one record "v0". */
  values?: string[];
  /** Per-record timestamps; default all 1_000_000. */
  timestampsMs?: number[];
  producerId?: number;
  producerEpoch?: number;
  firstSequence?: number;
  /** 0 none, 1 gzip (the codecs kafkajs has). */
  compression?: 0 | 1;
}

export async function buildBatch(spec: BatchSpec = {}): Promise<Buffer> {
  const values = spec.values ?? ['v0'];
  const timestamps = spec.timestampsMs ?? values.map(() => 1_000_000);
  const firstTimestamp = timestamps[0]!;
  const records = values.map((value, i) =>
    Record({ offsetDelta: i, timestampDelta: timestamps[i]! - firstTimestamp, key: null, value: Buffer.from(value) }),
  );
  const encoder = await RecordBatch({
    compression: spec.compression ?? 0,
    firstTimestamp,
    maxTimestamp: Math.max(...timestamps),
    lastOffsetDelta: values.length - 1,
    producerId: spec.producerId ?? -1,
    producerEpoch: spec.producerEpoch ?? 0,
    firstSequence: spec.firstSequence ?? 0,
    records,
  });
  return Buffer.from(encoder.buffer);
}

/** An idempotent batch of `count` records starting at sequence `firstSequence`. */
export function idempotentBatch(producerId: number, producerEpoch: number, firstSequence: number, count = 1): Promise<Buffer> {
  const values = Array.from({ length: count }, (_, i) => `p${producerId}-e${producerEpoch}-s${firstSequence + i}`);
  return buildBatch({ values, producerId, producerEpoch, firstSequence });
}
