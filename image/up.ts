/**
 * Cluster in a box: `confidant up` starts a KMS on the host's loopback and one
 * QEMU node booting the measured UKI; `confidant down` stops exactly the
 * processes `up` started (by PID, after checking each PID still runs the
 * program that was started). The KMS, swtpm and QEMU run in their own sessions
 * (setsid) so they outlive `up` and a Ctrl-C in its terminal.
 *
 * Order of `up` (each step reuses what a previous `up` left in the directory):
 * 1. `kms init` (once), then `kms serve` on 127.0.0.1:PORT with its self-signed
 *    certificate (also valid for 10.0.2.2, the host as the guest sees it) and an
 *    empty policy; its TLS fingerprint is read from its first output line.
 * 2. The node image, with `confidant.kms=https://10.0.2.2:PORT`, the fingerprint,
 *    the disk and the role on its measured command line (same port and
 *    certificate → the cached image is reused).
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
import { measureUki } from "./measure.ts";
import { buildNodeImage, findRepoRoot } from "./node_image.ts";
import { policyPcrs } from "./policy_pcrs.ts";
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
  /** KMS port on 127.0.0.1 (default 18443); part of the measured command line. */
  port?: number;
  /** Stop streaming after this long (the node keeps running). */
  waitMs?: number;
  /** Progress lines. */
  log: (line: string) => void;
}

/** swtpm's local CA certificates (root and issuer), used as EK CAs in the policy. */
export const SWTPM_LOCALCA_CERTS = [
  "/var/lib/swtpm-localca/swtpm-localca-rootca-cert.pem",
  "/var/lib/swtpm-localca/issuercert.pem",
];

const STATE_DISK_BYTES = 2 * 1024 ** 3;
const STATE_DISK_SERIAL = "confidant-state";

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
  const kmsDir = join(dir, "kms");
  const kek = join(dir, "kek");
  const policyPath = join(dir, "policy.json");
  const self = (
    args: string[],
  ) => [Deno.execPath(), "run", "--allow-all", join(repo, "main.ts"), ...args];

  // 1. KMS
  if (!(await Deno.stat(join(kmsDir, ".initialized")).then(() => true, () => false))) {
    log("kms: init");
    const [cmd, ...args] = self(["kms", "init", "--state-dir", kmsDir, "--kek-file", kek]);
    const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    if (!r.success) {
      throw new ConfidantError("up.kms", `kms init failed: ${new TextDecoder().decode(r.stderr)}`);
    }
    await Deno.writeTextFile(join(kmsDir, ".initialized"), "");
  }
  await atomicWriteFile(policyPath, JSON.stringify({ pcrs: {} }));
  const kmsLog = join(dir, "kms.log");
  const [kcmd, ...kargs] = self([
    "kms",
    "serve",
    "--state-dir",
    kmsDir,
    "--kek-file",
    kek,
    "--policy",
    policyPath,
    "--listen",
    `127.0.0.1:${port}`,
    "--san",
    "10.0.2.2",
    "--json",
  ]);
  // through sh so the KMS writes straight to files and outlives this process
  const kms = new Deno.Command("setsid", {
    args: ["sh", "-c", 'exec "$@" > "$KMS_LOG" 2> "$KMS_ERR"', "sh", kcmd, ...kargs],
    env: { KMS_LOG: kmsLog, KMS_ERR: join(dir, "kms.err") },
    cwd: repo,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const state: UpState = {
    processes: [{ pid: kms.pid, program: "deno", role: "kms" }],
    kmsUrl: `https://10.0.2.2:${port}`,
    consolePath: "",
    uki: "",
  };
  await atomicWriteFile(join(dir, "state.json"), JSON.stringify(state));
  let kmsExited = false;
  kms.status.then(() => (kmsExited = true));
  let fingerprint: string | null = null;
  for (let i = 0; i < 240 && !fingerprint && !kmsExited; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const text = await Deno.readTextFile(kmsLog).catch(() => "");
    fingerprint = /"fingerprint"\s*:\s*"([0-9a-f]{64})"/.exec(text)?.[1] ?? null;
  }
  if (!fingerprint) {
    throw new ConfidantError(
      "up.kms",
      `kms serve did not report its fingerprint (see ${kmsLog} and kms.err)`,
    );
  }
  log(`kms: listening on 127.0.0.1:${port} (guest: ${state.kmsUrl}), TLS sha256 ${fingerprint}`);

  // 2. image
  log("image: building or reusing the node UKI");
  const img = await buildNodeImage({
    repoRoot: repo,
    cacheDir: join(repo, ".cache/image"),
    deno: Deno.execPath(),
    extraCmdline: [
      `confidant.kms=${state.kmsUrl}`,
      `confidant.kms_fingerprint=${fingerprint}`,
      `confidant.disk=/dev/disk/by-id/virtio-${STATE_DISK_SERIAL}`,
      "confidant.role=worker",
    ].join(" "),
  });
  state.uki = img.uki;
  log(`image: ${img.uki} (${img.cached ? "cached" : "built"}, sha256 ${img.sha256})`);

  // 3. policy
  const m = await measureUki(await Deno.readFile(img.uki));
  const nodeDir = join(dir, "node0");
  await provisionSwtpm(join(nodeDir, "tpm"));
  const ekCas: string[] = [];
  for (const f of SWTPM_LOCALCA_CERTS) {
    const pem = await Deno.readTextFile(f).catch(() => "");
    if (pem) ekCas.push(pem);
  }
  if (ekCas.length === 0) {
    throw new ConfidantError("up.swtpm", "swtpm's local CA certificates are missing (swtpm-tools)");
  }
  await atomicWriteFile(
    policyPath,
    JSON.stringify({ pcrs: policyPcrs(m), ak: { ekCaCertificates: ekCas } }, null, 2),
  );
  log("kms: policy written (PCR 4, 11, 12 of the image; EK CA = swtpm local CA)");

  // 4. node
  const disk = join(nodeDir, "state.img");
  if (!(await Deno.stat(disk).then(() => true, () => false))) {
    const f = await Deno.open(disk, { write: true, createNew: true });
    await f.truncate(STATE_DISK_BYTES);
    f.close();
  }
  const vm = await startUefiVm({
    uki: img.uki,
    runDir: nodeDir,
    tpmStateDir: join(nodeDir, "tpm"),
    disks: [{ path: disk, serial: STATE_DISK_SERIAL }],
    network: true,
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
  kms.unref();
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
