import assert from "node:assert/strict";
import { ConfidantError, UsageError } from "../../../lib/errors.ts";
import type { CommandContext } from "../../../lib/cli.ts";
import { COLLATERAL_FILES, runTdxVerifyReport } from "../../../attestation/tdx/cli.ts";
import { EXPECTED, TDX_DATA } from "./_vectors.ts";

const SPR = TDX_DATA + "go-tdx-guest/tdx_prod_quote_SPR_E4.dat";

function ctx(json = false) {
  const out: string[] = [];
  const err: string[] = [];
  const c: CommandContext = { json, out: (t) => out.push(t), err: (t) => err.push(t) };
  return { c, out, err, result: () => JSON.parse(out.join("\n")) };
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "confidant-tdx-cli-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("runTdxVerifyReport() exits 0 with the quote's fields when it holds", async () => {
  const k = ctx();
  const code = await runTdxVerifyReport({ quote: SPR, at: "2026-11-25T00:00:00Z" }, k.c);
  assert.equal(code, 0);
  const r = k.result();
  assert.equal(r.ok, true);
  assert.equal(r.type, "tdx");
  assert.equal(r.quote.mrTd, EXPECTED["go-tdx-guest/tdx_prod_quote_SPR_E4.dat"].mrTd);
  assert.equal(r.quote.fmspc, "50806f000000");
  assert.deepEqual(k.err, []);
});

Deno.test("runTdxVerifyReport() exits 1 naming every failed check", async () => {
  const k = ctx();
  const code = await runTdxVerifyReport({ quote: SPR, at: "2053-07-01T01:00:00Z" }, k.c);
  assert.equal(code, 1);
  assert.deepEqual([...new Set(k.result().failures.map((f: { check: string }) => f.check))], [
    "pck.chain.validity",
  ]);
  assert.ok(k.err.every((l) => l.startsWith("refused: pck.chain.validity")));
});

Deno.test("runTdxVerifyReport() reads a collateral directory and a policy file", async () => {
  await withDir(async (dir) => {
    const G = TDX_DATA + "go-tdx-guest/";
    await Deno.copyFile(G + "sample_tcbInfo_response", `${dir}/${COLLATERAL_FILES.tcbInfo}`);
    await Deno.copyFile(G + "sample_qeIdentity_response", `${dir}/${COLLATERAL_FILES.qeIdentity}`);
    await Deno.copyFile(
      G + "DERIVED_tcbInfoIssuerChain.pem",
      `${dir}/${COLLATERAL_FILES.tcbInfoIssuerChain}`,
    );
    await Deno.copyFile(
      G + "DERIVED_qeIdentityIssuerChain.pem",
      `${dir}/${COLLATERAL_FILES.qeIdentityIssuerChain}`,
    );
    await Deno.copyFile(G + "pckcrl", `${dir}/${COLLATERAL_FILES.pckCrl}`);
    await Deno.copyFile(G + "rootcrl.der", `${dir}/${COLLATERAL_FILES.rootCaCrl}`);
    const policy = `${dir}/policy.yaml`;
    await Deno.writeTextFile(
      policy,
      `mrTd: ["${"00".repeat(48)}"]\nacceptedTcbStatuses: [UpToDate]\n`,
    );
    const k = ctx(true);
    const code = await runTdxVerifyReport({
      quote: SPR,
      collateral: dir,
      policy,
      at: "2023-07-01T01:00:00Z",
    }, k.c);
    assert.equal(code, 1);
    const r = k.result();
    assert.deepEqual(r.failures.map((f: { check: string }) => f.check).sort(), [
      "policy.mr_td",
      "policy.tcb_status",
      "tcb.level",
    ]);
    assert.equal(r.quote.qeTcbStatus, "UpToDate");
    assert.deepEqual(k.err, [], "--json keeps stderr quiet");
  });
});

Deno.test("runTdxVerifyReport() checks --report-data", async () => {
  const rd = EXPECTED["go-tdx-guest/tdx_prod_quote_SPR_E4.dat"].reportData;
  const at = "2026-11-25T00:00:00Z";
  assert.equal(await runTdxVerifyReport({ quote: SPR, at, reportData: rd }, ctx().c), 0);
  const k = ctx();
  assert.equal(await runTdxVerifyReport({ quote: SPR, at, reportData: "00".repeat(64) }, k.c), 1);
  assert.deepEqual(k.result().failures.map((f: { check: string }) => f.check), ["report_data"]);
});

Deno.test("runTdxVerifyReport() refuses bad flags and unreadable inputs", async () => {
  await assert.rejects(runTdxVerifyReport({ quote: SPR, at: "yesterday" }, ctx().c), UsageError);
  await assert.rejects(runTdxVerifyReport({ quote: SPR, reportData: "abc" }, ctx().c), UsageError);
  await assert.rejects(
    runTdxVerifyReport({ quote: TDX_DATA + "missing.bin" }, ctx().c),
    (e) => e instanceof ConfidantError && e.code === "io.read",
  );
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/p.json`, '{"mrTd": ["zz"]}');
    await assert.rejects(
      runTdxVerifyReport({ quote: SPR, policy: `${dir}/p.json` }, ctx().c),
      (e) => e instanceof ConfidantError && e.code === "tdx.policy" && /mrTd/.test(e.message),
    );
    await Deno.writeTextFile(`${dir}/q.json`, '{"mrtd": []}');
    await assert.rejects(
      runTdxVerifyReport({ quote: SPR, policy: `${dir}/q.json` }, ctx().c),
      (e) => e instanceof ConfidantError && e.code === "tdx.policy",
    );
  });
});
