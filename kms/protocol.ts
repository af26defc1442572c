/**
 * Wire messages of the KMS protocol (zod schemas and their types). Every size is bounded;
 * binary fields are standard base64. The attestation document inside `finish` is checked
 * against the attestation area's own schema by the evidence verifier, here only its
 * outer shape is bounded.
 *
 * @module
 */
import { z } from "zod";
import { BUILTIN_VARIANTS, MAX_DOCUMENT_BYTES } from "../attestation/document.ts";
import { DISK_UUID_RE } from "./keys.ts";

/** Path of step 1. */
export const BEGIN_PATH = "/v1/attest/begin";
/** Path of step 2. */
export const FINISH_PATH = "/v1/attest/finish";
/** Largest request body the KMS reads for `begin` (and any other route), in bytes. */
export const MAX_BODY_BYTES = 64 * 1024;
/**
 * Largest `finish` body (bytes): an attestation document of up to `MAX_DOCUMENT_BYTES` (a TDX
 * quote with its collateral needs most of it) plus the envelope (session, secret, key, request
 * and JSON framing), which is far below 16 KiB.
 */
export const MAX_FINISH_BODY_BYTES = MAX_DOCUMENT_BYTES + 16 * 1024;

const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Decoded length of a canonical base64 string (checked by B64_RE). */
const decodedLength = (s: string) =>
  (s.length / 4) * 3 - (s.endsWith("==") ? 2 : s.endsWith("=") ? 1 : 0);
/**
 * A base64 string of `minBytes` to `maxBytes` decoded bytes (exactly: `b64(32, 32)` takes only
 * 32-byte values, not the 31 or 33 that share its encoded length).
 */
export const b64 = (maxBytes: number, minBytes = 1) =>
  z.string().max(Math.ceil(maxBytes / 3) * 4).regex(B64_RE, "must be base64").refine(
    (s) => decodedLength(s) >= minBytes,
    "too short",
  ).refine((s) => decodedLength(s) <= maxBytes, "too long");

/** Roles a node may ask for. */
export const roleSchema = z.enum(["worker", "control-plane"]);
/** A role. */
export type Role = z.infer<typeof roleSchema>;

/** A Kubernetes node name (RFC 1123 subdomain). */
export const nodeNameSchema = z.string().min(1).max(253).regex(
  /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/,
  "must be an RFC 1123 name",
);

/** What the node asks for. */
export const releaseRequestSchema = z.object({
  role: roleSchema,
  disk: z.object({ uuid: z.string().regex(DISK_UUID_RE, "must be a UUID") }).strict(),
  nodeName: nodeNameSchema,
}).strict();
/** What the node asks for. */
export type ReleaseRequest = z.infer<typeof releaseRequestSchema>;

/** Step 1 request: the node's endorsement and attestation keys. */
export const beginRequestSchema = z.object({
  /**
   * The variant of the document the node will send at `finish` (`tpm`, `sev-snp`, `tdx`); the
   * policy must accept it, and the document must then be of it.
   */
  variant: z.enum(BUILTIN_VARIANTS).default("tpm"),
  /** The EK certificate, DER, base64. */
  ekCertificate: b64(8192, 64),
  /** Intermediate CA certificates between the EK certificate and a trusted root (DER, base64). */
  ekIntermediates: z.array(b64(8192, 64)).max(4).default([]),
  /** The AK's TPM2B_PUBLIC, base64. */
  akPublic: b64(1024, 16),
}).strict();
/** Step 1 request. */
export type BeginRequest = z.infer<typeof beginRequestSchema>;

/** The output of MakeCredential, for TPM2_ActivateCredential. */
export const credentialSchema = z.object({
  /** Contents of the TPM2B_ID_OBJECT (integrity HMAC as TPM2B, then encIdentity), base64. */
  credentialBlob: b64(1024),
  /** Contents of the TPM2B_ENCRYPTED_SECRET, base64. */
  encryptedSecret: b64(1024),
}).strict();

/** Step 1 response. */
export const beginResponseSchema = z.object({
  session: z.string().min(1).max(1024),
  /** 32 bytes, base64: the quote must be bound to it. */
  nonce: b64(32, 32),
  credential: credentialSchema,
}).strict();
/** Step 1 response. */
export type BeginResponse = z.infer<typeof beginResponseSchema>;

/** Step 2 request. */
export const finishRequestSchema = z.object({
  session: z.string().min(1).max(1024),
  /** The secret ActivateCredential returned, base64. */
  activatedSecret: b64(64, 1),
  /** The attestation document (validated by the evidence verifier). */
  evidence: z.record(z.string(), z.unknown()),
  /** Raw X25519 public key (32 bytes), base64. */
  ephemeralPublicKey: b64(32, 32),
  request: releaseRequestSchema,
}).strict();
/** Step 2 request. */
export type FinishRequest = z.infer<typeof finishRequestSchema>;

/** The sealed release (HPKE base mode, single shot). */
export const sealedReleaseSchema = z.object({
  /** HPKE suite name, fixed. */
  suite: z.literal("DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM"),
  /** HPKE encapsulated key, base64. */
  enc: b64(32, 32),
  /** Ciphertext of the release JSON, base64. */
  /** (A replica release carries a policy of up to 64 KiB besides the rest.) */
  ciphertext: b64(128 * 1024, 17),
}).strict();
/** Step 2 response. */
export const finishResponseSchema = z.object({ release: sealedReleaseSchema }).strict();
/** Step 2 response. */
export type FinishResponse = z.infer<typeof finishResponseSchema>;

/** A refusal or an error (403/400/413/429/5xx). */
export const errorResponseSchema = z.object({
  error: z.string(),
  checks: z.array(z.string()).optional(),
  /** With 429: how long this client should wait before it retries (ms, already jittered). */
  retryAfterMs: z.number().int().nonnegative().max(600_000).optional(),
});
/** A refusal or an error. */
export type ErrorResponse = z.infer<typeof errorResponseSchema>;
