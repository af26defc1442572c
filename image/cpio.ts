/**
 * A deterministic writer of "newc" cpio archives (the format the Linux kernel
 * unpacks as an initramfs). Entries are written in the order given (callers sort
 * them), with sequential inode numbers, owner root and one fixed mtime, so that the
 * same tree always gives the same bytes.
 *
 * @module
 */
import { ConfidantError } from "../lib/errors.ts";

/** One archive member. */
export type CpioEntry =
  | { kind: "dir"; path: string; mode: number }
  | { kind: "symlink"; path: string; target: string }
  /** A regular file whose bytes are read from `source` on the host (streamed). */
  | { kind: "file"; path: string; mode: number; source: string; size: number }
  /** A regular file given in memory. */
  | { kind: "data"; path: string; mode: number; data: Uint8Array };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
/** newc headers and data are padded to 4 bytes. */
const ALIGN = 4;
/** The kernel's newc reader uses 32-bit sizes. */
const MAX_SIZE = 0xffffffff;

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > MAX_SIZE) {
    throw new ConfidantError("image.cpio", `cpio field out of range: ${n}`);
  }
  return n.toString(16).padStart(8, "0").toUpperCase();
}

function pad(n: number): number {
  return (ALIGN - (n % ALIGN)) % ALIGN;
}

/**
 * The header (plus the NUL-terminated name and its padding) of one newc member.
 * `ino` must be unique in the archive; `mtime` is seconds since the epoch.
 */
export function cpioHeader(
  name: string,
  mode: number,
  size: number,
  ino: number,
  mtime: number,
): Uint8Array {
  if (name.length === 0 || name.startsWith("/") || name.includes("\0")) {
    throw new ConfidantError("image.cpio", `bad cpio member name ${JSON.stringify(name)}`);
  }
  const nameBytes = new TextEncoder().encode(name + "\0");
  const fields = [
    "070701",
    hex8(ino),
    hex8(mode),
    hex8(0), // uid
    hex8(0), // gid
    hex8(mode & S_IFDIR ? 2 : 1), // nlink
    hex8(mtime),
    hex8(size),
    hex8(0), // devmajor
    hex8(0), // devminor
    hex8(0), // rdevmajor
    hex8(0), // rdevminor
    hex8(nameBytes.length),
    hex8(0), // check
  ].join("");
  const head = new TextEncoder().encode(fields);
  const out = new Uint8Array(head.length + nameBytes.length + pad(head.length + nameBytes.length));
  out.set(head, 0);
  out.set(nameBytes, head.length);
  return out;
}

/** Mode bits (type + permissions) of an entry. */
function entryMode(e: CpioEntry): number {
  switch (e.kind) {
    case "dir":
      return S_IFDIR | (e.mode & 0o7777);
    case "symlink":
      return S_IFLNK | 0o777;
    default:
      return S_IFREG | (e.mode & 0o7777);
  }
}

/**
 * Write `entries` as one newc archive to `out`, followed by the TRAILER!!! member.
 * File contents of `kind: "file"` entries are streamed from disk; a file whose size
 * changed since the entry was made is an error (the archive would be corrupt).
 */
export async function writeCpio(
  out: { write(p: Uint8Array): Promise<number> },
  entries: CpioEntry[],
  mtime: number,
): Promise<void> {
  const writeAll = async (b: Uint8Array) => {
    let off = 0;
    while (off < b.length) off += await out.write(b.subarray(off));
  };
  let ino = 1;
  for (const e of entries) {
    const mode = entryMode(e);
    if (e.kind === "dir") {
      await writeAll(cpioHeader(e.path, mode, 0, ino++, mtime));
    } else if (e.kind === "symlink") {
      const t = new TextEncoder().encode(e.target);
      await writeAll(cpioHeader(e.path, mode, t.length, ino++, mtime));
      await writeAll(t);
      await writeAll(new Uint8Array(pad(t.length)));
    } else if (e.kind === "data") {
      await writeAll(cpioHeader(e.path, mode, e.data.length, ino++, mtime));
      await writeAll(e.data);
      await writeAll(new Uint8Array(pad(e.data.length)));
    } else {
      await writeAll(cpioHeader(e.path, mode, e.size, ino++, mtime));
      const f = await Deno.open(e.source, { read: true });
      let n = 0;
      try {
        const buf = new Uint8Array(1 << 20);
        for (;;) {
          const r = await f.read(buf);
          if (r === null) break;
          n += r;
          if (n > e.size) break;
          await writeAll(buf.subarray(0, r));
        }
      } finally {
        f.close();
      }
      if (n !== e.size) {
        throw new ConfidantError("image.cpio", `${e.source} changed size while archiving`);
      }
      await writeAll(new Uint8Array(pad(e.size)));
    }
  }
  await writeAll(cpioHeader("TRAILER!!!", 0, 0, 0, 0));
}
