/**
 * The KubeApi adapter (npm:@kubernetes/client-node) against a STAND-IN API server: a small
 * HTTP server in this test that answers exactly the paths the agent uses (ConfigMap
 * cilium-config, Node, CiliumNode). No Kubernetes binaries can be installed here.
 */
import assert from "node:assert/strict";
import { KubeConfig } from "@kubernetes/client-node";
import { createKubeApi } from "../../agent/kube_api.ts";
import {
  checkNodeEncryption,
  CILIUM_CONFIGMAP,
  ciliumEncryptionConfig,
} from "../../agent/cilium.ts";
import { FakeWireGuard, WG_PUB } from "./_fakes.ts";

interface Seen {
  method: string;
  path: string;
  contentType: string | null;
  auth: string | null;
  body?: unknown;
}

function standInApiServer() {
  const seen: Seen[] = [];
  const configMaps = new Map<string, Record<string, string>>();
  const nodes = new Map<string, Record<string, string>>();
  const ciliumNodes = new Map<string, Record<string, string>>();
  let forbidCiliumNodes = false;
  const notFound = () =>
    Response.json({ kind: "Status", apiVersion: "v1", status: "Failure", code: 404 }, {
      status: 404,
    });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const body = req.body ? await req.json() : undefined;
    seen.push({
      method: req.method,
      path: url.pathname,
      contentType: req.headers.get("content-type"),
      auth: req.headers.get("authorization"),
      body,
    });
    let m = url.pathname.match(/^\/api\/v1\/namespaces\/([^/]+)\/configmaps(?:\/([^/]+))?$/);
    if (m) {
      const [, ns, name] = m;
      const key = `${ns}/${name}`;
      if (req.method === "GET" && name) {
        const data = configMaps.get(key);
        return data
          ? Response.json({
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name, namespace: ns },
            data,
          })
          : notFound();
      }
      if (req.method === "POST" && !name) {
        const b = body as { metadata: { name: string }; data: Record<string, string> };
        configMaps.set(`${ns}/${b.metadata.name}`, b.data);
        return Response.json(b, { status: 201 });
      }
      if (req.method === "PATCH" && name) {
        const cur = configMaps.get(key);
        if (!cur) return notFound();
        const next = { ...cur, ...(body as { data: Record<string, string> }).data };
        configMaps.set(key, next);
        return Response.json({
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name, namespace: ns },
          data: next,
        });
      }
    }
    m = url.pathname.match(/^\/api\/v1\/nodes\/([^/]+)$/);
    if (m && req.method === "GET") {
      const a = nodes.get(m[1]);
      return a
        ? Response.json({
          apiVersion: "v1",
          kind: "Node",
          metadata: { name: m[1], annotations: a },
        })
        : notFound();
    }
    m = url.pathname.match(/^\/apis\/cilium\.io\/v2\/ciliumnodes\/([^/]+)$/);
    if (m && req.method === "GET") {
      if (forbidCiliumNodes) return Response.json({ code: 403 }, { status: 403 });
      const a = ciliumNodes.get(m[1]);
      return a
        ? Response.json({
          apiVersion: "cilium.io/v2",
          kind: "CiliumNode",
          metadata: { name: m[1], annotations: a },
        })
        : notFound();
    }
    return Response.json({
      code: 500,
      message: `stand-in does not serve ${req.method} ${url.pathname}`,
    }, {
      status: 500,
    });
  });
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${server.addr.port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "stand-in-token" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return {
    kc,
    seen,
    configMaps,
    nodes,
    ciliumNodes,
    forbid: () => (forbidCiliumNodes = true),
    close: () => server.shutdown(),
  };
}

Deno.test("createKubeApi() creates, then merge-patches, then leaves cilium-config unchanged", async () => {
  const s = standInApiServer();
  try {
    const api = createKubeApi(s.kc);
    const data = ciliumEncryptionConfig({
      nodeEncryption: true,
      strictModeCidr: "10.244.0.0/16",
      strictModeAllowRemoteNodeIdentities: true,
      strictModeKeys: "legacy",
    });
    const { namespace, name } = CILIUM_CONFIGMAP;
    assert.equal(await api.mergeConfigMap(namespace, name, data), "created");
    assert.deepEqual(s.configMaps.get("kube-system/cilium-config"), {
      "enable-wireguard": "true",
      "encrypt-node": "true",
      "enable-encryption-strict-mode": "true",
      "encryption-strict-mode-cidr": "10.244.0.0/16",
      "encryption-strict-mode-allow-remote-node-identities": "true",
    });
    assert.equal(await api.mergeConfigMap(namespace, name, data), "unchanged");
    s.configMaps.set("kube-system/cilium-config", {
      "enable-wireguard": "false",
      "tunnel-protocol": "vxlan",
    });
    assert.equal(await api.mergeConfigMap(namespace, name, data), "updated");
    const patch = s.seen.find((x) => x.method === "PATCH")!;
    assert.equal(patch.path, "/api/v1/namespaces/kube-system/configmaps/cilium-config");
    assert.match(patch.contentType!, /^application\/merge-patch\+json/);
    assert.deepEqual(patch.body, { data });
    assert.equal(s.configMaps.get("kube-system/cilium-config")!["tunnel-protocol"], "vxlan");
    assert.equal(s.configMaps.get("kube-system/cilium-config")!["enable-wireguard"], "true");
    assert.equal(patch.auth, "Bearer stand-in-token");
  } finally {
    await s.close();
  }
});

Deno.test("checkNodeEncryption() reads the wg-pub-key annotation from Node and CiliumNode", async () => {
  const s = standInApiServer();
  try {
    const api = createKubeApi(s.kc);
    const host = new FakeWireGuard();
    assert.deepEqual(await checkNodeEncryption(api, host, "node-1"), {
      enabled: false,
      evidence: [],
    });
    s.ciliumNodes.set("node-1", { "network.cilium.io/wg-pub-key": WG_PUB });
    assert.deepEqual(await checkNodeEncryption(api, host, "node-1"), {
      enabled: true,
      evidence: ["ciliumnode-annotation"],
      publicKey: WG_PUB,
    });
    s.forbid();
    s.nodes.set("node-1", { "network.cilium.io/wg-pub-key": WG_PUB });
    host.interfaces.add("cilium_wg0");
    const r = await checkNodeEncryption(api, host, "node-1");
    assert.deepEqual(r.evidence, ["node-annotation", "interface"]);
    assert.ok(s.seen.some((x) => x.path === "/apis/cilium.io/v2/ciliumnodes/node-1"));
    assert.ok(s.seen.some((x) => x.path === "/api/v1/nodes/node-1"));
  } finally {
    await s.close();
  }
});

Deno.test("createKubeApi() turns an unreachable server into an agent.kube_api error", async () => {
  const s = standInApiServer();
  try {
    const api = createKubeApi(s.kc);
    await s.close();
    await assert.rejects(
      () => api.mergeConfigMap("kube-system", "cilium-config", {}),
      (e: Error & { code?: string }) => e.code === "agent.kube_api",
    );
  } finally {
    await s.close();
  }
});
