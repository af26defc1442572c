/**
 * Object names (Part 1, 16 "Names"): for an object, `nameAlg || H_nameAlg(TPMT_PUBLIC)`.
 *
 * @module
 */
import { concat } from "../../../lib/bytes.ts";
import { hashAlgName } from "../constants.ts";
import { decode, ParseError } from "./_deps.ts";
import { marshalTpmtPublic, type TpmtPublic, tpmtPublic } from "./public.ts";

/**
 * Name of an object: its nameAlg (u16, big-endian) followed by the nameAlg digest of its
 * marshalled TPMT_PUBLIC. Given bytes, they are parsed first (so garbage is a ParseError) and
 * hashed exactly as given.
 */
export async function computeName(pub: TpmtPublic | Uint8Array): Promise<Uint8Array> {
  let bytes: Uint8Array;
  let nameAlg: number;
  if (pub instanceof Uint8Array) {
    nameAlg = decode(tpmtPublic, pub, "tpm.public").nameAlg;
    bytes = pub;
  } else {
    bytes = marshalTpmtPublic(pub);
    nameAlg = pub.nameAlg;
  }
  let alg: string;
  try {
    alg = hashAlgName(nameAlg);
  } catch (e) {
    throw new ParseError("tpm.public", `nameAlg 0x${nameAlg.toString(16)} is not a hash`, {
      cause: e,
    });
  }
  const digest = new Uint8Array(await crypto.subtle.digest(alg, bytes as BufferSource));
  return concat(new Uint8Array([nameAlg >> 8, nameAlg & 0xff]), digest);
}
