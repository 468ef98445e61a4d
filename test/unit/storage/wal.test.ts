import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileWal } from '../../../src/storage/wal/file-wal.ts';
import { crc32c } from '@node-rs/crc32';
import {
  RECORD_BODY_HEADER_BYTES, RECORD_HEADER_BYTES, RING_START, decodeRecord, decodeRecordHeader, encodeRecord,
} from '../../../src/storage/wal/format.ts';
import type { WalRecord } from '../../../src/storage/wal/wal.ts';

const KiB = 1024;

let dir: string;
let walPath: string;
const opened: FileWal[] = [];

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-wal-'));
  walPath = path.join(dir, 'wal');
});

afterEach(async () => {
  for (const wal of opened.splice(0)) await wal.close().catch(() => {});
  await fs.rm(dir, { recursive: true, force: true });
});

async function openWal(capacityBytes = 256 * KiB, maxWriteBytes = 32 * KiB): Promise<{ wal: FileWal; recovered: WalRecord[] }> {
  const wal = await FileWal.open({ path: walPath, capacityBytes, maxWriteBytes, nodeId: 1 });
  opened.push(wal);
  const recovered: WalRecord[] = [];
  for await (const record of wal.recover()) recovered.push(record);
  return { wal, recovered };
}

/** A payload whose bytes are derived from (streamId, baseOffset), so a mix-up shows. */
function payload(streamId: number, baseOffset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  for (let i = 0; i < length; i++) buf[i] = (streamId * 31 + baseOffset * 7 + i) & 0xff;
  return buf;
}

function summary(records: WalRecord[]): string[] {
  return records.map((r) => `${r.streamId}:${r.epoch}:${r.baseOffset}+${r.offsetCount}:${r.batch.length}`);
}

function expectPayloads(records: WalRecord[]): void {
  for (const r of records) expect(r.batch.equals(payload(r.streamId, r.baseOffset, r.batch.length))).toBe(true);
}

