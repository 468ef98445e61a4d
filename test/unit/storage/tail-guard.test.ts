import { describe, expect, it } from 'vitest';
import { CatchUpLimiter, Priority } from '../../../src/storage/cache/read-ahead.ts';
import { TailGuard, type LoopDelay, type PacedReads } from '../../../src/storage/tail-guard.ts';

const MiB = 1024 * 1024;

/** A GET of `bytes` through the limiter that does nothing but note its start time. */
function get(limiter: CatchUpLimiter, bytes: number, starts: number[]): Promise<void> {
  return limiter.run(bytes, Priority.read, async () => {
    starts.push(performance.now());
  });
}

describe('catch-up pace', () => {
  it('spaces GETs to the pace, and lets the waiting ones go once the pace is lifted', async () => {
    const limiter = new CatchUpLimiter({ maxConcurrentGets: 8, maxInflightBytes: 64 * MiB });
    limiter.setPace(10 * MiB); // 1 MiB GETs: one per 100 ms after the first
    const starts: number[] = [];
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 5 }, () => get(limiter, MiB, starts)));
    expect(starts[4]! - t0).toBeGreaterThanOrEqual(350);
    for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(80);
    expect(limiter.takeAdmittedBytes()).toBe(5 * MiB);

    limiter.setPace(MiB); // one per second now: lifting the pace releases them at once
    const more: number[] = [];
    const waiting = Promise.all(Array.from({ length: 4 }, () => get(limiter, MiB, more)));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(more.length).toBeLessThan(4);
    const lifted = performance.now();
    limiter.setPace(Infinity);
    await waiting;
    expect(more.length).toBe(4);
    expect(performance.now() - lifted).toBeLessThan(500);
  });
});

/** The event loop as the guard sees it: `lateMs` late at the 99th percentile. */
function loopLate(): LoopDelay & { lateMs: number } {
  return { lateMs: 0, enable() {}, disable() {}, reset() {}, p99LateMs() { return this.lateMs; } };
}

/** The limiter's side as the guard sees it: bytes admitted per interval, waiting GETs, the pace. */
function pacedReads(pace: number): PacedReads & { admitted: number; pace: number; waiting: boolean } {
  return {
    admitted: 0,
    pace,
    waiting: false,
    hasDemand(): boolean {
      return this.waiting;
    },
    takeAdmittedBytes(): number {
      const bytes = this.admitted;
      this.admitted = 0;
      return bytes;
    },
    paceBytesPerSecond(): number {
      return this.pace;
    },
    setPace(bytesPerSecond: number): void {
      this.pace = bytesPerSecond;
    },
  };
}

