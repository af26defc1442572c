/**
 * Size: `deno task bundle` (tools/build.ts bundle) and the size of dist/confidant.js, the
 * single-file bundle the node image ships and runs with the pinned deno. (Agent resident
 * memory is not measured here yet: it needs `confidant agent run` against swtpm and a KMS.)
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
  return [measured({
    id: "size.bundle",
    label: "bundle dist/confidant.js (deno bundle, npm deps included)",
    value: size / (1 << 20),
    unit: "MiB",
    baseline: null,
    details: { bytes: size, bundleSeconds: Number(seconds.toFixed(1)) },
  })];
}
