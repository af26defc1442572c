/** Helpers shared by the cryptsetup tests: real tools, temp images. */
import { createHash } from "node:crypto";

/** Run a tool; fails with "install X" when it is missing. */
export async function run(
  cmd: string,
  args: string[],
  stdin?: Uint8Array,
): Promise<{ code: number; stdout: string; stderr: string }> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd, {
      args,
      stdin: stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    const pkg = cmd === "cryptsetup"
      ? "cryptsetup-bin"
      : cmd.startsWith("mk")
      ? "e2fsprogs / util-linux"
      : cmd;
    throw new Error(`${cmd} not found: install ${pkg} (${e})`);
  }
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A sparse zero file of `size` bytes in a fresh temp dir; returns its path and a cleanup. */
export async function tempImage(size = 64 * 1024 * 1024): Promise<{ path: string; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "confidant-luks-" });
  const path = `${dir}/disk.img`;
  const f = await Deno.open(path, { create: true, write: true });
  await f.truncate(size);
  f.close();
  return { path, dir };
}

/** SHA-256 hex of a file's bytes. */
export async function fileHash(path: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}
