// ObjectStore on a local directory: key "a/b/c" is the file <rootDir>/a/b/c.
//
// put is atomic and durable: the body goes to a temporary file in the target directory, which is
// fsynced, renamed over the key, and then the directory is fsynced (and so is every directory
// the put had to create). Readers therefore never see a partial object.
//
// Multipart uploads write their parts, in order, into such a temporary file, renamed (the same
// way) on complete.
//
// Keys are '/'-separated paths of non-empty segments other than '.' and '..'; a segment may not
// start with TEMP_PREFIX. Unlike S3, a key cannot also be the directory of another key ("a" and
// "a/b" cannot both exist): such a put fails with the file system's error.

import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { allocFreeable } from '../buffers.ts';
import { bodyChunks, ObjectNotFoundError } from './objectstore.ts';
import { checkParts, checkRange, compareKeys, isErrno } from './util.ts';
import type { MultipartUploads, ObjectBody, ObjectInfo, ObjectStore, UploadedPart } from './objectstore.ts';

const TEMP_PREFIX = '.wharf-tmp-';
const MAX_COMPLETED_UPLOADS = 1024;

/** An upload in progress: its temporary file and where each part written so far starts. */
interface LocalUpload {
  key: string;
  tempPath: string;
  handle: FileHandle;
  partStarts: number[];
  endPosition: number;
}

export class LocalObjectStore implements ObjectStore {
  readonly rootDir: string;
  readonly readsPartsInPlace = true;
  readonly uploads: MultipartUploads;
  private closed = false;
  private readonly openUploads = new Map<string, LocalUpload>();
  /** Ids of the latest completed uploads, so that a retried complete succeeds. */
  private readonly completedUploads = new Set<string>();

  constructor(rootDir: string) {
    this.rootDir = path.resolve(rootDir);
    this.uploads = {
      start: (key) => this.startUpload(key),
      uploadPart: (key, uploadId, partNumber, body) => this.uploadPart(key, uploadId, partNumber, body),
      complete: (key, uploadId, parts) => this.completeUpload(key, uploadId, parts),
      abort: (key, uploadId) => this.abortUpload(key, uploadId),
    };
  }

  async put(key: string, body: ObjectBody): Promise<void> {
    this.checkOpen();
    const filePath = this.pathOf(key);
    const { tempPath, handle } = await this.openTemp(path.dirname(filePath));
    await renameIntoPlace(handle, tempPath, filePath, (h) => writeSynced(h, bodyChunks(body), 0));
  }

  async get(key: string, range?: { start: number; endExclusive: number }): Promise<Buffer> {
    if (range !== undefined) checkRange(range);
    return this.readObject(key, (handle, size) => {
      const start = range === undefined ? 0 : Math.min(range.start, size);
      const end = range === undefined ? size : Math.min(range.endExclusive, size);
      return readFully(handle, start, end - start);
    });
  }

  async getParts(key: string, start: number, lengths: readonly number[]): Promise<Buffer[]> {
    checkParts(start, lengths);
    return this.readObject(key, (handle, size) => {
      // Each part in a buffer of its own (allocUnsafeSlow: never a slice of Node's shared pool).
      let at = Math.min(start, size);
      const parts = lengths.map((length) => {
        const part = Buffer.allocUnsafeSlow(Math.max(0, Math.min(length, size - at)));
        at += part.length;
        return part;
      });
      return readvFully(handle, Math.min(start, size), parts);
    });
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    this.checkOpen();
    try {
      const stats = await fs.stat(this.pathOf(key));
      return stats.isFile() ? { key, sizeBytes: stats.size } : undefined;
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
      throw err;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    this.checkOpen();
    const found: ObjectInfo[] = [];
    await this.walk('', prefix, found);
    return found.sort((a, b) => compareKeys(a.key, b.key));
  }

  async delete(keys: string[]): Promise<void> {
    this.checkOpen();
    for (const key of keys) {
      const filePath = this.pathOf(key);
      try {
        await fs.unlink(filePath);
      } catch (err) {
        if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) continue;
        throw err;
      }
      await this.pruneEmptyDirs(path.dirname(filePath));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const upload of [...this.openUploads.values()]) await this.abortUpload(upload.key, path.basename(upload.tempPath));
  }

  private async startUpload(key: string): Promise<string> {
    this.checkOpen();
    const { tempPath, handle } = await this.openTemp(path.dirname(this.pathOf(key)));
    const uploadId = path.basename(tempPath);
    this.openUploads.set(uploadId, { key, tempPath, handle, partStarts: [], endPosition: 0 });
    return uploadId;
  }

  private async uploadPart(key: string, uploadId: string, partNumber: number, body: ObjectBody): Promise<UploadedPart> {
    this.checkOpen();
    const upload = this.uploadOf(key, uploadId);
    const written = upload.partStarts.length;
    // The next part, or the last one again (a retry): earlier parts are fixed once a later one is written.
    if (partNumber !== written + 1 && partNumber !== written) {
      throw new RangeError(`upload of ${key}: part ${partNumber} after ${written} parts`);
    }
    const start = partNumber <= written ? upload.partStarts[partNumber - 1]! : upload.endPosition;
    const end = await writeSynced(upload.handle, bodyChunks(body), start);
    await upload.handle.truncate(end);
    upload.partStarts[partNumber - 1] = start;
    upload.partStarts.length = partNumber;
    upload.endPosition = end;
    return { partNumber, token: String(end - start) };
  }

