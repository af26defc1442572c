/**
 * Admission control of the HTTP server: a token bucket per request source (answered with 429
 * and Retry-After when empty) and a global cap on requests in flight (answered with 503), so a
 * flood is refused cheaply instead of queueing until the process collapses.
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

/** A counter of requests in flight with a ceiling. */
export class ConcurrencyGate {
  private inFlight = 0;
  constructor(readonly limit: number) {}

  /** Enter if below the limit; returns a release function, or undefined when full. */
  enter(): (() => void) | undefined {
    if (this.inFlight >= this.limit) return undefined;
    this.inFlight++;
    let done = false;
    return () => {
      if (!done) {
        done = true;
        this.inFlight--;
      }
    };
  }

  /** Requests in flight now. */
  get current(): number {
    return this.inFlight;
  }
}
