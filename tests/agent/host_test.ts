/** Host adapters that can run on any Linux host without root tools: mountinfo, ext4 probe, files. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { isMountPoint, mountOf, parseMountinfo } from "../../agent/mountinfo.ts";
import { hasExtSuperblock, HostCommandRunner, HostFiles, HostWireGuard } from "../../agent/host.ts";
import { ParseError } from "../../lib/errors.ts";
import { FakeRunner } from "./_fakes.ts";

const MOUNTINFO = `22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
25 22 0:23 / /run rw,nosuid shared:5 - tmpfs tmpfs rw,size=1024k
40 22 253:0 / /var/lib/confidant rw,nodev shared:9 - ext4 /dev/mapper/state rw
41 22 0:50 / /mnt/with\\040space rw - tmpfs none rw
`;

Deno.test("parseMountinfo() finds mount points and the file system of a path", () => {
  const e = parseMountinfo(MOUNTINFO);
  assert.equal(e.length, 4);
  assert.equal(mountOf(e, "/run/confidant/x")!.fsType, "tmpfs");
  assert.equal(mountOf(e, "/running")!.fsType, "ext4");
  assert.equal(mountOf(e, "/var/lib/confidant")!.source, "/dev/mapper/state");
  assert.ok(isMountPoint(e, "/var/lib/confidant/"));
  assert.ok(!isMountPoint(e, "/var/lib"));
  assert.ok(isMountPoint(e, "/mnt/with space"));
});

Deno.test("parseMountinfo() refuses malformed lines with a ParseError", () => {
  for (const bad of ["garbage", "1 2 3 4 5 6 7 8 9 10", "22 1 252:1 / / rw - ext4"]) {
    assert.throws(() => parseMountinfo(bad), ParseError, bad);
  }
  assert.throws(() => parseMountinfo("x".repeat(5 * 1024 * 1024)), ParseError);
});

Deno.test("parseMountinfo() reads this host's /proc/self/mountinfo", async () => {
  const e = parseMountinfo(await Deno.readTextFile("/proc/self/mountinfo"));
  assert.ok(mountOf(e, "/"));
});

Deno.test("hasExtSuperblock() sees the ext4 magic at 1080 and nothing in zeros or short input", () => {
  const head = new Uint8Array(4096);
  assert.equal(hasExtSuperblock(head), false);
  head[1080] = 0x53;
  head[1081] = 0xef;
  assert.equal(hasExtSuperblock(head), true);
  assert.equal(hasExtSuperblock(head.subarray(0, 1081)), false);
});

Deno.test("HostFiles.writeSecret() creates a 0600 file and refuses to overwrite", async () => {
  const dir = await Deno.makeTempDir({ prefix: "agent-files-" });
  try {
    const f = new HostFiles();
    const p = join(dir, "s.yaml");
    await f.writeSecret(p, "token: x\n");
    assert.equal((await Deno.stat(p)).mode! & 0o777, 0o600);
    await assert.rejects(() => f.writeSecret(p, "again"));
    assert.equal(await f.exists(p), true);
    await f.remove(p);
    await f.remove(p);
    assert.equal(await f.exists(p), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HostCommandRunner runs a program and keeps its output lines", async () => {
  const lines: string[] = [];
  const r = await new HostCommandRunner().run(["sh", "-c", "echo a; echo b >&2; exit 4"], {
    onLine: (l) => lines.push(l),
  });
  assert.equal(r.code, 4);
  assert.deepEqual([...r.lines].sort(), ["a", "b"]);
  assert.deepEqual(lines.sort(), ["a", "b"]);
  await assert.rejects(
    () => new HostCommandRunner().run(["/nonexistent/prog"], {}),
    /cannot run/,
  );
});

Deno.test("HostWireGuard loads the module when missing and checks wg, with a fake /sys", async () => {
  const sys = await Deno.makeTempDir({ prefix: "agent-sys-" });
  try {
    const runner = new FakeRunner((argv) =>
      Promise.resolve({ code: argv[0] === "wg" ? 0 : 0, lines: [] })
    );
    const wg = new HostWireGuard(runner, sys);
    await wg.ensure(new AbortController().signal);
    assert.deepEqual(runner.calls, [["modprobe", "wireguard"], ["wg", "show", "interfaces"]]);
    await Deno.mkdir(join(sys, "module/wireguard"), { recursive: true });
    await Deno.mkdir(join(sys, "class/net/cilium_wg0"), { recursive: true });
    runner.calls = [];
    await wg.ensure(new AbortController().signal);
    assert.deepEqual(runner.calls, [["wg", "show", "interfaces"]]);
    assert.equal(await wg.interfaceExists("cilium_wg0"), true);
    assert.equal(await wg.interfaceExists("../etc"), false);
    const broken = new HostWireGuard(
      new FakeRunner(() => Promise.resolve({ code: 1, lines: ["Unable to access interface"] })),
      sys,
    );
    await assert.rejects(() => broken.ensure(new AbortController().signal), /wg does not work/);
  } finally {
    await Deno.remove(sys, { recursive: true });
  }
});
