/**
 * Cluster in a box, end to end: the node UKI booting under OVMF (TCG) with an
 * swtpm vTPM, a real `kms serve` process on loopback with the policy made by
 * `image measure`, and a LUKS2 state disk. Four boots cover five scenarios:
 *
 * 1+5. A fresh node whose KMS is started only after the agent's first release
 *      attempt failed: the agent retries, then attests, first-formats its disk and
 *      (test channel) writes a marker file on it. Its PCR 4/11/12 equal `image measure`.
 * 2.   The same node rebooted: attests again, opens the same disk with the key it
 *      is given (same LUKS UUID, no format) and finds the marker.
 * 3.   The same node and disk, booting the image with one more kernel parameter
 *      (PCR 11 differs; PCR 4 too, as the UKI's hash changes): refused with `pcr.11`
 *      named; the disk's bytes are unchanged.
 * 4.   Node A's disk on node B (another vTPM, same image): refused with
 *      `disk.identity_mismatch`; the disk's bytes are unchanged.
 *
 * The marker travels through the test channel of the node's init (a disk with
 * serial `confidant-test`, read only by images with `confidant-init.test=1` on their
 * measured command line; see NODE_INIT). Each boot holds a machine-wide guest slot.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { toHex } from "../../lib/bytes.ts";
import {
  createSparseDisk,
  type KmsProcess,
  nodeCmdline,
  startKms,
  STATE_DISK_SERIAL,
  swtpmLocalCaPems,
  writeClusterPolicy,
} from "../../image/cluster.ts";
import { buildNodeImage, type NodeImage, withExtraCmdline } from "../../image/node_image.ts";
import { measureUki } from "../../image/measure.ts";
import { ZERO_PCR } from "../../image/policy_pcrs.ts";
import { OVMF_CODE, provisionSwtpm, startUefiVm, waitForConsole } from "../../image/vm.ts";
import { type NodeReport, parseNodeConsole } from "../../image/box_summary.ts";
import { acquireGuestSlot } from "../_support/qemu_slots.ts";

const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const DISK_BYTES = 512 * 1024 ** 2;
/** One boot: firmware, kernel, init, agent (≈1 min on a quiet machine under TCG). */
const BOOT_TIMEOUT_MS = 8 * 60_000;

