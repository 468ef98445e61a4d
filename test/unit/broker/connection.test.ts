import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection, type FrameHandler, type FrameResponse } from '../../../src/broker/connection.ts';

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

/** A server whose every request gets `response`; resolves with the client, which is paused. */
async function serve(response: () => FrameResponse): Promise<net.Socket> {
  const handler: FrameHandler = { handle: async () => response() };
  server = net.createServer((socket) => new Connection(socket, handler, { socketRequestMaxBytes: 1 << 20, maxInflightBytes: 1 << 20 }));
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
});
