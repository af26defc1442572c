/**
 * An in-memory plan of a file tree that becomes a cpio archive: members are
 * added from extracted packages, host files or memory, paths are normalised to
 * Debian's merged-/usr layout, and the plan turns into a sorted member list
 * with every parent directory present (the kernel's initramfs unpacker does
 * not create missing parents).
 *
 * @module
 */
import { join } from "node:path";
import { ConfidantError } from "../lib/errors.ts";
import type { CpioEntry } from "./cpio.ts";

/** Top-level directories that Debian 12 merges into /usr. */
const MERGED = new Set(["bin", "sbin", "lib", "lib64"]);

/** Map a package path to the merged-/usr layout (`lib/x` → `usr/lib/x`); no leading slash. */
export function mergedUsrPath(path: string): string {
  const p = path.replace(/^\/+/, "").replace(/\/+$/, "");
  const first = p.split("/")[0];
  return MERGED.has(first) ? `usr/${p}` : p;
}

/** A file-tree plan keyed by archive path. */
export class TreePlan {
  #members = new Map<string, CpioEntry>();

  /** Add (or replace) one member. */
  set(e: CpioEntry): void {
    if (e.path === "" || e.path.startsWith("/") || e.path.split("/").includes("..")) {
      throw new ConfidantError("image.tree", `bad member path ${JSON.stringify(e.path)}`);
    }
    this.#members.set(e.path, e);
  }

  /** Whether a member exists at `path`. */
  has(path: string): boolean {
    return this.#members.has(path);
  }

  /** Add a file from memory. */
  data(path: string, data: Uint8Array | string, mode = 0o644): void {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    this.set({ kind: "data", path, mode, data: bytes });
  }

  /** Add a host file (its mode is taken from the host unless given). */
  async file(path: string, source: string, mode?: number): Promise<void> {
    const st = await Deno.stat(source);
    if (!st.isFile) throw new ConfidantError("image.tree", `${source} is not a regular file`);
    this.set({
      kind: "file",
      path,
      mode: mode ?? (st.mode ?? 0o644) & 0o7777,
      source,
      size: st.size,
    });
  }

  /** Add a symbolic link. */
  symlink(path: string, target: string): void {
    this.set({ kind: "symlink", path, target });
  }

  /** Add a directory. */
  dir(path: string, mode = 0o755): void {
    this.set({ kind: "dir", path, mode });
  }

  /**
   * Add every member of a host directory tree (e.g. extracted packages), with
   * paths passed through `mapPath`; a member for which it returns null is skipped.
   */
  async addHostTree(root: string, mapPath: (rel: string) => string | null): Promise<void> {
    const walk = async (rel: string): Promise<void> => {
      const names: string[] = [];
      for await (const d of Deno.readDir(join(root, rel))) names.push(d.name);
      names.sort();
      for (const name of names) {
        const r = rel === "" ? name : `${rel}/${name}`;
        const dest = mapPath(r);
        const abs = join(root, r);
        const st = await Deno.lstat(abs);
        if (st.isSymlink) {
          if (dest !== null) this.symlink(dest, await Deno.readLink(abs));
        } else if (st.isDirectory) {
          if (dest === null) continue;
          if (dest !== "" && !this.has(dest)) this.dir(dest, (st.mode ?? 0o755) & 0o7777);
          await walk(r);
        } else if (st.isFile) {
          if (dest !== null) await this.file(dest, abs);
        }
      }
    };
    await walk("");
  }

  /** Members sorted by path, with missing parent directories added (mode 0755). */
  entries(): CpioEntry[] {
    const all = new Map(this.#members);
    for (const p of this.#members.keys()) {
      const parts = p.split("/");
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join("/");
        const have = all.get(parent);
        if (!have) all.set(parent, { kind: "dir", path: parent, mode: 0o755 });
        else if (have.kind !== "dir") {
          throw new ConfidantError("image.tree", `${parent} is a ${have.kind}, not a directory`);
        }
      }
    }
    const enc = new TextEncoder();
    return [...all.values()].sort((a, b) => {
      const x = enc.encode(a.path);
      const y = enc.encode(b.path);
      for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
      return x.length - y.length;
    });
  }
}
