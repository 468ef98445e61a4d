// A remote-write decode worker thread (see decode-pool.ts): snappy, decode and validation, then
// the records encoded as record batches for the topic's partitions. Replies carry the batches
// transferred, or what was wrong: an InvalidWriteError's status and reason, a ProduceError's
// Kafka error code, or any other failure's message.

import { parentPort } from 'node:worker_threads';
import { ProduceError, encodeForPartitions } from '../../src/broker/in-process-producer.ts';
import { freeIfOwned } from '../../src/storage/buffers.ts';
import { InvalidWriteError } from './decoded-write.ts';
import { decodeMessage, decompressSync } from './decode-body.ts';
import type { DecodeJob, DecodeReply } from './decode-pool.ts';
import { transferable } from '../transfer.ts';

function serve(job: DecodeJob): { reply: DecodeReply; transfer: ArrayBuffer[] } {
  const body = Buffer.from(job.body.buffer, job.body.byteOffset, job.body.byteLength);
  try {
    const message = decompressSync(body);
    freeIfOwned(job.body);
    const decoded = decodeMessage(job.version, message);
    const batches = encodeForPartitions(job.topic, decoded.columns, job.layout, Date.now()).map((b) => ({ ...b, batch: transferable(b.batch) }));
    // The records are in the batches now (the key cache keeps copies of its own): the decompressed
    // request, several MB/s per worker, is freed rather than left to this thread's GC.
    freeIfOwned(message);
    return {
      reply: {
        seq: job.seq,
        ok: true,
        counts: { samples: decoded.samples, histograms: decoded.histograms, exemplars: decoded.exemplars },
        batches,
      },
      transfer: batches.map((b) => b.batch.buffer as ArrayBuffer),
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof InvalidWriteError) return { reply: { seq: job.seq, ok: false, invalid: { status: err.status, reason: err.reason }, message }, transfer: [] };
    if (err instanceof ProduceError) return { reply: { seq: job.seq, ok: false, produceErrorCode: err.errorCode, message }, transfer: [] };
    return { reply: { seq: job.seq, ok: false, message: err instanceof Error ? (err.stack ?? message) : message }, transfer: [] };
  }
}

const port = parentPort;
if (port === null) throw new Error('decode-worker.ts runs as a worker thread (decode-pool.ts starts it)');
port.on('message', (job: DecodeJob) => {
  const { reply, transfer } = serve(job);
  port.postMessage(reply, transfer);
});
