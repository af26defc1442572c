import assert from "node:assert/strict";
import { z } from "zod";
import {
  BUILTIN_VARIANTS,
  decodeTpmDocument,
  documentCommonShape,
  documentVariants,
  MAX_DOCUMENT_BYTES,
  parseDocument,
  parseDocumentJson,
  registerDocumentVariant,
  type SnpDocument,
  type TpmDocument,
} from "../../attestation/document.ts";
import { ParseError } from "../../lib/errors.ts";
import {
  fakeSnpDocument,
  fakeTdxDocument,
  makeFakePki,
  makeFakeSnpPlatform,
  makeSoftAk,
} from "./_tee_fixtures.ts";

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

Deno.test("parseDocument() accepts sev-snp and tdx documents: the tpm section plus a tee section", async (t) => {
  const ak = await makeSoftAk();
  const nonce = new Uint8Array(16).fill(1);
  const userData = new Uint8Array(0);
  const snp = await fakeSnpDocument(await makeFakeSnpPlatform(), ak, nonce, userData);
  const tdx = await fakeTdxDocument(await makeFakePki(), ak, nonce, userData);
  assert.deepEqual(BUILTIN_VARIANTS, ["tpm", "sev-snp", "tdx"]);
  for (const v of BUILTIN_VARIANTS) assert.ok(documentVariants().includes(v));
  await t.step("both parse, as objects and as JSON within the size limit", () => {
    for (const d of [snp, tdx]) {
      const text = JSON.stringify(d);
      assert.ok(text.length < MAX_DOCUMENT_BYTES);
      assert.equal(parseDocumentJson(text).variant, d.variant);
      // The TPM half decodes as in a tpm document.
      assert.equal(decodeTpmDocument(parseDocument(d) as SnpDocument).nonce.length, 16);
    }
  });
  const cases: [string, Loose, (d: Loose) => void, RegExp][] = [
    ["sev-snp without tee", snp, (d) => delete d.tee, /tee/],
    ["sev-snp without tpm", snp, (d) => delete d.tpm, /tpm/],
    ["unknown key in the SNP section", snp, (d) => d.tee.extra = "x", /tee: unknown key extra/],
    ["unknown certificate role", snp, (d) => d.tee.certificates.pek = "AAAA", /certificates/],
    ["short SNP report", snp, (d) => d.tee.report = "AAAA", /tee\.report/],
    ["a TDX section in a sev-snp document", snp, (d) => d.tee = tdx.tee, /tee/],
    ["tdx without tee", tdx, (d) => delete d.tee, /tee/],
    ["unknown key in the TDX section", tdx, (d) => d.tee.pck = "x", /tee: unknown key pck/],
    ["collateral with a non-PEM chain", tdx, (d) => {
      d.tee.collateral.tcbInfoIssuerChain = "x";
    }, /tcbInfoIssuerChain/],
    ["a tee section in a tpm document", { ...snp, variant: "tpm" }, () => {}, /unknown key tee/],
  ];
  for (const [name, base, edit, re] of cases) {
    await t.step(name, () => {
      const d = structuredClone(base) as Loose;
      edit(d);
      assert.throws(() => parseDocument(d), (e) => e instanceof ParseError && re.test(e.message));
    });
  }
});
