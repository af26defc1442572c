/**
 * KMS admissions: complete begin + finish exchanges (EK chain, MakeCredential, activated
 * secret, quote signature, PCR policy, disk key derivation and record, HPKE seal) against the
 * production KMS code in one process per core sharing the port (bench/_kms_worker.ts,
 * SO_REUSEPORT), from SIMULATED nodes (bench/_soft_tpm.ts: software EK/AK keys, TPM-format
 * evidence) in this process, each node on its own loopback source address over its own TLS
 * connections (one per request, as the agent does).
 *
 * Core split: the KMS processes and this load generator share the machine's cores, so the
 * throughput figure is admissions per CPU-second of the KMS processes (read from
 * /proc/<pid>/stat), times the cores the KMS uses: what it would do with those cores to
 * itself. The baseline is `openssl speed` P-256 verify/s times the same cores — the physical
 * limit if an admission cost nothing but its one quote signature check. Wall-clock rates and
 * the load generator's CPU are in the details.
 *
 * Latency: storms of 100, 1,000 and (full run) 5,000 distinct nodes starting at once, each
 * admitted once; a 429/503 answer is retried after Retry-After (plus jitter), as the agent
 * does. Reported: p50/p95/p99 of a successful exchange, p99 of time-to-admitted, and every
 * status counted (429 and 5xx separately).
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { toHex } from "../lib/bytes.ts";
import { postRetryingOverload } from "../kms/client.ts";
import { FileStore } from "../kms/file_store.ts";
import { BEGIN_PATH, FINISH_PATH } from "../kms/protocol.ts";
import { initKms } from "../kms/server.ts";
import { loadOrCreateTlsIdentity } from "../kms/tls.ts";
import {
  baselineRow,
  type BenchContext,
  type BenchResult,
  cpuSeconds,
  measured,
} from "./_frame.ts";
import {
  createSoftCa,
  createSoftNode,
  simulatedPcrs,
  softAdmit,
  type SoftNode,
  softRequest,
} from "./_soft_tpm.ts";
import {
  percentile,
  processCpuSeconds,
  processMemory,
  sourceAddress,
  sourceBoundTransport,
  StatusCounts,
} from "./_load.ts";
import { BASELINE_IDS } from "./openssl_speed.ts";

/** Module name. */
export const name = "kms_admissions";
/** After the ECDSA engines. */
export const order = 20;

const PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const WORKER = fileURLToPath(new URL("./_kms_worker.ts", import.meta.url));
const REPO = fileURLToPath(new URL("../", import.meta.url));

/** A started set of KMS worker processes. */
interface KmsFleet {
  port: number;
  fingerprint: string;
  pids: number[];
  alive(): boolean;
  stop(): Promise<void>;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function startFleet(dir: string, caPem: string, workers: number): Promise<KmsFleet> {
  const kek = crypto.getRandomValues(new Uint8Array(32));
  const stateDir = join(dir, "state");
  await initKms(new FileStore(stateDir), kek, "bench");
  const tls = await loadOrCreateTlsIdentity(stateDir, kek, ["127.0.0.1"]);
  const policyPath = join(dir, "policy.json");
  const pcrs = simulatedPcrs();
  await Deno.writeTextFile(
    policyPath,
    JSON.stringify({
      pcrs: Object.fromEntries(PCRS.map((p) => [String(p), { expected: [toHex(pcrs[p])] }])),
      ak: { ekCaCertificates: [caPem] },
    }),
  );
  const port = freePort();
  const procs: Deno.ChildProcess[] = [];
  const exited: boolean[] = [];
  for (let w = 0; w < workers; w++) {
    const p = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--unstable-net",
        // Profiling a run: CONFIDANT_BENCH_KMS_CPU_PROF=DIR writes one .cpuprofile per worker.
        ...(Deno.env.get("CONFIDANT_BENCH_KMS_CPU_PROF")
          ? ["--cpu-prof", `--cpu-prof-dir=${Deno.env.get("CONFIDANT_BENCH_KMS_CPU_PROF")}`]
          : []),
        ...(Deno.env.get("CONFIDANT_BENCH_KMS_V8_FLAGS")
          ? [`--v8-flags=${Deno.env.get("CONFIDANT_BENCH_KMS_V8_FLAGS")}`]
          : []),
        WORKER,
      ],
      cwd: REPO,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const err = { text: "" };
    (async () => {
      for await (const c of p.stderr.pipeThrough(new TextDecoderStream())) {
        err.text = (err.text + c).slice(-4000);
      }
    })().catch(() => {});
    procs.push(p);
    exited.push(false);
    p.status.then(() => (exited[w] = true));
    const writer = p.stdin.getWriter();
    await writer.write(new TextEncoder().encode(
      JSON.stringify({
        stateDir,
        policyPath,
        auditPath: join(dir, `audit-${w}.jsonl`),
        kek: toHex(kek),
        port,
      }) + "\n",
    ));
    await writer.close();
    const reader = p.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const until = Date.now() + 60_000;
    while (!/listening \d+/.test(text)) {
      if (Date.now() > until) throw new Error("a KMS worker did not listen within 60 s");
      const r = await reader.read();
      if (r.done) {
        await p.status;
        throw new Error(`a KMS worker exited: ${text} ${err.text}`);
      }
      text += r.value;
    }
    // Keep draining stdout so the worker never blocks on a full pipe.
    (async () => {
      while (!(await reader.read()).done) { /* drain */ }
    })().catch(() => {});
  }
  kek.fill(0);
  return {
    port,
    fingerprint: tls.fingerprint,
    pids: procs.map((p) => p.pid),
    alive: () => exited.every((e) => !e),
    async stop() {
      for (const p of procs) {
        try {
          p.kill("SIGTERM");
        } catch { /* gone */ }
      }
      const t = setTimeout(() => {
        for (const p of procs) {
          try {
            p.kill("SIGKILL");
          } catch { /* gone */ }
        }
      }, 10_000);
      await Promise.all(procs.map((p) => p.status));
      clearTimeout(t);
    },
  };
}

