/**
 * Tickets (Part 2, 10.7): TPMT_TK_CREATION and TPMT_TK_AUTH share one layout
 * (tag, hierarchy, digest).
 *
 * @module
 */
import { type Codec, struct, tpm2b, u16, u32 } from "./_deps.ts";

/** A TPMT_TK_* ticket. */
export interface TpmtTicket {
  /** TPM_ST_CREATION, TPM_ST_AUTH_SECRET, ... */
  tag: number;
  /** Hierarchy the ticket belongs to. */
  hierarchy: number;
  /** HMAC over the ticket contents. */
  digest: Uint8Array;
}

/** Codec of a ticket. */
export const tpmtTicket: Codec<TpmtTicket> = struct({
  tag: u16,
  hierarchy: u32,
  digest: tpm2b("TPMT_TK.digest", 64),
});
