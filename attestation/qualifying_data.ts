/**
 * The one definition of what a TPM quote's qualifying data (extraData) commits to:
 *
 *     qualifyingData = SHA-256("confidant-attestation-v1" || nonce || userData)
 *
 * The nonce comes from the verifier (freshness); userData is whatever the attester binds to
 * the quote (e.g. a public key of the node). The label separates this use of SHA-256 from any
 * other. The two fields are not length-prefixed: the verifier always recomputes the value from
 * the nonce it issued itself (so the split point is fixed by the verifier) and the userData it
 * expects, never from values it takes on trust from the document.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { ConfidantError } from "../lib/errors.ts";

/** Domain-separation label of version 1 of the binding. */
export const QUALIFYING_DATA_LABEL = "confidant-attestation-v1";
/** Largest nonce accepted (bytes). */
export const MAX_NONCE_BYTES = 64;
/** Largest userData accepted (bytes). */
export const MAX_USER_DATA_BYTES = 1024;

/** SHA-256("confidant-attestation-v1" || nonce || userData); oversized inputs throw. */
export function qualifyingData(nonce: Uint8Array, userData: Uint8Array): Uint8Array {
  if (nonce.length > MAX_NONCE_BYTES) {
    throw new ConfidantError("attestation.nonce", `nonce longer than ${MAX_NONCE_BYTES} bytes`);
  }
  if (userData.length > MAX_USER_DATA_BYTES) {
    throw new ConfidantError(
      "attestation.user_data",
      `userData longer than ${MAX_USER_DATA_BYTES} bytes`,
    );
  }
  const h = createHash("sha256");
  h.update(new TextEncoder().encode(QUALIFYING_DATA_LABEL)).update(nonce).update(userData);
  return new Uint8Array(h.digest());
}
