/**
 * Size: `deno task bundle` (tools/build.ts bundle) and the size of dist/confidant.js, the
 * single-file bundle the node image ships and runs with the pinned deno; the pinned deno
 * binary itself; the node UKI (`confidant image build`, reused from .cache/image when the
 * sources are unchanged; under `--quick` only the newest cached UKI is reported, nothing is
 * built). Agent resident memory is in agent_boot.ts.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { type BenchContext, type BenchResult, measured } from "./_frame.ts";

/** Module name. */
export const name = "footprint";
/** Last. */
export const order = 90;

const REPO = fileURLToPath(new URL("../", import.meta.url));

/** Bundle and measure. */
export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  ctx.log("deno task bundle");
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "tools/build.ts", "bundle"],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    throw new Error(`bundle failed: ${new TextDecoder().decode(out.stderr).slice(-500)}`);
  }
  const seconds = (performance.now() - t0) / 1000;
  const size = (await Deno.stat(join(REPO, "dist", "confidant.js"))).size;
  const denoBytes = (await Deno.stat(Deno.execPath())).size;
  const uki = ctx.quick ? await newestCachedUki() : await buildUki(ctx);
  const mib = (n: number) => Number((n / (1 << 20)).toFixed(1));
  const rows: BenchResult[] = [
    measured({
      id: "size.bundle",
      label: "bundle dist/confidant.js (deno bundle, npm deps included)",
      value: size / (1 << 20),
      unit: "MiB",
      baseline: null,
      details: { bytes: size, bundleSeconds: Number(seconds.toFixed(1)) },
    }),
    measured({
      id: "size.deno",
      label: `pinned deno runtime binary (${Deno.version.deno})`,
      value: mib(denoBytes),
      unit: "MiB",
      baseline: null,
      details: { bytes: denoBytes },
    }),
  ];
  if (uki) {
    rows.push(measured({
      id: "size.node_uki",
      label: "node UKI confidant-node.efi (kernel, initrd with deno + bundle, cmdline)",
      value: mib(uki.bytes),
      unit: "MiB",
      baseline: null,
      details: { bytes: uki.bytes, initrdMiB: mib(uki.initrdBytes), source: uki.source },
    }));
  } else ctx.log("no node UKI in .cache/image/node (not built under --quick)");
  return rows;
}

interface UkiSize {
  bytes: number;
  initrdBytes: number;
  source: string;
}

async function ukiAt(dir: string, source: string): Promise<UkiSize> {
  const bytes = (await Deno.stat(join(dir, "confidant-node.efi"))).size;
  const initrdBytes = await Deno.stat(join(dir, "initrd.cpio.zst")).then((s) => s.size, () => 0);
  return { bytes, initrdBytes, source };
}

/** The most recently used complete build in .cache/image/node, if any. */
async function newestCachedUki(): Promise<UkiSize | null> {
  const root = join(REPO, ".cache", "image", "node");
  let best: { dir: string; mtime: number } | null = null;
  try {
    for await (const e of Deno.readDir(root)) {
      if (!e.isDirectory) continue;
      const dir = join(root, e.name);
      const ok = await Deno.stat(join(dir, "complete")).then(() => true, () => false);
      const st = await Deno.stat(join(dir, "confidant-node.efi")).catch(() => null);
      const mtime = (await Deno.stat(dir)).mtime?.getTime() ?? 0;
      if (ok && st && (!best || mtime > best.mtime)) best = { dir, mtime };
    }
  } catch {
    return null;
  }
  return best ? await ukiAt(best.dir, "newest cached build (may predate this tree)") : null;
}

/** `confidant image build --json` for this tree (a cache hit when unchanged). */
async function buildUki(ctx: BenchContext): Promise<UkiSize> {
  ctx.log("confidant image build (reuses .cache/image when the sources are unchanged)");
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "main.ts", "image", "build", "--json"],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (out.code !== 0) throw new Error(`image build failed: ${dec.decode(out.stderr).slice(-500)}`);
  const uki = JSON.parse(dec.decode(out.stdout).trim().split("\n").at(-1)!).uki as string;
  const seconds = ((performance.now() - t0) / 1000).toFixed(0);
  return await ukiAt(join(uki, ".."), `image build of this tree (${seconds} s)`);
}
