/**
 * The encrypted state disk: LUKS2 through libcryptsetup (FFI), a hostile-input parser
 * and whitelist of the LUKS2 header, blank-disk detection, and the first-boot/reboot
 * lifecycle behind the {@link StateDisk} service.
 *
 * The agent uses:
 * - `openStateDisk(path)` (real device, device-mapper) or `createMemoryStateDisk()`
 *   (host tests), then `unlockOrFormat({ cluster, integrity, getKey, uuid })`: the agent
 *   decides the disk's UUID (the header's, or a new random one for a blank disk) before it
 *   asks the KMS for that UUID's key, and a format writes exactly that UUID.
 *
 * @module
 */
export {
  createMemoryStateDisk,
  type DiskStatus,
  LuksStateDisk,
  openStateDisk,
  type StateDisk,
} from "./state_disk.ts";
export {
  checkDiskUuid,
  decide,
  type Decision,
  DISK_UUID_PATTERN,
  type DiskObservation,
  FORMAT_STEPS,
  type FormatStep,
  KMS_KEY_BYTES,
  type LifecycleConfig,
  type LuksBackend,
  MAPPER_NAME,
  observeDisk,
  rekeyDisk,
  resetDisk,
  SimulatedCrash,
  type UnlockOptions,
  unlockOrFormat,
  type UnlockResult,
} from "./lifecycle.ts";
export { LibLuksBackend, openLuksBackend } from "./luks_backend.ts";
export { MemoryLuksBackend } from "./memory_backend.ts";
export { type BlockDevice, FileBlockDevice, MemoryBlockDevice } from "./block_device.ts";
export { type BlankReport, checkBlank, findSignatures } from "./blank.ts";
export {
  type HeaderCopy,
  type Luks2Header,
  type LuksProbe,
  parseLuks2Header,
  probeLuks,
} from "./luks_header.ts";
export {
  checkWhitelist,
  DATA_OFFSET,
  type WhitelistFailure,
  type WhitelistOptions,
  type WhitelistReport,
} from "./whitelist.ts";
export { type ConfidantToken, decodeToken, encodeToken, TOKEN_TYPE } from "./token.ts";
export { type CryptDevice, withCryptDevice } from "./crypt_device.ts";
export { readKeyFile } from "./key_file.ts";
export {
  integrityMetadataEnd,
  type IntegritySuperblock,
  parseIntegritySuperblock,
} from "./integrity_superblock.ts";
export { type FirstBootTiming, measureFirstBoot } from "./bench_unlock.ts";
