/**
 * Node unlock on the host and the agent's resident memory. Both runs use a real swtpm with an
 * EK certificate and a real `confidant kms serve` process (the shipped bundle,
 * dist/confidant.js, which bench/footprint.ts builds just before):
 *
 * 1. **Timeline** (bench/_agent_host.ts): the agent's boot machine with the production config,
 *    TPM, KMS client and endpoint, the state disk on cryptsetup's IN-MEMORY backend and a mount
 *    that only records (no device-mapper on this host). Per-step durations come from the
 *    agent's own JSON log lines (`step finished` … `durationMs`); "start" is the time from
 *    spawning the process to its first log line (runtime start and module load).
 * 2. **Resident memory** of the real entry: `deno run <node flags> dist/confidant.js agent run`
 *    as the node image's /usr/bin/confidant runs it, with a blank file as its state disk. It
 *    attests and gets its release like a node, then its disk step fails at device-mapper
 *    activation (this host has none): that failed state is its final state here, and VmRSS is
 *    read from /proc/PID/status a moment after it is reached. The timeline child's VmRSS after
 *    "node unlocked" is in the details.
 *
 * The agent runs with `kubeadm.join: false` (no Kubernetes here): the boot ends at "unlocked".
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startSwtpm, type Swtpm } from "../tests/_support/swtpm.ts";
import { Tpm } from "../attestation/tpm/client.ts";
import { TPM_ALG } from "../attestation/tpm/constants.ts";
import { toHex } from "../lib/bytes.ts";
import { NODE_RUNTIME_FLAGS } from "../tools/permissions.ts";
import { baselineRow, type BenchContext, type BenchResult, measured } from "./_frame.ts";

/** Module name. */
export const name = "agent_boot";
/** After footprint.ts, which builds the bundle this runs. */
export const order = 95;

const REPO = fileURLToPath(new URL("../", import.meta.url));
const BUNDLE = join(REPO, "dist", "confidant.js");
/**
 * How the node image runs the bundle (image/node_image.ts CONFIDANT_WRAPPER: the node flags of
 * tools/permissions.ts). Not the narrowed RUNTIME_FLAGS: with them `agent run` fails its
 * release step (Deno 2.9 asks for all access to /sys/kernel/config/tsm/report).
 */
const NODE_FLAGS = ["--quiet", "--no-prompt", "--no-config", ...NODE_RUNTIME_FLAGS];

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/** One JSON log line of the agent. */
// deno-lint-ignore no-explicit-any
type LogRec = Record<string, any>;

/** Resident and peak resident memory of `pid` in KiB, from /proc/PID/status. */
export function parseProcStatus(text: string): { rssKiB: number; hwmKiB: number } {
  const get = (k: string) => {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB$`, "m").exec(text);
    if (!m) throw new Error(`/proc status has no ${k}`);
    return Number(m[1]);
  };
  return { rssKiB: get("VmRSS"), hwmKiB: get("VmHWM") };
}

/** Per-step durations (ms) from the agent's `step finished`/`step failed` log lines. */
export function stepTimings(recs: LogRec[]): { step: string; outcome: string; ms: number }[] {
  return recs.filter((r) =>
    typeof r.step === "string" && typeof r.durationMs === "number" &&
    (r.msg === "step finished" || r.msg === "step failed")
  ).map((r) => ({ step: r.step, outcome: r.outcome, ms: r.durationMs }));
}

/** A child whose stdout is JSON log lines; resolves `until` when `done(rec)` holds. */
function spawnLogged(cmd: string, args: string[], done: (r: LogRec) => boolean, timeoutMs: number) {
  const started = performance.now();
  const child = new Deno.Command(cmd, {
    args,
    cwd: REPO,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NOTIFY_SOCKET: "" },
  }).spawn();
  const recs: { t: number; rec: LogRec }[] = [];
  const stderr = new Response(child.stderr).text();
  const until = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} timed out`)), timeoutMs);
    (async () => {
      let buf = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          let rec: LogRec;
          try {
            rec = JSON.parse(line);
          } catch {
            continue;
          }
          recs.push({ t: performance.now() - started, rec });
          if (done(rec)) {
            clearTimeout(timer);
            resolve();
          }
        }
      }
      clearTimeout(timer);
      reject(new Error(`${cmd} exited before its final state: ${(await stderr).slice(-800)}`));
    })().catch(reject);
  });
  return {
    pid: child.pid,
    recs,
    until,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await stderr.catch(() => "");
    },
  };
}

async function rssOf(pid: number) {
  return parseProcStatus(await Deno.readTextFile(`/proc/${pid}/status`));
}

