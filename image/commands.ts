/**
 * CLI commands of the image area: `image measure` (PCR prediction for a UKI)
 * and `image build` (the node UKI into the cache).
 *
 * @module
 */
import { z } from "zod";
import { type Command, defineCommand } from "../lib/cli.ts";
import { toHex } from "../lib/bytes.ts";
import { ConfidantError } from "../lib/errors.ts";
import { measureUki } from "./measure.ts";
import { buildDefaultNodeImage } from "./node_image.ts";
import { policyPcrs, ZERO_PCR } from "./policy_pcrs.ts";
import { down, up } from "./up.ts";

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
  summary: "start a local KMS and one QEMU node that attests and unlocks its disk",
  description: `
Builds or reuses the node image, starts \`kms serve\` on 127.0.0.1:PORT with a policy made by
\`image measure\`, provisions an swtpm with an EK certificate, and boots one node under
OVMF with a state disk and user-mode networking (QEMU forwards the guest's 10.0.2.100:8443 to
the KMS port).
Streams the node's console until its agent reports; everything keeps running until
\`confidant down\`. State lives in .cache/up/.`,
  flags: [
    { name: "port", type: "string", value: "PORT", help: "KMS port on 127.0.0.1 (default 18443)" },
    { name: "dir", type: "string", value: "DIR", help: "working directory (default .cache/up)" },
  ],
  schema: z.object({
    port: z.coerce.number().int().min(1024).max(65535).optional(),
    dir: z.string().min(1).optional(),
  }),
  async run(input, ctx) {
    const started = Date.now();
    const st = await up({ port: input.port, dir: input.dir, log: (l) => ctx.err(l) });
    const summary = {
      kms: st.kmsUrl,
      uki: st.uki,
      console: st.consolePath,
      processes: st.processes,
      seconds: Math.round((Date.now() - started) / 1000),
    };
    ctx.out(
      ctx.json ? JSON.stringify(summary) : [
        `up in ${summary.seconds} s: KMS ${st.kmsUrl}, node console ${st.consolePath}`,
        ...st.processes.map((p) => `  ${p.role.padEnd(12)} pid ${p.pid}`),
        "stop with: confidant down",
      ].join("\n"),
    );
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
