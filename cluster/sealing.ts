/**
 * HPKE sealing of JSON messages for the init exchange: kms/sealed_json.ts (the construction
 * of the KMS release, one suite: base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
 * AES-256-GCM) under a caller-chosen `info` label, with the `cluster.*` error codes.
 *
 * @module
 */
import type { z } from "zod";
import {
  type EphemeralKeyPair,
  openJson as openSealedJson,
  type SealedJson,
  type SealedJsonErrors,
  sealJson as sealSealedJson,
} from "../kms/sealed_json.ts";

export { type EphemeralKeyPair, generateEphemeralKeyPair } from "../kms/sealed_json.ts";

/** A sealed message as it travels (same shape as a KMS release). */
export type SealedMessage = SealedJson;

const CLUSTER_ERRORS: SealedJsonErrors = {
  noun: "message",
  key: "cluster.ephemeral_key",
  suite: "cluster.sealed_suite",
  tampered: "cluster.sealed_tampered",
  malformed: "cluster.sealed_malformed",
};

/**
 * Seal `payload` (JSON) to the raw X25519 key `recipient` with HPKE `info` and `aad`; a key
 * that is not X25519 is `cluster.ephemeral_key`.
 */
export function sealJson(
  payload: unknown,
  recipient: Uint8Array,
  info: string,
  aad: Uint8Array,
): Promise<SealedMessage> {
  return sealSealedJson(payload, recipient, info, aad, CLUSTER_ERRORS);
}

/**
 * Open a sealed message and validate it with `schema`. A message that does not open is
 * `cluster.sealed_tampered`; one that opens but does not validate is `cluster.sealed_malformed`.
 */
export function openJson<S extends z.ZodType>(
  sealed: SealedMessage,
  key: EphemeralKeyPair,
  info: string,
  aad: Uint8Array,
  schema: S,
): Promise<z.infer<S>> {
  return openSealedJson(sealed, key, info, aad, schema, CLUSTER_ERRORS);
}
