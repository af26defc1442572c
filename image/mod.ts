/**
 * The node image: Debian packages in, deterministic archives and (later) a
 * measured unified kernel image out.
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
