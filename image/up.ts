/**
 * Cluster in a box: `confidant up` starts a KMS on the host's loopback and one
 * or more QEMU nodes booting the measured UKI, waits until each node's agent
 * reports (disk unlocked and mounted, or a step failed) and returns a summary
 * (attestation identity, PCRs, KMS decision, disk, time per step); `confidant down` stops exactly the
 * processes `up` started (by PID, after checking each PID still runs the
 * program that was started). The KMS, swtpm and QEMU run in their own sessions
 * (setsid) so they outlive `up` and a Ctrl-C in its terminal.
 *
 * Order of `up` (each step reuses what a previous `up` left in the directory):
 * 1. `kms init` (once), then `kms serve` on 127.0.0.1:PORT with its self-signed
 *    certificate and an empty policy; its TLS fingerprint is read from its output.
 * 2. The node image, with `confidant.kms=https://10.0.2.100:8443` (forwarded by
 *    QEMU to the host port), the fingerprint, the disk and the role on its
 *    measured command line (same certificate → the cached image is reused).
 * 3. The policy: `image measure` PCRs plus swtpm's local CA as EK CA; the KMS
 *    reloads it.
 * 4. Per node: swtpm with an EK certificate, a sparse state disk, QEMU with
 *    user-mode networking whose DHCP server names the node (`confidant-node-N`);
 *    the consoles stream until each agent reports. The box has no Kubernetes:
 *    the nodes run with `confidant.join=false` and end in phase `unlocked`.
 *
 * @module
 */
import { join } from "node:path";
import { atomicWriteFile } from "../lib/atomic_write.ts";
import { ConfidantError } from "../lib/errors.ts";
import {
  createSparseDisk,
  KMS_GUEST_ADDR,
  nodeCmdline,
  startKms,
  STATE_DISK_SERIAL,
  swtpmLocalCaPems,
  writeClusterPolicy,
} from "./cluster.ts";
import { buildNodeImage, findRepoRoot } from "./node_image.ts";
import { measureUki } from "./measure.ts";
import { ZERO_PCR } from "./policy_pcrs.ts";
import { toHex } from "../lib/bytes.ts";
import { type BoxSummaryInput, nodeSucceeded, parseNodeConsole } from "./box_summary.ts";
import { provisionSwtpm, startUefiVm, waitForConsole } from "./vm.ts";

/** What `up` records for `down`. */
export interface UpState {
  /** PID → the program name it must still run (checked in /proc before killing). */
  processes: { pid: number; program: string; role: string }[];
  kmsUrl: string;
  /** Console file of each node, in node order. */
  consoles: string[];
  uki: string;
}

/** Options of {@link up}. */
export interface UpOptions {
  /** Working directory (default `<repo>/.cache/up`). */
  dir?: string;
  /** KMS port on 127.0.0.1 (default 18443). */
  port?: number;
  /** Number of nodes (default 1), each with its own vTPM, state disk and host name. */
  nodes?: number;
  /** Stop streaming after this long (the nodes keep running). */
  waitMs?: number;
  /** Progress lines. */
  log: (line: string) => void;
}

/** What {@link up} returns: the state for `down` and the summary of the boot. */
export interface UpResult {
  state: UpState;
  summary: BoxSummaryInput;
  /** Every node unlocked its disk. */
  ok: boolean;
}

const STATE_DISK_BYTES = 2 * 1024 ** 3;
/** Upper bound on `--nodes` (each node is a 2 GiB TCG guest). */
export const MAX_BOX_NODES = 8;

async function readState(dir: string): Promise<UpState | null> {
  try {
    return JSON.parse(await Deno.readTextFile(join(dir, "state.json"))) as UpState;
  } catch {
    return null;
  }
}

/** Whether `pid` is alive and its command line names `program` (guards against PID reuse). */
export async function runsProgram(pid: number, program: string): Promise<boolean> {
  try {
    const cmd = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    return cmd.split("\0").some((a) => a.endsWith(program) || a === program);
  } catch {
    return false;
  }
}

/** Host name of node `i` (given to it by QEMU's DHCP server; the agent's node name). */
export function boxNodeName(i: number): string {
  return `confidant-node-${i}`;
}

/** The console line after which a node's agent has nothing more to report. */
export const NODE_DONE =
  /"msg":"node (unlocked|ready)"|"msg":"step failed"|confidant-node: agent exited|reboot: Power down/;

