/**
 * kubeadm `ClusterConfiguration` + `InitConfiguration` (apiVersion `kubeadm.k8s.io/v1beta4`)
 * for the first control-plane node, from the operator's cluster-wide settings (sealed in the
 * init payload) and the node's own agent config. Pure. The InitConfiguration carries a fresh
 * certificate key so that `kubeadm init --upload-certs` encrypts the control-plane
 * certificates for later control-plane joins, and a bootstrap token of our own with a short
 * TTL ({@link BOOTSTRAP_TOKEN_TTL}): without `bootstrapTokens` kubeadm makes a default token
 * that lives 24 h and prints it in its output. Joining nodes get their own short-lived
 * tokens from the KMS's join tickets, so this one is needed only for kubeadm's own run.
 *
 * @module
 */
import { stringify } from "yaml";
import { ConfidantError } from "../lib/errors.ts";
import type { KubernetesSettings } from "../cluster/protocol.ts";

/** Node-local inputs of {@link buildInitConfiguration}. */
export interface InitNodeSettings {
  clusterName: string;
  nodeName: string;
  criSocket: string;
  nodeIp?: string;
  advertiseAddress?: string;
  bindPort: number;
  kubeletExtraArgs: { name: string; value: string }[];
  /** 32 bytes hex: kubeadm's certificate key. */
  certificateKey: string;
  /** `[a-z0-9]{6}.[a-z0-9]{16}`: the bootstrap token kubeadm init creates (see {@link newBootstrapToken}). */
  bootstrapToken: string;
}

/** Lifetime of the bootstrap token in the InitConfiguration. */
export const BOOTSTRAP_TOKEN_TTL = "15m0s";
/** Shape of a kubeadm bootstrap token. */
export const BOOTSTRAP_TOKEN_RE = /^[a-z0-9]{6}\.[a-z0-9]{16}$/;

/** A fresh random bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}` (unbiased: rejection sampling). */
export function newBootstrapToken(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  let out = "";
  while (out.length < 22) {
    for (const b of crypto.getRandomValues(new Uint8Array(32))) {
      if (b < 252 && out.length < 22) out += alphabet[b % 36];
    }
  }
  return `${out.slice(0, 6)}.${out.slice(6)}`;
}

/** The two documents as plain objects. */
export interface InitConfigurationDocs {
  cluster: Record<string, unknown>;
  init: Record<string, unknown>;
}

/** Build the ClusterConfiguration and InitConfiguration. */
export function buildInitConfiguration(
  k: KubernetesSettings,
  n: InitNodeSettings,
): InitConfigurationDocs {
  const address = n.advertiseAddress ?? n.nodeIp;
  if (!address) {
    throw new ConfidantError(
      "agent.config",
      "kubeadm init needs kubeadm.advertiseAddress or kubeadm.nodeIp in the agent config",
    );
  }
  if (!/^[0-9a-f]{64}$/.test(n.certificateKey)) {
    throw new ConfidantError("agent.certificate_key", "the certificate key must be 64 hex digits");
  }
  if (!BOOTSTRAP_TOKEN_RE.test(n.bootstrapToken)) {
    throw new ConfidantError(
      "agent.bootstrap_token",
      "the bootstrap token must match [a-z0-9]{6}.[a-z0-9]{16}",
    );
  }
  const extra = n.kubeletExtraArgs.filter((a) => a.name !== "node-ip");
  if (n.nodeIp) extra.unshift({ name: "node-ip", value: n.nodeIp });
  const endpoint = k.controlPlaneEndpoint ??
    (address.includes(":") ? `[${address}]:${n.bindPort}` : `${address}:${n.bindPort}`);
  return {
    cluster: {
      apiVersion: "kubeadm.k8s.io/v1beta4",
      kind: "ClusterConfiguration",
      clusterName: n.clusterName,
      kubernetesVersion: k.kubernetesVersion,
      controlPlaneEndpoint: endpoint,
      networking: {
        podSubnet: k.podSubnet,
        serviceSubnet: k.serviceSubnet,
        dnsDomain: k.dnsDomain,
      },
      apiServer: { certSANs: [...new Set([address, ...k.certSANs])] },
    },
    init: {
      apiVersion: "kubeadm.k8s.io/v1beta4",
      kind: "InitConfiguration",
      bootstrapTokens: [{
        token: n.bootstrapToken,
        description: "confidant: kubeadm init's own token (joining nodes get KMS tickets)",
        ttl: BOOTSTRAP_TOKEN_TTL,
        usages: ["signing", "authentication"],
        groups: ["system:bootstrappers:kubeadm:default-node-token"],
      }],
      nodeRegistration: { name: n.nodeName, criSocket: n.criSocket, kubeletExtraArgs: extra },
      localAPIEndpoint: { advertiseAddress: address, bindPort: n.bindPort },
      certificateKey: n.certificateKey,
    },
  };
}

/** The two documents as one YAML stream (what `kubeadm init --config` reads). */
export function initConfigurationYaml(d: InitConfigurationDocs): string {
  return `${stringify(d.cluster)}---\n${stringify(d.init)}`;
}
