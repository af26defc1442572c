/**
 * CLI commands of the kms area: `kms init`, `kms serve`, `kms disks list|reassign`, and the
 * node-side debug command `join`.
 *
 * @module
 */
import { join as joinPath } from "node:path";
import { z } from "zod";
import { type Command, defineCommand, flag } from "../lib/cli.ts";
import { ConfidantError } from "../lib/errors.ts";
import { fromHex, toBase64 } from "../lib/bytes.ts";
import { Logger } from "../lib/log.ts";
import { atomicWriteFile } from "../lib/atomic_write.ts";
import { Tpm } from "../attestation/tpm/client.ts";
import { FileAuditLog } from "./audit.ts";
import { requestRelease } from "./client.ts";
import { FileStore } from "./file_store.ts";
import { type JoinIssuer, noJoinIssuer, policyJoinIssuer } from "./join_ticket.ts";
import { KubeStore } from "./k8s_store.ts";
import { CLUSTER_ID_RE, DISK_UUID_RE, type MasterSecret } from "./keys.ts";
import { clusterCaPem, kubeSecretsApi, loadKubeConfig } from "./kube.ts";
import { loadKek } from "./master_at_rest.ts";
import { PolicyHolder } from "./policy.ts";
import { buildKms, initKms, serveKms } from "./server.ts";
import type { KmsStore } from "./store.ts";
import { certificateFingerprint, loadOrCreateTlsIdentity } from "./tls.ts";

const stateFlags = [
  {
    name: "state-dir",
    type: "string" as const,
    value: "DIR",
    help: "state directory (embedded mode)",
  },
  { name: "kubernetes", type: "boolean" as const, help: "keep state in Kubernetes Secrets" },
  {
    name: "kubeconfig",
    type: "string" as const,
    value: "FILE",
    help: "kubeconfig (default: in-cluster)",
  },
  {
    name: "namespace",
    type: "string" as const,
    value: "NS",
    help: "namespace of the KMS Secrets (default confidant-system)",
  },
  {
    name: "kek-file",
    type: "string" as const,
    value: "FILE",
    help: "key-encryption key file (else $CONFIDANT_KMS_KEK)",
  },
];
const stateShape = {
  "state-dir": z.string().min(1).optional(),
  kubernetes: z.boolean().default(false),
  kubeconfig: z.string().optional(),
  namespace: z.string().regex(/^[a-z0-9-]{1,63}$/).default("confidant-system"),
  "kek-file": z.string().optional(),
};
type StateInput = {
  "state-dir"?: string;
  kubernetes: boolean;
  kubeconfig?: string;
  namespace: string;
};

function openStore(i: StateInput): KmsStore {
  if (i.kubernetes) {
    return new KubeStore(kubeSecretsApi(loadKubeConfig({ kubeconfig: i.kubeconfig })), i.namespace);
  }
  if (!i["state-dir"]) throw new ConfidantError("usage", "give --state-dir DIR or --kubernetes");
  return new FileStore(i["state-dir"]);
}

