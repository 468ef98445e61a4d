// A remote-write body from snappy to records, shared by the JS thread (receiver.ts) and the
// decode workers (decode-worker.ts).

import { uncompress, uncompressSync } from 'snappy';
import { InvalidWriteError, ProtocolVersion, RejectReason, type DecodedWrite } from './decoded-write.ts';
import { decodeWriteRequestV1 } from './remote-write-v1.ts';
import { decodeRequestV2 } from './remote-write-v2.ts';

/**
 * Bodies that decompress to at most this many bytes are decompressed on the calling thread (well
 * under a millisecond: Prometheus sends ~350 KiB per 2,000 samples), larger ones on the thread
 * pool when the caller is the JS thread. snappy's output is allocated by its own allocator
 * (mimalloc), which keeps what is freed from another thread: decompressed on the thread pool and
 * collected on the JS thread, the bodies held 400-500 MB of RSS under remote-write load
 * (mimalloc's stats: 58 MiB in use at peak). Decompressed on the calling thread and copied into a
 * Node buffer, the snappy output is freed where it was allocated, at once; the broker's RSS at the
 * end of the remote-write bench fell from 1,330-1,400 MiB to 900 MiB (table writer off),
 * throughput unchanged.
 */
const SYNC_DECOMPRESS_MAX_BYTES = 4 * 1024 * 1024;

/** Decompresses a snappy block; `onThisThread` never hands it to the thread pool (worker threads). */
export async function decompress(body: Buffer, uncompressedBytes: number, onThisThread = false): Promise<Buffer> {
  try {
    if (onThisThread || uncompressedBytes <= SYNC_DECOMPRESS_MAX_BYTES) return uncompressSync(body, { asBuffer: true, copyOutputData: true }) as Buffer;
    return (await uncompress(body, { asBuffer: true, copyOutputData: true })) as Buffer;
  } catch (err) {
    throw new InvalidWriteError(400, RejectReason.BAD_SNAPPY,
      `the body is not valid snappy (block format): ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function decodeMessage(version: ProtocolVersion, message: Buffer): DecodedWrite {
  return version === ProtocolVersion.V1 ? decodeWriteRequestV1(message) : decodeRequestV2(message);
}
