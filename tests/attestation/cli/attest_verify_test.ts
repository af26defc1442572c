import assert from "node:assert/strict";
import { join } from "node:path";
import { commands } from "../../../main.ts";
import { runCli } from "../../../lib/run_cli.ts";
import { akPin } from "../../../attestation/verify.ts";
import { qualifyingData } from "../../../attestation/qualifying_data.ts";
import { fromBase64, fromHex, toHex } from "../../../lib/bytes.ts";
import type { TpmDocument } from "../../../attestation/document.ts";
import { startTestTpm } from "../tpm/credential/_tpm2.ts";
import { documentFromTools, extendSomePcrs } from "../tpm/verify/_fixtures.ts";

async function cli(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(commands, args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

async function subprocess(args: string[]) {
  const main = new URL("../../../main.ts", import.meta.url).pathname;
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
}

function pinnedPolicy(doc: TpmDocument, pcrs: Record<string, string>) {
  return {
    pcrs: Object.fromEntries(Object.entries(pcrs).map(([k, v]) => [k, { expected: [v] }])),
    ak: { pinned: [akPin(fromBase64(doc.tpm.akPublic))] },
  };
}

Deno.test("a tpm2-tools quote verifies with `confidant verify`, and tampering exits 1", async () => {
  const tpm = await startTestTpm();
  try {
    await extendSomePcrs(tpm);
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const userData = fromHex("cafe");
    const { doc } = await documentFromTools(tpm, nonce, userData);
    const docFile = join(tpm.dir, "doc.json");
    const policyFile = join(tpm.dir, "policy.json");
    await Deno.writeTextFile(docFile, JSON.stringify(doc));
    await Deno.writeTextFile(policyFile, JSON.stringify(pinnedPolicy(doc, doc.tpm.pcrs.sha256!)));

    const ok = await subprocess([
      "verify",
      "--policy",
      policyFile,
      "--nonce",
      toHex(nonce),
      "--user-data",
      "cafe",
      docFile,
    ]);
    assert.equal(ok.code, 0, ok.err);
    const result = JSON.parse(ok.out);
    assert.equal(result.ok, true);
    assert.deepEqual(result.failures, []);

    // Wrong nonce and a changed PCR: exit 1, every failed check listed.
    const bad = structuredClone(doc);
    bad.tpm.pcrs.sha256!["4"] = "00".repeat(32);
    await Deno.writeTextFile(docFile, JSON.stringify(bad));
    const fail = await cli([
      "verify",
      "--policy",
      policyFile,
      "--nonce",
      "00",
      "--user-data",
      "cafe",
      docFile,
    ]);
    assert.equal(fail.code, 1);
    for (const c of ["document.nonce", "quote.qualifying_data", "quote.pcr_digest", "pcr.4"]) {
      assert.match(fail.err, new RegExp(`FAIL ${c.replace(".", "\\.")}:`));
    }
    const failJson = await cli([
      "verify",
      "--json",
      "--policy",
      policyFile,
      "--nonce",
      toHex(nonce),
      "--user-data",
      "cafe",
      docFile,
    ]);
    assert.equal(failJson.code, 1);
    assert.deepEqual(
      JSON.parse(failJson.out).failures.map((f: { check: string }) => f.check).sort(),
      ["pcr.4", "quote.pcr_digest"],
    );
  } finally {
    await tpm.stop();
  }
});

Deno.test("a document from `confidant attest` verifies with tpm2_checkquote and `confidant verify`", async () => {
  const tpm = await startTestTpm();
  try {
    await extendSomePcrs(tpm);
    const out = join(tpm.dir, "doc.json");
    const nonce = "0123456789abcdef0123456789abcdef";
    const r = await cli([
      "attest",
      "--tpm",
      tpm.spec,
      "--nonce",
      nonce,
      "--user-data",
      "beef",
      "--pcrs",
      "0,4,7,9",
      "--out",
      out,
    ]);
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(await Deno.readTextFile(out)) as TpmDocument;
    assert.deepEqual(Object.keys(doc.tpm.pcrs.sha256!), ["0", "4", "7", "9"]);

    // Hand the raw structures to tpm2_checkquote.
    const f = (n: string) => join(tpm.dir, n);
    await Deno.writeFile(f("ak.pub"), fromBase64(doc.tpm.akPublic));
    await Deno.writeFile(f("quote.msg"), fromBase64(doc.tpm.quote));
    await Deno.writeFile(f("quote.sig"), fromBase64(doc.tpm.signature));
    const values = ["0", "4", "7", "9"].map((k) => fromHex(doc.tpm.pcrs.sha256![k]));
    const raw = new Uint8Array(values.length * 32);
    values.forEach((v, i) => raw.set(v, i * 32));
    await Deno.writeFile(f("pcrs.bin"), raw);
    const qual = toHex(qualifyingData(fromHex(nonce), fromHex("beef")));
    const check = [
      "tpm2_checkquote",
      "-u",
      f("ak.pub"),
      "-m",
      f("quote.msg"),
      "-s",
      f("quote.sig"),
      "-f",
      f("pcrs.bin"),
      "-l",
      "sha256:0,4,7,9",
      "-g",
      "sha256",
      "-q",
      qual,
    ];
    await tpm.tpm2(check);
    // tpm2_checkquote does notice a wrong PCR value and a wrong qualifying data.
    raw[40] ^= 1;
    await Deno.writeFile(f("pcrs.bin"), raw);
    await assert.rejects(tpm.tpm2(check));
    raw[40] ^= 1;
    await Deno.writeFile(f("pcrs.bin"), raw);
    await assert.rejects(tpm.tpm2(check.map((a) => a === qual ? "00" + qual.slice(2) : a)));

    // And our own verifier, with the AK pinned from the document.
    await Deno.writeTextFile(
      f("policy.json"),
      JSON.stringify(pinnedPolicy(doc, doc.tpm.pcrs.sha256!)),
    );
    const v = await cli([
      "verify",
      "--policy",
      f("policy.json"),
      "--nonce",
      nonce,
      "--user-data",
      "beef",
      out,
    ]);
    assert.equal(v.code, 0, v.err);
  } finally {
    await tpm.stop();
  }
});

Deno.test("`confidant debug pcrs` prints the bank as tpm2_pcrread sees it", async () => {
  const tpm = await startTestTpm();
  try {
    await extendSomePcrs(tpm);
    const r = await cli(["debug", "pcrs", "--tpm", tpm.spec, "--json"]);
    assert.equal(r.code, 0, r.err);
    const got = JSON.parse(r.out);
    assert.equal(Object.keys(got.pcrs).length, 24);
    await tpm.tpm2(["tpm2_pcrread", "sha256:7", "-o", join(tpm.dir, "p7")]);
    assert.equal(got.pcrs["7"], toHex(await Deno.readFile(join(tpm.dir, "p7"))));
    const text = await cli(["debug", "pcrs", "--tpm", tpm.spec]);
    assert.match(text.out, /^sha256: 0 [0-9a-f]{64}$/m);
  } finally {
    await tpm.stop();
  }
});

Deno.test("attestation commands have help with examples and reject bad flags with exit 2", async () => {
  for (const path of [["attest"], ["verify"], ["debug", "pcrs"]]) {
    const h = await cli([...path, "--help"]);
    assert.equal(h.code, 0);
    assert.match(h.out, /examples:\n {2}confidant /);
  }
  assert.equal((await cli(["attest", "--tpm", "/etc/passwd", "--nonce", "00"])).code, 2);
  assert.equal((await cli(["attest", "--tpm", "/dev/tpmrm0", "--nonce", "0g"])).code, 2);
  assert.equal(
    (await cli(["attest", "--tpm", "/dev/tpmrm0", "--nonce", "00", "--pcrs", "1,24"])).code,
    2,
  );
  assert.equal((await cli(["verify", "--policy", "p.json", "--nonce", "00"])).code, 2);
  // A policy with an unknown key names it.
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "p.json"), JSON.stringify({ pcrz: {} }));
    await Deno.writeTextFile(join(dir, "d.json"), "{}");
    const r = await cli([
      "verify",
      "--policy",
      join(dir, "p.json"),
      "--nonce",
      "00",
      join(dir, "d.json"),
    ]);
    assert.equal(r.code, 1);
    assert.match(r.err, /unknown key "pcrz"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
