/**
 * Cilium transparent encryption with WireGuard: the `cilium-config` keys the
 * first control-plane node applies, and the check that Cilium runs WireGuard
 * on this node (a node without encryption is not ready).
 *
 * Option names (Cilium's ConfigMap keys): `enable-wireguard`, `encrypt-node`,
 * and for strict mode either the 1.19+ names `enable-encryption-strict-mode-egress`,
 * `encryption-strict-egress-cidr`, `encryption-strict-egress-allow-remote-node-identities`,
 * or the names of 1.18 and earlier `enable-encryption-strict-mode`,
 * `encryption-strict-mode-cidr`, `encryption-strict-mode-allow-remote-node-identities`.
 *
 * @module
 */
import type { KubeApi, WireGuardHost } from "./ports.ts";
import type { EncryptionState } from "./state.ts";

/** Namespace and name of Cilium's ConfigMap. */
export const CILIUM_CONFIGMAP = { namespace: "kube-system", name: "cilium-config" } as const;
/** Annotation in which Cilium publishes a node's WireGuard public key. */
export const WG_PUBKEY_ANNOTATION = "network.cilium.io/wg-pub-key";
/** Cilium's WireGuard interface. */
export const CILIUM_WG_INTERFACE = "cilium_wg0";

/** Settings for {@link ciliumEncryptionConfig}. */
export interface CiliumEncryptionSettings {
  nodeEncryption: boolean;
  strictModeCidr?: string;
  strictModeAllowRemoteNodeIdentities: boolean;
  strictModeKeys: "egress" | "legacy";
}

/** The `cilium-config` data for WireGuard, node encryption and strict mode. Pure. */
export function ciliumEncryptionConfig(s: CiliumEncryptionSettings): Record<string, string> {
  const data: Record<string, string> = {
    "enable-wireguard": "true",
    "encrypt-node": String(s.nodeEncryption),
  };
  if (s.strictModeCidr) {
    const legacy = s.strictModeKeys === "legacy";
    data[legacy ? "enable-encryption-strict-mode" : "enable-encryption-strict-mode-egress"] =
      "true";
    data[legacy ? "encryption-strict-mode-cidr" : "encryption-strict-egress-cidr"] =
      s.strictModeCidr;
    data[
      legacy
        ? "encryption-strict-mode-allow-remote-node-identities"
        : "encryption-strict-egress-allow-remote-node-identities"
    ] = String(s.strictModeAllowRemoteNodeIdentities);
  }
  return data;
}

const WG_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/**
 * Ask the API and the host whether Cilium runs WireGuard on `nodeName`. Each source that
 * fails to answer is treated as "no evidence"; the result lists which sources showed it.
 */
export async function checkNodeEncryption(
  kube: KubeApi | undefined,
  host: WireGuardHost,
  nodeName: string,
): Promise<Omit<EncryptionState, "checkedAt">> {
  const evidence: string[] = [];
  let publicKey: string | undefined;
  const fromAnnotations = (a: Record<string, string> | undefined, source: string) => {
    const key = a?.[WG_PUBKEY_ANNOTATION];
    if (key !== undefined && WG_KEY.test(key)) {
      evidence.push(source);
      publicKey ??= key;
    }
  };
  if (kube) {
    fromAnnotations(await kube.nodeAnnotations(nodeName).catch(() => undefined), "node-annotation");
    fromAnnotations(
      await kube.ciliumNodeAnnotations(nodeName).catch(() => undefined),
      "ciliumnode-annotation",
    );
  }
  if (await host.interfaceExists(CILIUM_WG_INTERFACE).catch(() => false)) {
    evidence.push("interface");
  }
  return { enabled: evidence.length > 0, evidence, ...(publicKey ? { publicKey } : {}) };
}
