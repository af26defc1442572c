/**
 * Test helper: a private swtpm (optionally manufactured with EK certificates by swtpm_setup
 * and its local CA in a temp dir) and a runner for tpm2-tools against it. Missing tools make
 * the test fail with "install ...".
 *
 * @module
 */
import { join } from "node:path";
import { startSwtpmTcp, type SwtpmTcp } from "../../../../image/swtpm.ts";

/** A running software TPM for one test. */
export interface TestTpm {
  /** Server port (control port is port + 1). */
  port: number;
  /** Temp dir holding the TPM state, the CA and any files tests write. */
  dir: string;
  /** Environment for tpm2-tools. */
  env: Record<string, string>;
  /** PEM of the local CA's issuer and root certificates when created with ekCert. */
  caPem?: string[];
  /** `swtpm:HOST:PORT` spec for the project's TPM client. */
  spec: string;
  /** Run a tpm2-tools command; throws with its stderr when it fails. Returns stdout. */
  tpm2(args: string[]): Promise<string>;
  /** Stop swtpm and remove the temp dir. */
  stop(): Promise<void>;
}

async function need(tool: string, pkg: string): Promise<void> {
  try {
    await new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" }).output();
  } catch {
    throw new Error(`${tool} not found: install ${pkg} (apt-get install ${pkg})`);
  }
}

async function run(cmd: string, args: string[], env?: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

/** Start swtpm on free ports; with `ekCert`, manufacture RSA-2048 and ECC P-384 EKs with certificates. */
export async function startTestTpm(opts: { ekCert?: boolean } = {}): Promise<TestTpm> {
  await need("swtpm", "swtpm");
  await need("tpm2_createek", "tpm2-tools");
  const dir = await Deno.makeTempDir({ prefix: "confidant-tpm-" });
  const state = join(dir, "state");
  await Deno.mkdir(state);
  let caPem: string[] | undefined;
  if (opts.ekCert) {
    await need("swtpm_setup", "swtpm-tools");
    const ca = join(dir, "ca");
    await Deno.mkdir(ca);
    await Deno.writeTextFile(
      join(dir, "localca.conf"),
      `statedir = ${ca}\nsigningkey = ${ca}/signkey.pem\nissuercert = ${ca}/issuercert.pem\n` +
        `certserial = ${ca}/certserial\n`,
    );
    await Deno.writeTextFile(join(dir, "localca.options"), "--platform-manufacturer test\n");
    await Deno.writeTextFile(
      join(dir, "setup.conf"),
      `create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${dir}/localca.conf\n` +
        `create_certs_tool_options = ${dir}/localca.options\nactive_pcr_banks = sha256\n`,
    );
    await run("swtpm_setup", [
      "--tpm2",
      "--tpmstate",
      state,
      "--create-ek-cert",
      "--config",
      join(dir, "setup.conf"),
      "--overwrite",
    ]);
    caPem = [
      await Deno.readTextFile(join(ca, "issuercert.pem")),
      await Deno.readTextFile(join(ca, "swtpm-localca-rootca-cert.pem")),
    ];
  }
  let sw: SwtpmTcp;
  try {
    sw = await startSwtpmTcp(state);
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
  const env = sw.env;
  return {
    port: sw.port,
    dir,
    env,
    caPem,
    spec: sw.spec,
    tpm2: (args: string[]) => run(args[0], args.slice(1), env),
    async stop() {
      await sw.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * tpm2_createak under `ek` (context file or handle): an ECC ECDSA/SHA-256 AK written to
 * `ak.ctx`, `ak.pub` and `ak.name` in the TPM's dir, transient objects and sessions flushed.
 * Returns the AK's name.
 */
export async function createAkWithTools(tpm: TestTpm, ek: string): Promise<Uint8Array> {
  const f = (n: string) => join(tpm.dir, n);
  await tpm.tpm2([
    "tpm2_createak",
    "-C",
    ek,
    "-c",
    f("ak.ctx"),
    "-G",
    "ecc",
    "-g",
    "sha256",
    "-s",
    "ecdsa",
    "-u",
    f("ak.pub"),
    "-n",
    f("ak.name"),
  ]);
  await tpm.tpm2(["tpm2_flushcontext", "-t"]);
  await tpm.tpm2(["tpm2_flushcontext", "-s"]);
  return await Deno.readFile(f("ak.name"));
}

/**
 * tpm2_createek of `ekAlg` (`ek.ctx`, `ek.pub` in the TPM's dir) and then
 * {@link createAkWithTools} under it. Returns the EK's TPM2B_PUBLIC bytes and the AK's name.
 */
export async function createEkAndAkWithTools(
  tpm: TestTpm,
  ekAlg: "rsa" | "ecc",
): Promise<{ ekPub: Uint8Array; akName: Uint8Array }> {
  const f = (n: string) => join(tpm.dir, n);
  await tpm.tpm2(["tpm2_createek", "-c", f("ek.ctx"), "-G", ekAlg, "-u", f("ek.pub")]);
  await tpm.tpm2(["tpm2_flushcontext", "-t"]);
  const akName = await createAkWithTools(tpm, f("ek.ctx"));
  return { ekPub: await Deno.readFile(f("ek.pub")), akName };
}

/** Activate a tpm2-tools credential file with the EK at `ek` (context file or handle). */
export async function activateWithTools(
  tpm: TestTpm,
  credFile: Uint8Array,
  ek: string,
  policyHash: "sha256" | "sha384" | "password" = "sha256",
): Promise<Uint8Array> {
  const f = (n: string) => join(tpm.dir, n);
  await Deno.writeFile(f("cred.bin"), credFile);
  // EKs of the low-range templates authorize with PolicySecret(endorsement); the high-range
  // one swtpm makes for P-384 has userWithAuth, so an empty password works there.
  const auth: string[] = [];
  try {
    if (policyHash !== "password") {
      const session = f("session.ctx");
      await tpm.tpm2([
        "tpm2_startauthsession",
        "--policy-session",
        "-g",
        policyHash,
        "-S",
        session,
      ]);
      await tpm.tpm2(["tpm2_policysecret", "-S", session, "-c", "e"]);
      auth.push("-P", `session:${session}`);
    }
    const io = ["-i", f("cred.bin"), "-o", f("secret.out")];
    await tpm.tpm2(["tpm2_activatecredential", "-c", f("ak.ctx"), "-C", ek, ...io, ...auth]);
    return await Deno.readFile(f("secret.out"));
  } finally {
    await tpm.tpm2(["tpm2_flushcontext", "-t"]).catch(() => {});
    await tpm.tpm2(["tpm2_flushcontext", "-s"]).catch(() => {});
  }
}
