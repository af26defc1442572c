import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { MemoryBlockDevice } from "../../cryptsetup/block_device.ts";
import {
  decide,
  FORMAT_STEPS,
  type LifecycleConfig,
  MAPPER_NAME,
  observeDisk,
  SimulatedCrash,
  unlockOrFormat,
} from "../../cryptsetup/lifecycle.ts";
import { MemoryLuksBackend } from "../../cryptsetup/memory_backend.ts";
import { HEADER_PROBE_BYTES, parseLuks2Header } from "../../cryptsetup/luks_header.ts";
import { ConfidantError } from "../../lib/errors.ts";
import { Logger, setLogSink } from "../../lib/log.ts";
import { createMemoryStateDisk } from "../../cryptsetup/state_disk.ts";
import { sampleOffsets } from "../../cryptsetup/blank.ts";
import { DATA_OFFSET } from "../../cryptsetup/whitelist.ts";
import { buildHeaderCopy } from "../../cryptsetup/memory_backend.ts";

setLogSink(() => {});
const MiB = 1024 * 1024;
const cfg: LifecycleConfig = { cluster: "prod-1", integrity: false };
const log = new Logger("test");

function disk(size = 64 * MiB) {
  return new MemoryLuksBackend(new MemoryBlockDevice(size));
}
const keyOf = (n: number) => new Uint8Array(32).fill(n);
const getter = (n: number) => () => Promise.resolve(keyOf(n));
// deno-lint-ignore no-explicit-any
type Any = any;
const first = (m: Record<string, Any>) => Object.values(m.keyslots)[0] as Any;
const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ConfidantError, String(e));
    assert.equal(e.code, code, e.message);
    return true;
  });
}

/** Rewrite both header copies of a memory disk with `edit` applied to the JSON. */
function rewriteHeader(b: MemoryLuksBackend, edit: (m: Record<string, Any>) => void): void {
  const h = parseLuks2Header(b.device.bytes.subarray(0, HEADER_PROBE_BYTES));
  const meta = JSON.parse(h.active.jsonText);
  edit(meta);
  const seqid = h.active.binary.seqid + 1n;
  const json = JSON.stringify(meta);
  const uuid = h.active.binary.uuid;
  b.device.bytes.set(buildHeaderCopy(json, { kind: "primary", seqid, uuid }), 0);
  b.device.bytes.set(buildHeaderCopy(json, { kind: "secondary", seqid, uuid }), 16384);
}

Deno.test("unlockOrFormat() formats a blank disk, keys it, and reopens it with the KMS key", async () => {
  const b = disk();
  const r = await unlockOrFormat(b, { ...cfg, getKey: getter(7), log });
  assert.equal(r.action, "formatted");
  assert.equal(r.mapper, "/dev/mapper/state");
  assert.ok(b.filesystemMade);
  const obs = await observeDisk(b.device, cfg);
  assert.equal(obs.token?.state, "keyed");
  assert.equal(obs.token?.cluster, "prod-1");
  assert.equal(obs.keyslotCount, 1);
  assert.ok(obs.whitelist?.ok);
  await b.deactivate(MAPPER_NAME);
  const again = await unlockOrFormat(b, { ...cfg, getKey: getter(7), log });
  assert.deepEqual(again, { action: "opened", uuid: r.uuid, mapper: "/dev/mapper/state" });
});

Deno.test("unlockOrFormat() refuses a wrong key and changes no byte", async () => {
  const b = disk();
  await unlockOrFormat(b, { ...cfg, getKey: getter(7), log });
  await b.deactivate(MAPPER_NAME);
  const before = digest(b.device.bytes);
  await rejects(unlockOrFormat(b, { ...cfg, getKey: getter(8), log }), "luks.wrong_key");
  assert.equal(digest(b.device.bytes), before);
});

Deno.test("unlockOrFormat() refuses another cluster's disk and changes no byte", async () => {
  const b = disk();
  await unlockOrFormat(b, { ...cfg, getKey: getter(7), log });
  await b.deactivate(MAPPER_NAME);
  const before = digest(b.device.bytes);
  await rejects(
    unlockOrFormat(b, { cluster: "other", integrity: false, getKey: getter(7), log }),
    "luks.other_cluster",
  );
  await rejects(
    unlockOrFormat(b, { ...cfg, integrity: true, getKey: getter(7), log }),
    "luks.integrity_mismatch",
  );
  assert.equal(digest(b.device.bytes), before);
});

Deno.test("unlockOrFormat() refuses a non-blank non-LUKS disk and changes no byte", async (t) => {
  const sample = sampleOffsets(0, 64 * MiB)[40] + 17;
  for (
    const [name, off] of [["first MiB", 4096], ["sample", sample], ["last MiB", 64 * MiB - 100]]
  ) {
    await t.step(name as string, async () => {
      const b = disk();
      b.device.bytes[off as number] = 1;
      const before = digest(b.device.bytes);
      await rejects(unlockOrFormat(b, { ...cfg, getKey: getter(7), log }), "disk.not_blank");
      assert.equal(digest(b.device.bytes), before);
    });
  }
});

