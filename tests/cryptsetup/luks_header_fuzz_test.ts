import assert from "node:assert/strict";
import { probeLuks, sealHeaderCopy } from "../../cryptsetup/luks_header.ts";
import { checkWhitelist } from "../../cryptsetup/whitelist.ts";
import { decodeToken } from "../../cryptsetup/token.ts";
import { withCryptDevice } from "../../cryptsetup/crypt_device.ts";
import { ConfidantError } from "../../lib/errors.ts";
import { tempImage } from "./_tools.ts";

const ITERATIONS = 100_000;
const HDR = 16384;

/** xorshift32: deterministic mutations. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return {
    next,
    int: (n: number) => next() % n,
    pick: <T>(a: readonly T[]) => a[next() % a.length],
  };
}

async function realHeader(): Promise<Uint8Array> {
  const { path, dir } = await tempImage();
  try {
    await withCryptDevice(path, async (d) => {
      await d.formatLuks2({ integrity: false });
      d.tokenSet(
        -1,
        '{"type":"confidant","keyslots":[],"state":"fresh","cluster":"c","format_version":1,"integrity":false}',
      );
      await d.addKeyslotAfterFormat(new Uint8Array(32).fill(1));
    });
    return (await Deno.readFile(path)).slice(0, 2 * HDR);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const WEIRD: readonly unknown[] = [
  null,
  true,
  -1,
  0,
  1.5,
  2 ** 64,
  "",
  "dynamic",
  "18446744073709551615",
  "99999999999999999999",
  "-1",
  "0x10",
  [],
  [1],
  {},
  { type: "x" },
  "a".repeat(5000),
];

const weird = (r: ReturnType<typeof rng>) => structuredClone(r.pick(WEIRD));

function deep(n: number): unknown {
  let v: unknown = 0;
  for (let i = 0; i < n; i++) v = [v];
  return v;
}

function mutateJson(r: ReturnType<typeof rng>, meta: Record<string, unknown>): void {
  // walk to a random object and change, delete or add a key
  let node: Record<string, unknown> = meta;
  for (let depth = 0; depth < 4; depth++) {
    const keys = Object.keys(node);
    if (!keys.length) break;
    const k = r.pick(keys);
    const child = node[k];
    if (typeof child === "object" && child !== null && !Array.isArray(child) && r.int(3) > 0) {
      node = child as Record<string, unknown>;
    } else break;
  }
  const keys = Object.keys(node);
  switch (r.int(5)) {
    case 0:
      if (keys.length) delete node[r.pick(keys)];
      break;
    case 1:
      node[String(r.int(40))] = weird(r);
      break;
    case 2:
      node[r.pick(["type", "offset", "size", "keyslots", "segments", "json_size", "kdf", "area"])] =
        r
          .pick(WEIRD);
      break;
    case 3:
      if (keys.length) node[r.pick(keys)] = deep(1 + r.int(500));
      break;
    default:
      if (keys.length) node[r.pick(keys)] = weird(r);
  }
}

function writeJson(copy: Uint8Array, text: string): void {
  copy.fill(0, 4096);
  const b = new TextEncoder().encode(text);
  copy.set(b.subarray(0, copy.length - 4096), 4096);
}

Deno.test(`header parser survives ${ITERATIONS} mutated headers with only ParseError/ConfidantError`, async () => {
  const base = await realHeader();
  const baseJson = JSON.parse(
    new TextDecoder().decode(base.subarray(4096, base.indexOf(0, 4096))),
  ) as Record<string, unknown>;
  const r = rng(0xc0ffee);
  const kinds = new Map<string, number>();
  const started = performance.now();
  for (let i = 0; i < ITERATIONS; i++) {
    let buf = base.slice();
    const which = r.int(2) * HDR; // mutate the primary or the secondary copy
    const copy = buf.subarray(which, which + HDR);
    const v = new DataView(copy.buffer, copy.byteOffset, copy.byteLength);
    const mode = r.int(7);
    switch (mode) {
      case 0: // raw bit flips, no reseal
        for (let n = 1 + r.int(8); n > 0; n--) copy[r.int(HDR)] ^= 1 << r.int(8);
        break;
      case 1: // bit flips in the binary header, resealed
        for (let n = 1 + r.int(4); n > 0; n--) {
          const off = r.int(448);
          copy[off] ^= 1 << r.int(8);
        }
        sealHeaderCopy(copy);
        break;
      case 2: // bit flips in the JSON text, resealed
        for (let n = 1 + r.int(4); n > 0; n--) copy[4096 + r.int(2500)] ^= 1 << r.int(8);
        sealHeaderCopy(copy);
        break;
      case 3: { // structured JSON mutation, resealed
        const meta = structuredClone(baseJson);
        for (let n = 1 + r.int(3); n > 0; n--) mutateJson(r, meta);
        writeJson(copy, JSON.stringify(meta));
        sealHeaderCopy(copy);
        break;
      }
      case 4: // size / offset / seqid lies, resealed
        if (r.int(2)) {
          v.setBigUint64(8, BigInt(r.pick([0, 4096, 8192, 16384, 32768, 4 << 20, 2 ** 40])), false);
        }
        if (r.int(2)) v.setBigUint64(256, BigInt(r.pick([0, 16384, 32768, 2 ** 53, 1])), false);
        if (r.int(2)) v.setBigUint64(16, BigInt(r.int(1000)), false);
        if (r.int(2)) v.setUint16(6, r.int(4), false);
        if (r.int(2)) {
          copy.set(new TextEncoder().encode(r.pick(["sha1", "sha512", "crc32c"]) + "\0"), 72);
        }
        sealHeaderCopy(copy);
        break;
      case 5: // truncation
        buf = buf.slice(0, r.int(2 * HDR));
        break;
      default: { // JSON without NUL / non-UTF-8 / garbage, resealed
        const g = r.int(3);
        if (g === 0) copy.fill(0x7b, 4096);
        else if (g === 1) copy[4096 + r.int(100)] = 0xff;
        else writeJson(copy, "[".repeat(r.int(12000)));
        sealHeaderCopy(copy);
      }
    }
    try {
      const p = probeLuks(buf);
      kinds.set(p.kind, (kinds.get(p.kind) ?? 0) + 1);
      if (p.kind === "luks2") {
        checkWhitelist(p.header, { integrity: false, minKeyslots: 1, maxKeyslots: 1 });
        for (const t of Object.values(p.header.active.metadata.tokens)) {
          try {
            decodeToken(t);
          } catch (e) {
            if (!(e instanceof ConfidantError)) throw e;
          }
        }
      }
    } catch (e) {
      if (e instanceof ConfidantError) continue;
      throw new Error(`iteration ${i} (mode ${mode}) crashed: ${e}`, { cause: e });
    }
  }
  const secs = (performance.now() - started) / 1000;
  console.log(`fuzz: ${ITERATIONS} headers in ${secs.toFixed(1)} s`, Object.fromEntries(kinds));
  // both outcomes occur: the fuzzer reaches the JSON checks, not only the checksum
  assert.ok((kinds.get("luks2") ?? 0) > 1000);
  assert.ok((kinds.get("damaged") ?? 0) > 1000);
});