async function pcr0(sw: Swtpm): Promise<string> {
  const tpm = Tpm.open(sw.spec);
  try {
    const v = await tpm.pcrRead([{ hash: TPM_ALG.SHA256, pcrs: [0] }]);
    return toHex(v.get(TPM_ALG.SHA256)!.get(0)!);
  } finally {
    await tpm.close();
  }
}

async function bundled(args: string[]): Promise<void> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...NODE_FLAGS, BUNDLE, ...args],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!o.success) {
    throw new Error(`confidant ${args.join(" ")}: ${new TextDecoder().decode(o.stderr)}`);
  }
}

function agentYaml(o: { kmsPort: number; fp: string; sw: Swtpm; disk: string; port: number }) {
  return `kms:\n  url: https://127.0.0.1:${o.kmsPort}\n  fingerprint: ${o.fp}\n` +
    `tpm:\n  device: ${o.sw.spec}\ndisk:\n  device: ${o.disk}\n  cluster: bench\n` +
    `role: worker\nnodeName:\n  source: config\n  name: bench-node\n` +
    `kubeadm:\n  join: false\nlisten: 127.0.0.1:${o.port}\n`;
}

const SETTLE_MS = 2000;
/** V8 flags of the small-heap variant. */
const SMALL_HEAP = ["--max-old-space-size=64", "--max-semi-space-size=1"];

/** Resident memory of the same deno, same flags, idling on an empty program. */
async function runtimeFloor(dir: string) {
  const idle = join(dir, "idle.js");
  await Deno.writeTextFile(idle, "setTimeout(() => {}, 60_000);\n");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...NODE_FLAGS, idle],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    return await rssOf(child.pid);
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}
const MB = 1e6;

