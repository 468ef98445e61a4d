import { describe, expect, it } from 'vitest';
import { TimeIndex } from '../../../src/log/time-index.ts';

describe('time index', () => {
  it('never skips a batch that could hold the target, however often it thins itself', () => {
    const index = new TimeIndex(100, 8);
    // 500 batches of 2 offsets and 100 bytes, timestamps wandering upwards with dips.
    const maxTimestamps: number[] = [];
    for (let i = 0; i < 500; i++) {
      const ts = i * 10 + ((i * 7919) % 37) - 18;
      maxTimestamps.push(ts);
      index.observe(i * 2, i * 2 + 2, ts, 100);
    }
    expect(index.entryCount).toBeLessThanOrEqual(8);
    for (let target = -50; target < 5100; target += 13) {
      const firstBatch = maxTimestamps.findIndex((ts) => ts >= target);
      const startOffset = index.lookup(target);
      if (firstBatch >= 0) expect(startOffset).toBeLessThanOrEqual(firstBatch * 2);
    }
    expect(index.lookup(4000)).toBeGreaterThan(0); // and it does skip
  });

  it('survives a round trip through its JSON state and ignores batches it has seen', () => {
    const index = new TimeIndex(1, 16);
    index.observe(0, 5, 100, 10);
    index.observe(5, 9, 200, 10);
    const copy = new TimeIndex(1, 16);
    expect(copy.restore(JSON.parse(JSON.stringify(index.toState())))).toBe(true);
    copy.observe(5, 9, 200, 10); // replayed again: no effect
    copy.observe(9, 10, 300, 10);
    expect(copy.coveredFromOffset).toBe(0);
    expect(copy.lookup(250)).toBe(9);
    expect(copy.restore({ ...index.toState(), offsets: [1] })).toBe(false);
  });
});