describe('tail guard', () => {
  it('cuts the catch-up pace while appends are slow, grows it back while they are not, starts it low while producers write (also for a replay already running), and lifts it once producers have paused a while', () => {
    const reads = pacedReads(512 * MiB); // grown that far already
    const intervalS = 0.25;
    const guard = new TailGuard(reads, {
      targetMs: 5, intervalMs: intervalS * 1000, minBytesPerSecond: MiB, startBytesPerSecond: 8 * MiB, liftAfterIdleIntervals: 4,
      loopDelay: loopLate(),
    });
    const catchUpAt = (bytesPerSecond: number): void => {
      reads.admitted += bytesPerSecond * intervalS;
    };
    /** `count` appends (the i-th taking latencyMs(i) ms, of `bytes` each), then the interval ends. */
    const interval = (count: number, latencyMs: number | ((i: number) => number), bytes = 0): void => {
      for (let i = 0; i < count; i++) guard.observe(typeof latencyMs === 'number' ? latencyMs : latencyMs(i), bytes);
      guard.tick();
    };
    /** Intervals without appends, as many as the lift takes. */
    const pause = (): void => {
      for (let round = 0; round < 4; round++) guard.tick();
    };
    guard.start();
    try {
      // Catch-up at 256 MiB/s (under its pace) while the appends' p99 is 20 ms, four times the
      // target: the pace is cut to a quarter of that rate.
      catchUpAt(256 * MiB);
      interval(200, (i) => (i < 190 ? 1 : 20));
      expect(reads.pace).toBe(64 * MiB);
      // Still slow: cut again from the pace (below the rate catch-up had), never below the floor.
      catchUpAt(256 * MiB);
      interval(50, 30);
      expect(reads.pace).toBeCloseTo((64 * MiB) / 6, 0);
      for (let round = 0; round < 10; round++) {
        catchUpAt(MiB);
        interval(1, 30);
      }
      expect(reads.pace).toBe(MiB);
      // A p99 within the target (one slow append in 200 is under the 1%): the pace grows by a quarter.
      catchUpAt(MiB);
      interval(200, (i) => (i === 0 ? 40 : 1));
      expect(reads.pace).toBe(1.25 * MiB);
      // GETs wait for the pace and none started this interval: still a catch-up, still paced.
      reads.waiting = true;
      interval(200, 1);
      expect(reads.pace).toBe(1.25 * 1.25 * MiB);
      interval(200, 20);
      expect(reads.pace).toBe(MiB); // cut from the pace, to the floor
      reads.waiting = false;
      // A pause of the producers shorter than the lift delay (4 intervals) grows the pace ...
      for (let round = 1; round <= 3; round++) {
        catchUpAt(MiB);
        guard.tick();
        expect(reads.pace).toBe(MiB * 1.25 ** round);
      }
      // ... and the first append after it brings a pace grown past the start pace back to it at
      // once, before the interval ends.
      reads.pace = 100 * MiB; // as if grown far during a longer pause
      catchUpAt(MiB);
      guard.tick();
      guard.observe(1);
      expect(reads.pace).toBe(8 * MiB);
      guard.observe(1);
      reads.pace = 9 * MiB;
      guard.observe(1); // once per return of the producers, not per append
      expect(reads.pace).toBe(9 * MiB);
      catchUpAt(MiB);
      guard.tick();
      expect(reads.pace).toBe(9 * MiB * 1.25);
      reads.pace = MiB;
      for (let round = 1; round <= 3; round++) {
        catchUpAt(MiB);
        guard.tick();
      }
      // ... a longer one has nobody to protect: the pace is lifted.
      catchUpAt(MiB);
      guard.tick();
      expect(reads.pace).toBe(Infinity);
      // The replay runs unpaced; producers come back, and even with their p99 within the target
      // the replay drops to the start pace at their first append, and grows from there while
      // they stay fast.
      catchUpAt(512 * MiB);
      guard.observe(1);
      expect(reads.pace).toBe(8 * MiB);
      interval(99, 1);
      expect(reads.pace).toBe(10 * MiB);
      // Unpaced again, and the producers come back slow: cut from the start pace.
      pause();
      expect(reads.pace).toBe(Infinity);
      catchUpAt(512 * MiB);
      interval(100, 10);
      expect(reads.pace).toBe(4 * MiB);
      // Appends but no catch-up reads: the pace a replay would start at.
      pause();
      expect(reads.pace).toBe(Infinity);
      interval(100, 50);
      expect(reads.pace).toBe(8 * MiB);
      // A replay starting then runs at that pace and grows while appends stay fast.
      catchUpAt(8 * MiB);
      interval(100, 1);
      expect(reads.pace).toBe(10 * MiB);
      // Producers write 64 MiB/s (256 appends of 64 KiB in the 0.25 s interval) and are slow:
      // the pace is not cut below 1.5 times that rate, or the replay would never catch up.
      catchUpAt(10 * MiB);
      interval(256, 20, 64 * 1024);
      expect(reads.pace).toBe(96 * MiB);
    } finally {
      guard.stop();
    }
  });

  it('holds the latency to 1.25 times what it is without catch-up reads, the event loop\'s delay included', () => {
    const reads = pacedReads(64 * MiB);
    const loop = loopLate();
    const guard = new TailGuard(reads, { targetMs: 5, minTargetMs: 1, intervalMs: 250, minBytesPerSecond: MiB, startBytesPerSecond: 64 * MiB, loopDelay: loop });
    const interval = (latencyMs: number, catchUpBytes = 0): void => {
      reads.admitted += catchUpBytes;
      for (let i = 0; i < 100; i++) guard.observe(latencyMs);
      guard.tick();
    };
    guard.start();
    try {
      // No baseline yet: the configured target (5 ms) holds, 4 ms is within it.
      interval(4, 16 * MiB);
      expect(reads.pace).toBe(80 * MiB);
      // Producers alone, appends at 2 ms: the target becomes 2.5 ms.
      for (let i = 0; i < 3; i++) interval(2);
      expect(guard.target()).toBe(2.5);
      reads.pace = 64 * MiB;
      interval(2.4, 16 * MiB);
      expect(reads.pace).toBe(80 * MiB);
      interval(4, 16 * MiB); // within the old fixed 5 ms, past 1.25 times the baseline: cut
      expect(reads.pace).toBe(32 * MiB);
      // The loop runs late (catch-up work on it) while appends stay fast: that counts too.
      loop.lateMs = 2;
      interval(1.5, 8 * MiB);
      expect(reads.pace).toBe(16 * MiB);
      loop.lateMs = 0;
      // Faster appends without catch-up pull the baseline down, a moving average: never below
      // the least target (1 ms), never above the configured one.
      for (let i = 0; i < 100; i++) interval(0.2);
      expect(guard.target()).toBe(1);
      for (let i = 0; i < 100; i++) interval(20);
      expect(guard.target()).toBe(5);
      for (let i = 0; i < 48; i++) interval(2);
      expect(guard.target()).toBeGreaterThan(2.5);
      expect(guard.target()).toBeLessThan(5);
    } finally {
      guard.stop();
    }
  });
});
