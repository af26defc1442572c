/**
 * TCB status of a TDX platform from Intel collateral: the TCB level of the
 * TCB info that the PCK certificate's SGX TCB and the quote's TEE_TCB_SVN
 * reach, the TDX module identity (TDX 1.5 TCB info lists one per module major
 * version), and the quoting enclave's identity. Pure functions.
 *
 * @module
 */
import { fromHex, toHex } from "../../lib/bytes.ts";
import type { CheckFailure } from "./intel_pki.ts";
import type { PckExtensions } from "./pck_extensions.ts";
import type { QeReport, TdxReportBody } from "./quote.ts";
import type { QeIdentity, TcbStatus, TdxTcbInfo } from "./collateral.ts";

/** Platform TCB evaluation: the status (when a level matched) and any failures. */
export interface TdxTcbEvaluation {
  /** Status of the matching TCB level, converged with the TDX module's status. */
  status?: TcbStatus;
  /** Status of the platform TCB level alone. */
  platformStatus?: TcbStatus;
  /** Status of the TDX module identity level, when the TCB info has module identities. */
  moduleStatus?: TcbStatus;
  /** tcbDate of the matching level. */
  tcbDate?: string;
  advisoryIds: string[];
  failures: CheckFailure[];
}

function maskedEqual(a: Uint8Array, b: Uint8Array, mask: Uint8Array): boolean {
  if (a.length !== b.length || a.length !== mask.length) return false;
  for (let i = 0; i < a.length; i++) if ((a[i] & mask[i]) !== (b[i] & mask[i])) return false;
  return true;
}

/** A platform status lowered by an out-of-date component (QE or TDX module). */
export function convergeOutOfDate(platform: TcbStatus, component: TcbStatus): TcbStatus {
  if (component === "Revoked" || platform === "Revoked") return "Revoked";
  if (component !== "OutOfDate") return platform;
  switch (platform) {
    case "UpToDate":
    case "SWHardeningNeeded":
      return "OutOfDate";
    case "ConfigurationNeeded":
    case "ConfigurationAndSWHardeningNeeded":
      return "OutOfDateConfigurationNeeded";
    default:
      return platform;
  }
}

/**
 * Evaluate the platform TCB: FMSPC and PCE id of the PCK certificate must be
 * those of the TCB info; the TDX module (MRSIGNERSEAM, SEAMATTRIBUTES) must
 * match its identity; the first TCB level whose SGX components and PCE SVN
 * the PCK TCB reaches and whose TDX components the TEE_TCB_SVN reaches gives
 * the status (TEE_TCB_SVN bytes 0 and 1 are the module's own SVN and major
 * version and are not compared when byte 1 is set).
 */
