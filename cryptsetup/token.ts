/**
 * The `confidant` LUKS2 token: what the agent knows about the disk, stored in the
 * header's JSON (public, unencrypted; it holds no secret). `state` moves
 * `fresh` -> `keyed`: `fresh` means no data was ever written under a KMS key and the
 * next boot may format the disk again; `keyed` means the only keyslot holds the KMS
 * key and the disk may hold data.
 *
 * @module
 */
import { z } from "zod";
import { ParseError } from "../lib/errors.ts";

/** LUKS2 token type of confidant's token. */
export const TOKEN_TYPE = "confidant";
/** Version of the on-disk layout this code formats and understands. */
export const FORMAT_VERSION = 1;
/** Longest accepted token JSON text. */
export const MAX_TOKEN_JSON = 4096;

/** Cluster ids: DNS-label-like, 1..63 characters. */
export const ClusterId = z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, {
  message: "cluster id must be 1-63 characters of a-z, 0-9 and '-'",
});

/** The token's JSON schema (strict: unknown fields mean a token we do not understand). */
export const ConfidantTokenSchema = z.strictObject({
  type: z.literal(TOKEN_TYPE),
  keyslots: z.array(z.string()).length(0),
  state: z.enum(["fresh", "keyed"]),
  cluster: ClusterId,
  format_version: z.literal(FORMAT_VERSION),
  integrity: z.boolean(),
});

/** The decoded token. */
export type ConfidantToken = z.infer<typeof ConfidantTokenSchema>;

/** The token JSON text for `state` (LUKS2 requires the `keyslots` array). */
export function encodeToken(
  t: Omit<ConfidantToken, "type" | "keyslots" | "format_version">,
): string {
  const full: ConfidantToken = {
    type: TOKEN_TYPE,
    keyslots: [],
    state: t.state,
    cluster: t.cluster,
    format_version: FORMAT_VERSION,
    integrity: t.integrity,
  };
  return JSON.stringify(ConfidantTokenSchema.parse(full));
}

/** Decode a token from JSON text or an already parsed object; anything else is a ParseError. */
export function decodeToken(input: string | unknown): ConfidantToken {
  let v: unknown = input;
  if (typeof input === "string") {
    if (input.length > MAX_TOKEN_JSON) throw new ParseError("token", "token JSON is too long");
    try {
      v = JSON.parse(input);
    } catch {
      throw new ParseError("token", "token is not JSON");
    }
  }
  const r = ConfidantTokenSchema.safeParse(v);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ParseError(
      "token",
      `confidant token not understood: ${i.path.join(".") || "token"}: ${i.message}`,
    );
  }
  return r.data;
}
