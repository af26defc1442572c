/**
 * Node unlock in the QEMU node: image/up.ts `up()` (the cluster in a box: a KMS process on the
 * host's loopback, the measured node UKI booted by OVMF with a vTPM and a blank 2 GiB state
 * disk, `confidant.join=false`), one node, in a fresh directory (so the disk is a first boot:
 * format without integrity, the agent's default), then `down()`. The per-step times are the
 * agent's own JSON log lines on the node's console (image/box_summary.ts parses them).
 *
 * **TCG software emulation**: the node's CPU is emulated, real hardware is much faster.
 * `--quick` skips it.
 *
 * @module
 */
import { join } from "node:path";
import { down, up } from "../image/up.ts";
import { type BenchContext, type BenchResult, measured } from "./_frame.ts";
import { TCG_CAVEAT } from "./guest_unlock.ts";

/** Module name. */
export const name = "node_boot";
/** After the guest bench. */
export const order = 46;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/** Boot one box node and report its agent's steps. */
export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  if (ctx.quick) {
    ctx.log("node_boot: skipped under --quick (it boots the node UKI in QEMU)");
    return [];
  }
  const dir = await Deno.makeTempDir({ prefix: "confidant-bench-up-" });
  const quiet = (l: string) => {
    if (!l.includes("| ")) ctx.log(`up: ${l}`);
  };
  try {
    const r = await up({ dir, port: freePort(), nodes: 1, waitMs: 6 * 60_000, log: quiet });
    const node = r.summary.nodes[0];
    if (!r.ok) {
      throw new Error(
        `node did not unlock: ${node.report.final} ${JSON.stringify(node.report.failure ?? {})}`,
      );
    }
    const host = Object.fromEntries(node.hostTimes);
    const steps = node.report.steps;
    const details: Record<string, number | string> = {
      bootToAgentMs: host["boot to agent"] ?? "n/a",
      steps: steps.map((s) =>
        `${s.step} ${s.durationMs} ms${s.outcome === "done" ? "" : ` (${s.outcome})`}`
      )
        .join(", "),
      releaseRetries: node.report.releaseRetries,
      diskFormatted: String(node.report.disk.formatted ?? "?"),
      upHostTimes: r.summary.hostTimes.map(([k, v]) => `${k} ${v} ms`).join(", "),
      where: `QEMU node (OVMF, UKI, vTPM, 2 GiB state disk, user net), ${TCG_CAVEAT}`,
    };
    for (const s of steps) details[`${s.step}Ms`] = s.durationMs;
    const stepSum = steps.reduce((a, s) => a + s.durationMs, 0);
    return [measured({
      id: "agent.node.start_to_unlocked",
      label: "agent start → state disk mounted, QEMU node first boot (TCG)",
      value: host["agent in all"] ?? stepSum,
      unit: "ms",
      baseline: null,
      details: { ...details, sumOfStepsMs: stepSum },
    })];
  } finally {
    await down({ dir, log: quiet }).catch((e) => ctx.log(`down failed: ${e}`));
    await Deno.remove(join(dir), { recursive: true }).catch(() => {});
  }
}