const init = defineCommand({
  path: ["kms", "init"],
  summary: "create (or import) the KMS master secret",
  description: "Makes a 32-byte master secret and salt, sealed under the KEK, in the state.\n" +
    "--kek-file names a file that is created with a fresh random KEK when it does not exist.",
  flags: [
    ...stateFlags,
    { name: "cluster-id", type: "string", value: "ID", help: "cluster id (default: random)" },
    {
      name: "import",
      type: "string",
      value: "FILE",
      help: 'import {"clusterId","secret","salt"} (hex) instead',
    },
  ],
  schema: z.object({
    ...stateShape,
    "cluster-id": z.string().regex(CLUSTER_ID_RE).optional(),
    import: z.string().optional(),
  }),
  async run(i, ctx) {
    const kekFile = i["kek-file"];
    if (kekFile) {
      try {
        await Deno.stat(kekFile);
      } catch {
        const kek = crypto.getRandomValues(new Uint8Array(32));
        await atomicWriteFile(kekFile, toBase64(kek) + "\n", { mode: 0o600 });
        kek.fill(0);
        ctx.err(`confidant kms: created a new KEK in ${kekFile}; keep it apart from the state`);
      }
    }
    const kek = await loadKek(kekFile);
    let imported: MasterSecret | undefined;
    if (i.import) {
      const v = z.object({
        clusterId: z.string().regex(CLUSTER_ID_RE),
        secret: flag.hex(32),
        salt: flag.hex(32),
      }).parse(JSON.parse(await Deno.readTextFile(i.import)));
      imported = { clusterId: v.clusterId, secret: fromHex(v.secret), salt: fromHex(v.salt) };
    }
    const clusterId = i["cluster-id"] ?? imported?.clusterId ??
      `c-${
        Array.from(
          crypto.getRandomValues(new Uint8Array(6)),
          (b) => b.toString(16).padStart(2, "0"),
        ).join("")
      }`;
    const store = openStore(i);
    if (store instanceof FileStore) await store.ensureLayout();
    const r = await initKms(store, kek, clusterId, imported);
    kek.fill(0);
    ctx.out(
      ctx.json
        ? JSON.stringify({ clusterId: r.clusterId, store: store.description })
        : `initialised ${store.description} for cluster ${r.clusterId}`,
    );
  },
});

