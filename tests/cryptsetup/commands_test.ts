import assert from "node:assert/strict";
import { commands } from "../../cryptsetup/commands.ts";
import { runCli } from "../../lib/run_cli.ts";
import { setLogSink } from "../../lib/log.ts";
import { fileHash, run, tempImage } from "./_tools.ts";

setLogSink(() => {});
const KEY = new Uint8Array(32).fill(0x5a);
const KEY2 = new Uint8Array(32).fill(0x33);

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(commands, argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

/** `disk VERB PATH --cluster CLUSTER --key-file KEYFILE --no-mapper`. */
function disk(verb: "format" | "open", path: string, cluster: string, keyFile: string) {
  return cli(["disk", verb, path, "--cluster", cluster, "--key-file", keyFile, "--no-mapper"]);
}

/** The exit code of `cryptsetup open --test-passphrase` with `keyFile` (0: the key opens). */
async function opensWith(keyFile: string, path: string): Promise<number> {
  return (await run("cryptsetup", ["open", "--test-passphrase", "--key-file", keyFile, path])).code;
}

async function withImage(fn: (path: string, dir: string) => Promise<void>): Promise<void> {
  const { path, dir } = await tempImage();
  try {
    await fn(path, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("disk status reports a blank disk as JSON", async () => {
  await withImage(async (path) => {
    const r = await cli(["disk", "status", path, "--cluster", "c1"]);
    assert.equal(r.code, 0, r.err);
    const s = JSON.parse(r.out);
    assert.equal(s.luks, "none");
    assert.equal(s.blank, true);
    assert.equal(s.decision.action, "format");
  });
});

Deno.test("disk format refuses a non-blank disk with exit 1 and changes no byte", async () => {
  await withImage(async (path, dir) => {
    assert.equal((await run("mkfs.ext4", ["-q", "-F", path])).code, 0);
    await Deno.writeFile(`${dir}/key`, KEY);
    const before = await fileHash(path);
    const r = await disk("format", path, "c1", `${dir}/key`);
    assert.equal(r.code, 1);
    assert.match(r.err, /disk\.not_blank.*ext2\/3\/4/);
    assert.equal(await fileHash(path), before);
  });
});

Deno.test("disk format, open, rekey and reset on an image file", async () => {
  await withImage(async (path, dir) => {
    await Deno.writeFile(`${dir}/key`, KEY);
    await Deno.writeFile(`${dir}/key2`, KEY2);
    const f = await disk("format", path, "c1", `${dir}/key`);
    assert.equal(f.code, 0, f.err);
    const s = JSON.parse((await cli(["disk", "status", path])).out);
    assert.equal(s.token.state, "keyed");
    assert.equal(s.whitelist.ok, true);
    // a second format refuses: the disk is no longer blank
    const before = await fileHash(path);
    const f2 = await disk("format", path, "c1", `${dir}/key`);
    assert.equal(f2.code, 1);
    assert.equal(await fileHash(path), before);
    const o = await disk("open", path, "c1", `${dir}/key`);
    assert.equal(o.code, 0, o.err);
    const bad = await disk("open", path, "c1", `${dir}/key2`);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /luks\.wrong_key/);
    const other = await disk("open", path, "c2", `${dir}/key`);
    assert.match(other.err, /luks\.other_cluster/);
    const rk = await cli([
      "disk",
      "rekey",
      path,
      "--cluster",
      "c1",
      "--key-file",
      `${dir}/key`,
      "--new-key-file",
      `${dir}/key2`,
    ]);
    assert.equal(rk.code, 0, rk.err);
    assert.equal(await opensWith(`${dir}/key2`, path), 0);
    const noYes = await cli(["disk", "reset", path, "--cluster", "c1"]);
    assert.equal(noYes.code, 2);
    assert.equal(await opensWith(`${dir}/key2`, path), 0);
    const rs = await cli(["disk", "reset", "--yes-destroy-data", path, "--cluster", "c1"]);
    assert.equal(rs.code, 0, rs.err);
    assert.notEqual(await opensWith(`${dir}/key2`, path), 0);
    const s2 = JSON.parse((await cli(["disk", "status", path, "--cluster", "c1"])).out);
    assert.equal(s2.token.state, "fresh");
    assert.equal(s2.decision.action, "format");
  });
});

Deno.test("disk open reads the key from stdin with --key-file - (a real process)", async () => {
  await withImage(async (path, dir) => {
    await Deno.writeFile(`${dir}/key`, KEY);
    assert.equal((await disk("format", path, "c1", `${dir}/key`)).code, 0);
    const main = new URL("./_cli.ts", import.meta.url).pathname;
    const args = [
      "run",
      "-A",
      main,
      "disk",
      "open",
      path,
      "--cluster",
      "c1",
      "--key-file",
      "-",
      "--no-mapper",
    ];
    const ok = await run(Deno.execPath(), args, KEY);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /the key opens/);
    const bad = await run(Deno.execPath(), args, KEY2);
    assert.equal(bad.code, 1);
  });
});

Deno.test("guest entry: without device-mapper the format stops at activation and leaves a fresh disk", async () => {
  await withImage(async (path) => {
    const entry = new URL("../../cryptsetup/guest_entry.ts", import.meta.url).pathname;
    const r = await run(Deno.execPath(), [
      "run",
      "-A",
      entry,
      path,
      "--cluster",
      "c1",
      "--key-file",
      "-",
    ], KEY);
    assert.equal(r.code, 1, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    const line = JSON.parse(r.stdout.trim());
    assert.deepEqual([line.ok, line.code], [false, "luks.no_device_mapper"]);
    const s = await run(Deno.execPath(), [
      "run",
      "-A",
      entry,
      path,
      "--cluster",
      "c1",
      "--key-file",
      "-",
      "--status",
    ], KEY);
    const st = JSON.parse(s.stdout.trim().split("\n")[0]).status;
    assert.equal(st.token.state, "fresh");
    assert.equal(st.decision.action, "format");
  });
});
