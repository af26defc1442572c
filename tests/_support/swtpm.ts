/**
 * Test helper: a private swtpm TPM 2.0 simulator per call.
 *
 * `startSwtpm()` picks two free TCP ports (data port P and control port P+1, as the tpm2-tss
 * swtpm TCTI expects), makes a temp state dir and runs
 * `swtpm socket --tpm2 --server type=tcp,port=P --ctrl type=tcp,port=P+1 --flags not-need-init,startup-clear`.
 *
 * With `{ ekCert: true }` it first runs `swtpm_setup --create-ek-cert` with a private
 * swtpm_setup.conf / swtpm-localca.conf in the temp dir, so each simulator gets its own local CA
 * (root CA + intermediate "issuer" CA, made on first use by swtpm_localca). swtpm_setup writes
 * an RSA 2048 EK certificate at NV index 0x01c00002 (for the TCG default template L-1, what
 * `tpm2_createek -G rsa` makes) and an ECC **NIST P-384** EK certificate at 0x01c00016; it does
 * not provision a P-256 EK certificate (0x01c0000a). `ekCaPem` holds the issuer certificate
 * followed by the root certificate (PEM), i.e. the chain that verifies those EK certificates.
 *
 * The result carries `spec` for `openTransport()` / `Tpm.open()` ("swtpm:127.0.0.1:P"), `env`
 * for running tpm2-tools against the same simulator (`TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=P`),
 * and `stop()`, which kills swtpm and deletes the temp dir. Without a resource manager, flush the
 * transient objects you create. Missing tools are an error telling what to install.
 *
 * @example
 * ```ts
 * const sw = await startSwtpm({ ekCert: true });
 * try {
 *   const tpm = Tpm.open(sw.spec);
 *   // ...
 * } finally {
 *   await sw.stop();
 * }
 * ```
 *
 * @module
 */

/** A running private swtpm. */
export interface Swtpm {
  /** Transport spec for the confidant TPM client: `swtpm:127.0.0.1:PORT`. */
  spec: string;
  /** Data port (the control port is port + 1). */
  port: number;
  /** Temp dir holding the TPM state (and the local CA under `ca/`). */
  stateDir: string;
  /** PEM of the local CA certificates (issuer, then root) that sign the EK certs, with ekCert. */
  ekCaPem?: string;
  /** Environment for tpm2-tools: TPM2TOOLS_TCTI pointing at this simulator. */
  env: Record<string, string>;
  /** Stops swtpm and removes the temp dir. */
  stop(): Promise<void>;
}

async function need(tool: string, pkg: string): Promise<void> {
  try {
    const o = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null" })
      .output();
    if (o.success) return;
  } catch { /* fall through */ }
  throw new Error(`${tool} not found: install ${pkg} (apt-get install ${pkg})`);
}

function portFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/** Two consecutive free ports P, P+1 (P from the OS). */
function freePortPair(): number {
  for (let i = 0; i < 50; i++) {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const p = (l.addr as Deno.NetAddr).port;
    l.close();
    if (p < 65535 && portFree(p) && portFree(p + 1)) return p;
  }
  throw new Error("no free port pair for swtpm");
}

async function waitForPort(port: number, proc: Deno.ChildProcess, ms: number): Promise<void> {
  const until = Date.now() + ms;
  let exited = false;
  proc.status.then(() => (exited = true));
  while (Date.now() < until) {
    if (exited) throw new Error("swtpm exited during startup");
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`swtpm did not listen on ${port} within ${ms} ms`);
}

/** Starts a private swtpm (see the module doc); always `stop()` it. */
export async function startSwtpm(opts: { ekCert?: boolean } = {}): Promise<Swtpm> {
  await need("swtpm", "swtpm");
  if (opts.ekCert) await need("swtpm_setup", "swtpm-tools");
  const dir = await Deno.makeTempDir({ prefix: "confidant-swtpm-" });
  const stateDir = `${dir}/state`;
  await Deno.mkdir(stateDir);
  let ekCaPem: string | undefined;
  try {
    if (opts.ekCert) {
      const caDir = `${dir}/ca`;
      await Deno.mkdir(caDir);
      await Deno.writeTextFile(
        `${dir}/swtpm-localca.conf`,
        `statedir = ${caDir}\nsigningkey = ${caDir}/signkey.pem\n` +
          `issuercert = ${caDir}/issuercert.pem\ncertserial = ${caDir}/certserial\n`,
      );
      await Deno.writeTextFile(
        `${dir}/swtpm_setup.conf`,
        `create_certs_tool = /usr/bin/swtpm_localca\n` +
          `create_certs_tool_config = ${dir}/swtpm-localca.conf\n` +
          `create_certs_tool_options = /etc/swtpm-localca.options\n` +
          `active_pcr_banks = sha256\n`,
      );
      const out = await new Deno.Command("swtpm_setup", {
        args: [
          "--tpm2",
          "--tpmstate",
          stateDir,
          "--create-ek-cert",
          "--config",
          `${dir}/swtpm_setup.conf`,
          "--pcr-banks",
          "sha1,sha256",
          "--overwrite",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!out.success) {
        throw new Error(
          `swtpm_setup failed: ${new TextDecoder().decode(out.stdout)}${
            new TextDecoder().decode(out.stderr)
          }`,
        );
      }
      ekCaPem = (await Deno.readTextFile(`${caDir}/issuercert.pem`)) +
        (await Deno.readTextFile(`${caDir}/swtpm-localca-rootca-cert.pem`));
    }
    for (let attempt = 0;; attempt++) {
      const port = freePortPair();
      const proc = new Deno.Command("swtpm", {
        args: [
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
        stdout: "null",
        stderr: "piped",
      }).spawn();
      try {
        await waitForPort(port, proc, 10_000);
      } catch (e) {
        try {
          proc.kill("SIGKILL");
        } catch { /* gone */ }
        const err = await proc.stderr.getReader().read().catch(() => undefined);
        await proc.status;
        if (attempt < 3) continue; // port raced with another process
        throw new Error(
          `${(e as Error).message}: ${err?.value ? new TextDecoder().decode(err.value) : ""}`,
        );
      }
      return {
        spec: `swtpm:127.0.0.1:${port}`,
        port,
        stateDir,
        ekCaPem,
        env: { TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}` },
        async stop() {
          try {
            proc.kill("SIGTERM");
          } catch { /* gone */ }
          await proc.stderr.cancel().catch(() => {});
          await proc.status;
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        },
      };
    }
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}
