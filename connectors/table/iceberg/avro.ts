// Avro object container files in memory (Avro 1.11 spec, "Object Container Files"), the
// format of Iceberg manifests and manifest lists. avsc encodes and decodes the records; the
// container framing is written here so that it runs synchronously on Buffers:
//
//   header: 'O' 'b' 'j' 0x01 | meta: map<bytes> (avro.schema, avro.codec, user keys) | sync: 16 bytes
//   block*: count: long | size: long | records (deflated when avro.codec is deflate) | sync
//
// longs are zig-zag varints. The writer schema goes into avro.schema exactly as given (with
// Iceberg's `field-id` attributes), so readers that resolve columns by id find them.

import { inflateRawSync, deflateRawSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import avsc from 'avsc';

const MAGIC = Buffer.from([0x4f, 0x62, 0x6a, 0x01]);
const HEADER = avsc.Type.forSchema({
  type: 'record',
  name: 'org.apache.avro.file.Header',
  fields: [
    { name: 'magic', type: { type: 'fixed', name: 'Magic', size: 4 } },
    { name: 'meta', type: { type: 'map', values: 'bytes' } },
    { name: 'sync', type: { type: 'fixed', name: 'Sync', size: 16 } },
  ],
});
const LONG = avsc.Type.forSchema('long');
/** Uncompressed bytes per block before a new block starts. */
const BLOCK_TARGET_BYTES = 1024 * 1024;
/** Parsed writer schemas kept for reuse (the same few schemas recur in every manifest). */
const TYPE_CACHE_MAX = 64;
const typeCache = new Map<string, avsc.Type>();

export type AvroCodec = 'null' | 'deflate';

/** An Avro schema as JSON (records, unions, logical types, extra attributes). */
export type AvroSchemaJson = string | AvroSchemaJson[] | { [key: string]: unknown };

export interface AvroFileContents {
  /** The writer schema from avro.schema, parsed. */
  schema: AvroSchemaJson;
  /** User metadata (avro.* keys excluded), as UTF-8 strings. */
  metadata: Record<string, string>;
  records: unknown[];
}

export function encodeAvroFile(schema: AvroSchemaJson, records: readonly unknown[], metadata: Record<string, string>, codec: AvroCodec = 'deflate'): Buffer {
  const schemaJson = JSON.stringify(schema);
  const type = typeOf(schemaJson);
  const meta: Record<string, Buffer> = { 'avro.schema': Buffer.from(schemaJson), 'avro.codec': Buffer.from(codec) };
  for (const [key, value] of Object.entries(metadata)) meta[key] = Buffer.from(value, 'utf8');
  const sync = randomBytes(16);
  const chunks: Buffer[] = [HEADER.toBuffer({ magic: MAGIC, meta, sync })];
  let block: Buffer[] = [];
  let blockBytes = 0;
  const flush = (): void => {
    if (block.length === 0) return;
    const raw = Buffer.concat(block, blockBytes);
    const body = codec === 'deflate' ? deflateRawSync(raw) : raw;
    chunks.push(LONG.toBuffer(block.length), LONG.toBuffer(body.length), body, sync);
    block = [];
    blockBytes = 0;
  };
  for (const record of records) {
    const bytes = type.toBuffer(record);
    block.push(bytes);
    blockBytes += bytes.length;
    if (blockBytes >= BLOCK_TARGET_BYTES) flush();
  }
  flush();
  return Buffer.concat(chunks);
}

export function decodeAvroFile(file: Buffer): AvroFileContents {
  if (file.length < 4 || !file.subarray(0, 4).equals(MAGIC)) throw new Error('not an Avro object container file');
  const header = HEADER.decode(file, 0);
  if (header.offset < 0) throw new Error('truncated Avro header');
  const { meta, sync } = header.value as { meta: Record<string, Buffer>; sync: Buffer };
  const schemaBytes = meta['avro.schema'];
  if (schemaBytes === undefined) throw new Error('Avro file without avro.schema');
  const codec = meta['avro.codec']?.toString() ?? 'null';
  if (codec !== 'null' && codec !== 'deflate') throw new Error(`unsupported Avro codec ${codec}`);
  const type = typeOf(schemaBytes.toString('utf8'));
  const records: unknown[] = [];
  let pos = header.offset;
  while (pos < file.length) {
    const count = readLong(file, pos);
    const size = readLong(file, count.offset);
    const end = size.offset + size.value;
    if (end + 16 > file.length) throw new Error('truncated Avro block');
    const raw = file.subarray(size.offset, end);
    const body = codec === 'deflate' ? inflateRawSync(raw) : raw;
    let at = 0;
    for (let i = 0; i < count.value; i++) {
      const decoded = type.decode(body, at);
      if (decoded.offset < 0) throw new Error('truncated Avro record');
      records.push(decoded.value);
      at = decoded.offset;
    }
    if (!file.subarray(end, end + 16).equals(sync)) throw new Error('Avro sync marker mismatch');
    pos = end + 16;
  }
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(meta)) if (!key.startsWith('avro.')) metadata[key] = value.toString('utf8');
  return { schema: JSON.parse(schemaBytes.toString('utf8')) as AvroSchemaJson, metadata, records };
}

function readLong(buf: Buffer, pos: number): { value: number; offset: number } {
  const decoded = LONG.decode(buf, pos);
  if (decoded.offset < 0) throw new Error('truncated Avro block header');
  return { value: decoded.value as number, offset: decoded.offset };
}

function typeOf(schemaJson: string): avsc.Type {
  let type = typeCache.get(schemaJson);
  if (type === undefined) {
    type = avsc.Type.forSchema(JSON.parse(schemaJson) as Parameters<typeof avsc.Type.forSchema>[0]);
    if (typeCache.size >= TYPE_CACHE_MAX) typeCache.delete(typeCache.keys().next().value!);
    typeCache.set(schemaJson, type);
  }
  return type;
}

// ---- reading records by Iceberg field id ----

/**
 * The field names of a record schema by their `field-id` attribute; nested record types are
 * found through unions (["null", record]) too. Readers resolve by id, not by name (the names
 * of manifest list fields changed between Java releases; the ids never did).
 */
export function fieldNamesById(recordSchema: AvroSchemaJson): Map<number, { name: string; type: AvroSchemaJson }> {
  const out = new Map<number, { name: string; type: AvroSchemaJson }>();
  const record = nonNullBranch(recordSchema);
  if (typeof record !== 'object' || Array.isArray(record) || !Array.isArray(record.fields)) throw new Error('Avro record schema expected');
  for (const field of record.fields as Array<{ name: string; type: AvroSchemaJson; 'field-id'?: number }>) {
    if (typeof field['field-id'] === 'number') out.set(field['field-id'], { name: field.name, type: nonNullBranch(field.type) });
  }
  return out;
}

function nonNullBranch(schema: AvroSchemaJson): AvroSchemaJson {
  if (Array.isArray(schema)) {
    const branch = schema.find((s) => s !== 'null');
    if (branch === undefined) throw new Error('union without a non-null branch');
    return branch;
  }
  return schema;
}