Deno.test("unlockOrFormat() refuses headers that fail the whitelist or carry unknown tokens", async (t) => {
  const cases: [string, (m: Record<string, Any>) => void, string][] = [
    ["other cipher", (m) => (m.segments["0"].encryption = "cipher_null-ecb"), "luks.whitelist"],
    ["512-byte sectors", (m) => (m.segments["0"].sector_size = 512), "luks.whitelist"],
    ["argon2id keyslot", (m) => (first(m).kdf.type = "argon2id"), "luks.whitelist"],
    ["extra keyslot", (m) => {
      m.keyslots["5"] = structuredClone(first(m));
      m.keyslots["5"].area.offset = String(Number(first(m).area.offset) + 258048 * 2);
      m.digests["0"].keyslots.push("5");
    }, "luks.whitelist"],
    ["unknown token field", (m) => (m.tokens["0"].extra = 1), "luks.token_unknown"],
    ["foreign token", (m) => (m.tokens["0"].type = "systemd-tpm2"), "luks.token_unknown"],
    ["token version 2", (m) => (m.tokens["0"].format_version = 2), "luks.token_unknown"],
    ["no token", (m) => (m.tokens = {}), "luks.not_ours"],
  ];
  for (const [name, edit, code] of cases) {
    await t.step(name, async () => {
      const b = disk();
      await unlockOrFormat(b, { ...cfg, getKey: getter(7), log });
      await b.deactivate(MAPPER_NAME);
      rewriteHeader(b, edit);
      const before = digest(b.device.bytes);
      let asked = false;
      await rejects(
        unlockOrFormat(b, {
          ...cfg,
          getKey: () => {
            asked = true;
            return Promise.resolve(keyOf(7));
          },
          log,
        }),
        code,
      );
      assert.equal(asked, false, "the KMS key must not be requested for a refused header");
      assert.equal(digest(b.device.bytes), before);
    });
  }
});

Deno.test("a power cut after any first-boot step leaves a disk the next boot formats or opens", async (t) => {
  for (const integrity of [false, true]) {
    for (const step of FORMAT_STEPS) {
      await t.step(`integrity=${integrity} crash after ${step}`, async () => {
        const c = { ...cfg, integrity };
        const b = disk();
        await assert.rejects(
          unlockOrFormat(b, { ...c, getKey: getter(3), crashAfter: step, log }),
          SimulatedCrash,
        );
        b.active.clear(); // the reboot
        const obs = await observeDisk(b.device, c);
        const d = decide(obs, c);
        if (step === "token-keyed") assert.equal(d.action, "open");
        else assert.equal(d.action, "format", JSON.stringify(d));
        const r = await unlockOrFormat(b, { ...c, getKey: getter(3), log });
        assert.equal(r.action, step === "token-keyed" ? "opened" : "formatted");
        b.active.clear();
        const r2 = await unlockOrFormat(b, { ...c, getKey: getter(3), log });
        assert.equal(r2.action, "opened");
        assert.equal((await observeDisk(b.device, c)).keyslotCount, 1);
      });
    }
  }
});

Deno.test("a header of ours with no token and no keyslot over a used data area is refused", async () => {
  const b = disk();
  await assert.rejects(
    unlockOrFormat(b, { ...cfg, getKey: getter(3), crashAfter: "format-header", log }),
    SimulatedCrash,
  );
  b.device.bytes[DATA_OFFSET + 1024] = 0x42;
  await rejects(unlockOrFormat(b, { ...cfg, getKey: getter(3), log }), "luks.not_ours");
});

Deno.test("a damaged header over a never-used data area is formatted again; over data it is refused", async () => {
  const b = disk();
  await unlockOrFormat(b, { ...cfg, getKey: getter(3), crashAfter: "keyslot-random", log }).catch(
    () => {},
  );
  b.device.bytes[4096 + 10] ^= 0xff; // primary JSON
  b.device.bytes[16384 + 4096 + 10] ^= 0xff; // secondary JSON
  assert.equal((await observeDisk(b.device, cfg)).luks, "damaged");
  const r = await unlockOrFormat(b, { ...cfg, getKey: getter(3), log });
  assert.equal(r.action, "formatted");
  b.active.clear();
  b.device.bytes[4096 + 10] ^= 0xff;
  b.device.bytes[16384 + 4096 + 10] ^= 0xff;
  const before = digest(b.device.bytes);
  await rejects(unlockOrFormat(b, { ...cfg, getKey: getter(3), log }), "luks.damaged_header");
  assert.equal(digest(b.device.bytes), before);
});

