// Object keys as URIs, for formats that store absolute locations (Iceberg metadata): a key of
// the local-directory store is file://<absolute root>/<key>, a key of the S3 store is
// s3://<bucket>/<key>. keyOf is the inverse and refuses URIs outside the store.

import path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface ObjectUris {
  uriOf(key: string): string;
  keyOf(uri: string): string;
}

export function objectUris(store: { kind: 'local'; rootDir: string } | { kind: 's3'; bucket: string }): ObjectUris {
  const base = store.kind === 'local'
    ? pathToFileURL(path.resolve(store.rootDir)).href.replace(/\/?$/, '/')
    : `s3://${store.bucket}/`;
  return {
    uriOf: (key) => base + key,
    keyOf: (uri) => {
      if (!uri.startsWith(base)) throw new Error(`${uri} is not in this object store (${base})`);
      return decodeURI(uri.slice(base.length));
    },
  };
}