async function makePool(
  ctx: BenchContext,
  size: number,
): Promise<{ ca: string; nodes: SoftNode[] }> {
  const ca = await createSoftCa();
  const nodes: SoftNode[] = new Array(size);
  let k = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (k < size) {
      const i = k++;
      nodes[i] = await createSoftNode(ca, i);
    }
  }));
  ctx.log(`${size} simulated nodes in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { ca: ca.certPem, nodes };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Admit `node` once, as the agent does: one kept-alive pinned TLS connection, every 429
 * waited out with the KMS's jittered hint (`postRetryingOverload`), a connection error retried
 * on a new connection after a jittered pause, until `deadline` (performance.now ms). Every
 * answer is counted. `exchangeMs` is the accepted exchange as the node sees it: the round trip
 * of the `begin` the KMS admitted plus that of the `finish` (the node's own TPM work between
 * them is excluded: here it is simulated on the load generator's shared cores); `kmsMs` is the
 * KMS's own time for the two (its server-timing header); `totalMs` is from the first attempt
 * to the release, waits after 429s included.
 */
async function admit(
  fleet: KmsFleet,
  node: SoftNode,
  salt: number,
  counts: StatusCounts,
  deadline: number,
): Promise<
  { ok: true; exchangeMs: number; kmsMs: number; totalMs: number } | { ok: false }
> {
  const t0 = performance.now();
  while (true) {
    const transport = sourceBoundTransport(
      fleet.port,
      fleet.fingerprint,
      sourceAddress(node.index),
    );
    // Round trips and KMS time (server-timing) of the admitted begin and finish.
    const rtt: Record<string, number> = {};
    const kms: Record<string, number> = {};
    const counting = {
      post: async (path: string, body: unknown) => {
        const sent = performance.now();
        const r = await transport.post(path, body);
        counts.add(r.status);
        if (r.status === 200) {
          rtt[path] = performance.now() - sent;
          kms[path] = r.serverMs ?? NaN;
        }
        return r;
      },
    };
    const retrying = {
      post: (path: string, body: unknown) =>
        postRetryingOverload(counting, path, body, {
          deadlineMs: Math.max(0, deadline - performance.now()),
        }),
    };
    try {
      const r = await softAdmit(node, retrying, softRequest(node.index, salt), PCRS);
      const end = performance.now();
      if (r.ok) {
        return {
          ok: true,
          exchangeMs: rtt[BEGIN_PATH] + rtt[FINISH_PATH],
          kmsMs: kms[BEGIN_PATH] + kms[FINISH_PATH],
          totalMs: end - t0,
        };
      }
      if (r.status !== 429) throw new Error(`refused: ${r.error}`);
      return { ok: false };
    } catch (e) {
      if (e instanceof Error && e.message.startsWith("refused")) throw e;
      counts.add("conn");
      if (performance.now() > deadline) return { ok: false };
      await sleep(200 * (0.5 + Math.random()));
    } finally {
      transport.close();
    }
  }
}

function kmsCpu(fleet: KmsFleet): number {
  return fleet.pids.reduce((s, p) => s + processCpuSeconds(p), 0);
}

function kmsMemory(fleet: KmsFleet) {
  const m = fleet.pids.map(processMemory);
  return {
    rssMiB: m.reduce((s, x) => s + x.rssMiB, 0),
    peakMiB: m.reduce((s, x) => s + x.peakMiB, 0),
    perProcess: m.map((x) => `${x.rssMiB.toFixed(0)}/${x.peakMiB.toFixed(0)}`).join(" "),
  };
}

/** Closed-loop throughput with `concurrency` nodes in flight for `seconds`. */
async function throughput(
  fleet: KmsFleet,
  nodes: SoftNode[],
  seconds: number,
  concurrency: number,
) {
  const counts = new StatusCounts();
  const lat: number[] = [];
  let next = 0;
  const c0 = kmsCpu(fleet);
  const g0 = cpuSeconds();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const i = next++;
      const r = await admit(
        fleet,
        nodes[i % nodes.length],
        Math.floor(i / nodes.length),
        counts,
        end + 30_000,
      );
      if (r.ok) lat.push(r.exchangeMs);
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  return {
    admitted: lat.length,
    wall,
    kmsCpu: kmsCpu(fleet) - c0,
    genCpu: cpuSeconds() - g0,
    counts,
    lat,
  };
}

/** `n` distinct nodes start at once; each is admitted once, waiting out 429s. */
async function storm(fleet: KmsFleet, nodes: SoftNode[], n: number, deadlineS: number) {
  const counts = new StatusCounts();
  const exchangeMs: number[] = [];
  const kmsMs: number[] = [];
  const toAdmitted: number[] = [];
  let gaveUp = 0;
  const t0 = performance.now();
  const deadline = t0 + deadlineS * 1000;
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    const r = await admit(fleet, nodes[i], 1000 + n, counts, deadline);
    if (r.ok) {
      exchangeMs.push(r.exchangeMs);
      kmsMs.push(r.kmsMs);
      toAdmitted.push(performance.now() - t0);
    } else gaveUp++;
  }));
  return {
    counts,
    exchangeMs,
    kmsMs,
    toAdmitted,
    gaveUp,
    wall: (performance.now() - t0) / 1000,
  };
}

/** Run the admission benchmarks. */
export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const cores = navigator.hardwareConcurrency;
  const workers = cores;
  const levels = ctx.quick ? [100, 1000] : [100, 1000, 5000];
  const { ca, nodes } = await makePool(ctx, Math.max(...levels));
  const dir = await Deno.makeTempDir({ prefix: "confidant-bench-kms-" });
  const results: BenchResult[] = [];
  let fleet: KmsFleet | undefined;
  try {
    fleet = await startFleet(dir, ca, workers);
    await sleep(500);
    const idle = kmsMemory(fleet);
    ctx.log(
      `${workers} KMS processes on port ${fleet.port}; idle RSS ${idle.rssMiB.toFixed(0)} MiB`,
    );

    // Warm-up (JIT, caches of the first identities), then the measured closed loop.
    await throughput(fleet, nodes, ctx.seconds(2, 1), 32);
    const seconds = ctx.seconds(20, 6);
    const concurrency = 64;
    ctx.log(`throughput: ${concurrency} nodes in flight for ${seconds} s`);
    const tp = await throughput(fleet, nodes, seconds, concurrency);
    const p256 = ctx.baseline(BASELINE_IDS["P-256"]);
    const limit = {
      id: `${BASELINE_IDS["P-256"]}.x${workers}`,
      label: `openssl P-256 verify/s × ${workers} KMS cores (1 quote check per admission)`,
      value: p256.value * workers,
      unit: "verify/s",
    };
    ctx.setBaseline(limit);
    results.push(baselineRow(limit, { perCore: Math.round(p256.value), cores: workers }));
    const perKmsCpu = tp.admitted / tp.kmsCpu;
    results.push(measured({
      id: "kms.admissions",
      label: `KMS admissions/s on ${workers} cores (begin+finish, one TLS connection)`,
      value: perKmsCpu * workers,
      unit: "admission/s",
      baseline: limit,
      target: {
        description: "≥ 50 % of the raw P-256 verify limit of the cores the KMS uses",
        of: "ratio",
        op: ">=",
        value: 0.5,
      },
      details: {
        note: "admissions per KMS CPU-second × KMS processes; simulated nodes (software TPM)",
        admitted: tp.admitted,
        admissionsPerKmsCpuSecond: Math.round(perKmsCpu),
        kmsCpuMsPerAdmission: Number((1000 / perKmsCpu).toFixed(2)),
        wallSeconds: Number(tp.wall.toFixed(2)),
        wallAdmissionsPerSecond: Math.round(tp.admitted / tp.wall),
        kmsCpuSeconds: Number(tp.kmsCpu.toFixed(2)),
        loadGeneratorCpuSeconds: Number(tp.genCpu.toFixed(2)),
        coreSplit:
          `${workers} KMS processes (SO_REUSEPORT) + 1 load generator on ${cores} shared cores`,
        statuses: tp.counts.toString(),
        p50ms: Number(percentile(tp.lat, 50).toFixed(1)),
        p99ms: Number(percentile(tp.lat, 99).toFixed(1)),
        concurrency,
      },
    }));

    for (const n of levels) {
      ctx.log(`storm: ${n} nodes at once`);
      const s = await storm(fleet, nodes, n, ctx.seconds(120, 60));
      const p = (q: number) => Number(percentile(s.exchangeMs, q).toFixed(1));
      const details = {
        p50ms: p(50),
        p95ms: p(95),
        p99ms: p(99),
        kmsSideP50ms: Number(percentile(s.kmsMs, 50).toFixed(1)),
        kmsSideP99ms: Number(percentile(s.kmsMs, 99).toFixed(1)),
        timeToAdmittedP50ms: Number(percentile(s.toAdmitted, 50).toFixed(0)),
        timeToAdmittedP99ms: Number(percentile(s.toAdmitted, 99).toFixed(0)),
        allAdmittedAfterMs: Number(Math.max(0, ...s.toAdmitted).toFixed(0)),
        admitted: s.exchangeMs.length,
        gaveUp: s.gaveUp,
        statuses: s.counts.toString(),
        status429: s.counts.get("429"),
        status5xx: s.counts.fiveXx,
        connectionErrors: s.counts.get("conn"),
        wallSeconds: Number(s.wall.toFixed(2)),
        kmsUp: fleet.alive() ? "yes" : "NO",
      };
      results.push(measured({
        id: `kms.latency.p99.${n}`,
        label: `KMS accepted begin+finish p99, ${n.toLocaleString("en-US")} nodes at once`,
        value: p(99),
        unit: "ms",
        baseline: null,
        target: n === 1000
          ? {
            description: "p99 ≤ 50 ms at 1,000 concurrent nodes",
            of: "value",
            op: "<=",
            value: 50,
          }
          : undefined,
        details,
      }));
      ctx.log(
        `  ${n}: accepted exchange p50/p95/p99 ${p(50)}/${p(95)}/${p(99)} ms (KMS side p99 ` +
          `${details.kmsSideP99ms} ms); all admitted after ${details.allAdmittedAfterMs} ms; ` +
          `${details.statuses}; gave up ${s.gaveUp}`,
      );
      results.push(measured({
        id: `kms.storm.all_admitted.${n}`,
        label: `KMS time until all ${
          n.toLocaleString("en-US")
        } nodes are admitted (429s waited out)`,
        value: details.allAdmittedAfterMs,
        unit: "ms",
        baseline: null,
        details: { status429: details.status429, gaveUp: s.gaveUp, admitted: details.admitted },
      }));
      if (n === Math.max(...levels)) {
        results.push(measured({
          id: `kms.overload.5xx.${n}`,
          label: `KMS 5xx answers + dead processes, ${n.toLocaleString("en-US")} nodes at once`,
          value: s.counts.fiveXx + (fleet.alive() ? 0 : 1000000),
          unit: "count",
          baseline: null,
          target: {
            description: "no crash and no 5xx (429 is fine)",
            of: "value",
            op: "<=",
            value: 0,
          },
          details,
        }));
      }
    }
    const loaded = kmsMemory(fleet);
    results.push(measured({
      id: "kms.rss.load",
      label: `KMS resident memory, peak under load (${workers} processes)`,
      value: loaded.peakMiB,
      unit: "MiB",
      baseline: null,
      target: {
        description: "KMS ≤ 200 MB under load",
        of: "value",
        op: "<=",
        value: 200 / 1.048576,
      },
      details: {
        idleRssMiB: Number(idle.rssMiB.toFixed(1)),
        afterLoadRssMiB: Number(loaded.rssMiB.toFixed(1)),
        perProcessRssPeakMiB: loaded.perProcess,
      },
    }));
  } finally {
    await fleet?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return results;
}
