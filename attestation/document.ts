/**
 * The attestation document: versioned JSON that carries a node's evidence to a verifier.
 * Raw TPM wire structures travel base64-encoded, exactly as the TPM produced them (and as
 * tpm2-tools writes them), so a verifier re-parses and re-hashes the signed bytes:
 *
 * ```json
 * { "version": 1, "variant": "tpm", "nonce": "<b64>", "userData": "<b64>",
 *   "tpm": { "akPublic": "<b64 TPM2B_PUBLIC>", "quote": "<b64 TPMS_ATTEST>",
 *            "signature": "<b64 TPMT_SIGNATURE>",
 *            "pcrs": { "sha256": { "0": "<hex>", ... } },
 *            "ekCertificate": "<b64 DER, optional>" } }
 * ```
 *
 * The TEE variants `"sev-snp"` and `"tdx"` carry the same `tpm` section plus a `tee` section
 * with the vendor evidence (attestation/snp/evidence.ts `snpEvidenceSchema`,
 * attestation/tdx/evidence.ts `TdxEvidenceSchema`: the report or quote together with the
 * certificates and collateral the verifier needs). The TEE report's REPORT_DATA is
 * `teeReportData({ nonce, userData, akPublic })` (attestation/tee_binding.ts) over the
 * document's own AK, so the vTPM quote and the TEE report vouch for the same boot.
 *
 * Variants are looked up in a registry (variant id → zod schema); another variant can be
 * added with {@link registerDocumentVariant}. Every field has a size limit that is checked
 * before anything is decoded.
 *
 * @module
 */
import { z } from "zod";
import { ParseError } from "../lib/errors.ts";
import { fromBase64, fromHex } from "../lib/bytes.ts";
import { MAX_NONCE_BYTES, MAX_USER_DATA_BYTES } from "./qualifying_data.ts";
import { snpEvidenceSchema } from "./snp/evidence.ts";
import { TdxEvidenceSchema } from "./tdx/evidence.ts";

/**
 * Largest document accepted as JSON text (bytes), checked before JSON.parse. A TPM document is
 * a few KiB; a TDX document with Intel collateral (quote with PCK chain, TCB info, QE identity,
 * issuer chains, CRLs) is typically 20–40 KiB, so this leaves room for larger TCB infos.
 */
export const MAX_DOCUMENT_BYTES = 256 * 1024;
/** Largest TPM2B_PUBLIC accepted. */
export const MAX_AK_PUBLIC_BYTES = 2048;
/** Largest TPMS_ATTEST accepted. */
export const MAX_QUOTE_BYTES = 2048;
/** Largest TPMT_SIGNATURE accepted. */
export const MAX_SIGNATURE_BYTES = 2048;
/** Largest EK certificate accepted (DER). */
export const MAX_EK_CERT_BYTES = 8192;
/** Number of PCRs of a PC-client TPM; indices are 0..23. */
export const PCR_COUNT = 24;

const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A standard base64 string of at most `maxBytes` decoded bytes (length checked first). */
export function base64Field(maxBytes: number, minBytes = 0) {
  return z.string().max(Math.ceil(maxBytes / 3) * 4, `longer than ${maxBytes} bytes`).regex(
    B64_RE,
    "must be standard base64",
  ).refine((s) => {
    const pad = s.endsWith("==") ? 2 : s.endsWith("=") ? 1 : 0;
    const n = (s.length / 4) * 3 - pad;
    return n >= minBytes && n <= maxBytes;
  }, `must decode to ${minBytes}..${maxBytes} bytes`);
}

/** PCR banks a document may carry, with their digest sizes. */
export const PCR_BANKS = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 } as const;
/** Name of a PCR bank in documents and policies. */
export type PcrBankName = keyof typeof PCR_BANKS;

const pcrIndex = z.string().regex(/^(?:[0-9]|1[0-9]|2[0-3])$/, "PCR index must be 0..23");
function bankValues(size: number) {
  return z.record(
    pcrIndex,
    z.string().regex(new RegExp(`^[0-9a-fA-F]{${size * 2}}$`), `must be ${size} bytes of hex`),
  );
}

/** The `tpm` section. */
export const tpmEvidenceSchema = z.strictObject({
  akPublic: base64Field(MAX_AK_PUBLIC_BYTES, 4),
  quote: base64Field(MAX_QUOTE_BYTES, 4),
  signature: base64Field(MAX_SIGNATURE_BYTES, 2),
  pcrs: z.strictObject({
    sha1: bankValues(PCR_BANKS.sha1).optional(),
    sha256: bankValues(PCR_BANKS.sha256).optional(),
    sha384: bankValues(PCR_BANKS.sha384).optional(),
    sha512: bankValues(PCR_BANKS.sha512).optional(),
  }),
  ekCertificate: base64Field(MAX_EK_CERT_BYTES, 1).optional(),
});
/** The `tpm` section, JSON form. */
export type TpmEvidence = z.infer<typeof tpmEvidenceSchema>;

/** Fields every variant shares. */
export const documentCommonShape = {
  version: z.literal(1),
  nonce: base64Field(MAX_NONCE_BYTES),
  userData: base64Field(MAX_USER_DATA_BYTES),
};

/** Schema of a `variant: "tpm"` document. */
export const tpmDocumentSchema = z.strictObject({
  ...documentCommonShape,
  variant: z.literal("tpm"),
  tpm: tpmEvidenceSchema,
});
/** A `variant: "tpm"` document. */
export type TpmDocument = z.infer<typeof tpmDocumentSchema>;

