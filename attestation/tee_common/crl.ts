/**
 * A minimal X.509 CRL reader (RFC 5280 §5): the signed bytes, issuer, update times and the
 * revoked serial numbers. Signature checking reuses {@link verifySignedBytes}.
 *
 * @module
 */
import { toHex } from "../../lib/bytes.ts";
import { ParseError } from "../../lib/errors.ts";
import { derChildren, type DerNode, DerTag, expectTag, splitSignedDer } from "./der.ts";
import { derTime, nameCommonName } from "./certificate.ts";

/** The parsed parts of a CRL. */
export interface ParsedCrl {
  der: Uint8Array;
  /** The exact signed bytes (`tbsCertList`). */
  tbs: Uint8Array;
  signatureAlgorithm: DerNode;
  signature: Uint8Array;
  /** DER of the issuer Name. */
  issuerRaw: Uint8Array;
  issuerCn: string;
  thisUpdate: Date;
  nextUpdate?: Date;
  /** Revoked serial numbers, lower-case hex of the INTEGER content octets. */
  revokedSerials: Set<string>;
}

/** Parse a DER CRL; malformed input is a {@link ParseError}. */
export function parseCrl(der: Uint8Array, what = "crl"): ParsedCrl {
  const signed = splitSignedDer(der, what);
  const f = derChildren(signed.tbs, what);
  let i = 0;
  if (f[0]?.tag === DerTag.Integer) i++; // version
  if (f.length < i + 3) throw new ParseError(what, `${what}: tbsCertList has too few fields`);
  expectTag(f[i], DerTag.Sequence, what);
  const issuer = expectTag(f[i + 1], DerTag.Sequence, what);
  const thisUpdate = derTime(f[i + 2], what);
  let k = i + 3;
  let nextUpdate: Date | undefined;
  if (f[k] && (f[k].tag === DerTag.UtcTime || f[k].tag === DerTag.GeneralizedTime)) {
    nextUpdate = derTime(f[k], what);
    k++;
  }
  const revokedSerials = new Set<string>();
  if (f[k]?.tag === DerTag.Sequence) {
    for (const entry of derChildren(f[k], what)) {
      const e = derChildren(expectTag(entry, DerTag.Sequence, what), what);
      if (e.length < 2) throw new ParseError(what, `${what}: malformed revoked entry`);
      revokedSerials.add(toHex(expectTag(e[0], DerTag.Integer, what).contents));
    }
    k++;
  }
  return {
    der,
    tbs: signed.tbs.raw,
    signatureAlgorithm: signed.signatureAlgorithm,
    signature: signed.signature,
    issuerRaw: issuer.raw,
    issuerCn: nameCommonName(issuer, what),
    thisUpdate,
    nextUpdate,
    revokedSerials,
  };
}
