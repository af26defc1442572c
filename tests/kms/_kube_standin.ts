/**
 * TEST STAND-IN for the Kubernetes API server: an in-process HTTP server implementing exactly
 * the API paths the KMS uses (Secrets create/get/list/replace in a namespace, with
 * resourceVersion conflicts and AlreadyExists on create). It is not a Kubernetes API server.
 */
import * as k8s from "@kubernetes/client-node";

interface Stored {
  body: Record<string, unknown> & { metadata: Record<string, unknown> };
}

/** A running stand-in. */
export interface KubeStandin {
  url: string;
  kubeConfig(): k8s.KubeConfig;
  secrets: Map<string, Stored>;
  stop(): Promise<void>;
}

const status = (code: number, reason: string) =>
  Response.json({ kind: "Status", apiVersion: "v1", status: "Failure", reason, code }, {
    status: code,
  });

/**
 * Start a stand-in on a free port: plain HTTP, or HTTPS with `tls` (a certificate for
 * 127.0.0.1, which a kubeconfig can name as its `certificate-authority-data`).
 */
export function startKubeStandin(tls?: { certPem: string; keyPem: string }): KubeStandin {
  const secrets = new Map<string, Stored>();
  let rv = 100;
  const listen = { hostname: "127.0.0.1", port: 0, onListen() {} };
  const options = tls ? { ...listen, cert: tls.certPem, key: tls.keyPem } : listen;
  const server = Deno.serve(options, async (req) => {
    const u = new URL(req.url);
    const m = /^\/api\/v1\/namespaces\/([a-z0-9-]+)\/secrets(?:\/([a-z0-9.-]+))?$/.exec(u.pathname);
    if (!m) return status(404, "NotFound");
    const [, ns, name] = m;
    if (req.method === "POST" && !name) {
      const b = await req.json();
      const key = `${ns}/${b.metadata.name}`;
      if (secrets.has(key)) return status(409, "AlreadyExists");
      const body = {
        ...b,
        metadata: { ...b.metadata, namespace: ns, resourceVersion: String(++rv) },
      };
      secrets.set(key, { body });
      return Response.json(body, { status: 201 });
    }
    if (req.method === "GET" && name) {
      const s = secrets.get(`${ns}/${name}`);
      return s ? Response.json(s.body) : status(404, "NotFound");
    }
    if (req.method === "GET" && !name) {
      const sel = u.searchParams.get("labelSelector");
      const items = [...secrets.entries()].filter(([k]) => k.startsWith(`${ns}/`)).map(([, s]) =>
        s.body
      )
        .filter((b) => {
          if (!sel) return true;
          const [lk, lv] = sel.split("=");
          return (b.metadata.labels as Record<string, string> | undefined)?.[lk] === lv;
        });
      return Response.json({ kind: "SecretList", apiVersion: "v1", metadata: {}, items });
    }
    if (req.method === "PUT" && name) {
      const key = `${ns}/${name}`;
      const cur = secrets.get(key);
      if (!cur) return status(404, "NotFound");
      const b = await req.json();
      if (b.metadata.resourceVersion !== cur.body.metadata.resourceVersion) {
        return status(409, "Conflict");
      }
      const body = {
        ...b,
        metadata: { ...b.metadata, namespace: ns, resourceVersion: String(++rv) },
      };
      secrets.set(key, { body });
      return Response.json(body);
    }
    return status(405, "MethodNotAllowed");
  });
  const url = `${tls ? "https" : "http"}://127.0.0.1:${server.addr.port}`;
  return {
    url,
    secrets,
    kubeConfig() {
      const kc = new k8s.KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: "standin", server: url, skipTLSVerify: true }],
        users: [{ name: "kms", token: "standin-token" }],
        contexts: [{ name: "standin", cluster: "standin", user: "kms" }],
        currentContext: "standin",
      });
      return kc;
    },
    stop: () => server.shutdown(),
  };
}
