/**
 * TPM 2.0 structures: codecs and marshal/unmarshal functions for the structures attestation
 * needs, plus object names and key templates.
 *
 * @module
 */
export * from "./pcr_selection.ts";
export * from "./schemes.ts";
export * from "./public.ts";
export * from "./attest.ts";
export * from "./signature.ts";
export * from "./name.ts";
export * from "./templates.ts";
export * from "./digests.ts";
export * from "./nv_public.ts";
export * from "./tickets.ts";
export * from "./capability.ts";
