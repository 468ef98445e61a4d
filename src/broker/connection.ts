// One Kafka client connection: framing (4-byte size, then the request), a bound on frame size
// and on bytes in flight, and responses written in request order (Kafka's per-connection
// ordering guarantee) while requests are processed concurrently.

import type { Socket } from 'node:net';
import { log } from '../metrics/log.ts';
import { connectionsActive, connectionsRejectedTotal } from '../metrics/registry.ts';
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
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private readonly pending: Pending[] = [];
  private inflightBytes = 0;
  private paused = false;
  private closed = false;

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
      const frame = this.take(4 + size).subarray(4);
      this.dispatch(frame);
    }
  }

  private peekInt32(): number {
    const head = this.chunks[0]!;
    if (head.length >= 4) return head.readInt32BE(0);
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined.readInt32BE(0);
  }

  /** Removes n bytes from the front of the buffered chunks; a slice when one chunk holds them. */
  private take(n: number): Buffer {
    const head = this.chunks[0]!;
    let out: Buffer;
    if (head.length >= n) {
      out = head.subarray(0, n);
      if (head.length === n) this.chunks.shift();
      else this.chunks[0] = head.subarray(n);
    } else {
      out = Buffer.allocUnsafeSlow(n); // never a slice of the shared pool: a Produce frame is freed once answered (router.ts)
      let filled = 0;
      while (filled < n) {
        const c = this.chunks[0]!;
        const part = Math.min(c.length, n - filled);
        c.copy(out, filled, 0, part);
        filled += part;
        if (part === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(part);
      }
    }
    this.bufferedBytes -= n;
    return out;
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
    let wrote = false;
    while (this.pending.length > 0 && this.pending[0]!.done) {
      const entry = this.pending.shift()!;
      this.inflightBytes -= entry.frameBytes;
      const response = entry.response;
      if (response === null) continue;
      if (this.closed) {
        releaseAll(response.leases);
        continue;
      }
      if (!wrote) this.socket.cork();
      wrote = true;
      const { chunks, leases } = response;
      const last = chunks.length - 1;
      for (let i = 0; i < last; i++) this.socket.write(chunks[i]!);
      // Called once the bytes are handed to the kernel, or with an error when the socket is gone.
      if (leases.length === 0) this.socket.write(chunks[last]!);
      else this.socket.write(chunks[last]!, () => releaseAll(leases));
    }
    if (wrote) this.socket.uncork();
    if (this.paused && this.inflightBytes <= this.limits.maxInflightBytes) {
      this.paused = false;
      this.socket.resume();
    }
  }
}
