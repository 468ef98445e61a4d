// The HTTP API port: /metrics (Prometheus text), /healthz, /readyz and admin endpoints. Later
// front-ends (remote write, Iceberg REST catalog) mount their routes here too.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { register } from '../metrics/registry.ts';
import { log } from '../metrics/log.ts';

export type RouteHandler = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>;

export class HttpApi {
  private readonly server: http.Server;
  private readonly routes = new Map<string, RouteHandler>();
  /** Routes that take every path under a prefix (`METHOD /prefix/`), longest prefix first. */
  private readonly prefixRoutes: { method: string; prefix: string; handler: RouteHandler }[] = [];
  ready = false;

  constructor() {
    this.server = http.createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        log.warn({ url: req.url, err: message }, 'http request failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`error: ${message}\n`);
      });
    });
    this.add('GET /metrics', async (_req, res) => {
      const body = await register.metrics();
      res.writeHead(200, { 'content-type': register.contentType });
      res.end(body);
    });
    this.add('GET /healthz', async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
    });
    this.add('GET /readyz', async (_req, res) => {
      res.writeHead(this.ready ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(this.ready ? 'ready\n' : 'starting\n');
    });
  }

  /** Adds a route, keyed as `METHOD /path`. */
  add(route: string, handler: RouteHandler): void {
    this.routes.set(route, handler);
  }

  /** Adds a handler for every path that starts with `prefix` (e.g. '/iceberg/'). */
  addPrefix(method: string, prefix: string, handler: RouteHandler): void {
    this.prefixRoutes.push({ method, prefix, handler });
    this.prefixRoutes.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    const handler = this.routes.get(`${req.method} ${path}`)
      ?? this.prefixRoutes.find((r) => r.method === req.method && path.startsWith(r.prefix))?.handler;
    if (!handler) {
      const allowed = this.methodsOf(path);
      if (allowed.length > 0) {
        res.writeHead(405, { 'content-type': 'text/plain', allow: allowed.join(', ') });
        res.end(`method ${req.method} is not allowed on ${path}; use ${allowed.join(' or ')}\n`);
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`no route for ${req.method} ${path}\n`);
      return;
    }
    await handler(req, res);
  }

  /** The methods some route serves the path with. */
  private methodsOf(path: string): string[] {
    const methods = new Set<string>();
    for (const route of this.routes.keys()) {
      const space = route.indexOf(' ');
      if (route.slice(space + 1) === path) methods.add(route.slice(0, space));
    }
    for (const route of this.prefixRoutes) if (path.startsWith(route.prefix)) methods.add(route.method);
    return [...methods].sort();
  }

  async listen(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
