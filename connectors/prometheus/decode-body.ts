// A remote-write body from snappy to records, shared by the JS thread (receiver.ts) and the
// decode workers (decode-worker.ts).

import { uncompress, uncompressSync } from 'snappy';
import { InvalidWriteError, ProtocolVersion, RejectReason, type DecodedWrite } from './decoded-write.ts';
import { decodeWriteRequestV1 } from './remote-write-v1.ts';
import { decodeRequestV2 } from './remote-write-v2.ts';

/**
 * Bodies that decompress to at most this many bytes are decompressed on the JS thread (well under
 * a millisecond: Prometheus sends ~350 KiB per 2,000 samples), larger ones on the thread pool.
 * snappy's output is allocated by its own allocator (mimalloc), which keeps what is freed from
 * another thread: decompressed on the thread pool and collected on the JS thread, the bodies
 * held 400-500 MB of RSS under remote-write load (mimalloc's stats: 58 MiB in use at peak).
 * Decompressed on the calling thread and copied into a Node buffer, the snappy output is freed
 * where it was allocated, at once; the broker's RSS at the end of the remote-write bench fell
 * from 1,330-1,400 MiB to 900 MiB (table writer off), throughput unchanged.
 */
const SYNC_DECOMPRESS_MAX_BYTES = 4 * 1024 * 1024;

/** Decompresses a snappy block on the calling thread (a decode worker's, or the JS thread's for small bodies). */
export function decompressSync(body: Buffer): Buffer {
  try {
    return uncompressSync(body, { asBuffer: true, copyOutputData: true }) as Buffer;
  } catch (err) {
    throw badSnappy(err);
  }
}

/** Decompresses a snappy block for the JS thread: a body larger than SYNC_DECOMPRESS_MAX_BYTES on the thread pool. */
export async function decompress(body: Buffer, uncompressedBytes: number): Promise<Buffer> {
  if (uncompressedBytes <= SYNC_DECOMPRESS_MAX_BYTES) return decompressSync(body);
  try {
    return (await uncompress(body, { asBuffer: true, copyOutputData: true })) as Buffer;
  } catch (err) {
    throw badSnappy(err);
  }
}

function badSnappy(err: unknown): InvalidWriteError {
  return new InvalidWriteError(400, RejectReason.BAD_SNAPPY,
    `the body is not valid snappy (block format): ${err instanceof Error ? err.message : String(err)}`);
}

export function decodeMessage(version: ProtocolVersion, message: Buffer): DecodedWrite {
  return version === ProtocolVersion.V1 ? decodeWriteRequestV1(message) : decodeRequestV2(message);
}
