/**
 * Verifier policy for TDX evidence: which measurements, attributes and TCB
 * levels are acceptable. Validated with zod; unknown keys are refused so a
 * typo cannot silently drop a check.
 *
 * @module
 */
import { z } from "zod";
import { TcbStatusSchema } from "./collateral.ts";

const hex = (bytes: number) =>
  z.string().regex(new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`), `must be ${bytes} bytes of hex`)
    .transform((s) => s.toLowerCase());
const allow = (bytes: number) => z.array(hex(bytes)).min(1);

/** The TDX policy document. Every field but the defaults is optional; absent means "any". */
export const TdxPolicySchema = z.object({
  /** Allowed MRTD values (the TD's initial memory and firmware measurement). */
  mrTd: allow(48).optional(),
  /** Allowed values per runtime measurement register. */
  rtmr0: allow(48).optional(),
  rtmr1: allow(48).optional(),
  rtmr2: allow(48).optional(),
  rtmr3: allow(48).optional(),
  /** Allowed TDX module measurements. */
  mrSeam: allow(48).optional(),
  /** Allowed TDX module signers. */
  mrSignerSeam: allow(48).optional(),
  mrConfigId: allow(48).optional(),
  mrOwner: allow(48).optional(),
  mrOwnerConfig: allow(48).optional(),
  /** Allowed TDATTRIBUTES (8 bytes as in the quote) after the debug check. */
  tdAttributes: allow(8).optional(),
  /** Accept a debuggable TD (TDATTRIBUTES bit 0). Never in production. */
  allowDebug: z.boolean().default(false),
  /** Allowed XFAM values (8 bytes as in the quote). */
  xfam: allow(8).optional(),
  /** Each TEE_TCB_SVN byte must be at least the byte here (16 bytes). */
  minTeeTcbSvn: hex(16).optional(),
  /** TCB statuses accepted from the collateral evaluation. */
  acceptedTcbStatuses: z.array(TcbStatusSchema).min(1).default(["UpToDate"]),
  /** Refuse evidence without TCB info and QE identity (the TCB status cannot be judged). */
  requireCollateral: z.boolean().default(true),
  /** Exact REPORTDATA (64 bytes), when it is fixed rather than bound per request. */
  reportData: hex(64).optional(),
}).strict();

/** A validated TDX policy. */
export type TdxPolicy = z.infer<typeof TdxPolicySchema>;
/** A TDX policy as written (defaults not yet applied). */
export type TdxPolicyInput = z.input<typeof TdxPolicySchema>;
