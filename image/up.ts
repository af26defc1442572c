/**
 * Cluster in a box: `confidant up` starts a KMS on the host's loopback and one
 * QEMU node booting the measured UKI; `confidant down` stops exactly the
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
 * 4. swtpm with an EK certificate, a sparse state disk, QEMU with user-mode
 *    networking; the console streams until the agent reports or exits.
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
import { provisionSwtpm, startUefiVm, waitForConsole } from "./vm.ts";

/** What `up` records for `down`. */
export interface UpState {
  /** PID → the program name it must still run (checked in /proc before killing). */
  processes: { pid: number; program: string; role: string }[];
  kmsUrl: string;
  consolePath: string;
  uki: string;
}

/** Options of {@link up}. */
export interface UpOptions {
  /** Working directory (default `<repo>/.cache/up`). */
  dir?: string;
  /** KMS port on 127.0.0.1 (default 18443). */
  port?: number;
  /** Stop streaming after this long (the node keeps running). */
  waitMs?: number;
  /** Progress lines. */
  log: (line: string) => void;
}

const STATE_DISK_BYTES = 2 * 1024 ** 3;

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

/** Start the KMS and one node; returns the recorded state. */
export async function up(opts: UpOptions): Promise<UpState> {
  const repo = await findRepoRoot();
  const dir = opts.dir ?? join(repo, ".cache/up");
  const port = opts.port ?? 18443;
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

  // 1. KMS (empty policy until the image is measured)
  await atomicWriteFile(policyPath, JSON.stringify({ pcrs: {} }));
  log("kms: starting");
  const kms = await startKms({
    repo,
    stateDir: join(dir, "kms"),
    kekFile: join(dir, "kek"),
    policyPath,
    port,
    logPath: join(dir, "kms.log"),
    errPath: join(dir, "kms.err"),
    detached: true,
  });
  const state: UpState = {
    processes: [{ pid: kms.pid, program: "deno", role: "kms" }],
    kmsUrl: `https://127.0.0.1:${port} (guest: https://${KMS_GUEST_ADDR})`,
    consolePath: "",
    uki: "",
  };
  await atomicWriteFile(join(dir, "state.json"), JSON.stringify(state));
  log(`kms: ${state.kmsUrl}, TLS sha256 ${kms.fingerprint}`);

  // 2. image
  log("image: building or reusing the node UKI");
  const img = await buildNodeImage({
    repoRoot: repo,
    cacheDir: join(repo, ".cache/image"),
    deno: Deno.execPath(),
    extraCmdline: nodeCmdline(kms.fingerprint),
  });
  state.uki = img.uki;
  log(`image: ${img.uki} (${img.cached ? "cached" : "built"}, sha256 ${img.sha256})`);

  // 3. policy
  const nodeDir = join(dir, "node0");
  await provisionSwtpm(join(nodeDir, "tpm"));
  await writeClusterPolicy(policyPath, await Deno.readFile(img.uki), await swtpmLocalCaPems());
  log("kms: policy written (PCR 4, 11, 12 of the image; EK CA = swtpm local CA)");

  // 4. node
  const disk = join(nodeDir, "state.img");
  await createSparseDisk(disk, STATE_DISK_BYTES);
  const vm = await startUefiVm({
    uki: img.uki,
    runDir: nodeDir,
    tpmStateDir: join(nodeDir, "tpm"),
    disks: [{ path: disk, serial: STATE_DISK_SERIAL }],
    network: true,
    kmsHostPort: port,
    detached: true,
  });
  state.processes.push(
    { pid: vm.qemuPid, program: "qemu-system-x86_64", role: "node0 qemu" },
    { pid: vm.swtpmPid, program: "swtpm", role: "node0 swtpm" },
  );
  state.consolePath = vm.consolePath;
  await atomicWriteFile(join(dir, "state.json"), JSON.stringify(state));
  log(`node0: booting (qemu pid ${vm.qemuPid}, console ${vm.consolePath})`);
  const r = await waitForConsole(
    vm,
    /confidant-node: agent exited|"msg":"ready"|"outcome":"failed"|reboot: Power down/,
    opts.waitMs ?? 15 * 60_000,
    (l) => log(`node0| ${l}`),
  );
  log(r.matched ? "node0: agent reported (see above)" : "node0: still booting; it keeps running");
  vm.detach();
  kms.detach();
  return state;
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
