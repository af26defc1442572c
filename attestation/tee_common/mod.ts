/**
 * Helpers shared by the TEE evidence verifiers (SEV-SNP, TDX): a strict DER reader, a
 * minimal X.509 certificate and CRL reader, and signature checks (RSASSA-PSS, ECDSA).
 *
 * @module
 */
export * from "./der.ts";
export * from "./certificate.ts";
export * from "./crl.ts";
