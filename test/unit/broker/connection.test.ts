import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection, WRITE_SLICE_BYTES, type FrameHandler, type FrameResponse } from '../../../src/broker/connection.ts';

// A response's chunks may point into log cache memory that is reused once its lease is released:
// the connection must release only after the socket has taken the bytes.

const RESPONSE_BYTES = 32 * 1024 * 1024; // far more than the socket buffers hold

let server: net.Server | undefined;
let client: net.Socket | undefined;

afterEach(async () => {
  client?.destroy();
  if (server) await new Promise((resolve) => server!.close(resolve));
  server = client = undefined;
});

/**
 * A server whose every request gets `response`; resolves with the client, which is paused.
 * `onSocket` sees the server's side of the connection first.
 */
async function serve(response: () => FrameResponse, onSocket?: (socket: net.Socket) => void): Promise<net.Socket> {
  const handler: FrameHandler = { handle: async () => response() };
  server = net.createServer((socket) => {
    onSocket?.(socket);
    new Connection(socket, handler, { socketRequestMaxBytes: 1 << 20, maxInflightBytes: 1 << 20 });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.pause();
  return socket;
}

function request(): Buffer {
  const frame = Buffer.alloc(8);
  frame.writeInt32BE(4, 0);
  return frame;
}

function sizedResponse(): Buffer[] {
  const head = Buffer.alloc(4);
  head.writeInt32BE(RESPONSE_BYTES, 0);
  return [head, Buffer.alloc(RESPONSE_BYTES, 7)];
}

/**
 * One request whose large response holds a lease; the client reads nothing for a while, so the
 * response stays queued in the server's socket. Returns the client and how often the lease was released so far.
 */
async function requestLeftUnread(): Promise<{ socket: net.Socket; released: () => number }> {
  let released = 0;
  const socket = await serve(() => ({ chunks: sizedResponse(), leases: [{ release: () => released++ }] }));
  client = socket;
  socket.write(request());
  await new Promise((resolve) => setTimeout(resolve, 300));
  return { socket, released: () => released };
}

describe('connection', () => {
  it('releases a response\'s leases only once the socket has taken all of its bytes', async () => {
    const { socket, released } = await requestLeftUnread();
    expect(released()).toBe(0);

    let received = 0;
    socket.on('data', (chunk: Buffer) => { received += chunk.length; });
    socket.resume();
    while (received < 4 + RESPONSE_BYTES) await new Promise((resolve) => setTimeout(resolve, 10));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(released()).toBe(1);
  });

  it('releases the leases of a response whose connection is gone', async () => {
    const { socket, released } = await requestLeftUnread();
    expect(released()).toBe(0);
    socket.destroy();
    const deadline = Date.now() + 5000;
    while (released() === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(released()).toBe(1);
  });

  it('hands the socket large responses in slices, in order and intact', async () => {
    // Responses of several chunks, a large chunk among them, an empty one, small ones between.
    const responses: Buffer[][] = [
      [Buffer.alloc(3 * 1024 * 1024 + 5, 1), Buffer.alloc(0), Buffer.alloc(100_000, 2)],
      [Buffer.from('small')],
      [Buffer.alloc(WRITE_SLICE_BYTES - 1, 3), Buffer.alloc(2, 4), Buffer.alloc(700_000, 5)],
    ];
    let next = 0;
    /** Bytes handed to the socket between each cork() and its uncork(): one writev each. */
    const corked: number[] = [];
    const socket = await serve(() => {
      const chunks = responses[next++ % responses.length]!;
      const head = Buffer.alloc(4);
      head.writeInt32BE(chunks.reduce((sum, c) => sum + c.length, 0));
      return { chunks: [head, ...chunks], leases: [] };
    }, (serverSide) => {
      let batch: number | undefined;
      const { cork, uncork, write } = serverSide;
      serverSide.cork = () => { batch = 0; cork.call(serverSide); };
      serverSide.uncork = () => { corked.push(batch!); batch = undefined; uncork.call(serverSide); };
      serverSide.write = ((chunk: Buffer, ...rest: never[]) => {
        if (batch !== undefined) batch += chunk.length;
        return write.call(serverSide, chunk, ...rest);
      }) as typeof serverSide.write;
    });
    client = socket;
    const expected = Buffer.concat(responses.flatMap((chunks) => {
      const head = Buffer.alloc(4);
      head.writeInt32BE(chunks.reduce((sum, c) => sum + c.length, 0));
      return [head, ...chunks];
    }));
    const received: Buffer[] = [];
    let receivedBytes = 0;
    socket.on('data', (chunk: Buffer) => { received.push(chunk); receivedBytes += chunk.length; });
    socket.resume();
    for (let i = 0; i < responses.length; i++) socket.write(request());
    while (receivedBytes < expected.length) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(Buffer.concat(received).equals(expected)).toBe(true);
    expect(corked.reduce((sum, n) => sum + n, 0)).toBe(expected.length);
    expect(Math.max(...corked)).toBeLessThanOrEqual(WRITE_SLICE_BYTES);
    expect(corked.length).toBeGreaterThanOrEqual(Math.ceil(expected.length / WRITE_SLICE_BYTES));
  });

  it('frames requests split anywhere across socket chunks, and frees each chunk once it is read', async () => {
    const frames: Buffer[] = [];
    /** Whether each frame had memory of its own, which the router frees once a Produce is answered. */
    const owned: boolean[] = [];
    const handler: FrameHandler = {
      handle: async (frame) => {
        frames.push(Buffer.from(frame));
        owned.push(frame.byteOffset === 0 && frame.length === frame.buffer.byteLength);
        return null;
      },
    };
    /** Every chunk the server's socket gave, and whether it spanned its own memory. */
    const chunks: { chunk: Buffer; owned: boolean }[] = [];
    server = net.createServer((socket) => {
      socket.on('data', (chunk: Buffer) => chunks.push({ chunk, owned: chunk.byteOffset === 0 && chunk.length === chunk.buffer.byteLength }));
      new Connection(socket, handler, { socketRequestMaxBytes: 8 << 20, maxInflightBytes: 64 << 20 });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    client = socket;
    await once(socket, 'connect');
    socket.setNoDelay(true);
    const sent = [Buffer.alloc(0), Buffer.from('tiny'), Buffer.alloc(3 * 1024 * 1024 + 3, 9), Buffer.alloc(5000, 4), Buffer.from('last')];
    for (let i = 0; i < sent[2]!.length; i += 997) sent[2]![i] = i & 0xff;
    const wire = Buffer.concat(sent.flatMap((body) => {
      const head = Buffer.alloc(4);
      head.writeInt32BE(body.length);
      return [head, body];
    }));
    // Pieces that cut the size fields (2 bytes into the third frame's) and the bodies, each its
    // own read on the server; then the rest at once.
    const cuts = [3, 6, 17, 3000, 3000 + 65_536 * 3 + 1];
    let from = 0;
    for (const cut of cuts) {
      socket.write(wire.subarray(from, cut));
      from = cut;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    socket.write(wire.subarray(from));
    const deadline = Date.now() + 10_000;
    while (frames.length < sent.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(frames.map((f) => f.length)).toEqual(sent.map((b) => b.length));
    for (let i = 0; i < sent.length; i++) expect(frames[i]!.equals(sent[i]!)).toBe(true);
    // Produce-sized frames own their memory; small ones are slices of Buffer's pool.
    for (let i = 0; i < sent.length; i++) if (sent[i]!.length > 0) expect(owned[i], `frame ${i}`).toBe(sent[i]!.length >= 4096);
    expect(chunks.length).toBeGreaterThan(cuts.length);
    expect(chunks.filter((c) => c.owned).length).toBeGreaterThan(0);
    for (const { chunk, owned } of chunks) if (owned) expect((chunk.buffer as ArrayBuffer).detached).toBe(true);
  });
});