  private async completeUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void> {
    this.checkOpen();
    // A retry of a complete whose answer was lost: done already.
    if (this.completedUploads.has(uploadId)) return;
    const upload = this.uploadOf(key, uploadId);
    if (parts.length !== upload.partStarts.length || parts.some((part, i) => part.partNumber !== i + 1)) {
      throw new Error(`upload of ${key}: completing parts ${parts.map((p) => p.partNumber).join(',')} of ${upload.partStarts.length} written`);
    }
    this.openUploads.delete(uploadId);
    await renameIntoPlace(upload.handle, upload.tempPath, this.pathOf(key));
    this.completedUploads.add(uploadId);
    if (this.completedUploads.size > MAX_COMPLETED_UPLOADS) this.completedUploads.delete(this.completedUploads.values().next().value!);
  }

  private async abortUpload(_key: string, uploadId: string): Promise<void> {
    const upload = this.openUploads.get(uploadId);
    if (upload === undefined) return;
    this.openUploads.delete(uploadId);
    await upload.handle.close().catch(() => {});
    await fs.rm(upload.tempPath, { force: true });
  }

  private uploadOf(key: string, uploadId: string): LocalUpload {
    const upload = this.openUploads.get(uploadId);
    if (upload === undefined || upload.key !== key) throw new Error(`no upload ${uploadId} of ${key}`);
    return upload;
  }

  /** Runs read on the object's open file and its size; a missing object is ObjectNotFoundError. */
  private async readObject<T>(key: string, read: (handle: FileHandle, size: number) => Promise<T>): Promise<T> {
    this.checkOpen();
    const filePath = this.pathOf(key);
    let handle: FileHandle;
    try {
      handle = await fs.open(filePath, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR') || isErrno(err, 'EISDIR')) {
        throw new ObjectNotFoundError(key);
      }
      throw err;
    }
    try {
      const { size } = await handle.stat();
      return await read(handle, size);
    } catch (err) {
      if (isErrno(err, 'EISDIR')) throw new ObjectNotFoundError(key);
      throw err;
    } finally {
      await handle.close();
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('LocalObjectStore is closed');
  }

  private pathOf(key: string): string {
    const segments = key.split('/');
    for (const segment of segments) {
      if (segment === '' || segment === '.' || segment === '..' || segment.startsWith(TEMP_PREFIX)) {
        throw new Error(`invalid object key for the local object store: ${JSON.stringify(key)}`);
      }
    }
    return path.join(this.rootDir, ...segments);
  }

  /** A new temporary file in dir (created if missing), hidden from list until renamed. */
  private async openTemp(dir: string): Promise<{ tempPath: string; handle: FileHandle }> {
    // A concurrent delete may prune the directory between mkdir and open: try again.
    for (let attempt = 0; ; attempt++) {
      await this.ensureDir(dir);
      const tempPath = path.join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
      try {
        return { tempPath, handle: await fs.open(tempPath, 'wx') };
      } catch (err) {
        if (attempt >= 2 || !isErrno(err, 'ENOENT')) throw err;
      }
    }
  }

  /** Creates dir (and missing parents), fsyncing the parent of every directory it creates. */
  private async ensureDir(dir: string): Promise<void> {
    const firstCreated = await fs.mkdir(dir, { recursive: true });
    if (firstCreated === undefined) return;
    // fsync each new directory's parent, from the deepest up to the pre-existing ancestor.
    for (let d = dir; ; d = path.dirname(d)) {
      await fsyncDir(path.dirname(d));
      if (d === firstCreated || d === path.dirname(d)) break;
    }
  }

  /** Removes now-empty directories from dir up to (not including) rootDir. */
  private async pruneEmptyDirs(dir: string): Promise<void> {
    for (let d = dir; d !== this.rootDir && d.startsWith(this.rootDir + path.sep); d = path.dirname(d)) {
      try {
        await fs.rmdir(d);
      } catch {
        return; // not empty (or already gone, or raced with a put): stop here
      }
    }
  }

  /** Collects files under relDir whose key starts with prefix; skips unrelated subtrees. */
  private async walk(relDir: string, prefix: string, found: ObjectInfo[]): Promise<void> {
    let entries;
    try {
      entries = await fs.readdir(path.join(this.rootDir, relDir), { withFileTypes: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return;
      throw err;
    }
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX)) continue;
      const key = relDir === '' ? entry.name : `${relDir}/${entry.name}`;
      if (entry.isDirectory()) {
        const dirKey = `${key}/`;
        if (dirKey.startsWith(prefix) || prefix.startsWith(dirKey)) await this.walk(key, prefix, found);
      } else if (entry.isFile() && key.startsWith(prefix)) {
        const stats = await fs.stat(path.join(this.rootDir, key)).catch((err: unknown) => {
          if (isErrno(err, 'ENOENT')) return undefined; // deleted meanwhile
          throw err;
        });
        if (stats !== undefined) found.push({ key, sizeBytes: stats.size });
      }
    }
  }
}

