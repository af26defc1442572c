/**
 * The node image: one unified kernel image (UKI) whose measured initrd holds the
 * whole root file system.
 *
 * Root file system: it lives entirely in the initrd, which systemd-stub
 * measures into PCR 11 (and the firmware into PCR 4, as part of the UKI). There
 * is no root disk and so no dm-verity: every byte of user space is covered by the
 * measurement without a hash tree, a verity partition or a root hash to carry on
 * the command line, and nothing on a writable disk is executed. The cost is RAM
 * (the unpacked root, ~150 MiB, mostly the deno runtime) and hashing the initrd
 * at boot. Persistent data lives only on the LUKS2 state disk the agent unlocks.
 *
 * Init: busybox `sh` as PID 1 (the /init below), not systemd: it mounts the API
 * file systems, loads the modules, brings up the network with DHCP, prints the
 * measured PCRs for the boot log, links /dev/disk/by-id/virtio-<serial> and runs
 * `confidant agent run` (config from the measured kernel command line). The
 * agent's systemd unit (agent/systemd/confidant-agent.service) is shipped in
 * the image too, for a systemd-based variant built from the same tree; the
 * busybox init does not use it. Busybox keeps the initrd small (no systemd,
 * udev, dbus closure) and the boot under TCG fast.
 *
 * Everything comes from Debian 12 packages (see NODE_ROOT_SPEC) except the
 * confidant program: the pinned deno binary and a `deno bundle` of main.ts.
 *
 * @module
 */
import { join } from "node:path";
import { sha256, toHex, utf8 } from "../lib/bytes.ts";
import { ConfidantError } from "../lib/errors.ts";
import { writeCpio } from "./cpio.ts";
import { runTool } from "./debian.ts";
import { buildRoot, resolveRoot, type RootSpec } from "./rootfs.ts";
import { buildUki, DEBIAN_STUB } from "./uki.ts";
import { parsePe, sectionData } from "./pe.ts";
import { measureUki } from "./measure.ts";
import { policyPcrs } from "./policy_pcrs.ts";
import { flagsForShell, NODE_RUNTIME_FLAGS } from "../tools/permissions.ts";

/** Debian packages and kernel modules of the node image. */
export const NODE_ROOT_SPEC: RootSpec = {
  packages: [
    "busybox-static",
    "libc6",
    "libgcc-s1",
    "libcryptsetup12",
    "e2fsprogs",
    "kmod",
    "wireguard-tools",
  ],
  kernelMeta: "linux-image-cloud-amd64",
  modules: [
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "dm_mod",
    "dm_crypt",
    "dm_integrity",
    "dm_verity",
    "wireguard",
    "kernel/crypto/",
    "kernel/arch/x86/crypto/",
  ],
};

/** Bump when the layout changes in a way the inputs do not show. */
const NODE_BUILDER_VERSION = "node-image-1";

/** Kernel command line of the node UKI before any extra parameters. */
export const BASE_CMDLINE = "console=ttyS0 panic=-1 quiet";

/** The node's os-release (the UKI's .osrel section and /etc/os-release). */
export const NODE_OS_RELEASE = `ID=confidant
NAME="confidant node"
PRETTY_NAME="confidant node (Debian 12 based)"
ID_LIKE=debian
VERSION_ID=1
`;

/**
 * The node's /init. Recognised kernel parameters (outside the agent's
 * `confidant.` namespace, which the agent parses strictly):
 * - `confidant-init.eventlog=1` prints the firmware event log (base64) on the console;
 * - `confidant-init.halt=1` powers off after printing the measurements (image tests);
 * - `confidant-init.test=1` (end-to-end tests only) turns on the test channel below.
 *
 * Test channel: once the agent logs that the node is unlocked (or ready), init
 * prints the file `test-marker` on the state disk, replaces it with the first bytes (letters, digits, `._-`) of the disk whose serial is `confidant-test`, syncs
 * and powers off; when a step of the agent fails, it powers off too. The data comes
 * from the host and is not measured, so the switch is on the measured command line: an
 * image without `confidant-init.test=1` (every production image) never reads that disk,
 * and its PCR 11 proves it. The channel only writes data; it runs nothing it reads.
 */
