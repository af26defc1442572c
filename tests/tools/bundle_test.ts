/**
 * The shipped form of the program: `deno task bundle` output run by its
 * launcher with the one permission list (tools/permissions.ts), not with
 * --allow-all. A permission the code needs but the list lacks fails here.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { RUNTIME_FLAGS } from "../../tools/permissions.ts";
import { startSwtpm } from "../_support/swtpm.ts";
import { akPin } from "../../attestation/verify.ts";
import { fromBase64 } from "../../lib/bytes.ts";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const dec = new TextDecoder();

async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; stdin?: Uint8Array } = {},
) {
  const p = new Deno.Command(cmd, {
    args,
    cwd: repo,
    env: opts.env,
    stdin: opts.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin) {
    const w = p.stdin.getWriter();
    await w.write(opts.stdin);
    await w.close();
  }
  const out = await p.output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("the bundled program runs its commands under the shipped permission list", async (t) => {
  const dist = await Deno.makeTempDir({ prefix: "confidant-dist-" });
  try {
    const built = await run(Deno.execPath(), ["run", "--allow-all", "tools/build.ts", "bundle"], {
      env: { CONFIDANT_DIST: dist },
    });
    assert.equal(built.code, 0, built.stderr);
    const launcher = await Deno.readTextFile(`${dist}/confidant-run`);
    for (const f of RUNTIME_FLAGS) assert.ok(launcher.includes(`'${f}'`), `launcher lacks ${f}`);
    assert.ok(!launcher.includes("--allow-all"), "the launcher must not grant everything");
    const confidant = (args: string[], stdin?: Uint8Array) =>
      run(`${dist}/confidant-run`, args, { stdin });

    await t.step("--help and every command's --help exit 0 without warnings", async () => {
      const help = await confidant(["--help"]);
      assert.equal(help.code, 0, help.stderr);
      assert.equal(help.stderr, "");
      const paths = [...help.stdout.matchAll(/^ {2}([a-z-]+(?: [a-z-]+)*?)\s{2,}/gm)].map((m) =>
        m[1].split(" ")
      );
      assert.ok(paths.length > 20, "help lists the commands");
      for (const p of paths) {
        const r = await confidant([...p, "--help"]);
        assert.equal(r.code, 0, `${p.join(" ")} --help: ${r.stderr}`);
      }
    });

    await t.step("kms init writes sealed state (env, files, crypto)", async () => {
      const state = `${dist}/kms-state`;
      const r = await confidant([
        "kms",
        "init",
        "--state-dir",
        state,
        "--kek-file",
        `${state}.kek`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const master = await Deno.readTextFile(`${state}/master.json`);
      assert.ok(master.length > 0);
      assert.equal((await Deno.stat(`${state}.kek`)).mode! & 0o777, 0o600);
    });

    await t.step("disk format writes a LUKS2 header through libcryptsetup FFI", async () => {
      const img = `${dist}/disk.img`;
      await Deno.writeFile(img, new Uint8Array(0));
      await Deno.truncate(img, 40 * 1024 * 1024);
      const key = crypto.getRandomValues(new Uint8Array(32));
      const f = await confidant(
        ["disk", "format", img, "--cluster", "c1", "--key-file", "-", "--no-mapper"],
        key,
      );
      // --no-mapper: the host has no device-mapper, so the key is checked, not activated.
      assert.equal(f.code, 0, f.stderr);
      assert.match(f.stderr, /state disk formatted and keyed/);
      const r = await confidant(["disk", "status", img]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).luks, "luks2", r.stdout);
    });

    await t.step("attest on swtpm, then verify with libcrypto ECDSA", async () => {
      const tpm = await startSwtpm();
      try {
        const nonce = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        const doc = `${dist}/doc.json`;
        const a = await confidant(["attest", "--tpm", tpm.spec, "--nonce", nonce, "--out", doc]);
        assert.equal(a.code, 0, a.stderr);
        const akPublic = fromBase64(JSON.parse(await Deno.readTextFile(doc)).tpm.akPublic);
        const policy = `${dist}/policy.json`;
        await Deno.writeTextFile(
          policy,
          JSON.stringify({ pcrs: {}, ak: { pinned: [await akPin(akPublic)] } }),
        );
        const v = await confidant(["verify", "--policy", policy, "--nonce", nonce, doc]);
        assert.equal(v.code, 0, v.stdout + v.stderr);
        assert.doesNotMatch(v.stderr, /libcrypto/, "libcrypto must load under the permission list");
      } finally {
        await tpm.stop();
      }
    });

    await t.step("a usage error exits 2 with one line", async () => {
      const r = await confidant(["verify", "--nonce", "zz"]);
      assert.equal(r.code, 2);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    });
  } finally {
    await Deno.remove(dist, { recursive: true });
  }
});
