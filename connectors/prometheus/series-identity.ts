// A series' identity: its label set (with __name__), validated and written as the record key.
//
// Rules (remote-write 1.0 and 2.0 alike): label names non-empty and strictly ascending by bytes
// (so no duplicates), values non-empty, names and values valid UTF-8, a non-empty __name__.
//
// Key format (UTF-8, see schemas/prometheus_samples.json):
//
//   metric{name1="value1",name2="value2"}      labels in their sorted order, __name__ left out
//   metric{}                                    a series with no label but __name__
//   {"metric.with.dots",name1="value1"}         a name outside [a-zA-Z_:][a-zA-Z0-9_:]* is quoted
//   metric{"label.with.dots"="v"}               a label name outside [a-zA-Z_][a-zA-Z0-9_]* too
//
// In quoted names and in values, backslash, double quote and line feed are escaped as \\, \"
// and \n (PromQL's string syntax): the key is unambiguous, and it reads as a PromQL selector.

import { isUtf8Range } from './protobuf.ts';
import { invalidSeries } from './decoded-write.ts';
import type { ByteArena } from './protobuf.ts';

const NAME_LABEL = Buffer.from('__name__');

/** Byte ranges of one series' labels inside the request buffer (reused from series to series). */
export class LabelRanges {
  count = 0;
  nameStart = new Int32Array(32);
  nameEnd = new Int32Array(32);
  valueStart = new Int32Array(32);
  valueEnd = new Int32Array(32);

  push(nameStart: number, nameEnd: number, valueStart: number, valueEnd: number): void {
    if (this.count === this.nameStart.length) this.grow();
    const i = this.count++;
    this.nameStart[i] = nameStart;
    this.nameEnd[i] = nameEnd;
    this.valueStart[i] = valueStart;
    this.valueEnd[i] = valueEnd;
  }

  private grow(): void {
    const size = this.nameStart.length * 2;
    const grown = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
      const b = new Int32Array(size);
      b.set(a);
      return b;
    };
    this.nameStart = grown(this.nameStart);
    this.nameEnd = grown(this.nameEnd);
    this.valueStart = grown(this.valueStart);
    this.valueEnd = grown(this.valueEnd);
  }
}

/** Sign of the byte-wise comparison of two ranges of buf. */
function compareRanges(buf: Buffer, aStart: number, aEnd: number, bStart: number, bEnd: number): number {
  const aLength = aEnd - aStart;
  const bLength = bEnd - bStart;
  const n = aLength < bLength ? aLength : bLength;
  for (let i = 0; i < n; i++) {
    const d = buf[aStart + i]! - buf[bStart + i]!;
    if (d !== 0) return d;
  }
  return aLength - bLength;
}

function isNameLabel(buf: Buffer, start: number, end: number): boolean {
  if (end - start !== 8) return false;
  for (let i = 0; i < 8; i++) if (buf[start + i] !== NAME_LABEL[i]) return false;
  return true;
}

/**
 * Checks the label set by the rules above except UTF-8 (checked while the key is written);
 * returns the index of __name__.
 */
function checkLabels(buf: Buffer, labels: LabelRanges, seriesIndex: number): number {
  let nameIndex = -1;
  const { nameStart, nameEnd, valueStart, valueEnd } = labels;
  for (let i = 0; i < labels.count; i++) {
    const ns = nameStart[i]!;
    const ne = nameEnd[i]!;
    if (ne === ns) throw labelError(buf, labels, seriesIndex, `label ${i} has an empty name`);
    if (valueEnd[i] === valueStart[i]) {
      throw labelError(buf, labels, seriesIndex, `label ${quote(buf.toString('utf8', ns, ne))} has an empty value`);
    }
    if (i > 0) {
      const order = compareRanges(buf, nameStart[i - 1]!, nameEnd[i - 1]!, ns, ne);
      if (order >= 0) {
        const name = quote(buf.toString('utf8', ns, ne));
        throw labelError(buf, labels, seriesIndex, order === 0
          ? `duplicate label name ${name}`
          : `labels are not sorted by name: ${name} comes after ${quote(buf.toString('utf8', nameStart[i - 1]!, nameEnd[i - 1]!))}`);
      }
    }
    if (nameIndex < 0 && isNameLabel(buf, ns, ne)) nameIndex = i;
  }
  if (nameIndex < 0) throw labelError(buf, labels, seriesIndex, 'no __name__ label');
  return nameIndex;
}

