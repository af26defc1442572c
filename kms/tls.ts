/**
 * The KMS's TLS identity when no certificate is given: a self-signed ECDSA P-256 certificate
 * made once and kept in the state directory (`tls.json`: the certificate PEM and the PKCS#8
 * private key sealed with AES-256-GCM under the KEK, so no private key sits on disk in the
 * clear). Nodes pin it by its SHA-256 fingerprint.
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import { atomicWriteFile } from "../lib/atomic_write.ts";
import { fromBase64, toBase64, toHex, utf8, wipe } from "../lib/bytes.ts";
import { ConfidantError } from "../lib/errors.ts";
import * as x509 from "../lib/x509.ts";

/** A certificate and key for Deno.serve. */
export interface TlsIdentity {
  certPem: string;
  keyPem: string;
  /** SHA-256 of the certificate DER, lower-case hex. */
  fingerprint: string;
}

const fileSchema = z.strictObject({
  version: z.literal(1),
  certificate: z.string().max(16 * 1024),
  iv: z.string().max(24),
  sealedKey: z.string().max(4096),
});

function pem(label: string, der: Uint8Array): string {
  const b = toBase64(der).replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b}\n-----END ${label}-----\n`;
}

/** SHA-256 fingerprint (lower hex) of the first certificate in `certPem`. */
export async function certificateFingerprint(certPem: string): Promise<string> {
  const c = new x509.X509Certificate(certPem);
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", c.rawData)));
}

/** Make a self-signed ECDSA P-256 certificate for `names` (DNS names and IP addresses). */
export async function makeSelfSigned(
  names: string[],
  now = new Date(),
): Promise<{ certPem: string; pkcs8: Uint8Array }> {
  const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: toHex(crypto.getRandomValues(new Uint8Array(16))).replace(/^[89a-f]/, "1"),
    name: "CN=confidant-kms",
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + 10 * 365 * 86_400_000),
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        names.map((n) =>
          /^[\d.]+$|:/.test(n)
            ? { type: "ip" as const, value: n }
            : { type: "dns" as const, value: n }
        ),
      ),
    ],
  });
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { certPem: cert.toString("pem") + "\n", pkcs8 };
}

async function kekKey(kek: Uint8Array): Promise<CryptoKey> {
  return await crypto.subtle.importKey("raw", kek as BufferSource, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
}

const AAD = utf8("confidant/v1/kms-tls-key");

/** Load the state directory's TLS identity, making it on first use. */
export async function loadOrCreateTlsIdentity(
  stateDir: string,
  kek: Uint8Array,
  names: string[],
): Promise<TlsIdentity> {
  const path = join(stateDir, "tls.json");
  const key = await kekKey(kek);
  let text: string | undefined;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (text === undefined) {
    const { certPem, pkcs8 } = await makeSelfSigned(names);
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv, additionalData: AAD as BufferSource },
        key,
        pkcs8 as BufferSource,
      ),
    );
    wipe(pkcs8);
    text = JSON.stringify({
      version: 1,
      certificate: certPem,
      iv: toBase64(iv),
      sealedKey: toBase64(ct),
    });
    await atomicWriteFile(path, text + "\n", { mode: 0o600 });
  }
  let f: z.infer<typeof fileSchema>;
  try {
    f = fileSchema.parse(JSON.parse(text));
  } catch (e) {
    throw new ConfidantError("kms.tls", `${path} is malformed`, { cause: e });
  }
  let pkcs8: Uint8Array;
  try {
    pkcs8 = new Uint8Array(
      await crypto.subtle.decrypt(
        {
          name: "AES-GCM",
          iv: fromBase64(f.iv) as BufferSource,
          additionalData: AAD as BufferSource,
        },
        key,
        fromBase64(f.sealedKey) as BufferSource,
      ),
    );
  } catch (e) {
    throw new ConfidantError("kms.kek_mismatch", "the TLS key does not decrypt with this KEK", {
      cause: e,
    });
  }
  const keyPem = pem("PRIVATE KEY", pkcs8);
  wipe(pkcs8);
  return {
    certPem: f.certificate,
    keyPem,
    fingerprint: await certificateFingerprint(f.certificate),
  };
}
