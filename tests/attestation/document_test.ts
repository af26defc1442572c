import assert from "node:assert/strict";
import { z } from "zod";
import {
  decodeTpmDocument,
  documentCommonShape,
  documentVariants,
  MAX_DOCUMENT_BYTES,
  parseDocument,
  parseDocumentJson,
  registerDocumentVariant,
  type TpmDocument,
} from "../../attestation/document.ts";
import { ParseError } from "../../lib/errors.ts";

// deno-lint-ignore no-explicit-any
type Loose = Record<string, any>;

const DOC: TpmDocument = JSON.parse(
  await Deno.readTextFile(new URL("../testdata/attestation/swtpm_ecc_quote.json", import.meta.url)),
);

Deno.test("parseDocument() accepts a valid TPM document and decodes its fields", () => {
  const d = parseDocument(structuredClone(DOC)) as TpmDocument;
  const ev = decodeTpmDocument(d);
  assert.equal(ev.nonce.length, 32);
  assert.equal(ev.pcrs.get("sha256")!.size, 8);
  assert.equal(ev.pcrs.get("sha256")!.get(7)!.length, 32);
  assert.equal(ev.ekCertificate, undefined);
});

Deno.test("parseDocument() names the offending field and refuses absurd sizes", async (t) => {
  const cases: [string, (d: Loose) => void, RegExp][] = [
    ["unknown top-level key", (d) => d.extra = 1, /extra|Unrecognized/],
    ["unknown tpm key", (d) => d.tpm.foo = "x", /tpm/],
    ["wrong version", (d) => d.version = 2, /version/],
    ["unknown variant", (d) => d.variant = "sgx", /variant/],
    ["bad base64", (d) => d.tpm.quote = "not base64!", /tpm\.quote/],
    ["oversized quote", (d) => d.tpm.quote = "A".repeat(8000), /tpm\.quote/],
    ["oversized nonce", (d) => d.nonce = "AAAA".repeat(30), /nonce/],
    ["PCR index out of range", (d) => d.tpm.pcrs.sha256["24"] = "00".repeat(32), /PCR index/],
    ["PCR value of wrong size", (d) => d.tpm.pcrs.sha256["1"] = "00".repeat(20), /32 bytes/],
    ["unknown bank", (d) => d.tpm.pcrs.md5 = {}, /pcrs/],
    ["missing signature", (d) => delete d.tpm.signature, /signature/],
  ];
  for (const [name, edit, re] of cases) {
    await t.step(name, () => {
      const d = structuredClone(DOC) as unknown as Loose;
      edit(d);
      assert.throws(() => parseDocument(d), (e) => e instanceof ParseError && re.test(e.message));
    });
  }
});

Deno.test("parseDocumentJson() refuses non-JSON and oversized text before parsing", () => {
  assert.throws(() => parseDocumentJson("{"), ParseError);
  assert.throws(() => parseDocumentJson(" ".repeat(MAX_DOCUMENT_BYTES + 1)), /larger/);
  assert.throws(() => parseDocumentJson("[]"), ParseError);
});

Deno.test("registerDocumentVariant() lets another variant add its own section", () => {
  registerDocumentVariant(
    "test-tee",
    z.strictObject({ ...documentCommonShape, variant: z.literal("test-tee"), tee: z.string() }),
  );
  assert.ok(documentVariants().includes("test-tee"));
  const d = parseDocument({ version: 1, variant: "test-tee", nonce: "", userData: "", tee: "x" });
  assert.equal(d.variant, "test-tee");
  assert.throws(() => registerDocumentVariant("tpm", z.any()));
});
