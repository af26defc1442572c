/**
 * The node agent: boot state machine, its ports and adapters, the HTTP endpoint,
 * sd_notify, and the CLI commands.
 *
 * @module
 */
export * from "./config.ts";
export * from "./ports.ts";
export * from "./retry.ts";
export * from "./state.ts";
export * from "./machine.ts";
export * from "./join_config.ts";
export * from "./kubeadm.ts";
export * from "./cilium.ts";
export * from "./kube_api.ts";
export * from "./mountinfo.ts";
export * from "./host.ts";
export * from "./http.ts";
export * from "./metrics.ts";
export * from "./sd_notify.ts";
export * from "./clock.ts";
export * from "./adapters.ts";
export * from "./service.ts";
export * from "./bootstrap.ts";
export * from "./init_config.ts";
export * from "./init_http.ts";
export * from "./kms_host.ts";
export * from "./kms_replica.ts";
export * from "./cluster_pcr.ts";
export { commands } from "./commands.ts";
