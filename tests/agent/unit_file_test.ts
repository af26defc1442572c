import assert from "node:assert/strict";

const UNIT = new URL("../../agent/systemd/confidant-agent.service", import.meta.url);

function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const s = /^\[(\w+)\]$/.exec(line);
    if (s) {
      section = new Map();
      out.set(s[1], section);
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(section && eq > 0, `bad line: ${line}`);
    const k = line.slice(0, eq);
    section.set(k, [...(section.get(k) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

Deno.test("the agent unit is Type=notify, restarts on failure and keeps mounts visible", async () => {
  const u = parseUnit(await Deno.readTextFile(UNIT));
  const svc = u.get("Service")!;
  assert.deepEqual(svc.get("Type"), ["notify"]);
  assert.deepEqual(svc.get("NotifyAccess"), ["all"], "systemd-notify is a child process");
  assert.deepEqual(svc.get("Restart"), ["on-failure"]);
  assert.deepEqual(svc.get("ExecStart"), [
    "/usr/bin/confidant agent run --config /etc/confidant/agent.yaml",
  ]);
  assert.deepEqual(svc.get("NoNewPrivileges"), ["yes"]);
  // Options that create a private mount namespace would hide the state disk mount.
  for (
    const k of [
      "ProtectSystem",
      "PrivateTmp",
      "ProtectHome",
      "PrivateDevices",
      "ProtectKernelModules",
    ]
  ) {
    assert.equal(svc.has(k), false, k);
  }
  assert.deepEqual(u.get("Install")!.get("WantedBy"), ["multi-user.target"]);
});
