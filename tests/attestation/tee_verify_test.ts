/**
 * `sev-snp` and `tdx` documents through verifyDocument: both halves must hold, each failure
 * is named (TPM checks unchanged, TEE checks under `tee.`), and the layered binding ties the
 * TEE report to the verifier's nonce, the userData and the document's own AK.
 */
import assert from "node:assert/strict";
import { fromBase64, toBase64 } from "../../lib/bytes.ts";
import { parsePolicy, type PolicyInput } from "../../attestation/policy.ts";
import { verifyDocument, type VerifyOptions } from "../../attestation/verify.ts";
import { verifyTeeHalf } from "../../attestation/tee_verify.ts";
import type { SnpDocument, TdxDocument } from "../../attestation/document.ts";
import { encodeSnpEvidence } from "../../attestation/snp/mod.ts";
import { FAKE_BODY } from "./tdx/_fake_tdx.ts";
import { evidenceOf, VECTORS } from "./snp/_vectors.ts";
import { EXPECTED, vector } from "./tdx/_vectors.ts";
import {
  fakeSnpDocument,
  fakeSnpEvidence,
  fakeTdxDocument,
  fakeTrust,
  makeFakePki,
  makeFakeSnpPlatform,
  makeSoftAk,
  SNP_MEASUREMENT,
  SNP_NOW,
  softTpmDocument,
  TDX_NOW,
} from "./_tee_fixtures.ts";

const NONCE = crypto.getRandomValues(new Uint8Array(32));
const USER = new TextEncoder().encode("node public key digest");
const AK = await makeSoftAk();
const SNP = await makeFakeSnpPlatform();
const PKI = await makeFakePki();

const SNP_DOC = await fakeSnpDocument(SNP, AK, NONCE, USER);
const TDX_DOC = await fakeTdxDocument(PKI, AK, NONCE, USER);
const TPM_DOC = await softTpmDocument(AK, NONCE, USER);

const snpOpts: VerifyOptions = {
  nonce: NONCE,
  userData: USER,
  now: SNP_NOW,
  teeTrust: fakeTrust(SNP),
};
const tdxOpts: VerifyOptions = {
  nonce: NONCE,
  userData: USER,
  now: TDX_NOW,
  teeTrust: fakeTrust(undefined, PKI),
};

function policy(extra: Partial<PolicyInput> = {}) {
  return parsePolicy({
    pcrs: { "7": { expected: ["a7".repeat(32)] } },
    ak: { pinned: [AK.pin] },
    ...extra,
  });
}
const SNP_POLICY = policy({ variants: ["sev-snp"], snp: { measurements: [SNP_MEASUREMENT] } });
const TDX_POLICY = policy({
  variants: ["tdx"],
  tdx: { mrTd: [FAKE_BODY.mrTd], rtmr0: [FAKE_BODY.rtmrs[0]] },
});

const checks = (r: { failures: { check: string }[] }) => r.failures.map((f) => f.check).sort();

Deno.test("verifyDocument() accepts a sev-snp document whose both halves hold", async () => {
  const r = await verifyDocument(SNP_DOC, SNP_POLICY, snpOpts);
  assert.deepEqual(r.failures, []);
  assert.equal(r.ok, true);
  assert.equal(r.variant, "sev-snp");
  assert.equal(r.ak?.digest, AK.pin);
  assert.equal(r.tee?.variant, "sev-snp");
  if (r.tee?.variant !== "sev-snp") throw new Error("unreachable");
  assert.equal(r.tee.report.measurement, SNP_MEASUREMENT);
  // As JSON text too, and the result serialises (the CLI prints it).
  const again = await verifyDocument(JSON.stringify(SNP_DOC), SNP_POLICY, snpOpts);
  assert.equal(again.ok, true);
  assert.doesNotThrow(() => JSON.stringify(again));
});

Deno.test("verifyDocument() accepts a tdx document whose both halves hold", async () => {
  const r = await verifyDocument(TDX_DOC, TDX_POLICY, tdxOpts);
  assert.deepEqual(r.failures, []);
  assert.equal(r.variant, "tdx");
  if (r.tee?.variant !== "tdx") throw new Error("expected a tdx summary");
  assert.equal(r.tee.quote?.mrTd, FAKE_BODY.mrTd);
  assert.equal(r.tee.quote?.tcbStatus, "UpToDate");
});

