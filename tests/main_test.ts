import assert from "node:assert/strict";
import { commands, routeArgs } from "../main.ts";

Deno.test("routeArgs() sends `verify --cluster` to `cluster verify` and leaves the rest alone", () => {
  assert.deepEqual(routeArgs(["verify", "--cluster", "https://n:9443", "--policy", "p.json"]), [
    "cluster",
    "verify",
    "--cluster",
    "https://n:9443",
    "--policy",
    "p.json",
  ]);
  assert.deepEqual(routeArgs(["verify", "--cluster=https://n:9443"])[0], "cluster");
  assert.deepEqual(routeArgs(["verify", "--policy", "p", "doc.json"]), [
    "verify",
    "--policy",
    "p",
    "doc.json",
  ]);
});

Deno.test("every command has a unique path, a summary and help for each flag", () => {
  const seen = new Set<string>();
  for (const c of commands) {
    const key = c.path.join(" ");
    assert.ok(!seen.has(key), `duplicate command ${key}`);
    seen.add(key);
    assert.ok(c.summary.length > 10, `${key} needs a summary`);
    for (const f of c.flags) assert.ok(f.help.length > 3, `${key} --${f.name} needs help`);
  }
  for (
    const need of ["attest", "verify", "kms serve", "agent run", "disk status", "image measure"]
  ) {
    assert.ok(seen.has(need), `missing command ${need}`);
  }
});

Deno.test("confidant --help lists the commands and exits 0; no command exits 2", async () => {
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../main.ts", import.meta.url).pathname, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  };
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /kms serve/);
  assert.equal(help.stderr, "", "no warnings on stderr");
  assert.equal((await run([])).code, 2);
});
