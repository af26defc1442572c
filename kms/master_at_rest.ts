/**
 * The master secret at rest: AES-256-GCM under a key-encryption key (KEK) that comes from a
 * file or the environment and never sits beside the state. The sealed form is a small JSON
 * document, the same in the state directory and in the Kubernetes Secret.
 *
 * @module
 */
import { z } from "zod";
import { concat, fromBase64, fromHex, toBase64, utf8, wipe } from "../lib/bytes.ts";
import { ConfidantError, ParseError } from "../lib/errors.ts";
import {
  checkMasterSecret,
  CLUSTER_ID_RE,
  MASTER_SECRET_BYTES,
  type MasterSecret,
} from "./keys.ts";

/** Environment variable that may carry the KEK (base64 or hex of 32 bytes). */
export const KEK_ENV = "CONFIDANT_KMS_KEK";

/** The sealed master secret document. */
export const sealedMasterSchema = z.object({
  version: z.literal(1),
  kind: z.literal("confidant-kms-master"),
  clusterId: z.string().regex(CLUSTER_ID_RE),
  createdAt: z.string().max(40),
  iv: z.string().max(24),
  ciphertext: z.string().max(200),
}).strict();
/** The sealed master secret document. */
export type SealedMaster = z.infer<typeof sealedMasterSchema>;

function aad(clusterId: string): Uint8Array {
  return utf8(`confidant/v1/master-secret/${clusterId}`);
}

async function importKek(kek: Uint8Array): Promise<CryptoKey> {
  if (kek.length !== 32) throw new ConfidantError("kms.kek", "the KEK must be 32 bytes");
  return await crypto.subtle.importKey("raw", kek as BufferSource, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
}

/** Decode a KEK given as text (base64 or hex of 32 bytes) or as 32 raw bytes. */
export function decodeKek(data: Uint8Array, source: string): Uint8Array {
  if (data.length === 32) return data.slice();
  const text = new TextDecoder().decode(data).trim();
  try {
    const b = /^[0-9a-fA-F]{64}$/.test(text) ? fromHex(text) : fromBase64(text, "kek");
    if (b.length === 32) return b;
  } catch {
    // fall through to the error below
  }
  throw new ConfidantError(
    "kms.kek",
    `the KEK from ${source} must be 32 raw bytes, or their hex or base64`,
  );
}

/** Read the KEK from `file`, or else from the environment; neither is an error saying so. */
export async function loadKek(file?: string): Promise<Uint8Array> {
  if (file) {
    let data: Uint8Array;
    try {
      data = await Deno.readFile(file);
    } catch (e) {
      throw new ConfidantError("kms.kek", `cannot read the KEK file ${file}`, { cause: e });
    }
    try {
      return decodeKek(data, file);
    } finally {
      wipe(data);
    }
  }
  const env = Deno.env.get(KEK_ENV);
  if (env) return decodeKek(utf8(env), `$${KEK_ENV}`);
  throw new ConfidantError(
    "kms.kek",
    `no key-encryption key: give --kek-file FILE or set $${KEK_ENV} (32 bytes, hex or base64)`,
  );
}

/** Seal `m` under `kek`. */
export async function sealMaster(
  m: MasterSecret,
  kek: Uint8Array,
  now = new Date(),
): Promise<SealedMaster> {
  checkMasterSecret(m);
  const key = await importKek(kek);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const pt = concat(m.secret, m.salt);
  try {
    const ct = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv, additionalData: aad(m.clusterId) as BufferSource },
        key,
        pt as BufferSource,
      ),
    );
    return {
      version: 1,
      kind: "confidant-kms-master",
      clusterId: m.clusterId,
      createdAt: now.toISOString(),
      iv: toBase64(iv),
      ciphertext: toBase64(ct),
    };
  } finally {
    wipe(pt);
  }
}

/** Parse a sealed master document (hostile bytes: a ParseError when malformed). */
export function parseSealedMaster(text: string): SealedMaster {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ParseError("kms_master", "the sealed master secret is not JSON", { cause: e });
  }
  const r = sealedMasterSchema.safeParse(json);
  if (!r.success) {
    throw new ParseError(
      "kms_master",
      `the sealed master secret is malformed: ${r.error.issues[0]?.message}`,
    );
  }
  return r.data;
}

/** Open a sealed master secret; a wrong KEK or tampering is `kms.kek_mismatch`. */
export async function openMaster(s: SealedMaster, kek: Uint8Array): Promise<MasterSecret> {
  const key = await importKek(kek);
  let pt: Uint8Array;
  try {
    pt = new Uint8Array(
      await crypto.subtle.decrypt(
        {
          name: "AES-GCM",
          iv: fromBase64(s.iv, "iv") as BufferSource,
          additionalData: aad(s.clusterId) as BufferSource,
        },
        key,
        fromBase64(s.ciphertext, "ciphertext") as BufferSource,
      ),
    );
  } catch (e) {
    throw new ConfidantError(
      "kms.kek_mismatch",
      "the master secret does not decrypt: wrong KEK, or the sealed secret was altered",
      { cause: e },
    );
  }
  if (pt.length !== 2 * MASTER_SECRET_BYTES) {
    wipe(pt);
    throw new ParseError("kms_master", "the master secret has the wrong length");
  }
  const m = { clusterId: s.clusterId, secret: pt.slice(0, 32), salt: pt.slice(32) };
  wipe(pt);
  return m;
}
