/**
 * Test helper: a private swtpm TPM 2.0 simulator per call.
 *
 * `startSwtpm()` makes a temp state dir and, through image/swtpm.ts `startSwtpmTcp`, picks two
 * free TCP ports (data port P and control port P+1, as the tpm2-tss swtpm TCTI expects) and runs
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
import { startSwtpmTcp } from "../../image/swtpm.ts";

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
    const sw = await startSwtpmTcp(stateDir);
    return {
      spec: sw.spec,
      port: sw.port,
      stateDir,
      ekCaPem,
      env: sw.env,
      async stop() {
        await sw.stop();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      },
    };
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}
