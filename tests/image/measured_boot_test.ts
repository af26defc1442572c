/**
 * The node UKI boots under OVMF with a vTPM, and the PCR 4 / PCR 11 values the
 * booted VM reports — and every event of its firmware event log for those PCRs —
 * equal what `image measure` predicts from the file alone. Also: a fresh build
 * gives the same UKI bytes as the cached one (reproducibility). One boot.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fromBase64, toHex } from "../../lib/bytes.ts";
import { ALG_SHA256, EventType, parseEventLog } from "../../image/event_log.ts";
import { extendSha256, measureUki } from "../../image/measure.ts";
import { buildNodeImage } from "../../image/node_image.ts";
import { provisionSwtpm, startUefiVm, waitForConsole } from "../../image/vm.ts";
import { measureCommand } from "../../image/commands.ts";
import { acquireGuestSlot } from "../_support/qemu_slots.ts";

const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
/** Test image: prints the event log and powers off after printing the PCRs. */
const TEST_CMDLINE = "confidant-init.eventlog=1 confidant-init.halt=1";

function consolePcr(console: string, n: number): string {
  const m = new RegExp(`confidant-node: pcr-sha256 ${n} ([0-9A-F]{64})`).exec(console);
  assert.ok(m, `console has no PCR ${n} line:\n${console.slice(-3000)}`);
  return m[1].toLowerCase();
}

Deno.test({
  name: "a booted node reports the PCR 4 / 11 values and events image measure predicts",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "measured-boot-test-" });
    try {
      const opts = {
        repoRoot: REPO,
        cacheDir: join(REPO, ".cache/image"),
        deno: Deno.execPath(),
        extraCmdline: TEST_CMDLINE,
      };
      const img = await buildNodeImage(opts);
      const uki = await Deno.readFile(img.uki);
      const predicted = await measureUki(uki);

      await t.step("a fresh build gives the same UKI bytes as the cached one", async () => {
        const again = await buildNodeImage({ ...opts, outDir: join(dir, "rebuild") });
        assert.equal(again.sha256, img.sha256);
        assert.equal(again.key, img.key);
      });

      await t.step("image measure --json prints the policy PCRs", async () => {
        const out: string[] = [];
        await measureCommand.run({ uki: img.uki }, {
          json: true,
          out: (s) => out.push(s),
          err: () => {},
        });
        const j = JSON.parse(out.join(""));
        assert.deepEqual(j.pcrs["4"].expected, [toHex(predicted.pcr4)]);
        assert.deepEqual(j.pcrs["11"].expected, [toHex(predicted.pcr11)]);
      });

      const tpmState = join(dir, "tpm");
      await provisionSwtpm(tpmState);
      const releaseSlot = await acquireGuestSlot();
      let console: string;
      try {
        const vm = await startUefiVm({
          uki: img.uki,
          runDir: join(dir, "vm"),
          tpmStateDir: tpmState,
        });
        try {
          const r = await waitForConsole(vm, /reboot: Power down/, 300_000);
          console = r.console;
          assert.ok(r.matched, `the node did not finish booting:\n${console.slice(-3000)}`);
        } finally {
          await vm.kill();
        }
      } finally {
        await releaseSlot();
      }

      await t.step("the TPM's PCR 4, 11, 12 equal the prediction (12 stays zero)", () => {
        assert.equal(consolePcr(console, 4), toHex(predicted.pcr4));
        assert.equal(consolePcr(console, 11), toHex(predicted.pcr11));
        assert.equal(consolePcr(console, 12), "0".repeat(64));
      });

      await t.step("the event log's PCR 4 and 11 events are the predicted ones", async () => {
        const b64 = console.split("\n")
          .map((l) => l.replace(/\r$/, ""))
          .filter((l) =>
            l.startsWith("confidant-node: event-log ") && !l.endsWith("-begin") &&
            !l.endsWith("-end")
          )
          .map((l) => l.slice("confidant-node: event-log ".length).trim())
          .join("");
        const events = parseEventLog(fromBase64(b64));
        for (const pcr of [4, 11]) {
          const logged = events.filter((e) => e.pcr === pcr && e.type !== EventType.EV_NO_ACTION);
          const want = predicted.events.filter((e) => e.pcr === pcr);
          assert.deepEqual(
            logged.map((e) => toHex(e.digests.get(ALG_SHA256)!)),
            want.map((e) => toHex(e.digest)),
            `PCR ${pcr} events differ`,
          );
          let v: Uint8Array = new Uint8Array(32);
          for (const e of logged) v = await extendSha256(v, e.digests.get(ALG_SHA256)!);
          assert.equal(toHex(v), consolePcr(console, pcr), `PCR ${pcr} log replay`);
        }
        const app = events.filter((e) => e.type === EventType.EV_EFI_BOOT_SERVICES_APPLICATION);
        assert.equal(
          app.length,
          2,
          "the firmware loads exactly two images: the UKI and the kernel",
        );
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
