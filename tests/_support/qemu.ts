/**
 * Run a deno program inside a real Linux guest (QEMU, TCG) — for code that
 * needs what the host lacks: device-mapper (dm-crypt, dm-integrity), block
 * devices, a kernel TPM driver.
 *
 * How it works:
 * - The guest is a Debian 12 cloud kernel booted directly (no firmware, ~15 s
 *   under TCG) with an initramfs built once from Debian packages plus the
 *   pinned deno (see qemu_initramfs.ts; cached in `.cache/image/guest/`).
 * - `script` (a repo file, e.g. `cryptsetup/guest_entry.ts`) is bundled on the
 *   host with `deno bundle` (npm imports included, so nothing is fetched in the
 *   guest; cached in `.cache/image/bundles/` by a hash of the repo's sources)
 *   and handed to the guest through QEMU fw_cfg together with `args` and
 *   `stdin`. Nothing secret is on the kernel or QEMU command line: `stdin`
 *   travels as an fw_cfg file that lives in a 0700 temp dir only while QEMU
 *   starts and is deleted as soon as the run ends.
 * - The guest runs `deno run --allow-all script.js ...args < stdin` as root
 *   with /dev, /proc, /sys, securityfs, tmpfs /tmp and the modules virtio_blk,
 *   dm_crypt, dm_integrity (dm_verity, wireguard can be modprobe'd). stdout and
 *   stderr come back on two virtio-serial ports (binary-safe, not mixed with
 *   kernel messages); the exit code comes back on the serial console, after
 *   which the guest syncs and powers off.
 * - Disks are raw image files attached as virtio-blk, /dev/vda, /dev/vdb, ... in
 *   the order given; find them by serial at /sys/block/vd/serial.
 * - With `tpm`, an swtpm runs for the duration of the boot on the given state
 *   directory (keep the directory to "reboot" with the same TPM); the guest
 *   sees it as /dev/tpm0 and /dev/tpmrm0 (tpm-crb).
 *
 * At most `CONFIDANT_GUEST_SLOTS` (default 2) guests run at once on the machine,
 * across test processes (qemu_slots.ts); waiting for a slot does not count
 * against `timeoutMs`.
 *
 * Limits: the bundled script cannot read repo files relative to
 * `import.meta.url` (pass data through `stdin` or a disk instead). The guest
 * has no network unless `network: true` (user-mode, host loopback is 10.0.2.2).
 *
 * @example
 * ```ts
 * const r = await runInGuest({ script: "cryptsetup/guest_entry.ts", args: ["format", "/dev/vda"],
 *   disks: [{ path: diskFile, serial: "state" }], stdin: key });
 * assert.equal(r.exitCode, 0, r.console);
 * ```
 *
 * @module
 */
import { isAbsolute, join, relative } from "node:path";
import { sha256, toHex, utf8 } from "../../lib/bytes.ts";
import { ConfidantError } from "../../lib/errors.ts";
import { startSwtpmUnixSocket } from "../../image/swtpm.ts";
import { ensureGuestImage, type GuestImage, REPO_ROOT } from "./qemu_initramfs.ts";
import { acquireGuestSlot } from "./qemu_slots.ts";

/** A raw disk image attached to the guest as a virtio-blk device. */
export interface GuestDisk {
  /** Host path of a raw image file (e.g. made with `Deno.truncate`). */
  path: string;
  /** Serial visible in the guest at /sys/block/vdX/serial (at most 20 characters). */
  serial?: string;
  /** Attach read-only. */
  readOnly?: boolean;
}

/** A software TPM for the guest. */
export interface GuestTpm {
  /**
   * swtpm state directory (created if missing). Provision it beforehand (e.g.
   * `swtpm_setup --create-ek-cert`) if the test needs an EK certificate.
   */
  stateDir: string;
}

