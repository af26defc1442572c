/**
 * Admission control of the HTTP server, so a flood is refused cheaply instead of queueing
 * until the process collapses:
 *
 * - a token bucket per request source (answered with 429 and Retry-After when empty);
 * - {@link AdmissionController}, a latency-targeting limit on requests in flight: it
 *   estimates how long a new request would wait behind those in flight (in flight × the
 *   moving average of the time between completions while busy, i.e. queue length over
 *   throughput) and sheds the request (429 with a jittered retry hint) when that exceeds the
 *   target, so an admitted request's latency stays bounded whatever the offered load.
 *
 * @module
 */

/** Settings of {@link RateLimiter}. */
export interface RateLimitOptions {
  /** Tokens added per second per source. */
  ratePerSecond: number;
  /** Bucket size (largest burst). */
  burst: number;
  /** Most sources tracked; the least recently seen are forgotten beyond it. */
  maxSources?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Per-source token buckets. */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxSources: number;
  constructor(private readonly opts: RateLimitOptions) {
    this.maxSources = opts.maxSources ?? 10_000;
  }

  /** Take one token for `source` at time `now` (ms); 0 when allowed, else seconds to wait. */
  take(source: string, now: number): number {
    let b = this.buckets.get(source);
    if (b) {
      this.buckets.delete(source);
      b.tokens = Math.min(
        this.opts.burst,
        b.tokens + ((now - b.at) / 1000) * this.opts.ratePerSecond,
      );
      b.at = now;
    } else {
      b = { tokens: this.opts.burst, at: now };
      if (this.buckets.size >= this.maxSources) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
    }
    this.buckets.set(source, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.opts.ratePerSecond));
  }
}

/** Settings of {@link AdmissionController}. */
export interface AdmissionOptions {
  /** Shed when the estimated wait of a new request exceeds this (ms); default 20. */
  targetWaitMs?: number;
  /** Never shed below this many in flight (default 4). */
  minInFlight?: number;
  /** Never admit beyond this many in flight (default 256). */
  maxInFlight?: number;
  /** Shortest and longest retry hint (ms); defaults 100 and 10,000. */
  minRetryMs?: number;
  maxRetryMs?: number;
  /** Clock (ms, monotonic); default performance.now. */
  clock?: () => number;
  /** Random numbers in [0, 1) for the jitter; default Math.random. */
  random?: () => number;
}

/** Outcome of {@link AdmissionController.enter}. */
export type Admission =
  | { admitted: true; release: () => void }
  | {
    admitted: false;
    /** Jittered hint for this client (ms). */
    retryAfterMs: number;
    /** Whole seconds for the Retry-After header (at least 1). */
    retryAfterSeconds: number;
  };

/**
 * A latency-targeting limit on requests in flight (see the module doc). Requests of higher
 * `weight` (the KMS gives `finish` 2: its session's `begin` was already paid for) may wait
 * proportionally longer before they are shed. The retry hint adapts to the overload: every
 * 250 ms it grows ×1.5 while more requests were shed than completed, and shrinks ÷1.5 when
 * few were, between `minRetryMs` and `maxRetryMs`; each refused client gets it times a random
 * factor in [0.5, 1.5) so retries spread out.
 */
export class AdmissionController {
  private inFlight = 0;
  private busySince = 0;
  private lastCompletion = 0;
  /** Moving average of the time between completions while busy (ms). */
  private gapMs = 1;
  private hintMs: number;
  private windowStart = 0;
  private windowShed = 0;
  private windowDone = 0;
  private readonly o: Required<AdmissionOptions>;

  constructor(opts: AdmissionOptions = {}) {
    this.o = {
      targetWaitMs: opts.targetWaitMs ?? 20,
      minInFlight: opts.minInFlight ?? 4,
      maxInFlight: opts.maxInFlight ?? 256,
      minRetryMs: opts.minRetryMs ?? 100,
      maxRetryMs: opts.maxRetryMs ?? 10_000,
      clock: opts.clock ?? (() => performance.now()),
      random: opts.random ?? Math.random,
    };
    this.hintMs = this.o.minRetryMs * 2;
  }

  /** Requests in flight now. */
  get current(): number {
    return this.inFlight;
  }

  /** Estimated wait of a request arriving now (ms). */
  get estimatedWaitMs(): number {
    return this.inFlight * this.gapMs;
  }

  /** The retry hint before jitter (ms). */
  get retryHintMs(): number {
    return this.hintMs;
  }

  private tick(now: number): void {
    if (now - this.windowStart < 250) return;
    if (this.windowShed > this.windowDone) {
      this.hintMs = Math.min(this.o.maxRetryMs, this.hintMs * 1.5);
    } else if (this.windowShed * 4 < this.windowDone) {
      this.hintMs = Math.max(this.o.minRetryMs, this.hintMs / 1.5);
    }
    this.windowStart = now;
    this.windowShed = 0;
    this.windowDone = 0;
  }

  /** Admit a request of `weight` (default 1), or say how long the client should wait. */
  enter(weight = 1): Admission {
    const now = this.o.clock();
    this.tick(now);
    const full = this.inFlight >= this.o.maxInFlight ||
      (this.inFlight >= this.o.minInFlight &&
        this.inFlight * this.gapMs > this.o.targetWaitMs * weight);
    if (full) {
      this.windowShed++;
      const ms = Math.round(this.hintMs * (0.5 + this.o.random()));
      return {
        admitted: false,
        retryAfterMs: ms,
        retryAfterSeconds: Math.max(1, Math.ceil(ms / 1000)),
      };
    }
    if (this.inFlight === 0) this.busySince = now;
    this.inFlight++;
    let done = false;
    return {
      admitted: true,
      release: () => {
        if (done) return;
        done = true;
        const t = this.o.clock();
        const gap = t - Math.max(this.lastCompletion, this.busySince);
        this.gapMs = 0.9 * this.gapMs + 0.1 * Math.max(0, gap);
        this.lastCompletion = t;
        this.inFlight--;
        this.windowDone++;
      },
    };
  }
}
