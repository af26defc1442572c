/**
 * One KMS process for the admissions benchmark (`deno run -A bench/_kms_worker.ts`). It is
 * `confidant kms serve` without the CLI: the same production pieces (FileStore, PolicyHolder,
 * the state dir's TLS identity, FileAuditLog, `buildKms` with the default rate limit and
 * admission control, and `serveKms`), bound with `reusePort: true` as
 * `confidant kms serve --reuse-port` does, so one process per core shares the listening port
 * (Linux SO_REUSEPORT spreads connections across them).
 *
 * Reads one JSON line on stdin: `{stateDir, policyPath, auditPath, kek (hex), port}` (the KEK
 * travels on stdin, never argv), prints `listening <port>` on stdout, serves until SIGTERM.
 *
 * @module
 */
import { fromHex } from "../lib/bytes.ts";
import { Logger } from "../lib/log.ts";
import { FileAuditLog } from "../kms/audit.ts";
import { FileStore } from "../kms/file_store.ts";
import { PolicyHolder } from "../kms/policy.ts";
import { buildKms, serveKms } from "../kms/server.ts";
import { loadOrCreateTlsIdentity } from "../kms/tls.ts";

interface WorkerConfig {
  stateDir: string;
  policyPath: string;
  auditPath: string;
  kek: string;
  port: number;
}

async function readLine(): Promise<string> {
  const dec = new TextDecoder();
  let text = "";
  for await (const chunk of Deno.stdin.readable) {
    text += dec.decode(chunk, { stream: true });
    const nl = text.indexOf("\n");
    if (nl >= 0) return text.slice(0, nl);
  }
  return text;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(await readLine()) as WorkerConfig;
  const kek = fromHex(cfg.kek);
  const tls = await loadOrCreateTlsIdentity(cfg.stateDir, kek, ["127.0.0.1"]);
  const audit = new FileAuditLog(cfg.auditPath);
  const kms = await buildKms({
    store: new FileStore(cfg.stateDir),
    kek,
    policy: await PolicyHolder.open(cfg.policyPath),
    tlsFingerprint: tls.fingerprint,
    audit,
    log: new Logger("kms"),
  });
  kek.fill(0);
  const server = serveKms(kms.app, {
    hostname: "127.0.0.1",
    port: cfg.port,
    reusePort: true,
    certPem: tls.certPem,
    keyPem: tls.keyPem,
    onListen: (a) => console.log(`listening ${a.port}`),
  });
  Deno.addSignalListener("SIGTERM", () => {
    server.shutdown().then(() => audit.close()).finally(() => Deno.exit(0));
  });
  await server.finished;
}

if (import.meta.main) await main();