const serve = defineCommand({
  path: ["kms", "serve"],
  summary: "run the key service",
  flags: [
    ...stateFlags,
    {
      name: "policy",
      type: "string",
      value: "FILE",
      help: "policy (YAML or JSON), reloaded on change",
    },
    {
      name: "listen",
      type: "string",
      value: "HOST:PORT",
      help: "listen address (default 0.0.0.0:8443)",
    },
    {
      name: "tls-cert",
      type: "string",
      value: "FILE",
      help: "TLS certificate PEM (default: self-signed in the state dir)",
    },
    { name: "tls-key", type: "string", value: "FILE", help: "TLS private key PEM" },
    {
      name: "san",
      type: "string",
      value: "NAME",
      help: "extra name/IP in the self-signed certificate",
      repeatable: true,
    },
    {
      name: "audit-log",
      type: "string",
      value: "FILE",
      help: "audit log (default STATE/audit.jsonl)",
    },
    {
      name: "join",
      type: "boolean",
      help: "issue kubeadm join tickets through the Kubernetes API",
    },
    {
      name: "reuse-port",
      type: "boolean",
      help: "share the port with other kms serve processes (SO_REUSEPORT: one per core; " +
        "Deno needs --unstable-net for it with TLS)",
    },
  ],
  schema: z.object({
    ...stateShape,
    policy: z.string().min(1),
    listen: flag.hostPort().default("0.0.0.0:8443"),
    "tls-cert": z.string().optional(),
    "tls-key": z.string().optional(),
    san: z.array(z.string()).default([]),
    "audit-log": z.string().optional(),
    join: z.boolean().default(false),
    "reuse-port": z.boolean().default(false),
  }),
  async run(i, ctx) {
    const log = new Logger("kms");
    const kek = await loadKek(i["kek-file"]);
    const store = openStore(i);
    const stateDir = i["state-dir"];
    let certPem: string, keyPem: string, fingerprint: string;
    if (i["tls-cert"] || i["tls-key"]) {
      if (!i["tls-cert"] || !i["tls-key"]) {
        throw new ConfidantError("usage", "give both --tls-cert and --tls-key");
      }
      certPem = await Deno.readTextFile(i["tls-cert"]);
      keyPem = await Deno.readTextFile(i["tls-key"]);
      fingerprint = await certificateFingerprint(certPem);
    } else {
      if (!stateDir) {
        throw new ConfidantError(
          "usage",
          "a self-signed certificate is kept in --state-dir; give one or --tls-cert/--tls-key",
        );
      }
      await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
      const host = i.listen.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
      const names = [
        ...new Set([
          "localhost",
          "127.0.0.1",
          ...(host !== "0.0.0.0" && host !== "::" ? [host] : []),
          ...i.san,
        ]),
      ];
      ({ certPem, keyPem, fingerprint } = await loadOrCreateTlsIdentity(stateDir, kek, names));
    }
    const auditPath = i["audit-log"] ?? (stateDir ? joinPath(stateDir, "audit.jsonl") : undefined);
    if (!auditPath) throw new ConfidantError("usage", "give --audit-log FILE");
    const audit = new FileAuditLog(auditPath);
    const policy = await PolicyHolder.open(i.policy, {
      reloaded: (p) => {
        log.info("policy reloaded", { version: p.version });
        audit.record({
          time: new Date().toISOString(),
          event: "policy",
          decision: "reloaded",
          detail: p.version,
        });
      },
      rejected: (reason) => {
        log.warn("policy change rejected; the previous policy stays in force", { reason });
        audit.record({
          time: new Date().toISOString(),
          event: "policy",
          decision: "rejected",
          detail: reason,
        });
      },
    });
    policy.watch();
    let joinIssuer: JoinIssuer = noJoinIssuer;
    if (i.join) {
      const kc = loadKubeConfig({ kubeconfig: i.kubeconfig });
      const ca = await clusterCaPem(kc);
      joinIssuer = policyJoinIssuer(
        kubeSecretsApi(kc),
        () => policy.current.policy.join,
        ca,
      );
    }
    const kms = await buildKms({
      store,
      kek,
      policy,
      tlsFingerprint: fingerprint,
      audit,
      log,
      join: joinIssuer,
    });
    kek.fill(0);
    const [, host, port] = /^(.*):(\d+)$/.exec(i.listen)!;
    const server = serveKms(kms.app, {
      hostname: host.replace(/^\[|\]$/g, ""),
      port: Number(port),
      certPem,
      keyPem,
      reusePort: i["reuse-port"],
      onListen: (a) => {
        const fp = fingerprint.match(/../g)!.join(":").toUpperCase();
        ctx.out(
          ctx.json
            ? JSON.stringify({
              listening: `${a.hostname}:${a.port}`,
              fingerprint,
              clusterId: kms.clusterId,
            })
            : `confidant kms: cluster ${kms.clusterId}, listening on https://${a.hostname}:${a.port}\nTLS certificate SHA-256 fingerprint: ${fp}`,
        );
      },
    });
    const stop = () => server.shutdown();
    Deno.addSignalListener("SIGTERM", stop);
    Deno.addSignalListener("SIGINT", stop);
    await server.finished;
    policy.stop();
    await audit.close();
  },
});

const disksList = defineCommand({
  path: ["kms", "disks", "list"],
  summary: "list enrolled disks and the node identity each is bound to",
  flags: stateFlags,
  schema: z.object(stateShape),
  async run(i, ctx) {
    const disks = await openStore(i).listDisks();
    if (ctx.json) ctx.out(JSON.stringify(disks));
    else {for (const d of disks) {
        ctx.out(`${d.uuid}  ${d.identity}  ${d.role}  ${d.nodeName}  ${d.enrolledAt}`);
      }}
  },
});

