/**
 * Public surface of the attestation area: documents (variants `tpm`, `sev-snp`, `tdx`),
 * policy, verification, issuing (with configfs-tsm TEE evidence), the TEE binding, EK
 * certificates, qualifying data and software MakeCredential. The vendor verifiers themselves
 * are in attestation/snp/mod.ts and attestation/tdx/mod.ts.
 *
 * @module
 */
export * from "./document.ts";
export * from "./policy.ts";
export * from "./qualifying_data.ts";
export * from "./verify.ts";
export * from "./issue.ts";
export * from "./tee_binding.ts";
export * from "./tee_issue.ts";
export * from "./tee_verify.ts";
export * from "./ek_certificate.ts";
export { type Credential, kdfa, kdfe, makeCredential } from "./tpm/credential/mod.ts";
