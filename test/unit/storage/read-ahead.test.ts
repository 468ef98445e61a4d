import { describe, expect, it } from 'vitest';
import { CatchUpLimiter, Priority, ReadAheadWindow, SequentialReaders } from '../../../src/storage/cache/read-ahead.ts';

const KiB = 1024;

describe('sequential readers', () => {
  it('continues a reader that reads where it left off, and starts a new one elsewhere', () => {
    const readers = new SequentialReaders({ initialBytes: 256 * KiB, maxBytes: 4096 * KiB });
    const first = readers.take(7, 0);
    expect(first.sequential).toBe(false);
    readers.park(7, 100, first.window);
    expect(readers.take(7, 50).sequential).toBe(false); // elsewhere: a new reader
    expect(readers.take(8, 100).sequential).toBe(false); // another stream
    const again = readers.take(7, 100);
    expect(again).toEqual({ window: first.window, sequential: true });
    expect(readers.take(7, 100).sequential).toBe(false); // taken out: one reader, one position
  });

  it('forgets the least recently parked readers past its bound', () => {
    const readers = new SequentialReaders({ initialBytes: KiB, maxBytes: KiB, maxReaders: 3 });
    for (let i = 0; i < 5; i++) readers.park(1, i, new ReadAheadWindow(KiB, KiB));
    expect(readers.size()).toBe(3);
    expect(readers.take(1, 0).sequential).toBe(false);
    expect(readers.take(1, 4).sequential).toBe(true);
  });

  it('grows a window from the initial size by doubling up to the cap, and drops it when read-ahead is evicted unread', () => {
    const window = new ReadAheadWindow(256 * KiB, 2048 * KiB);
    const sizes: number[] = [];
    for (let i = 0; i < 6; i++) {
      window.windowBytes = window.next();
      sizes.push(window.windowBytes / KiB);
    }
    expect(sizes).toEqual([256, 512, 1024, 2048, 2048, 2048]);
    window.onEvictedUnread();
    expect(window.windowBytes).toBe(0);
    expect(window.next()).toBe(256 * KiB);
    expect(window.drops).toBe(1);
  });

  it('after a drop grows the window only to half its size at the drop, until it has run there for a while', () => {
    const window = new ReadAheadWindow(256 * KiB, 4096 * KiB);
    for (let i = 0; i < 5; i++) window.advance();
    expect(window.windowBytes).toBe(4096 * KiB);
    window.onEvictedUnread(); // the cache could not hold 4 MiB of this reader's read-ahead
    const sizes: number[] = [];
    for (let i = 0; i < 5; i++) {
      window.advance();
      sizes.push(window.windowBytes / KiB);
    }
    expect(sizes).toEqual([256, 512, 1024, 2048, 2048]);
    window.onEvictedUnread(); // dropped again at 2 MiB: capped at 1 MiB now
    for (let i = 0; i < 6; i++) window.advance();
    expect(window.windowBytes).toBe(1024 * KiB);
    // 16 rounds at the cap without a drop: the cap doubles, and again after 16 more.
    for (let i = 0; i < 16; i++) window.advance();
    expect(window.next()).toBe(2048 * KiB);
    for (let i = 0; i < 17; i++) window.advance();
    expect(window.windowBytes).toBe(4096 * KiB);
    expect(window.drops).toBe(2);
  });
});

/** A GET the test answers when it likes. */
interface HeldGet {
  bytes: number;
  priority: Priority;
  done: () => void;
}

describe('catch-up limiter', () => {
  function harness(limiter: CatchUpLimiter): { started: HeldGet[]; run: (bytes: number, priority: Priority) => Promise<void> } {
    const started: HeldGet[] = [];
    const run = (bytes: number, priority: Priority): Promise<void> =>
      limiter.run(bytes, priority, () => new Promise<void>((resolve) => started.push({ bytes, priority, done: resolve })));
    return { started, run };
  }
  const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  it('caps concurrent GETs and bytes in flight; a GET larger than the budget runs alone', async () => {
    const limiter = new CatchUpLimiter({ maxConcurrentGets: 2, maxInflightBytes: 100 });
    const { started, run } = harness(limiter);
    const all = [run(60, Priority.read), run(60, Priority.read), run(30, Priority.read), run(500, Priority.read)];
    await settle();
    expect(started.map((g) => g.bytes)).toEqual([60]); // 60 + 60 > 100
    started[0]!.done();
    await settle();
    expect(started.map((g) => g.bytes)).toEqual([60, 60, 30]);
    expect(limiter.stats()).toMatchObject({ activeGets: 2, inflightBytes: 90 });
    started[1]!.done();
    await settle();
    expect(started.length).toBe(3); // 500 waits until nothing else runs
    started[2]!.done();
    await settle();
    expect(started.map((g) => g.bytes)).toEqual([60, 60, 30, 500]);
    started[3]!.done();
    await Promise.all(all);
    expect(limiter.stats()).toMatchObject({ activeGets: 0, inflightBytes: 0, peakGets: 2, peakInflightBytes: 500 });
  });

  it('admits reads waiting for their own blocks before read-ahead', async () => {
    const limiter = new CatchUpLimiter({ maxConcurrentGets: 1, maxInflightBytes: 1000 });
    const { started, run } = harness(limiter);
    const all = [run(10, Priority.readAhead), run(10, Priority.readAhead), run(10, Priority.read), run(10, Priority.readAhead)];
    await settle();
    expect(limiter.stats()).toMatchObject({ queuedReads: 1, queuedReadAhead: 2 });
    for (let i = 0; i < 4; i++) {
      started[i]!.done();
      await settle();
    }
    await Promise.all(all);
    expect(started.map((g) => g.priority)).toEqual([Priority.readAhead, Priority.read, Priority.readAhead, Priority.readAhead]);
  });

  it('releases its budget when a GET fails', async () => {
    const limiter = new CatchUpLimiter({ maxConcurrentGets: 1, maxInflightBytes: 10 });
    await expect(limiter.run(5, Priority.read, () => Promise.reject(new Error('timeout')))).rejects.toThrow('timeout');
    expect(limiter.stats()).toMatchObject({ activeGets: 0, inflightBytes: 0 });
    await expect(limiter.run(5, Priority.read, async () => 'ok')).resolves.toBe('ok');
  });
});
