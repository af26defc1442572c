/**
 * CLI commands of the agent area: `agent` / `agent run` (the service entry),
 * `agent status`, and the debug commands `debug quote`, `debug disk`,
 * `debug kms-ping`, `debug join-config`.
 *
 * @module
 */
import tls from "node:tls";
import { z } from "zod";
import { stringify } from "yaml";
import { type Command, defineCommand, flag } from "../lib/cli.ts";
import { fromHex } from "../lib/bytes.ts";
import { ConfidantError, ExitCode } from "../lib/errors.ts";
import { issueDocument } from "../attestation/issue.ts";
import { AGENT_ENDPOINT_USER_DATA } from "../attestation/qualifying_data.ts";
import { Tpm } from "../attestation/tpm/client.ts";
import { normaliseFingerprint } from "../kms/client.ts";
import { openStateDisk } from "../cryptsetup/state_disk.ts";
import { readAgentConfig, runAgentService } from "./service.ts";
import { buildJoinConfiguration, redactJoinConfiguration } from "./join_config.ts";
import { joiningConfig } from "./config.ts";
import type { AgentState } from "./state.ts";

const DEFAULT_CONFIG = "/etc/confidant/agent.yaml";
const configFlag = {
  name: "config",
  type: "string" as const,
  value: "FILE",
  help: `agent config (default ${DEFAULT_CONFIG})`,
};
const cmdlineFlag = {
  name: "cmdline",
  type: "string" as const,
  value: "FILE",
  help: "kernel command line to merge (default /proc/cmdline)",
};

const runSchema = z.object({
  config: z.string().min(1).default(DEFAULT_CONFIG),
  cmdline: z.string().min(1).optional(),
});

async function runService(input: z.infer<typeof runSchema>): Promise<number> {
  const ctl = new AbortController();
  const stop = () => ctl.abort();
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  try {
    const ok = await runAgentService({
      configPath: input.config,
      cmdlinePath: input.cmdline,
      signal: ctl.signal,
    });
    return ok ? ExitCode.Ok : ExitCode.Failed;
  } finally {
    Deno.removeSignalListener("SIGTERM", stop);
    Deno.removeSignalListener("SIGINT", stop);
  }
}

const runDescription = `
Runs the boot: read config → attest and get the release from the KMS → unlock or
first-format the state disk → mount → WireGuard → kubeadm join → Cilium config (first
control-plane node) → encryption reported by Cilium → READY=1 to systemd. Serves
/healthz, /readyz, /v1/state, /v1/attestation?nonce=HEX and /metrics meanwhile and after.
Logs are JSON lines on stdout. A failed boot is final for this boot: the process keeps
serving the failed state until it is stopped (SIGTERM).`;

/** `confidant agent run`. */
export const agentRunCommand = defineCommand({
  path: ["agent", "run"],
  summary: "run the node agent (the systemd service entry)",
  description: runDescription,
  flags: [configFlag, cmdlineFlag],
  examples: ["confidant agent run --config /etc/confidant/agent.yaml"],
  schema: runSchema,
  run: (input) => runService(input),
});

/** `confidant agent` (same as `agent run`). */
export const agentCommand = defineCommand({
  path: ["agent"],
  summary: "run the node agent (same as `agent run`)",
  description: runDescription,
  flags: [configFlag, cmdlineFlag],
  schema: runSchema,
  run: (input) => runService(input),
});

/** One line per step for `agent status`. Pure. */
export function formatStatus(s: AgentState, ready: boolean): string {
  const lines = [
    `phase: ${s.phase}${ready ? " (ready)" : ""}   node: ${s.node.name ?? "?"} (${
      s.node.role ?? "?"
    })   encryption: ${s.encryption.enabled ? s.encryption.evidence.join(",") : "off"}`,
  ];
  for (const st of s.steps) {
    const extra = st.error ? `  ${st.error.code}: ${st.error.message.split("\n")[0]}` : "";
    const dur = st.durationMs !== undefined ? ` ${st.durationMs} ms` : "";
    lines.push(
      `  ${st.name.padEnd(14)} ${st.status.padEnd(8)} attempts=${st.attempts}${dur}${extra}`,
    );
    for (const c of st.checks ?? []) lines.push(`      failed check: ${c}`);
  }
  return lines.join("\n");
}

