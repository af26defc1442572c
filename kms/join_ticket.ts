/**
 * kubeadm join tickets: a fresh bootstrap token written as the standard bootstrap-token
 * Secret in `kube-system`, the API server endpoint, and the discovery CA hash
 * (`sha256:` of the CA certificate's SubjectPublicKeyInfo DER). Control-plane joins also get
 * kubeadm's certificate key, read from a Secret the operator created when uploading the
 * control-plane certificates (`kubeadm init phase upload-certs --upload-certs`).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { fromBase64, toBase64, utf8 } from "../lib/bytes.ts";
import { ConfidantError } from "../lib/errors.ts";
import { X509Certificate } from "../lib/x509.ts";
import type { SecretsApi } from "./kube.ts";
import type { Role } from "./protocol.ts";
import type { JoinTicket } from "./release.ts";

/** Lifetime of a bootstrap token (15 minutes). */
export const BOOTSTRAP_TOKEN_TTL_MS = 15 * 60_000;
const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** A bootstrap token `<id>.<secret>`. */
export interface BootstrapToken {
  id: string;
  secret: string;
}

function randomChars(n: number): string {
  let out = "";
  while (out.length < n) {
    for (const b of crypto.getRandomValues(new Uint8Array(n * 2))) {
      // 252 = 7 * 36: reject above it so each character is uniform.
      if (b < 252 && out.length < n) out += ALPHABET[b % 36];
    }
  }
  return out;
}

/** A fresh random bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`). */
export function generateBootstrapToken(): BootstrapToken {
  return { id: randomChars(6), secret: randomChars(16) };
}

/** The token as kubeadm takes it. */
export function formatBootstrapToken(t: BootstrapToken): string {
  return `${t.id}.${t.secret}`;
}

/** The bootstrap-token Secret for `t`, expiring at `expiresAt`. */
export function bootstrapTokenSecret(t: BootstrapToken, expiresAt: Date, nodeName: string) {
  const enc = (s: string) => toBase64(utf8(s));
  return {
    name: `bootstrap-token-${t.id}`,
    namespace: "kube-system",
    type: "bootstrap.kubernetes.io/token",
    labels: { "app.kubernetes.io/managed-by": "confidant-kms" },
    data: {
      "description": enc(`confidant kms join ticket for ${nodeName}`),
      "token-id": enc(t.id),
      "token-secret": enc(t.secret),
      "expiration": enc(expiresAt.toISOString().replace(/\.\d{3}Z$/, "Z")),
      "usage-bootstrap-authentication": enc("true"),
      "usage-bootstrap-signing": enc("true"),
      "auth-extra-groups": enc("system:bootstrappers:kubeadm:default-node-token"),
    },
  };
}

/** `sha256:<hex>` of the SubjectPublicKeyInfo of the CA certificate in `pem`. */
export function caCertHash(pem: string): string {
  let spki: Uint8Array;
  try {
    spki = new Uint8Array(new X509Certificate(pem).publicKey.rawData);
  } catch (e) {
    throw new ConfidantError("kms.join_ca", "the cluster CA certificate does not parse", {
      cause: e,
    });
  }
  return `sha256:${createHash("sha256").update(spki).digest("hex")}`;
}

/** Join settings in force (from the policy and the Kubernetes configuration). */
export interface JoinSettings {
  /** `HOST:PORT` of the API server for kubeadm. */
  apiServerEndpoint: string;
  /** Discovery hashes (`sha256:...`). */
  caCertHashes: string[];
  /** Where the kubeadm certificate key for control-plane joins is kept. */
  certificateKeySecret?: { namespace: string; name: string; key: string };
  /** Token lifetime (ms); 15 minutes by default. */
  ttlMs?: number;
}

/** Issues join tickets. */
export interface JoinIssuer {
  issue(req: { role: Role; nodeName: string }, now: Date): Promise<JoinTicket>;
}

/** The issuer used when no Kubernetes is configured: tickets are marked unavailable. */
export const noJoinIssuer: JoinIssuer = {
  issue() {
    return Promise.resolve({
      available: false,
      reason: "no Kubernetes API is configured on this KMS (embedded mode)",
    });
  },
};

/** The `join` section of a KMS policy, as {@link policyJoinIssuer} reads it. */
export interface PolicyJoinSection {
  apiServerEndpoint: string;
  caCertHashes?: string[];
  certificateKeySecret?: { namespace: string; name: string; key: string };
  ttlMinutes: number;
}

/**
 * A kubeadm join issuer whose settings are the current policy's `join` section, with the
 * discovery hash of `clusterCaPem` when the section names none. Used by `kms serve` and by
 * the in-process KMS of a control-plane node.
 */
export function policyJoinIssuer(
  api: SecretsApi,
  joinSection: () => PolicyJoinSection | undefined,
  clusterCaPem?: string,
): JoinIssuer {
  const defaultHashes = clusterCaPem ? [caCertHash(clusterCaPem)] : [];
  return kubeadmJoinIssuer(api, () => {
    const j = joinSection();
    if (!j) return undefined;
    const hashes = j.caCertHashes ?? defaultHashes;
    if (hashes.length === 0) return undefined;
    return {
      apiServerEndpoint: j.apiServerEndpoint,
      caCertHashes: hashes,
      certificateKeySecret: j.certificateKeySecret,
      ttlMs: j.ttlMinutes * 60_000,
    };
  });
}

/** Issues kubeadm tickets through the Kubernetes API; `settings` is read at each call. */
export function kubeadmJoinIssuer(
  api: SecretsApi,
  settings: () => JoinSettings | undefined,
): JoinIssuer {
  return {
    async issue(req, now) {
      const s = settings();
      if (!s) return { available: false, reason: "the policy has no join section" };
      let certificateKey: string | undefined;
      if (req.role === "control-plane") {
        if (!s.certificateKeySecret) {
          return { available: false, reason: "control-plane joins need join.certificateKeySecret" };
        }
        const { namespace, name, key } = s.certificateKeySecret;
        const sec = await api.get(namespace, name);
        const raw = sec?.data[key];
        const hex = raw ? new TextDecoder().decode(fromBase64(raw, "certificate-key")).trim() : "";
        if (!/^[0-9a-f]{64}$/.test(hex)) {
          return {
            available: false,
            reason: `no valid kubeadm certificate key in Secret ${namespace}/${name} (${key})`,
          };
        }
        certificateKey = hex;
      }
      const expires = new Date(now.getTime() + (s.ttlMs ?? BOOTSTRAP_TOKEN_TTL_MS));
      for (let attempt = 0; attempt < 3; attempt++) {
        const t = generateBootstrapToken();
        if (await api.create(bootstrapTokenSecret(t, expires, req.nodeName))) {
          return {
            available: true,
            kind: "kubeadm",
            apiServerEndpoint: s.apiServerEndpoint,
            token: formatBootstrapToken(t),
            caCertHashes: s.caCertHashes,
            expiresAt: expires.toISOString(),
            ...(certificateKey ? { certificateKey } : {}),
          };
        }
      }
      throw new ConfidantError("kms.join", "could not create a unique bootstrap token");
    },
  };
}
