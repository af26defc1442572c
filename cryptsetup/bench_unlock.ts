/**
 * Benchmark: first-boot format and key check with confidant's keyslot PBKDF
 * (PBKDF2-SHA256, 1000 iterations) against libcryptsetup's default (argon2id,
 * benchmarked to about 2 s). The key check is `crypt_activate_by_passphrase` with a
 * NULL name (it verifies the key without device-mapper), which is the KDF cost every
 * boot pays. Run: `./dev deno run -A cryptsetup/bench_unlock.ts [ROUNDS]`.
 *
 * {@link measureFirstBoot} times the whole first boot (format, activate, integrity
 * wipe, mkfs.ext4, keying) on a real blank block device; it needs device-mapper, so
 * it runs in a guest (tests/cryptsetup/_guest_lifecycle.ts has a `bench` step).
 *
 * @module
 */
import { Logger } from "../lib/log.ts";
import { withCryptDevice } from "./crypt_device.ts";
import { KMS_KEY_BYTES } from "./lifecycle.ts";
import { openStateDisk } from "./state_disk.ts";

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

/** What {@link measureFirstBoot} measured. */
export interface FirstBootTiming {
  integrity: boolean;
  /** Size of the device in bytes. */
  bytes: number;
  /** Wall time of unlockOrFormat (format to keyed, mapped device left closed). */
  ms: number;
  /** `ms` scaled to one GiB of device (the integrity wipe grows with size; the rest barely). */
  msPerGiB: number;
}

/**
 * Time the first boot of the blank block device at `path` (device-mapper required):
 * `unlockOrFormat` with a random key, then deactivate. Formats the device.
 */
export async function measureFirstBoot(
  path: string,
  integrity: boolean,
  log: Logger = new Logger("bench"),
): Promise<FirstBootTiming> {
  const disk = await openStateDisk(path, { mapper: true });
  try {
    const bytes = await disk.backend.device.size();
    const key = crypto.getRandomValues(new Uint8Array(KMS_KEY_BYTES));
    const [ms, r] = await time(() =>
      disk.unlockOrFormat({
        cluster: "bench",
        integrity,
        getKey: () => Promise.resolve(key),
        log,
      })
    );
    if (r.action !== "formatted") throw new Error(`expected a first boot, got ${r.action}`);
    return { integrity, bytes, ms, msPerGiB: ms * (1 << 30) / bytes };
  } finally {
    await disk.close();
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
