/**
 * State disk in a real kernel: one boot of the QEMU test guest (tests/_support/qemu.ts
 * `runInGuest`, device-mapper, dm-crypt, dm-integrity) running bench/_guest_unlock.ts on
 * blank virtio disks (sparse files on the host):
 *
 * - first boot (`measureFirstBoot`: the agent's `unlockOrFormat` from blank to keyed,
 *   including the dm-integrity wipe and mkfs.ext4) on two sizes, with and without integrity;
 *   the slope between the sizes is the per-GiB cost, the intercept the fixed cost;
 * - the real `cryptsetup open` (CLI, device-mapper activation) of a disk with confidant's
 *   PBKDF2 keyslot against one with libcryptsetup's argon2id default, benchmarked by the
 *   library inside the guest at format time as it would be on a node.
 *
 * **TCG software emulation**: this machine has no usable KVM, so the guest's CPU is emulated;
 * real hardware is much faster (ratios between the two keyslots hold better than absolute
 * times, since argon2id's cost is calibrated to the emulated CPU at format time). `--quick`
 * skips the guest.
 *
 * @module
 */
import { join } from "node:path";
import { runInGuest } from "../tests/_support/qemu.ts";
import { type BenchContext, type BenchResult, measured } from "./_frame.ts";

/** Module name. */
export const name = "guest_unlock";
/** After the host unlock bench. */
export const order = 45;

/** Label of every figure measured in the guest. */
export const TCG_CAVEAT = "TCG software emulation: real hardware is much faster";

const MiB = 1 << 20;
const GiB = 1 << 30;

/** One first-boot measurement from the guest. */
export interface FirstBootLine {
  integrity: boolean;
  bytes: number;
  ms: number;
  steps?: Record<string, number>;
}

/** Per-GiB slope and fixed intercept of first-boot time over device size (least squares). */
export function fitPerGiB(points: { bytes: number; ms: number }[]): {
  msPerGiB: number;
  fixedMs: number;
} {
  if (points.length < 2) throw new Error("fitPerGiB needs at least two sizes");
  const xs = points.map((p) => p.bytes / GiB);
  const ys = points.map((p) => p.ms);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  if (sxx === 0) throw new Error("fitPerGiB needs two different sizes");
  const slope = sxy / sxx;
  return { msPerGiB: slope, fixedMs: my - slope * mx };
}

/** "a 12, b 340" from a step → ms map. */
export function stepsText(steps: Record<string, number> | undefined): string {
  if (!steps) return "";
  return Object.entries(steps).map(([k, v]) => `${k} ${v}`).join(", ");
}

async function blank(path: string, bytes: number): Promise<void> {
  const f = await Deno.open(path, { create: true, write: true });
  try {
    await f.truncate(bytes);
  } finally {
    f.close();
  }
}

/** Boot the guest once and measure (skipped under `--quick`). */
export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  if (ctx.quick) {
    ctx.log("guest_unlock: skipped under --quick (it boots a QEMU guest)");
    return [];
  }
  return await measureInGuest(ctx, [128, 384]);
}

