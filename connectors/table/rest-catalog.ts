// The Iceberg REST catalog protocol (read side) on the HTTP API, under /iceberg: engines and
// clients that speak it (Spark, Trino, PyIceberg, DuckDB, iceberg-js) attach with the catalog
// URI http://<host>:8080/iceberg and find Wharf's tables. Served:
//
//   GET  /iceberg/v1/config                               {defaults, overrides}
//   GET  /iceberg/v1/namespaces[?parent=]                 {namespaces: [[ns]]}
//   GET  /iceberg/v1/namespaces/{ns}                      {namespace, properties}
//   HEAD /iceberg/v1/namespaces/{ns}                      204 / 404
//   GET  /iceberg/v1/namespaces/{ns}/tables               {identifiers: [{namespace, name}]}
//   GET  /iceberg/v1/namespaces/{ns}/tables/{table}       LoadTableResult {metadata-location, metadata, config}
//   HEAD /iceberg/v1/namespaces/{ns}/tables/{table}       204 / 404
//
// A `{prefix}` segment after v1 (clients configured with a warehouse name) is accepted and
// ignored. Multi-level namespaces are joined by %1F as the spec says. Tables are written only by
// Wharf's table writer, so create, update, drop and rename answer 405 with an
// ErrorModel ({error: {message, type, code}}).

import type http from 'node:http';
import type { HttpApi } from '../../src/broker/http-api.ts';
import type { IcebergCatalog } from './iceberg/catalog.ts';

export const REST_CATALOG_PREFIX = '/iceberg/';

interface ErrorAnswer { status: number; type: string; message: string }

function send(res: http.ServerResponse, status: number, body: unknown, head = false): void {
  if (body === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(head ? undefined : text);
}

function sendError(res: http.ServerResponse, e: ErrorAnswer, head: boolean): void {
  if (head) {
    res.writeHead(e.status);
    res.end();
    return;
  }
  send(res, e.status, { error: { message: e.message, type: e.type, code: e.status } });
}

/** The path segments after /iceberg/v1, with an optional warehouse prefix removed. */
function segmentsOf(url: string): string[] | undefined {
  const path = url.split('?')[0]!.slice(REST_CATALOG_PREFIX.length);
  const segments = path.split('/').filter((s) => s.length > 0);
  if (segments.shift() !== 'v1') return undefined;
  const first = segments[0];
  if (first !== undefined && first !== 'config' && first !== 'namespaces' && first !== 'tables') segments.shift();
  return segments;
}

function namespaceOf(segment: string): string[] {
  return decodeURIComponent(segment).split('\x1f');
}

export function mountRestCatalog(api: HttpApi, catalog: IcebergCatalog): void {
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const head = req.method === 'HEAD';
    const segments = segmentsOf(req.url ?? '/');
    const notFound = (type: string, message: string): void => sendError(res, { status: 404, type, message }, head);
    if (segments === undefined) return notFound('NotFoundException', `no route for ${req.url}`);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return sendError(res, { status: 405, type: 'MethodNotAllowedException', message: 'Wharf\'s catalog is read-only: tables are written by the table writer from their topics' }, false);
    }
    const [first, ns, third, table, ...rest] = segments;
    if (first === 'config' && ns === undefined) return send(res, 200, { defaults: {}, overrides: {} }, head);
    if (first !== 'namespaces' || rest.length > 0) return notFound('NotFoundException', `no route for ${req.url}`);
    const namespaces = await catalog.listNamespaces();
    if (ns === undefined) {
      const parent = new URL(req.url ?? '/', 'http://x').searchParams.get('parent');
      const parentNs = parent === null ? [] : namespaceOf(parent);
      const children = namespaces.filter((n) => n.length === parentNs.length + 1 && parentNs.every((p, i) => n[i] === p));
      return send(res, 200, { namespaces: children }, head);
    }
    const namespace = namespaceOf(ns);
    const known = namespaces.some((n) => n.join('\x1f') === namespace.join('\x1f'));
    if (!known) return notFound('NoSuchNamespaceException', `namespace ${namespace.join('.')} does not exist`);
    if (third === undefined) return head ? send(res, 204, undefined) : send(res, 200, { namespace, properties: {} });
    if (third !== 'tables') return notFound('NotFoundException', `no route for ${req.url}`);
    if (table === undefined) {
      const names = await catalog.listTables(namespace);
      return send(res, 200, { identifiers: names.map((name) => ({ namespace, name })) }, head);
    }
    const loaded = await catalog.loadTable(namespace, decodeURIComponent(table));
    if (!loaded) return notFound('NoSuchTableException', `table ${namespace.join('.')}.${decodeURIComponent(table)} does not exist`);
    if (head) return send(res, 204, undefined);
    return send(res, 200, { 'metadata-location': loaded.metadataLocation, metadata: loaded.metadata, config: {} });
  };
  for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE']) api.addPrefix(method, REST_CATALOG_PREFIX, handle);
}