async function requireTools(): Promise<void> {
  const tools: [string, string[], string][] = [
    ["qemu-system-x86_64", ["--version"], "qemu-system-x86"],
    ["swtpm", ["--version"], "swtpm"],
    ["swtpm_setup", ["--version"], "swtpm-tools"],
    ["tpm2_dictionarylockout", ["--version"], "tpm2-tools"],
  ];
  for (const [cmd, args, pkg] of tools) {
    const ok = await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output()
      .then(() => true, () => false);
    assert.ok(ok, `${cmd} not found: install ${pkg}`);
  }
  assert.ok(await Deno.stat(OVMF_CODE).then(() => true, () => false), "install ovmf");
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function fileHash(path: string): Promise<string> {
  const h = createHash("sha256");
  const f = await Deno.open(path);
  try {
    for await (const chunk of f.readable) h.update(chunk);
  } catch (e) {
    if (!(e instanceof Deno.errors.BadResource)) throw e;
  }
  return h.digest("hex");
}

interface Boot {
  console: string;
  report: NodeReport;
}

Deno.test({
  name: "cluster in a box: fresh node waits for a late KMS, reboots with its marker; " +
    "a changed command line and a foreign disk are refused with the disk untouched",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    await requireTools();
    const dir = await Deno.makeTempDir({ prefix: "box-e2e-" });
    const port = freePort();
    const policyPath = join(dir, "policy.json");
    const kmsOpts = {
      repo: REPO,
      stateDir: join(dir, "kms"),
      kekFile: join(dir, "kek"),
      policyPath,
      port,
      logPath: join(dir, "kms.log"),
      errPath: join(dir, "kms.err"),
    };
    let kms: KmsProcess | undefined;
    try {
      // The KMS's certificate is pinned on the measured command line: learn it, stop the KMS.
      await Deno.writeTextFile(policyPath, JSON.stringify({ pcrs: {} }));
      const first = await startKms(kmsOpts);
      const fingerprint = first.fingerprint;
      await first.stop();

      const img: NodeImage = await buildNodeImage({
        repoRoot: REPO,
        cacheDir: join(REPO, ".cache/image"),
        deno: Deno.execPath(),
        extraCmdline: `${nodeCmdline(fingerprint)} confidant-init.test=1`,
      });
      const tampered = await withExtraCmdline(
        img,
        "confidant-init.note=tampered",
        join(dir, "t.efi"),
      );
      const uki = await Deno.readFile(img.uki);
      await writeClusterPolicy(policyPath, uki, await swtpmLocalCaPems());
      const m = await measureUki(uki);
      const expected = { "4": toHex(m.pcr4), "11": toHex(m.pcr11), "12": ZERO_PCR };

      const tpmA = join(dir, "tpm-a");
      const tpmB = join(dir, "tpm-b");
      await provisionSwtpm(tpmA);
      await provisionSwtpm(tpmB);
      const diskA = join(dir, "disk-a.img");
      await createSparseDisk(diskA, DISK_BYTES);

      /** Boot `image` with `tpm` and `disk` until the test channel powers it off. */
      const boot = async (
        name: string,
        image: string,
        tpm: string,
        marker: string,
        whileBooting?: (vm: Awaited<ReturnType<typeof startUefiVm>>) => Promise<void>,
      ): Promise<Boot> => {
        const markerDisk = join(dir, `${name}-marker.img`);
        const bytes = new Uint8Array(4096);
        bytes.set(new TextEncoder().encode(marker));
        await Deno.writeFile(markerDisk, bytes);
        const release = await acquireGuestSlot();
        try {
          const vm = await startUefiVm({
            uki: image,
            runDir: join(dir, name),
            tpmStateDir: tpm,
            disks: [{ path: diskA, serial: STATE_DISK_SERIAL }, {
              path: markerDisk,
              serial: "confidant-test",
            }],
            network: true,
            kmsHostPort: port,
            hostname: "box-node",
          });
          try {
            await whileBooting?.(vm);
            const r = await waitForConsole(
              vm,
              /confidant-node: test: powering off/,
              BOOT_TIMEOUT_MS,
            );
            assert.ok(r.matched, `${name}: the node did not finish:\n${r.console.slice(-4000)}`);
            return { console: r.console, report: parseNodeConsole(r.console) };
          } finally {
            await vm.kill();
          }
        } finally {
          await release();
        }
      };
      const markerLine = (c: string, what: "before" | "written") =>
        new RegExp(`confidant-node: test: marker-${what} (\\S+)`).exec(c)?.[1];

      const m1 = `first-${crypto.randomUUID().slice(0, 8)}`;
      let uuid = "";
      let akName = "";
      await t.step("1+5: a fresh node waits for the KMS, then attests and formats", async () => {
        const b = await boot("boot1", img.uki, tpmA, m1, async (vm) => {
          const r = await waitForConsole(
            vm,
            /"msg":"step attempt failed, retrying","step":"release"/,
            BOOT_TIMEOUT_MS,
          );
          assert.ok(r.matched, `the agent never tried the KMS:\n${r.console.slice(-4000)}`);
          kms = await startKms(kmsOpts);
        });
        const r = b.report;
        assert.equal(r.final, "unlocked", b.console.slice(-4000));
        assert.ok(r.releaseRetries >= 1, "the agent retried while the KMS was down");
        assert.equal(r.kms.decision, "released");
        assert.deepEqual(r.pcrs, expected, "booted PCRs equal image measure");
        assert.ok(r.identity?.akName, "attestation identity logged");
        assert.equal(r.disk.formatted, true);
        assert.equal(r.disk.mountPoint, "/var/lib/confidant");
        assert.equal(markerLine(b.console, "before"), "none");
        assert.equal(markerLine(b.console, "written"), m1);
        assert.ok(
          r.steps.some((s) => s.step === "join" && s.outcome === "skipped"),
          "join skipped: no Kubernetes in the box",
        );
        uuid = r.disk.uuid!;
        akName = r.identity!.akName;
        assert.match(uuid, /^[0-9a-f-]{36}$/);
      });

      await t.step("2: the rebooted node opens the same disk and finds the marker", async () => {
        const b = await boot("boot2", img.uki, tpmA, "second");
        const r = b.report;
        assert.equal(r.final, "unlocked", b.console.slice(-4000));
        assert.equal(r.releaseRetries, 0);
        assert.equal(r.disk.formatted, false, "opened, not formatted again");
        assert.equal(r.disk.uuid, uuid, "same LUKS UUID, unlocked with the released key");
        assert.equal(r.identity?.akName, akName, "same TPM, same AK");
        assert.equal(markerLine(b.console, "before"), m1);
      });

      await t.step("3: a changed kernel command line is refused on PCR 11", async () => {
        const before = await fileHash(diskA);
        const b = await boot("boot3", tampered.uki, tpmA, "third");
        const r = b.report;
        assert.equal(r.final, "failed");
        assert.equal(r.kms.decision, "refused");
        assert.ok(r.kms.checks?.includes("pcr.11"), `checks: ${r.kms.checks}`);
        assert.notEqual(r.pcrs["11"], expected["11"]);
        assert.equal(markerLine(b.console, "before"), undefined, "never mounted");
        assert.equal(await fileHash(diskA), before, "disk bytes unchanged");
      });

      await t.step("4: node A's disk on node B is refused, disk untouched", async () => {
        const before = await fileHash(diskA);
        const b = await boot("boot4", img.uki, tpmB, "fourth");
        const r = b.report;
        assert.equal(r.final, "failed");
        assert.deepEqual(r.pcrs, expected, "node B boots the admitted image");
        assert.deepEqual(r.kms.checks, ["disk.identity_mismatch"]);
        assert.equal(await fileHash(diskA), before, "disk bytes unchanged");
      });
    } finally {
      await kms?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
