/**
 * The node image: Debian packages in, a reproducible measured unified kernel
 * image (UKI) out; PCR prediction for it; a VM launcher; cluster in a box.
 *
 * @module
 */
export { type CpioEntry, cpioHeader, writeCpio } from "./cpio.ts";
export { mergedUsrPath, TreePlan } from "./tree.ts";
export {
  aptCandidates,
  aptClosure,
  type DebPackage,
  fetchDebs,
  kernelPackageOf,
  parseAptShow,
} from "./debian.ts";
export { moduleClosure, moduleName, parseModulesDep, trimModules } from "./modules.ts";
export {
  buildRoot,
  type BuiltRoot,
  type ResolvedRoot,
  resolveRoot,
  type RootSpec,
} from "./rootfs.ts";
export {
  authenticodeRanges,
  authenticodeSha256,
  parsePe,
  peChecksum,
  type PeImage,
  type PeSection,
  sectionData,
  setPeTimestamp,
} from "./pe.ts";
export { ALG_SHA256, EventType, parseEventLog, type TcgEvent } from "./event_log.ts";
export {
  CALLING_EFI_APPLICATION,
  extendSha256,
  measureUki,
  pcr11Events,
  pcr4Events,
  type Pcr4Options,
  type PredictedEvent,
  replay,
  STUB_MEASURED_SECTIONS,
  type UkiMeasurement,
} from "./measure.ts";
export { policyPcrs, ZERO_PCR } from "./policy_pcrs.ts";
export { buildUki, DEBIAN_STUB, planSections, type UkiInputs } from "./uki.ts";
export {
  BASE_CMDLINE,
  buildDefaultNodeImage,
  buildNodeImage,
  type BuiltNodeImage,
  NODE_ROOT_SPEC,
  type NodeImage,
  type NodeImageOptions,
  withExtraCmdline,
} from "./node_image.ts";
export {
  OVMF_CODE,
  OVMF_VARS,
  provisionSwtpm,
  startUefiVm,
  uefiQemuArgs,
  type UefiVm,
  type UefiVmOptions,
  type VmDisk,
  waitForConsole,
} from "./vm.ts";
export {
  boxNodeName,
  down,
  MAX_BOX_NODES,
  NODE_DONE,
  runsProgram,
  up,
  type UpOptions,
  type UpResult,
  type UpState,
} from "./up.ts";
export {
  BOX_PCRS,
  type BoxNode,
  type BoxSummaryInput,
  formatBoxSummary,
  type NodeReport,
  nodeSucceeded,
  parseNodeConsole,
  type StepReport,
} from "./box_summary.ts";
export {
  createSparseDisk,
  KMS_GUEST_ADDR,
  type KmsProcess,
  type KmsProcessOptions,
  nodeCmdline,
  startKms,
  STATE_DISK_SERIAL,
  SWTPM_LOCALCA_CERTS,
  swtpmLocalCaPems,
  writeClusterPolicy,
} from "./cluster.ts";
