/**
 * kubeadm `JoinConfiguration` (apiVersion `kubeadm.k8s.io/v1beta4`) built from
 * the KMS's join ticket and the agent config. Pure. In v1beta4
 * `kubeletExtraArgs` is a list of `{ name, value }`, not a map.
 *
 * @module
 */
import { z } from "zod";
import { stringify } from "yaml";
import { ConfidantError } from "../lib/errors.ts";
import type { JoinTicket, NodeRole } from "./ports.ts";

/** Schema of a join ticket as the agent accepts it (the KMS is trusted, the wire is not). */
export const JoinTicketSchema = z.strictObject({
  apiServerEndpoint: z.string().max(300).regex(
    /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/,
    "must be HOST:PORT",
  ),
  token: z.string().regex(/^[a-z0-9]{6}\.[a-z0-9]{16}$/, "must be a bootstrap token"),
  caCertHashes: z.array(z.string().regex(/^sha256:[0-9a-f]{64}$/, "must be sha256:<64 hex>"))
    .min(1).max(16),
  certificateKey: z.string().regex(/^[0-9a-f]{64}$/, "must be 64 hex digits").optional(),
});

/** Inputs of {@link buildJoinConfiguration} besides the ticket. */
export interface JoinSettings {
  role: NodeRole;
  nodeName: string;
  criSocket: string;
  nodeIp?: string;
  advertiseAddress?: string;
  bindPort: number;
  kubeletExtraArgs: { name: string; value: string }[];
}

/** A v1beta4 JoinConfiguration as a plain object. */
export interface JoinConfiguration {
  apiVersion: "kubeadm.k8s.io/v1beta4";
  kind: "JoinConfiguration";
  discovery: {
    bootstrapToken: { apiServerEndpoint: string; token: string; caCertHashes: string[] };
  };
  nodeRegistration: {
    name: string;
    criSocket: string;
    kubeletExtraArgs: { name: string; value: string }[];
  };
  controlPlane?: {
    localAPIEndpoint: { advertiseAddress: string; bindPort: number };
    certificateKey: string;
  };
}

/** Build the JoinConfiguration; a bad ticket or a control-plane join without key/address throws. */
export function buildJoinConfiguration(
  ticket: JoinTicket,
  settings: JoinSettings,
): JoinConfiguration {
  const r = JoinTicketSchema.safeParse(ticket);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new ConfidantError(
      "agent.join_ticket",
      `join ticket from the KMS is malformed: ${
        issue.path.join(".") || "ticket"
      }: ${issue.message}`,
    );
  }
  const t = r.data;
  const extra = settings.kubeletExtraArgs.filter((a) => a.name !== "node-ip");
  if (settings.nodeIp) extra.unshift({ name: "node-ip", value: settings.nodeIp });
  const cfg: JoinConfiguration = {
    apiVersion: "kubeadm.k8s.io/v1beta4",
    kind: "JoinConfiguration",
    discovery: {
      bootstrapToken: {
        apiServerEndpoint: t.apiServerEndpoint,
        token: t.token,
        caCertHashes: [...t.caCertHashes],
      },
    },
    nodeRegistration: {
      name: settings.nodeName,
      criSocket: settings.criSocket,
      kubeletExtraArgs: extra,
    },
  };
  if (settings.role === "control-plane") {
    if (!t.certificateKey) {
      throw new ConfidantError(
        "agent.join_ticket",
        "control-plane join needs a certificate key, and the KMS's join ticket has none",
      );
    }
    const address = settings.advertiseAddress ?? settings.nodeIp;
    if (!address) {
      throw new ConfidantError(
        "agent.config",
        "control-plane join needs kubeadm.advertiseAddress or kubeadm.nodeIp in the agent config",
      );
    }
    cfg.controlPlane = {
      localAPIEndpoint: { advertiseAddress: address, bindPort: settings.bindPort },
      certificateKey: t.certificateKey,
    };
  }
  return cfg;
}

/** The configuration as YAML (what kubeadm reads). */
export function joinConfigurationYaml(cfg: JoinConfiguration): string {
  return stringify(cfg);
}

/** A copy with the bootstrap token's secret half and the certificate key replaced. */
export function redactJoinConfiguration(cfg: JoinConfiguration): JoinConfiguration {
  const out = structuredClone(cfg);
  const token = out.discovery.bootstrapToken.token;
  out.discovery.bootstrapToken.token = `${token.split(".")[0]}.[redacted]`;
  if (out.controlPlane) out.controlPlane.certificateKey = "[redacted]";
  return out;
}

/** The secret strings of a ticket (to scrub them from kubeadm's output). */
export function ticketSecrets(ticket: JoinTicket): string[] {
  const out = [ticket.token, ticket.token.split(".")[1] ?? ""];
  if (ticket.certificateKey) out.push(ticket.certificateKey);
  return out.filter((s) => s.length >= 8);
}
