/**
 * The cluster ID into PCR 15, once: after `init`/`recover` (agent/bootstrap.ts) and right
 * after a joining node opened its release (agent/adapters.ts). Idempotent across agent
 * restarts: a PCR that already holds this cluster's value is left alone; a PCR that holds
 * another non-zero value (another cluster, or some other writer) stops the node with
 * `agent.cluster_pcr` — extending again could never make it this cluster's value.
 *
 * @module
 */
import { ConfidantError } from "../lib/errors.ts";
import { toHex } from "../lib/bytes.ts";
import type { Tpm } from "../attestation/tpm/client.ts";
import { TPM_ALG } from "../attestation/tpm/mod.ts";
import {
  CLUSTER_ID_PCR,
  clusterIdMeasurement,
  expectedClusterPcr,
  UNSET_PCR,
} from "../cluster/cluster_id.ts";

/** Extend `clusterId`'s measurement into PCR 15 unless it is there; "extended" or "present". */
export async function extendClusterIdPcr(
  tpm: Tpm,
  clusterId: string,
): Promise<"extended" | "present"> {
  const digest = await clusterIdMeasurement(clusterId);
  const now = toHex(
    (await tpm.pcrRead([{ hash: TPM_ALG.SHA256, pcrs: [CLUSTER_ID_PCR] }]))
      .get(TPM_ALG.SHA256)!.get(CLUSTER_ID_PCR)!,
  );
  if (now === await expectedClusterPcr(clusterId)) return "present";
  if (now !== UNSET_PCR) {
    throw new ConfidantError(
      "agent.cluster_pcr",
      `PCR ${CLUSTER_ID_PCR} already holds another value (${now}); reboot the node`,
    );
  }
  await tpm.pcrExtend(CLUSTER_ID_PCR, [{ hashAlg: TPM_ALG.SHA256, digest }]);
  return "extended";
}