/** `confidant agent status`. */
export const agentStatusCommand = defineCommand({
  path: ["agent", "status"],
  summary: "show the local agent's boot state (asks its endpoint)",
  flags: [{
    name: "url",
    type: "string",
    value: "URL",
    help: "agent endpoint (default http://127.0.0.1:9443)",
  }],
  schema: z.object({
    url: z.url({ protocol: /^https?$/ }).default("http://127.0.0.1:9443"),
  }),
  async run(input, ctx) {
    const base = input.url.replace(/\/+$/, "");
    let state: AgentState;
    let ready: boolean;
    try {
      const r = await fetch(`${base}/v1/state`, { signal: AbortSignal.timeout(10_000) });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      state = await r.json() as AgentState;
      const rz = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(10_000) });
      await rz.body?.cancel();
      ready = rz.status === 200;
    } catch (e) {
      throw new ConfidantError(
        "agent.unreachable",
        `the agent at ${base} does not answer: ${(e as Error).message}`,
      );
    }
    ctx.out(ctx.json ? JSON.stringify({ ready, state }) : formatStatus(state, ready));
    return ready ? ExitCode.Ok : ExitCode.Failed;
  },
});

/** `confidant debug quote`. */
export const debugQuoteCommand = defineCommand({
  path: ["debug", "quote"],
  summary: "print a fresh attestation document for a nonce (as /v1/attestation does)",
  flags: [
    { name: "nonce", type: "string", value: "HEX", help: "nonce, 8..64 bytes" },
    { name: "tpm", type: "string", value: "DEV|swtpm:HOST:PORT", help: "default /dev/tpmrm0" },
  ],
  schema: z.object({
    nonce: flag.hex().refine((s) => s.length >= 16 && s.length <= 128, "must be 8..64 bytes"),
    tpm: z.string().default("/dev/tpmrm0"),
  }),
  async run(input, ctx) {
    const tpm = Tpm.open(input.tpm);
    try {
      const doc = await issueDocument(tpm, {
        nonce: fromHex(input.nonce, "nonce"),
        userData: AGENT_ENDPOINT_USER_DATA,
      });
      ctx.out(JSON.stringify(doc, null, ctx.json ? undefined : 2));
    } finally {
      await tpm.close();
    }
  },
});

/** `confidant debug disk`. */
export const debugDiskCommand = defineCommand({
  path: ["debug", "disk"],
  summary: "show the state disk as the agent sees it (LUKS, token, what it would do)",
  flags: [configFlag, cmdlineFlag, {
    name: "device",
    type: "string",
    value: "PATH",
    help: "disk to inspect (default: disk.device of the config)",
  }],
  schema: z.object({
    config: z.string().default(DEFAULT_CONFIG),
    cmdline: z.string().optional(),
    device: z.string().optional(),
  }),
  async run(input, ctx) {
    let device = input.device;
    let cfg: { cluster: string; integrity: boolean } | undefined;
    if (!device || input.config !== DEFAULT_CONFIG) {
      const { config } = await readAgentConfig(input.config, input.cmdline);
      device ??= config.disk.device;
      cfg = { cluster: config.disk.cluster, integrity: config.disk.integrity };
    }
    const disk = await openStateDisk(device, { mapper: false });
    try {
      const s = await disk.status(cfg);
      ctx.out(JSON.stringify(s, null, ctx.json ? undefined : 2));
    } finally {
      await disk.close();
    }
  },
});