function labelError(buf: Buffer, labels: LabelRanges, seriesIndex: number, problem: string): Error {
  const shown: string[] = [];
  for (let i = 0; i < labels.count && i < 20; i++) {
    shown.push(`${buf.toString('utf8', labels.nameStart[i]!, labels.nameEnd[i]!)}=${quote(buf.toString('utf8', labels.valueStart[i]!, labels.valueEnd[i]!))}`);
  }
  if (labels.count > 20) shown.push('...');
  return invalidSeries(`timeseries[${seriesIndex}] {${shown.join(', ')}}: ${problem}`);
}

function quote(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}...` : text);
}

/** Per byte: which name characters it may be (bit flags below). */
const NAME_CHAR = new Uint8Array(256);
const FIRST = 1; // [a-zA-Z_]
const NEXT = 2; // [a-zA-Z0-9_]
const COLON = 4; // ':' (metric names only)
for (let c = 0; c < 256; c++) {
  const letter = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f;
  NAME_CHAR[c] = (letter ? FIRST | NEXT : 0) | (c >= 0x30 && c <= 0x39 ? NEXT : 0) | (c === 0x3a ? COLON : 0);
}

/** Whether bytes match [a-zA-Z_:][a-zA-Z0-9_:]* (metric names, colon allowed) or [a-zA-Z_][a-zA-Z0-9_]*. */
function isLegacyName(buf: Buffer, start: number, end: number, colonAllowed: boolean): boolean {
  const colon = colonAllowed ? COLON : 0;
  if (start < end && (NAME_CHAR[buf[start]!]! & (FIRST | colon)) === 0) return false;
  const next = NEXT | colon;
  for (let i = start + 1; i < end; i++) {
    if ((NAME_CHAR[buf[i]!]! & next) === 0) return false;
  }
  return true;
}

/** Per byte: 0 copied as is, 1 escaped with a backslash, 2 line feed (written \\n), 3 not ASCII. */
const BYTE_CLASS = new Uint8Array(256);
BYTE_CLASS[0x5c] = 1;
BYTE_CLASS[0x22] = 1;
BYTE_CLASS[0x0a] = 2;
BYTE_CLASS.fill(3, 0x80);

/** Non-zero when a byte of the 32-bit word equals the byte repeated in `pattern` (SWAR zero-byte test). */
function hasByte(word: number, pattern: number): number {
  const v = word ^ pattern;
  return (v - 0x01010101) & ~v & 0x80808080;
}

const OPEN = 0x7b; // {
const CLOSE = 0x7d; // }
const QUOTE = 0x22; // "
const COMMA = 0x2c;
const EQUALS = 0x3d;
const HASH_SEED = 0x811c9dc5;
const HASH_MULTIPLIER = 0x9e3779b1 | 0;
/** Hashes are cut to 30 bits: V8 keeps such numbers as small integers, and Map lookups on them stay cheap. */
const SMI_MASK = 0x3fffffff;
const EMPTY = Buffer.alloc(0);

/**
 * Validates a series' labels and writes its key (format above). After write(), `hash` holds a
 * 30-bit hash of the label set (equal keys, equal hashes) and `nameIndex` the index of __name__.
 *
 * Hot path: strings are copied four bytes at a time (DataView words) as long as no byte of the
 * word needs escaping or is non-ASCII, and hashed as they are copied.
 */
export class SeriesKeyWriter {
  hash = 0;
  nameIndex = -1;
  private input: Buffer = EMPTY;
  private inputView: DataView = new DataView(EMPTY.buffer);
  private out: Buffer = EMPTY;
  private outView: DataView = new DataView(EMPTY.buffer);
  private pos = 0;
  private nonAscii = false;

  write(arena: ByteArena, buf: Buffer, labels: LabelRanges, seriesIndex: number): Buffer {
    const nameIndex = checkLabels(buf, labels, seriesIndex);
    this.nameIndex = nameIndex;
    const { nameStart, nameEnd, valueStart, valueEnd } = labels;
    let bound = 4;
    for (let i = 0; i < labels.count; i++) bound += 2 * (nameEnd[i]! - nameStart[i]! + valueEnd[i]! - valueStart[i]!) + 6;
    const out = arena.room(bound);
    if (out !== this.out) {
      this.out = out;
      this.outView = new DataView(out.buffer, out.byteOffset, out.length);
    }
    if (buf !== this.input) {
      this.input = buf;
      this.inputView = new DataView(buf.buffer, buf.byteOffset, buf.length);
    }
    const start = arena.pos;
    this.pos = start;
    this.hash = HASH_SEED;
    this.nonAscii = false;
    const ms = valueStart[nameIndex]!;
    const me = valueEnd[nameIndex]!;
    let first = true;
    if (isLegacyName(buf, ms, me, true)) {
      this.copyEscaped(ms, me);
      out[this.pos++] = OPEN;
    } else {
      out[this.pos++] = OPEN;
      this.quoted(ms, me);
      first = false;
    }
    for (let i = 0; i < labels.count; i++) {
      if (i === nameIndex) continue;
      if (!first) out[this.pos++] = COMMA;
      first = false;
      const ns = nameStart[i]!;
      const ne = nameEnd[i]!;
      if (isLegacyName(buf, ns, ne, false)) this.copyEscaped(ns, ne);
      else this.quoted(ns, ne);
      out[this.pos++] = EQUALS;
      this.quoted(valueStart[i]!, valueEnd[i]!);
    }
    out[this.pos++] = CLOSE;
    if (this.nonAscii) checkUtf8(buf, labels, seriesIndex);
    const hash = this.hash;
    this.hash = (hash ^ (hash >>> 13)) & SMI_MASK;
    return arena.take(start, this.pos);
  }

  private quoted(start: number, end: number): void {
    this.out[this.pos++] = QUOTE;
    this.copyEscaped(start, end);
    this.out[this.pos++] = QUOTE;
  }

  /** Copies input bytes [start, end) to the key, escaping \\ " and line feed, hashing them. */
  private copyEscaped(start: number, end: number): void {
    const input = this.input;
    const inputView = this.inputView;
    const out = this.out;
    const outView = this.outView;
    let pos = this.pos;
    let hash = Math.imul(this.hash ^ (end - start), HASH_MULTIPLIER);
    let i = start;
    for (; i + 4 <= end; i += 4) {
      const word = inputView.getUint32(i, true);
      if (((word & 0x80808080) | hasByte(word, 0x22222222) | hasByte(word, 0x5c5c5c5c) | hasByte(word, 0x0a0a0a0a)) !== 0) break;
      outView.setUint32(pos, word, true);
      pos += 4;
      hash = Math.imul(hash ^ word, HASH_MULTIPLIER);
      hash ^= hash >>> 15;
    }
    for (; i < end; i++) {
      const c = input[i]!;
      hash = Math.imul(hash ^ c, HASH_MULTIPLIER);
      const kind = BYTE_CLASS[c]!;
      if (kind === 0) {
        out[pos++] = c;
      } else if (kind === 1) {
        out[pos++] = 0x5c;
        out[pos++] = c;
      } else if (kind === 2) {
        out[pos++] = 0x5c;
        out[pos++] = 0x6e;
      } else {
        this.nonAscii = true;
        out[pos++] = c;
      }
    }
    this.pos = pos;
    this.hash = hash;
  }
}

/** Some label byte is not ASCII: every name and value must then be valid UTF-8. */
function checkUtf8(buf: Buffer, labels: LabelRanges, seriesIndex: number): void {
  for (let i = 0; i < labels.count; i++) {
    if (!isUtf8Range(buf, labels.nameStart[i]!, labels.nameEnd[i]!) || !isUtf8Range(buf, labels.valueStart[i]!, labels.valueEnd[i]!)) {
      throw labelError(buf, labels, seriesIndex, `label ${i} is not valid UTF-8`);
    }
  }
}

/**
 * Finds records with the same key among those of one request: by hash first, bytes compared on
 * a hash match, with a string-keyed map for the rare hash collision.
 */
export class KeyIndex {
  private readonly byHash = new Map<number, number>();
  private readonly keys: Buffer[] = [];
  private collided: Map<string, number> | undefined;

  /** The record index of an earlier record with this key; else registers `index` for it and returns -1. */
  findOrAdd(key: Buffer, hash: number, index: number): number {
    const seen = this.byHash.get(hash);
    if (seen === undefined) {
      this.byHash.set(hash, index);
      this.keys[index] = key;
      return -1;
    }
    if (this.keys[seen]!.equals(key)) return seen;
    this.collided ??= new Map();
    const text = key.toString('latin1');
    const other = this.collided.get(text);
    if (other !== undefined) return other;
    this.collided.set(text, index);
    this.keys[index] = key;
    return -1;
  }
}

/** A 30-bit hash of bytes [start, end), four at a time (equal keys are still compared byte by byte). */
function hashRange(bytes: Buffer, start: number, end: number): number {
  let hash = HASH_SEED ^ (end - start);
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const word = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    hash = Math.imul(hash ^ word, HASH_MULTIPLIER);
    hash ^= hash >>> 15;
  }
  for (; i < end; i++) hash = Math.imul(hash ^ bytes[i]!, HASH_MULTIPLIER);
  return (hash ^ (hash >>> 13)) & SMI_MASK;
}

/** hashRange of a whole key (keys written outside SeriesKeyWriter, e.g. metadata keys). */
export function hashBytes(bytes: Buffer): number {
  return hashRange(bytes, 0, bytes.length);
}
