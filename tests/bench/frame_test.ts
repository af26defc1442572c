import assert from "node:assert/strict";
import { measured } from "../../bench/_frame.ts";
import { formatTable, renderSvg, type RunReport } from "../../bench/_report.ts";
import { parseOpensslSpeed } from "../../bench/openssl_speed.ts";
import { loadModules, parseBenchArgs, runBenchmarks } from "../../bench/run.ts";

const baseline = { id: "b", label: "base", value: 1000, unit: "op/s" };

Deno.test("parseOpensslSpeed() reads the -mr lines and ignores everything else", () => {
  const out = [
    "+DTP:256:sign:ecdsa:3",
    "+R7:123:256:3.00",
    "+F4:3:256:50174.285714:16681.818182",
    "+F4:4:384:1252.000000:1538.200000",
    "+F4:5:nonsense",
    "version: 3.0.19",
  ].join("\n");
  const m = parseOpensslSpeed(out);
  assert.deepEqual([...m.keys()], [256, 384]);
  assert.equal(m.get(256)!.verify, 16681.818182);
  assert.equal(m.get(384)!.sign, 1252);
});

Deno.test("measured() divides by the baseline and judges the target", () => {
  const hit = measured({
    id: "x",
    label: "x",
    value: 800,
    unit: "op/s",
    baseline,
    target: { description: "", of: "ratio", op: ">=", value: 0.5 },
  });
  assert.equal(hit.ratio, 0.8);
  assert.equal(hit.pass, true);
  const miss = measured({
    id: "y",
    label: "y",
    value: 300,
    unit: "MB",
    baseline,
    target: { description: "", of: "value", op: "<=", value: 200 },
  });
  assert.equal(miss.pass, false);
  const none = measured({ id: "z", label: "z", value: 5, unit: "op/s", baseline: null });
  assert.equal(none.ratio, null);
  assert.equal(none.pass, null);
});

Deno.test("renderSvg() draws one bar per ratio with escaped labels; formatTable() aligns", () => {
  const report: RunReport = {
    startedAt: "2026-11-25T00:00:00.000Z",
    durationSeconds: 1,
    quick: false,
    host: { cpu: "cpu <x>", cores: 2, loadavg: "0.1" },
    results: [
      measured({ id: "a", label: "A & <b>", value: 500, unit: "op/s", baseline }),
      measured({
        id: "c",
        label: "C",
        value: 2000,
        unit: "op/s",
        baseline,
        target: { description: "", of: "ratio", op: ">=", value: 3 },
      }),
      measured({ id: "d", label: "no baseline", value: 1, unit: "x", baseline: null }),
    ],
    errors: [],
  };
  const svg = renderSvg(report);
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.equal((svg.match(/<rect x=/g) ?? []).length, 2);
  assert.ok(svg.includes("A &amp; &lt;b&gt;"));
  assert.ok(!svg.includes("<b>"));
  assert.ok(svg.includes("cpu &lt;x&gt;"));
  assert.ok(svg.includes("#c8403a"), "a missed target is drawn red");
  const table = formatTable(report.results).split("\n");
  assert.equal(table.length, 5);
  assert.ok(table[3].includes("FAIL"));
  // The value column is right-aligned under its header.
  assert.equal(table[2].indexOf(" 500 ") + 4, table[0].indexOf("value") + 5);
});

Deno.test("parseBenchArgs() refuses unknown flags", () => {
  assert.deepEqual(parseBenchArgs(["--quick", "--only=a,b"]).only, ["a", "b"]);
  assert.throws(() => parseBenchArgs(["--fast"]), /unknown argument/);
});

Deno.test("loadModules() finds bench modules in order; a failing module is reported", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/base.ts`,
      `export const name = "base"; export const order = 0;
       export async function run(ctx) { ctx.setBaseline({ id: "b", label: "b", value: 10, unit: "u" }); return []; }`,
    );
    await Deno.writeTextFile(
      `${dir}/a_user.ts`,
      `export const name = "user";
       export async function run(ctx) { const b = ctx.baseline("b");
         return [{ id: "u", label: "u", role: "measure", value: 5, unit: "u", baseline: b, ratio: 5 / b.value,
           target: null, pass: null, details: {} }]; }`,
    );
    await Deno.writeTextFile(
      `${dir}/broken.ts`,
      `export const name = "broken"; export async function run() { throw new Error("boom"); }`,
    );
    await Deno.writeTextFile(`${dir}/_helper.ts`, `export const x = 1;`);
    const mods = await loadModules(dir);
    assert.deepEqual(mods.map((m) => m.name), ["base", "broken", "user"]);
    const silent = console.error;
    console.error = () => {};
    try {
      const report = await runBenchmarks(mods, { ...parseBenchArgs([]), quick: true });
      assert.deepEqual(report.results.map((r) => r.ratio), [0.5]);
      assert.deepEqual(report.errors, [{ module: "broken", error: "boom" }]);
    } finally {
      console.error = silent;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