Deno.test("verifyDocument() refuses a variant the policy does not accept", async (t) => {
  await t.step("a tpm document under a policy that demands sev-snp", async () => {
    const r = await verifyDocument(TPM_DOC, SNP_POLICY, snpOpts);
    assert.deepEqual(checks(r), ["document.variant"]);
    assert.match(r.failures[0].message, /accepts sev-snp, not "tpm"/);
  });
  await t.step("a sev-snp document under a TPM-only policy", async () => {
    const r = await verifyDocument(SNP_DOC, policy(), snpOpts);
    assert.deepEqual(checks(r), ["document.variant", "tee.policy"]);
  });
  await t.step("a tdx document under a sev-snp policy", async () => {
    const r = await verifyDocument(TDX_DOC, SNP_POLICY, tdxOpts);
    assert.ok(checks(r).includes("document.variant"));
    assert.equal(r.ok, false);
  });
  await t.step("a policy accepting several variants takes each", async () => {
    const both = policy({ variants: ["tpm", "sev-snp"], snp: {} });
    assert.deepEqual((await verifyDocument(TPM_DOC, both, snpOpts)).failures, []);
    assert.deepEqual((await verifyDocument(SNP_DOC, both, snpOpts)).failures, []);
  });
});

Deno.test("verifyDocument() names the half that failed", async (t) => {
  const cases: {
    name: string;
    doc: () => Promise<SnpDocument>;
    opts?: Partial<VerifyOptions>;
    want: string[];
  }[] = [
    {
      name: "TPM half: flipped quote signature",
      doc: () => {
        const d = structuredClone(SNP_DOC);
        const sig = fromBase64(d.tpm.signature);
        sig[sig.length - 1] ^= 1;
        d.tpm.signature = toBase64(sig);
        return Promise.resolve(d);
      },
      want: ["quote.signature"],
    },
    {
      name: "TPM half: PCR 7 not in the policy",
      doc: () => {
        const d = structuredClone(SNP_DOC);
        d.tpm.pcrs.sha256!["7"] = "00".repeat(32);
        return Promise.resolve(d);
      },
      want: ["pcr.7", "quote.pcr_digest"],
    },
    {
      name: "TEE half: flipped report signature",
      doc: () => {
        const d = structuredClone(SNP_DOC);
        const rep = fromBase64(d.tee.report);
        rep[0x2a0] ^= 1;
        d.tee.report = toBase64(rep);
        return Promise.resolve(d);
      },
      want: ["tee.report.signature"],
    },
    {
      name: "TEE half: measurement outside the policy",
      doc: async () => ({
        ...SNP_DOC,
        tee: await fakeSnpEvidence(SNP, fromBase64(SNP_DOC.tee.report).slice(0x50, 0x90), {
          measurement: new Uint8Array(48).fill(0xcd),
        }),
      }),
      want: ["tee.policy.measurement"],
    },
    {
      name: "TEE half: a debuggable guest",
      doc: async () => ({
        ...SNP_DOC,
        tee: await fakeSnpEvidence(SNP, fromBase64(SNP_DOC.tee.report).slice(0x50, 0x90), {
          policy: 0x30000n | (1n << 19n),
        }),
      }),
      want: ["tee.policy.debug"],
    },
    {
      name: "TEE half: report of another boot (another AK bound)",
      doc: async () => ({
        ...SNP_DOC,
        tee: (await fakeSnpDocument(SNP, await makeSoftAk(), NONCE, USER)).tee,
      }),
      want: ["tee.binding"],
    },
    {
      name: "TEE half: the AMD roots instead of the test pin",
      doc: () => Promise.resolve(SNP_DOC),
      opts: { teeTrust: {} },
      want: ["tee.ark.pin"],
    },
    {
      name: "both halves: another verifier nonce",
      doc: () => Promise.resolve(SNP_DOC),
      opts: { nonce: new Uint8Array(32) },
      want: ["document.nonce", "quote.qualifying_data", "tee.binding"],
    },
    {
      name: "both halves: other userData",
      doc: () => Promise.resolve(SNP_DOC),
      opts: { userData: new Uint8Array([1]) },
      want: ["document.user_data", "quote.qualifying_data", "tee.binding"],
    },
    {
      name: "both halves: clock outside the certificates' validity",
      doc: () => Promise.resolve(SNP_DOC),
      opts: { now: new Date("2035-01-01T00:00:00Z") },
      want: ["tee.ark.validity", "tee.ask.validity", "tee.vcek.validity"],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const r = await verifyDocument(await c.doc(), SNP_POLICY, { ...snpOpts, ...c.opts });
      assert.deepEqual(checks(r), [...c.want].sort(), JSON.stringify(r.failures));
      assert.equal(r.ok, false);
    });
  }
});

