// An Arrow IPC stream of column buffers (connectors/table/columns.ts), the form parquet-wasm takes
// a table in (Table.fromIPCStream). apache-arrow encodes the two flatbuffer headers; the body is
// the builders' buffers copied once, straight into one buffer kept from one call to the next
// (a fresh 64 MiB buffer per file costs more in page faults than the copy itself):
//
//   stream  = message(schema) message(record batch) body eos
//   message = ffffffff int32(flatbuffer bytes + pad) flatbuffer pad   (pad: the message ends 8-aligned)
//   body    = for each field, depth first: its node's buffers, each padded to 8 bytes
//               bool: validity bits | int, float, timestamp, fixed: validity values
//               string, binary: validity offsets bytes | list: validity offsets, then the element
//               map: validity offsets, then the entries struct (validity) with key and value
//               struct: validity, then the children
//   eos     = ffffffff 00000000
//
// A validity buffer is empty when the node has no null. Offsets start at 0 (the builders' do).

import * as arrow from 'apache-arrow';
import { BufferRegion, FieldNode, Message, RecordBatch as RecordBatchHeader } from 'apache-arrow/ipc/metadata/message';
import type { ColumnBuffers } from './columns.ts';

const CONTINUATION = 0xffffffff;
const ALIGN_BYTES = 8;
const EMPTY = new Uint8Array(0);

const schemaMessages = new WeakMap<arrow.Schema, Uint8Array>();
/** The last stream's memory, reused while large enough. */
let streamBytes = new Uint8Array(0);

/**
 * The stream of one record batch: `columns` (the top-level fields of `schema`, in order) with
 * `rowCount` rows. A view of memory that the next call overwrites.
 */
export function ipcStream(schema: arrow.Schema, columns: readonly ColumnBuffers[], rowCount: number): Uint8Array {
  if (columns.length !== schema.fields.length) throw new Error(`${columns.length} columns for ${schema.fields.length} fields`);
  const nodes: FieldNode[] = [];
  const buffers: Uint8Array[] = [];
  for (const column of columns) collectBuffers(column, nodes, buffers);
  const regions: BufferRegion[] = [];
  let bodyBytes = 0;
  for (const buffer of buffers) {
    const padded = alignedSize(buffer.byteLength);
    regions.push(new BufferRegion(bodyBytes, padded));
    bodyBytes += padded;
  }
  const schemaMessage = schemaMessageOf(schema);
  const batchMessage = Message.encode(Message.from(new RecordBatchHeader(rowCount, nodes, regions, null), bodyBytes));
  const sizeBytes = framedSize(schemaMessage) + framedSize(batchMessage) + bodyBytes + 8;
  if (streamBytes.byteLength < sizeBytes) streamBytes = new Uint8Array(sizeBytes + (sizeBytes >>> 3));
  const out = streamBytes;
  const view = new DataView(out.buffer, out.byteOffset, sizeBytes);
  let position = writeMessage(out, view, 0, schemaMessage);
  position = writeMessage(out, view, position, batchMessage);
  for (const buffer of buffers) position = writePadded(out, position, buffer);
  view.setUint32(position, CONTINUATION, true);
  view.setUint32(position + 4, 0, true);
  position += 8;
  if (position !== sizeBytes) throw new Error(`Arrow IPC stream: wrote ${position} of ${sizeBytes} bytes`);
  return out.subarray(0, sizeBytes);
}

function schemaMessageOf(schema: arrow.Schema): Uint8Array {
  let message = schemaMessages.get(schema);
  if (message === undefined) {
    message = Message.encode(Message.from(schema));
    schemaMessages.set(schema, message);
  }
  return message;
}

function alignedSize(sizeBytes: number): number {
  return (sizeBytes + ALIGN_BYTES - 1) & ~(ALIGN_BYTES - 1);
}

/** Bytes of a message: continuation, length, flatbuffer and padding. */
function framedSize(flatbuffer: Uint8Array): number {
  return alignedSize(8 + flatbuffer.byteLength);
}

function writeMessage(out: Uint8Array, view: DataView, position: number, flatbuffer: Uint8Array): number {
  const sizeBytes = framedSize(flatbuffer);
  view.setUint32(position, CONTINUATION, true);
  view.setInt32(position + 4, sizeBytes - 8, true);
  out.set(flatbuffer, position + 8);
  out.fill(0, position + 8 + flatbuffer.byteLength, position + sizeBytes);
  return position + sizeBytes;
}

function writePadded(out: Uint8Array, position: number, buffer: Uint8Array): number {
  out.set(buffer, position);
  const end = position + alignedSize(buffer.byteLength);
  out.fill(0, position + buffer.byteLength, end);
  return end;
}

function bytesOf(values: Int32Array | BigInt64Array | Float32Array | Float64Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

function offsetsOf(offsets: Int32Array): Uint8Array {
  if (offsets[0] !== 0) throw new Error(`Arrow IPC stream: offsets start at ${offsets[0]}, not 0`);
  return bytesOf(offsets);
}

/** Appends the node of `column` and its children's, and their buffers, in Arrow's order. */
function collectBuffers(column: ColumnBuffers, nodes: FieldNode[], buffers: Uint8Array[]): void {
  nodes.push(new FieldNode(column.length, column.nullCount));
  buffers.push(column.nullCount > 0 ? column.validity! : EMPTY);
  switch (column.kind) {
    case 'bool': buffers.push(column.bits); break;
    case 'int32': case 'int64': case 'float32': case 'float64': buffers.push(bytesOf(column.values)); break;
    case 'fixed': buffers.push(column.bytes); break;
    case 'bytes': buffers.push(offsetsOf(column.offsets), column.bytes); break;
    case 'list':
      buffers.push(offsetsOf(column.offsets));
      collectBuffers(column.element, nodes, buffers);
      break;
    case 'map':
      buffers.push(offsetsOf(column.offsets));
      nodes.push(new FieldNode(column.key.length, 0));
      buffers.push(EMPTY);
      collectBuffers(column.key, nodes, buffers);
      collectBuffers(column.value, nodes, buffers);
      break;
    case 'struct':
      for (const child of column.children) collectBuffers(child, nodes, buffers);
      break;
  }
}
