/**
 * The credential file `tpm2_makecredential -o` writes (tpm2-tools format): u32 magic
 * 0xBADCC0DE, u32 version 1, then TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET.
 *
 * @module
 */
import { Reader, Writer } from "./marshal.ts";
import { ParseError } from "../../lib/errors.ts";

/** Magic number at the start of a tpm2-tools credential file. */
export const CREDENTIAL_FILE_MAGIC = 0xbadcc0de;

/** The two halves of a MakeCredential result. */
export interface CredentialBlob {
  /** Contents of the TPM2B_ID_OBJECT. */
  credentialBlob: Uint8Array;
  /** Contents of the TPM2B_ENCRYPTED_SECRET. */
  encryptedSecret: Uint8Array;
}

/** Parses a tpm2-tools credential file. */
export function unmarshalCredentialFile(b: Uint8Array): CredentialBlob {
  const r = new Reader(b, "tpm.credential_file");
  const magic = r.u32("magic");
  if (magic !== CREDENTIAL_FILE_MAGIC) throw r.error(`bad magic 0x${magic.toString(16)}`);
  const version = r.u32("version");
  if (version !== 1) throw r.error(`unsupported version ${version}`);
  const credentialBlob = r.tpm2b("TPM2B_ID_OBJECT", 1024);
  const encryptedSecret = r.tpm2b("TPM2B_ENCRYPTED_SECRET", 1024);
  r.end("credential file");
  return { credentialBlob, encryptedSecret };
}

/** Writes a tpm2-tools credential file (for `tpm2_activatecredential -i`). */
export function marshalCredentialFile(c: CredentialBlob): Uint8Array {
  if (c.credentialBlob.length > 1024 || c.encryptedSecret.length > 1024) {
    throw new ParseError("tpm.marshal", "credential too large");
  }
  const w = new Writer();
  w.u32(CREDENTIAL_FILE_MAGIC).u32(1).tpm2b(c.credentialBlob).tpm2b(c.encryptedSecret);
  return w.finish();
}
