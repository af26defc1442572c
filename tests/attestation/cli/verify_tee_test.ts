/**
 * `confidant verify` with `sev-snp` and `tdx` documents and `--at`. The CLI trusts only the
 * pinned AMD and Intel roots, so these use the real vectors (with a software TPM half, since
 * no vector has both halves): the real chains verify at `--at` and the refusal names
 * `tee.binding` alone. The positive path with a fake PKI is in tests/attestation/tee_verify_test.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { commands } from "../../../attestation/commands.ts";
import { runCli } from "../../../lib/run_cli.ts";
import { toBase64, toHex } from "../../../lib/bytes.ts";
import type { SnpDocument, TdxDocument } from "../../../attestation/document.ts";
import { encodeSnpEvidence } from "../../../attestation/snp/mod.ts";
import { evidenceOf, VECTORS } from "../snp/_vectors.ts";
import { vector } from "../tdx/_vectors.ts";
import { makeSoftAk, softTpmDocument } from "../_tee_fixtures.ts";

const NONCE = crypto.getRandomValues(new Uint8Array(16));
const USER = new Uint8Array([0xca, 0xfe]);
const AK = await makeSoftAk();
const TPM_DOC = await softTpmDocument(AK, NONCE, USER);
const GENOA = VECTORS.find((v) => v.name === "trustee Genoa-line v3")!;
const SNP_DOC: SnpDocument = {
  ...TPM_DOC,
  variant: "sev-snp",
  tee: encodeSnpEvidence(evidenceOf(GENOA)),
};
const TDX_DOC: TdxDocument = {
  ...TPM_DOC,
  variant: "tdx",
  tee: { quote: toBase64(vector("go-tdx-guest/tdx_prod_quote_SPR_E4.dat")) },
};

async function cli(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(commands, args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

async function withFiles(
  files: Record<string, unknown>,
  fn: (path: (name: string) => string) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "confidant-verify-tee-" });
  try {
    for (const [name, value] of Object.entries(files)) {
      await Deno.writeTextFile(join(dir, name), JSON.stringify(value));
    }
    await fn((name) => join(dir, name));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const base = { pcrs: { "7": { expected: ["a7".repeat(32)] } }, ak: { pinned: [AK.pin] } };
const verifyArgs = (f: (n: string) => string, doc: string, ...more: string[]) => [
  "verify",
  "--policy",
  f("policy.json"),
  "--nonce",
  toHex(NONCE),
  "--user-data",
  "cafe",
  ...more,
  f(doc),
];

Deno.test("`confidant verify --at` checks a real SEV-SNP chain and refuses naming tee.binding", async () => {
  const policy = { ...base, variants: ["sev-snp"], snp: { products: ["Genoa"] } };
  await withFiles({ "policy.json": policy, "doc.json": SNP_DOC }, async (f) => {
    const r = await cli(verifyArgs(f, "doc.json", "--at", GENOA.at));
    assert.equal(r.code, 1);
    assert.match(r.err, /verification failed \(1 check\(s\)\)/);
    assert.match(r.err, /FAIL tee\.binding: /);
    const j = await cli(verifyArgs(f, "doc.json", "--at", GENOA.at, "--json"));
    const result = JSON.parse(j.out);
    assert.deepEqual(result.failures.map((x: { check: string }) => x.check), ["tee.binding"]);
    assert.equal(result.variant, "sev-snp");
    assert.equal(result.tee.report.product, "Genoa");
    // Decades later the same chain has expired: the clock is what --at sets.
    const late = await cli(verifyArgs(f, "doc.json", "--at", "2090-01-01T00:00:00Z", "--json"));
    const checks = JSON.parse(late.out).failures.map((x: { check: string }) => x.check);
    assert.ok(checks.includes("tee.vcek.validity"), checks.join(","));
  });
});

Deno.test("`confidant verify` checks a real TDX quote and refuses naming tee.binding", async () => {
  const policy = { ...base, variants: ["tdx"], tdx: { requireCollateral: false } };
  await withFiles({ "policy.json": policy, "doc.json": TDX_DOC }, async (f) => {
    const r = await cli(verifyArgs(f, "doc.json", "--at", "2026-11-25T00:00:00+01:00", "--json"));
    assert.equal(r.code, 1);
    assert.deepEqual(JSON.parse(r.out).failures.map((x: { check: string }) => x.check), [
      "tee.binding",
    ]);
  });
});

Deno.test("`confidant verify` refuses a tpm document under a sev-snp policy, and takes it under tpm", async () => {
  await withFiles({
    "snp.json": { ...base, variants: ["sev-snp"], snp: {} },
    "policy.json": base,
    "doc.json": TPM_DOC,
  }, async (f) => {
    const r = await cli(
      verifyArgs(f, "doc.json").map((a) => a === f("policy.json") ? f("snp.json") : a),
    );
    assert.equal(r.code, 1);
    assert.match(r.err, /FAIL document\.variant: the policy accepts sev-snp, not "tpm"/);
    const ok = await cli(verifyArgs(f, "doc.json"));
    assert.equal(ok.code, 0, ok.err);
    assert.equal(JSON.parse(ok.out).variant, "tpm");
  });
});

Deno.test("`confidant verify` refuses a malformed --at and an inconsistent policy", async () => {
  await withFiles({
    "policy.json": { ...base, variants: ["sev-snp"] },
    "doc.json": SNP_DOC,
  }, async (f) => {
    for (const at of ["2025-06-01", "yesterday", "2025-13-01T00:00:00Z"]) {
      const r = await cli(verifyArgs(f, "doc.json", "--at", at));
      assert.equal(r.code, 2, `${at}: ${r.err}`);
      assert.match(r.err, /--at|at:/);
    }
    const r = await cli(verifyArgs(f, "doc.json"));
    assert.equal(r.code, 1);
    assert.match(r.err, /no snp section/);
  });
});

Deno.test("`confidant attest --tee` takes auto|sev-snp|tdx|none only", async () => {
  const r = await cli(["attest", "--tpm", "/dev/tpmrm0", "--nonce", "00", "--tee", "sgx"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /tee/);
  const help = await cli(["attest", "--help"]);
  assert.match(help.out, /--tee auto\|sev-snp\|tdx\|none/);
});
