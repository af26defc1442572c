/**
 * State-disk unlock on the host: the key check `cryptsetup open` pays at every boot, with
 * confidant's keyslot (PBKDF2-SHA256, 1000 iterations) against libcryptsetup's default
 * (argon2id, benchmarked by the library to about 2 s), through cryptsetup/bench_unlock.ts
 * `benchKdf` (crypt_activate_by_passphrase with no name: the KDF and keyslot decryption
 * without device-mapper, which this host kernel lacks). Also the LUKS2 header format time.
 *
 * The real `cryptsetup open` (device-mapper activation) and first-boot format per GiB with and
 * without integrity run in the QEMU guest (guest_unlock.ts); the agent's per-step timeline is
 * in agent_boot.ts (host) and node_boot.ts (QEMU node).
 *
 * @module
 */
import { benchKdf } from "../cryptsetup/bench_unlock.ts";
import { baselineRow, type BenchContext, type BenchResult, measured } from "./_frame.ts";

/** Module name. */
export const name = "unlock";
/** After the KMS benchmarks. */
export const order = 40;

/** Measure both keyslots. */
export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  ctx.log("argon2id keyslot (library default): format + key checks");
  const argon = await benchKdf("library-default", ctx.quick ? 1 : 3);
  ctx.log("PBKDF2 keyslot (confidant): format + key checks");
  const pbkdf2 = await benchKdf("min-pbkdf2", ctx.quick ? 3 : 7);
  const base = {
    id: "unlock.argon2id.open",
    label: "cryptsetup key check, argon2id keyslot (library default)",
    value: argon.openMs,
    unit: "ms",
  };
  ctx.setBaseline(base);
  return [
    baselineRow(base, { formatMs: Math.round(argon.formatMs), where: "host, no device-mapper" }),
    measured({
      id: "unlock.pbkdf2.open",
      label: "cryptsetup key check, confidant PBKDF2 keyslot",
      value: pbkdf2.openMs,
      unit: "ms",
      baseline: base,
      target: {
        description: "at least 20× faster than argon2id's default (ratio ≤ 0.05)",
        of: "ratio",
        op: "<=",
        value: 0.05,
      },
      details: {
        formatMs: Math.round(pbkdf2.formatMs),
        speedup: Number((argon.openMs / pbkdf2.openMs).toFixed(1)),
        where: "host, no device-mapper",
      },
    }),
  ];
}
