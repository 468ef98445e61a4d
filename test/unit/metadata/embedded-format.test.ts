import { describe, expect, it } from 'vitest';
import { encodeLogHeader, encodeRecord, scanLog } from '../../../src/metadata/embedded-format.ts';
import type { LogRecord } from '../../../src/metadata/embedded-format.ts';
import { ownsBuffer } from '../../../src/storage/buffers.ts';

describe('metadata log records', () => {
  it('are encoded into one buffer of exactly their size, which a scan decodes back', () => {
    const value = Buffer.alloc(6000, 7);
    const record: LogRecord = {
      revision: 123_456_789,
      ops: [
        { type: 'put', key: '/wharf/objects/0000000000000042', value, lease: 'lease-ü-1' },
        { type: 'put', key: '/wharf/ключ', value: Buffer.from('{"a":1}'), lease: undefined },
        { type: 'delete', key: '/wharf/streams/7' },
        { type: 'grant', lease: 'lease-ü-1', ttlMs: 10_000 },
        { type: 'revoke', lease: 'old' },
      ],
    };
    const bytes = encodeRecord(record);
    // Over 4 KiB: memory of its own, spanned whole (the store frees it once it is on disk). A
    // size computed short would have grown the buffer, and the record would be a view of it.
    expect(ownsBuffer(bytes)).toBe(true);
    const scan = scanLog(Buffer.concat([encodeLogHeader(), bytes]), 1 << 20);
    expect(scan.tornReason).toBeUndefined();
    expect(scan.records).toEqual([record]);
  });

  it('small records decode back too', () => {
    const record: LogRecord = { revision: 1, ops: [{ type: 'delete', key: 'k' }] };
    const bytes = encodeRecord(record);
    expect(bytes.length).toBe(8 + 12 + 5 + 1);
    expect(scanLog(Buffer.concat([encodeLogHeader(), bytes]), 1 << 20).records).toEqual([record]);
  });
});
