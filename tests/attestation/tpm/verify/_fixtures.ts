/**
 * Test helpers: attestation documents assembled from tpm2-tools output on swtpm.
 *
 * @module
 */
import { join } from "node:path";
import type { TpmDocument } from "../../../../attestation/document.ts";
import { qualifyingData } from "../../../../attestation/qualifying_data.ts";
import { toBase64, toHex } from "../../../../lib/bytes.ts";
import { createEkAndAkWithTools, type TestTpm } from "../credential/_tpm2.ts";

/** Extend a few PCRs so the quote covers non-trivial values. */
export async function extendSomePcrs(tpm: TestTpm): Promise<void> {
  for (const [pcr, v] of [[0, "aa"], [4, "bb"], [7, "cc"]] as const) {
    await tpm.tpm2(["tpm2_pcrextend", `${pcr}:sha256=${v.repeat(32)}`]);
  }
}

/**
 * tpm2_createek + tpm2_createak (ECC, ECDSA/SHA-256) + tpm2_quote over sha256:`pcrs`, then
 * tpm2_pcrread; returns the document and the files tpm2-tools wrote.
 */
export async function documentFromTools(
  tpm: TestTpm,
  nonce: Uint8Array,
  userData: Uint8Array,
  pcrs = [0, 1, 2, 3, 4, 5, 6, 7],
): Promise<{ doc: TpmDocument; qualHex: string; files: Record<string, string> }> {
  const f = (n: string) => join(tpm.dir, n);
  await createEkAndAkWithTools(tpm, "ecc");
  const qualHex = toHex(qualifyingData(nonce, userData));
  const sel = `sha256:${pcrs.join(",")}`;
  await tpm.tpm2([
    "tpm2_quote",
    "-c",
    f("ak.ctx"),
    "-l",
    sel,
    "-q",
    qualHex,
    "-m",
    f("quote.msg"),
    "-s",
    f("quote.sig"),
    "-o",
    f("quote.pcrs"),
    "-g",
    "sha256",
  ]);
  await tpm.tpm2(["tpm2_flushcontext", "-t"]);
  await tpm.tpm2(["tpm2_pcrread", sel, "-o", f("pcrs.raw")]);
  const raw = await Deno.readFile(f("pcrs.raw"));
  const values: Record<string, string> = {};
  pcrs.forEach((p, i) => values[String(p)] = toHex(raw.subarray(32 * i, 32 * i + 32)));
  const doc: TpmDocument = {
    version: 1,
    variant: "tpm",
    nonce: toBase64(nonce),
    userData: toBase64(userData),
    tpm: {
      akPublic: toBase64(await Deno.readFile(f("ak.pub"))),
      quote: toBase64(await Deno.readFile(f("quote.msg"))),
      signature: toBase64(await Deno.readFile(f("quote.sig"))),
      pcrs: { sha256: values },
    },
  };
  return {
    doc,
    qualHex,
    files: {
      akPub: f("ak.pub"),
      quote: f("quote.msg"),
      sig: f("quote.sig"),
      pcrs: f("quote.pcrs"),
    },
  };
}
