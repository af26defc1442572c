/**
 * Public surface of the attestation area: documents, policy, verification, issuing, EK
 * certificates, qualifying data and software MakeCredential.
 *
 * @module
 */
export * from "./document.ts";
export * from "./policy.ts";
export * from "./qualifying_data.ts";
export * from "./verify.ts";
export * from "./issue.ts";
export * from "./ek_certificate.ts";
export { type Credential, kdfa, kdfe, makeCredential } from "./tpm/credential/mod.ts";
