/**
 * AES in full-block CFB mode (CFB-128, NIST SP800-38A 6.3), the mode TPM 2.0 uses for
 * parameter and credential encryption. Deno's node:crypto has no `aes-*-cfb`, so the mode is
 * built here on single-block AES-ECB: C_i = P_i XOR AES_K(C_{i-1}), C_0 = IV; a final partial
 * block uses the leading bytes of the keystream.
 *
 * @module
 */
import { createCipheriv } from "node:crypto";
import { ConfidantError } from "../../../lib/errors.ts";

function blockCipher(key: Uint8Array) {
  if (key.length !== 16 && key.length !== 24 && key.length !== 32) {
    throw new ConfidantError("tpm.aes", `AES key of ${key.length} bytes`);
  }
  const ecb = createCipheriv(`aes-${key.length * 8}-ecb`, key, null);
  ecb.setAutoPadding(false);
  return (block: Uint8Array) => new Uint8Array(ecb.update(block));
}

function cfb(key: Uint8Array, iv: Uint8Array, input: Uint8Array, decrypt: boolean): Uint8Array {
  if (iv.length !== 16) throw new ConfidantError("tpm.aes", "the CFB IV must be 16 bytes");
  const enc = blockCipher(key);
  const out = new Uint8Array(input.length);
  let feedback = iv.slice();
  for (let off = 0; off < input.length; off += 16) {
    const ks = enc(feedback);
    const n = Math.min(16, input.length - off);
    for (let i = 0; i < n; i++) out[off + i] = input[off + i] ^ ks[i];
    feedback = (decrypt ? input : out).slice(off, off + 16);
  }
  return out;
}

/** AES-CFB-128 encryption of `plaintext` (any length) with a 128/192/256-bit key. */
export function aesCfbEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return cfb(key, iv, plaintext, false);
}

/** AES-CFB-128 decryption of `ciphertext` (any length). */
export function aesCfbDecrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return cfb(key, iv, ciphertext, true);
}
