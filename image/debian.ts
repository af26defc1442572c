/**
 * Debian packages as image inputs: resolve a dependency closure with apt-cache,
 * fetch the exact .deb files with `apt-get download` into a cache directory
 * (verified against the SHA-256 the archive's signed index names), and extract
 * them with `dpkg-deb -x`. Nothing is fetched from anywhere but the Debian
 * archive configured on the machine.
 *
 * @module
 */
import { join } from "node:path";
import { ConfidantError } from "../lib/errors.ts";
import { sha256, toHex } from "../lib/bytes.ts";

/** One pinned package: what the image build consumes. */
export interface DebPackage {
  name: string;
  version: string;
  arch: string;
  /** SHA-256 of the .deb as listed in the archive's Packages index. */
  sha256: string;
}

async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    throw new ConfidantError("image.tool", `cannot run ${cmd} (install it): ${e}`, { cause: e });
  }
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join("; ");
    throw new ConfidantError("image.tool", `${cmd} ${args.join(" ")} failed: ${err}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * Parse `apt-cache show --no-all-versions` output (pure): one package per stanza.
 * A stanza missing a field is a {@link ConfidantError}.
 */
export function parseAptShow(text: string): DebPackage[] {
  return text.split(/\n\n+/).filter((s) => s.trim() !== "").map(parseStanza);
}

function parseStanza(text: string): DebPackage {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z0-9-]+):\s?(.*)$/.exec(line);
    if (m) fields.set(m[1], m[2]);
  }
  const get = (k: string) => {
    const v = fields.get(k);
    if (!v) throw new ConfidantError("image.apt", `apt-cache show output lacks ${k}`);
    return v;
  };
  const sum = get("SHA256");
  if (!/^[0-9a-f]{64}$/.test(sum)) throw new ConfidantError("image.apt", "bad SHA256 field");
  return { name: get("Package"), version: get("Version"), arch: get("Architecture"), sha256: sum };
}

/** The candidate versions of packages (what `apt-get download` would fetch), in input order. */
export async function aptCandidates(names: string[]): Promise<DebPackage[]> {
  const text = await run("apt-cache", ["show", "--no-all-versions", ...names]);
  const found = parseAptShow(text);
  return names.map((n) => {
    const p = found.find((x) => x.name === n);
    if (!p) throw new ConfidantError("image.apt", `apt-cache knows no package ${n}`);
    return p;
  });
}

/**
 * Names in the Depends/Pre-Depends closure of `roots` (roots included), sorted.
 * Recommends and Suggests are not followed; virtual packages (`<name>`) are dropped.
 */
export async function aptClosure(roots: string[]): Promise<string[]> {
  const text = await run("apt-cache", [
    "depends",
    "--recurse",
    "--no-recommends",
    "--no-suggests",
    "--no-conflicts",
    "--no-breaks",
    "--no-replaces",
    "--no-enhances",
    ...roots,
  ]);
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith(" ") || line.startsWith("<")) continue;
    names.add(line.trim());
  }
  return [...names].sort();
}

/** The versioned kernel package a Debian kernel metapackage (e.g. linux-image-cloud-amd64) names. */
export async function kernelPackageOf(meta: string): Promise<string> {
  const text = await run("apt-cache", ["depends", meta]);
  const m = /Depends: (linux-image-[0-9][^\s]*)/.exec(text);
  if (!m) throw new ConfidantError("image.apt", `${meta} does not depend on a linux-image package`);
  return m[1];
}

/** File name `apt-get download` gives a package (epoch colon is percent-encoded). */
export function debFileName(p: DebPackage): string {
  return `${p.name}_${p.version.replace(/:/g, "%3a")}_${p.arch}.deb`;
}

/**
 * Make sure the .deb of each package is in `dir` with the expected SHA-256
 * (downloading only the missing ones); returns their paths in input order.
 */
export async function fetchDebs(pkgs: DebPackage[], dir: string): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const paths: string[] = [];
  const missing: DebPackage[] = [];
  for (const p of pkgs) {
    const path = join(dir, debFileName(p));
    paths.push(path);
    if (!(await fileHasSha256(path, p.sha256))) missing.push(p);
  }
  if (missing.length > 0) {
    await run("apt-get", ["download", ...missing.map((p) => `${p.name}=${p.version}`)], dir);
    for (const p of missing) {
      const path = join(dir, debFileName(p));
      if (!(await fileHasSha256(path, p.sha256))) {
        throw new ConfidantError(
          "image.apt",
          `${debFileName(p)} does not match the archive's SHA-256`,
        );
      }
    }
  }
  return paths;
}

async function fileHasSha256(path: string, hex: string): Promise<boolean> {
  try {
    return toHex(await sha256(await Deno.readFile(path))) === hex;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Extract a .deb's file tree into `dest` (dpkg-deb -x). */
export async function extractDeb(deb: string, dest: string): Promise<void> {
  await Deno.mkdir(dest, { recursive: true });
  await run("dpkg-deb", ["-x", deb, dest]);
}

/** Run a host build tool and return its stdout; failure is a {@link ConfidantError}. */
export const runTool = run;
