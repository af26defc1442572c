/**
 * Guest side of guest_harness_test.ts: inspects the guest it runs in and prints
 * one JSON report on stdout, a line on stderr, then exits with the code given as
 * its first argument. Run only inside the test guest (it needs /sys, /dev, root).
 *
 * @module
 */
import { z } from "zod";
import { sha256, toHex } from "../../lib/bytes.ts";

const exitCode = z.coerce.number().int().min(0).max(255).parse(Deno.args[0]);

async function sh(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

async function readOr(path: string): Promise<string | null> {
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch {
    return null;
  }
}

const stdin = new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer());
const disks: Record<string, string | null> = {};
for await (const d of Deno.readDir("/sys/block")) {
  if (d.name.startsWith("vd")) disks[d.name] = await readOr(`/sys/block/${d.name}/serial`);
}
// write a marker to the disk with serial "scratch" (read back on the host)
let wroteMarker = false;
for (const [dev, serial] of Object.entries(disks)) {
  if (serial !== "scratch") continue;
  const f = await Deno.open(`/dev/${dev}`, { write: true });
  await f.write(new TextEncoder().encode("confidant-guest-marker"));
  await f.sync();
  f.close();
  wroteMarker = true;
}
const dmcrypt = await sh("modprobe", ["dm_crypt"]);
const cryptoList = (await readOr("/proc/crypto")) ?? "";
const report = {
  args: Deno.args,
  stdinSha256: toHex(await sha256(stdin)),
  kernel: (await readOr("/proc/sys/kernel/osrelease")) ?? "",
  uid: Deno.uid(),
  modprobeDmCrypt: dmcrypt.code,
  mapperControl: await Deno.stat("/dev/mapper/control").then(() => true, () => false),
  dmTargets: (await sh("dmsetup", ["targets"])).out,
  procMisc: (await readOr("/proc/misc")) ?? "",
  hasXts: /name\s*:\s*xts\(aes\)/.test(cryptoList) ||
    (await sh("modprobe", ["xts"])).code === 0,
  disks,
  wroteMarker,
  tpmPcr0: await readOr("/sys/class/tpm/tpm0/pcr-sha256/0"),
  tpmDevice: await Deno.stat("/dev/tpmrm0").then(() => true, () => false),
  cryptsetupLib: await Deno.stat("/usr/lib/x86_64-linux-gnu/libcryptsetup.so.12").then(
    () => true,
    () => false,
  ),
  mkfsExt4: (await sh("mkfs.ext4", ["-V"])).out.split("\n")[0],
};
console.log(JSON.stringify(report));
console.error("probe: stderr line");
Deno.exit(exitCode);
