/**
 * Guest side of guest_lifecycle_test.ts: runs a plan of state-disk steps inside the
 * QEMU guest (real dm-crypt, dm-integrity, mkfs.ext4, mount), so one boot checks many
 * things. The plan is the first argument (JSON); the keys come on stdin (32 bytes
 * each, step `key` n uses bytes [32n, 32n+32)). Disks are named by their virtio
 * serial. One JSON line per step on stdout:
 * `{"i":0,"op":"unlock","ok":true,"ms":1234,...}` or `{"i":0,"op":...,"ok":false,
 * "code":"luks.wrong_key","message":...}`. A failed step does not stop the plan.
 *
 * Steps:
 * - `unlock` {disk, key, cluster, integrity, crashAfter?}: `unlockOrFormat` through
 *   libcryptsetup; a crash leaves the disk as a power cut there would (the mapping
 *   may stay: `close` is the "reboot").
 * - `write` {disk, text} / `read`: mount /dev/mapper/state on /mnt, write or read
 *   /mnt/marker, unmount.
 * - `close` {disk}: deactivate /dev/mapper/state if active.
 * - `status` {disk, cluster, integrity}: `StateDisk.status` (header, token, whitelist).
 * - `scan` {disk}: which MiB of the disk hold a non-zero byte (as ranges).
 * - `bench` {disk, integrity}: `measureFirstBoot` (bench_unlock.ts) on a blank disk.
 *
 * @module
 */
import { z } from "zod";
import { describeError } from "../../lib/errors.ts";
import { Logger, setLogSink } from "../../lib/log.ts";
import { measureFirstBoot } from "../../cryptsetup/bench_unlock.ts";
import { FORMAT_STEPS, KMS_KEY_BYTES, MAPPER_NAME } from "../../cryptsetup/lifecycle.ts";
import { openStateDisk } from "../../cryptsetup/state_disk.ts";
import { FileBlockDevice } from "../../cryptsetup/block_device.ts";
import { HEADER_PROBE_BYTES, probeLuks } from "../../cryptsetup/luks_header.ts";

const Disk = z.string().regex(/^[A-Za-z0-9_.-]{1,20}$/);
const Step = z.discriminatedUnion("op", [
  z.object({
    op: z.literal("unlock"),
    disk: Disk,
    key: z.number().int().min(0),
    cluster: z.string(),
    integrity: z.boolean(),
    crashAfter: z.enum(FORMAT_STEPS).optional(),
  }),
  z.object({ op: z.literal("write"), disk: Disk, text: z.string() }),
  z.object({ op: z.literal("read"), disk: Disk }),
  z.object({ op: z.literal("close"), disk: Disk }),
  z.object({
    op: z.literal("status"),
    disk: Disk,
    cluster: z.string(),
    integrity: z.boolean(),
  }),
  z.object({ op: z.literal("scan"), disk: Disk }),
  z.object({ op: z.literal("bench"), disk: Disk, integrity: z.boolean() }),
]);
/** One step of a guest plan. */
export type GuestStep = z.infer<typeof Step>;

const plan = z.array(Step).parse(JSON.parse(Deno.args[0] ?? "[]"));
const keys = new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer());
const logLines: string[] = [];
setLogSink((l) => logLines.push(l));
const log = new Logger("guest");

async function devOf(serial: string): Promise<string> {
  for await (const d of Deno.readDir("/sys/block")) {
    const s = await Deno.readTextFile(`/sys/block/${d.name}/serial`).catch(() => "");
    if (s.trim() === serial) return `/dev/${d.name}`;
  }
  throw new Error(`no disk with serial ${serial}`);
}

async function sh(cmd: string, args: string[]): Promise<void> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!r.success) {
    const dec = new TextDecoder();
    throw new Error(
      `${cmd} ${args.join(" ")}: exit ${r.code}: ${dec.decode(r.stdout)}${dec.decode(r.stderr)}`,
    );
  }
}

const MAPPED = `/dev/mapper/${MAPPER_NAME}`;
const MARKER = "/mnt/marker";

async function withMount<T>(fn: () => Promise<T>): Promise<T> {
  await Deno.mkdir("/mnt", { recursive: true });
  await sh("mount", ["-t", "ext4", MAPPED, "/mnt"]);
  try {
    return await fn();
  } finally {
    await sh("umount", ["/mnt"]);
  }
}

async function scan(path: string): Promise<{ size: number; nonZeroMiB: [number, number][] }> {
  const dev = await FileBlockDevice.open(path);
  try {
    const size = await dev.size();
    const ranges: [number, number][] = [];
    const MiB = 1 << 20;
    for (let off = 0; off < size; off += MiB) {
      const b = await dev.read(off, Math.min(MiB, size - off));
      if (!b.some((x) => x !== 0)) continue;
      const m = off / MiB;
      const last = ranges.at(-1);
      if (last && last[1] === m) last[1] = m + 1;
      else ranges.push([m, m + 1]);
    }
    return { size, nonZeroMiB: ranges };
  } finally {
    dev.close();
  }
}

async function runStep(s: GuestStep): Promise<Record<string, unknown>> {
  const path = await devOf(s.disk);
  switch (s.op) {
    case "unlock": {
      const key = keys.slice(s.key * KMS_KEY_BYTES, (s.key + 1) * KMS_KEY_BYTES);
      if (key.length !== KMS_KEY_BYTES) throw new Error(`no key ${s.key} on stdin`);
      const disk = await openStateDisk(path, { mapper: true });
      try {
        return {
          ...(await disk.unlockOrFormat({
            cluster: s.cluster,
            integrity: s.integrity,
            getKey: () => Promise.resolve(key),
            crashAfter: s.crashAfter,
            log,
          })),
        };
      } finally {
        disk.backend.device.close();
      }
    }
    case "write":
      await withMount(async () => {
        await Deno.writeTextFile(MARKER, s.text);
        const f = await Deno.open(MARKER, { read: true });
        await f.sync();
        f.close();
      });
      return {};
    case "read":
      return { text: await withMount(() => Deno.readTextFile(MARKER)) };
    case "close": {
      const disk = await openStateDisk(path, { mapper: true });
      await disk.close();
      const active = await Deno.stat(MAPPED).then(() => true, () => false);
      return { active };
    }
    case "status": {
      const disk = await openStateDisk(path, { mapper: true });
      try {
        const st = await disk.status({ cluster: s.cluster, integrity: s.integrity });
        const dev = await FileBlockDevice.open(path);
        const head = await dev.read(0, HEADER_PROBE_BYTES).finally(() => dev.close());
        const p = probeLuks(head);
        return {
          status: st,
          json: p.kind === "luks2" ? JSON.parse(p.header.active.jsonText) : null,
          subsystem: p.kind === "luks2" ? p.header.active.binary.subsystem : null,
        };
      } finally {
        disk.backend.device.close();
      }
    }
    case "scan":
      return await scan(path);
    case "bench":
      return { ...(await measureFirstBoot(path, s.integrity, log)) };
  }
}

let failed = 0;
for (const [i, s] of plan.entries()) {
  const t = performance.now();
  let line: Record<string, unknown>;
  try {
    line = { i, op: s.op, disk: s.disk, ok: true, ...(await runStep(s)) };
  } catch (e) {
    failed++;
    line = { i, op: s.op, disk: s.disk, ok: false, ...describeError(e) };
  }
  line.ms = Math.round(performance.now() - t);
  console.log(JSON.stringify(line));
}
// the library's log lines (no secrets are logged) help when a step fails
for (const l of logLines) console.error(l);
Deno.exit(failed > 0 ? 1 : 0);
