/**
 * The KMS policy: the base attestation policy of `confidant verify` (PCRs, AK trust) plus the
 * KMS's own sections, each optional with a safe default:
 *
 * ```yaml
 * pcrs: { "7": { expected: ["<hex>"] } }
 * ak: { ekCaCertificates: ["-----BEGIN CERTIFICATE-----..."] }
 * variants: [tpm]                 # accepted document variants: tpm, sev-snp, tdx (default [tpm])
 * # snp: {...} / tdx: {...}        # required iff sev-snp / tdx is accepted (attestation/README.md)
 * roles: [worker]                 # roles a node may ask for (default [worker] only)
 * join:                           # absent: releases carry no join ticket
 *   apiServerEndpoint: "10.0.0.1:6443"
 *   caCertHashes: ["sha256:<hex>"]  # default: hash of the kubeconfig's cluster CA
 *   certificateKeySecret: { namespace: kube-system, name: confidant-certificate-key, key: key }
 *   ttlMinutes: 15
 * replicas: { releaseKek: false } # true: control-plane releases carry the KEK and the policy
 * clusterIdPcr: { required: false } # true: PCR 15 must be quoted, unset or this cluster's
 * ```
 *
 * `{"pcrs":{}}` is valid and admits nobody (no AK is trusted). {@link PolicyHolder} reloads the
 * file when it changes and keeps the previous policy when the new one does not validate.
 *
 * @module
 */
import { z } from "zod";
import { parse as parseYaml } from "yaml";
import { MAX_POLICY_BYTES, parsePolicy, policyBaseSchema } from "../attestation/policy.ts";
import { ConfidantError, describeError, ParseError } from "../lib/errors.ts";
import { roleSchema } from "./protocol.ts";

/** The `join` section. */
export const joinPolicySchema = z.strictObject({
  apiServerEndpoint: z.string().regex(
    /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/,
    "must be HOST:PORT",
  ),
  caCertHashes: z.array(z.string().regex(/^sha256:[0-9a-f]{64}$/, "must be sha256:<64 hex>")).min(1)
    .max(8).optional(),
  certificateKeySecret: z.strictObject({
    namespace: z.string().min(1).max(63),
    name: z.string().min(1).max(253),
    key: z.string().min(1).max(253),
  }).optional(),
  ttlMinutes: z.number().int().min(1).max(60).default(15),
});

/**
 * The `replicas` section: whether a control-plane release carries what a KMS replica needs
 * (the KEK that opens the sealed master secret, and this policy). Only when `roles` also
 * admits `control-plane`.
 */
export const replicasPolicySchema = z.strictObject({
  releaseKek: z.boolean().default(false),
});

/**
 * The `clusterIdPcr` section: with `required`, a node's quote must include PCR 15
 * (cluster/cluster_id.ts CLUSTER_ID_PCR) and PCR 15 must be unset (a node that has taken no
 * cluster) or hold this cluster's value (a re-release after an agent restart).
 */
export const clusterIdPcrPolicySchema = z.strictObject({
  required: z.boolean().default(false),
});

/** The KMS policy schema. */
export const kmsPolicySchema = policyBaseSchema.extend({
  roles: z.array(roleSchema).default(["worker"]),
  join: joinPolicySchema.optional(),
  replicas: replicasPolicySchema.optional(),
  clusterIdPcr: clusterIdPcrPolicySchema.optional(),
});
/** A validated KMS policy. */
export type KmsPolicy = z.infer<typeof kmsPolicySchema>;

/** Parse policy text (YAML or JSON; JSON is YAML) into a validated KMS policy. */
export function parseKmsPolicy(text: string): KmsPolicy {
  if (text.length > MAX_POLICY_BYTES) {
    throw new ParseError("policy", "the policy file is too large");
  }
  let value: unknown;
  try {
    value = parseYaml(text, { maxAliasCount: 50, prettyErrors: false });
  } catch (e) {
    throw new ParseError(
      "policy",
      `the policy is neither JSON nor YAML: ${(e as Error).message.split("\n")[0]}`,
    );
  }
  return parsePolicy(value, kmsPolicySchema);
}

/** A policy in force and when it was loaded. */
export interface LoadedPolicy {
  policy: KmsPolicy;
  loadedAt: Date;
  /** A short digest of the text, to tell versions apart in logs. */
  version: string;
}

async function digest(text: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(d.subarray(0, 6), (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Events of a {@link PolicyHolder}. */
export interface PolicyEvents {
  reloaded?(p: LoadedPolicy): void;
  rejected?(reason: string): void;
}

/**
 * Holds the policy of a file and reloads it when the file changes (polled by modification
 * time and size, which survives editors that replace the file). A new version that fails to
 * validate is refused and the previous one stays in force.
 */
export class PolicyHolder {
  private loaded: LoadedPolicy;
  private stamp: string;
  private timer?: ReturnType<typeof setInterval>;
  private checking = false;

  private constructor(
    readonly path: string,
    first: LoadedPolicy,
    stamp: string,
    private readonly events: PolicyEvents,
  ) {
    this.loaded = first;
    this.stamp = stamp;
  }

  /** Load `path`; an invalid first policy is an error (the KMS does not start). */
  static async open(path: string, events: PolicyEvents = {}): Promise<PolicyHolder> {
    const { text, stamp } = await readPolicyFile(path);
    const policy = parseKmsPolicy(text);
    return new PolicyHolder(
      path,
      { policy, loadedAt: new Date(), version: await digest(text) },
      stamp,
      events,
    );
  }

  /** A holder of a fixed policy (tests, embedding). */
  static fixed(policy: KmsPolicy): PolicyHolder {
    return new PolicyHolder("(fixed)", { policy, loadedAt: new Date(), version: "fixed" }, "", {});
  }

  /** The policy in force. */
  get current(): LoadedPolicy {
    return this.loaded;
  }

  /** Check the file once; returns "unchanged", "reloaded" or "rejected". */
  async check(): Promise<"unchanged" | "reloaded" | "rejected"> {
    if (this.path === "(fixed)" || this.checking) return "unchanged";
    this.checking = true;
    try {
      let text: string, stamp: string;
      try {
        ({ text, stamp } = await readPolicyFile(this.path));
      } catch (e) {
        this.events.rejected?.(describeError(e).message);
        return "rejected";
      }
      if (stamp === this.stamp) return "unchanged";
      const version = await digest(text);
      this.stamp = stamp;
      if (version === this.loaded.version) return "unchanged";
      try {
        this.loaded = { policy: parseKmsPolicy(text), loadedAt: new Date(), version };
      } catch (e) {
        this.events.rejected?.(describeError(e).message);
        return "rejected";
      }
      this.events.reloaded?.(this.loaded);
      return "reloaded";
    } finally {
      this.checking = false;
    }
  }

  /** Poll the file every `intervalMs`. */
  watch(intervalMs = 2000): void {
    this.stop();
    const t = setInterval(() => void this.check(), intervalMs);
    Deno.unrefTimer(t);
    this.timer = t;
  }

  /** Stop polling. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}

async function readPolicyFile(path: string): Promise<{ text: string; stamp: string }> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(path);
  } catch (e) {
    throw new ConfidantError("kms.policy", `cannot read the policy file ${path}`, { cause: e });
  }
  if (st.size > MAX_POLICY_BYTES) throw new ParseError("policy", "the policy file is too large");
  const text = await Deno.readTextFile(path);
  return { text, stamp: `${st.mtime?.getTime()}:${st.size}:${st.ino}` };
}
