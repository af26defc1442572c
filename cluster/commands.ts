/**
 * Operator commands: `confidant init`, `confidant recover` and `confidant cluster verify`
 * (to be aliased as `confidant verify --cluster`). Secrets never come from argv: the recovery
 * passphrase is read from `--passphrase-file FILE` (or `-` for stdin).
 *
 * @module
 */
import { z } from "zod";
import { type Command, type CommandContext, defineCommand } from "../lib/cli.ts";
import { ExitCode } from "../lib/errors.ts";
import { atomicWriteFile } from "../lib/atomic_write.ts";
import { parsePolicyJson, type Policy } from "../attestation/policy.ts";
import { generateMasterSecret } from "../kms/keys.ts";
import { FinishUnknownError, initNode, type NodeAttestation, verifyCluster } from "./operator.ts";
import { nodeTransport } from "./node_transport.ts";
import { openRecovery, RECOVERY_WARNING, sealRecovery } from "./recovery.ts";
import { kubernetesSettingsSchema, OPERATOR_FINISH_TIMEOUT_MS } from "./protocol.ts";
import { deriveClusterId } from "./cluster_id.ts";

async function readPolicy(path: string): Promise<Policy> {
  return parsePolicyJson(await Deno.readTextFile(path));
}

async function readPassphrase(path: string): Promise<Uint8Array> {
  const raw = path === "-"
    ? new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer())
    : await Deno.readFile(path);
  let end = raw.length;
  while (end > 0 && (raw[end - 1] === 0x0a || raw[end - 1] === 0x0d)) end--;
  return raw.slice(0, end);
}

/**
 * Create the recovery file (0600, synced) only if no file exists at `path`; false when one
 * does.
 */
async function createRecoveryFile(path: string, text: string): Promise<boolean> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    throw e;
  }
  try {
    const data = new TextEncoder().encode(text);
    let o = 0;
    while (o < data.length) o += await f.write(data.subarray(o));
    await f.sync();
  } finally {
    f.close();
  }
  return true;
}

function printChecks(a: NodeAttestation, ctx: CommandContext): void {
  for (const f of a.failures) ctx.err(`FAILED ${f.check}: ${f.message}`);
  for (const w of a.warnings) ctx.err(`warning ${w.check}: ${w.message}`);
}

const nodeFlags = [
  { name: "node", type: "string" as const, value: "URL", help: "the node's endpoint" },
  { name: "policy", type: "string" as const, value: "FILE", help: "attestation policy (JSON)" },
];

const init = defineCommand({
  path: ["init"],
  summary: "initialise a new cluster on an attested first node",
  description: "Attests the node (EK chain, credential activation, PCRs, PCR 15 unset) and only " +
    "then sends it a new master secret, the cluster name and the Kubernetes settings, sealed " +
    "to its attested key. Writes the admin kubeconfig and a passphrase-encrypted recovery file.",
  flags: [
    ...nodeFlags,
    { name: "name", type: "string", value: "NAME", help: "cluster name (default confidant)" },
    { name: "kubernetes-version", type: "string", value: "vX.Y.Z", help: "Kubernetes version" },
    { name: "control-plane-endpoint", type: "string", value: "HOST:PORT", help: "API address" },
    { name: "pod-subnet", type: "string", value: "CIDR", help: "pod CIDR" },
    { name: "service-subnet", type: "string", value: "CIDR", help: "service CIDR" },
    { name: "kubeconfig-out", type: "string", value: "FILE", help: "where to write admin.conf" },
    { name: "recovery-file", type: "string", value: "FILE", help: "recovery file to write" },
    {
      name: "passphrase-file",
      type: "string",
      value: "FILE",
      help: "recovery passphrase (- for stdin)",
    },
  ],
  schema: z.object({
    node: z.string().min(1),
    policy: z.string().min(1),
    name: z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/).default("confidant"),
    "kubernetes-version": z.string(),
    "control-plane-endpoint": z.string().optional(),
    "pod-subnet": z.string().optional(),
    "service-subnet": z.string().optional(),
    "kubeconfig-out": z.string().min(1),
    "recovery-file": z.string().min(1),
    "passphrase-file": z.string().min(1),
    json: z.boolean().default(false),
  }),
  async run(i, ctx) {
    const policy = await readPolicy(i.policy);
    const kubernetes = kubernetesSettingsSchema.parse({
      kubernetesVersion: i["kubernetes-version"],
      ...(i["control-plane-endpoint"] ? { controlPlaneEndpoint: i["control-plane-endpoint"] } : {}),
      ...(i["pod-subnet"] ? { podSubnet: i["pod-subnet"] } : {}),
      ...(i["service-subnet"] ? { serviceSubnet: i["service-subnet"] } : {}),
    });
    const passphrase = await readPassphrase(i["passphrase-file"]);
    const master = generateMasterSecret(i.name);
    // The recovery file is written before the secret leaves this machine, and never over an
    // existing one: that may hold the master secret of a cluster an earlier init gave away.
    const id = await deriveClusterId(master);
    if (!await createRecoveryFile(i["recovery-file"], await sealRecovery(master, id, passphrase))) {
      ctx.err(
        `confidant: ${i["recovery-file"]} already exists; not overwritten. It may be the ` +
          "recovery file of a cluster an earlier `confidant init` gave to a node (for example " +
          "one that timed out). Check the node with `confidant cluster verify`: if it runs that " +
          "cluster, keep the file (it is the only way to recover the cluster). Only if the file " +
          "belongs to no cluster, move it away or pass another --recovery-file.",
      );
      return ExitCode.Failed;
    }
    ctx.err(RECOVERY_WARNING);
    let out;
    let sent = false;
    try {
      out = await initNode({
        transport: nodeTransport(i.node, { timeoutMs: OPERATOR_FINISH_TIMEOUT_MS }),
        policy,
        purpose: "init",
        master,
        kubernetes,
        onFinishSent: () => sent = true,
      });
    } catch (e) {
      if (sent) {
        ctx.err(
          `the master secret was sent and the node may have taken the cluster: KEEP ` +
            `${i["recovery-file"]}${e instanceof FinishUnknownError ? "" : ` (${e})`}`,
        );
      } else {
        // Nothing left this machine: the file protects no cluster, and a retry needs the path.
        await Deno.remove(i["recovery-file"]).catch(() => {});
      }
      throw e;
    }
    if (!out.result) {
      printChecks(out.attestation, ctx);
      ctx.err("the node failed verification: nothing was sent to it");
      await Deno.remove(i["recovery-file"]).catch(() => {});
      return ExitCode.Failed;
    }
    await atomicWriteFile(i["kubeconfig-out"], out.result.adminKubeconfig);
    const kms = out.result.kms;
    if (i.json) {
      ctx.out(JSON.stringify({
        clusterId: out.clusterId,
        disk: out.result.disk,
        ...(kms ? { kms } : {}),
      }));
    } else {
      ctx.out(`cluster ${i.name} initialised; cluster ID ${out.clusterId}`);
      if (kms) ctx.out(`KMS for joining nodes: ${kms.url} (TLS fingerprint ${kms.fingerprint})`);
    }
    return ExitCode.Ok;
  },
});

