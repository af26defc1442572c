/**
 * Credential protection in software (TPM 2.0 Part 1, 24): MakeCredential for an EK, the KDFs
 * and AES-CFB it needs. (tpm2-tools' credential file format is `marshalCredentialFile` in
 * attestation/tpm/credential_file.ts.)
 *
 * @module
 */
export {
  type Credential,
  makeCredential,
  type MakeCredentialRandomness,
} from "./make_credential.ts";
export { kdfa, kdfe } from "./kdf.ts";
export { aesCfbDecrypt, aesCfbEncrypt } from "./aes_cfb.ts";
