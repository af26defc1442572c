/**
 * The agent's configuration: `/etc/confidant/agent.yaml`, validated with zod
 * (unknown keys are errors that name the key), merged with `confidant.*`
 * values from the kernel command line. The command line is measured with the
 * boot chain, so it is an acceptable source; instance metadata is not trusted
 * for anything but addressing and is never read here.
 *
 * Both functions are pure: the caller reads the files.
 *
 * @module
 */
import { z } from "zod";
import { parse as parseYaml } from "yaml";
import { ConfidantError } from "../lib/errors.ts";

/** Largest config file or command line accepted (bytes). */
export const MAX_CONFIG_BYTES = 64 * 1024;

const hostPort = z.string().regex(
  /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/,
  "must be HOST:PORT",
);
const absPath = z.string().min(1).max(4096).regex(/^\/[^\0]*$/, "must be an absolute path");
const ipAddress = z.union([z.ipv4(), z.ipv6()], { error: "must be an IPv4 or IPv6 address" });
const dnsName = z.string().min(1).max(253).regex(
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
  "must be a lower-case DNS name (RFC 1123)",
);

/** Schema of the agent configuration (after the command line is merged in). */
export const AgentConfigSchema = z.strictObject({
  /** Where the KMS is and which TLS key it must present. */
  /** Absent only with `role: init` (the first node, which has no KMS to ask). */
  kms: z.strictObject({
    url: z.url({ protocol: /^https$/, error: "must be an https:// URL" }),
    /** SHA-256 of the KMS's TLS certificate (DER), hex, as `kms serve` prints it; pinned, no CA. */
    fingerprint: z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lower-case hex digits (SHA-256)"),
  }).optional(),
  tpm: z.strictObject({
    /** `/dev/tpmrm0`, or `swtpm:HOST:PORT` for tests and development. */
    device: z.string().regex(/^(\/dev\/tpm(rm)?\d+|swtpm:[A-Za-z0-9.-]+:\d{1,5})$/, {
      error: "must be /dev/tpmrmN, /dev/tpmN or swtpm:HOST:PORT",
    }).default("/dev/tpmrm0"),
  }).default({ device: "/dev/tpmrm0" }),
  disk: z.strictObject({
    /** Block device of the state disk. */
    device: absPath,
    mountPoint: absPath.default("/var/lib/confidant"),
    fsType: z.enum(["ext4"]).default("ext4"),
    /** Cluster name written in the disk's LUKS token (a disk of another cluster is refused). */
    cluster: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/).default("confidant"),
    /** dm-integrity (hmac-sha256) on the data segment. */
    integrity: z.boolean().default(false),
  }),
  /**
   * `init`: the first node of a new cluster; it asks no KMS and waits for `confidant init`
   * (or `confidant recover`) from the operator (agent/bootstrap.ts).
   */
  role: z.enum(["worker", "control-plane", "init"]),
  nodeName: z.strictObject({
    /** `hostname`: the kernel's host name; `config`: `name` below. */
    source: z.enum(["hostname", "config"]).default("hostname"),
    name: dnsName.optional(),
  }).default({ source: "hostname" }).refine(
    (n) => n.source !== "config" || n.name !== undefined,
    { error: "nodeName.name is required when nodeName.source is config", path: ["name"] },
  ),
  kubeadm: z.strictObject({
    /**
     * Whether this node joins a Kubernetes cluster (default true). `false` is for a
     * node without Kubernetes (the local cluster in a box, `confidant up`): the boot
     * ends once the state disk is mounted and WireGuard is set up, join and the Cilium
     * checks are skipped, and the node's final phase is `unlocked`, not `ready`.
     */
    join: z.boolean().default(true),
    /** tmpfs directory where the JoinConfiguration lives while kubeadm runs. */
    runtimeDir: absPath.default("/run/confidant"),
    criSocket: z.string().regex(/^unix:\/\/\/\S+$/).default(
      "unix:///run/containerd/containerd.sock",
    ),
    nodeIp: ipAddress.optional(),
    /** Control-plane nodes: address the local API server advertises (default nodeIp). */
    advertiseAddress: ipAddress.optional(),
    bindPort: z.number().int().min(1).max(65535).default(6443),
    kubeletExtraArgs: z.array(z.strictObject({
      name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, "must be a kubelet flag name without dashes"),
      value: z.string().max(4096),
    })).max(64).default([]),
    /** File whose presence means this node already joined (kubeadm writes it). */
    joinedMarker: absPath.default("/etc/kubernetes/kubelet.conf"),
    /** Attempts at `kubeadm join` (with `kubeadm reset` between them). */
    attempts: z.number().int().min(1).max(20).default(3),
    timeoutSeconds: z.number().int().min(10).max(3600).default(600),
  }).default(() => ({
    join: true,
    runtimeDir: "/run/confidant",
    criSocket: "unix:///run/containerd/containerd.sock",
    bindPort: 6443,
    kubeletExtraArgs: [],
    joinedMarker: "/etc/kubernetes/kubelet.conf",
    attempts: 3,
    timeoutSeconds: 600,
  })),
  cilium: z.strictObject({
    /** Apply the encryption settings to `kube-system/cilium-config` (first control-plane node). */
    applyConfig: z.boolean().default(false),
    /** Kubeconfig used to write cilium-config (only with applyConfig). */
    adminKubeconfig: absPath.default("/etc/kubernetes/admin.conf"),
    /** Kubeconfig used to read this node's objects. */
    nodeKubeconfig: absPath.default("/etc/kubernetes/kubelet.conf"),
    nodeEncryption: z.boolean().default(true),
    /** Pod CIDR (IPv4) in which unencrypted traffic is dropped. */
    strictModeCidr: z.cidrv4().optional(),
    /** Required with tunnel routing (VXLAN/Geneve). */
    strictModeAllowRemoteNodeIdentities: z.boolean().default(true),
    /** Option names: `egress` (Cilium >= 1.19) or `legacy` (Cilium <= 1.18). */
    strictModeKeys: z.enum(["egress", "legacy"]).default("egress"),
    /** How long to wait after join for Cilium to report WireGuard on this node. */
    readyTimeoutSeconds: z.number().int().min(10).max(7200).default(900),
  }).default(() => ({
    applyConfig: false,
    adminKubeconfig: "/etc/kubernetes/admin.conf",
    nodeKubeconfig: "/etc/kubernetes/kubelet.conf",
    nodeEncryption: true,
    strictModeAllowRemoteNodeIdentities: true,
    strictModeKeys: "egress" as const,
    readyTimeoutSeconds: 900,
  })),
  /**
   * Attestation evidence: `tee` is the TEE report added to the TPM quote, in every release
   * request and on `/v1/attestation`. `auto` (default) detects an SEV-SNP or TDX guest
   * through configfs-tsm and falls back to a plain `tpm` document where there is none;
   * `sev-snp`/`tdx` require that TEE (the boot fails where it cannot be reached); `none`
   * never adds one. The KMS policy decides which variants it accepts.
   */
  attestation: z.strictObject({
    tee: z.enum(["auto", "sev-snp", "tdx", "none"]).default("auto"),
  }).default({ tee: "auto" }),
  /**
   * The KMS this node runs in-process once it took a cluster (role init, after
   * `confidant init` or `confidant recover`): where it listens, and extra DNS names or
   * addresses for its self-signed certificate (nodes pin its fingerprint, so names are
   * informational). `url` is what joining nodes are told (default: https:// the node's
   * advertise address or node IP, else the listen host, with the listen port).
   */
  kmsServer: z.strictObject({
    listen: hostPort.default("0.0.0.0:9444"),
    names: z.array(z.string().min(1).max(253).regex(/^[A-Za-z0-9.:-]+$/)).max(16).default([]),
    url: z.url({ protocol: /^https$/, error: "must be an https:// URL" }).optional(),
  }).default({ listen: "0.0.0.0:9444", names: [] }),
  /** Address of the agent's HTTP endpoint. */
  listen: hostPort.default("0.0.0.0:9443"),
}).refine((c) => c.role === "init" || c.kms !== undefined, {
  error: "kms is required unless role is init",
  path: ["kms"],
});

