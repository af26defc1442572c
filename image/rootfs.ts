/**
 * The user-space and kernel inputs of a guest, taken only from Debian packages:
 * resolve and fetch the packages, extract them (cached per .deb), and lay them
 * out as a {@link TreePlan} in the merged-/usr layout with busybox applet links
 * and a trimmed set of kernel modules.
 *
 * @module
 */
import { join } from "node:path";
import { ConfidantError } from "../lib/errors.ts";
import { sha256, toHex, utf8 } from "../lib/bytes.ts";
import {
  aptCandidates,
  aptClosure,
  debFileName,
  type DebPackage,
  extractDeb,
  fetchDebs,
  kernelPackageOf,
  runTool,
} from "./debian.ts";
import { trimModules } from "./modules.ts";
import { mergedUsrPath, TreePlan } from "./tree.ts";

/** What a guest root is made of. */
export interface RootSpec {
  /** Root packages; their Depends/Pre-Depends closure is included. */
  packages: string[];
  /** Kernel metapackage, e.g. `linux-image-cloud-amd64`. */
  kernelMeta: string;
  /** Module names (or `dir/` prefixes) to include with their dependencies. */
  modules: string[];
}

/** The resolved, pinned inputs of a {@link RootSpec}. */
export interface ResolvedRoot {
  packages: DebPackage[];
  kernel: DebPackage;
  /** Kernel release, e.g. `6.1.0-56-cloud-amd64`. */
  kver: string;
  /** SHA-256 over the spec and every pinned package: a cache key. */
  key: string;
}

/** Paths under usr/share that a minimal guest does not need. */
const DROP = /^usr\/share\/(doc|man|info|locale|lintian|bug|bash-completion|zsh)(\/|$)/;

/** Resolve a spec to pinned package versions (asks apt-cache; no download). */
export async function resolveRoot(spec: RootSpec): Promise<ResolvedRoot> {
  const names = await aptClosure(spec.packages);
  const kname = await kernelPackageOf(spec.kernelMeta);
  const all = await aptCandidates([...names, kname]);
  const kernel = all.pop()!;
  const packages = all;
  const m = /^linux-image-(.+)$/.exec(kernel.name);
  if (!m) throw new ConfidantError("image.apt", `unexpected kernel package ${kernel.name}`);
  const key = toHex(
    await sha256(utf8(JSON.stringify({ spec, packages, kernel }))),
  );
  return { packages, kernel, kver: m[1], key };
}

/** Extract `deb` once into `cacheDir/extract/<file name>` and return that directory. */
async function extracted(deb: string, pkg: DebPackage, cacheDir: string): Promise<string> {
  const dest = join(cacheDir, "extract", debFileName(pkg));
  try {
    await Deno.stat(join(dest, ".complete"));
    return dest;
  } catch { /* not yet */ }
  // extract next to it and rename, so a concurrent or interrupted build never sees half a tree
  const tmp = `${dest}.${crypto.randomUUID()}.tmp`;
  await extractDeb(deb, tmp);
  await Deno.writeTextFile(join(tmp, ".complete"), "");
  await Deno.remove(dest, { recursive: true }).catch(() => {});
  try {
    await Deno.rename(tmp, dest);
  } catch {
    await Deno.remove(tmp, { recursive: true });
  }
  await Deno.stat(join(dest, ".complete"));
  return dest;
}

/** The result of {@link buildRoot}: the tree plan and the kernel image path. */
export interface BuiltRoot {
  plan: TreePlan;
  /** Path of the kernel (bzImage) extracted from the package. */
  vmlinuz: string;
  resolved: ResolvedRoot;
  /** Module files included (relative to lib/modules/KVER). */
  modules: string[];
  /** Scratch directory the plan reads module files from; remove it after writing the archive. */
  scratch: string;
}

/**
 * Fetch and extract the packages of `resolved` into `cacheDir` and lay them out
 * as a tree plan: merged /usr, documentation dropped, busybox applets linked
 * where no real program of that name exists, modules trimmed to `spec.modules`.
 */
export async function buildRoot(
  spec: RootSpec,
  resolved: ResolvedRoot,
  cacheDir: string,
): Promise<BuiltRoot> {
  const debDir = join(cacheDir, "debs");
  const all = [...resolved.packages, resolved.kernel];
  const debs = await fetchDebs(all, debDir);
  const plan = new TreePlan();
  for (const l of ["bin", "sbin", "lib", "lib64"]) plan.symlink(l, `usr/${l}`);
  for (let i = 0; i < resolved.packages.length; i++) {
    const root = await extracted(debs[i], resolved.packages[i], cacheDir);
    await plan.addHostTree(root, (rel) => {
      if (rel === ".complete") return null;
      const p = mergedUsrPath(rel);
      if (DROP.test(p) || p.startsWith("etc/init.d") || p.startsWith("usr/lib/modules")) {
        return null;
      }
      return p;
    });
  }
  const kroot = await extracted(debs[debs.length - 1], resolved.kernel, cacheDir);
  const vmlinuz = join(kroot, "boot", `vmlinuz-${resolved.kver}`);
  await Deno.stat(vmlinuz);
  const modDir = join(cacheDir, "modules", `${resolved.key}.${crypto.randomUUID()}`);
  const modules = await trimModules(kroot, resolved.kver, spec.modules, modDir);
  await plan.addHostTree(modDir, (rel) => mergedUsrPath(rel));
  // the plan streams module files from modDir later: the caller removes it after writing
  // busybox applets, where the packages ship no real program of that name
  const bb = join(
    cacheDir,
    "extract",
    debFileName(findPkg(resolved, "busybox-static")),
    "bin/busybox",
  );
  const list = await runTool(bb, ["--list-full"]);
  for (const line of list.split("\n").filter((l) => l)) {
    const p = mergedUsrPath(line);
    const name = p.split("/").pop()!;
    if (plan.has(p) || plan.has(`usr/bin/${name}`) || plan.has(`usr/sbin/${name}`)) continue;
    plan.symlink(p, "/usr/bin/busybox");
  }
  return { plan, vmlinuz, resolved, modules, scratch: modDir };
}

function findPkg(r: ResolvedRoot, name: string): DebPackage {
  const p = r.packages.find((x) => x.name === name);
  if (!p) throw new ConfidantError("image.apt", `${name} is not among the resolved packages`);
  return p;
}
