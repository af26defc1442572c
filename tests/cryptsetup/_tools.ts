/** Helpers shared by the cryptsetup tests: real tools, temp images. */
import { createHash } from "node:crypto";
import { parseLuks2Header, sealHeaderCopy } from "../../cryptsetup/luks_header.ts";

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

/**
 * Rewrite the JSON of both LUKS2 header copies of the image at `path` with `edit`
 * and recompute their checksums (a tampered header that still parses). Only the
 * header area is written.
 */
export async function rewriteHeaderJson(
  path: string,
  // deno-lint-ignore no-explicit-any
  edit: (meta: Record<string, any>) => void,
): Promise<void> {
  const f = await Deno.open(path, { read: true, write: true });
  try {
    const head = new Uint8Array(64 * 1024);
    let n = 0;
    while (n < head.length) {
      const r = await f.read(head.subarray(n));
      if (r === null) break;
      n += r;
    }
    const h = parseLuks2Header(head);
    const size = h.active.binary.hdrSize;
    const meta = JSON.parse(h.active.jsonText);
    edit(meta);
    const text = new TextEncoder().encode(JSON.stringify(meta));
    for (const off of [0, size]) {
      const copy = head.subarray(off, off + size);
      copy.fill(0, 4096);
      copy.set(text, 4096);
      sealHeaderCopy(copy);
    }
    await f.seek(0, Deno.SeekMode.Start);
    let w = 0;
    while (w < 2 * size) w += await f.write(head.subarray(w, 2 * size));
  } finally {
    f.close();
  }
}
