/**
 * Kernel modules for an initramfs: from an extracted Debian kernel package, pick
 * the modules asked for plus everything they depend on (modules.dep, generated
 * with the host's depmod), copy them into a trimmed tree and index that tree
 * again with depmod so `modprobe` works in the guest.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { ConfidantError } from "../lib/errors.ts";
import { runTool } from "./debian.ts";

/** Module name as modprobe compares it (`dm-crypt` and `dm_crypt` are the same). */
export function moduleName(path: string): string {
  const base = path.split("/").pop() ?? path;
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
}

/** Parse modules.dep into module path → dependency paths (pure). */
export function parseModulesDep(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const i = line.indexOf(":");
    if (i <= 0) throw new ConfidantError("image.modules", `malformed modules.dep line: ${line}`);
    const deps = line.slice(i + 1).trim();
    out.set(line.slice(0, i), deps === "" ? [] : deps.split(/\s+/));
  }
  return out;
}

/**
 * Paths (relative to the module directory) of the wanted modules and their
 * dependencies, sorted. `wanted` holds module names or path prefixes ending in
 * `/` (e.g. `kernel/crypto/` for every module in that directory). A wanted name
 * that is neither a module nor built in is an error.
 */
export function moduleClosure(
  dep: Map<string, string[]>,
  builtin: Set<string>,
  wanted: string[],
): string[] {
  const byName = new Map<string, string>();
  for (const p of dep.keys()) byName.set(moduleName(p), p);
  const picked = new Set<string>();
  const add = (p: string) => {
    if (picked.has(p)) return;
    picked.add(p);
    for (const d of dep.get(p) ?? []) add(d);
  };
  for (const w of wanted) {
    if (w.endsWith("/")) {
      const hits = [...dep.keys()].filter((p) => p.startsWith(w));
      if (hits.length === 0) throw new ConfidantError("image.modules", `no modules under ${w}`);
      hits.forEach(add);
      continue;
    }
    const n = w.replace(/-/g, "_");
    const p = byName.get(n);
    if (p) add(p);
    else if (!builtin.has(n)) {
      throw new ConfidantError("image.modules", `kernel has no module or built-in named ${w}`);
    }
  }
  return [...picked].sort();
}

/**
 * Build `dest/lib/modules/KVER` holding only the closure of `wanted` from the
 * kernel tree extracted at `kernelRoot` (which has lib/modules/KVER).
 */
export async function trimModules(
  kernelRoot: string,
  kver: string,
  wanted: string[],
  dest: string,
): Promise<string[]> {
  const src = join(kernelRoot, "lib/modules", kver);
  await runTool("depmod", ["-b", kernelRoot, kver]);
  const dep = parseModulesDep(await Deno.readTextFile(join(src, "modules.dep")));
  const builtin = new Set(
    (await Deno.readTextFile(join(src, "modules.builtin"))).split("\n").filter((l) => l).map(
      moduleName,
    ),
  );
  const picked = moduleClosure(dep, builtin, wanted);
  const out = join(dest, "lib/modules", kver);
  await Deno.mkdir(out, { recursive: true });
  for (const p of picked) {
    await Deno.mkdir(dirname(join(out, p)), { recursive: true });
    await Deno.copyFile(join(src, p), join(out, p));
  }
  for (const f of ["modules.builtin", "modules.builtin.modinfo", "modules.order"]) {
    await Deno.copyFile(join(src, f), join(out, f));
  }
  await runTool("depmod", ["-b", dest, kver]);
  return picked;
}
