/**
 * A machine-wide limit on concurrently running test guests. Test files run in
 * parallel processes; TCG guests are CPU-bound, so starting more of them than
 * the machine can run only stretches each boot towards its timeout. A slot is a
 * lock file in `.cache/image/guest-slots/` holding the owner's PID; a slot whose
 * owner is gone is taken over. The wait for a slot does not count against a
 * guest's timeout.
 *
 * `CONFIDANT_GUEST_SLOTS` sets the number of slots (default 2).
 *
 * @module
 */
import { join } from "node:path";
import { REPO_ROOT } from "./qemu_initramfs.ts";

function slotCount(): number {
  const n = Number(Deno.env.get("CONFIDANT_GUEST_SLOTS") ?? "2");
  return Number.isInteger(n) && n >= 1 && n <= 64 ? n : 2;
}

async function alive(pid: number): Promise<boolean> {
  return await Deno.stat(`/proc/${pid}`).then(() => true, () => false);
}

/**
 * Wait for a free guest slot and hold it; returns the function that frees it.
 * Slots are per machine (files in the repository's cache), shared by every test process.
 */
export async function acquireGuestSlot(): Promise<() => Promise<void>> {
  const dir = join(REPO_ROOT, ".cache/image/guest-slots");
  await Deno.mkdir(dir, { recursive: true });
  const n = slotCount();
  for (;;) {
    for (let i = 0; i < n; i++) {
      const path = join(dir, `slot-${i}`);
      try {
        const f = await Deno.open(path, { write: true, createNew: true });
        await f.write(new TextEncoder().encode(`${Deno.pid}\n`));
        f.close();
        return () => Deno.remove(path).catch(() => {});
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
        const owner = Number((await Deno.readTextFile(path).catch(() => "")).trim());
        // an empty file is a slot being written right now; leave it
        if (Number.isInteger(owner) && owner > 0 && !(await alive(owner))) {
          await Deno.remove(path).catch(() => {});
        }
      }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
