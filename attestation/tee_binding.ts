/**
 * The layered binding shared by the SEV-SNP and TDX evidence: the 64 bytes a node puts in
 * its TEE report's REPORT_DATA tie the hardware report to the verifier's nonce, to
 * caller-chosen user data and to the node's TPM attestation key.
 *
 * @module
 */
import { concat, utf8 } from "../lib/bytes.ts";
import { ParseError } from "../lib/errors.ts";

/** Domain-separation string hashed first. */
export const TEE_BINDING_DOMAIN = "confidant-tee-binding-v1";

/** Upper bound on each bound field (a TPM2B_PUBLIC is well under this). */
const MAX_FIELD = 64 * 1024;

/** The values bound into a TEE report. */
export interface TeeBindingInput {
  /** The verifier's fresh nonce. */
  nonce: Uint8Array;
  /** Caller data (may be empty). */
  userData: Uint8Array;
  /** The TPM attestation key as TPM2B_PUBLIC bytes. */
  akPublic: Uint8Array;
}

function field(b: Uint8Array, what: string): Uint8Array {
  if (!(b instanceof Uint8Array)) throw new ParseError("tee_binding", `${what} must be bytes`);
  if (b.length > MAX_FIELD) {
    throw new ParseError("tee_binding", `${what} is longer than ${MAX_FIELD} bytes`);
  }
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, b.length);
  return concat(len, b);
}

/**
 * REPORT_DATA for a TEE report:
 * `SHA-512( L(domain) ‖ L(nonce) ‖ L(userData) ‖ L(akPublic) )` where `L(x)` is the
 * 4-byte big-endian length of `x` followed by `x` and `domain` is
 * {@link TEE_BINDING_DOMAIN} in UTF-8. The length prefixes make the concatenation
 * unambiguous: no two different inputs hash the same byte string. Returns 64 bytes.
 */
export async function teeReportData(input: TeeBindingInput): Promise<Uint8Array> {
  const msg = concat(
    field(utf8(TEE_BINDING_DOMAIN), "domain"),
    field(input.nonce, "nonce"),
    field(input.userData, "userData"),
    field(input.akPublic, "akPublic"),
  );
  return new Uint8Array(await crypto.subtle.digest("SHA-512", msg as BufferSource));
}
