/**
 * Helpers shared by the TEE evidence verifiers (SEV-SNP, TDX): a strict DER reader for
 * the signed parts of X.509 certificates and CRLs.
 *
 * @module
 */
export * from "./der.ts";
