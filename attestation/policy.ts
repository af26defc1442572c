/**
 * Verification policy for TPM attestation documents (zod, strict: an unknown key is an error
 * that names the key):
 *
 * ```json
 * { "pcrs": { "7": { "expected": ["<hex>", ...], "warnOnly": false } },
 *   "ak": { "pinned": ["sha256:<hex of SHA-256(TPM2B_PUBLIC)>"] } }
 * ```
 * or `"ak": { "ekCaCertificates": ["-----BEGIN CERTIFICATE-----..."] }`.
 *
 * There is deliberately no mode that trusts an attestation key for nothing: without `ak` the
 * policy admits no document. `pcrs` refers to the SHA-256 bank. The KMS extends
 * {@link policyBaseSchema} with its own sections (`policyBaseSchema.extend({...})`).
 *
 * `variants` lists the document variants the policy accepts (default `["tpm"]`). Accepting
 * `"sev-snp"` needs an `snp` section (attestation/snp/policy.ts `snpPolicySchema`; `{}` takes
 * its defaults) and accepting `"tdx"` a `tdx` section (attestation/tdx/policy.ts
 * `TdxPolicySchema`); a TEE document must then pass both its TPM half and its TEE half. A
 * section without its variant, or a variant without its section, is refused by
 * {@link parsePolicy} so that a forgotten line cannot silently drop a check.
 *
 * @module
 */
import { z } from "zod";
import { ParseError } from "../lib/errors.ts";
import { BUILTIN_VARIANTS } from "./document.ts";
import { snpPolicySchema } from "./snp/policy.ts";
import { TdxPolicySchema } from "./tdx/policy.ts";

/** Largest policy file accepted (bytes). */
export const MAX_POLICY_BYTES = 1024 * 1024;

const hex32 = z.string().regex(
  /^[0-9a-fA-F]{64}$/,
  "must be 32 bytes of hex (a SHA-256 PCR value)",
);

/** Expected values of one PCR. */
export const pcrRuleSchema = z.strictObject({
  /** Acceptable values (any one matches). */
  expected: z.array(hex32).min(1, "needs at least one value").max(64),
  /** A mismatch is a warning, not a failure. */
  warnOnly: z.boolean().default(false),
});

/** AK trust: enrolled AK public keys, pinned by SHA-256 of their TPM2B_PUBLIC bytes. */
export const pinnedAkSchema = z.strictObject({
  pinned: z.array(
    z.string().regex(/^sha256:[0-9a-fA-F]{64}$/, 'must be "sha256:" followed by 64 hex digits'),
  ).min(1, "needs at least one pinned AK").max(100_000),
});

/** AK trust: EK certificate chains to these CAs plus a live credential activation. */
export const ekCaAkSchema = z.strictObject({
  ekCaCertificates: z.array(
    z.string().max(64 * 1024).regex(/-----BEGIN CERTIFICATE-----/, "must be a PEM certificate"),
  ).min(1, "needs at least one CA certificate").max(100),
});

/** The `ak` section: exactly one of the two trust modes. */
export const akPolicySchema = z.union([pinnedAkSchema, ekCaAkSchema]);

/** The base policy schema; extend it for other consumers. */
export const policyBaseSchema = z.strictObject({
  pcrs: z.record(
    z.string().regex(/^(?:[0-9]|1[0-9]|2[0-3])$/, "PCR index must be 0..23"),
    pcrRuleSchema,
  )
    .default({}),
  ak: akPolicySchema.optional(),
  /** Accepted document variants. */
  variants: z.array(z.enum(BUILTIN_VARIANTS)).min(1, "needs at least one variant").max(3)
    .default(["tpm"]),
  /** SEV-SNP appraisal of the `tee` half of `sev-snp` documents. */
  snp: snpPolicySchema.optional(),
  /** TDX appraisal of the `tee` half of `tdx` documents. */
  tdx: TdxPolicySchema.optional(),
});

/** A validated policy. */
export type Policy = z.infer<typeof policyBaseSchema>;
/** A policy as written in JSON (defaults not applied). */
export type PolicyInput = z.input<typeof policyBaseSchema>;

/** One line per zod issue, naming the path and, for unknown keys, the keys. */
function describe(error: z.ZodError): string {
  const seen = new Set<string>();
  const lines: string[] = [];
  const walk = (issues: readonly z.core.$ZodIssue[], prefix: (string | number | symbol)[]) => {
    for (const i of issues) {
      const path = [...prefix, ...i.path];
      if (i.code === "invalid_union" && "errors" in i) {
        for (const branch of i.errors as z.core.$ZodIssue[][]) walk(branch, path);
        continue;
      }
      const where = path.length ? path.map(String).join(".") : "(policy)";
      const line = i.code === "unrecognized_keys"
        ? `${where}: unknown key ${(i.keys as string[]).map((k) => JSON.stringify(k)).join(", ")}`
        : i.code === "invalid_key"
        ? `${where}: ${i.issues[0]?.message ?? i.message}`
        : `${where}: ${i.message}`;
      if (!seen.has(line)) {
        seen.add(line);
        lines.push(line);
      }
    }
  };
  walk(error.issues, []);
  return lines.slice(0, 8).join("; ");
}

/**
 * Cross-field rules of a validated policy: each accepted TEE variant has its section, each
 * section has its variant, and a TDX section pins no fixed REPORTDATA (documents bind it per
 * request). Returns one message per broken rule.
 */
export function policyConsistency(p: {
  variants?: readonly string[];
  snp?: unknown;
  tdx?: { reportData?: string };
}): string[] {
  const out: string[] = [];
  const v = p.variants ?? ["tpm"];
  const pairs = [["sev-snp", "snp", p.snp], ["tdx", "tdx", p.tdx]] as const;
  for (const [variant, section, value] of pairs) {
    if (v.includes(variant) && value === undefined) {
      out.push(
        `${section}: variants accepts "${variant}" but there is no ${section} section ` +
          `(write ${section}: {} to take its defaults)`,
      );
    }
    if (!v.includes(variant) && value !== undefined) {
      out.push(`variants: the ${section} section is set but "${variant}" is not accepted`);
    }
  }
  if (p.tdx?.reportData !== undefined) {
    out.push(
      "tdx.reportData: documents bind REPORTDATA to each request's nonce and AK, " +
        "so a fixed value never matches",
    );
  }
  return out;
}

/** Validate a parsed JSON value as a policy (or with another schema that extends the base). */
export function parsePolicy<S extends z.ZodType = typeof policyBaseSchema>(
  value: unknown,
  schema?: S,
): z.infer<S> {
  const r = (schema ?? policyBaseSchema).safeParse(value);
  if (!r.success) throw new ParseError("policy", `invalid policy: ${describe(r.error)}`);
  const data = r.data as z.infer<S>;
  if (typeof data === "object" && data !== null) {
    const broken = policyConsistency(data as Parameters<typeof policyConsistency>[0]);
    if (broken.length) throw new ParseError("policy", `invalid policy: ${broken.join("; ")}`);
  }
  return data;
}

/** Parse policy JSON text (size-checked first). */
export function parsePolicyJson(text: string): Policy {
  if (text.length > MAX_POLICY_BYTES) {
    throw new ParseError("policy", "the policy file is too large");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ParseError("policy", "the policy is not valid JSON", { cause: e });
  }
  return parsePolicy(value);
}
