// The tail guard: keeps consumers replaying old data from slowing producers. Catch-up reads use
// CPU (object reads, copies, socket writes and the garbage their Buffers make in the broker, and
// the consumer's own work on a shared host) that the produce path then waits for. Every
// intervalMs the guard looks at the latency of the appends made in that interval (below) and
// sets the pace of catch-up GETs (CatchUpLimiter):
// - no appends: no latency to protect, so the pace grows by a quarter per interval, and after
//   liftAfterIdleIntervals intervals in a row without appends (10 s by default) it is lifted (a
//   shorter pause, between a producer's bursts, leaves the replay paced when they resume);
// - the first append after an interval without any (producers are back): a pace above
//   startBytesPerSecond drops to it at once, without waiting for the interval to end: a pace
//   grown while nobody produced says nothing of what producers bear, and cutting it by halves
//   from there took a second or more of slow produces;
// - appends but no catch-up reads: the pace is set to startBytesPerSecond, so that a replay that
//   begins while producers write starts there (and grows) instead of bursting unpaced for the
//   interval the guard needs to see it;
// - appends and an unpaced catch-up (one that began while no producer wrote): the replay is taken
//   as running at startBytesPerSecond, paced there (or below, as next) at once and grown from
//   there, rather than left at full speed until their latency has already passed the target;
// - appends and catch-up reads, and their latency past the target: the pace is cut in
//   proportion (target / latency, at least a halving, from the rate catch-up reads had when they
//   had less), never below minBytesPerSecond nor below 1.5 times the rate the appends wrote in
//   the interval: a replay paced below the producers' rate would never catch up;
// - appends and catch-up reads within the target: the pace grows by a quarter per interval.
//
// The latency of an interval: the p99 of its appends (append to durable) plus the event loop's
// p99 delay (past its 1 ms timer): a produce request also waits for the loop before it is read,
// and catch-up work on the loop (reading blocks, writing Fetch responses) shows there first.
//
// The target is TAIL_RATIO (1.25) times that figure without catch-up reads (the baseline: a
// moving average over the intervals that had appends and no catch-up), kept between
// minTargetMs and targetMs; targetMs until there is a baseline. A fixed target of a few
// milliseconds let a replay grow to hundreds of MiB/s on a fast disk whose appends take well
// under a millisecond, and the producers' p99 doubled before the guard saw its target passed.
// Why 1.25 when the goal is that producers see at most 1.5 times their p99 (bench/tail.ts): what
// the guard cannot measure (time in the sockets, the clients' own CPU on a shared host) grows
// with catch-up reads too. Holding its own figure to 1.5 gave producers 1.51-1.57 times their
// idle p99 in the bench (replay at 90-97 MiB/s); 1.25 gave 1.21-1.38 (replay at 42-90 MiB/s).
//
// A catch-up counts as running while its GETs run or wait: a paced one may start none in an
// interval (one large read-ahead GET's debt can outlast it).

import { monitorEventLoopDelay } from 'node:perf_hooks';

/** What the guard reads and sets of the catch-up limiter (CatchUpLimiter). */
export interface PacedReads {
  /** Bytes of the catch-up GETs admitted since the previous call. */
  takeAdmittedBytes(): number;
  /** Whether catch-up GETs run or wait (for the budget or the pace). */
  hasDemand(): boolean;
  paceBytesPerSecond(): number;
  setPace(bytesPerSecond: number): void;
}

/** The event loop's delay, per interval. */
export interface LoopDelay {
  enable(): void;
  disable(): void;
  /** p99 of how late the loop ran a 1 ms timer since the last reset, in ms (0: on time). */
  p99LateMs(): number;
  reset(): void;
}

/** The loop's delay as Node measures it (a 1 ms timer, timed at each run). */
function nodeLoopDelay(): LoopDelay {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  return {
    enable: () => histogram.enable(),
    disable: () => histogram.disable(),
    p99LateMs: () => (histogram.count === 0 ? 0 : Math.max(0, histogram.percentile(99) / 1e6 - 1)),
    reset: () => histogram.reset(),
  };
}

export const DEFAULT_TAIL_GUARD_TARGET_MS = 5;
export const DEFAULT_TAIL_GUARD_MIN_TARGET_MS = 1;
/** How much slower than without catch-up reads the guard lets appends get (their latency; see above). */
const TAIL_RATIO = 1.25;
/** Weight of an interval's latency in the baseline (a moving average over ~16 intervals). */
const BASELINE_WEIGHT = 1 / 16;
export const DEFAULT_TAIL_GUARD_INTERVAL_MS = 250;
export const DEFAULT_TAIL_GUARD_MIN_BYTES_PER_SECOND = 16 * 1024 * 1024;
export const DEFAULT_TAIL_GUARD_START_BYTES_PER_SECOND = 64 * 1024 * 1024;
/**
 * Intervals without appends after which the pace is lifted: 10 s at the default interval. Gaps of
 * seconds between appends are normal for telemetry (an OpenTelemetry SDK's batch processor
 * exports every 5 s, a Prometheus remote-write shard sends every few seconds at low volume): a
 * replay let loose in such a gap would burst just as the next export arrives.
 */
export const DEFAULT_TAIL_GUARD_LIFT_AFTER_IDLE_INTERVALS = 40;
/** The pace's growth per interval while appends are fast (or absent): by a quarter. */
const PACE_GROWTH = 1.25;
/** Appends' latencies kept per interval for the p90 (a sample of them past this many). */
const MAX_SAMPLES = 4096;