/** Options of {@link runInGuest}. */
export interface RunInGuestOptions {
  /** Deno entry file: a path relative to the repository root, or absolute. */
  script: string;
  /** Arguments of the script (any bytes but NUL; they are not on the kernel command line). */
  args?: string[];
  /** Raw disk images, in /dev/vda, /dev/vdb, ... order. */
  disks?: GuestDisk[];
  /** Bytes given to the script's stdin (e.g. a key); never put on a command line. */
  stdin?: Uint8Array;
  /** Attach a vTPM backed by swtpm. */
  tpm?: GuestTpm;
  /** User-mode networking (virtio-net; the host's loopback is 10.0.2.2 in the guest). */
  network?: boolean;
  /** Kill the guest after this long (default 240 000 ms); the run then throws. */
  timeoutMs?: number;
  /** Guest memory (default 2048 MiB). */
  memoryMiB?: number;
  /** Guest CPUs (default 2). */
  cpus?: number;
  /** Called with each console line as it arrives (progress, debugging). */
  onConsole?: (line: string) => void;
}

/** What a guest run produced. */
export interface GuestResult {
  /** Exit code of the script in the guest. */
  exitCode: number;
  /** The script's stdout. */
  stdout: string;
  /** The script's stderr. */
  stderr: string;
  /** Full serial console log (kernel messages and the guest init's lines). */
  console: string;
  /** Milliseconds from starting QEMU to the guest powering off. */
  elapsedMs: number;
}

/** The guest did not report an exit code (timeout, crash, harness failure). */
export class GuestError extends ConfidantError {
  /** Console log up to the failure. */
  readonly console: string;
  constructor(message: string, console: string) {
    const tail = console.split("\n").slice(-40).join("\n");
    super("guest.failed", `${message}\n--- guest console (last lines) ---\n${tail}`);
    this.name = "GuestError";
    this.console = console;
  }
}

/** Marker the guest init prints on the console, followed by the exit code. */
export const EXIT_MARKER = "CONFIDANT-GUEST-EXIT";

/** The script's exit code from a console log, or null if the guest never reported one (pure). */
export function parseGuestExit(console: string): number | null {
  const m = new RegExp(`${EXIT_MARKER} (\\d{1,3})\\r?$`, "m").exec(console);
  return m ? Number(m[1]) : null;
}

