/**
 * configfs-tsm against a temporary directory laid out like
 * /sys/kernel/config/tsm/report: the directory stands in for the kernel
 * interface, and a small fake kernel fills `provider` and `generation` when an
 * entry is created and produces `outblob` when `inblob` is written.
 */
import assert from "node:assert/strict";
import { ConfidantError } from "../../../lib/errors.ts";
import { ConfigfsTsm, denoTsmFs, type TsmFs } from "../../../attestation/tdx/configfs_tsm.ts";
import { issueTdxEvidence } from "../../../attestation/tdx/issue.ts";
import { teeReportData } from "../../../attestation/tee_binding.ts";
import { verifyTdxEvidence } from "../../../attestation/tdx/verify.ts";
import { FAKE_NOW, makeFakePki, makeFakeQuote } from "./_fake_tdx.ts";
import { toBase64, toHex } from "../../../lib/bytes.ts";

const pki = await makeFakePki();

interface FakeKernel {
  fs: TsmFs;
  created: string[];
  writes: number;
}

/** A fake kernel over the real temp directory; `quirk` injects misbehaviour. */
function fakeKernel(quirk: "none" | "race" | "wrong-data" | "sev" = "none"): FakeKernel {
  const k: FakeKernel = { fs: denoTsmFs, created: [], writes: 0 };
  k.fs = {
    async mkdir(p) {
      await Deno.mkdir(p);
      k.created.push(p);
      await Deno.writeTextFile(`${p}/provider`, quirk === "sev" ? "sev_guest\n" : "tdx_guest\n");
      await Deno.writeTextFile(`${p}/generation`, "0\n");
      await Deno.writeFile(`${p}/outblob`, new Uint8Array());
    },
    readFile: (p) => Deno.readFile(p),
    async writeFile(p, data) {
      await Deno.writeFile(p, data);
      if (p.endsWith("/inblob")) {
        k.writes++;
        const dir = p.slice(0, -"/inblob".length);
        const gen = Number((await Deno.readTextFile(`${dir}/generation`)).trim());
        await Deno.writeTextFile(`${dir}/generation`, `${gen + (quirk === "race" ? 2 : 1)}\n`);
        const rd = quirk === "wrong-data" ? "00".repeat(64) : toHex(data);
        await Deno.writeFile(`${dir}/outblob`, await makeFakeQuote(pki, { reportData: rd }));
      }
    },
    rmdir: (p) => Deno.remove(p, { recursive: true }),
  };
  return k;
}

async function withRoot(fn: (root: string) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "confidant-tsm-" });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("ConfigfsTsm.getQuote() writes inblob, reads outblob and removes its entry", async () => {
  await withRoot(async (root) => {
    const k = fakeKernel();
    const tsm = new ConfigfsTsm({ root, fs: k.fs });
    const rd = crypto.getRandomValues(new Uint8Array(64));
    const quote = await tsm.getQuote(rd);
    assert.equal(k.writes, 1);
    assert.equal(k.created.length, 1);
    assert.match(k.created[0], /\/confidant-[0-9a-f]{16}$/);
    assert.deepEqual([...Deno.readDirSync(root)], [], "entry removed");
    const r = await verifyTdxEvidence({ quote: toBase64(quote) }, undefined, {
      now: FAKE_NOW,
      rootDer: pki.rootDer,
      expectedReportData: rd,
    });
    assert.deepEqual(r.failures, []);
  });
});

Deno.test("ConfigfsTsm.getQuote() refuses a wrong provider, a generation race and foreign data", async () => {
  await withRoot(async (root) => {
    const rd = new Uint8Array(64).fill(5);
    const codes: Record<string, string> = {
      sev: "tsm.provider",
      race: "tsm.race",
      "wrong-data": "tsm.report_data",
    };
    for (const [quirk, code] of Object.entries(codes)) {
      const tsm = new ConfigfsTsm({ root, fs: fakeKernel(quirk as "sev").fs });
      await assert.rejects(tsm.getQuote(rd), (e) => e instanceof ConfidantError && e.code === code);
      assert.deepEqual([...Deno.readDirSync(root)], [], `${quirk}: entry removed`);
    }
    await assert.rejects(
      new ConfigfsTsm({ root, fs: fakeKernel().fs }).getQuote(new Uint8Array(32)),
      (e) => e instanceof ConfidantError && e.code === "tsm.report_data",
    );
  });
});

Deno.test("ConfigfsTsm.getQuote() says configfs-tsm is unavailable when the report directory is missing", async () => {
  await withRoot(async (root) => {
    const tsm = new ConfigfsTsm({ root: `${root}/absent/report` });
    await assert.rejects(
      tsm.getQuote(new Uint8Array(64)),
      (e) => e instanceof ConfidantError && e.code === "tsm.unavailable",
    );
  });
});

Deno.test("issueTdxEvidence() binds nonce, user data and AK into REPORTDATA", async () => {
  await withRoot(async (root) => {
    const binding = {
      nonce: crypto.getRandomValues(new Uint8Array(32)),
      userData: new TextEncoder().encode("node-1"),
      akPublic: new Uint8Array([0, 1, 2, 3]),
    };
    const ev = await issueTdxEvidence(new ConfigfsTsm({ root, fs: fakeKernel().fs }), binding);
    const expected = await teeReportData(binding);
    const ok = await verifyTdxEvidence(ev, undefined, {
      now: FAKE_NOW,
      rootDer: pki.rootDer,
      expectedReportData: expected,
    });
    assert.deepEqual(ok.failures, []);
    const other = await teeReportData({ ...binding, nonce: new Uint8Array(32) });
    const bad = await verifyTdxEvidence(ev, undefined, {
      now: FAKE_NOW,
      rootDer: pki.rootDer,
      expectedReportData: other,
    });
    assert.deepEqual(bad.failures.map((f) => f.check), ["report_data"]);
  });
});
