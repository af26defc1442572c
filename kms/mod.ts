/**
 * Public surface of the KMS area: the node-side client ({@link requestRelease}), the release
 * and request types, and the server pieces (`createKmsApp`, `buildKms`, stores, policy).
 *
 * @module
 */
export {
  KmsRefusedError,
  type KmsTransport,
  normaliseFingerprint,
  type OpenedRelease,
  pinnedHttpsTransport,
  requestRelease,
  type RequestReleaseOptions,
} from "./client.ts";
export {
  type JoinTicket,
  type KmsIdentity,
  type ReleasePayload,
  releasePayloadSchema,
  type SealedRelease,
} from "./release.ts";
export { type ReleaseRequest, releaseRequestSchema, type Role } from "./protocol.ts";
export { createKmsApp, type KmsAppDeps } from "./app.ts";
export { buildKms, type BuildKmsOptions, initKms, serveKms } from "./server.ts";
export { KmsService, type KmsServiceDeps } from "./service.ts";
export type {
  CredentialIssuer,
  Endorsement,
  EvidenceResult,
  EvidenceVerifier,
  EvidenceVerifierOptions,
} from "./evidence.ts";
export {
  createTpmCredentialIssuer,
  createTpmEvidenceVerifier,
  tpmCredentialIssuer,
  tpmEvidenceVerifier,
} from "./evidence.ts";
export { anchorSetDigest, EkTrust, type KnownEk, type VerifiedEk } from "./ek_trust.ts";
export { FileStore } from "./file_store.ts";
export { KubeStore } from "./k8s_store.ts";
export type { DiskRecord, KmsStore } from "./store.ts";
export { type KmsPolicy, kmsPolicySchema, parseKmsPolicy, PolicyHolder } from "./policy.ts";
export { diskKeyInfo, KeyDeriver } from "./keys.ts";
