/**
 * Retry policies: exponential backoff with jitter, a cap on attempts and an
 * optional overall deadline. Pure: the caller supplies the random source.
 *
 * @module
 */

/** How a step is retried. */
export interface RetryPolicy {
  /** Attempts in total (`Infinity` waits for ever, e.g. for a KMS that is down). */
  maxAttempts: number;
  /** Delay before the second attempt (ms). */
  initialDelayMs: number;
  /** Largest delay between attempts (ms). */
  maxDelayMs: number;
  /** Growth factor per attempt. */
  multiplier: number;
  /** Fraction of the delay that is randomised (0 = none, 1 = full jitter). */
  jitter: number;
  /** Give up when the next attempt would start later than this many ms after the first. */
  deadlineMs?: number;
  /** Each attempt is aborted after this many ms. */
  attemptTimeoutMs: number;
}

/** Delay before attempt `attempt + 1` after `attempt` failed (attempt counts from 1). */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number): number {
  const exp = Math.min(
    policy.maxDelayMs,
    policy.initialDelayMs * Math.pow(policy.multiplier, Math.max(0, attempt - 1)),
  );
  const r = Math.min(1, Math.max(0, random()));
  const jitter = Math.min(1, Math.max(0, policy.jitter));
  return Math.round(exp * (1 - jitter) + exp * jitter * r);
}

/** A policy for steps that must not be retried. */
export function once(attemptTimeoutMs: number): RetryPolicy {
  return {
    maxAttempts: 1,
    initialDelayMs: 0,
    maxDelayMs: 0,
    multiplier: 1,
    jitter: 0,
    attemptTimeoutMs,
  };
}