/** The validated agent configuration. */
export type AgentConfig = z.infer<typeof AgentConfigSchema>;

/** Kernel command-line keys the agent reads, and the config path each sets. */
export const CMDLINE_KEYS: Readonly<
  Record<string, { path: string[]; type: "string" | "boolean" }>
> = {
  "confidant.kms": { path: ["kms", "url"], type: "string" },
  "confidant.kms_fingerprint": { path: ["kms", "fingerprint"], type: "string" },
  "confidant.tpm": { path: ["tpm", "device"], type: "string" },
  "confidant.disk": { path: ["disk", "device"], type: "string" },
  "confidant.role": { path: ["role"], type: "string" },
  "confidant.node_name": { path: ["nodeName", "name"], type: "string" },
  "confidant.node_ip": { path: ["kubeadm", "nodeIp"], type: "string" },
  "confidant.listen": { path: ["listen"], type: "string" },
  "confidant.tee": { path: ["attestation", "tee"], type: "string" },
  "confidant.cilium_apply": { path: ["cilium", "applyConfig"], type: "boolean" },
  "confidant.join": { path: ["kubeadm", "join"], type: "boolean" },
};

/** Split a kernel command line into `key=value` words (double quotes group, as the kernel does). */
export function splitKernelCmdline(text: string): string[] {
  if (text.length > MAX_CONFIG_BYTES) {
    throw new ConfidantError("agent.config", "kernel command line is too long");
  }
  const words: string[] = [];
  let cur = "";
  let quoted = false;
  let inWord = false;
  for (const ch of text) {
    if (ch === '"') {
      quoted = !quoted;
      inWord = true;
    } else if (!quoted && /\s/.test(ch)) {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (quoted) throw new ConfidantError("agent.config", "kernel command line has an unclosed quote");
  if (inWord) words.push(cur);
  return words;
}

/**
 * The `confidant.*` values of a kernel command line, as config paths.
 * Other parameters are ignored; an unknown `confidant.` key or a repeated one is an error.
 */
export function parseKernelCmdline(text: string): Map<string, { path: string[]; value: unknown }> {
  const out = new Map<string, { path: string[]; value: unknown }>();
  for (const word of splitKernelCmdline(text)) {
    const eq = word.indexOf("=");
    const key = eq >= 0 ? word.slice(0, eq) : word;
    if (!key.startsWith("confidant.")) continue;
    const spec = CMDLINE_KEYS[key];
    if (!spec) {
      throw new ConfidantError(
        "agent.config",
        `kernel command line: unknown key ${JSON.stringify(key)} (known: ${
          Object.keys(CMDLINE_KEYS).join(", ")
        })`,
      );
    }
    if (out.has(key)) {
      throw new ConfidantError("agent.config", `kernel command line: ${key} is given twice`);
    }
    let value: unknown = eq >= 0 ? word.slice(eq + 1) : undefined;
    if (spec.type === "boolean") {
      if (value === undefined || value === "1" || value === "true") value = true;
      else if (value === "0" || value === "false") value = false;
      else {
        throw new ConfidantError(
          "agent.config",
          `kernel command line: ${key} must be true or false`,
        );
      }
    } else if (value === undefined || value === "") {
      throw new ConfidantError("agent.config", `kernel command line: ${key} needs a value`);
    }
    out.set(key, { path: spec.path, value });
  }
  return out;
}

/** Where each configured value came from, for the log. */
export interface ConfigSources {
  /** Config paths (dotted) set or overridden by the kernel command line. */
  fromCmdline: string[];
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => {
    const where = issue.path.join(".");
    if (issue.code === "unrecognized_keys") {
      const keys = issue.keys.map((k) => (where ? `${where}.${k}` : k));
      return `unknown key${keys.length > 1 ? "s" : ""} ${keys.join(", ")}`;
    }
    return `${where || "config"}: ${issue.message}`;
  }).join("; ");
}

/**
 * Parse the YAML config (may be empty when everything comes from the command line),
 * apply the kernel command line over it and validate the result.
 */
export function loadAgentConfig(
  yamlText: string,
  cmdline = "",
): { config: AgentConfig; sources: ConfigSources } {
  if (yamlText.length > MAX_CONFIG_BYTES) {
    throw new ConfidantError("agent.config", `config is larger than ${MAX_CONFIG_BYTES} bytes`);
  }
  let raw: unknown;
  try {
    raw = yamlText.trim() === "" ? {} : parseYaml(yamlText, { maxAliasCount: 16 });
  } catch (e) {
    throw new ConfidantError("agent.config", `config is not valid YAML: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfidantError("agent.config", "config must be a YAML mapping");
  }
  const merged = structuredClone(raw) as Record<string, unknown>;
  const fromCmdline: string[] = [];
  for (const { path, value } of parseKernelCmdline(cmdline).values()) {
    let node = merged;
    for (const part of path.slice(0, -1)) {
      const next = node[part];
      if (next === undefined || next === null) node[part] = {};
      else if (typeof next !== "object" || Array.isArray(next)) {
        throw new ConfidantError("agent.config", `config: ${part} must be a mapping`);
      }
      node = node[part] as Record<string, unknown>;
    }
    node[path[path.length - 1]] = value;
    fromCmdline.push(path.join("."));
    if (path[0] === "nodeName" && path[1] === "name") {
      (merged.nodeName as Record<string, unknown>).source = "config";
    }
  }
  const r = AgentConfigSchema.safeParse(merged);
  if (!r.success) {
    throw new ConfidantError("agent.config", `invalid agent config: ${describeIssues(r.error)}`);
  }
  return { config: r.data, sources: { fromCmdline } };
}

/** A configuration of a node that joins through the KMS (role worker or control-plane). */
export type JoiningAgentConfig = AgentConfig & {
  role: "worker" | "control-plane";
  kms: NonNullable<AgentConfig["kms"]>;
};

/** Narrow to {@link JoiningAgentConfig}; a `role: init` config is a ConfidantError. */
export function joiningConfig(c: AgentConfig): JoiningAgentConfig {
  if (c.role === "init" || !c.kms) {
    throw new ConfidantError(
      "agent.role_init",
      "role init: this node waits for `confidant init` from the operator; it does not join",
    );
  }
  return c as JoiningAgentConfig;
}
