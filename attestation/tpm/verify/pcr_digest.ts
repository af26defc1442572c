/**
 * Recomputation of the pcrDigest of a TPMS_QUOTE_INFO (Part 3, 18.4 TPM2_Quote): the hash,
 * with the signing scheme's hash algorithm, of the selected PCR values concatenated in
 * selection order — banks in the order of the selection list, indices ascending within a
 * bank. (Real vectors confirm the signing hash is used even for SHA-1 or SHA-384 banks.)
 *
 * @module
 */
import { ConfidantError } from "../../../lib/errors.ts";
import { digest, digestSize } from "./_hash.ts";

/** One bank of a PCR selection: the bank's hash algorithm and the selected indices. */
export interface PcrBankSelection {
  /** TPM_ALG_ID of the bank. */
  hash: number;
  /** Selected PCR indices (any order; duplicates are ignored). */
  pcrs: number[];
}

/** PCR values per bank: `values.get(bankAlg).get(index)`. */
export type PcrValues = Map<number, Map<number, Uint8Array>>;

/** The selected values in quote order; a missing or wrong-sized value throws `tpm.pcr_values`. */
export function selectedPcrValues(
  selection: readonly PcrBankSelection[],
  values: PcrValues,
): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const bank of selection) {
    const size = digestSize(bank.hash);
    const have = values.get(bank.hash);
    for (const i of [...new Set(bank.pcrs)].sort((a, b) => a - b)) {
      const v = have?.get(i);
      if (!v) {
        throw new ConfidantError(
          "tpm.pcr_values",
          `no value for PCR ${i} of bank 0x${bank.hash.toString(16)}`,
        );
      }
      if (v.length !== size) {
        throw new ConfidantError(
          "tpm.pcr_values",
          `PCR ${i} has ${v.length} bytes, the bank needs ${size}`,
        );
      }
      out.push(v);
    }
  }
  return out;
}

/** pcrDigest = H_sigHash(PCR values in selection order). */
export function computePcrDigest(
  sigHashAlg: number,
  selection: readonly PcrBankSelection[],
  values: PcrValues,
): Uint8Array {
  return digest(sigHashAlg, ...selectedPcrValues(selection, values));
}
