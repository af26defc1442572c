/**
 * Hash algorithm helpers private to the verifier and credential code: TPM_ALG_ID to the
 * names node:crypto uses, and one-shot digests.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { ConfidantError } from "../../../lib/errors.ts";

const NODE_NAMES: Record<number, { name: string; size: number }> = {
  0x0004: { name: "sha1", size: 20 },
  0x000b: { name: "sha256", size: 32 },
  0x000c: { name: "sha384", size: 48 },
  0x000d: { name: "sha512", size: 64 },
};

function info(alg: number) {
  const i = Object.hasOwn(NODE_NAMES, alg) ? NODE_NAMES[alg] : undefined;
  if (!i) {
    throw new ConfidantError(
      "tpm.unsupported_hash",
      `unsupported TPM hash algorithm 0x${(alg >>> 0).toString(16).padStart(4, "0")}`,
    );
  }
  return i;
}

/** node:crypto name (`sha256`, ...) of a TPM hash algorithm id; unknown ids throw. */
export function nodeHashName(alg: number): string {
  return info(alg).name;
}

/** Digest size in bytes of a TPM hash algorithm id; unknown ids throw. */
export function digestSize(alg: number): number {
  return info(alg).size;
}

/** Whether `alg` names a supported hash algorithm. */
export function isSupportedHash(alg: number): boolean {
  return Object.hasOwn(NODE_NAMES, alg);
}

/** Digest of `data` with the TPM hash algorithm `alg`. */
export function digest(alg: number, ...data: Uint8Array[]): Uint8Array {
  const h = createHash(info(alg).name);
  for (const d of data) h.update(d);
  return new Uint8Array(h.digest());
}
