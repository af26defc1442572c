/**
 * The {@link KubeApi} port over `@kubernetes/client-node` (CoreV1Api for the
 * ConfigMap and the Node, CustomObjectsApi for the CiliumNode).
 *
 * @module
 */
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { ConfidantError } from "../lib/errors.ts";
import type { KubeApi } from "./ports.ts";

function status(e: unknown): number | undefined {
  return e instanceof ApiException ? e.code : undefined;
}

function wrap(what: string, e: unknown): ConfidantError {
  const code = status(e);
  return new ConfidantError(
    "agent.kube_api",
    `Kubernetes API: ${what} failed${code ? ` with HTTP ${code}` : `: ${(e as Error).message}`}`,
    { cause: e },
  );
}

/** A {@link KubeApi} using the credentials of `kc`. */
export function createKubeApi(kc: KubeConfig): KubeApi {
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  return {
    async mergeConfigMap(namespace, name, data) {
      let current: Record<string, string> | undefined;
      try {
        current = (await core.readNamespacedConfigMap({ name, namespace })).data ?? {};
      } catch (e) {
        if (status(e) !== 404) throw wrap(`reading ConfigMap ${namespace}/${name}`, e);
      }
      if (current === undefined) {
        try {
          await core.createNamespacedConfigMap({
            namespace,
            body: { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace }, data },
          });
          return "created";
        } catch (e) {
          throw wrap(`creating ConfigMap ${namespace}/${name}`, e);
        }
      }
      if (Object.entries(data).every(([k, v]) => current![k] === v)) return "unchanged";
      try {
        await core.patchNamespacedConfigMap(
          { name, namespace, body: { data } },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        );
      } catch (e) {
        throw wrap(`patching ConfigMap ${namespace}/${name}`, e);
      }
      return "updated";
    },
    async nodeAnnotations(name) {
      try {
        return (await core.readNode({ name })).metadata?.annotations ?? {};
      } catch (e) {
        if (status(e) === 404) return undefined;
        throw wrap(`reading Node ${name}`, e);
      }
    },
    async ciliumNodeAnnotations(name) {
      try {
        const obj = await custom.getClusterCustomObject({
          group: "cilium.io",
          version: "v2",
          plural: "ciliumnodes",
          name,
        }) as { metadata?: { annotations?: Record<string, string> } };
        return obj?.metadata?.annotations ?? {};
      } catch (e) {
        const code = status(e);
        if (code === 404 || code === 403) return undefined;
        throw wrap(`reading CiliumNode ${name}`, e);
      }
    },
  };
}

/** A {@link KubeApi} from a kubeconfig file (admin.conf, kubelet.conf). */
export function kubeApiFromFile(path: string): KubeApi {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return createKubeApi(kc);
}
