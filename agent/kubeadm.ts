/**
 * Runs `kubeadm join --config FILE`: the configuration (it holds the bootstrap
 * token and certificate key) goes to a 0600 file in a tmpfs directory and is
 * removed afterwards; kubeadm's output goes to the log with the ticket's
 * secrets scrubbed; a failure carries the last lines of that output.
 *
 * @module
 */
import { join } from "node:path";
import { ConfidantError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { toHex } from "../lib/bytes.ts";
import type { CommandRunner, Files } from "./ports.ts";
import { type JoinConfiguration, joinConfigurationYaml } from "./join_config.ts";

/** How many of kubeadm's last output lines a failure report carries. */
export const FAILURE_TAIL_LINES = 20;

/** `kubeadm` exited with an error. */
export class KubeadmError extends ConfidantError {
  /** Exit code of kubeadm. */
  readonly exitCode_: number;
  /** Last lines of its output (secrets scrubbed). */
  readonly tail: string[];
  constructor(what: string, code: number, tail: string[]) {
    super(
      "agent.kubeadm_failed",
      `kubeadm ${what} exited with ${code}; last output:\n  ${tail.join("\n  ")}`,
    );
    this.name = "KubeadmError";
    this.exitCode_ = code;
    this.tail = tail;
  }
}

/** Anything shaped like a bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`). */
const TOKEN_PATTERN = /(?<![a-z0-9])[a-z0-9]{6}\.[a-z0-9]{16}(?![a-z0-9])/g;
/** `--certificate-key` followed by a 64-hex-digit key. */
const CERT_KEY_PATTERN = /(--certificate-key[ =]+)[0-9a-fA-F]{64}/g;

/**
 * Replace every occurrence of the given secrets in `line`, and anything shaped like a secret
 * kubeadm prints (a bootstrap token, `--certificate-key <64 hex>`) even when it is not one
 * we know of.
 */
export function scrub(line: string, secrets: string[]): string {
  let out = line;
  for (const s of secrets) if (s) out = out.split(s).join("[redacted]");
  return out.replace(TOKEN_PATTERN, "[redacted]").replace(CERT_KEY_PATTERN, "$1[redacted]");
}

/** Options of {@link runKubeadmJoin}. */
export interface KubeadmJoinOptions {
  runner: CommandRunner;
  files: Files;
  /** tmpfs directory for the config file. */
  runtimeDir: string;
  config: JoinConfiguration;
  /** Strings to scrub from output (token, certificate key). */
  secrets: string[];
  logger: Logger;
  signal: AbortSignal;
  /** Program to run (default `kubeadm`). */
  kubeadm?: string;
}

/** Refuse to put secrets in a directory that is not a tmpfs. */
export async function ensureTmpfsDir(files: Files, dir: string): Promise<void> {
  await files.mkdirp(dir, 0o700);
  const type = await files.fsTypeOf(dir);
  if (type !== "tmpfs" && type !== "ramfs") {
    throw new ConfidantError(
      "agent.not_tmpfs",
      `${dir} is on ${type ?? "an unknown file system"}, not a tmpfs; the kubeadm config holds ` +
        `secrets and must not reach a disk (set kubeadm.runtimeDir to a directory under /run)`,
    );
  }
}

/** Write the config, run `kubeadm join --config FILE`, remove the file. */
export async function runKubeadmJoin(opts: KubeadmJoinOptions): Promise<{ lines: string[] }> {
  await ensureTmpfsDir(opts.files, opts.runtimeDir);
  const name = `kubeadm-join-${toHex(crypto.getRandomValues(new Uint8Array(6)))}.yaml`;
  const path = join(opts.runtimeDir, name);
  await opts.files.writeSecret(path, joinConfigurationYaml(opts.config));
  const log = opts.logger.with({ step: "join", program: "kubeadm" });
  let result;
  try {
    result = await opts.runner.run([opts.kubeadm ?? "kubeadm", "join", "--config", path], {
      signal: opts.signal,
      onLine: (line) => log.info("kubeadm output", { line: scrub(line, opts.secrets) }),
    });
  } finally {
    await opts.files.remove(path);
  }
  const lines = result.lines.map((l) => scrub(l, opts.secrets));
  if (result.code !== 0) {
    throw new KubeadmError("join", result.code, lines.slice(-FAILURE_TAIL_LINES));
  }
  return { lines };
}

/** `kubeadm reset --force` between failed join attempts (clears half-written state). */
export async function runKubeadmReset(
  runner: CommandRunner,
  logger: Logger,
  signal: AbortSignal,
  kubeadm = "kubeadm",
): Promise<void> {
  const log = logger.with({ step: "join", program: "kubeadm" });
  const r = await runner.run([kubeadm, "reset", "--force"], {
    signal,
    onLine: (line) => log.info("kubeadm reset output", { line }),
  });
  if (r.code !== 0) {
    throw new KubeadmError("reset", r.code, r.lines.slice(-FAILURE_TAIL_LINES));
  }
}

/** Options of {@link runKubeadmInit}. */
export interface KubeadmInitOptions {
  runner: CommandRunner;
  files: Files;
  /** tmpfs directory for the config file. */
  runtimeDir: string;
  /** The YAML stream (ClusterConfiguration + InitConfiguration). */
  configYaml: string;
  /** Strings to scrub from output (certificate key, bootstrap token). */
  secrets: string[];
  logger: Logger;
  signal: AbortSignal;
  kubeadm?: string;
}

/** Write the config, run `kubeadm init --config FILE --upload-certs`, remove the file. */
export async function runKubeadmInit(opts: KubeadmInitOptions): Promise<{ lines: string[] }> {
  await ensureTmpfsDir(opts.files, opts.runtimeDir);
  const name = `kubeadm-init-${toHex(crypto.getRandomValues(new Uint8Array(6)))}.yaml`;
  const path = join(opts.runtimeDir, name);
  await opts.files.writeSecret(path, opts.configYaml);
  const log = opts.logger.with({ step: "init", program: "kubeadm" });
  let result;
  try {
    result = await opts.runner.run(
      [opts.kubeadm ?? "kubeadm", "init", "--config", path, "--upload-certs"],
      {
        signal: opts.signal,
        onLine: (line) => log.info("kubeadm output", { line: scrub(line, opts.secrets) }),
      },
    );
  } finally {
    await opts.files.remove(path);
  }
  const lines = result.lines.map((l) => scrub(l, opts.secrets));
  if (result.code !== 0) {
    throw new KubeadmError("init", result.code, lines.slice(-FAILURE_TAIL_LINES));
  }
  return { lines };
}
