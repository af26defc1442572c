/**
 * CLI commands of the cryptsetup area: `confidant disk status|format|open|close|rekey|reset`.
 * Keys come from `--key-file PATH` (`-` = stdin), never from argv.
 *
 * @module
 */
import { z } from "zod";
import { type Command, defineCommand } from "../lib/cli.ts";
import { ConfidantError, ExitCode, UsageError } from "../lib/errors.ts";
import { Logger } from "../lib/log.ts";
import { readKeyFile } from "./key_file.ts";
import { MAPPER_NAME } from "./lifecycle.ts";
import { type DiskStatus, type LuksStateDisk, openStateDisk } from "./state_disk.ts";
import { ClusterId } from "./token.ts";

const log = new Logger("disk");

const deviceArg = [{ name: "device", help: "block device or image file" }];
const clusterFlag = {
  name: "cluster",
  type: "string" as const,
  value: "ID",
  help: "cluster the disk belongs to",
};
const integrityFlag = {
  name: "integrity",
  type: "boolean" as const,
  help: "the disk uses dm-integrity hmac(sha256)",
};
const noMapperFlag = {
  name: "no-mapper",
  type: "boolean" as const,
  help: "host without device-mapper: only check keys, skip activation, wipe and mkfs",
};
const keyFileFlag = {
  name: "key-file",
  type: "string" as const,
  value: "PATH",
  help: "file holding the 32-byte KMS key, - for stdin",
};

async function withDisk<T>(
  device: string,
  noMapper: boolean | undefined,
  fn: (d: LuksStateDisk) => Promise<T>,
): Promise<T> {
  const d = await openStateDisk(device, { mapper: !noMapper });
  try {
    return await fn(d);
  } finally {
    d.backend.device.close();
  }
}

function printJson(ctx: { out(t: string): void }, v: unknown): void {
  ctx.out(JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x), 2));
}

function summary(s: DiskStatus): string {
  if (s.luks === "none") {
    return s.blank ? "blank" : `not LUKS, not blank: ${s.blankReasons.join("; ")}`;
  }
  if (s.luks !== "luks2") return s.luks;
  return `LUKS2 ${s.uuid} token=${
    s.token ? `${s.token.state}/${s.token.cluster}` : s.tokenError ?? "none"
  } ` +
    `whitelist=${s.whitelist?.ok ? "ok" : "FAILED"}`;
}

const status = defineCommand({
  path: ["disk", "status"],
  summary: "show what is on a state disk (JSON): LUKS or not, UUID, token, whitelist",
  flags: [
    { ...clusterFlag, help: "also show what the agent would do for this cluster" },
    integrityFlag,
  ],
  positionals: deviceArg,
  schema: z.object({
    device: z.string(),
    cluster: ClusterId.optional(),
    integrity: z.boolean().optional(),
  }),
  async run(input, ctx) {
    const s = await withDisk(
      input.device,
      true,
      (d) =>
        d.status(
          input.cluster ? { cluster: input.cluster, integrity: !!input.integrity } : undefined,
        ),
    );
    printJson(ctx, s);
  },
});

/** Input of the commands that take a disk, its cluster and a KMS key (`format`, `open`). */
const keyedDiskInput = z.object({
  device: z.string(),
  cluster: ClusterId,
  "key-file": z.string(),
  integrity: z.boolean().optional(),
  "no-mapper": z.boolean().optional(),
});

const format = defineCommand({
  path: ["disk", "format"],
  summary: "first-boot format of a blank disk, keyed with the given KMS key",
  description: `Runs the first-boot sequence (LUKS2, token fresh, activate, mkfs.ext4, key change,
token keyed). Refuses (exit 1, no byte changed) unless the disk is blank: no LUKS header, no
known signature, first and last MiB and 64 evenly spaced 4 KiB samples all zero (a sampling
check, not a full read).`,
  flags: [clusterFlag, keyFileFlag, integrityFlag, noMapperFlag],
  positionals: deviceArg,
  schema: keyedDiskInput,
  async run(input, ctx) {
    return await withDisk(input.device, input["no-mapper"], async (d) => {
      const cfg = { cluster: input.cluster, integrity: !!input.integrity };
      const s = await d.status(cfg);
      if (!(s.luks === "none" && s.blank)) {
        throw new ConfidantError(
          "disk.not_blank",
          `refusing to format ${input.device}: it is not blank (${summary(s)}); ` +
            "use `confidant disk reset --yes-destroy-data` to destroy it deliberately",
        );
      }
      const key = await readKeyFile(input["key-file"]);
      const r = await d.unlockOrFormat({ ...cfg, getKey: () => Promise.resolve(key), log });
      if (ctx.json) printJson(ctx, r);
      else {ctx.out(
          `formatted ${input.device}: LUKS2 ${r.uuid}${r.mapper ? `, open as ${r.mapper}` : ""}`,
        );}
    });
  },
});