/** Quote arguments for the guest's `sh` (`eval set -- ...`); NUL is refused (pure). */
export function shellQuoteArgs(args: string[]): string {
  return args.map((a) => {
    if (a.includes("\0")) throw new ConfidantError("guest.args", "a guest argument contains NUL");
    return `'${a.replaceAll("'", `'\\''`)}'`;
  }).join(" ");
}

/** Everything {@link qemuArgs} needs to build a command line. */
export interface QemuConfig {
  image: GuestImage;
  memoryMiB: number;
  cpus: number;
  disks: GuestDisk[];
  /** Host paths of the fw_cfg job files. */
  job: { script: string; args: string; stdin?: string };
  /** Host paths the two virtio-serial ports write to. */
  stdoutPath: string;
  stderrPath: string;
  tpmSocket?: string;
  network: boolean;
}

/** QEMU arguments for one direct-kernel-boot guest run (pure). */
export function qemuArgs(c: QemuConfig): string[] {
  const a = [
    "-accel",
    "tcg,thread=multi",
    "-cpu",
    "max",
    "-machine",
    "q35",
    "-smp",
    String(c.cpus),
    "-m",
    String(c.memoryMiB),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-serial",
    "stdio",
    "-monitor",
    "none",
    "-no-reboot",
    "-kernel",
    c.image.vmlinuz,
    "-initrd",
    c.image.initrd,
    "-append",
    "console=ttyS0 panic=-1 loglevel=4",
    "-device",
    "virtio-serial-pci,id=vser",
    "-chardev",
    `file,id=gout,path=${c.stdoutPath}`,
    "-device",
    "virtserialport,bus=vser.0,chardev=gout,name=confidant.stdout",
    "-chardev",
    `file,id=gerr,path=${c.stderrPath}`,
    "-device",
    "virtserialport,bus=vser.0,chardev=gerr,name=confidant.stderr",
    "-fw_cfg",
    `name=opt/confidant/script,file=${c.job.script}`,
    "-fw_cfg",
    `name=opt/confidant/args,file=${c.job.args}`,
  ];
  if (c.job.stdin) a.push("-fw_cfg", `name=opt/confidant/stdin,file=${c.job.stdin}`);
  c.disks.forEach((d, i) => {
    if (d.serial !== undefined && !/^[A-Za-z0-9_.-]{1,20}$/.test(d.serial)) {
      throw new ConfidantError("guest.disk", `disk serial ${JSON.stringify(d.serial)} is invalid`);
    }
    if (/[,=]/.test(d.path)) {
      throw new ConfidantError("guest.disk", `disk path ${d.path} contains ',' or '='`);
    }
    a.push(
      "-drive",
      `file=${d.path},format=raw,if=none,id=disk${i}${d.readOnly ? ",readonly=on" : ""}`,
      "-device",
      `virtio-blk-pci,drive=disk${i}${d.serial ? `,serial=${d.serial}` : ""}`,
    );
  });
  if (c.tpmSocket) {
    a.push(
      "-chardev",
      `socket,id=chrtpm,path=${c.tpmSocket}`,
      "-tpmdev",
      "emulator,id=tpm0,chardev=chrtpm",
      "-device",
      "tpm-crb,tpmdev=tpm0",
    );
  }
  if (c.network) {
    a.push("-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0");
  }
  return a;
}

const SOURCE_EXT = /\.(ts|tsx|js|mjs|json|lock)$/;
const SKIP_DIRS = new Set([".git", "node_modules", ".tools", ".cache", "dist", "testdata"]);

/** SHA-256 over every source file of the repo (path and contents), for the bundle cache key. */
async function sourceTreeHash(): Promise<string> {
  const parts: string[] = [];
  const walk = async (dir: string) => {
    const names: Deno.DirEntry[] = [];
    for await (const d of Deno.readDir(dir)) names.push(d);
    names.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
    for (const d of names) {
      const p = join(dir, d.name);
      if (d.isDirectory && !SKIP_DIRS.has(d.name)) await walk(p);
      else if (d.isFile && SOURCE_EXT.test(d.name)) {
        parts.push(relative(REPO_ROOT, p), toHex(await sha256(await Deno.readFile(p))));
      }
    }
  };
  await walk(REPO_ROOT);
  return toHex(await sha256(utf8(parts.join("\n"))));
}

/**
 * Bundle a repo entry file into one JS file (cached by the source tree hash);
 * returns its path. Exported for tests that want to check a bundle on the host.
 */
export async function bundleForGuest(script: string): Promise<string> {
  const abs = isAbsolute(script) ? script : join(REPO_ROOT, script);
  await Deno.stat(abs).catch((e) => {
    throw new ConfidantError("guest.script", `guest script ${script} not found`, { cause: e });
  });
  const key = toHex(await sha256(utf8(`${abs}\n${await sourceTreeHash()}`))).slice(0, 32);
  const dir = join(REPO_ROOT, ".cache/image/bundles");
  const out = join(dir, `${key}.js`);
  try {
    await Deno.stat(out);
    return out;
  } catch { /* bundle it */ }
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${out}.${crypto.randomUUID()}.tmp.js`;
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "-o", tmp, abs],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    await Deno.remove(tmp).catch(() => {});
    throw new ConfidantError(
      "guest.bundle",
      `deno bundle ${script} failed: ${new TextDecoder().decode(r.stderr)}`,
    );
  }
  await Deno.rename(tmp, out);
  return out;
}

/** Fail with "install X" when a host tool is missing (tests never skip silently). */
async function requireTool(tool: string, pkg: string): Promise<void> {
  try {
    await new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" }).output();
  } catch {
    throw new ConfidantError("guest.tool", `${tool} not found: install ${pkg}`);
  }
}