/** Schema of a `variant: "sev-snp"` document: the TPM section plus SEV-SNP evidence. */
export const snpDocumentSchema = z.strictObject({
  ...documentCommonShape,
  variant: z.literal("sev-snp"),
  tpm: tpmEvidenceSchema,
  tee: snpEvidenceSchema,
});
/** A `variant: "sev-snp"` document. */
export type SnpDocument = z.infer<typeof snpDocumentSchema>;

/** Schema of a `variant: "tdx"` document: the TPM section plus TDX evidence. */
export const tdxDocumentSchema = z.strictObject({
  ...documentCommonShape,
  variant: z.literal("tdx"),
  tpm: tpmEvidenceSchema,
  tee: TdxEvidenceSchema,
});
/** A `variant: "tdx"` document. */
export type TdxDocument = z.infer<typeof tdxDocumentSchema>;

/** The variants this area defines. */
export const BUILTIN_VARIANTS = ["tpm", "sev-snp", "tdx"] as const;
/** A variant this area defines. */
export type BuiltinVariant = typeof BUILTIN_VARIANTS[number];
/** The TEE variants (a `tpm` section plus a `tee` section). */
export type TeeVariant = Exclude<BuiltinVariant, "tpm">;

/** A document with a `tee` section. */
export type TeeDocument = SnpDocument | TdxDocument;

/** Any registered document. */
export type AttestationDocument =
  | TpmDocument
  | SnpDocument
  | TdxDocument
  | ({ version: 1; variant: string } & Record<string, unknown>);

const variants = new Map<string, z.ZodType>([
  ["tpm", tpmDocumentSchema],
  ["sev-snp", snpDocumentSchema],
  ["tdx", tdxDocumentSchema],
]);

/**
 * Register the schema of another variant (e.g. "sev-snp", "tdx"). The schema should be a
 * strict object built from {@link documentCommonShape} plus `variant: z.literal(id)` and its
 * own section. Registering an id twice throws.
 */
export function registerDocumentVariant(id: string, schema: z.ZodType): void {
  if (variants.has(id)) throw new Error(`attestation document variant ${id} is already registered`);
  variants.set(id, schema);
}

/** The registered variant ids. */
export function documentVariants(): string[] {
  return [...variants.keys()];
}

/** Format the first few zod issues as one line naming the paths. */
export function describeIssues(error: z.ZodError, max = 5): string {
  return error.issues.slice(0, max).map((i) => {
    const path = i.path.length ? i.path.join(".") : "(document)";
    // Record keys: zod nests the key's own problem under `issues`.
    const nested = i.code === "invalid_key" ? i.issues[0]?.message : undefined;
    if (i.code === "unrecognized_keys") return `${path}: unknown key ${i.keys.join(", ")}`;
    return `${path}: ${nested ?? i.message}`;
  }).join("; ");
}

/**
 * Validate an already-parsed JSON value as a document of a registered variant. A malformed
 * document is a ParseError `parse.attestation_document` that names the offending fields.
 */
export function parseDocument(value: unknown): AttestationDocument {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ParseError("attestation_document", "the attestation document is not a JSON object");
  }
  const v = value as Record<string, unknown>;
  if (v.version !== 1) {
    throw new ParseError("attestation_document", "version: only version 1 is understood");
  }
  const variant = v.variant;
  const schema = typeof variant === "string" ? variants.get(variant) : undefined;
  if (!schema) {
    throw new ParseError(
      "attestation_document",
      `variant: must be one of ${documentVariants().join(", ")}`,
    );
  }
  const r = schema.safeParse(value);
  if (!r.success) throw new ParseError("attestation_document", describeIssues(r.error));
  return r.data as AttestationDocument;
}

/** Parse document JSON text (size checked before JSON.parse), then {@link parseDocument}. */
export function parseDocumentJson(text: string): AttestationDocument {
  if (text.length > MAX_DOCUMENT_BYTES) {
    throw new ParseError(
      "attestation_document",
      `the document is larger than ${MAX_DOCUMENT_BYTES} bytes`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ParseError("attestation_document", "the document is not valid JSON", { cause: e });
  }
  return parseDocument(value);
}

/** Decoded bytes of a TPM document's evidence. */
export interface DecodedTpmEvidence {
  nonce: Uint8Array;
  userData: Uint8Array;
  /** TPM2B_PUBLIC as written by tpm2_createak -u. */
  akPublic: Uint8Array;
  /** TPMS_ATTEST. */
  quote: Uint8Array;
  /** TPMT_SIGNATURE. */
  signature: Uint8Array;
  /** bank name → PCR index → value. */
  pcrs: Map<PcrBankName, Map<number, Uint8Array>>;
  /** DER. */
  ekCertificate?: Uint8Array;
}

/** Decode the base64/hex fields (nonce, userData and the `tpm` section) of a validated document. */
export function decodeTpmDocument(doc: TpmDocument | TeeDocument): DecodedTpmEvidence {
  const pcrs = new Map<PcrBankName, Map<number, Uint8Array>>();
  for (const bank of Object.keys(PCR_BANKS) as PcrBankName[]) {
    const values = doc.tpm.pcrs[bank];
    if (!values) continue;
    const m = new Map<number, Uint8Array>();
    for (const [k, hex] of Object.entries(values)) m.set(Number(k), fromHex(hex, "pcr"));
    pcrs.set(bank, m);
  }
  return {
    nonce: fromBase64(doc.nonce, "nonce"),
    userData: fromBase64(doc.userData, "userData"),
    akPublic: fromBase64(doc.tpm.akPublic, "akPublic"),
    quote: fromBase64(doc.tpm.quote, "quote"),
    signature: fromBase64(doc.tpm.signature, "signature"),
    pcrs,
    ekCertificate: doc.tpm.ekCertificate === undefined
      ? undefined
      : fromBase64(doc.tpm.ekCertificate, "ekCertificate"),
  };
}
