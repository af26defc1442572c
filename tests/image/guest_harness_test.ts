/**
 * The QEMU guest harness (tests/_support/qemu.ts): one real boot checks the
 * whole round trip (args, stdin, stdout/stderr, exit code, disk, vTPM,
 * device-mapper); the pure helpers are checked without booting.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256, toHex, utf8 } from "../../lib/bytes.ts";
import {
  EXIT_MARKER,
  parseGuestExit,
  qemuArgs,
  runInGuest,
  shellQuoteArgs,
} from "../_support/qemu.ts";

Deno.test("parseGuestExit() reads the marker line and nothing else", () => {
  assert.equal(parseGuestExit(`[ 1.0] x\nconfidant-guest: ${EXIT_MARKER} 3\r\n[ 2.0] y`), 3);
  assert.equal(parseGuestExit(`confidant-guest: ${EXIT_MARKER} 0\n`), 0);
  assert.equal(parseGuestExit("kernel panic\n"), null);
  assert.equal(parseGuestExit(`${EXIT_MARKER} x\n`), null);
});

Deno.test("shellQuoteArgs() quotes quotes and refuses NUL", () => {
  assert.equal(shellQuoteArgs(["a b", "it's"]), `'a b' 'it'\\''s'`);
  assert.equal(shellQuoteArgs([]), "");
  assert.throws(() => shellQuoteArgs(["a\0b"]), /NUL/);
});

Deno.test("qemuArgs() passes stdin as an fw_cfg file, never as a value on the command line", () => {
  const args = qemuArgs({
    image: { vmlinuz: "/k", initrd: "/i", kver: "x" },
    memoryMiB: 512,
    cpus: 1,
    disks: [{ path: "/d.img", serial: "state" }],
    job: { script: "/s.js", args: "/a", stdin: "/run/stdin" },
    stdoutPath: "/o",
    stderrPath: "/e",
    network: false,
  });
  assert.ok(args.includes("name=opt/confidant/stdin,file=/run/stdin"));
  assert.ok(args.includes("virtio-blk-pci,drive=disk0,serial=state"));
  assert.ok(!args.some((a) => a.includes("string=")));
  assert.throws(
    () => qemuArgs({ ...baseConfig(), disks: [{ path: "/x,y.img" }] }),
    /contains/,
  );
  assert.throws(() => qemuArgs({ ...baseConfig(), disks: [{ path: "/x", serial: "a b" }] }));
});

function baseConfig() {
  return {
    image: { vmlinuz: "/k", initrd: "/i", kver: "x" },
    memoryMiB: 512,
    cpus: 1,
    disks: [],
    job: { script: "/s.js", args: "/a" },
    stdoutPath: "/o",
    stderrPath: "/e",
    network: false,
  };
}

Deno.test({
  name: "runInGuest() runs a repo script in a booted guest with dm-crypt, disk and vTPM",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "guest-harness-test-" });
    try {
      const disk = join(dir, "scratch.img");
      await Deno.writeFile(disk, new Uint8Array(1 << 20));
      const secret = crypto.getRandomValues(new Uint8Array(64));
      const r = await runInGuest({
        script: "tests/image/guest_probe_entry.ts",
        args: ["7", "it's a 'quoted' arg; $(echo no)"],
        stdin: secret,
        disks: [{ path: disk, serial: "scratch" }],
        tpm: { stateDir: join(dir, "tpm") },
      });
      assert.equal(r.exitCode, 7, r.console);
      assert.equal(r.stderr.trim(), "probe: stderr line");
      const rep = JSON.parse(r.stdout);
      assert.deepEqual(rep.args, ["7", "it's a 'quoted' arg; $(echo no)"]);
      assert.equal(rep.stdinSha256, toHex(await sha256(secret)));
      assert.equal(rep.uid, 0);
      assert.match(rep.kernel, /cloud-amd64$/);
      assert.equal(rep.modprobeDmCrypt, 0);
      assert.equal(rep.mapperControl, true);
      assert.match(rep.dmTargets, /^crypt\s/m);
      assert.match(rep.dmTargets, /^integrity\s/m);
      assert.equal(rep.hasXts, true);
      assert.equal(rep.cryptsetupLib, true);
      assert.match(rep.mkfsExt4, /^mke2fs 1\.47/);
      assert.deepEqual(rep.disks, { vda: "scratch" });
      assert.equal(rep.tpmDevice, true);
      assert.match(rep.tpmPcr0, /^[0-9A-F]{64}$/);
      const head = (await Deno.readFile(disk)).subarray(0, 22);
      assert.deepEqual(head, utf8("confidant-guest-marker"));
      // the secret never appears on the console (it is not on any command line)
      assert.ok(!r.console.includes(toHex(secret)));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
