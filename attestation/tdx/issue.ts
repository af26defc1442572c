/**
 * The agent side of TDX evidence: bind the verifier's nonce, the caller's
 * data and the TPM attestation key into REPORTDATA, get a quote for it and
 * wrap it (with any collateral the node has cached) as an evidence section.
 *
 * @module
 */
import { toBase64 } from "../../lib/bytes.ts";
import { type TeeBindingInput, teeReportData } from "../tee_binding.ts";
import type { TdxQuoteProvider } from "./configfs_tsm.ts";
import type { TdxCollateral, TdxEvidence } from "./evidence.ts";

/** Issue a TDX evidence section bound to `binding`. */
export async function issueTdxEvidence(
  provider: TdxQuoteProvider,
  binding: TeeBindingInput,
  collateral?: TdxCollateral,
): Promise<TdxEvidence> {
  const quote = await provider.getQuote(await teeReportData(binding));
  const ev: TdxEvidence = { quote: toBase64(quote) };
  if (collateral) ev.collateral = collateral;
  return ev;
}
