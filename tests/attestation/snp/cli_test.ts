import assert from "node:assert/strict";
import { runCli } from "../../../lib/run_cli.ts";
import { commands } from "../../../attestation/tee_commands.ts";

const D = new URL("../../testdata/snp/", import.meta.url).pathname;

async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(commands, argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

Deno.test("verify-report --type sev-snp exits 0 with the parsed fields for a real VLEK report", async () => {
  const r = await run([
    "verify-report",
    "--type",
    "sev-snp",
    "--report",
    D + "trustee_milan_v3_vlek_report.bin",
    "--certs",
    D + "trustee_milan_ask_ark_asvk.pem",
    "--vcek",
    D + "trustee_milan_vlek.der",
    "--at",
    "2025-06-01T00:00:00Z",
  ]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.ok, true);
  assert.equal(j.report.product, "Milan");
  assert.equal(j.report.reportedTcb.microcode, 217);
  assert.match(j.report.measurement, /^[0-9a-f]{96}$/);
});

Deno.test("verify-report --type sev-snp uses the first 1184 bytes of a longer file and warns", async () => {
  const r = await run([
    "verify-report",
    "--type",
    "sev-snp",
    "--report",
    D + "constellation_azure_milan_v2_report_1204.bin",
    "--certs",
    D + "ask_ark_milan.pem",
    "--vcek",
    D + "constellation_azure_milan_vcek.der",
    "--at",
    "2025-01-01T00:00:00Z",
  ]);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out).warnings.map((w: { check: string }) => w.check), [
    "report.trailing",
  ]);
});

Deno.test("verify-report --type sev-snp exits 1 naming every failed check", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/p.yaml`, "allowSmt: false\nallowedVmpls: [3]\n");
    const r = await run([
      "verify-report",
      "--type",
      "sev-snp",
      "--report",
      D + "gsg_milan_v2_report.bin",
      "--certs",
      D + "ask_ark_milan.pem",
      "--vcek",
      D + "gsg_milan_vcek.der",
      "--at",
      "2030-01-01T00:00:00Z",
      "--policy",
      `${dir}/p.yaml`,
      "--report-data",
      "00".repeat(64),
    ]);
    assert.equal(r.code, 1);
    const j = JSON.parse(r.out);
    assert.deepEqual(j.failures.map((f: { check: string }) => f.check), [
      "vcek.validity",
      "report_data",
      "policy.debug",
      "policy.smt",
      "policy.vmpl",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("verify-report usage errors exit 2", async () => {
  assert.equal((await run(["verify-report", "--type", "sev-snp", "--report", "x"])).code, 2);
  assert.equal((await run(["verify-report", "--type", "sgx", "--report", "x"])).code, 2);
  const bad = await run([
    "verify-report",
    "--type",
    "sev-snp",
    "--report",
    D + "gsg_milan_v2_report.bin",
    "--certs",
    D + "ask_ark_milan.pem",
    "--at",
    "yesterday",
  ]);
  assert.equal(bad.code, 2);
});
