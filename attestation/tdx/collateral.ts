/**
 * Intel PCS collateral for TDX: TCB info (`{"tcbInfo": {...}, "signature": hex}`)
 * and QE identity (`{"enclaveIdentity": {...}, "signature": hex}`). Each is
 * signed with ECDSA P-256 (r||s, hex) by the Intel SGX TCB Signing key over
 * the exact bytes of the inner object; the issuer chain (TCB Signing cert,
 * root) must end at the pinned Intel SGX Root CA.
 *
 * @module
 */
import { z } from "zod";
import { ParseError } from "../../lib/errors.ts";
import { fromHex, utf8 } from "../../lib/bytes.ts";
import { type CheckFailure, p256Key, verifyChain } from "./intel_pki.ts";
import { pemCertificates } from "./quote.ts";
import { topLevelRawMembers } from "./_json_raw.ts";

/** Largest collateral document accepted. */
export const MAX_COLLATERAL_BYTES = 256 * 1024;

const hexN = (bytes: number) =>
  z.string().regex(new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`), `must be ${bytes} bytes of hex`);
const svn = z.number().int().min(0).max(0xffff);
const date = z.string().refine((s) => !Number.isNaN(Date.parse(s)), "must be a date");

/** TCB statuses Intel assigns to a TCB level. */
export const TcbStatusSchema = z.enum([
  "UpToDate",
  "SWHardeningNeeded",
  "ConfigurationNeeded",
  "ConfigurationAndSWHardeningNeeded",
  "OutOfDate",
  "OutOfDateConfigurationNeeded",
  "Revoked",
]);
/** One TCB status. */
export type TcbStatus = z.infer<typeof TcbStatusSchema>;

const component = z.object({ svn }).loose();

const tcbLevel = z.object({
  tcb: z.object({
    sgxtcbcomponents: z.array(component).length(16),
    pcesvn: svn,
    tdxtcbcomponents: z.array(component).length(16),
  }).loose(),
  tcbDate: date,
  tcbStatus: TcbStatusSchema,
  advisoryIDs: z.array(z.string()).optional(),
}).loose();

const moduleIdentity = z.object({
  id: z.string().max(64),
  mrsigner: hexN(48),
  attributes: hexN(8),
  attributesMask: hexN(8),
  tcbLevels: z.array(
    z.object({
      tcb: z.object({ isvsvn: svn }).loose(),
      tcbDate: date,
      tcbStatus: TcbStatusSchema,
      advisoryIDs: z.array(z.string()).optional(),
    }).loose(),
  ).max(256),
}).loose();

/** The inner `tcbInfo` object of a TDX TCB info (version 3). */
export const TdxTcbInfoSchema = z.object({
  id: z.literal("TDX"),
  version: z.literal(3),
  issueDate: date,
  nextUpdate: date,
  fmspc: hexN(6),
  pceId: hexN(2),
  tcbType: z.number().int(),
  tcbEvaluationDataNumber: z.number().int(),
  tdxModule: z.object({
    mrsigner: hexN(48),
    attributes: hexN(8),
    attributesMask: hexN(8),
  }).loose(),
  tdxModuleIdentities: z.array(moduleIdentity).max(64).optional(),
  tcbLevels: z.array(tcbLevel).min(1).max(256),
}).loose();
/** A parsed TDX TCB info. */
export type TdxTcbInfo = z.infer<typeof TdxTcbInfoSchema>;

/** The inner `enclaveIdentity` object of the TD quoting enclave's identity (version 2). */
export const QeIdentitySchema = z.object({
  id: z.literal("TD_QE"),
  version: z.literal(2),
  issueDate: date,
  nextUpdate: date,
  tcbEvaluationDataNumber: z.number().int(),
  miscselect: hexN(4),
  miscselectMask: hexN(4),
  attributes: hexN(16),
  attributesMask: hexN(16),
  mrsigner: hexN(32),
  isvprodid: svn,
  tcbLevels: z.array(
    z.object({
      tcb: z.object({ isvsvn: svn }).loose(),
      tcbDate: date,
      tcbStatus: TcbStatusSchema,
      advisoryIDs: z.array(z.string()).optional(),
    }).loose(),
  ).min(1).max(256),
}).loose();
/** A parsed QE identity. */
export type QeIdentity = z.infer<typeof QeIdentitySchema>;

/** A signed collateral document split into its signed bytes, its parsed body and the signature. */
export interface SignedCollateral<T> {
  body: T;
  /** UTF-8 bytes of the inner object exactly as they appear in the file. */
  signedBytes: Uint8Array;
  /** r||s, 64 bytes. */
  signature: Uint8Array;
}

function parseSigned<T>(
  text: string,
  key: string,
  schema: z.ZodType<T>,
  what: string,
): SignedCollateral<T> {
  if (text.length > MAX_COLLATERAL_BYTES) throw new ParseError(what, `${what} is too large`);
  const members = topLevelRawMembers(text, what);
  const inner = members.get(key);
  const sig = members.get("signature");
  if (inner === undefined || sig === undefined) {
    throw new ParseError(what, `${what} must have "${key}" and "signature" members`);
  }
  const sigHex = JSON.parse(sig);
  if (typeof sigHex !== "string" || !/^[0-9a-fA-F]{128}$/.test(sigHex)) {
    throw new ParseError(what, `${what} signature must be 64 bytes of hex`);
  }
  const r = schema.safeParse(JSON.parse(inner));
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new ParseError(what, `${what}.${key}.${issue.path.join(".")}: ${issue.message}`);
  }
  return { body: r.data, signedBytes: utf8(inner), signature: fromHex(sigHex) };
}

/** Parse a TCB info document (the text Intel PCS returns). Malformed input throws {@link ParseError}. */
export function parseTcbInfo(text: string): SignedCollateral<TdxTcbInfo> {
  return parseSigned(text, "tcbInfo", TdxTcbInfoSchema, "tcb_info");
}

/** Parse a QE identity document. Malformed input throws {@link ParseError}. */
export function parseQeIdentity(text: string): SignedCollateral<QeIdentity> {
  return parseSigned(text, "enclaveIdentity", QeIdentitySchema, "qe_identity");
}

/**
 * Check a signed collateral document: its issuer chain ends at the trusted
 * root and is valid at `now`, its signature verifies with the chain's leaf,
 * and `now` lies in [issueDate, nextUpdate]. Failures are named
 * `<prefix>.issuer_chain.*`, `<prefix>.signature`, `<prefix>.freshness`.
 */
export async function verifySignedCollateral(
  doc: SignedCollateral<{ issueDate: string; nextUpdate: string }>,
  issuerChainPem: string,
  prefix: string,
  opts: { now: Date; rootDer?: Uint8Array },
): Promise<CheckFailure[]> {
  const failures: CheckFailure[] = [];
  let ders: Uint8Array[];
  try {
    ders = pemCertificates(issuerChainPem, `${prefix} issuer chain`);
  } catch (e) {
    return [{ check: `${prefix}.issuer_chain.parse`, message: (e as Error).message }];
  }
  const chain = await verifyChain(ders, `${prefix}.issuer_chain`, opts);
  failures.push(...chain.failures);
  if (chain.certs.length > 0) {
    let ok = false;
    try {
      ok = await crypto.subtle.verify(
        { name: "ECDSA", hash: "SHA-256" },
        await p256Key(chain.certs[0]),
        doc.signature as BufferSource,
        doc.signedBytes as BufferSource,
      );
    } catch {
      ok = false;
    }
    if (!ok) {
      failures.push({
        check: `${prefix}.signature`,
        message: `${prefix} signature does not verify with the issuer chain's signing certificate`,
      });
    }
  }
  const issued = new Date(doc.body.issueDate);
  const next = new Date(doc.body.nextUpdate);
  if (opts.now < issued || opts.now > next) {
    failures.push({
      check: `${prefix}.freshness`,
      message:
        `${prefix} is valid ${issued.toISOString()} to ${next.toISOString()}, not at ${opts.now.toISOString()}`,
    });
  }
  return failures;
}
