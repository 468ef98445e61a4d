// One Kafka client connection: framing (4-byte size, then the request), a bound on frame size
// and on bytes in flight, and responses written in request order (Kafka's per-connection
// ordering guarantee) while requests are processed concurrently.
//
// Responses go to the socket in slices of at most WRITE_SLICE_BYTES, the next slice once the
// kernel has taken the previous one and the event loop has had a turn. One write of a whole
// Fetch response (megabytes, to a consumer replaying old data) is one writev that copies up to
// the socket's send buffer (4 MiB with Linux's autotuning) in the kernel, and on loopback runs
// the receiver's TCP work too: milliseconds with the event loop held, in front of every produce
// request waiting to be read.

import type { Socket } from 'node:net';
import { log } from '../metrics/log.ts';
import { connectionsActive, connectionsRejectedTotal } from '../metrics/registry.ts';
import { allocFreeable, freeIfOwned } from '../storage/buffers.ts';
import { releaseAll, type ReadLease } from '../storage/stream.ts';

export interface FrameResponse {
  /** The response, size prefix included. */
  chunks: Buffer[];
  /** Pins of memory the chunks point into (log cache slabs): released once they are written. */
  leases: ReadLease[];
}

export interface FrameHandler {
  /**
   * Handles one request frame (without its size prefix). Returns the response, or null when the
   * request gets no response (Produce acks=0). Throwing closes the connection.
   */
  handle(frame: Buffer, connection: Connection): Promise<FrameResponse | null>;
}

export interface ConnectionLimits {
  socketRequestMaxBytes: number;
  maxInflightBytes: number;
}

/** Most bytes handed to the socket in one go (one writev). */
export const WRITE_SLICE_BYTES = 256 * 1024;

interface Pending {
  done: boolean;
  response: FrameResponse | null;
  frameBytes: number;
}

export class Connection {
  readonly socket: Socket;
  readonly remote: string;
  /** client.id from the last request header; zone routing reads it. */
  clientId: string | null = null;
  private readonly handler: FrameHandler;
  private readonly limits: ConnectionLimits;
  /** Socket chunks not yet wholly taken, as the socket gave them; headOffset bytes of the first are taken. */
  private chunks: Buffer[] = [];
  private headOffset = 0;
  private bufferedBytes = 0;
  private readonly pending: Pending[] = [];
  private inflightBytes = 0;
  private paused = false;
  private closed = false;
  /** Answered responses not yet (wholly) handed to the socket, in order. */
  private readonly outbox: FrameResponse[] = [];
  /** Where the writing of outbox[0] is: its chunk, and the offset in that chunk. */
  private outChunk = 0;
  private outOffset = 0;
  /** A slice is with the socket; the next waits for it. */
  private writing = false;

