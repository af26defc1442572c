import assert from "node:assert/strict";
import { uefiQemuArgs } from "../../image/vm.ts";
import { runsProgram } from "../../image/up.ts";

const base = {
  espDir: "/r/esp",
  varsPath: "/r/vars.fd",
  tpmSocket: "/r/swtpm.sock",
  consolePath: "/r/console.log",
  disks: [{ path: "/r/state.img", serial: "confidant-state" }],
  network: true,
  memoryMiB: 2048,
  cpus: 2,
};

Deno.test("uefiQemuArgs() boots the ESP under OVMF with a CRB vTPM and the disks", () => {
  const a = uefiQemuArgs(base);
  assert.ok(a.includes("file=fat:/r/esp,format=raw,if=none,id=esp,readonly=on"));
  assert.ok(a.includes("tpm-crb,tpmdev=tpm0"));
  assert.ok(a.includes("virtio-blk-pci,drive=disk0,serial=confidant-state"));
  assert.ok(a.includes("user,id=n0"));
  assert.ok(a.some((x) => x.startsWith("if=pflash,format=raw,readonly=on,file=")));
});

Deno.test("uefiQemuArgs() relays the guest's KMS address to the host port, one nc per connection", () => {
  const a = uefiQemuArgs({ ...base, kmsHostPort: 40123 });
  assert.ok(a.includes("user,id=n0,guestfwd=tcp:10.0.2.100:8443-cmd:busybox nc 127.0.0.1 40123"));
  assert.throws(() => uefiQemuArgs({ ...base, kmsHostPort: 0 }), /bad KMS port/);
});

Deno.test("uefiQemuArgs() names the node through DHCP and refuses a bad host name", () => {
  const a = uefiQemuArgs({ ...base, hostname: "confidant-node-1" });
  assert.ok(a.includes("user,id=n0,hostname=confidant-node-1"));
  assert.throws(() => uefiQemuArgs({ ...base, hostname: "a,guestfwd=x" }), /bad host name/);
  assert.throws(() => uefiQemuArgs({ ...base, hostname: "Upper" }), /bad host name/);
});

Deno.test("uefiQemuArgs() refuses paths QEMU would split and bad serials", () => {
  assert.throws(() => uefiQemuArgs({ ...base, espDir: "/r/a,b" }), /contains/);
  assert.throws(() => uefiQemuArgs({ ...base, disks: [{ path: "/x", serial: "has space" }] }));
});

Deno.test("runsProgram() checks the PID's program (PID reuse guard for down)", async () => {
  assert.equal(await runsProgram(Deno.pid, "deno"), true);
  assert.equal(await runsProgram(Deno.pid, "qemu-system-x86_64"), false);
  assert.equal(await runsProgram(2 ** 22 + 1, "deno"), false);
});