/** Run both and report. */
export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  await Deno.stat(BUNDLE).catch(() => {
    throw new Error("dist/confidant.js missing: run footprint (deno task bundle) first");
  });
  const dir = await Deno.makeTempDir({ prefix: "confidant-bench-agent-" });
  const sws: Swtpm[] = [];
  const children: { stop(): Promise<void> }[] = [];
  try {
    ctx.log("three swtpm with EK certificates (one per agent run), kms init");
    for (let i = 0; i < 3; i++) sws.push(await startSwtpm({ ekCert: true }));
    const [timelineTpm, realTpm, smallTpm] = sws;
    const state = join(dir, "kms");
    const kek = join(dir, "kek");
    await bundled([
      "kms",
      "init",
      "--state-dir",
      state,
      "--kek-file",
      kek,
      "--cluster-id",
      "bench",
    ]);
    const policy = join(dir, "policy.json");
    await Deno.writeTextFile(
      policy,
      JSON.stringify({
        pcrs: { "0": { expected: [...new Set(await Promise.all(sws.map(pcr0)))] } },
        ak: { ekCaCertificates: sws.map((s) => s.ekCaPem!) },
      }),
    );
    const kmsPort = freePort();
    ctx.log("kms serve (bundle)");
    let fp = "";
    const kms = spawnLogged(Deno.execPath(), [
      "run",
      ...NODE_FLAGS,
      BUNDLE,
      "kms",
      "serve",
      "--state-dir",
      state,
      "--kek-file",
      kek,
      "--policy",
      policy,
      "--listen",
      `127.0.0.1:${kmsPort}`,
      "--json",
    ], (r) => {
      if (typeof r.fingerprint === "string") fp = r.fingerprint;
      return fp !== "";
    }, 60_000);
    children.push(kms);
    await kms.until;

    ctx.log("agent timeline (boot machine, in-memory disk)");
    const tYaml = join(dir, "timeline.yaml");
    await Deno.writeTextFile(
      tYaml,
      agentYaml({ kmsPort, fp, sw: timelineTpm, disk: "/dev/memory-disk", port: freePort() }),
    );
    const tl = spawnLogged(
      Deno.execPath(),
      ["run", "-A", "--quiet", join(REPO, "bench", "_agent_host.ts"), tYaml],
      (r) => r.bench === "final",
      120_000,
    );
    children.push(tl);
    await tl.until;
    const final = tl.recs.at(-1)!.rec;
    if (!final.ok) {
      const f = tl.recs.find((x) => x.rec.msg === "step failed")?.rec;
      throw new Error(`agent timeline boot failed: ${JSON.stringify(f ?? final)}`);
    }
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const tlRss = await rssOf(tl.pid);
    await tl.stop();
    const firstLog = tl.recs[0].t;
    const unlockedAt = tl.recs.find((x) => x.rec.msg === "node unlocked")!.t;
    const steps = stepTimings(tl.recs.map((x) => x.rec));
    const stepMs = (s: string) => steps.find((x) => x.step === s)?.ms ?? NaN;

    const agentRun = async (sw: Swtpm, v8Flags: string[], tag: string) => {
      const disk = join(dir, `${tag}.img`);
      const f = await Deno.open(disk, { create: true, write: true });
      await f.truncate(64 * 1024 * 1024);
      f.close();
      const yaml = join(dir, `${tag}.yaml`);
      const cmdline = join(dir, "cmdline");
      await Deno.writeTextFile(cmdline, "quiet\n");
      await Deno.writeTextFile(yaml, agentYaml({ kmsPort, fp, sw, disk, port: freePort() }));
      const v8 = v8Flags.length ? [`--v8-flags=${v8Flags.join(",")}`] : [];
      const child = spawnLogged(
        Deno.execPath(),
        [
          "run",
          ...NODE_FLAGS,
          ...v8,
          BUNDLE,
          "agent",
          "run",
          "--config",
          yaml,
          "--cmdline",
          cmdline,
        ],
        (r) => r.msg === "step failed" || r.msg === "node unlocked",
        120_000,
      );
      children.push(child);
      await child.until;
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const rss = await rssOf(child.pid);
      await child.stop();
      const end = child.recs.at(-1)!.rec;
      if (end.msg === "step failed" && end.step !== "disk") {
        throw new Error(`agent run failed before the disk step: ${JSON.stringify(end)}`);
      }
      return { rss, steps: stepTimings(child.recs.map((x) => x.rec)), end };
    };
    ctx.log("confidant agent run (bundle, as the node image runs it): resident memory");
    const real = await agentRun(realTpm, [], "agent");
    ctx.log("the same with a small V8 heap (--max-old-space-size=64, --max-semi-space-size=1)");
    const small = await agentRun(smallTpm, SMALL_HEAP, "agent-small-heap");
    ctx.log("runtime floor: the same deno idling on an empty program");
    const floor = await runtimeFloor(dir);
    const realRss = real.rss;
    const realSteps = real.steps;
    const realEnd = real.end;
    const stepsText = (xs: typeof steps) =>
      xs.map((s) => `${s.step} ${s.ms} ms${s.outcome === "done" ? "" : ` (${s.outcome})`}`)
        .join(", ");

    const where = "host, swtpm, KMS process on loopback";
    const mb = (kib: number) => Number((kib * 1024 / MB).toFixed(1));
    const floorRow = {
      id: "rss.deno_floor",
      label: "deno runtime alone, idle (same binary and flags)",
      value: mb(floor.rssKiB),
      unit: "MB",
    };
    return [
      baselineRow(floorRow, { where: "host" }),
      measured({
        id: "agent.host.start_to_unlocked",
        label: "agent start → state disk mounted, host (in-memory disk, mount recorded only)",
        value: Math.round(unlockedAt),
        unit: "ms",
        baseline: null,
        details: {
          processStartToFirstLogMs: Math.round(firstLog),
          configMs: stepMs("config"),
          releaseMs: stepMs("release"),
          diskInMemoryMs: stepMs("disk"),
          mountRecordedMs: stepMs("mount"),
          steps: stepsText(steps),
          where: `${where}; the disk step is cryptsetup's in-memory backend (no device-mapper ` +
            `here), see the guest rows for the real disk`,
        },
      }),
      measured({
        id: "agent.host.release",
        label: "agent attest + release from the KMS (swtpm quote, TLS, KMS on loopback)",
        value: stepMs("release"),
        unit: "ms",
        baseline: null,
        details: {
          realAgentRunReleaseMs: realSteps.find((s) => s.step === "release")?.ms ?? "n/a",
          where,
        },
      }),
      measured({
        id: "agent.rss.idle",
        label: "agent resident memory, `confidant agent run` (bundle) in its final state",
        value: mb(realRss.rssKiB),
        unit: "MB",
        baseline: floorRow,
        target: { description: "≤ 80 MB resident", of: "value", op: "<=", value: 80 },
        details: {
          peakMB: mb(realRss.hwmKiB),
          smallHeapMB: mb(small.rss.rssKiB),
          smallHeapPeakMB: mb(small.rss.hwmKiB),
          smallHeapFlags: SMALL_HEAP.join(" "),
          finalState: `${realEnd.msg}${realEnd.code ? ` (${realEnd.code})` : ""}`,
          realSteps: stepsText(realSteps),
          timelineChildUnlockedMB: mb(tlRss.rssKiB),
          timelineChildPeakMB: mb(tlRss.hwmKiB),
          where: `${where}; the real entry stops at the disk step (no device-mapper here)`,
        },
      }),
    ];
  } finally {
    for (const c of children.reverse()) await c.stop().catch(() => {});
    for (const s of sws) await s.stop().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
