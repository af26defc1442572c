/**
 * The KMS's only door to the Kubernetes API: a four-method Secrets interface over
 * npm:@kubernetes/client-node (CoreV1Api), with conflicts and absence turned into typed
 * results. Used by the Kubernetes state backend and by the join-ticket issuer.
 *
 * API paths used (and implemented by the test stand-in):
 *   POST /api/v1/namespaces/{ns}/secrets
 *   GET  /api/v1/namespaces/{ns}/secrets/{name}
 *   GET  /api/v1/namespaces/{ns}/secrets?labelSelector=...
 *   PUT  /api/v1/namespaces/{ns}/secrets/{name}    (with metadata.resourceVersion)
 *
 * @module
 */
import * as k8s from "@kubernetes/client-node";
import { ConfidantError } from "../lib/errors.ts";

/** A Secret as the KMS uses it (data values base64, as in the API). */
export interface SecretObject {
  name: string;
  namespace: string;
  type?: string;
  labels?: Record<string, string>;
  /** Base64 values. */
  data: Record<string, string>;
  resourceVersion?: string;
}

/** Secrets operations the KMS needs. */
export interface SecretsApi {
  /** Create; false when a Secret of that name exists (409). */
  create(s: SecretObject): Promise<boolean>;
  /** Read; undefined when absent (404). */
  get(namespace: string, name: string): Promise<SecretObject | undefined>;
  /** List by label selector. */
  list(namespace: string, labelSelector: string): Promise<SecretObject[]>;
  /** Replace with optimistic concurrency; false on a resourceVersion conflict (409). */
  update(s: SecretObject): Promise<boolean>;
}

/** How to reach the API server. */
export interface KubeOptions {
  /** Path of a kubeconfig; without it the in-cluster service account (or $KUBECONFIG). */
  kubeconfig?: string;
}

/** Load a KubeConfig as described by `opts`. */
export function loadKubeConfig(opts: KubeOptions): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromDefault();
  } catch (e) {
    throw new ConfidantError("kms.kube_config", "cannot load the Kubernetes configuration", {
      cause: e,
    });
  }
  if (!kc.getCurrentCluster()) {
    throw new ConfidantError("kms.kube_config", "the Kubernetes configuration names no cluster");
  }
  return kc;
}

/** PEM of the cluster CA from the kubeconfig (caData or caFile), if it has one. */
export async function clusterCaPem(kc: k8s.KubeConfig): Promise<string | undefined> {
  const c = kc.getCurrentCluster();
  if (!c) return undefined;
  if (c.caData) {
    return new TextDecoder().decode(Uint8Array.from(atob(c.caData), (ch) => ch.charCodeAt(0)));
  }
  if (c.caFile) return await Deno.readTextFile(c.caFile);
  return undefined;
}

function statusOf(e: unknown): number | undefined {
  if (
    e && typeof e === "object" && "code" in e && typeof (e as { code: unknown }).code === "number"
  ) {
    return (e as { code: number }).code;
  }
  return undefined;
}

function fromV1(s: k8s.V1Secret, namespace: string): SecretObject {
  return {
    name: s.metadata?.name ?? "",
    namespace: s.metadata?.namespace ?? namespace,
    type: s.type,
    labels: s.metadata?.labels,
    data: s.data ?? {},
    resourceVersion: s.metadata?.resourceVersion,
  };
}

function toV1(s: SecretObject): k8s.V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: s.name,
      namespace: s.namespace,
      labels: s.labels,
      resourceVersion: s.resourceVersion,
    },
    type: s.type,
    data: s.data,
  };
}

function wrap(what: string, e: unknown): ConfidantError {
  const code = statusOf(e);
  // Without an HTTP status (connection, TLS, configuration) the cause is what tells why.
  const why = code
    ? ` (HTTP ${code})`
    : e instanceof Error
    ? `: ${e.message.split("\n")[0].slice(0, 200)}`
    : "";
  return new ConfidantError("kms.kube_api", `Kubernetes API ${what} failed${why}`, { cause: e });
}

/** {@link SecretsApi} over @kubernetes/client-node. */
export function kubeSecretsApi(kc: k8s.KubeConfig): SecretsApi {
  const api = kc.makeApiClient(k8s.CoreV1Api);
  return {
    async create(s) {
      try {
        await api.createNamespacedSecret({
          namespace: s.namespace,
          body: toV1({ ...s, resourceVersion: undefined }),
        });
        return true;
      } catch (e) {
        if (statusOf(e) === 409) return false;
        throw wrap(`create secret ${s.namespace}/${s.name}`, e);
      }
    },
    async get(namespace, name) {
      try {
        return fromV1(await api.readNamespacedSecret({ namespace, name }), namespace);
      } catch (e) {
        if (statusOf(e) === 404) return undefined;
        throw wrap(`get secret ${namespace}/${name}`, e);
      }
    },
    async list(namespace, labelSelector) {
      try {
        const out: SecretObject[] = [];
        let cont: string | undefined;
        do {
          const l = await api.listNamespacedSecret({
            namespace,
            labelSelector,
            limit: 500,
            _continue: cont,
          });
          for (const s of l.items) out.push(fromV1(s, namespace));
          cont = l.metadata?._continue || undefined;
        } while (cont);
        return out;
      } catch (e) {
        throw wrap(`list secrets in ${namespace}`, e);
      }
    },
    async update(s) {
      try {
        await api.replaceNamespacedSecret({ namespace: s.namespace, name: s.name, body: toV1(s) });
        return true;
      } catch (e) {
        if (statusOf(e) === 409) return false;
        throw wrap(`update secret ${s.namespace}/${s.name}`, e);
      }
    },
  };
}
