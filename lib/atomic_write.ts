/**
 * Atomic writes of state files: a temp file in the same directory, fsync, rename,
 * then fsync of the directory, so that a crash leaves either the old or the new file.
 *
 * @module
 */
import { dirname, join } from "node:path";

/** Options of {@link atomicWriteFile}. */
export interface AtomicWriteOptions {
  /** File mode of the new file (default 0o600: state files hold sensitive data). */
  mode?: number;
}

/** Write `data` to `path` atomically (temp file, fsync, rename, fsync of the directory). */
export async function atomicWriteFile(
  path: string,
  data: Uint8Array | string,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const dir = dirname(path);
  const rnd = crypto.getRandomValues(new Uint8Array(6));
  const tmp = join(
    dir,
    `.${path.split("/").pop()}.${Array.from(rnd, (x) => x.toString(16)).join("")}.tmp`,
  );
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: options.mode ?? 0o600 });
  try {
    let off = 0;
    while (off < bytes.length) off += await file.write(bytes.subarray(off));
    await file.sync();
  } catch (e) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  file.close();
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // Some file systems do not allow fsync on a directory; the rename is still atomic.
  }
}