export const NODE_INIT = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin HOME=/root DENO_DIR=/run/deno NO_COLOR=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mount -t securityfs securityfs /sys/kernel/security
say() { echo "confidant-node: $*" > /dev/console; }
say "init started"
# end-to-end test channel (confidant-init.test=1 only; see the doc comment of NODE_INIT)
test_channel() {
  while :; do
    grep -qE '"msg":"node (unlocked|ready)"' /run/agent.log 2>/dev/null && break
    if grep -q '"msg":"step failed"' /run/agent.log 2>/dev/null; then
      say "test: agent failed"
      return
    fi
    sleep 1
  done
  m=/var/lib/confidant/test-marker
  if [ -f "$m" ]; then say "test: marker-before $(cat "$m")"; else say "test: marker-before none"; fi
  d=/dev/disk/by-id/virtio-confidant-test
  [ -e "$d" ] || return
  v=$(head -c 64 "$d" | tr -cd 'A-Za-z0-9._-')
  echo "$v" > "$m" && sync && say "test: marker-written $v"
}
hostname -F /etc/hostname
for m in virtio_pci virtio_blk virtio_net dm_mod dm_crypt dm_integrity wireguard; do
  modprobe -q "$m" || say "modprobe $m failed"
done
# stable names for disks, as udev would make them: /dev/disk/by-id/virtio-<serial>
mkdir -p /dev/disk/by-id
for b in /sys/block/vd*; do
  [ -e "$b" ] || continue
  s=$(cat "$b/serial" 2>/dev/null)
  [ -n "$s" ] && ln -sf "../../\${b##*/}" "/dev/disk/by-id/virtio-$s"
done
for i in 4 11 12; do
  say "pcr-sha256 $i $(cat /sys/class/tpm/tpm0/pcr-sha256/$i 2>/dev/null || echo none)"
done
log=/sys/kernel/security/tpm0/binary_bios_measurements
if grep -q 'confidant-init.eventlog=1' /proc/cmdline && [ -r "$log" ]; then
  say "event-log-begin"
  base64 "$log" | sed 's/^/confidant-node: event-log /' > /dev/console
  say "event-log-end"
fi
if grep -q 'confidant-init.halt=1' /proc/cmdline; then
  say "halting (confidant-init.halt=1)"
  poweroff -f
fi
ip link set lo up
for n in /sys/class/net/*; do
  n=\${n##*/}
  [ "$n" = lo ] && continue
  ip link set "$n" up
  udhcpc -i "$n" -s /usr/share/confidant/udhcpc.script -q -n -t 10 -T 2 > /dev/console 2>&1 \\
    && say "network $n up" || say "dhcp on $n failed"
done
say "starting confidant agent"
if grep -q 'confidant-init.test=1' /proc/cmdline; then
  confidant agent run | tee /run/agent.log &
  test_channel
  sync
  say "test: powering off"
  poweroff -f
fi
confidant agent run
say "agent exited with status $?"
sync
poweroff -f
`;

/** busybox udhcpc event script: configure the address, default route and DNS. */
export const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "\${router%% *}" dev "$interface"
    # the DHCP host name names the node (like a cloud's instance name); checked first
    case "$hostname" in ""|*[!a-z0-9-]*) ;; *) hostname "$hostname" ;; esac
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
exit 0
`;

/** The agent's systemd unit in the repository (owned by the agent; shipped as is). */
export const AGENT_UNIT_PATH = "agent/systemd/confidant-agent.service";

/** /usr/bin/confidant: the bundle with the node flags of tools/permissions.ts (see there why). */
const CONFIDANT_WRAPPER = `#!/bin/sh
exec /usr/bin/deno run --quiet --no-prompt --no-config --cached-only ${
  flagsForShell(NODE_RUNTIME_FLAGS)
} /usr/lib/confidant/confidant.js "$@"
`;

/** Options of {@link buildNodeImage}. */
export interface NodeImageOptions {
  /** Repository root (holds main.ts). */
  repoRoot: string;
  /** Cache directory (e.g. `<repo>/.cache/image`). */
  cacheDir: string;
  /** Path of the deno binary to ship (the pinned one). */
  deno: string;
  /** Extra kernel parameters appended to {@link BASE_CMDLINE} (measured). */
  extraCmdline?: string;
  /** systemd-stub to use (default: Debian's). */
  stub?: string;
  /**
   * Build into this directory unconditionally instead of the cache (used to
   * check reproducibility: a fresh build must equal the cached one).
   */
  outDir?: string;
}

