import { describe, expect, it } from 'vitest';
import { decodeOffsetsBatches, encodeOffsetsBatch, type OffsetsRecord } from '../../../src/groups/offset-records.ts';
import { readBaseOffset, readOffsetCount, readRecordCount, validateBatch } from '../../../src/protocol/records.ts';

function decodeAll(buf: Buffer): OffsetsRecord[] {
  const records: OffsetsRecord[] = [];
  decodeOffsetsBatches(buf, (r) => records.push(r));
  return records;
}

describe('offsets stream records', () => {
  const commit: OffsetsRecord = {
    kind: 'commit',
    groupId: 'group-é',
    topics: [
      {
        topic: 'orders',
        partitions: [
          { partition: 0, offset: 42, leaderEpoch: 3, metadata: 'meta', commitTimestampMs: 1_700_000_000_000 },
          { partition: 7, offset: 2 ** 50, leaderEpoch: -1, metadata: '', commitTimestampMs: 1 },
        ],
      },
    ],
  };

  it('each record is one well-formed Kafka v2 batch taking one offset', () => {
    const batch = encodeOffsetsBatch(commit, 17, 1_700_000_000_000);
    expect(validateBatch(batch, 0)).toBe(0);
    expect(readBaseOffset(batch, 0)).toBe(17);
    expect(readOffsetCount(batch, 0)).toBe(1);
    expect(readRecordCount(batch, 0)).toBe(1);
  });

  it('commits, tombstones and snapshots decode to what was encoded', () => {
    const tombstone: OffsetsRecord = { kind: 'deleteGroup', groupId: 'gone' };
    const snapshot: OffsetsRecord = {
      kind: 'snapshot',
      groups: [
        { groupId: 'a', topics: commit.kind === 'commit' ? commit.topics : [] },
        { groupId: 'b', topics: [] },
      ],
    };
    const big: OffsetsRecord = {
      kind: 'commit',
      groupId: 'big',
      topics: [{ topic: 't', partitions: Array.from({ length: 500 }, (_, i) => ({ partition: i, offset: i, leaderEpoch: 0, metadata: 'm', commitTimestampMs: i })) }],
    };
    const buf = Buffer.concat([commit, tombstone, snapshot, big].map((r, i) => encodeOffsetsBatch(r, i, 5)));
    expect(decodeAll(buf)).toEqual([commit, tombstone, snapshot, big]);
  });

  it('a corrupted batch fails loudly', () => {
    const batch = encodeOffsetsBatch(commit, 0, 5);
    batch[batch.length - 3]! ^= 0xff;
    expect(() => decodeAll(batch)).toThrow(/corrupt/);
    expect(() => decodeAll(encodeOffsetsBatch(commit, 0, 5).subarray(0, 40))).toThrow(/truncated/);
  });
});