Deno.test("memory StateDisk: status, rekey, reset, close", async () => {
  const sd = createMemoryStateDisk();
  const s0 = await sd.status(cfg);
  assert.equal(s0.luks, "none");
  assert.equal(s0.blank, true);
  assert.deepEqual(s0.decision, { action: "format", reason: "blank disk (first boot)" });
  await sd.unlockOrFormat({ ...cfg, getKey: getter(1), log });
  const s1 = await sd.status();
  assert.equal(s1.token?.state, "keyed");
  assert.equal(s1.whitelist?.ok, true);
  await sd.rekey(cfg, keyOf(1), keyOf(2));
  await rejects(sd.rekey(cfg, keyOf(1), keyOf(3)), "luks.wrong_key");
  await sd.close();
  const r = await sd.unlockOrFormat({ ...cfg, getKey: getter(2), log });
  assert.equal(r.action, "opened");
  await sd.close();
  await sd.reset({ cluster: "prod-2", integrity: false });
  const s2 = await sd.status({ cluster: "prod-2", integrity: false });
  assert.equal(s2.token?.state, "fresh");
  assert.equal(s2.decision?.action, "format");
  await rejects(sd.unlockOrFormat({ ...cfg, getKey: getter(2), log }), "luks.other_cluster");
});

Deno.test("unlockOrFormat() with a uuid: memory format writes it; a power cut keeps it; open checks it", async (t) => {
  const uuid = "3f2a6c1e-9b7d-4e21-a5c3-0d8e7f6a5b4c";
  await t.step("format writes exactly the UUID asked for", async () => {
    const b = disk();
    const r = await unlockOrFormat(b, { ...cfg, uuid, getKey: getter(3), log });
    assert.equal(r.action, "formatted");
    assert.equal(r.uuid, uuid);
    assert.equal((await observeDisk(b.device, cfg)).uuid, uuid);
  });
  for (const step of FORMAT_STEPS.slice(0, -1)) {
    await t.step(`a power cut after ${step} leaves a header with that UUID`, async () => {
      const b = disk();
      await assert.rejects(
        unlockOrFormat(b, { ...cfg, uuid, getKey: getter(3), crashAfter: step, log }),
        SimulatedCrash,
      );
      b.active.clear();
      const obs = await observeDisk(b.device, cfg);
      assert.equal(obs.uuid, uuid);
      assert.equal(decide(obs, cfg).action, "format");
      const r = await unlockOrFormat(b, { ...cfg, uuid, getKey: getter(3), log });
      assert.equal(r.uuid, uuid);
    });
  }
  await t.step("open refuses a header with another UUID before asking for the key", async () => {
    const b = disk();
    await unlockOrFormat(b, { ...cfg, uuid, getKey: getter(3), log });
    b.active.clear();
    const before = digest(b.device.bytes);
    let asked = false;
    const other = "3f2a6c1e-9b7d-4e21-a5c3-0d8e7f6a5b4d";
    await rejects(
      unlockOrFormat(b, {
        ...cfg,
        uuid: other,
        getKey: () => {
          asked = true;
          return Promise.resolve(keyOf(3));
        },
        log,
      }),
      "luks.uuid_mismatch",
    );
    assert.equal(asked, false);
    assert.equal(digest(b.device.bytes), before);
    assert.equal(
      (await unlockOrFormat(b, { ...cfg, uuid, getKey: getter(3), log })).action,
      "opened",
    );
  });
  await t.step("a malformed UUID is refused and no byte changes", async () => {
    const zeros = digest(new Uint8Array(16 * MiB));
    for (
      const bad of [
        "3F2A6C1E-9B7D-4E21-A5C3-0D8E7F6A5B4C", // upper case
        "3f2a6c1e9b7d4e21a5c30d8e7f6a5b4c", // no dashes
        "{3f2a6c1e-9b7d-4e21-a5c3-0d8e7f6a5b4c}",
        "3f2a6c1e-9b7d-0e21-a5c3-0d8e7f6a5b4c", // version 0
        "3f2a6c1e-9b7d-4e21-c5c3-0d8e7f6a5b4c", // variant 110x (Microsoft)
        "3f2a6c1e-9b7d-4e21-a5c3-0d8e7f6a5b4c\n",
        "../../etc/passwd",
        "",
      ]
    ) {
      const b = disk(16 * MiB);
      await rejects(unlockOrFormat(b, { ...cfg, uuid: bad, getKey: getter(3), log }), "luks.uuid");
      assert.equal(digest(b.device.bytes), zeros, `bytes written for ${JSON.stringify(bad)}`);
      await rejects(
        b.format({ integrity: false, tokenJson: "{}", passphrase: keyOf(1), uuid: bad }, () => {}),
        "luks.uuid",
      );
    }
  });
});
