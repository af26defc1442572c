/**
 * Guest entry for in-VM tests of the state-disk lifecycle (needs device-mapper, so it
 * runs inside the QEMU guest, not on the host):
 *
 *   deno run -A cryptsetup/guest_entry.ts DEVICE --cluster ID --key-file PATH|- \
 *     [--integrity] [--crash-after STEP] [--status]
 *
 * The KMS key (32 raw bytes) comes from `--key-file` (`-`: stdin; a file descriptor
 * works as `/proc/self/fd/N`), never from argv. It prints one JSON line:
 * `{"ok":true,"action":"formatted"|"opened","uuid":...,"mapper":...}` or
 * `{"ok":false,"code":...,"message":...}` and exits 0 or 1. `--crash-after STEP`
 * stops the first-boot sequence right after STEP (one of FORMAT_STEPS), leaving the
 * disk as a power cut there would (the mapping stays; reboot or `dmsetup remove`).
 *
 * @module
 */
import { z } from "zod";
import { defineCommand } from "../lib/cli.ts";
import { describeError } from "../lib/errors.ts";
import { runCli } from "../lib/run_cli.ts";
import { readKeyFile } from "./key_file.ts";
import { FORMAT_STEPS } from "./lifecycle.ts";
import { openStateDisk } from "./state_disk.ts";
import { ClusterId } from "./token.ts";

/** The single command of the guest entry. */
export const guestCommand = defineCommand({
  path: ["guest-disk"],
  summary: "unlock or format the state disk (in-guest test entry)",
  flags: [
    { name: "cluster", type: "string", value: "ID", help: "cluster id" },
    { name: "key-file", type: "string", value: "PATH", help: "KMS key file, - for stdin" },
    { name: "integrity", type: "boolean", help: "dm-integrity hmac(sha256)" },
    { name: "crash-after", type: "string", value: "STEP", help: "simulate a power cut after STEP" },
    { name: "status", type: "boolean", help: "print the disk status instead" },
  ],
  positionals: [{ name: "device", help: "the state disk" }],
  schema: z.object({
    device: z.string(),
    cluster: ClusterId,
    "key-file": z.string(),
    integrity: z.boolean().optional(),
    "crash-after": z.enum(FORMAT_STEPS).optional(),
    status: z.boolean().optional(),
  }),
  async run(input, ctx) {
    const cfg = { cluster: input.cluster, integrity: !!input.integrity };
    const disk = await openStateDisk(input.device, { mapper: true });
    try {
      if (input.status) {
        ctx.out(JSON.stringify({ ok: true, status: await disk.status(cfg) }));
        return 0;
      }
      const r = await disk.unlockOrFormat({
        ...cfg,
        getKey: () => readKeyFile(input["key-file"]),
        crashAfter: input["crash-after"],
      });
      ctx.out(JSON.stringify({ ok: true, ...r }));
      return 0;
    } catch (e) {
      ctx.out(JSON.stringify({ ok: false, ...describeError(e) }));
      return 1;
    } finally {
      disk.backend.device.close();
    }
  },
});

if (import.meta.main) {
  Deno.exitCode = await runCli([guestCommand], ["guest-disk", ...Deno.args]);
}