const disksReassign = defineCommand({
  path: ["kms", "disks", "reassign"],
  summary: "bind an enrolled disk to another node identity",
  description:
    "The identity is SHA-256 of the node's EK SubjectPublicKeyInfo (hex), as the\naudit log names it when that node was refused.",
  flags: [
    ...stateFlags,
    {
      name: "audit-log",
      type: "string",
      value: "FILE",
      help: "audit log to record the change in (default STATE/audit.jsonl)",
    },
  ],
  positionals: [{ name: "uuid", help: "disk UUID" }, {
    name: "identity",
    help: "new node identity (64 hex)",
  }],
  schema: z.object({
    ...stateShape,
    "audit-log": z.string().optional(),
    uuid: z.string().regex(DISK_UUID_RE, "must be a UUID"),
    identity: z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lower-case hex digits"),
  }),
  async run(i, ctx) {
    const store = openStore(i);
    const before = await store.getDisk(i.uuid);
    const rec = await store.reassignDisk(i.uuid, i.identity, new Date());
    const auditPath = i["audit-log"] ??
      (i["state-dir"] ? joinPath(i["state-dir"], "audit.jsonl") : undefined);
    if (auditPath) {
      const a = new FileAuditLog(auditPath);
      a.record({
        time: new Date().toISOString(),
        event: "reassign",
        decision: "reassigned",
        identity: rec.identity,
        request: { disk: { uuid: rec.uuid } },
        detail: `from ${before?.identity}`,
      });
      await a.close();
    }
    ctx.out(ctx.json ? JSON.stringify(rec) : `disk ${rec.uuid} now bound to ${rec.identity}`);
  },
});

const joinCmd = defineCommand({
  path: ["join"],
  summary: "debug: run the KMS protocol once and print what was released",
  flags: [
    { name: "kms", type: "string", value: "URL", help: "https://HOST:PORT of the KMS" },
    {
      name: "kms-fingerprint",
      type: "string",
      value: "SHA256",
      help: "pinned SHA-256 of the KMS certificate",
    },
    {
      name: "tpm",
      type: "string",
      value: "SPEC",
      help: "/dev/tpmrm0 or swtpm:HOST:PORT (default /dev/tpmrm0)",
    },
    { name: "disk-uuid", type: "string", value: "UUID", help: "disk to ask the key of" },
    {
      name: "role",
      type: "string",
      value: "ROLE",
      help: "worker or control-plane (default worker)",
    },
    { name: "node-name", type: "string", value: "NAME", help: "node name (default: host name)" },
    {
      name: "pcrs",
      type: "string",
      value: "LIST",
      help: "SHA-256 PCRs to quote, e.g. 0,4,7 (default 0-9)",
    },
    { name: "out", type: "string", value: "FILE", help: "write the release JSON here (0600)" },
    {
      name: "show-secrets",
      type: "boolean",
      help: "print the disk key and join token instead of redacting",
    },
  ],
  schema: z.object({
    kms: z.string().url(),
    "kms-fingerprint": z.string(),
    tpm: z.string().default("/dev/tpmrm0"),
    "disk-uuid": z.string().regex(DISK_UUID_RE, "must be a UUID"),
    role: z.enum(["worker", "control-plane"]).default("worker"),
    "node-name": z.string().optional(),
    pcrs: z.string().regex(/^\d{1,2}(,\d{1,2})*$/).optional(),
    out: z.string().optional(),
    "show-secrets": z.boolean().default(false),
  }),
  async run(i, ctx) {
    const tpm = Tpm.open(i.tpm);
    const { release } = await requestRelease({
      kmsUrl: i.kms,
      fingerprint: i["kms-fingerprint"],
      tpm,
      pcrs: i.pcrs?.split(",").map(Number),
      request: {
        role: i.role,
        disk: { uuid: i["disk-uuid"] },
        nodeName: i["node-name"] ?? Deno.hostname().toLowerCase(),
      },
    });
    if (i.out) {
      await atomicWriteFile(i.out, JSON.stringify(release, null, 2) + "\n", { mode: 0o600 });
    }
    const shown = i["show-secrets"] ? release : {
      ...release,
      diskKey: "[redacted]",
      join: release.join.available
        ? {
          ...release.join,
          token: "[redacted]",
          ...(release.join.certificateKey ? { certificateKey: "[redacted]" } : {}),
        }
        : release.join,
    };
    ctx.out(JSON.stringify(shown, null, ctx.json ? undefined : 2));
  },
});

/** Commands registered in main.ts. */
export const commands: Command[] = [init, serve, disksList, disksReassign, joinCmd] as Command[];
