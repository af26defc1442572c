import assert from "node:assert/strict";
import { decide, FORMAT_STEPS, observeDisk, SimulatedCrash } from "../../cryptsetup/lifecycle.ts";
import { openStateDisk } from "../../cryptsetup/state_disk.ts";
import { withCryptDevice } from "../../cryptsetup/crypt_device.ts";
import {
  HEADER_PROBE_BYTES,
  parseLuks2Header,
  probeLuks,
  sealHeaderCopy,
} from "../../cryptsetup/luks_header.ts";
import { checkWhitelist } from "../../cryptsetup/whitelist.ts";
import { ConfidantError } from "../../lib/errors.ts";
import { Logger, setLogSink } from "../../lib/log.ts";
import { fileHash, run, tempImage } from "./_tools.ts";

setLogSink(() => {});
const log = new Logger("test");
const cfg = { cluster: "prod-1", integrity: false };
const keyOf = (n: number) => new Uint8Array(32).fill(n);
const getter = (n: number) => () => Promise.resolve(keyOf(n));

async function withImage(fn: (path: string) => Promise<void>): Promise<void> {
  const { path, dir } = await tempImage();
  try {
    await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function formatted(path: string, key = 7): Promise<void> {
  const sd = await openStateDisk(path, { mapper: false });
  try {
    const r = await sd.unlockOrFormat({ ...cfg, getKey: getter(key), log });
    assert.equal(r.action, "formatted");
    assert.equal(r.mapper, null);
  } finally {
    await sd.close();
  }
}

async function testPassphrase(path: string, key: Uint8Array): Promise<number> {
  return (await run("cryptsetup", ["open", "--test-passphrase", "--key-file", "-", path], key))
    .code;
}

async function head(path: string): Promise<Uint8Array> {
  const f = await Deno.open(path);
  const buf = new Uint8Array(HEADER_PROBE_BYTES);
  let n = 0;
  while (n < buf.length) {
    const r = await f.read(buf.subarray(n));
    if (r === null) break;
    n += r;
  }
  f.close();
  return buf.subarray(0, n);
}

Deno.test("first boot via libcryptsetup: cryptsetup agrees with our header parser", async () => {
  await withImage(async (path) => {
    await formatted(path);
    assert.equal((await run("cryptsetup", ["isLuks", "--type", "luks2", path])).code, 0);
    const dump = (await run("cryptsetup", ["luksDump", path])).stdout;
    const json = JSON.parse(
      (await run("cryptsetup", ["luksDump", "--dump-json-metadata", path])).stdout,
    );
    const h = parseLuks2Header(await head(path));
    assert.deepEqual(JSON.parse(h.active.jsonText), json);
    assert.match(dump, new RegExp(`UUID:\\s+${h.active.binary.uuid}`));
    assert.match(dump, /cipher: aes-xts-plain64/);
    assert.match(dump, /sector: 4096 \[bytes\]/);
    assert.match(dump, /Key:\s+512 bits/);
    assert.match(dump, /PBKDF:\s+pbkdf2/);
    assert.match(dump, /Iterations: 1000/);
    const ks = Object.values(h.active.metadata.keyslots);
    assert.equal(ks.length, 1);
    assert.deepEqual((ks[0].kdf as { type: string; iterations: number }).iterations, 1000);
    assert.equal(h.active.metadata.segments["0"].encryption, "aes-xts-plain64");
    assert.equal(h.active.metadata.segments["0"].sector_size, 4096);
    assert.ok(checkWhitelist(h, { integrity: false, minKeyslots: 1, maxKeyslots: 1 }).ok);
    const tok = await run("cryptsetup", ["token", "export", "--token-id", "0", path]);
    assert.equal(tok.code, 0, tok.stderr);
    assert.deepEqual(JSON.parse(tok.stdout), {
      type: "confidant",
      keyslots: [],
      state: "keyed",
      cluster: "prod-1",
      format_version: 1,
      integrity: false,
    });
    assert.equal(await testPassphrase(path, keyOf(7)), 0);
    assert.notEqual(await testPassphrase(path, keyOf(8)), 0);
  });
});

Deno.test("reboot opens with the KMS key; a wrong key is refused and no byte changes", async () => {
  await withImage(async (path) => {
    await formatted(path);
    const sd = await openStateDisk(path, { mapper: false });
    try {
      const r = await sd.unlockOrFormat({ ...cfg, getKey: getter(7), log });
      assert.equal(r.action, "opened");
      const before = await fileHash(path);
      await assert.rejects(
        sd.unlockOrFormat({ ...cfg, getKey: getter(9), log }),
        (e: unknown) => e instanceof ConfidantError && e.code === "luks.wrong_key",
      );
      assert.equal(await fileHash(path), before);
    } finally {
      await sd.close();
    }
  });
});

Deno.test("rekey: the new key opens (cryptsetup --test-passphrase), the old one does not", async () => {
  await withImage(async (path) => {
    await formatted(path, 1);
    const sd = await openStateDisk(path, { mapper: false });
    try {
      await sd.rekey(cfg, keyOf(1), keyOf(2));
    } finally {
      await sd.close();
    }
    assert.equal(await testPassphrase(path, keyOf(2)), 0);
    assert.notEqual(await testPassphrase(path, keyOf(1)), 0);
    const h = parseLuks2Header(await head(path));
    assert.equal(Object.keys(h.active.metadata.keyslots).length, 1);
    const ks = Object.values(h.active.metadata.keyslots)[0].kdf as Record<string, unknown>;
    assert.equal(ks.type, "pbkdf2");
    assert.equal(ks.iterations, 1000);
  });
});

Deno.test("token set/get through CryptDevice round-trips and replaces in place", async () => {
  await withImage(async (path) => {
    await formatted(path);
    await withCryptDevice(path, async (d) => {
      await d.load();
      const t = JSON.parse(d.tokenGet(0)!);
      assert.equal(t.state, "keyed");
      t.cluster = "prod-9";
      assert.equal(d.tokenSet(0, JSON.stringify(t)), 0);
      assert.equal(d.tokenGet(1), null);
      assert.equal(JSON.parse(d.tokenGet(0)!).cluster, "prod-9");
      assert.ok(d.uuid());
    });
    const tok = await run("cryptsetup", ["token", "export", "--token-id", "0", path]);
    assert.equal(JSON.parse(tok.stdout).cluster, "prod-9");
  });
});

Deno.test("power cut after each step on a real LUKS2 file: the next boot formats or opens", async (t) => {
  for (const step of FORMAT_STEPS) {
    await t.step(`crash after ${step}`, async () => {
      await withImage(async (path) => {
        const sd = await openStateDisk(path, { mapper: false });
        try {
          await assert.rejects(
            sd.unlockOrFormat({ ...cfg, getKey: getter(3), crashAfter: step, log }),
            SimulatedCrash,
          );
          const d = decide(await observeDisk(sd.backend.device, cfg), cfg);
          assert.equal(d.action, step === "token-keyed" ? "open" : "format", JSON.stringify(d));
          await sd.unlockOrFormat({ ...cfg, getKey: getter(3), log });
          const r = await sd.unlockOrFormat({ ...cfg, getKey: getter(3), log });
          assert.equal(r.action, "opened");
        } finally {
          await sd.close();
        }
        assert.equal(await testPassphrase(path, keyOf(3)), 0);
      });
    });
  }
});

/** Rewrite the JSON of both header copies of the image at `path` and reseal their checksums. */
async function rewriteJson(path: string, edit: (m: Record<string, Any>) => void): Promise<void> {
  const bytes = await Deno.readFile(path);
  const h = parseLuks2Header(bytes.subarray(0, HEADER_PROBE_BYTES));
  const meta = JSON.parse(h.active.jsonText);
  edit(meta);
  const text = new TextEncoder().encode(JSON.stringify(meta));
  for (const off of [0, 16384]) {
    const copy = bytes.subarray(off, off + 16384);
    copy.fill(0, 4096);
    copy.set(text, 4096);
    sealHeaderCopy(copy);
  }
  await Deno.writeFile(path, bytes);
}
// deno-lint-ignore no-explicit-any
type Any = any;
const first = (m: Record<string, Any>) => Object.values(m.keyslots)[0] as Any;

Deno.test("the whitelist refuses real headers rewritten with valid checksums", async (t) => {
  const cases: [string, (m: Record<string, Any>) => void, string][] = [
    [
      "cipher",
      (m) => (m.segments["0"].encryption = "aes-cbc-essiv:sha256"),
      "segments.0.encryption",
    ],
    ["sector size", (m) => (m.segments["0"].sector_size = 512), "segments.0.sector_size"],
    ["argon2id", (m) => {
      first(m).kdf = {
        type: "argon2id",
        time: 4,
        memory: 1048576,
        cpus: 4,
        salt: first(m).kdf.salt,
      };
    }, ".kdf.type"],
    ["kdf hash", (m) => (first(m).kdf.hash = "sha1"), ".kdf.hash"],
    ["extra keyslot", (m) => {
      m.keyslots["7"] = structuredClone(first(m));
      m.keyslots["7"].area.offset = String(Number(first(m).area.offset) + 1024 * 1024);
      m.digests["0"].keyslots.push("7");
    }, "keyslots"],
    ["af stripes", (m) => (first(m).af.stripes = 1), ".af.stripes"],
    ["area cipher", (m) => (first(m).area.encryption = "cipher_null-ecb"), ".area.encryption"],
    ["segment offset", (m) => (m.segments["0"].offset = "33554432"), "segments.0.offset"],
    ["segment size", (m) => (m.segments["0"].size = "4096"), "segments.0.size"],
    ["integrity", (m) => {
      m.segments["0"].integrity = {
        type: "hmac(sha256)",
        journal_encryption: "none",
        journal_integrity: "none",
      };
    }, "segments.0.integrity"],
    ["digest hash", (m) => (m.digests["0"].hash = "sha512"), "digests.0.hash"],
    [
      "requirements",
      (m) => (m.config.requirements = { mandatory: ["online-reencrypt"] }),
      "config.requirements",
    ],
  ];
  for (const [name, edit, param] of cases) {
    await t.step(name, async () => {
      await withImage(async (path) => {
        await formatted(path);
        await rewriteJson(path, edit);
        const probe = probeLuks(await head(path));
        assert.equal(probe.kind, "luks2", "the rewritten header must still parse");
        // cryptsetup itself accepts the rewritten header: the checksums really are valid
        if (name !== "requirements") {
          assert.equal((await run("cryptsetup", ["isLuks", path])).code, 0);
        }
        const before = await fileHash(path);
        const sd = await openStateDisk(path, { mapper: false });
        try {
          await assert.rejects(
            sd.unlockOrFormat({ ...cfg, getKey: getter(7), log }),
            (e: unknown) =>
              e instanceof ConfidantError && e.code === "luks.whitelist" &&
              e.message.includes(param),
          );
        } finally {
          await sd.close();
        }
        assert.equal(await fileHash(path), before);
      });
    });
  }
});

Deno.test("a header copy with a bad checksum is refused; with both bad the disk is damaged", async () => {
  await withImage(async (path) => {
    await formatted(path);
    const bytes = await Deno.readFile(path);
    bytes[4096 + 20] ^= 1; // primary JSON byte, checksum not resealed
    await Deno.writeFile(path, bytes);
    const h = parseLuks2Header(bytes.subarray(0, HEADER_PROBE_BYTES));
    assert.equal(h.primary, null);
    assert.match(h.primaryError!, /checksum/);
    assert.ok(h.secondary);
    bytes[16384 + 4096 + 20] ^= 1;
    await Deno.writeFile(path, bytes);
    const p = probeLuks(bytes.subarray(0, HEADER_PROBE_BYTES));
    assert.equal(p.kind, "damaged");
    // the data area was never written on this host (no mkfs), so this counts as an interrupted format
    const sd = await openStateDisk(path, { mapper: false });
    try {
      const s = await sd.status(cfg);
      assert.equal(s.luks, "damaged");
      assert.equal(s.decision?.action, "format");
    } finally {
      await sd.close();
    }
  });
});

Deno.test("format via libcryptsetup writes the UUID asked for (luksDump agrees) and refuses a malformed one", async (t) => {
  await t.step("the requested UUID is the header's", async () => {
    await withImage(async (path) => {
      const uuid = crypto.randomUUID();
      const sd = await openStateDisk(path, { mapper: false });
      try {
        const r = await sd.unlockOrFormat({ ...cfg, uuid, getKey: getter(7), log });
        assert.equal(r.action, "formatted");
        assert.equal(r.uuid, uuid);
      } finally {
        await sd.close();
      }
      const dump = (await run("cryptsetup", ["luksDump", path])).stdout;
      assert.match(dump, new RegExp(`^UUID:\\s+${uuid}$`, "m"));
      assert.equal((await run("cryptsetup", ["luksUUID", path])).stdout.trim(), uuid);
      assert.equal(parseLuks2Header(await head(path)).active.binary.uuid, uuid);
      assert.equal(await testPassphrase(path, keyOf(7)), 0);
    });
  });
  await t.step("a malformed UUID is refused before libcryptsetup runs", async () => {
    await withImage(async (path) => {
      const before = await fileHash(path);
      const sd = await openStateDisk(path, { mapper: false });
      try {
        for (const bad of ["not-a-uuid", "3F2A6C1E-9B7D-4E21-A5C3-0D8E7F6A5B4C", "x".repeat(36)]) {
          await assert.rejects(
            sd.unlockOrFormat({ ...cfg, uuid: bad, getKey: getter(7), log }),
            (e) => e instanceof ConfidantError && e.code === "luks.uuid",
          );
          await assert.rejects(
            sd.backend.format(
              { integrity: false, tokenJson: "{}", passphrase: keyOf(1), uuid: bad },
              () => {},
            ),
            (e) => e instanceof ConfidantError && e.code === "luks.uuid",
          );
        }
      } finally {
        await sd.close();
      }
      assert.equal(await fileHash(path), before);
      assert.notEqual((await run("cryptsetup", ["isLuks", path])).code, 0);
    });
  });
});
