/**
 * Adapters of the agent's ports to the host: processes (`Deno.Command`), files,
 * the mount table, ext4 detection and WireGuard checks. Thin: decisions are made
 * by the state machine and the pure helpers.
 *
 * @module
 */
import { ConfidantError } from "../lib/errors.ts";
import type { CommandResult, CommandRunner, Files, Mounter, WireGuardHost } from "./ports.ts";
import { isMountPoint, mountOf, parseMountinfo } from "./mountinfo.ts";

/** Most output lines a command result keeps (the log gets every line). */
export const MAX_KEPT_LINES = 400;
/** Longest kept output line (characters). */
export const MAX_LINE_CHARS = 4096;

async function pumpLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, nl).slice(0, MAX_LINE_CHARS));
      buf = buf.slice(nl + 1);
    }
    if (buf.length > MAX_LINE_CHARS) {
      onLine(buf.slice(0, MAX_LINE_CHARS));
      buf = "";
    }
  }
  if (buf.length) onLine(buf.slice(0, MAX_LINE_CHARS));
}

/** Runs programs with `Deno.Command`; stdin is closed, output is read line by line. */
export class HostCommandRunner implements CommandRunner {
  constructor(private env?: Record<string, string>) {}
  async run(
    argv: string[],
    options: { signal?: AbortSignal; onLine?: (line: string) => void },
  ): Promise<CommandResult> {
    const lines: string[] = [];
    const keep = (l: string) => {
      lines.push(l);
      if (lines.length > MAX_KEPT_LINES) lines.shift();
      options.onLine?.(l);
    };
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(argv[0], {
        args: argv.slice(1),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: options.signal,
        ...(this.env ? { env: this.env } : {}),
      }).spawn();
    } catch (e) {
      throw new ConfidantError("agent.exec", `cannot run ${argv[0]}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const [status] = await Promise.all([
      child.status,
      pumpLines(child.stdout, keep),
      pumpLines(child.stderr, keep),
    ]);
    return { code: status.signal ? 128 + (status.code || 0) : status.code, lines };
  }
}

/** Files through Deno's file API. */
export class HostFiles implements Files {
  constructor(private mountinfoPath = "/proc/self/mountinfo") {}
  async exists(path: string): Promise<boolean> {
    try {
      await Deno.lstat(path);
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  }
  async writeSecret(path: string, data: string): Promise<void> {
    const f = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
    await Deno.chmod(path, 0o600); // the umask only narrows; make it exact
    try {
      const bytes = new TextEncoder().encode(data);
      let off = 0;
      while (off < bytes.length) off += await f.write(bytes.subarray(off));
    } finally {
      f.close();
    }
  }
  async remove(path: string): Promise<void> {
    await Deno.remove(path).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
  async mkdirp(path: string, mode: number): Promise<void> {
    await Deno.mkdir(path, { recursive: true, mode });
  }
  async fsTypeOf(path: string): Promise<string | undefined> {
    const entries = parseMountinfo(await Deno.readTextFile(this.mountinfoPath));
    return mountOf(entries, await Deno.realPath(path).catch(() => path))?.fsType;
  }
}

/** Offset of the ext2/3/4 superblock magic (1024 + 0x38) and its value. */
const EXT_MAGIC_OFFSET = 1080;
const EXT_MAGIC = 0xef53;

/** The first bytes of a device carry an ext2/3/4 superblock. Pure. */
export function hasExtSuperblock(head: Uint8Array): boolean {
  if (head.length < EXT_MAGIC_OFFSET + 2) return false;
  return (head[EXT_MAGIC_OFFSET] | (head[EXT_MAGIC_OFFSET + 1] << 8)) === EXT_MAGIC;
}

/** Mounts with `mount`, makes file systems with `mkfs.ext4`, reads the mount table. */
export class HostMounter implements Mounter {
  constructor(private runner: CommandRunner, private mountinfoPath = "/proc/self/mountinfo") {}
  async isMounted(mountPoint: string): Promise<boolean> {
    return isMountPoint(parseMountinfo(await Deno.readTextFile(this.mountinfoPath)), mountPoint);
  }
  async hasFilesystem(device: string, fsType: string): Promise<boolean> {
    if (fsType !== "ext4") throw new ConfidantError("agent.mount", `unsupported fs ${fsType}`);
    const f = await Deno.open(device, { read: true });
    try {
      const head = new Uint8Array(4096);
      let n = 0;
      while (n < head.length) {
        const r = await f.read(head.subarray(n));
        if (r === null) break;
        n += r;
      }
      return hasExtSuperblock(head.subarray(0, n));
    } finally {
      f.close();
    }
  }
  async mkfs(device: string, fsType: string, signal: AbortSignal): Promise<void> {
    await this.#must(["mkfs.ext4", "-q", "-F", device], signal, `mkfs.${fsType}`);
  }
  async mount(device: string, mountPoint: string, fsType: string, signal: AbortSignal) {
    await Deno.mkdir(mountPoint, { recursive: true, mode: 0o700 });
    await this.#must(
      ["mount", "-t", fsType, "-o", "nodev,nosuid", device, mountPoint],
      signal,
      "mount",
    );
  }
  async #must(argv: string[], signal: AbortSignal, what: string): Promise<void> {
    const r = await this.runner.run(argv, { signal });
    if (r.code !== 0) {
      throw new ConfidantError(
        "agent.mount",
        `${what} exited with ${r.code}: ${r.lines.slice(-5).join(" / ")}`,
      );
    }
  }
}

/** WireGuard checks: the module (loaded with modprobe if missing) and `wg`. */
export class HostWireGuard implements WireGuardHost {
  constructor(private runner: CommandRunner, private sys = "/sys") {}
  async ensure(signal: AbortSignal): Promise<void> {
    const loaded = await Deno.stat(`${this.sys}/module/wireguard`).then(() => true, () => false);
    if (!loaded) {
      const r = await this.runner.run(["modprobe", "wireguard"], { signal });
      if (r.code !== 0) {
        throw new ConfidantError(
          "agent.wireguard",
          `the wireguard kernel module cannot be loaded: ${r.lines.slice(-3).join(" / ")}`,
        );
      }
    }
    const wg = await this.runner.run(["wg", "show", "interfaces"], { signal });
    if (wg.code !== 0) {
      throw new ConfidantError(
        "agent.wireguard",
        `wg does not work: ${wg.lines.slice(-3).join(" / ")}`,
      );
    }
  }
  async interfaceExists(name: string): Promise<boolean> {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) return false;
    return await Deno.stat(`${this.sys}/class/net/${name}`).then(() => true, () => false);
  }
}
