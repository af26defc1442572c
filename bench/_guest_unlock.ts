/**
 * Guest side of bench/guest_unlock.ts: runs in the QEMU test guest (tests/_support/qemu.ts
 * `runInGuest`, real device-mapper) and measures, on blank virtio disks named by serial:
 *
 * - `firstboot` {disk, integrity}: cryptsetup's `measureFirstBoot` (the agent's
 *   `unlockOrFormat` on a blank disk: header, keyslot, activate, dm-integrity wipe, mkfs.ext4,
 *   keying), with the time of each first-boot step taken from the library's debug log lines;
 * - `open` {disk, pbkdf, rounds}: format a LUKS2 header with one keyslot (confidant's PBKDF2
 *   or libcryptsetup's benchmarked argon2id default, benchmarked here in the guest, as a node
 *   would), then `rounds` × the real `cryptsetup open` (the CLI, key on stdin) + `cryptsetup
 *   close`, as many activations through libcryptsetup (what the agent calls) and as many key
 *   checks without device-mapper (`crypt_activate_by_passphrase` with no name: the KDF alone).
 *
 * The plan is the first argument (JSON). One JSON line per step on stdout. Keys are random
 * bench keys drawn here; they are never printed.
 *
 * @module
 */
import { z } from "zod";
import { describeError } from "../lib/errors.ts";
import { Logger, setLogLevel, setLogSink } from "../lib/log.ts";
import { measureFirstBoot } from "../cryptsetup/bench_unlock.ts";
import { withCryptDevice } from "../cryptsetup/crypt_device.ts";

const Disk = z.string().regex(/^[A-Za-z0-9_.-]{1,20}$/);
const Step = z.discriminatedUnion("op", [
  z.object({ op: z.literal("firstboot"), disk: Disk, integrity: z.boolean() }),
  z.object({
    op: z.literal("open"),
    disk: Disk,
    pbkdf: z.enum(["pbkdf2", "argon2id-default"]),
    rounds: z.number().int().min(1).max(20),
  }),
]);
/** One step of the guest plan. */
export type GuestBenchStep = z.infer<typeof Step>;

const plan = z.array(Step).max(32).parse(JSON.parse(Deno.args[0] ?? "[]"));

/** Log lines of the library with the monotonic time they were written at. */
let logLines: { t: number; rec: Record<string, unknown> }[] = [];
setLogLevel("debug");
setLogSink((line) => {
  try {
    logLines.push({ t: performance.now(), rec: JSON.parse(line) });
  } catch { /* not JSON: ignore */ }
});
const log = new Logger("bench");

async function devOf(serial: string): Promise<string> {
  for await (const d of Deno.readDir("/sys/block")) {
    const s = await Deno.readTextFile(`/sys/block/${d.name}/serial`).catch(() => "");
    if (s.trim() === serial) return `/dev/${d.name}`;
  }
  throw new Error(`no disk with serial ${serial}`);
}

async function cryptsetup(args: string[], stdin?: Uint8Array): Promise<string> {
  const child = new Deno.Command("cryptsetup", {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const r = await child.output();
  const dec = new TextDecoder();
  if (!r.success) {
    throw new Error(`cryptsetup ${args[0]}: exit ${r.code}: ${dec.decode(r.stderr).trim()}`);
  }
  return dec.decode(r.stdout);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Durations of the first-boot steps from the "state disk step done" debug lines. */
function stepDurations(t0: number): Record<string, number> {
  const out: Record<string, number> = {};
  let prev = t0;
  for (const { t, rec } of logLines) {
    if (rec.msg !== "state disk step done" || typeof rec.step !== "string") continue;
    out[rec.step] = Math.round(t - prev);
    prev = t;
  }
  return out;
}

async function firstBoot(path: string, integrity: boolean): Promise<Record<string, unknown>> {
  logLines = [];
  const t0 = performance.now();
  const r = await measureFirstBoot(path, integrity, log);
  return { ...r, ms: Math.round(r.ms), msPerGiB: Math.round(r.msPerGiB), steps: stepDurations(t0) };
}

async function openBench(
  path: string,
  pbkdf: "pbkdf2" | "argon2id-default",
  rounds: number,
): Promise<Record<string, unknown>> {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const name = "benchopen";
  const tf = performance.now();
  await withCryptDevice(path, async (d) => {
    await d.formatLuks2({
      integrity: false,
      pbkdf: pbkdf === "argon2id-default" ? "library-default" : undefined,
    });
    await d.addKeyslotAfterFormat(key);
  });
  const formatMs = performance.now() - tf;
  const meta = JSON.parse(await cryptsetup(["luksDump", "--dump-json-metadata", path]));
  const kdf = meta?.keyslots?.["0"]?.kdf ?? {};
  const cli: number[] = [];
  const close: number[] = [];
  const lib: number[] = [];
  const check: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      let t = performance.now();
      await cryptsetup(["open", "--type", "luks2", "--key-file=-", path, name], key);
      cli.push(performance.now() - t);
      t = performance.now();
      await cryptsetup(["close", name]);
      close.push(performance.now() - t);
      t = performance.now();
      await withCryptDevice(path, async (d) => {
        await d.load();
        await d.activate(name, key);
      });
      lib.push(performance.now() - t);
      await withCryptDevice(path, (d) => d.deactivate(name));
      t = performance.now();
      await withCryptDevice(path, async (d) => {
        await d.load();
        await d.activate(null, key);
      });
      check.push(performance.now() - t);
    }
  } finally {
    key.fill(0);
    await cryptsetup(["close", name]).catch(() => {});
  }
  return {
    pbkdf,
    kdf: {
      type: kdf.type,
      hash: kdf.hash,
      iterations: kdf.iterations,
      time: kdf.time,
      memoryKiB: kdf.memory,
      cpus: kdf.cpus,
    },
    formatMs: Math.round(formatMs),
    rounds,
    cliOpenMs: Math.round(median(cli)),
    cliOpenAllMs: cli.map(Math.round),
    cliCloseMs: Math.round(median(close)),
    libActivateMs: Math.round(median(lib)),
    libKeyCheckMs: Math.round(median(check)),
  };
}

let failed = 0;
for (const [i, s] of plan.entries()) {
  const t = performance.now();
  let line: Record<string, unknown>;
  try {
    const path = await devOf(s.disk);
    const r = s.op === "firstboot"
      ? await firstBoot(path, s.integrity)
      : await openBench(path, s.pbkdf, s.rounds);
    line = { i, op: s.op, disk: s.disk, ok: true, ...r };
  } catch (e) {
    failed++;
    line = { i, op: s.op, disk: s.disk, ok: false, ...describeError(e) };
  }
  line.stepMs = Math.round(performance.now() - t);
  console.log(JSON.stringify(line));
}
Deno.exit(failed > 0 ? 1 : 0);
