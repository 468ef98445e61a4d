// Starts s3rver (an S3-compatible server) on 127.0.0.1, on a free port, in a temp directory.
//
// s3rver runs in a child Node process started with --openssl-legacy-provider: its ListObjectsV2
// continuation tokens use DES, which OpenSSL 3 only has in the legacy provider (without it, paged
// listings answer 500). The child exits when its stdin closes, so it cannot outlive the tests.
// S3RVER_VERBOSE=1 shows s3rver's request log and errors on stderr.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

export interface S3rverHandle {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  stop(): Promise<void>;
}

const CHILD_SCRIPT = `
const path = require('node:path');
const S3rver = require(process.env.S3RVER_MODULE);
// s3rver 3.7.1 bug: DeleteObjects deletes its keys concurrently and each delete then prunes
// empty parent directories with readdirSync/rmdir, so two keys of one directory race and the
// loser fails with ENOENT (or ENOTEMPTY against a concurrent put): the whole request answers
// 500 although every object is gone. The object files are removed before the pruning, so the
// pruning's errors are safe to ignore.
const FilesystemStore = require(path.join(path.dirname(process.env.S3RVER_MODULE), 'stores', 'filesystem.js'));
const deleteObject = FilesystemStore.prototype.deleteObject;
FilesystemStore.prototype.deleteObject = async function (...args) {
  try {
    return await deleteObject.apply(this, args);
  } catch (err) {
    if (err && (err.code === 'ENOENT' || err.code === 'ENOTEMPTY')) return;
    throw err;
  }
};
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  directory: process.env.S3RVER_DIR,
  silent: process.env.S3RVER_VERBOSE !== '1',
  configureBuckets: [{ name: process.env.S3RVER_BUCKET }],
});
server.run().then(
  (address) => process.stdout.write('WHARF_S3RVER_PORT ' + address.port + '\\n'),
  (err) => { process.stderr.write(String(err && err.stack || err) + '\\n'); process.exit(1); },
);
// Orphaned (the test process died): remove the data directory on the way out.
process.stdin.on('end', () => {
  require('node:fs').rmSync(process.env.S3RVER_DIR, { recursive: true, force: true });
  process.exit(0);
});
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
`;

/** The WHARF_* settings of a broker whose object store is this s3rver. */
export function s3BrokerEnv(s3: S3rverHandle): Record<string, string> {
  return {
    WHARF_OBJECT_STORE: 's3',
    WHARF_S3_ENDPOINT: s3.endpoint,
    WHARF_S3_BUCKET: s3.bucket,
    WHARF_S3_REGION: s3.region,
    WHARF_S3_ACCESS_KEY_ID: s3.accessKeyId,
    WHARF_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    WHARF_S3_FORCE_PATH_STYLE: 'true',
  };
}

export async function startS3rver(options: { bucket?: string } = {}): Promise<S3rverHandle> {
  const bucket = options.bucket ?? 'wharf-test';
  const directory = await mkdtemp(path.join(os.tmpdir(), 'wharf-s3rver-'));
  const s3rverModule = createRequire(import.meta.url).resolve('s3rver');
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '--no-warnings', '--no-deprecation', '-e', CHILD_SCRIPT],
    {
      env: { ...process.env, S3RVER_MODULE: s3rverModule, S3RVER_DIR: directory, S3RVER_BUCKET: bucket },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  const verbose = process.env.S3RVER_VERBOSE === '1';
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    if (stderr.length < 16_384) stderr += chunk;
    if (verbose) process.stderr.write(chunk);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout });
      const timer = setTimeout(() => reject(new Error(`s3rver did not start within 15 s: ${stderr}`)), 15_000);
      lines.on('line', (line) => {
        const match = /^WHARF_S3RVER_PORT (\d+)$/.exec(line);
        if (match === null) {
          if (verbose) process.stderr.write(`[s3rver] ${line}\n`);
          return;
        }
        clearTimeout(timer);
        resolve(Number(match[1]));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited with code ${code}: ${stderr}`));
      });
    });
  } catch (err) {
    child.kill('SIGKILL');
    await rm(directory, { recursive: true, force: true });
    throw err;
  }

  let stopped = false;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    region: 'us-east-1',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin.end();
        child.kill('SIGTERM');
        const killTimer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(killTimer);
      }
      await rm(directory, { recursive: true, force: true });
    },
  };
}
