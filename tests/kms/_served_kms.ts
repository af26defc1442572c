/**
 * Test helper: `confidant kms serve` as a SUBPROCESS (`deno run --allow-all main.ts kms serve
 * ... --listen 127.0.0.1:0`), with its stdout and stderr collected, the port read from its
 * "listening on" line, and `stop()` (SIGTERM, then wait).
 */
import { fileURLToPath } from "node:url";

/** A running `kms serve` process. */
export interface ServedKms {
  url: string;
  port: number;
  /** Everything the process wrote so far. */
  stdout(): string;
  stderr(): string;
  /** The process has not exited. */
  alive(): boolean;
  stop(): Promise<void>;
}

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

async function collect(stream: ReadableStream<Uint8Array>, sink: { text: string }) {
  const dec = new TextDecoder();
  for await (const chunk of stream) sink.text += dec.decode(chunk, { stream: true });
}

/** Start `confidant kms serve <args> --listen 127.0.0.1:0` and wait until it listens. */
export async function serveKmsProcess(
  args: string[],
  env: Record<string, string> = {},
): Promise<ServedKms> {
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "main.ts", "kms", "serve", ...args, "--listen", "127.0.0.1:0"],
    cwd: repoRoot,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = { text: "" };
  const err = { text: "" };
  const reading = Promise.all([collect(proc.stdout, out), collect(proc.stderr, err)]);
  let exited = false;
  const status = proc.status.then((s) => {
    exited = true;
    return s;
  });
  const until = Date.now() + 60_000;
  let port = 0;
  while (!port) {
    const m = /listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(out.text);
    if (m) port = Number(m[1]);
    else if (exited) {
      await reading;
      throw new Error(`kms serve exited: ${out.text}\n${err.text}`);
    } else if (Date.now() > until) {
      proc.kill("SIGKILL");
      await status;
      throw new Error(`kms serve did not listen within 60 s: ${out.text}\n${err.text}`);
    } else await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    stdout: () => out.text,
    stderr: () => err.text,
    alive: () => !exited,
    async stop() {
      if (!exited) {
        try {
          proc.kill("SIGTERM");
        } catch { /* gone */ }
      }
      const t = setTimeout(() => {
        try {
          proc.kill("SIGKILL");
        } catch { /* gone */ }
      }, 10_000);
      await status;
      clearTimeout(t);
      await reading;
    },
  };
}
