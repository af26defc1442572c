/**
 * The operator side of a cluster's life: `confidant init` (first node), `confidant recover`
 * (lost control plane) and `confidant cluster verify` (one statement for the whole cluster),
 * with the exchange's protocol, sealing, the cluster ID / PCR 15 and the recovery file.
 *
 * @module
 */
export * from "./cluster_id.ts";
export * from "./protocol.ts";
export * from "./sealing.ts";
export * from "./recovery.ts";
export * from "./node_transport.ts";
export * from "./operator.ts";
export { commands } from "./commands.ts";
