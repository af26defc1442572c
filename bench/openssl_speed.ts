/**
 * Baseline: `openssl speed ecdsap256 ecdsap384` on one core. Its verify/s figures (per user
 * CPU-second, as openssl speed reports) are the machine's raw ECDSA limit that the other
 * ECDSA and KMS figures are divided by.
 *
 * @module
 */
import { baselineRow, type BenchContext, type BenchResult } from "./_frame.ts";

/** Module name. */
export const name = "openssl_speed";
/** Runs first: others divide by its baselines. */
export const order = 0;

/** Baseline ids this module sets. */
export const BASELINE_IDS = {
  "P-256": "openssl.ecdsa.p256.verify",
  "P-384": "openssl.ecdsa.p384.verify",
} as const;

/** sign/s and verify/s per curve size from `openssl speed -mr` output (`+F4:n:bits:sign:verify`). */
export function parseOpensslSpeed(out: string): Map<number, { sign: number; verify: number }> {
  const m = new Map<number, { sign: number; verify: number }>();
  for (const line of out.split("\n")) {
    const f = /^\+F4:\d+:(\d+):([0-9.eE+-]+):([0-9.eE+-]+)\s*$/.exec(line.trim());
    if (!f) continue;
    const sign = Number(f[2]);
    const verify = Number(f[3]);
    if (Number.isFinite(sign) && Number.isFinite(verify)) m.set(Number(f[1]), { sign, verify });
  }
  return m;
}

async function openssl(args: string[]): Promise<string> {
  let out;
  try {
    out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    throw new Error("install openssl (Debian package openssl)", { cause: e });
  }
  if (out.code !== 0) {
    throw new Error(`openssl ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Measure and record the two baselines. */
export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const seconds = ctx.seconds(3, 1);
  const version = (await openssl(["version"])).trim();
  ctx.log(`openssl speed -seconds ${seconds} ecdsap256 ecdsap384 (${version})`);
  const parsed = parseOpensslSpeed(
    await openssl(["speed", "-mr", "-seconds", String(seconds), "ecdsap256", "ecdsap384"]),
  );
  const rows: BenchResult[] = [];
  for (const [curve, bits] of [["P-256", 256], ["P-384", 384]] as const) {
    const r = parsed.get(bits);
    if (!r) throw new Error(`openssl speed printed no ${curve} figures`);
    const b = {
      id: BASELINE_IDS[curve],
      label: `openssl speed ECDSA ${curve} verify`,
      value: r.verify,
      unit: "verify/s",
    };
    ctx.setBaseline(b);
    rows.push(baselineRow(b, { signPerSecond: r.sign, openssl: version, seconds }));
  }
  return rows;
}