describe('file WAL', () => {
  it('groups concurrent appends into far fewer writes and fsyncs', async () => {
    const { wal } = await openWal(1024 * KiB, 64 * KiB);
    const before = wal.stats();
    const appends: Promise<number>[] = [];
    for (let i = 0; i < 500; i++) appends.push(wal.append(i % 5, 1, i * 10, 10, payload(i % 5, i * 10, 100)));
    const ends = await Promise.all(appends);
    const after = wal.stats();
    expect(after.records - before.records).toBe(500);
    expect(after.fsyncs - before.fsyncs).toBeLessThan(30);
    expect(after.writes - before.writes).toBeLessThan(30);
    for (let i = 1; i < ends.length; i++) expect(ends[i]!).toBeGreaterThan(ends[i - 1]!);
  });

  it('recovers exactly the appended records after a reopen', async () => {
    const first = await openWal();
    expect(first.recovered).toEqual([]);
    const expected: string[] = [];
    for (let round = 0; round < 5; round++) {
      const appends: Promise<number>[] = [];
      for (let s = 0; s < 3; s++) {
        const base = round * 100 + s;
        const length = 50 + round * 300 + s;
        appends.push(first.wal.append(s, 7, base, 3, payload(s, base, length)));
        expected.push(`${s}:7:${base}+3:${length}`);
      }
      await Promise.all(appends);
    }
    await first.wal.close();

    const second = await openWal();
    expect(summary(second.recovered)).toEqual(expected);
    expectPayloads(second.recovered);
    // Each record's end offset is where the next one starts (pads aside, they are contiguous or padded).
    for (const r of second.recovered) expect(r.walEndOffset).toBeGreaterThan(r.walOffset);
  });

  it('takes a batch\'s verified CRC for the record CRC: the same bytes, recovered; a wrong one is caught', async () => {
    const body = { streamId: 4, epoch: 2, baseOffset: 1000, lastOffsetDelta: 9, payloadLength: 0 };
    for (const length of [0, 20, 21, 22, 61, 4096, 100_000]) {
      const batch = payload(4, length, length);
      const size = RECORD_HEADER_BYTES + RECORD_BODY_HEADER_BYTES + length;
      const read = Buffer.alloc(size);
      const combined = Buffer.alloc(size);
      encodeRecord(read, 0, 512, { ...body, payloadLength: length }, batch);
      encodeRecord(combined, 0, 512, { ...body, payloadLength: length }, batch, length >= 21 ? crc32c(batch.subarray(21)) : 0);
      expect(combined.equals(read), `${length} bytes`).toBe(true);
      if (length < 21) continue;
      // A CRC that is not the batch's: the record does not decode (recovery stops there).
      const wrong = Buffer.alloc(size);
      encodeRecord(wrong, 0, 512, { ...body, payloadLength: length }, batch, crc32c(batch.subarray(21)) ^ 1);
      expect(decodeRecord(wrong, 0, decodeRecordHeader(wrong, 0)!, 512)).toBeUndefined();
      expect(decodeRecord(combined, 0, decodeRecordHeader(combined, 0)!, 512)?.batch.equals(batch)).toBe(true);
    }

    const first = await openWal();
    const lengths = [21, 300, 5000];
    await Promise.all(lengths.map((length, i) => first.wal.append(1, 7, i * 10, 1, payload(1, i * 10, length), crc32c(payload(1, i * 10, length).subarray(21)))));
    await first.wal.close();
    const second = await openWal();
    expect(summary(second.recovered)).toEqual(lengths.map((length, i) => `1:7:${i * 10}+1:${length}`));
    expectPayloads(second.recovered);
  });

  it('stops recovery at a torn last record, then keeps what is appended after it', async () => {
    const first = await openWal();
    let lastEnd = 0;
    for (let i = 0; i < 4; i++) lastEnd = await first.wal.append(1, 1, i * 5, 5, payload(1, i * 5, 1000));
    await first.wal.close();
    // Flip one byte in the payload of the last record.
    const capacity = 256 * KiB;
    const handle = await fs.open(walPath, 'r+');
    await handle.write(Buffer.from([0xee]), 0, 1, RING_START + ((lastEnd - 10) % capacity));
    await handle.close();

    const second = await openWal();
    expect(summary(second.recovered)).toEqual(['1:1:0+5:1000', '1:1:5+5:1000', '1:1:10+5:1000']);
    // New appends go after the torn region; the next recovery sees old good records and new ones.
    await second.wal.append(2, 3, 0, 1, payload(2, 0, 777));
    await second.wal.close();
    const third = await openWal();
    expect(summary(third.recovered)).toEqual(['1:1:0+5:1000', '1:1:5+5:1000', '1:1:10+5:1000', '2:3:0+1:777']);
    expectPayloads(third.recovered);
  });

  it('never resurrects records written after a torn one in the same write', async () => {
    const first = await openWal();
    const lengths = [500, 600, 700];
    const ends = await Promise.all(lengths.map((length, i) => first.wal.append(4, 1, i, 1, payload(4, i, length))));
    expect(first.wal.stats().writes).toBe(1);
    await first.wal.close();
    // Break the middle record's header: the third one stays intact on disk.
    const handle = await fs.open(walPath, 'r+');
    await handle.write(Buffer.from([0xee]), 0, 1, RING_START + ends[0]! + 2);
    await handle.close();

    const second = await openWal();
    expect(summary(second.recovered)).toEqual(['4:1:0+1:500']);
    await second.wal.append(5, 1, 0, 1, payload(5, 0, 100));
    await second.wal.close();
    const third = await openWal();
    expect(summary(third.recovered)).toEqual(['4:1:0+1:500', '5:1:0+1:100']);
  });

  it('falls back to the other header slot when the newest one is torn', async () => {
    const first = await openWal();
    const end0 = await first.wal.append(1, 1, 0, 1, payload(1, 0, 100));
    await first.wal.append(1, 1, 1, 1, payload(1, 1, 100));
    await first.wal.trim(end0);
    await first.wal.close();
    // Slot writes so far: create (sequence 0, slot 0), open (1, slot 1), trim (2, slot 0).
    // Tear the trim's slot: the older slot, from before the trim, is used.
    const handle = await fs.open(walPath, 'r+');
    await handle.write(Buffer.from([0xff, 0xff]), 0, 2, 20);
    await handle.close();
    const second = await openWal();
    expect(summary(second.recovered)).toEqual(['1:1:0+1:100', '1:1:1+1:100']);
  });

  it('stops recovery where a cut-short file ends', async () => {
    const first = await openWal();
    const end1 = await first.wal.append(1, 1, 0, 1, payload(1, 0, 3000));
    await first.wal.append(1, 1, 1, 1, payload(1, 1, 3000));
    await first.wal.close();
    // The second record starts at the next 4 KiB boundary; cut the file in its middle.
    await fs.truncate(walPath, RING_START + Math.ceil(end1 / 4096) * 4096 + 1000);
    const second = await openWal();
    expect(summary(second.recovered)).toEqual(['1:1:0+1:3000']);
  });

  it('wraps around the ring end, reusing space released by trim, and recovers what is left', async () => {
    const capacity = 64 * KiB;
    const { wal } = await openWal(capacity, 16 * KiB);
    let wrapped = false;
    let trimmedTo = 0;
    const live: { base: number; end: number; length: number }[] = [];
    for (let i = 0; i < 200; i += 2) {
      // Two at a time, so that records also start between 4 KiB boundaries.
      const lengths = [700 + ((i * 997) % 9000), 300 + ((i * 131) % 2000)];
      const ends = await Promise.all(lengths.map((length, k) => wal.append(9, 2, i + k, 1, payload(9, i + k, length))));
      for (let k = 0; k < 2; k++) {
        const start = ends[k]! - (lengths[k]! + 56);
        if ((start % capacity) + lengths[k]! + 56 > capacity) wrapped = true;
        live.push({ base: i + k, end: ends[k]!, length: lengths[k]! });
      }
      // Keep roughly the last 8 records: trim past the older ones.
      while (live.length > 8) {
        trimmedTo = live.shift()!.end;
        await wal.trim(trimmedTo);
      }
    }
    expect(wrapped).toBe(true);
    expect(wal.trimOffset()).toBe(trimmedTo);
    expect(trimmedTo).toBeGreaterThan(3 * capacity);
    await wal.close();

    const again = await openWal(capacity, 16 * KiB);
    expect(again.recovered.map((r) => r.baseOffset)).toEqual(live.map((r) => r.base));
    expectPayloads(again.recovered);
  });

  it('makes appends wait while the ring is full, and tells the owner', async () => {
    const capacity = 64 * KiB;
    const { wal } = await openWal(capacity, 16 * KiB);
    let pressureCalls = 0;
    wal.setPressureListener(() => pressureCalls++);
    const ends: number[] = [];
    const appends: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) {
      appends.push(wal.append(1, 1, i, 1, payload(1, i, 3000)).then((end) => void (ends[i] = end)));
    }
    await expect.poll(() => ends.filter((e) => e !== undefined).length).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const durable = ends.filter((e) => e !== undefined).length;
    expect(durable).toBeGreaterThan(0);
    expect(durable).toBeLessThan(40);
    expect(wal.usedBytes()).toBeLessThanOrEqual(capacity);
    expect(pressureCalls).toBeGreaterThan(0);
    // Releasing space lets the rest through.
    while (ends.filter((e) => e !== undefined).length < 40) {
      const durableEnds = ends.filter((e) => e !== undefined);
      await wal.trim(durableEnds[durableEnds.length - 1]!);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await Promise.all(appends);
  });

  it('rejects a batch larger than one write', async () => {
    const { wal } = await openWal(256 * KiB, 32 * KiB);
    await expect(wal.append(1, 1, 0, 1, Buffer.alloc(wal.maxBatchBytes() + 1))).rejects.toThrow(RangeError);
    await expect(wal.append(1, 1, 0, 1, Buffer.alloc(wal.maxBatchBytes()))).resolves.toBeGreaterThan(0);
  });
});
