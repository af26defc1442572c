/**
 * Benchmark: first-boot format and key check with confidant's keyslot PBKDF
 * (PBKDF2-SHA256, 1000 iterations) against libcryptsetup's default (argon2id,
 * benchmarked to about 2 s). The key check is `crypt_activate_by_passphrase` with a
 * NULL name (it verifies the key without device-mapper), which is the KDF cost every
 * boot pays. Run: `./dev deno run -A cryptsetup/bench_unlock.ts [ROUNDS]`.
 *
 * @module
 */
import { withCryptDevice } from "./crypt_device.ts";

async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const v = await fn();
  return [performance.now() - t, v];
}

/** Median of `xs`. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Format + keyslot, then `rounds` key checks; times in ms. */
export async function benchKdf(
  pbkdf: "min-pbkdf2" | "library-default",
  rounds: number,
): Promise<{ formatMs: number; openMs: number }> {
  const dir = await Deno.makeTempDir({ prefix: "confidant-bench-" });
  const path = `${dir}/disk.img`;
  try {
    const f = await Deno.open(path, { create: true, write: true });
    await f.truncate(64 * 1024 * 1024);
    f.close();
    const key = crypto.getRandomValues(new Uint8Array(32));
    const [formatMs] = await time(() =>
      withCryptDevice(path, async (d) => {
        await d.formatLuks2({
          integrity: false,
          pbkdf: pbkdf === "library-default" ? "library-default" : undefined,
        });
        await d.addKeyslotAfterFormat(key);
      })
    );
    const opens: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const [ms] = await time(() =>
        withCryptDevice(path, async (d) => {
          await d.load();
          await d.activate(null, key);
        })
      );
      opens.push(ms);
    }
    return { formatMs, openMs: median(opens) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const rounds = Number(Deno.args[0] ?? 5);
  for (const k of ["min-pbkdf2", "library-default"] as const) {
    const r = await benchKdf(k, k === "min-pbkdf2" ? rounds : Math.min(rounds, 3));
    console.log(
      JSON.stringify({
        pbkdf: k,
        formatMs: Math.round(r.formatMs),
        openMsMedian: Math.round(r.openMs),
      }),
    );
  }
}
