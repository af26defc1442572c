/**
 * A bounded set of finished session ids, kept until their token expires, so a session token
 * can be finished once per replica. Across replicas a token could be finished once on each
 * (the token is stateless); that gains an attacker nothing, since the quote is bound to the
 * session nonce and every release is sealed to the node's ephemeral key (see docs/kms.md).
 *
 * When the set is full of unexpired ids it refuses new ones (fails closed) instead of
 * forgetting old ones.
 *
 * @module
 */
import { toHex } from "../lib/bytes.ts";

/** Outcome of {@link ReplayCache.claim}. */
export type ClaimResult = "fresh" | "replayed" | "full";

/** Set of used session ids with expiry. */
export class ReplayCache {
  private readonly seen = new Map<string, number>();
  constructor(readonly capacity = 100_000) {}

  /** Number of ids held now. */
  get size(): number {
    return this.seen.size;
  }

  /** Record `sid` as used until `expiresAt`; says whether it was fresh. */
  claim(sid: Uint8Array, expiresAt: number, now: number): ClaimResult {
    const k = toHex(sid);
    const prev = this.seen.get(k);
    if (prev !== undefined && prev > now) return "replayed";
    if (this.seen.size >= this.capacity) this.purge(now);
    if (this.seen.size >= this.capacity) return "full";
    this.seen.set(k, expiresAt);
    return "fresh";
  }

  /** Drop ids whose token has expired. */
  purge(now: number): void {
    for (const [k, exp] of this.seen) if (exp <= now) this.seen.delete(k);
  }
}