const recover = defineCommand({
  path: ["recover"],
  summary: "give a rebooted control-plane node the master secret from the recovery file",
  flags: [
    ...nodeFlags,
    { name: "recovery-file", type: "string", value: "FILE", help: "recovery file" },
    {
      name: "passphrase-file",
      type: "string",
      value: "FILE",
      help: "recovery passphrase (- for stdin)",
    },
    { name: "kubeconfig-out", type: "string", value: "FILE", help: "where to write admin.conf" },
  ],
  schema: z.object({
    node: z.string().min(1),
    policy: z.string().min(1),
    "recovery-file": z.string().min(1),
    "passphrase-file": z.string().min(1),
    "kubeconfig-out": z.string().optional(),
    json: z.boolean().default(false),
  }),
  async run(i, ctx) {
    const policy = await readPolicy(i.policy);
    const r = await openRecovery(
      await Deno.readTextFile(i["recovery-file"]),
      await readPassphrase(i["passphrase-file"]),
    );
    const out = await initNode({
      transport: nodeTransport(i.node, { timeoutMs: OPERATOR_FINISH_TIMEOUT_MS }),
      policy,
      purpose: "recover",
      master: r.master,
    });
    if (!out.result) {
      printChecks(out.attestation, ctx);
      ctx.err("the node failed verification: nothing was sent to it");
      return ExitCode.Failed;
    }
    if (i["kubeconfig-out"]) {
      await atomicWriteFile(i["kubeconfig-out"], out.result.adminKubeconfig);
    }
    if (i.json) ctx.out(JSON.stringify({ clusterId: out.clusterId, disk: out.result.disk }));
    else ctx.out(`cluster ${r.master.clusterId} recovered; cluster ID ${out.clusterId}`);
    return ExitCode.Ok;
  },
});

const verify = defineCommand({
  path: ["cluster", "verify"],
  summary: "attest a control-plane node and state which cluster it runs",
  flags: [
    { name: "cluster", type: "string", value: "URL", help: "a control-plane node's endpoint" },
    { name: "policy", type: "string", value: "FILE", help: "attestation policy (JSON)" },
  ],
  schema: z.object({
    cluster: z.string().min(1),
    policy: z.string().min(1),
    json: z.boolean().default(false),
  }),
  async run(i, ctx) {
    const rep = await verifyCluster(nodeTransport(i.cluster), await readPolicy(i.policy));
    if (i.json) ctx.out(JSON.stringify(rep));
    else if (rep.ok) {
      ctx.out(`OK: cluster ${rep.clusterName} (ID ${rep.clusterId})`);
      ctx.out(`AK trusted by ${rep.akTrust}; PCRs match the policy; PCR 15 = cluster ID`);
      for (const w of rep.warnings) ctx.out(`warning ${w.check}: ${w.message}`);
    } else {
      ctx.out("NOT VERIFIED");
      for (const f of rep.failures) ctx.out(`FAILED ${f.check}: ${f.message}`);
    }
    return rep.ok ? ExitCode.Ok : ExitCode.Failed;
  },
});

/** Commands of the cluster area (register in main.ts). */
export const commands: Command[] = [init, recover, verify] as Command[];
