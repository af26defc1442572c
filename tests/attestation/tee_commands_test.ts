/** `confidant verify-report`: the flags reach the vendor runners (SEV-SNP has its own tests). */
import assert from "node:assert/strict";
import { commands } from "../../attestation/tee_commands.ts";
import { runCli } from "../../lib/run_cli.ts";
import { EXPECTED, TDX_DATA } from "./tdx/_vectors.ts";

const NAME = "go-tdx-guest/tdx_prod_quote_SPR_E4.dat";
const AT = "2026-11-25T00:00:00Z";

async function cli(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(commands, args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

Deno.test("verify-report --type tdx checks --report-data", async () => {
  const args = ["verify-report", "--type", "tdx", "--quote", TDX_DATA + NAME, "--at", AT];
  const right = await cli([...args, "--report-data", EXPECTED[NAME].reportData]);
  assert.equal(right.code, 0, right.err);
  const wrong = await cli([...args, "--report-data", "00".repeat(64), "--json"]);
  assert.equal(wrong.code, 1);
  assert.deepEqual(JSON.parse(wrong.out).failures.map((f: { check: string }) => f.check), [
    "report_data",
  ]);
  assert.equal((await cli([...args, "--report-data", "abc"])).code, 2);
});