Deno.test("verifyDocument() names TDX failures under tee.", async (t) => {
  await t.step("the pinned Intel root refuses the fake PKI", async () => {
    const r = await verifyDocument(TDX_DOC, TDX_POLICY, { ...tdxOpts, teeTrust: {} });
    assert.ok(checks(r).includes("tee.pck.chain.root"), JSON.stringify(r.failures));
    assert.ok(checks(r).every((c) => c.startsWith("tee.")));
  });
  await t.step("a quote bound to another AK", async () => {
    const other = await fakeTdxDocument(PKI, await makeSoftAk(), NONCE, USER);
    const r = await verifyDocument({ ...TDX_DOC, tee: other.tee }, TDX_POLICY, tdxOpts);
    assert.deepEqual(checks(r), ["tee.binding"]);
  });
  await t.step("an MRTD outside the policy", async () => {
    const p = policy({ variants: ["tdx"], tdx: { mrTd: ["12".repeat(48)] } });
    assert.deepEqual(checks(await verifyDocument(TDX_DOC, p, tdxOpts)), ["tee.policy.mr_td"]);
  });
  await t.step("missing collateral under the default policy", async () => {
    const d: TdxDocument = structuredClone(TDX_DOC);
    delete d.tee.collateral;
    const r = await verifyDocument(d, TDX_POLICY, tdxOpts);
    assert.deepEqual(checks(r), ["tee.policy.tcb_status"]);
    assert.ok(r.warnings.some((w) => w.check === "tee.collateral"));
  });
  await t.step("a quote that does not parse", async () => {
    const d: TdxDocument = { ...TDX_DOC, tee: { quote: toBase64(new Uint8Array(100)) } };
    assert.deepEqual(checks(await verifyDocument(d, TDX_POLICY, tdxOpts)), ["tee.quote.parse"]);
  });
});

Deno.test("verifyDocument() with real SEV-SNP and TDX reports names tee.binding", async (t) => {
  // No vector carries both a vTPM quote and a TEE report, so the TPM half is software-made.
  // The real report, chain and AMD/Intel roots verify; only the binding to this AK fails.
  await t.step("SEV-SNP (trustee Genoa v3, AMD ARK pin)", async () => {
    const v = VECTORS.find((x) => x.name === "trustee Genoa-line v3")!;
    const doc: SnpDocument = {
      ...TPM_DOC,
      variant: "sev-snp",
      tee: encodeSnpEvidence(evidenceOf(v)),
    };
    const p = policy({ variants: ["sev-snp"], snp: { products: ["Genoa"] } });
    const r = await verifyDocument(doc, p, { nonce: NONCE, userData: USER, now: new Date(v.at) });
    assert.deepEqual(checks(r), ["tee.binding"], JSON.stringify(r.failures));
    if (r.tee?.variant !== "sev-snp") throw new Error("expected an SNP summary");
    assert.equal(r.tee.report.product, "Genoa");
  });
  await t.step("TDX (go-tdx-guest SPR quote, Intel root)", async () => {
    const name = "go-tdx-guest/tdx_prod_quote_SPR_E4.dat";
    const doc: TdxDocument = {
      ...TPM_DOC,
      variant: "tdx",
      tee: { quote: toBase64(vector(name)) },
    };
    const p = policy({ variants: ["tdx"], tdx: { requireCollateral: false } });
    const r = await verifyDocument(doc, p, {
      nonce: NONCE,
      userData: USER,
      now: new Date("2026-11-25T00:00:00Z"),
    });
    assert.deepEqual(checks(r), ["tee.binding"], JSON.stringify(r.failures));
    if (r.tee?.variant !== "tdx") throw new Error("expected a tdx summary");
    assert.equal(r.tee.quote?.mrTd, EXPECTED[name].mrTd);
  });
});

Deno.test("verifyTeeHalf() refuses a policy without the variant's section", async () => {
  // parsePolicy refuses such a policy; a hand-built one is still caught here.
  const p = { ...policy(), variants: ["sev-snp" as const] };
  const r = await verifyTeeHalf(SNP_DOC, p, {
    nonce: NONCE,
    userData: USER,
    akPublic: AK.akPublic,
    now: SNP_NOW,
  });
  assert.deepEqual(checks(r), ["tee.policy"]);
  const t = await verifyTeeHalf(TDX_DOC, p, {
    nonce: NONCE,
    userData: USER,
    akPublic: AK.akPublic,
    now: TDX_NOW,
  });
  assert.deepEqual(checks(t), ["tee.policy"]);
});

Deno.test("verifyTeeHalf() reports SNP evidence the vendor parser refuses as tee.evidence", async (t) => {
  await t.step("1183 bytes in a 1580-character base64 report", async () => {
    // The document schema checks the text's length; the decoded size is the vendor's check.
    const d = structuredClone(SNP_DOC);
    d.tee.report = toBase64(new Uint8Array(1183));
    assert.equal(d.tee.report.length, SNP_DOC.tee.report.length);
    const r = await verifyDocument(d, SNP_POLICY, snpOpts);
    assert.deepEqual(checks(r), ["tee.evidence"]);
  });
  await t.step("garbage of the right size is judged check by check, all under tee.", async () => {
    const d = structuredClone(SNP_DOC);
    d.tee.report = toBase64(new Uint8Array(1184).fill(0xff));
    const r = await verifyDocument(d, SNP_POLICY, snpOpts);
    assert.ok(checks(r).includes("tee.report.signature"));
    assert.ok(checks(r).every((c) => c.startsWith("tee.")), JSON.stringify(r.failures));
  });
});
