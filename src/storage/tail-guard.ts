// The tail guard: keeps consumers replaying old data from slowing producers. Catch-up reads use
// CPU (object reads, copies, socket writes in the broker, and the consumer's own work on a shared
// host) that the produce path then waits for. Every intervalMs the guard looks at the appends
// made in that interval, from append to durable: when catch-up reads ran and the appends' p99
// passed targetMs, it halves the catch-up pace (starting from the rate catch-up reads had), never
// below minBytesPerSecond; while produce latency stays within the target it lets the pace grow
// by a quarter each interval. The pace is lifted only when an interval had no appends (no
// producer to protect) or no catch-up reads: lifting it under load would let the replay burst
// and the produce latency spike before the next interval could pace it again.

import { Gauge, register } from 'prom-client';

/** What the guard reads and sets of the catch-up limiter (CatchUpLimiter). */
export interface PacedReads {
  /** Bytes of the catch-up GETs admitted since the previous call. */
  takeAdmittedBytes(): number;
  paceBytesPerSecond(): number;
  setPace(bytesPerSecond: number): void;
}

export const DEFAULT_TAIL_GUARD_TARGET_MS = 5;
export const DEFAULT_TAIL_GUARD_INTERVAL_MS = 250;
export const DEFAULT_TAIL_GUARD_MIN_BYTES_PER_SECOND = 16 * 1024 * 1024;
/** Appends' latencies kept per interval for the p90 (a sample of them past this many). */
const MAX_SAMPLES = 4096;

export interface TailGuardOptions {
  /** p99 append latency above which catch-up reads are slowed; 0 turns the guard off. */
  targetMs?: number;
  intervalMs?: number;
  minBytesPerSecond?: number;
}

export class TailGuard {
  private readonly limiter: PacedReads;
  private readonly targetMs: number;
  private readonly minBytesPerSecond: number;
  private readonly intervalMs: number;
  private readonly samples = new Float64Array(MAX_SAMPLES);
  private sampleCount = 0;
  private seen = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(limiter: PacedReads, options: TailGuardOptions = {}) {
    this.limiter = limiter;
    this.targetMs = options.targetMs ?? DEFAULT_TAIL_GUARD_TARGET_MS;
    this.intervalMs = options.intervalMs ?? DEFAULT_TAIL_GUARD_INTERVAL_MS;
    this.minBytesPerSecond = options.minBytesPerSecond ?? DEFAULT_TAIL_GUARD_MIN_BYTES_PER_SECOND;
    reportPace(limiter);
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

  /** One append's time from append() to durable. */
  observe(latencyMs: number): void {
    if (this.timer === undefined) return;
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
    if (catchUpBytes > 0 && p99 > this.targetMs) {
      this.limiter.setPace(Math.max(this.minBytesPerSecond, Math.min(pace, catchUpRate) / 2));
    } else if (pace !== Infinity) {
      this.limiter.setPace(appends === 0 || catchUpBytes === 0 ? Infinity : pace * 1.25);
    }
  }
}

function quantile(values: Float64Array, q: number): number {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const PACE = 'wharf_catchup_pace_bytes_per_second';
let paceSource: PacedReads | undefined;

function reportPace(limiter: PacedReads): void {
  paceSource = limiter;
}

if (register.getSingleMetric(PACE) === undefined) {
  new Gauge({
    name: PACE,
    help: 'Pace of catch-up reads set by the tail guard while produce latency suffers (+Inf: not paced).',
    collect() {
      if (paceSource !== undefined) this.set(paceSource.paceBytesPerSecond());
    },
  });
}