export function evaluateTdxTcb(
  tcbInfo: TdxTcbInfo,
  pck: PckExtensions,
  body: TdxReportBody,
): TdxTcbEvaluation {
  const failures: CheckFailure[] = [];
  const out: TdxTcbEvaluation = { advisoryIds: [], failures };
  if (tcbInfo.fmspc.toLowerCase() !== pck.fmspc) {
    failures.push({
      check: "tcb_info.fmspc",
      message:
        `FMSPC of the PCK certificate (${pck.fmspc}) is not the TCB info's (${tcbInfo.fmspc.toLowerCase()})`,
    });
  }
  if (tcbInfo.pceId.toLowerCase() !== pck.pceId) {
    failures.push({
      check: "tcb_info.pce_id",
      message:
        `PCE id of the PCK certificate (${pck.pceId}) is not the TCB info's (${tcbInfo.pceId.toLowerCase()})`,
    });
  }
  const svn = body.teeTcbSvn;
  const major = svn[1];
  const identity = major > 0 && tcbInfo.tdxModuleIdentities
    ? tcbInfo.tdxModuleIdentities.find((m) =>
      m.id.toUpperCase() === `TDX_${major.toString(16).toUpperCase().padStart(2, "0")}`
    )
    : undefined;
  if (major > 0 && tcbInfo.tdxModuleIdentities && !identity) {
    failures.push({
      check: "tcb_info.tdx_module",
      message: `TCB info lists no identity for TDX module major version ${major}`,
    });
  }
  const mod = identity ?? tcbInfo.tdxModule;
  if (toHex(body.mrSignerSeam) !== mod.mrsigner.toLowerCase()) {
    failures.push({
      check: "tcb_info.tdx_module.mrsigner",
      message: `MRSIGNERSEAM ${
        toHex(body.mrSignerSeam)
      } is not the TDX module signer of the TCB info`,
    });
  }
  if (!maskedEqual(body.seamAttributes, fromHex(mod.attributes), fromHex(mod.attributesMask))) {
    failures.push({
      check: "tcb_info.tdx_module.attributes",
      message: `SEAMATTRIBUTES ${
        toHex(body.seamAttributes)
      } do not match the TDX module attributes of the TCB info`,
    });
  }
  if (identity) {
    const lvl = identity.tcbLevels.find((l) => l.tcb.isvsvn <= svn[0]);
    if (!lvl) {
      failures.push({
        check: "tcb.tdx_module",
        message: `TDX module SVN ${svn[0]} is below every level of ${identity.id}`,
      });
    } else out.moduleStatus = lvl.tcbStatus;
  }
  const start = major > 0 ? 2 : 0;
  for (const level of tcbInfo.tcbLevels) {
    const t = level.tcb;
    if (!t.sgxtcbcomponents.every((c, i) => pck.cpuSvnComponents[i] >= c.svn)) continue;
    if (pck.pceSvn < t.pcesvn) continue;
    let tdxOk = true;
    for (let i = start; i < 16; i++) if (svn[i] < t.tdxtcbcomponents[i].svn) tdxOk = false;
    if (!tdxOk) continue;
    out.platformStatus = level.tcbStatus;
    out.tcbDate = level.tcbDate;
    out.advisoryIds = level.advisoryIDs ?? [];
    break;
  }
  if (!out.platformStatus) {
    failures.push({
      check: "tcb.level",
      message:
        "the platform TCB (PCK certificate and TEE_TCB_SVN) reaches no TCB level of the TCB info",
    });
  } else {
    out.status = out.moduleStatus
      ? convergeOutOfDate(out.platformStatus, out.moduleStatus)
      : out.platformStatus;
  }
  return out;
}

/** QE identity evaluation: the QE's TCB status and any mismatch. */
export interface QeIdentityEvaluation {
  status?: TcbStatus;
  failures: CheckFailure[];
}

/**
 * Match the quoting enclave's report against its identity (MRSIGNER, ISVPRODID,
 * masked MISCSELECT and ATTRIBUTES) and find its TCB level by ISVSVN.
 */
export function evaluateQeIdentity(identity: QeIdentity, qe: QeReport): QeIdentityEvaluation {
  const failures: CheckFailure[] = [];
  if (toHex(qe.mrSigner) !== identity.mrsigner.toLowerCase()) {
    failures.push({
      check: "qe_identity.mrsigner",
      message: `QE MRSIGNER ${toHex(qe.mrSigner)} is not the identity's`,
    });
  }
  if (qe.isvProdId !== identity.isvprodid) {
    failures.push({
      check: "qe_identity.isvprodid",
      message: `QE ISVPRODID ${qe.isvProdId} is not ${identity.isvprodid}`,
    });
  }
  const mask = parseInt(identity.miscselectMask, 16);
  if (((qe.miscSelect & mask) >>> 0) !== ((parseInt(identity.miscselect, 16) & mask) >>> 0)) {
    failures.push({
      check: "qe_identity.miscselect",
      message: "QE MISCSELECT does not match the identity",
    });
  }
  if (!maskedEqual(qe.attributes, fromHex(identity.attributes), fromHex(identity.attributesMask))) {
    failures.push({
      check: "qe_identity.attributes",
      message: "QE ATTRIBUTES do not match the identity",
    });
  }
  const lvl = identity.tcbLevels.find((l) => l.tcb.isvsvn <= qe.isvSvn);
  if (!lvl) {
    failures.push({
      check: "qe_identity.tcb",
      message: `QE ISVSVN ${qe.isvSvn} is below every level of the QE identity`,
    });
  }
  return { status: lvl?.tcbStatus, failures };
}
