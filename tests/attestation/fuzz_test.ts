/**
 * Fuzzing of the attestation parsers and verifier with a seeded PRNG: ≥ 100,000 random and
 * mutated inputs. The only exceptions allowed are ParseError/ConfidantError (and the verifier
 * must not throw at all). Set FUZZ_SEED to replay a run.
 */
import assert from "node:assert/strict";
import { parseDocumentJson } from "../../attestation/document.ts";
import { parsePolicy } from "../../attestation/policy.ts";
import { verifyDocument } from "../../attestation/verify.ts";
import { ekPublicFromCertificate, parseCertificate } from "../../attestation/ek_certificate.ts";
import { ConfidantError } from "../../lib/errors.ts";
import { fromBase64, fromHex, toBase64 } from "../../lib/bytes.ts";

const TD = new URL("../testdata/attestation/", import.meta.url);
const DOC_TEXT = await Deno.readTextFile(new URL("swtpm_ecc_quote.json", TD));
const POLICY = parsePolicy(
  JSON.parse(await Deno.readTextFile(new URL("swtpm_ecc_policy.json", TD))),
);
const CERTS = [
  await Deno.readFile(new URL("swtpm_ek_rsa2048.der", TD)),
  await Deno.readFile(new URL("swtpm_ek_p384.der", TD)),
];
const CA_CHAIN = await Deno.readTextFile(new URL("swtpm_localca_chain.pem", TD));
const NONCE = fromHex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
const USER = new TextEncoder().encode("node-7 public key");

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? Date.now() % 2 ** 31);

/** mulberry32: small, fast, seedable. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
const rnd = prng(SEED);
const int = (n: number) => Math.floor(rnd() * n);

function mutateBytes(src: Uint8Array): Uint8Array {
  let b = src.slice();
  const ops = 1 + int(4);
  for (let k = 0; k < ops; k++) {
    switch (int(6)) {
      case 0: // bit flip
        if (b.length) b[int(b.length)] ^= 1 << int(8);
        break;
      case 1: // random byte
        if (b.length) b[int(b.length)] = int(256);
        break;
      case 2: // truncate
        b = b.slice(0, int(b.length + 1));
        break;
      case 3: { // insert random bytes
        const at = int(b.length + 1);
        const ins = Uint8Array.from({ length: 1 + int(8) }, () => int(256));
        const n = new Uint8Array(b.length + ins.length);
        n.set(b.subarray(0, at));
        n.set(ins, at);
        n.set(b.subarray(at), at + ins.length);
        b = n;
        break;
      }
      case 4: // set a length-looking u16 to something large
        if (b.length > 2) {
          const at = int(b.length - 1);
          b[at] = 0xff;
          b[at + 1] = int(256);
        }
        break;
      default: // duplicate a slice
        if (b.length > 4) {
          const at = int(b.length - 4);
          b.set(b.subarray(at, at + 4), int(b.length - 4));
        }
    }
  }
  return b;
}

function mutateText(s: string): string {
  const chars = [...s];
  const ops = 1 + int(4);
  const alphabet = '{}[]":,0123456789abcdefAZ+/=\\ \n-truefalsenull';
  for (let k = 0; k < ops; k++) {
    const at = int(chars.length + 1);
    switch (int(3)) {
      case 0:
        chars.splice(at, 1);
        break;
      case 1:
        chars.splice(at, 0, alphabet[int(alphabet.length)]);
        break;
      default:
        chars[at] = alphabet[int(alphabet.length)];
    }
  }
  return chars.join("");
}

function allowed(e: unknown): boolean {
  return e instanceof ConfidantError;
}

Deno.test(`fuzz: parsers and verifyDocument survive 100,000+ hostile inputs (seed ${SEED})`, async () => {
  let count = 0;
  const timings: Record<string, number> = {};
  let t0 = performance.now();
  const lap = (name: string) => {
    timings[name] = Math.round(performance.now() - t0);
    t0 = performance.now();
  };
  const base = JSON.parse(DOC_TEXT);
  const fields = ["akPublic", "quote", "signature"] as const;

  // 1. Document JSON text: mutated and random.
  for (let i = 0; i < 74_000; i++) {
    const text = i % 5 === 0
      ? String.fromCharCode(...Array.from({ length: int(200) }, () => 32 + int(95)))
      : mutateText(DOC_TEXT);
    try {
      parseDocumentJson(text);
    } catch (e) {
      if (!allowed(e)) throw new Error(`parseDocumentJson threw ${e} for ${JSON.stringify(text)}`);
    }
    count++;
  }

  lap("documents");
  // 2. verifyDocument on documents with mutated wire structures or fields.
  for (let i = 0; i < 4_000; i++) {
    const d = structuredClone(base);
    const which = int(5);
    if (which < 3) {
      const f = fields[which];
      d.tpm[f] = toBase64(mutateBytes(fromBase64(d.tpm[f])));
    } else if (which === 3) {
      const keys = Object.keys(d.tpm.pcrs.sha256);
      const k = keys[int(keys.length)];
      d.tpm.pcrs.sha256[k] = d.tpm.pcrs.sha256[k].replace(/^./, "f");
      d.tpm.quote = toBase64(mutateBytes(fromBase64(d.tpm.quote)));
    } else {
      d.nonce = toBase64(mutateBytes(fromBase64(d.nonce)));
    }
    const r = await verifyDocument(d, POLICY, { nonce: NONCE, userData: USER });
    // Any actual change to the evidence must be refused.
    if (JSON.stringify(d) !== JSON.stringify(base)) {
      assert.equal(r.ok, false, `mutation accepted (seed ${SEED}): ${JSON.stringify(d)}`);
    }
    count++;
  }

  lap("verify");
  // 2b. EK-CA mode with a mutated EK certificate in the document.
  const ekCaPolicy = parsePolicy({ ak: { ekCaCertificates: [CA_CHAIN] } });
  for (let i = 0; i < 400; i++) {
    const d = structuredClone(base);
    d.tpm.ekCertificate = toBase64(mutateBytes(CERTS[i % CERTS.length]));
    const r = await verifyDocument(d, ekCaPolicy, {
      nonce: NONCE,
      userData: USER,
      now: new Date("2030-01-01T00:00:00Z"),
    });
    assert.equal(r.ok, false);
    count++;
  }
  lap("ek_ca");
  // 3. EK certificate parsing and key extraction.
  for (let i = 0; i < 6_000; i++) {
    const der = mutateBytes(CERTS[i % CERTS.length]);
    try {
      ekPublicFromCertificate(parseCertificate(der));
    } catch (e) {
      if (!allowed(e)) throw new Error(`certificate parsing threw ${e} (seed ${SEED}, i ${i})`);
    }
    count++;
  }

  lap("certificates");
  // 4. Policies: mutated JSON values.
  const policyText = JSON.stringify(POLICY);
  for (let i = 0; i < 15_600; i++) {
    const t = mutateText(policyText);
    try {
      parsePolicy(JSON.parse(t));
    } catch (e) {
      if (!(e instanceof SyntaxError) && !allowed(e)) throw e;
    }
    count++;
  }
  lap("policies");
  assert.ok(count >= 100_000);
  console.log(`fuzz: ${count} inputs, seed ${SEED}, ${JSON.stringify(timings)}`);
});