export interface TailGuardOptions {
  /**
   * Most the guard lets the appends' latency (p99, loop delay included) be while catch-up reads
   * run (it holds it to 1.25 times its value without, within [minTargetMs, targetMs]); 0 turns
   * the guard off.
   */
  targetMs?: number;
  /** Least target: below it, the latency is noise. */
  minTargetMs?: number;
  /** The event loop's delay (Node's monitorEventLoopDelay by default). */
  loopDelay?: LoopDelay;
  intervalMs?: number;
  minBytesPerSecond?: number;
  /** Pace a catch-up starts at while producers write. */
  startBytesPerSecond?: number;
  /** Intervals in a row without appends after which the pace is lifted. */
  liftAfterIdleIntervals?: number;
}

export class TailGuard {
  private readonly limiter: PacedReads;
  private readonly targetMs: number;
  private readonly minTargetMs: number;
  /** The latency in intervals without catch-up reads (moving average); undefined until one. */
  private baselineMs: number | undefined;
  private readonly loopDelay: LoopDelay;
  private readonly minBytesPerSecond: number;
  private readonly startBytesPerSecond: number;
  private readonly intervalMs: number;
  private readonly liftAfterIdleIntervals: number;
  /** Intervals in a row that had no appends. */
  private idleIntervals = 0;
  private readonly samples = new Float64Array(MAX_SAMPLES);
  private sampleCount = 0;
  private seen = 0;
  private appendedBytes = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(limiter: PacedReads, options: TailGuardOptions = {}) {
    this.limiter = limiter;
    this.targetMs = options.targetMs ?? DEFAULT_TAIL_GUARD_TARGET_MS;
    this.minTargetMs = Math.min(this.targetMs, options.minTargetMs ?? DEFAULT_TAIL_GUARD_MIN_TARGET_MS);
    this.loopDelay = options.loopDelay ?? nodeLoopDelay();
    this.intervalMs = options.intervalMs ?? DEFAULT_TAIL_GUARD_INTERVAL_MS;
    this.minBytesPerSecond = options.minBytesPerSecond ?? DEFAULT_TAIL_GUARD_MIN_BYTES_PER_SECOND;
    this.startBytesPerSecond = Math.max(this.minBytesPerSecond, options.startBytesPerSecond ?? DEFAULT_TAIL_GUARD_START_BYTES_PER_SECOND);
    this.liftAfterIdleIntervals = Math.max(1, options.liftAfterIdleIntervals ?? DEFAULT_TAIL_GUARD_LIFT_AFTER_IDLE_INTERVALS);
  }

  start(): void {
    if (this.targetMs <= 0 || this.timer !== undefined) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
    this.loopDelay.enable();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.loopDelay.disable();
  }

  /** One append's time from append() to durable, and its size. */
  observe(latencyMs: number, bytes = 0): void {
    if (this.timer === undefined) return;
    // The interval's first append, after intervals without any: producers are back.
    if (this.seen === 0 && this.idleIntervals > 0 && this.limiter.paceBytesPerSecond() > this.startBytesPerSecond) {
      this.limiter.setPace(this.startBytesPerSecond);
    }
    this.appendedBytes += bytes;
    // Past MAX_SAMPLES, each later append replaces a random earlier one (a uniform sample).
    const at = this.seen < MAX_SAMPLES ? this.seen : Math.floor(Math.random() * (this.seen + 1));
    this.seen++;
    if (at < MAX_SAMPLES) this.samples[at] = latencyMs;
    this.sampleCount = Math.min(this.seen, MAX_SAMPLES);
  }

  /** @internal One interval's decision (called by the timer; exposed for tests). */
  tick(): void {
    const catchUpBytes = this.limiter.takeAdmittedBytes();
    const pace = this.limiter.paceBytesPerSecond();
    const catchUpRate = (catchUpBytes * 1000) / this.intervalMs;
    const appends = this.sampleCount;
    // What a produce waited for in this interval, at the 99th percentile: the loop, then the append.
    const latencyMs = appends === 0 ? 0 : quantile(this.samples.subarray(0, appends), 0.99) + this.loopDelay.p99LateMs();
    this.loopDelay.reset();
    this.sampleCount = 0;
    this.seen = 0;
    const floor = Math.max(this.minBytesPerSecond, (1.5 * this.appendedBytes * 1000) / this.intervalMs);
    this.appendedBytes = 0;
    const catchingUp = catchUpBytes > 0 || this.limiter.hasDemand();
    this.idleIntervals = appends === 0 ? this.idleIntervals + 1 : 0;
    if (appends > 0 && !catchingUp) {
      this.baselineMs = this.baselineMs === undefined ? latencyMs : this.baselineMs + BASELINE_WEIGHT * (latencyMs - this.baselineMs);
    }
    const target = this.target();
    let next: number;
    if (appends === 0) next = this.idleIntervals >= this.liftAfterIdleIntervals ? Infinity : pace * PACE_GROWTH;
    else if (!catchingUp) next = Math.max(floor, this.startBytesPerSecond);
    else {
      // An unpaced replay (begun while no producer wrote) is taken as running at the start pace.
      const current = pace === Infinity ? this.startBytesPerSecond : pace;
      if (latencyMs > target) {
        const from = catchUpBytes > 0 ? Math.min(current, catchUpRate) : current;
        next = Math.max(floor, from * Math.min(0.5, target / latencyMs));
      } else next = pace === Infinity ? Math.max(floor, current) : pace * PACE_GROWTH;
    }
    if (next !== pace) this.limiter.setPace(next);
  }

  /** The latency (loop delay and append, p99) produces are held to while catch-up reads run. */
  target(): number {
    if (this.baselineMs === undefined) return this.targetMs;
    return Math.min(this.targetMs, Math.max(this.minTargetMs, TAIL_RATIO * this.baselineMs));
  }
}

function quantile(values: Float64Array, q: number): number {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