/** Paths and identity of a built node image. */
export interface NodeImage {
  /** The UKI (BOOTX64.EFI). */
  uki: string;
  /** The zstd-compressed initrd inside it. */
  initrd: string;
  /** The full kernel command line inside it. */
  cmdline: string;
  /** SHA-256 of the UKI file. */
  sha256: string;
  /** Cache key of the build (hash of every input). */
  key: string;
  /** Whether this call reused a cached build. */
  cached: boolean;
}

async function fileSha256(path: string): Promise<string> {
  return toHex(await sha256(await Deno.readFile(path)));
}

/** Bundle main.ts with `deno bundle` (npm dependencies included; offline). */
async function bundleMain(deno: string, repoRoot: string, out: string): Promise<void> {
  const r = await new Deno.Command(deno, {
    args: ["bundle", "--quiet", "-o", out, join(repoRoot, "main.ts")],
    cwd: repoRoot,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new ConfidantError(
      "image.bundle",
      `deno bundle main.ts failed: ${new TextDecoder().decode(r.stderr)}`,
    );
  }
}

/**
 * Build the node UKI into `cacheDir/node/<key>/` (or reuse it). The key hashes
 * the pinned packages, the deno binary, the bundled program, the stub, the init
 * and the command line, so the same inputs give the same directory — and, the
 * build being deterministic, the same UKI bytes.
 */
export async function buildNodeImage(opts: NodeImageOptions): Promise<NodeImage> {
  const stub = opts.stub ?? DEBIAN_STUB;
  const cmdline = [BASE_CMDLINE, opts.extraCmdline ?? ""].join(" ").trim();
  const resolved = await resolveRoot(NODE_ROOT_SPEC);
  const work = await Deno.makeTempDir({ prefix: "confidant-image-" });
  try {
    const bundle = join(work, "confidant.js");
    await bundleMain(opts.deno, opts.repoRoot, bundle);
    const key = toHex(
      await sha256(utf8(JSON.stringify([
        NODE_BUILDER_VERSION,
        resolved.key,
        await fileSha256(opts.deno),
        await fileSha256(bundle),
        await fileSha256(stub),
        NODE_INIT,
        UDHCPC_SCRIPT,
        await fileSha256(join(opts.repoRoot, AGENT_UNIT_PATH)),
        CONFIDANT_WRAPPER,
        NODE_OS_RELEASE,
        cmdline,
      ]))),
    ).slice(0, 32);
    const dir = opts.outDir ?? join(opts.cacheDir, "node", key);
    const uki = join(dir, "confidant-node.efi");
    const initrd = join(dir, "initrd.cpio.zst");
    if (!opts.outDir) {
      try {
        await Deno.stat(join(dir, "complete"));
        // mark as recently used, so pruning after other builds keeps it
        await Deno.utime(dir, new Date(), new Date()).catch(() => {});
        return { uki, initrd, cmdline, sha256: await fileSha256(uki), key, cached: true };
      } catch { /* build */ }
    }
    await Deno.mkdir(dir, { recursive: true });
    const built = await buildRoot(NODE_ROOT_SPEC, resolved, opts.cacheDir);
    try {
      const plan = built.plan;
      await plan.file("usr/bin/deno", opts.deno, 0o755);
      await plan.file("usr/lib/confidant/confidant.js", bundle, 0o644);
      plan.data("usr/bin/confidant", CONFIDANT_WRAPPER, 0o755);
      plan.data("init", NODE_INIT, 0o755);
      plan.data("usr/share/confidant/udhcpc.script", UDHCPC_SCRIPT, 0o755);
      await plan.file(
        "usr/lib/systemd/system/confidant-agent.service",
        join(opts.repoRoot, AGENT_UNIT_PATH),
        0o644,
      );
      plan.data("usr/lib/os-release", NODE_OS_RELEASE, 0o644);
      plan.symlink("etc/os-release", "../usr/lib/os-release");
      for (const d of ["proc", "sys", "dev", "tmp", "run", "root", "mnt", "etc", "var"]) {
        if (!plan.has(d)) plan.dir(d);
      }
      plan.data("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
      plan.data("etc/group", "root:x:0:\n");
      plan.data("etc/hostname", "confidant-node\n");
      const cpio = join(work, "initrd.cpio");
      const f = await Deno.open(cpio, { write: true, createNew: true });
      try {
        await writeCpio(f, plan.entries(), 0);
      } finally {
        f.close();
      }
      // zstd output depends only on the input, level and single-threaded mode
      await runTool("zstd", [
        "-q",
        "-T1",
        "-9",
        "--no-progress",
        "-f",
        cpio,
        "-o",
        `${initrd}.tmp`,
      ]);
      await Deno.rename(`${initrd}.tmp`, initrd);
      await buildUki(
        { stub, linux: built.vmlinuz, initrd, cmdline, osrel: NODE_OS_RELEASE },
        uki,
        work,
      );
      await Deno.writeTextFile(join(dir, "complete"), "");
      if (!opts.outDir) await pruneBuilds(join(opts.cacheDir, "node"), KEEP_BUILDS);
    } finally {
      await Deno.remove(built.scratch, { recursive: true }).catch(() => {});
    }
    return { uki, initrd, cmdline, sha256: await fileSha256(uki), key, cached: false };
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** Node builds kept in the cache (each ~110 MB); older ones are removed after a new build. */
const KEEP_BUILDS = 6;

/** Remove all but the `keep` most recently modified build directories under `dir`. */
async function pruneBuilds(dir: string, keep: number): Promise<void> {
  const builds: { path: string; mtime: number }[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.isDirectory) continue;
    const st = await Deno.stat(join(dir, e.name)).catch(() => null);
    builds.push({ path: join(dir, e.name), mtime: st?.mtime?.getTime() ?? 0 });
  }
  builds.sort((a, b) => b.mtime - a.mtime);
  for (const b of builds.slice(keep)) {
    await Deno.remove(b.path, { recursive: true }).catch(() => {});
  }
}

/** Repository root: the directory holding main.ts, next to this file's folder or the cwd. */
export async function findRepoRoot(): Promise<string> {
  const candidates: string[] = [];
  if (import.meta.url.startsWith("file:")) {
    candidates.push(new URL("../", import.meta.url).pathname.replace(/\/$/, ""));
  }
  candidates.push(Deno.cwd());
  for (const c of candidates) {
    if (await Deno.stat(join(c, "main.ts")).then(() => true, () => false)) return c;
  }
  throw new ConfidantError(
    "image.repo",
    "run this from the confidant repository (main.ts not found)",
  );
}

/** Result of {@link buildDefaultNodeImage}: the image plus the policy PCRs it needs. */
export interface BuiltNodeImage extends NodeImage {
  pcrs: Record<string, { expected: string[] }>;
}

/**
 * Build the node image of this repository with the running deno into
 * `<repo>/.cache/image` and predict its PCRs (what `deno task image` does).
 */
export async function buildDefaultNodeImage(
  opts: { extraCmdline?: string } = {},
): Promise<BuiltNodeImage> {
  const repoRoot = await findRepoRoot();
  const img = await buildNodeImage({
    repoRoot,
    cacheDir: join(repoRoot, ".cache/image"),
    deno: Deno.execPath(),
    extraCmdline: opts.extraCmdline,
  });
  const m = await measureUki(await Deno.readFile(img.uki));
  return { ...img, pcrs: policyPcrs(m) };
}

/**
 * The same node image with `extraCmdline` appended to its kernel command line,
 * written to `out`: the kernel is taken from the image's `.linux` section and the
 * initrd from the build directory, so only the (measured) command line differs.
 * Used by tests that need a node whose PCR 11 differs from the policy's.
 */
export async function withExtraCmdline(
  image: NodeImage,
  extraCmdline: string,
  out: string,
): Promise<NodeImage> {
  const bytes = await Deno.readFile(image.uki);
  const linux = sectionData(bytes, parsePe(bytes), ".linux");
  if (!linux) throw new ConfidantError("image.uki", `${image.uki} has no .linux section`);
  const work = await Deno.makeTempDir({ prefix: "confidant-uki-" });
  try {
    const kernel = join(work, "vmlinuz");
    await Deno.writeFile(kernel, linux);
    const cmdline = `${image.cmdline} ${extraCmdline}`.trim();
    await buildUki(
      { stub: DEBIAN_STUB, linux: kernel, initrd: image.initrd, cmdline, osrel: NODE_OS_RELEASE },
      out,
      work,
    );
    return { ...image, uki: out, cmdline, sha256: await fileSha256(out), cached: false };
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}
