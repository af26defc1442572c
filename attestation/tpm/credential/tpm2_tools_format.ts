/**
 * The credential file format of tpm2-tools (`tpm2_makecredential -o`, `tpm2_activatecredential
 * -i`): magic 0xBADCC0DE, version 1 (both u32 big-endian), then TPM2B_ID_OBJECT, then
 * TPM2B_ENCRYPTED_SECRET. Useful to hand a credential to tpm2-tools for debugging and for
 * cross-checks.
 *
 * @module
 */
import { concat } from "../../../lib/bytes.ts";
import { ParseError } from "../../../lib/errors.ts";
import type { Credential } from "./make_credential.ts";

const MAGIC = Uint8Array.of(0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1);

/** Serialize a credential as tpm2-tools' credential file. */
export function tpm2ToolsCredentialFile(c: Credential): Uint8Array {
  return concat(MAGIC, c.credentialBlob, c.encryptedSecret);
}

/** Parse a tpm2-tools credential file into its two TPM2B structures (sizes checked). */
export function parseTpm2ToolsCredentialFile(b: Uint8Array): Credential {
  if (b.length < 12 || MAGIC.some((x, i) => b[i] !== x)) {
    throw new ParseError("tpm.credential_file", "not a tpm2-tools credential file (magic/version)");
  }
  const sized = (off: number, what: string) => {
    if (off + 2 > b.length) throw new ParseError("tpm.credential_file", `${what} is truncated`);
    const n = (b[off] << 8) | b[off + 1];
    if (off + 2 + n > b.length) throw new ParseError("tpm.credential_file", `${what} is truncated`);
    return b.slice(off, off + 2 + n);
  };
  const credentialBlob = sized(8, "TPM2B_ID_OBJECT");
  const encryptedSecret = sized(8 + credentialBlob.length, "TPM2B_ENCRYPTED_SECRET");
  if (8 + credentialBlob.length + encryptedSecret.length !== b.length) {
    throw new ParseError("tpm.credential_file", "trailing bytes after the credential");
  }
  return { credentialBlob, encryptedSecret };
}
