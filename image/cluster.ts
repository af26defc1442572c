/**
 * Building blocks of a local cluster (used by `confidant up` and the end-to-end
 * tests): a KMS process on the host's loopback, the node command line that
 * points the agent at it, the policy that admits exactly the node image, and
 * sparse state disks.
 *
 * The guest reaches the KMS at a fixed address, {@link KMS_GUEST_ADDR}, which
 * QEMU's user-mode network forwards to whatever loopback port the KMS uses
 * (`guestfwd`). The port is therefore not part of the measured command line, and
 * the node image (and its PCRs) stays the same across runs as long as the KMS
 * keeps its TLS certificate.
 *
 * @module
 */
import { join } from "node:path";
import { atomicWriteFile } from "../lib/atomic_write.ts";
import { ConfidantError } from "../lib/errors.ts";
import { measureUki } from "./measure.ts";
import { policyPcrs } from "./policy_pcrs.ts";

/** Address of the KMS as the guest sees it (forwarded by QEMU to the host's loopback). */
export const KMS_GUEST_HOST = "10.0.2.100";
/** Port of {@link KMS_GUEST_HOST}. */
export const KMS_GUEST_PORT = 8443;
/** `host:port` form of the guest-side KMS address. */
export const KMS_GUEST_ADDR = `${KMS_GUEST_HOST}:${KMS_GUEST_PORT}`;

/** swtpm's local CA certificates (root and issuer): the EK CAs of a local cluster. */
export const SWTPM_LOCALCA_CERTS = [
  "/var/lib/swtpm-localca/swtpm-localca-rootca-cert.pem",
  "/var/lib/swtpm-localca/issuercert.pem",
];

/** Serial of the state disk; the node sees it as /dev/disk/by-id/virtio-<serial>. */
export const STATE_DISK_SERIAL = "confidant-state";

/** Options of {@link startKms}. */
export interface KmsProcessOptions {
  /** Repository root (main.ts is run from there with the running deno). */
  repo: string;
  /** KMS state directory (`kms init` runs once when it is new). */
  stateDir: string;
  /** KEK file (created by `kms init` when missing). */
  kekFile: string;
  /** Policy file (the KMS reloads it on change). */
  policyPath: string;
  /** Loopback port to listen on. */
  port: number;
  /** Files for the KMS's stdout (JSON lines) and stderr. */
  logPath: string;
  errPath: string;
  /** Run in its own session, surviving this process (for `confidant up`). */
  detached?: boolean;
}

/** A running KMS. */
export interface KmsProcess {
  pid: number;
  /** SHA-256 fingerprint of its TLS certificate (what the agent pins). */
  fingerprint: string;
  exited: Promise<Deno.CommandStatus>;
  /** SIGTERM, then wait. */
  stop(): Promise<void>;
  /** Let this process exit while the KMS keeps running. */
  detach(): void;
}

function selfArgs(repo: string, args: string[]): string[] {
  return ["run", "--allow-all", join(repo, "main.ts"), ...args];
}

/** `kms init` once, then `kms serve` on 127.0.0.1:port; resolves when it reports its fingerprint. */
export async function startKms(o: KmsProcessOptions): Promise<KmsProcess> {
  const marker = join(o.stateDir, ".initialized");
  if (!(await Deno.stat(marker).then(() => true, () => false))) {
    const r = await new Deno.Command(Deno.execPath(), {
      args: selfArgs(o.repo, ["kms", "init", "--state-dir", o.stateDir, "--kek-file", o.kekFile]),
      cwd: o.repo,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!r.success) {
      throw new ConfidantError(
        "cluster.kms",
        `kms init failed: ${new TextDecoder().decode(r.stderr)}`,
      );
    }
    await Deno.writeTextFile(marker, "");
  }
  const serve = [
    Deno.execPath(),
    ...selfArgs(o.repo, [
      "kms",
      "serve",
      "--state-dir",
      o.stateDir,
      "--kek-file",
      o.kekFile,
      "--policy",
      o.policyPath,
      "--listen",
      `127.0.0.1:${o.port}`,
      "--san",
      KMS_GUEST_HOST,
      "--json",
    ]),
  ];
  await Deno.writeTextFile(o.logPath, "");
  // through sh so the KMS writes straight to files (and, detached, outlives this process)
  const sh = ["sh", "-c", 'exec "$@" > "$KMS_LOG" 2> "$KMS_ERR"', "sh", ...serve];
  const child = new Deno.Command(o.detached ? "setsid" : sh[0], {
    args: o.detached ? sh : sh.slice(1),
    env: { KMS_LOG: o.logPath, KMS_ERR: o.errPath },
    cwd: o.repo,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await status;
  };
  let fingerprint: string | null = null;
  for (let i = 0; i < 480 && !fingerprint && !exited; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const text = await Deno.readTextFile(o.logPath).catch(() => "");
    fingerprint = /"fingerprint"\s*:\s*"([0-9a-f]{64})"/.exec(text)?.[1] ?? null;
  }
  if (!fingerprint) {
    await stop();
    throw new ConfidantError(
      "cluster.kms",
      `kms serve did not report its fingerprint (see ${o.logPath} and ${o.errPath})`,
    );
  }
  return { pid: child.pid, fingerprint, exited: status, stop, detach: () => child.unref() };
}

/**
 * Agent parameters for the node's (measured) kernel command line. `join` (default false:
 * the box has no Kubernetes) adds `confidant.join=false` unless true, so the agent ends in
 * phase `unlocked` instead of failing for want of a join ticket.
 */
export function nodeCmdline(
  fingerprint: string,
  opts: { role?: "worker" | "control-plane"; join?: boolean } = {},
): string {
  const role = opts.role ?? "worker";
  if (!/^[0-9a-f]{64}$/.test(fingerprint)) {
    throw new ConfidantError("cluster.fingerprint", "KMS fingerprint must be 64 hex digits");
  }
  return [
    `confidant.kms=https://${KMS_GUEST_ADDR}`,
    `confidant.kms_fingerprint=${fingerprint}`,
    `confidant.disk=/dev/disk/by-id/virtio-${STATE_DISK_SERIAL}`,
    `confidant.role=${role}`,
    ...(opts.join ? [] : ["confidant.join=false"]),
  ].join(" ");
}

/** swtpm's local CA certificates, PEM; missing ones are an error naming the package. */
export async function swtpmLocalCaPems(): Promise<string[]> {
  const pems: string[] = [];
  for (const f of SWTPM_LOCALCA_CERTS) {
    const pem = await Deno.readTextFile(f).catch(() => "");
    if (pem) pems.push(pem);
  }
  if (pems.length === 0) {
    throw new ConfidantError(
      "cluster.swtpm",
      "swtpm's local CA certificates are missing: install swtpm-tools and provision a TPM once",
    );
  }
  return pems;
}

/**
 * Write the KMS policy that admits nodes booting `uki` whose EK certificate
 * chains to one of `ekCaPems`: PCR 4, 11 (as `image measure` predicts) and 12 (zero).
 */
export async function writeClusterPolicy(
  policyPath: string,
  uki: Uint8Array,
  ekCaPems: string[],
): Promise<void> {
  const m = await measureUki(uki);
  await atomicWriteFile(
    policyPath,
    JSON.stringify({ pcrs: policyPcrs(m), ak: { ekCaCertificates: ekCaPems } }, null, 2),
  );
}

/** Create a sparse raw disk image of `bytes` unless the file exists. */
export async function createSparseDisk(path: string, bytes: number): Promise<void> {
  try {
    const f = await Deno.open(path, { write: true, createNew: true });
    await f.truncate(bytes);
    f.close();
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  }
}
