/**
 * Running swtpm (the TPM 2.0 simulator) as a child process: on a state directory, either with
 * its control channel on a unix socket (what QEMU's `-tpmdev emulator` connects to) or with
 * a TCP data/control port pair P, P+1 (what the tpm2-tss swtpm TCTI and the project's
 * `swtpm:` transport use). Each start waits until swtpm is reachable, or fails with a named
 * error (a missing tool says what to install); {@link stopChild} ends any child and waits.
 *
 * @module
 */
import { ConfidantError } from "../lib/errors.ts";

/** A running swtpm. */
export interface SwtpmProcess {
  readonly pid: number;
  /** Resolves when swtpm exits. */
  readonly status: Promise<Deno.CommandStatus>;
  /** SIGTERM swtpm and wait for it to exit. */
  stop(): Promise<void>;
  /** Let this process exit while swtpm keeps running. */
  unref(): void;
}

/** A running swtpm on a TCP port pair. */
export interface SwtpmTcp extends SwtpmProcess {
  /** Data port (the control port is port + 1), on 127.0.0.1. */
  port: number;
  /** Transport spec for the project's TPM client: `swtpm:127.0.0.1:PORT`. */
  spec: string;
  /** Environment for tpm2-tools: TPM2TOOLS_TCTI pointing at this swtpm. */
  env: Record<string, string>;
}

/** Options of {@link startSwtpmUnixSocket}. */
export interface SwtpmSocketOptions {
  /** TPM state directory (created if missing). */
  stateDir: string;
  /** Path of the control socket to create (an old file there is removed). */
  socketPath: string;
  /** Run in its own session (setsid), to outlive the starting process and its terminal. */
  detached?: boolean;
  /** Exit when the client (QEMU) closes the control connection (`--terminate`). */
  terminate?: boolean;
  /** How long to wait for the socket (ms); default 5 s. */
  timeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Send `signal` to `child` (if it still runs) and wait for it to exit. */
export async function stopChild(
  child: Deno.ChildProcess,
  signal: Deno.Signal = "SIGTERM",
): Promise<Deno.CommandStatus> {
  try {
    child.kill(signal);
  } catch { /* already gone */ }
  return await child.status;
}

/** A free TCP port on 127.0.0.1 whose successor is free too (swtpm's control port). */
export function freeTcpPortPair(): number {
  for (let i = 0; i < 50; i++) {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    if (port >= 65535) continue;
    try {
      Deno.listen({ hostname: "127.0.0.1", port: port + 1 }).close();
      return port;
    } catch { /* taken; try another */ }
  }
  throw new ConfidantError("vm.port", "no free pair of TCP ports");
}

function spawnSwtpm(args: string[], detached: boolean, stderr: "null" | "piped") {
  try {
    return new Deno.Command(detached ? "setsid" : "swtpm", {
      args: detached ? ["swtpm", ...args] : args,
      stdin: "null",
      stdout: "null",
      stderr,
    }).spawn();
  } catch (e) {
    throw new ConfidantError("vm.tool", `cannot run swtpm (install swtpm): ${e}`, { cause: e });
  }
}

function handle(child: Deno.ChildProcess, after?: () => Promise<unknown>): SwtpmProcess {
  return {
    pid: child.pid,
    status: child.status,
    stop: async () => {
      await stopChild(child);
      await after?.();
    },
    unref: () => child.unref(),
  };
}

/**
 * Start swtpm on `stateDir` with its control channel on the unix socket `socketPath` and
 * wait until the socket exists; the swtpm for a QEMU `-tpmdev emulator` chardev.
 */
export async function startSwtpmUnixSocket(o: SwtpmSocketOptions): Promise<SwtpmProcess> {
  await Deno.mkdir(o.stateDir, { recursive: true });
  await Deno.remove(o.socketPath).catch(() => {});
  const child = spawnSwtpm(
    [
      "socket",
      "--tpm2",
      "--tpmstate",
      `dir=${o.stateDir}`,
      "--ctrl",
      `type=unixio,path=${o.socketPath}`,
      "--flags",
      "startup-clear",
      ...(o.terminate ? ["--terminate"] : []),
    ],
    o.detached ?? false,
    "null",
  );
  let exited = false;
  child.status.then(() => (exited = true));
  const there = () => Deno.stat(o.socketPath).then(() => true, () => false);
  const until = Date.now() + (o.timeoutMs ?? 5_000);
  while (!exited && Date.now() < until && !(await there())) await sleep(50);
  if (!(await there())) {
    await stopChild(child);
    throw new ConfidantError("vm.swtpm", "swtpm did not create its control socket");
  }
  return handle(child);
}

/**
 * Start swtpm on `stateDir` serving 127.0.0.1:P (data) and P+1 (control) with
 * `not-need-init,startup-clear`, and wait until the data port accepts a connection. A port
 * taken meanwhile by another process is retried on a new pair.
 */
export async function startSwtpmTcp(
  stateDir: string,
  opts: { timeoutMs?: number } = {},
): Promise<SwtpmTcp> {
  let last = "";
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = freeTcpPortPair();
    const child = spawnSwtpm(
      [
        "socket",
        "--tpm2",
        "--tpmstate",
        `dir=${stateDir}`,
        "--server",
        `type=tcp,port=${port},bindaddr=127.0.0.1`,
        "--ctrl",
        `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
        "--flags",
        "not-need-init,startup-clear",
      ],
      false,
      "piped",
    );
    const stderr = new Response(child.stderr).text().catch(() => "");
    let exited = false;
    child.status.then(() => (exited = true));
    const until = Date.now() + (opts.timeoutMs ?? 10_000);
    let up = false;
    while (!up && !exited && Date.now() < until) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        up = true;
      } catch {
        await sleep(25);
      }
    }
    if (up) {
      return {
        ...handle(child, () => stderr),
        port,
        spec: `swtpm:127.0.0.1:${port}`,
        env: { TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}` },
      };
    }
    await stopChild(child, "SIGKILL");
    last = (await stderr).trim();
  }
  throw new ConfidantError("vm.swtpm", `swtpm did not listen on a TCP port: ${last}`);
}
