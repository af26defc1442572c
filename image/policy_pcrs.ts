/**
 * The `pcrs` section of a KMS policy for one node image.
 *
 * @module
 */
import { toHex } from "../lib/bytes.ts";

/** PCR 12 stays all zeros when no boot loader passes a command line or credentials. */
export const ZERO_PCR = "0".repeat(64);

/**
 * The `pcrs` section of a KMS policy that admits exactly this UKI: PCR 4 and 11
 * as predicted, and PCR 12 all zeros (systemd-stub measures a command line
 * passed by a boot loader into PCR 12; requiring zeros refuses such overrides).
 */
export function policyPcrs(
  m: { pcr4: Uint8Array; pcr11: Uint8Array },
): Record<string, { expected: string[] }> {
  return {
    "4": { expected: [toHex(m.pcr4)] },
    "11": { expected: [toHex(m.pcr11)] },
    "12": { expected: [ZERO_PCR] },
  };
}