/** Start the KMS and the nodes, wait until each node's agent reports; returns the summary. */
export async function up(opts: UpOptions): Promise<UpResult> {
  const t0 = Date.now();
  const repo = await findRepoRoot();
  const dir = opts.dir ?? join(repo, ".cache/up");
  const port = opts.port ?? 18443;
  const count = opts.nodes ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > MAX_BOX_NODES) {
    throw new ConfidantError("up.nodes", `--nodes must be 1..${MAX_BOX_NODES}`);
  }
  const log = opts.log;
  const prev = await readState(dir);
  if (prev) {
    for (const p of prev.processes) {
      if (await runsProgram(p.pid, p.program)) {
        throw new ConfidantError(
          "up.running",
          `already up (${p.role} pid ${p.pid}): run confidant down`,
        );
      }
    }
  }
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const policyPath = join(dir, "policy.json");
  const hostTimes: [string, number][] = [];
  const timed = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const s = Date.now();
    const v = await f();
    hostTimes.push([name, Date.now() - s]);
    return v;
  };

  // 1. KMS (empty policy until the image is measured)
  await atomicWriteFile(policyPath, JSON.stringify({ pcrs: {} }));
  log("kms: starting");
  const kms = await timed("kms start", () =>
    startKms({
      repo,
      stateDir: join(dir, "kms"),
      kekFile: join(dir, "kek"),
      policyPath,
      port,
      logPath: join(dir, "kms.log"),
      errPath: join(dir, "kms.err"),
      detached: true,
    }));
  const state: UpState = {
    processes: [{ pid: kms.pid, program: "deno", role: "kms" }],
    kmsUrl: `https://127.0.0.1:${port} (guest: https://${KMS_GUEST_ADDR})`,
    consoles: [],
    uki: "",
  };
  await atomicWriteFile(join(dir, "state.json"), JSON.stringify(state));
  log(`kms: ${state.kmsUrl}, TLS sha256 ${kms.fingerprint}`);

  // 2. image
  log("image: building or reusing the node UKI");
  const img = await timed("image", () =>
    buildNodeImage({
      repoRoot: repo,
      cacheDir: join(repo, ".cache/image"),
      deno: Deno.execPath(),
      extraCmdline: nodeCmdline(kms.fingerprint),
    }));
  state.uki = img.uki;
  log(`image: ${img.uki} (${img.cached ? "cached" : "built"}, sha256 ${img.sha256})`);

  // 3. policy
  const expected = await timed("policy", async () => {
    const uki = await Deno.readFile(img.uki);
    await writeClusterPolicy(policyPath, uki, await swtpmLocalCaPems());
    const m = await measureUki(uki);
    return { "4": toHex(m.pcr4), "11": toHex(m.pcr11), "12": ZERO_PCR };
  });
  log("kms: policy written (PCR 4, 11, 12 of the image; EK CA = swtpm local CA)");

  // 4. nodes
  const nodes: { label: string; vm: Awaited<ReturnType<typeof startUefiVm>>; started: number }[] =
    [];
  for (let i = 0; i < count; i++) {
    const label = `node${i}`;
    const nodeDir = join(dir, label);
    await provisionSwtpm(join(nodeDir, "tpm"));
    const disk = join(nodeDir, "state.img");
    await createSparseDisk(disk, STATE_DISK_BYTES);
    const vm = await startUefiVm({
      uki: img.uki,
      runDir: nodeDir,
      tpmStateDir: join(nodeDir, "tpm"),
      disks: [{ path: disk, serial: STATE_DISK_SERIAL }],
      network: true,
      kmsHostPort: port,
      hostname: boxNodeName(i),
      detached: true,
    });
    state.processes.push(
      { pid: vm.qemuPid, program: "qemu-system-x86_64", role: `${label} qemu` },
      { pid: vm.swtpmPid, program: "swtpm", role: `${label} swtpm` },
    );
    state.consoles.push(vm.consolePath);
    await atomicWriteFile(join(dir, "state.json"), JSON.stringify(state));
    log(`${label}: booting ${boxNodeName(i)} (qemu pid ${vm.qemuPid}, console ${vm.consolePath})`);
    nodes.push({ label, vm, started: Date.now() });
  }
  const results = await Promise.all(nodes.map(async (n) => {
    let agentAt: number | undefined;
    const r = await waitForConsole(n.vm, NODE_DONE, opts.waitMs ?? 15 * 60_000, (l) => {
      if (agentAt === undefined && l.includes("confidant-node: starting confidant agent")) {
        agentAt = Date.now();
      }
      log(`${n.label}| ${l}`);
    });
    const doneAt = Date.now();
    const hostT: [string, number][] = [];
    if (agentAt !== undefined) {
      hostT.push(["boot to agent", agentAt - n.started], ["agent in all", doneAt - agentAt]);
    } else hostT.push(["boot", doneAt - n.started]);
    if (!r.matched) log(`${n.label}: no final report yet; it keeps running`);
    return { label: n.label, report: parseNodeConsole(r.console), hostTimes: hostT };
  }));
  for (const n of nodes) n.vm.detach();
  kms.detach();
  const summary: BoxSummaryInput = {
    kmsUrl: state.kmsUrl,
    kmsFingerprint: kms.fingerprint,
    uki: img.uki,
    ukiSha256: img.sha256,
    ukiCached: img.cached,
    expected,
    hostTimes,
    nodes: results,
    totalMs: Date.now() - t0,
  };
  return { state, summary, ok: results.every((n) => nodeSucceeded(n.report)) };
}

/** Stop every process `up` recorded (SIGTERM, then SIGKILL after 10 s); returns what was stopped. */
export async function down(opts: { dir?: string; log: (l: string) => void }): Promise<number> {
  const dir = opts.dir ?? join(await findRepoRoot(), ".cache/up");
  const st = await readState(dir);
  if (!st) {
    opts.log("nothing is up");
    return 0;
  }
  let n = 0;
  for (const p of [...st.processes].reverse()) {
    if (!(await runsProgram(p.pid, p.program))) continue;
    Deno.kill(p.pid, "SIGTERM");
    for (let i = 0; i < 40 && await runsProgram(p.pid, p.program); i++) {
      await new Promise((r) => setTimeout(r, 250));
    }
    if (await runsProgram(p.pid, p.program)) Deno.kill(p.pid, "SIGKILL");
    opts.log(`stopped ${p.role} (pid ${p.pid})`);
    n++;
  }
  await Deno.remove(join(dir, "state.json")).catch(() => {});
  return n;
}
