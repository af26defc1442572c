/**
 * sd_notify: the native datagram path is checked in a child Deno with --unstable-net
 * (a test receiver stands in for systemd's NOTIFY_SOCKET); the systemd-notify fallback
 * through a recording runner.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createNotifier, encodeNotification } from "../../agent/sd_notify.ts";
import { FakeRunner } from "./_fakes.ts";

Deno.test("encodeNotification() writes KEY=VALUE lines and refuses newlines and bad keys", () => {
  assert.equal(
    encodeNotification({ READY: "1", STATUS: "node ready" }),
    "READY=1\nSTATUS=node ready\n",
  );
  assert.throws(() => encodeNotification({ STATUS: "a\nREADY=1" }), /newline/);
  assert.throws(() => encodeNotification({ "ready": "1" }), /bad notification key/);
});

Deno.test("createNotifier() without NOTIFY_SOCKET sends nothing", async () => {
  const runner = new FakeRunner(() => Promise.resolve({ code: 0, lines: [] }));
  const n = createNotifier({ socket: undefined, runner });
  assert.equal(n.mode, "none");
  await n.notify({ READY: "1" });
  assert.equal(runner.calls.length, 0);
});

Deno.test("createNotifier() uses systemd-notify when the runtime has no datagram sockets", async () => {
  // deno.json enables --unstable-net for this test process, so the detection is checked
  // in a child deno started without the config (no unstable features).
  const dir = await Deno.makeTempDir({ prefix: "agent-notify-" });
  try {
    const script = join(dir, "child.ts");
    const mod = new URL("../../agent/sd_notify.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { createNotifier } from ${JSON.stringify(mod)};
const calls: string[][] = [];
const n = createNotifier({ socket: "/run/systemd/notify", runner: {
  run: (argv: string[]) => { calls.push(argv); return Promise.resolve({ code: 0, lines: [] }); },
} as never });
await n.notify({ READY: "1", STATUS: "node ready" });
console.log(JSON.stringify({ mode: n.mode, calls, native: typeof (Deno as unknown as Record<string, unknown>).listenDatagram }));
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", "--no-lock", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const r = JSON.parse(new TextDecoder().decode(out.stdout).trim());
    assert.equal(r.native, "undefined");
    assert.equal(r.mode, "systemd-notify");
    assert.deepEqual(r.calls, [["systemd-notify", "READY=1", "STATUS=node ready"]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createNotifier() reports a failing systemd-notify", async () => {
  const failing = createNotifier({
    socket: "/run/systemd/notify",
    mode: "systemd-notify",
    runner: new FakeRunner(() => Promise.resolve({ code: 1, lines: ["No such file"] })),
  });
  await assert.rejects(() => failing.notify({ READY: "1" }), /systemd-notify exited with 1/);
});

Deno.test("createNotifier() sends one datagram to NOTIFY_SOCKET natively under --unstable-net", async () => {
  const dir = await Deno.makeTempDir({ prefix: "agent-notify-" });
  try {
    const socket = join(dir, "notify.sock");
    const script = join(dir, "child.ts");
    const mod = new URL("../../agent/sd_notify.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { createNotifier } from ${JSON.stringify(mod)};
const recv = Deno.listenDatagram({ transport: "unixpacket", path: ${JSON.stringify(socket)} });
const n = createNotifier({ socket: ${JSON.stringify(socket)}, runtimeDir: ${JSON.stringify(dir)},
  runner: { run: () => { throw new Error("runner used"); } } });
const got = recv.receive();
await n.notify({ READY: "1", STATUS: "node ready" });
const [data] = await got;
recv.close();
console.log(JSON.stringify({ mode: n.mode, text: new TextDecoder().decode(data) }));
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-net", "--no-lock", script],
      cwd: new URL("../../", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const r = JSON.parse(new TextDecoder().decode(out.stdout).trim());
    assert.deepEqual(r, { mode: "native", text: "READY=1\nSTATUS=node ready\n" });
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(left, ["child.ts", "notify.sock"], "sending socket removed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
