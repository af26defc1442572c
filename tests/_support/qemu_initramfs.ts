/**
 * The base initramfs of the test guest ({@link runInGuest} in qemu.ts): busybox
 * init script, the pinned deno, libcryptsetup and its libraries, e2fsprogs,
 * cryptsetup, tpm2-tools-free TPM access through /dev/tpm*, and the kernel
 * modules for virtio, fw_cfg and device-mapper — all from Debian packages
 * except deno. Built once into `.cache/image/guest/<key>/` where the key hashes
 * every input (package versions, deno binary, init script, this builder's
 * version); a changed input gives a new directory.
 *
 * @module
 */
import { join } from "node:path";
import { sha256, toHex, utf8 } from "../../lib/bytes.ts";
import { writeCpio } from "../../image/cpio.ts";
import { buildRoot, resolveRoot, type RootSpec } from "../../image/rootfs.ts";

/** Bump when the layout below changes in a way the inputs do not show. */
const BUILDER_VERSION = "guest-initramfs-1";

/** Repository root (this file is tests/_support/qemu_initramfs.ts). */
export const REPO_ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** Packages and modules of the test guest. */
export const GUEST_ROOT_SPEC: RootSpec = {
  packages: [
    "busybox-static",
    "libc6",
    "libgcc-s1",
    "libcryptsetup12",
    "cryptsetup-bin",
    "e2fsprogs",
    "kmod",
  ],
  kernelMeta: "linux-image-cloud-amd64",
  modules: [
    "virtio_pci",
    "virtio_blk",
    "virtio_console",
    "virtio_net",
    "qemu_fw_cfg",
    "dm_mod",
    "dm_crypt",
    "dm_integrity",
    "dm_verity",
    "wireguard",
    "kernel/crypto/",
    "kernel/arch/x86/crypto/",
  ],
};

/**
 * The guest's /init. Protocol with the harness:
 * - fw_cfg `opt/confidant/script`: the bundled JS to run with `deno run -A`;
 *   `opt/confidant/args`: its arguments, already quoted for `sh`;
 *   `opt/confidant/stdin` (optional): bytes fed to its stdin.
 * - the script's stdout and stderr go to the virtio-serial ports named
 *   `confidant.stdout` and `confidant.stderr`;
 * - the console (ttyS0) ends with `CONFIDANT-GUEST-EXIT <code>` and the guest
 *   powers off.
 */
export const GUEST_INIT = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin HOME=/root DENO_DIR=/tmp/deno NO_COLOR=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
say() { echo "confidant-guest: $*" > /dev/console; }
finish() { sync; say "CONFIDANT-GUEST-EXIT $1"; poweroff -f; sleep 10; }
for m in virtio_pci virtio_blk virtio_console virtio_net qemu_fw_cfg dm_mod dm_crypt dm_integrity; do
  modprobe "$m" || say "modprobe $m failed"
done
mdev -s 2>/dev/null
job=/sys/firmware/qemu_fw_cfg/by_name/opt/confidant
[ -r "$job/script/raw" ] || { say "no job in fw_cfg"; finish 125; }
mkdir -p /job /root
cat "$job/script/raw" > /job/script.js
cat "$job/args/raw" > /job/args 2>/dev/null || : > /job/args
if [ -r "$job/stdin/raw" ]; then cat "$job/stdin/raw" > /job/stdin; else : > /job/stdin; fi
chmod 600 /job/stdin
port() {
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = "$1" ] && { echo "/dev/\${p##*/}"; return; }
  done
  echo /dev/console
}
out=$(port confidant.stdout)
err=$(port confidant.stderr)
say "running job"
eval "set -- $(cat /job/args)"
cd /root
deno run --allow-all --no-prompt /job/script.js "$@" < /job/stdin > "$out" 2> "$err"
code=$?
rm -f /job/stdin
finish "$code"
`;

/** Paths of a built guest: kernel and uncompressed initramfs. */
export interface GuestImage {
  vmlinuz: string;
  initrd: string;
  /** Kernel release of the guest. */
  kver: string;
}

/** Path of the pinned deno that runs this process (it is also the guest's deno). */
export function denoBinary(): string {
  return Deno.execPath();
}

/**
 * Build (or reuse from `.cache/image/guest/`) the base guest kernel and initramfs.
 * Concurrent callers may both build; each writes its own temp file and renames it,
 * so the result is complete either way.
 */
export async function ensureGuestImage(): Promise<GuestImage> {
  const cacheDir = join(REPO_ROOT, ".cache/image");
  const resolved = await resolveRoot(GUEST_ROOT_SPEC);
  const deno = denoBinary();
  const denoHash = toHex(await sha256(await Deno.readFile(deno)));
  const key = toHex(
    await sha256(utf8(JSON.stringify([BUILDER_VERSION, resolved.key, denoHash, GUEST_INIT]))),
  ).slice(0, 32);
  const dir = join(cacheDir, "guest", key);
  const out: GuestImage = {
    vmlinuz: join(dir, "vmlinuz"),
    initrd: join(dir, "initrd.cpio"),
    kver: resolved.kver,
  };
  const isDone = () => Deno.stat(join(dir, "complete")).then(() => true, () => false);
  if (await isDone()) return out;
  await Deno.mkdir(dir, { recursive: true });
  const release = await lock(join(dir, "lock"));
  try {
    if (!(await isDone())) await build(dir, out, resolved, deno);
  } finally {
    await release();
  }
  return out;
}

/** Exclusive lock between processes: a file created with createNew; stale after 15 minutes. */
async function lock(path: string): Promise<() => Promise<void>> {
  for (;;) {
    try {
      (await Deno.open(path, { write: true, createNew: true })).close();
      return () => Deno.remove(path).catch(() => {});
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      const st = await Deno.stat(path).catch(() => null);
      if (st?.mtime && Date.now() - st.mtime.getTime() > 15 * 60_000) {
        await Deno.remove(path).catch(() => {});
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function build(
  dir: string,
  out: GuestImage,
  resolved: Awaited<ReturnType<typeof resolveRoot>>,
  deno: string,
): Promise<void> {
  const cacheDir = join(REPO_ROOT, ".cache/image");
  const built = await buildRoot(GUEST_ROOT_SPEC, resolved, cacheDir);
  const plan = built.plan;
  await plan.file("usr/bin/deno", deno, 0o755);
  plan.data("init", GUEST_INIT, 0o755);
  for (const d of ["proc", "sys", "dev", "tmp", "run", "root", "mnt", "etc"]) plan.dir(d);
  plan.data("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
  plan.data("etc/group", "root:x:0:\n");
  const tmp = `${out.initrd}.${crypto.randomUUID()}.tmp`;
  const f = await Deno.open(tmp, { write: true, createNew: true });
  try {
    await writeCpio(f, plan.entries(), 0);
  } finally {
    f.close();
    await Deno.remove(built.scratch, { recursive: true }).catch(() => {});
  }
  await Deno.rename(tmp, out.initrd);
  const ktmp = `${out.vmlinuz}.${crypto.randomUUID()}.tmp`;
  await Deno.copyFile(built.vmlinuz, ktmp);
  await Deno.rename(ktmp, out.vmlinuz);
  await Deno.writeTextFile(join(dir, "complete"), "");
}