/** `confidant debug kms-ping`. */
export const debugKmsPingCommand = defineCommand({
  path: ["debug", "kms-ping"],
  summary: "connect to the KMS, show its TLS certificate fingerprint and check the pin",
  flags: [
    { name: "kms", type: "string", value: "URL", help: "https://HOST:PORT of the KMS" },
    { name: "fingerprint", type: "string", value: "HEX", help: "expected SHA-256 (optional)" },
  ],
  schema: z.object({
    kms: z.url({ protocol: /^https$/, error: "must be an https:// URL" }),
    fingerprint: z.string().optional(),
  }),
  async run(input, ctx) {
    const url = new URL(input.kms);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const t0 = performance.now();
    const fp = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({
        host,
        port: Number(url.port || 443),
        servername: /^[\d.:]+$/.test(host) ? undefined : host,
        rejectUnauthorized: false,
      });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new ConfidantError("kms.timeout", `no TLS handshake with ${url.host} in 10 s`));
      }, 10_000);
      s.once("error", (e) => {
        clearTimeout(timer);
        reject(new ConfidantError("kms.connect", `cannot reach ${url.host}: ${e.message}`));
      });
      s.once("secureConnect", () => {
        clearTimeout(timer);
        const f = (s.getPeerCertificate()?.fingerprint256 ?? "").replace(/:/g, "").toLowerCase();
        s.destroy();
        resolve(f);
      });
    });
    const ms = Math.round(performance.now() - t0);
    const pin = input.fingerprint ? normaliseFingerprint(input.fingerprint) : undefined;
    const match = pin === undefined ? null : pin === fp;
    ctx.out(
      ctx.json
        ? JSON.stringify({
          kms: input.kms,
          reachable: true,
          fingerprint: fp,
          pinMatches: match,
          ms,
        })
        : `${input.kms}: reachable in ${ms} ms, certificate sha256 ${fp}${
          match === null ? "" : match ? " (matches the pin)" : " (DOES NOT match the pin)"
        }`,
    );
    return match === false ? ExitCode.Failed : ExitCode.Ok;
  },
});

/** `confidant debug join-config`. */
export const debugJoinConfigCommand = defineCommand({
  path: ["debug", "join-config"],
  summary: "print the kubeadm JoinConfiguration the agent would write (secrets redacted)",
  description: `
Without --ticket the KMS-provided values are shown as placeholders. With --ticket FILE
(JSON: apiServerEndpoint, token, caCertHashes, certificateKey?) they are filled in and the
token's secret half and the certificate key are redacted.`,
  flags: [configFlag, cmdlineFlag, {
    name: "ticket",
    type: "string",
    value: "FILE",
    help: "join ticket JSON",
  }],
  schema: z.object({
    config: z.string().default(DEFAULT_CONFIG),
    cmdline: z.string().optional(),
    ticket: z.string().optional(),
  }),
  async run(input, ctx) {
    const { config } = await readAgentConfig(input.config, input.cmdline);
    const placeholder = {
      apiServerEndpoint: "api.placeholder:6443",
      token: "abcdef.0000000000000000",
      caCertHashes: ["sha256:" + "0".repeat(64)],
      ...(config.role === "control-plane" ? { certificateKey: "0".repeat(64) } : {}),
    };
    let ticket = placeholder;
    if (input.ticket) {
      const text = await Deno.readTextFile(input.ticket);
      if (text.length > 16 * 1024) throw new ConfidantError("agent.ticket", "ticket too large");
      try {
        ticket = JSON.parse(text);
      } catch {
        throw new ConfidantError("agent.ticket", `${input.ticket} is not JSON`);
      }
    }
    const nodeName = config.nodeName.source === "config" ? config.nodeName.name! : Deno.hostname();
    const cfg = redactJoinConfiguration(buildJoinConfiguration(ticket, {
      role: joiningConfig(config).role,
      nodeName,
      criSocket: config.kubeadm.criSocket,
      nodeIp: config.kubeadm.nodeIp,
      advertiseAddress: config.kubeadm.advertiseAddress,
      bindPort: config.kubeadm.bindPort,
      kubeletExtraArgs: config.kubeadm.kubeletExtraArgs,
    }));
    if (!input.ticket) {
      const from = "<from the KMS release>";
      cfg.discovery.bootstrapToken.apiServerEndpoint = from;
      cfg.discovery.bootstrapToken.token = from;
      cfg.discovery.bootstrapToken.caCertHashes = [from];
      if (cfg.controlPlane) cfg.controlPlane.certificateKey = from;
    }
    ctx.out(ctx.json ? JSON.stringify(cfg) : stringify(cfg).trimEnd());
  },
});

/** Commands registered in main.ts. */
export const commands: Command[] = [
  agentCommand,
  agentRunCommand,
  agentStatusCommand,
  debugQuoteCommand,
  debugDiskCommand,
  debugKmsPingCommand,
  debugJoinConfigCommand,
];