  constructor(socket: Socket, handler: FrameHandler, limits: ConnectionLimits) {
    this.socket = socket;
    this.handler = handler;
    this.limits = limits;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    connectionsActive.inc();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => log.debug({ remote: this.remote, err: err.message }, 'connection error'));
    socket.on('close', () => {
      this.closed = true;
      connectionsActive.dec();
    });
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    connectionsRejectedTotal.inc({ reason });
    log.info({ remote: this.remote, reason }, 'closing connection');
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
    while (!this.closed && this.bufferedBytes >= 4) {
      const size = this.peekInt32();
      if (size < 0 || size > this.limits.socketRequestMaxBytes) {
        this.close(size < 0 ? 'negative_frame_size' : 'frame_too_large');
        return;
      }
      if (this.bufferedBytes < 4 + size) return;
      this.consume(4, undefined);
      const frame = allocFreeable(size);
      this.consume(size, frame);
      this.dispatch(frame);
    }
  }

  /** The frame size at the front of the buffered bytes, which may span chunks. */
  private peekInt32(): number {
    const head = this.chunks[0]!;
    if (head.length - this.headOffset >= 4) return head.readInt32BE(this.headOffset);
    let value = 0;
    for (let i = 0, chunk = 0, offset = this.headOffset; i < 4; i++, offset++) {
      while (offset >= this.chunks[chunk]!.length) {
        chunk++;
        offset = 0;
      }
      value = value * 256 + this.chunks[chunk]![offset]!;
    }
    return value | 0;
  }

  /**
   * Takes n bytes off the front of the buffered chunks, copied into `out` (or dropped), and frees
   * each socket chunk once all of its bytes are taken. Frames are always copies, so no view of a
   * chunk outlives it: at hundreds of MiB/s, chunks left to the GC start a mark-compact every
   * 64 MB (buffers.ts). A frame of OWNED_BUFFER_BYTES or more owns its memory (smaller ones
   * are slices of Buffer's pool), and a Produce frame is freed once answered (router.ts).
   */
  private consume(n: number, out: Buffer | undefined): void {
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const part = Math.min(chunk.length - this.headOffset, n - filled);
      if (out !== undefined) chunk.copy(out, filled, this.headOffset, this.headOffset + part);
      filled += part;
      this.headOffset += part;
      if (this.headOffset === chunk.length) {
        this.chunks.shift();
        this.headOffset = 0;
        freeIfOwned(chunk);
      }
    }
    this.bufferedBytes -= n;
  }

  private dispatch(frame: Buffer): void {
    const entry: Pending = { done: false, response: null, frameBytes: frame.length };
    this.pending.push(entry);
    this.inflightBytes += frame.length;
    if (!this.paused && this.inflightBytes > this.limits.maxInflightBytes) {
      this.paused = true;
      this.socket.pause();
    }
    this.handler.handle(frame, this).then(
      (response) => {
        entry.done = true;
        entry.response = response;
        this.flushResponses();
      },
      (err: unknown) => {
        log.warn({ remote: this.remote, err: err instanceof Error ? err.message : String(err) }, 'request failed');
        this.close('request_error');
      },
    );
  }

  private flushResponses(): void {
    while (this.pending.length > 0 && this.pending[0]!.done) {
      const entry = this.pending.shift()!;
      this.inflightBytes -= entry.frameBytes;
      if (entry.response !== null) this.outbox.push(entry.response);
    }
    if (!this.writing) this.writeSlice();
    if (this.paused && this.inflightBytes <= this.limits.maxInflightBytes) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /**
   * Hands the socket up to WRITE_SLICE_BYTES of the outbox (one writev); when more is left, goes
   * on once the kernel has taken this slice and the event loop has had a turn. A response's leases
   * are released once its last bytes are handed to the kernel, or when the socket is gone.
   */
  private writeSlice(): void {
    if (this.closed) {
      for (const response of this.outbox.splice(0)) releaseAll(response.leases);
      this.outChunk = 0;
      this.outOffset = 0;
      this.writing = false;
      return;
    }
    if (this.outbox.length === 0) {
      this.writing = false;
      return;
    }
    this.writing = true;
    this.socket.cork();
    let budget = WRITE_SLICE_BYTES;
    let piece: Buffer | undefined;
    let leases: ReadLease[] = [];
    while (budget > 0 && this.outbox.length > 0) {
      if (piece !== undefined) this.writePiece(piece, leases, false);
      leases = [];
      const response = this.outbox[0]!;
      const chunk = response.chunks[this.outChunk]!;
      const end = Math.min(chunk.length, this.outOffset + budget);
      piece = this.outOffset === 0 && end === chunk.length ? chunk : chunk.subarray(this.outOffset, end);
      budget -= piece.length;
      this.outOffset = end;
      if (end < chunk.length) continue;
      this.outChunk++;
      this.outOffset = 0;
      if (this.outChunk < response.chunks.length) continue;
      this.outbox.shift();
      this.outChunk = 0;
      leases = response.leases;
    }
    this.writePiece(piece!, leases, this.outbox.length > 0);
    this.socket.uncork();
    if (this.outbox.length === 0) this.writing = false;
  }

  /**
   * Writes one piece; once the kernel has it (or the socket is gone), releases the leases of the
   * response it ends and, when `more`, writes the next slice after an event-loop turn.
   */
  private writePiece(piece: Buffer, leases: ReadLease[], more: boolean): void {
    if (leases.length === 0 && !more) {
      this.socket.write(piece);
      return;
    }
    this.socket.write(piece, () => {
      releaseAll(leases);
      if (more) setImmediate(() => this.writeSlice());
    });
  }
}
