import assert from "node:assert/strict";
import { join } from "node:path";
import { acquireGuestSlot } from "../_support/qemu_slots.ts";
import { REPO_ROOT } from "../_support/qemu_initramfs.ts";

Deno.test("acquireGuestSlot() takes over a slot whose owner process is gone", async () => {
  const dir = join(REPO_ROOT, ".cache/image/guest-slots");
  await Deno.mkdir(dir, { recursive: true });
  // a dead owner: a PID above the kernel's maximum
  const stale = join(dir, "slot-0");
  const hadSlot0 = await Deno.stat(stale).then(() => true, () => false);
  if (!hadSlot0) await Deno.writeTextFile(stale, `${2 ** 22 + 7}\n`);
  const release = await acquireGuestSlot();
  await release();
  if (!hadSlot0) assert.equal(await Deno.stat(stale).then(() => true, () => false), false);
});
