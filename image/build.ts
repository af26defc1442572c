/**
 * `deno task image`: build the node UKI into .cache/image/node/<key>/ (reused
 * when no input changed) and print its path, SHA-256 and policy PCRs.
 * Extra kernel parameters may follow (they are measured).
 *
 * @module
 */
import { buildDefaultNodeImage } from "./node_image.ts";

if (import.meta.main) {
  const started = Date.now();
  const r = await buildDefaultNodeImage({ extraCmdline: Deno.args.join(" ") || undefined });
  console.log(JSON.stringify(
    {
      uki: r.uki,
      sha256: r.sha256,
      cmdline: r.cmdline,
      cached: r.cached,
      pcrs: r.pcrs,
      seconds: Math.round((Date.now() - started) / 1000),
    },
    null,
    2,
  ));
}