/** Start swtpm on `stateDir` with a unix control socket in `runDir`. */
async function startSwtpm(stateDir: string, runDir: string) {
  await requireTool("swtpm", "swtpm");
  const sock = join(runDir, "swtpm.sock");
  const swtpm = await startSwtpmUnixSocket({ stateDir, socketPath: sock });
  return { sock, stop: () => swtpm.stop() };
}

/**
 * Boot a guest, run `script` in it under deno with `--allow-all`, and return its
 * exit code, output and the console log. Throws {@link GuestError} when the guest
 * does not report an exit code (timeout, kernel panic, init failure).
 */
export async function runInGuest(opts: RunInGuestOptions): Promise<GuestResult> {
  await requireTool("qemu-system-x86_64", "qemu-system-x86");
  const [image, bundle] = await Promise.all([ensureGuestImage(), bundleForGuest(opts.script)]);
  const runDir = await Deno.makeTempDir({ prefix: "confidant-guest-" });
  await Deno.chmod(runDir, 0o700);
  let tpm: Awaited<ReturnType<typeof startSwtpm>> | undefined;
  const releaseSlot = await acquireGuestSlot();
  try {
    const argsPath = join(runDir, "args");
    await Deno.writeTextFile(argsPath, shellQuoteArgs(opts.args ?? []));
    let stdinPath: string | undefined;
    if (opts.stdin && opts.stdin.length > 0) {
      stdinPath = join(runDir, "stdin");
      await Deno.writeFile(stdinPath, opts.stdin, { mode: 0o600 });
    }
    if (opts.tpm) tpm = await startSwtpm(opts.tpm.stateDir, runDir);
    const stdoutPath = join(runDir, "stdout");
    const stderrPath = join(runDir, "stderr");
    const args = qemuArgs({
      image,
      memoryMiB: opts.memoryMiB ?? 2048,
      cpus: opts.cpus ?? 2,
      disks: opts.disks ?? [],
      job: { script: bundle, args: argsPath, stdin: stdinPath },
      stdoutPath,
      stderrPath,
      tpmSocket: tpm?.sock,
      network: opts.network ?? false,
    });
    const started = Date.now();
    const child = new Deno.Command("qemu-system-x86_64", {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timeoutMs = opts.timeoutMs ?? 240_000;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
    }, timeoutMs);
    let consoleLog = "";
    const readConsole = (async () => {
      const dec = new TextDecoder();
      let pending = "";
      for await (const chunk of child.stdout) {
        const s = dec.decode(chunk, { stream: true });
        consoleLog += s;
        if (opts.onConsole) {
          pending += s;
          const lines = pending.split("\n");
          pending = lines.pop()!;
          for (const l of lines) opts.onConsole(l.replace(/\r$/, ""));
        }
      }
    })();
    const errText = new Response(child.stderr).text();
    const status = await child.status;
    clearTimeout(timer);
    await readConsole;
    const qemuErr = await errText;
    if (stdinPath) await Deno.remove(stdinPath).catch(() => {});
    const elapsedMs = Date.now() - started;
    const exitCode = parseGuestExit(consoleLog);
    if (exitCode === null) {
      const why = timedOut
        ? `guest timed out after ${timeoutMs} ms`
        : `guest stopped without reporting an exit code (qemu status ${status.code}: ${qemuErr.trim()})`;
      throw new GuestError(why, consoleLog);
    }
    const read = (p: string) => Deno.readTextFile(p).catch(() => "");
    return {
      exitCode,
      stdout: await read(stdoutPath),
      stderr: await read(stderrPath),
      console: consoleLog,
      elapsedMs,
    };
  } finally {
    await tpm?.stop();
    await releaseSlot();
    await Deno.remove(runDir, { recursive: true }).catch(() => {});
  }
}
