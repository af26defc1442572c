/**
 * The two key derivation functions of TPM 2.0 (Part 1, 11.4.10): KDFa, the SP800-108
 * counter-mode KDF with HMAC, and KDFe, the SP800-56A concatenation KDF used with ECDH.
 * Both are pure functions of their inputs.
 *
 * @module
 */
import { createHash, createHmac } from "node:crypto";
import { ConfidantError } from "../../../lib/errors.ts";
import { nodeHashName } from "../verify/_hash.ts";

const MAX_BITS = 1 << 16;

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
}

/** The label as it enters the KDF: its ASCII bytes followed by one zero byte. */
function labelBytes(label: string): Uint8Array {
  const raw = new TextEncoder().encode(label);
  const out = new Uint8Array(raw.length + 1);
  out.set(raw);
  return out;
}

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits <= 0 || bits > MAX_BITS) {
    throw new ConfidantError("tpm.kdf", `KDF output size ${bits} bits is out of range`);
  }
}

/** Keep the leftmost `bits` bits of the generated stream (Part 1, 11.4.10.2). */
function truncate(stream: Uint8Array, bits: number): Uint8Array {
  const out = stream.slice(0, Math.ceil(bits / 8));
  const extra = bits % 8;
  if (extra !== 0) out[0] &= (1 << extra) - 1;
  return out;
}

/**
 * The counter-mode loop both KDFs share: blocks `block(1)`, `block(2)`, ... until `bits`
 * are covered, concatenated and cut to `bits` (Part 1, 11.4.10).
 */
function counterMode(bits: number, block: (counter: number) => Uint8Array): Uint8Array {
  const need = Math.ceil(bits / 8);
  const chunks: Uint8Array[] = [];
  let have = 0;
  for (let i = 1; have < need; i++) {
    const d = new Uint8Array(block(i));
    chunks.push(d);
    have += d.length;
  }
  const stream = new Uint8Array(have);
  let o = 0;
  for (const c of chunks) {
    stream.set(c, o);
    o += c.length;
  }
  return truncate(stream, bits);
}

/**
 * KDFa(hashAlg, key, label, contextU, contextV, bits): HMAC-based counter-mode KDF
 * (Part 1, 11.4.10.2). `label` is given without its terminating zero byte (e.g. "STORAGE");
 * the zero is appended here as the specification requires.
 */
export function kdfa(
  hashAlg: number,
  key: Uint8Array,
  label: string,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number,
): Uint8Array {
  checkBits(bits);
  const name = nodeHashName(hashAlg);
  const lab = labelBytes(label);
  const size = u32(bits);
  return counterMode(
    bits,
    (i) =>
      createHmac(name, key).update(u32(i)).update(lab).update(contextU).update(contextV)
        .update(size).digest(),
  );
}

/**
 * KDFe(hashAlg, Z, label, partyU, partyV, bits): the SP800-56A concatenation KDF
 * (Part 1, 11.4.10.3). `z` is the x-coordinate of the ECDH shared point; `label` is given
 * without its terminating zero byte (e.g. "IDENTITY").
 */
export function kdfe(
  hashAlg: number,
  z: Uint8Array,
  label: string,
  partyU: Uint8Array,
  partyV: Uint8Array,
  bits: number,
): Uint8Array {
  checkBits(bits);
  const name = nodeHashName(hashAlg);
  const lab = labelBytes(label);
  return counterMode(
    bits,
    (i) =>
      createHash(name).update(u32(i)).update(z).update(lab).update(partyU).update(partyV).digest(),
  );
}