/** Boot the guest once: first boot on disks of `sizesMiB` (at least two), both keyslots. */
export async function measureInGuest(
  ctx: BenchContext,
  sizesMiB: number[],
): Promise<BenchResult[]> {
  const sizes = sizesMiB.map((m) => m * MiB);
  const dir = await Deno.makeTempDir({ prefix: "confidant-bench-guest-" });
  try {
    // a first boot on a small disk first, not reported: the first libcryptsetup and
    // device-mapper calls of the boot pay one-off costs (library load, JIT, module init)
    const warm = join(dir, "warm.img");
    await blank(warm, 32 * MiB);
    const disks: { path: string; serial: string }[] = [{ path: warm, serial: "warm" }];
    const plan: Record<string, unknown>[] = [{ op: "firstboot", disk: "warm", integrity: true }];
    for (const integrity of [false, true]) {
      for (const size of sizes) {
        const serial = `fb${integrity ? "i" : "p"}${size / MiB}`;
        const path = join(dir, `${serial}.img`);
        await blank(path, size);
        disks.push({ path, serial });
        plan.push({ op: "firstboot", disk: serial, integrity });
      }
    }
    for (const [serial, pbkdf, rounds] of [["opp", "pbkdf2", 5], ["opa", "argon2id-default", 2]]) {
      const path = join(dir, `${serial}.img`);
      await blank(path, 64 * MiB);
      disks.push({ path, serial: serial as string });
      plan.push({ op: "open", disk: serial, pbkdf, rounds });
    }
    ctx.log(`booting the test guest (TCG) for ${plan.length} steps on ${disks.length} disks`);
    const r = await runInGuest({
      script: "bench/_guest_unlock.ts",
      args: [JSON.stringify(plan)],
      disks,
      memoryMiB: 2048,
      timeoutMs: 420_000,
    });
    // deno-lint-ignore no-explicit-any
    const lines: any[] = r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) =>
      JSON.parse(l)
    );
    const bad = lines.filter((l) => !l.ok);
    if (r.exitCode !== 0 || lines.length !== plan.length) {
      throw new Error(
        `guest exit ${r.exitCode}, ${lines.length}/${plan.length} steps: ` +
          bad.map((l) => `${l.op} ${l.disk}: ${l.code} ${l.message}`).join("; ") +
          `\n${r.stderr.slice(-1500)}`,
      );
    }
    const where = `QEMU guest, ${TCG_CAVEAT}; boot ${Math.round(r.elapsedMs / 1000)} s in all`;
    const results: BenchResult[] = [];
    for (const integrity of [false, true]) {
      const pts: FirstBootLine[] = lines.filter((l) =>
        l.op === "firstboot" && l.disk !== "warm" && l.integrity === integrity
      );
      const fit = fitPerGiB(pts);
      const details: Record<string, number | string> = {
        fixedMs: Math.round(fit.fixedMs),
        rawFitMsPerGiB: Math.round(fit.msPerGiB),
        where,
      };
      for (const p of pts) {
        details[`ms@${p.bytes / MiB}MiB`] = p.ms;
        details[`steps@${p.bytes / MiB}MiB`] = stepsText(p.steps);
      }
      results.push(measured({
        id: `firstboot.${integrity ? "integrity" : "plain"}.per_gib`,
        label: `first-boot format per GiB, ${
          integrity ? "with dm-integrity (hmac-sha256)" : "without integrity"
        } (guest, TCG)`,
        // A slope below the noise (the fixed cost dominates, no wipe) reads as 0, with the
        // raw fit kept in the details.
        value: Math.max(0, Math.round(fit.msPerGiB)),
        unit: "ms/GiB",
        baseline: null,
        details,
      }));
    }
    const op = (p: string) => lines.find((l) => l.op === "open" && l.pbkdf === p);
    const a = op("argon2id-default");
    const p = op("pbkdf2");
    const kdfText = (l: { kdf: Record<string, unknown> }) =>
      Object.entries(l.kdf).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`)
        .join(" ");
    const base = {
      id: "unlock.guest.argon2id.open",
      label: "cryptsetup open, argon2id default keyslot (guest, TCG)",
      value: a.cliOpenMs,
      unit: "ms",
    };
    results.push({
      id: base.id,
      label: base.label,
      role: "baseline",
      value: base.value,
      unit: base.unit,
      baseline: null,
      ratio: 1,
      target: null,
      pass: null,
      details: {
        kdf: kdfText(a),
        libActivateMs: a.libActivateMs,
        libKeyCheckMs: a.libKeyCheckMs,
        closeMs: a.cliCloseMs,
        formatMs: a.formatMs,
        samples: a.cliOpenAllMs.join(" "),
        where,
      },
    });
    results.push(measured({
      id: "unlock.guest.pbkdf2.open",
      label: "cryptsetup open, confidant PBKDF2 keyslot (guest, TCG)",
      value: p.cliOpenMs,
      unit: "ms",
      baseline: base,
      target: {
        description: "at least 20× faster than argon2id's default (ratio ≤ 0.05)",
        of: "ratio",
        op: "<=",
        value: 0.05,
      },
      details: {
        kdf: kdfText(p),
        speedup: Number((a.cliOpenMs / p.cliOpenMs).toFixed(1)),
        libActivateMs: p.libActivateMs,
        libSpeedup: Number((a.libActivateMs / p.libActivateMs).toFixed(1)),
        libKeyCheckMs: p.libKeyCheckMs,
        keyCheckSpeedup: Number((a.libKeyCheckMs / Math.max(1, p.libKeyCheckMs)).toFixed(1)),
        closeMs: p.cliCloseMs,
        formatMs: p.formatMs,
        samples: p.cliOpenAllMs.join(" "),
        where,
      },
    }));
    return results;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