/**
 * Bytes written between fdatasyncs while writing an object. Without it a large object's dirty
 * pages reach the disk in one burst at the final fsync, and a WAL fdatasync on the same disk
 * waits behind all of it; in bounded steps the WAL waits for one step at most. On the 2-core VM,
 * whose disk falls to ~300 MB/s for minutes after a burst of writes, a 32 KiB O_DSYNC write's p99
 * beside 40 MB objects was 0.66-0.78 ms with 256 KiB steps against 1.2-2.3 ms with 1 MiB ones
 * (and the tail bench's idle produce p99 3.1-3.2 ms against 7.4-7.5). An object takes longer:
 * 50-75 ms instead of 30-40 while the disk is fast, 160-180 instead of 115-150 while it is slow.
 */
const SYNC_STEP_BYTES = 256 * 1024;

/** At most this many buffers per writev (Linux IOV_MAX is 1024). */
const MAX_WRITEV_BUFFERS = 1024;
/** At most this many buffers per readv (IOV_MAX again). */
const MAX_READV_BUFFERS = 1024;

interface WriteGroup { buffers: Buffer[]; bytes: number }

/** Splits chunks into writev groups of at most SYNC_STEP_BYTES (a larger chunk goes alone). */
function* writeGroups(chunks: readonly Buffer[]): Generator<WriteGroup> {
  let group: WriteGroup = { buffers: [], bytes: 0 };
  for (const chunk of chunks) {
    if (group.buffers.length > 0 && (group.bytes + chunk.length > SYNC_STEP_BYTES || group.buffers.length === MAX_WRITEV_BUFFERS)) {
      yield group;
      group = { buffers: [], bytes: 0 };
    }
    group.buffers.push(chunk);
    group.bytes += chunk.length;
  }
  if (group.buffers.length > 0) yield group;
}

/** Writes the group at position, finishing a short writev with plain writes; returns the end. */
async function writeAllAt(handle: FileHandle, group: WriteGroup, position: number): Promise<number> {
  const { bytesWritten } = await handle.writev(group.buffers, position);
  let skip = bytesWritten;
  let at = position + bytesWritten;
  for (const buffer of group.buffers) {
    if (skip >= buffer.length) {
      skip -= buffer.length;
      continue;
    }
    let done = skip;
    skip = 0;
    while (done < buffer.length) {
      const result = await handle.write(buffer, done, buffer.length - done, at);
      done += result.bytesWritten;
      at += result.bytesWritten;
    }
  }
  return at;
}

/** Writes the chunks from position, with a datasync every SYNC_STEP_BYTES; returns the end. */
async function writeSynced(handle: FileHandle, chunks: readonly Buffer[], position: number): Promise<number> {
  let unsynced = 0;
  for (const group of writeGroups(chunks)) {
    position = await writeAllAt(handle, group, position);
    unsynced += group.bytes;
    if (unsynced >= SYNC_STEP_BYTES) {
      await handle.datasync();
      unsynced = 0;
    }
  }
  return position;
}

/**
 * Makes a temporary file the object at filePath (in the same directory): written by `write`,
 * synced, closed, renamed over it, and the directory synced, so readers never see a partial
 * object. On failure the temporary file is removed.
 */
async function renameIntoPlace(handle: FileHandle, tempPath: string, filePath: string, write?: (handle: FileHandle) => Promise<unknown>): Promise<void> {
  try {
    try {
      await write?.(handle);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tempPath, filePath);
  } catch (err) {
    await fs.rm(tempPath, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(filePath));
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Fills the buffers in order from position with readv; a part is cut short if the file is. */
async function readvFully(handle: FileHandle, position: number, parts: Buffer[]): Promise<Buffer[]> {
  let index = 0;
  let offset = 0; // into parts[index]
  while (index < parts.length) {
    if (offset === parts[index]!.length) {
      index++;
      offset = 0;
      continue;
    }
    const batch = [parts[index]!.subarray(offset), ...parts.slice(index + 1, index + MAX_READV_BUFFERS)];
    const { bytesRead } = await handle.readv(batch, position);
    if (bytesRead === 0) {
      // Truncated underneath us: what was read stays, the rest is cut off.
      parts[index] = parts[index]!.subarray(0, offset);
      for (let i = index + 1; i < parts.length; i++) parts[i] = parts[i]!.subarray(0, 0);
      return parts;
    }
    position += bytesRead;
    let left = bytesRead;
    while (left > 0) {
      const room = parts[index]!.length - offset;
      if (left < room) {
        offset += left;
        left = 0;
      } else {
        left -= room;
        index++;
        offset = 0;
      }
    }
  }
  return parts;
}

async function readFully(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const out = allocFreeable(length); // the caller may free it (freeIfOwned) once read
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(out, filled, length - filled, position + filled);
    if (bytesRead === 0) return out.subarray(0, filled); // truncated underneath us
    filled += bytesRead;
  }
  return out;
}