const open = defineCommand({
  path: ["disk", "open"],
  summary: "open a keyed state disk as /dev/mapper/state (never formats)",
  flags: [clusterFlag, keyFileFlag, integrityFlag, noMapperFlag],
  positionals: deviceArg,
  schema: keyedDiskInput,
  async run(input, ctx) {
    return await withDisk(input.device, input["no-mapper"], async (d) => {
      const cfg = { cluster: input.cluster, integrity: !!input.integrity };
      const s = await d.status(cfg);
      if (s.decision?.action === "refuse") {
        throw new ConfidantError(s.decision.code, s.decision.message);
      }
      if (s.decision?.action !== "open") {
        throw new ConfidantError(
          "disk.not_keyed",
          `${input.device} is not a keyed state disk (${summary(s)})`,
        );
      }
      const key = await readKeyFile(input["key-file"]);
      const r = await d.unlockOrFormat({ ...cfg, getKey: () => Promise.resolve(key), log });
      if (ctx.json) printJson(ctx, r);
      else {ctx.out(
          r.mapper ? `opened ${input.device} as ${r.mapper}` : `the key opens ${input.device}`,
        );}
    });
  },
});

const close = defineCommand({
  path: ["disk", "close"],
  summary: "deactivate /dev/mapper/state",
  flags: [],
  positionals: deviceArg,
  schema: z.object({ device: z.string() }),
  async run(input, ctx) {
    const d = await openStateDisk(input.device, { mapper: true });
    await d.close();
    ctx.out(`closed /dev/mapper/${MAPPER_NAME}`);
  },
});

const rekey = defineCommand({
  path: ["disk", "rekey"],
  summary: "replace the KMS key of a keyed state disk",
  flags: [
    clusterFlag,
    { ...keyFileFlag, help: "file holding the current key, - for stdin" },
    { ...keyFileFlag, name: "new-key-file", help: "file holding the new key, - for stdin" },
    integrityFlag,
  ],
  positionals: deviceArg,
  schema: z.object({
    device: z.string(),
    cluster: ClusterId,
    "key-file": z.string(),
    "new-key-file": z.string(),
    integrity: z.boolean().optional(),
  }),
  async run(input, ctx) {
    if (input["key-file"] === "-" && input["new-key-file"] === "-") {
      throw new UsageError("only one of --key-file and --new-key-file can be stdin");
    }
    const oldKey = await readKeyFile(input["key-file"]);
    const newKey = await readKeyFile(input["new-key-file"]);
    try {
      await withDisk(
        input.device,
        true,
        (d) => d.rekey({ cluster: input.cluster, integrity: !!input.integrity }, oldKey, newKey),
      );
    } finally {
      oldKey.fill(0);
      newKey.fill(0);
    }
    ctx.out(`rekeyed ${input.device}`);
  },
});

const reset = defineCommand({
  path: ["disk", "reset"],
  summary: "DESTROY a state disk: wipe its LUKS header and leave a fresh one for a cluster",
  description: `Zeroes the LUKS2 metadata area (all keyslots: the data can no longer be decrypted)
and writes a fresh header for --cluster, so the next boot formats the disk.`,
  flags: [
    { name: "yes-destroy-data", type: "boolean", help: "required: confirms that all data is lost" },
    clusterFlag,
    integrityFlag,
  ],
  positionals: deviceArg,
  schema: z.object({
    device: z.string(),
    cluster: ClusterId,
    "yes-destroy-data": z.boolean().optional(),
    integrity: z.boolean().optional(),
  }),
  async run(input, ctx) {
    if (!input["yes-destroy-data"]) {
      throw new UsageError("disk reset destroys all data on the disk; add --yes-destroy-data");
    }
    const uuid = await withDisk(
      input.device,
      false,
      (d) => d.reset({ cluster: input.cluster, integrity: !!input.integrity }),
    );
    ctx.out(`reset ${input.device}: fresh LUKS2 header ${uuid} for cluster ${input.cluster}`);
    return ExitCode.Ok;
  },
});

/** Commands registered in main.ts. */
export const commands: Command[] = [status, format, open, close, rekey, reset] as Command[];
