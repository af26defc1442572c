/**
 * Reading a key for the CLI: `--key-file PATH`, where `-` means standard input (as
 * cryptsetup does). Keys never come from argv. The bytes are used as they are (no
 * newline stripping), like cryptsetup's `--key-file`.
 *
 * @module
 */
import { ConfidantError, UsageError } from "../lib/errors.ts";

/** Longest key file accepted. */
export const MAX_KEY_FILE = 8192;

async function readAll(r: ReadableStream<Uint8Array>, what: string): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of r) {
    n += chunk.length;
    if (n > MAX_KEY_FILE) {
      parts.forEach((p) => p.fill(0));
      chunk.fill(0);
      throw new ConfidantError("key.too_long", `${what} is longer than ${MAX_KEY_FILE} bytes`);
    }
    parts.push(chunk);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
    p.fill(0);
  }
  return out;
}

/** The key in `path` (`-`: stdin). An empty key is refused. */
export async function readKeyFile(
  path: string,
  stdin: ReadableStream<Uint8Array> = Deno.stdin.readable,
): Promise<Uint8Array> {
  let key: Uint8Array;
  if (path === "-") {
    key = await readAll(stdin, "the key on stdin");
  } else {
    let f: Deno.FsFile;
    try {
      f = await Deno.open(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new UsageError(`key file ${path} does not exist`);
      }
      throw new ConfidantError("key.read", `cannot read key file ${path}: ${e}`, { cause: e });
    }
    key = await readAll(f.readable, `key file ${path}`);
  }
  if (key.length === 0) throw new ConfidantError("key.empty", `the key from ${path} is empty`);
  return key;
}
