/**
 * The cluster's identity: a cluster ID derived from the master secret, and its measurement
 * into a PCR so that a quote says which cluster a node belongs to.
 *
 * - cluster ID = HKDF-SHA256(ikm = master secret, salt = master salt,
 *   info = `confidant/v1/cluster-id/<cluster name>`), 32 bytes, lower-case hex. It names the
 *   cluster without revealing anything about the secret.
 * - measurement = SHA-256("confidant-cluster-id-v1" || cluster ID bytes), extended once into
 *   {@link CLUSTER_ID_PCR} (SHA-256 bank) after the node took the master secret (init,
 *   recover) or joined.
 *
 * Why PCR 15: it is in the application range (8–15, not resettable from locality 0, unlike
 * 16 and 23), it is not in the default quote set of firmware/boot measurements
 * (attestation/issue.ts DEFAULT_PCRS: 0–9, 11, 12, 14), the node image's systemd-stub uses
 * 11/12/13 and the image runs no systemd user space, which is the only other writer of 15
 * (machine-id, volume keys). So on our image 15 is all zeros until the agent extends it, and
 * Constellation uses the same index for the same purpose. A node that has not taken a cluster
 * shows it unset (zeros); an initialised node shows {@link expectedClusterPcr}.
 *
 * Who extends it: the first node after `init`/`recover` (agent/bootstrap.ts), and every node
 * that joins through the KMS right after opening its release, which names this ID as
 * `clusterIdentity` (kms/release.ts; `kms.clusterId` there is the cluster's *name*). Both go
 * through agent/cluster_pcr.ts: extend once, skip if PCR 15 already holds this cluster's value,
 * stop with `agent.cluster_pcr` on any other non-zero value. A KMS policy with
 * `clusterIdPcr.required` admits only nodes whose quote includes PCR 15 and shows it unset or
 * this cluster's value.
 *
 * @module
 */
import { ConfidantError } from "../lib/errors.ts";
import { concat, fromHex, sha256, toHex, utf8 } from "../lib/bytes.ts";
import { KeyDeriver, type MasterSecret } from "../kms/keys.ts";

/** The PCR (SHA-256 bank) that carries the cluster ID measurement. */
export const CLUSTER_ID_PCR = 15;
/** Label prefixed to the cluster ID in its measurement. */
export const CLUSTER_ID_LABEL = "confidant-cluster-id-v1";
/** A cluster ID: 64 lower-case hex digits. */
export const CLUSTER_ID_HEX_RE = /^[0-9a-f]{64}$/;
/** An all-zero SHA-256 PCR (never extended since reset). */
export const UNSET_PCR = "0".repeat(64);

/** HKDF info string of the cluster ID of the cluster named `name`. */
export function clusterIdInfo(name: string): string {
  return `confidant/v1/cluster-id/${name}`;
}

/** The cluster ID (hex) of a master secret (its `clusterId` field is the cluster's name). */
export async function deriveClusterId(master: MasterSecret): Promise<string> {
  const d = await KeyDeriver.create(master);
  return toHex(await d.derive(clusterIdInfo(master.clusterId), 32));
}

/** The same with a {@link KeyDeriver} already made. */
export async function clusterIdFromDeriver(d: KeyDeriver): Promise<string> {
  return toHex(await d.derive(clusterIdInfo(d.clusterId), 32));
}

function idBytes(clusterId: string): Uint8Array {
  if (!CLUSTER_ID_HEX_RE.test(clusterId)) {
    throw new ConfidantError("cluster.id", "a cluster ID is 64 lower-case hex digits");
  }
  return fromHex(clusterId, "cluster ID");
}

/** The digest extended into {@link CLUSTER_ID_PCR}: SHA-256(label || cluster ID bytes). */
export function clusterIdMeasurement(clusterId: string): Promise<Uint8Array> {
  return sha256(concat(utf8(CLUSTER_ID_LABEL), idBytes(clusterId)));
}

/** The PCR value after one extend from reset: SHA-256(zeros(32) || measurement), hex. */
export async function expectedClusterPcr(clusterId: string): Promise<string> {
  const m = await clusterIdMeasurement(clusterId);
  return toHex(await sha256(concat(new Uint8Array(32), m)));
}
