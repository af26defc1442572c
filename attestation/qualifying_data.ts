/**
 * The one definition of what a TPM quote's qualifying data (extraData) commits to:
 *
 *     qualifyingData = SHA-256("confidant-attestation-v2"
 *                              ‖ u16be(len(nonce)) ‖ nonce ‖ u16be(len(userData)) ‖ userData)
 *
 * The nonce comes from the verifier (freshness); userData is whatever the attester binds to
 * the quote (e.g. a public key of the node). The label separates this use of SHA-256 from any
 * other.
 *
 * Why v2 and not the `SHA-256("confidant-attestation-v1" ‖ nonce ‖ userData)` first
 * specified: without length framing the split between nonce and userData is not committed
 * to, so one quote answers many (nonce, userData) pairs. The agent's unauthenticated
 * `GET /v1/attestation?nonce=` quoted any 8–64-byte nonce with empty userData; asking it for
 * nonce = kmsNonce ‖ SHA-256(ephemeralKey) gave a quote the KMS accepted for
 * (kmsNonce, SHA-256(ephemeralKey)) once the document's unsigned JSON fields were re-split,
 * and with it the victim's disk key. With the lengths hashed in, every (nonce, userData) pair
 * has its own byte string, so a quote made for one split never verifies for another. (The
 * agent endpoint also binds a fixed purpose userData, {@link AGENT_ENDPOINT_USER_DATA}, and
 * the KMS takes only 32-byte nonces and userData: defence in depth.)
 *
 * @module
 */
import { createHash } from "node:crypto";
import { ConfidantError } from "../lib/errors.ts";

/** Domain-separation label of version 2 of the binding (length-framed fields). */
export const QUALIFYING_DATA_LABEL = "confidant-attestation-v2";
/** Largest nonce accepted (bytes). */
export const MAX_NONCE_BYTES = 64;
/** Largest userData accepted (bytes). */
export const MAX_USER_DATA_BYTES = 1024;

/**
 * The userData of every document the agent's `GET /v1/attestation` endpoint issues:
 * SHA-256("confidant-agent-endpoint-v1"). A fixed purpose value, so a document asked for by
 * anyone can never carry the userData of a KMS exchange (SHA-256 of an ephemeral key) or of
 * the init exchange (cluster/protocol.ts attestUserData). A verifier of such a document
 * passes this value as the expected userData.
 */
export const AGENT_ENDPOINT_USER_DATA: Uint8Array = new Uint8Array(
  createHash("sha256").update("confidant-agent-endpoint-v1").digest(),
);

function u16be(n: number): Uint8Array {
  return new Uint8Array([n >>> 8, n & 0xff]);
}

/**
 * SHA-256("confidant-attestation-v2" ‖ u16be(len(nonce)) ‖ nonce ‖ u16be(len(userData)) ‖
 * userData); oversized inputs throw.
 */
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
  h.update(new TextEncoder().encode(QUALIFYING_DATA_LABEL));
  h.update(u16be(nonce.length)).update(nonce);
  h.update(u16be(userData.length)).update(userData);
  return new Uint8Array(h.digest());
}
