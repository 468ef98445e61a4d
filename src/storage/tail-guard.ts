// The tail guard: keeps consumers replaying old data from slowing producers. Catch-up reads use
// CPU (object reads, copies, socket writes and the garbage their Buffers make in the broker, and
// the consumer's own work on a shared host) that the produce path then waits for. Every
// intervalMs the guard looks at the appends made in that interval, from append to durable, and
// sets the pace of catch-up GETs (CatchUpLimiter):
// - no appends: no latency to protect, so the pace grows by a quarter per interval, and after
//   liftAfterIdleIntervals intervals in a row without appends (10 s by default) it is lifted (a
//   shorter pause, between a producer's bursts, leaves the replay paced when they resume);
// - appends but no catch-up reads: the pace is set to startBytesPerSecond, so that a replay that
//   begins while producers write starts there (and grows) instead of bursting unpaced for the
//   interval the guard needs to see it;
// - appends and an unpaced catch-up (one that began while no producer wrote): the replay is taken
//   as running at startBytesPerSecond, paced there (or below, as next) at once and grown from
//   there, rather than left at full speed until the appends' p99 has already passed the target;
// - appends and catch-up reads, and the appends' p99 past targetMs: the pace is cut in
//   proportion (targetMs / p99, at least a halving, from the rate catch-up reads had when they
//   had less), never below minBytesPerSecond nor below 1.5 times the rate the appends wrote in
//   the interval: a replay paced below the producers' rate would never catch up;
// - appends and catch-up reads within the target: the pace grows by a quarter per interval.
// A catch-up counts as running while its GETs run or wait: a paced one may start none in an
// interval (one large read-ahead GET's debt can outlast it).

/** What the guard reads and sets of the catch-up limiter (CatchUpLimiter). */
export interface PacedReads {
  /** Bytes of the catch-up GETs admitted since the previous call. */
  takeAdmittedBytes(): number;
  /** Whether catch-up GETs run or wait (for the budget or the pace). */
  hasDemand(): boolean;
  paceBytesPerSecond(): number;
  setPace(bytesPerSecond: number): void;
}

export const DEFAULT_TAIL_GUARD_TARGET_MS = 5;
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
  /** p99 append latency above which catch-up reads are slowed; 0 turns the guard off. */
  targetMs?: number;
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
    this.intervalMs = options.intervalMs ?? DEFAULT_TAIL_GUARD_INTERVAL_MS;
    this.minBytesPerSecond = options.minBytesPerSecond ?? DEFAULT_TAIL_GUARD_MIN_BYTES_PER_SECOND;
    this.startBytesPerSecond = Math.max(this.minBytesPerSecond, options.startBytesPerSecond ?? DEFAULT_TAIL_GUARD_START_BYTES_PER_SECOND);
    this.liftAfterIdleIntervals = Math.max(1, options.liftAfterIdleIntervals ?? DEFAULT_TAIL_GUARD_LIFT_AFTER_IDLE_INTERVALS);
  }

  start(): void {
    if (this.targetMs <= 0 || this.timer !== undefined) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One append's time from append() to durable, and its size. */
  observe(latencyMs: number, bytes = 0): void {
    if (this.timer === undefined) return;
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
    const p99 = appends === 0 ? 0 : quantile(this.samples.subarray(0, appends), 0.99);
    this.sampleCount = 0;
    this.seen = 0;
    const floor = Math.max(this.minBytesPerSecond, (1.5 * this.appendedBytes * 1000) / this.intervalMs);
    this.appendedBytes = 0;
    const catchingUp = catchUpBytes > 0 || this.limiter.hasDemand();
    this.idleIntervals = appends === 0 ? this.idleIntervals + 1 : 0;
    let next: number;
    if (appends === 0) next = this.idleIntervals >= this.liftAfterIdleIntervals ? Infinity : pace * PACE_GROWTH;
    else if (!catchingUp) next = Math.max(floor, this.startBytesPerSecond);
    else {
      // An unpaced replay (begun while no producer wrote) is taken as running at the start pace.
      const current = pace === Infinity ? this.startBytesPerSecond : pace;
      if (p99 > this.targetMs) {
        const from = catchUpBytes > 0 ? Math.min(current, catchUpRate) : current;
        next = Math.max(floor, from * Math.min(0.5, this.targetMs / p99));
      } else next = pace === Infinity ? Math.max(floor, current) : pace * PACE_GROWTH;
    }
    if (next !== pace) this.limiter.setPace(next);
  }
}

function quantile(values: Float64Array, q: number): number {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
