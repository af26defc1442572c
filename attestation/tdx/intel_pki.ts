/**
 * Intel SGX/TDX PKI: the pinned production Intel SGX Root CA and verification
 * of certificate chains that must end at it (PCK chains in quotes, and the
 * issuer chains of TCB info, QE identity and CRLs). Chain checks return named
 * failures instead of throwing, so a verifier can report every broken link.
 *
 * @module
 */
import { fromBase64, toHex } from "../../lib/bytes.ts";
import { X509Certificate } from "../../lib/x509.ts";

/** DER of the production "Intel SGX Root CA" (valid 2018-05-21 to 2049-12-31). */
export const INTEL_SGX_ROOT_CA_DER: Uint8Array = fromBase64(
  "MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIwaDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYTAlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi71OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOBuzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJMEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SVUr9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYIKoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwgAiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=",
);

/** SHA-256 of the DER SubjectPublicKeyInfo of the Intel SGX Root CA. */
export const INTEL_SGX_ROOT_CA_SPKI_SHA256 =
  "a0af031289f5d5d4132f9186068a7fc13628633ba235777472e29b6b6c67a49e";

/** One failed check: a stable dotted name and what was wrong. */
export interface CheckFailure {
  check: string;
  message: string;
}

/** Result of a chain verification: the parsed certificates (leaf first) when they parsed. */
export interface ChainResult {
  certs: X509Certificate[];
  failures: CheckFailure[];
}

/** A short name of a certificate for messages: its CN, or the whole subject. */
export function certName(c: X509Certificate): string {
  const m = /CN=([^,]+)/.exec(c.subject);
  return m ? m[1] : c.subject;
}

function spkiBytes(c: X509Certificate): Uint8Array {
  return new Uint8Array(c.publicKey.rawData);
}

/** SHA-256 hex of a certificate's SubjectPublicKeyInfo. */
export async function spkiSha256(c: X509Certificate): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", spkiBytes(c) as BufferSource)));
}

/** The Web Crypto ECDSA P-256 verification key of a certificate. */
export function p256Key(c: X509Certificate): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "spki",
    spkiBytes(c) as BufferSource,
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["verify"],
  );
}

function isCa(c: X509Certificate): boolean {
  const bc = c.getExtension("2.5.29.19") as { ca?: boolean } | null;
  return bc?.ca === true;
}

/** Parse DER certificates; unparsable ones become a failure named `<prefix>.parse`. */
export function parseCertificates(
  ders: Uint8Array[],
  prefix: string,
): { certs: X509Certificate[]; failures: CheckFailure[] } {
  const certs: X509Certificate[] = [];
  const failures: CheckFailure[] = [];
  ders.forEach((d, i) => {
    try {
      certs.push(new X509Certificate(d as BufferSource));
    } catch (e) {
      failures.push({
        check: `${prefix}.parse`,
        message: `certificate ${i} does not parse: ${e instanceof Error ? e.message : String(e)}`,
      });
    }
  });
  return { certs, failures };
}

/** Where a chain must end and the clock it is checked against. */
export interface ChainOptions {
  /** Verification time for certificate validity periods. */
  now: Date;
  /**
   * Trust anchor, DER. Defaults to {@link INTEL_SGX_ROOT_CA_DER}; only tests
   * built on their own PKI pass another one.
   */
  rootDer?: Uint8Array;
}

/**
 * Verify a chain given leaf first and ending with the root: each certificate is
 * signed by the next, every issuer is a CA, names link, every certificate is
 * valid at `now`, and the last one carries the pinned root's public key and
 * signature. Failures are named `<prefix>.parse|root|issuer|signature|ca|validity`.
 */
export async function verifyChain(
  ders: Uint8Array[],
  prefix: string,
  opts: ChainOptions,
): Promise<ChainResult> {
  const parsed = parseCertificates(ders, prefix);
  const { failures } = parsed;
  if (failures.length > 0) return { certs: [], failures };
  // Some producers list the chain root first; order it leaf first (order carries no trust).
  const certs = parsed.certs.length > 1 && parsed.certs[0].subject === parsed.certs[0].issuer &&
      parsed.certs[parsed.certs.length - 1].subject !== parsed.certs[parsed.certs.length - 1].issuer
    ? [...parsed.certs].reverse()
    : parsed.certs;
  if (certs.length < 2) {
    failures.push({
      check: `${prefix}.structure`,
      message: `chain has ${certs.length} certificate(s); a leaf and the root at least are needed`,
    });
    return { certs, failures };
  }
  const anchor = new X509Certificate((opts.rootDer ?? INTEL_SGX_ROOT_CA_DER) as BufferSource);
  const root = certs[certs.length - 1];
  const rootMatches = toHex(spkiBytes(root)) === toHex(spkiBytes(anchor)) &&
    root.subject === anchor.subject;
  if (!rootMatches) {
    failures.push({
      check: `${prefix}.root`,
      message: `chain ends at "${
        certName(root)
      }", whose key is not the pinned Intel SGX Root CA key`,
    });
  }
  for (let i = 0; i < certs.length; i++) {
    const c = certs[i];
    const issuer = i + 1 < certs.length ? certs[i + 1] : anchor;
    if (c.issuer !== issuer.subject) {
      failures.push({
        check: `${prefix}.issuer`,
        message: `"${
          certName(c)
        }" names issuer "${c.issuer}", but the next certificate is "${issuer.subject}"`,
      });
    }
    let ok = false;
    try {
      ok = await c.verify({ publicKey: issuer, signatureOnly: true });
    } catch {
      ok = false;
    }
    if (!ok) {
      failures.push({
        check: `${prefix}.signature`,
        message: `signature of "${certName(c)}" (certificate ${i}) does not verify with "${
          certName(issuer)
        }"`,
      });
    }
    if (i > 0 && !isCa(c)) {
      failures.push({
        check: `${prefix}.ca`,
        message: `"${certName(c)}" signs a certificate but is not a CA`,
      });
    }
    if (opts.now < c.notBefore || opts.now > c.notAfter) {
      failures.push({
        check: `${prefix}.validity`,
        message: `"${
          certName(c)
        }" is valid ${c.notBefore.toISOString()} to ${c.notAfter.toISOString()}, not at ${opts.now.toISOString()}`,
      });
    }
  }
  return { certs, failures };
}
