/**
 * CLI commands of the image area: `image measure` (PCR prediction for a UKI)
 * and `image build` (the node UKI into the cache).
 *
 * @module
 */
import { z } from "zod";
import { type Command, defineCommand } from "../lib/cli.ts";
import { toHex } from "../lib/bytes.ts";
import { ConfidantError, ExitCode } from "../lib/errors.ts";
import { formatBoxSummary } from "./box_summary.ts";
import { measureUki } from "./measure.ts";
import { buildDefaultNodeImage } from "./node_image.ts";
import { policyPcrs, ZERO_PCR } from "./policy_pcrs.ts";
import { down, MAX_BOX_NODES, up } from "./up.ts";

/** Largest UKI `image measure` reads (the node UKI is ~60 MiB). */
const MAX_UKI_BYTES = 1 << 30;

/** `confidant image measure UKI`. */
export const measureCommand = defineCommand({
  path: ["image", "measure"],
  summary: "predict the PCR 4 / PCR 11 values a node booting this UKI reports",
  description: `
Reads a unified kernel image and computes, without booting it, the SHA-256 PCR values that
OVMF (PCR 4: boot option action, separator, Authenticode hash of the UKI and of the kernel
the stub loads) and systemd-stub (PCR 11: name and contents of .linux, .osrel, .cmdline,
.initrd, ...) produce. --json prints { uki, pcrs } where pcrs is the policy section that
admits this image (PCR 12 must stay zero: no command-line override), plus every event.`,
  flags: [],
  positionals: [{ name: "uki", help: "path of the UKI (e.g. from `deno task image`)" }],
  examples: ["confidant image measure .cache/image/node/<key>/confidant-node.efi --json"],
  schema: z.object({ uki: z.string().min(1) }),
  async run(input, ctx) {
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(input.uki);
    } catch (e) {
      throw new ConfidantError("image.read", `cannot read ${input.uki}: ${e}`, { cause: e });
    }
    if (!st.isFile || st.size > MAX_UKI_BYTES) {
      throw new ConfidantError("image.read", `${input.uki} is not a file of at most 1 GiB`);
    }
    const uki = await Deno.readFile(input.uki);
    const m = await measureUki(uki);
    if (ctx.json) {
      ctx.out(JSON.stringify({
        uki: input.uki,
        pcrs: policyPcrs(m),
        events: m.events.map((e) => ({
          pcr: e.pcr,
          digest: toHex(e.digest),
          description: e.description,
        })),
      }));
    } else {
      ctx.out(`PCR 4  sha256 ${toHex(m.pcr4)}`);
      ctx.out(`PCR 11 sha256 ${toHex(m.pcr11)}`);
      ctx.out(`PCR 12 sha256 ${ZERO_PCR} (no boot loader command line)`);
      for (const e of m.events) ctx.out(`  ${e.pcr}  ${toHex(e.digest)}  ${e.description}`);
    }
  },
});

/** `confidant image build`. */
export const buildCommand = defineCommand({
  path: ["image", "build"],
  summary: "build the node UKI from Debian packages into .cache/image (reused when unchanged)",
  description: `
Same as \`deno task image\`. Prints the UKI path, its SHA-256 and its predicted PCRs.
--cmdline appends kernel parameters (they are measured into PCR 11).`,
  flags: [
    { name: "cmdline", type: "string", value: "PARAMS", help: "extra kernel parameters" },
  ],
  schema: z.object({ cmdline: z.string().max(2048).optional() }),
  async run(input, ctx) {
    const r = await buildDefaultNodeImage({ extraCmdline: input.cmdline });
    ctx.out(
      ctx.json ? JSON.stringify(r) : `${r.uki}\nsha256 ${r.sha256}\n${JSON.stringify(r.pcrs)}`,
    );
  },
});

/** `confidant up`. */
export const upCommand = defineCommand({
  path: ["up"],
  summary: "start a local KMS and QEMU nodes that attest and unlock their state disks",
  description: `
Builds or reuses the node image, starts \`kms serve\` on 127.0.0.1:PORT with a policy made by
\`image measure\` (PCR 4, 11, 12; EK CA = swtpm's local CA), and boots each node under OVMF
with its own swtpm vTPM (EK certificate from swtpm's local CA), a 2 GiB state disk and
user-mode networking (QEMU forwards the guest's 10.0.2.100:8443 to the KMS port; its DHCP
server names the node confidant-node-N).
Streams the consoles until every agent reports, then prints a summary: attestation identity
(AK name, EK certificate), PCR 4/11/12 against image measure, the KMS's decision, the disk
(formatted or opened, mounted), time per step. The box has no Kubernetes: nodes end in
phase unlocked (join skipped). Exit 0 when every node unlocked, 1 otherwise. Everything
keeps running until \`confidant down\`. State lives in .cache/up/.`,
  flags: [
    { name: "port", type: "string", value: "PORT", help: "KMS port on 127.0.0.1 (default 18443)" },
    { name: "nodes", type: "string", value: "N", help: `number of nodes (default 1)` },
    { name: "dir", type: "string", value: "DIR", help: "working directory (default .cache/up)" },
  ],
  examples: ["confidant up", "confidant up --nodes 2"],
  schema: z.object({
    port: z.coerce.number().int().min(1024).max(65535).optional(),
    nodes: z.coerce.number().int().min(1).max(MAX_BOX_NODES).optional(),
    dir: z.string().min(1).optional(),
  }),
  async run(input, ctx) {
    const r = await up({
      port: input.port,
      nodes: input.nodes,
      dir: input.dir,
      log: (l) => ctx.err(l),
    });
    ctx.out(
      ctx.json ? JSON.stringify({ ok: r.ok, processes: r.state.processes, ...r.summary }) : [
        formatBoxSummary(r.summary),
        "",
        "processes (stop with: confidant down):",
        ...r.state.processes.map((p) => `  ${p.role.padEnd(12)} pid ${p.pid}`),
      ].join("\n"),
    );
    return r.ok ? ExitCode.Ok : ExitCode.Failed;
  },
});

/** `confidant down`. */
export const downCommand = defineCommand({
  path: ["down"],
  summary: "stop what `confidant up` started (its own processes only, by PID)",
  flags: [
    { name: "dir", type: "string", value: "DIR", help: "working directory (default .cache/up)" },
  ],
  schema: z.object({ dir: z.string().min(1).optional() }),
  async run(input, ctx) {
    const n = await down({ dir: input.dir, log: (l) => ctx.err(l) });
    ctx.out(ctx.json ? JSON.stringify({ stopped: n }) : `stopped ${n} process(es)`);
  },
});

/** Commands registered in main.ts. */
export const commands: Command[] = [measureCommand, buildCommand, upCommand, downCommand];
