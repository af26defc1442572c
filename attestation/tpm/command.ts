/**
 * Command descriptors and their framing (Part 1, 18 "Command/Response Structure"; Part 3, 5):
 * a descriptor names the command, its handles (and which carry authorization), its parameter
 * codec and its response codec; {@link buildCommand} and {@link parseResponse} turn descriptors
 * into bytes and back. Command files only declare descriptors.
 *
 * @module
 */
import { ParseError } from "../../lib/errors.ts";
import { TPM_RH, TPM_ST, TPMA_SESSION } from "./constants.ts";
import { TpmError } from "./errors.ts";
import { type Codec, Reader, Writer } from "./marshal.ts";

/** Largest command or response this client builds or accepts. */
export const MAX_COMMAND_SIZE = 64 * 1024;

/** A handle in the handle area; `auth` handles need one authorization session each. */
export interface HandleSpec {
  /** Spec name of the handle, e.g. `signHandle`. */
  name: string;
  /** Whether the handle carries an authorization (`@` in Part 3 tables). */
  auth: boolean;
}

/** A TPM command: code, handles, parameters and response, all in wire order. */
export interface CommandDescriptor<P, R> {
  /** Spec name, e.g. `TPM2_Quote`. */
  name: string;
  /** TPM_CC. */
  code: number;
  /** Handles of the handle area, in order. */
  handles: readonly HandleSpec[];
  /** Codec of the parameter area. */
  params: Codec<P>;
  /** Whether the response carries a handle (CreatePrimary, StartAuthSession, ...). */
  responseHandle: boolean;
  /** Codec of the response parameter area. */
  response: Codec<R>;
}

/** Declares a command descriptor (identity, for type inference). */
export function defineCommand<P, R>(d: CommandDescriptor<P, R>): CommandDescriptor<P, R> {
  return d;
}

/** Parameter type of a descriptor. */
export type ParamsOf<D> = D extends CommandDescriptor<infer P, unknown> ? P : never;
/** Response type of a descriptor. */
export type ResponseOf<D> = D extends CommandDescriptor<unknown, infer R> ? R : never;

/** One TPMS_AUTH_COMMAND (Part 2, 10.13.2). */
export interface AuthSession {
  /** TPM_RS_PW or a session handle. */
  handle: number;
  /** nonceCaller. */
  nonce: Uint8Array;
  /** TPMA_SESSION bits. */
  attributes: number;
  /** The password (TPM_RS_PW) or HMAC; empty for plain policy sessions. */
  hmac: Uint8Array;
}

/** The password session TPM_RS_PW with the given authValue (empty by default). */
export function passwordSession(password: Uint8Array = new Uint8Array(0)): AuthSession {
  return {
    handle: TPM_RH.PW,
    nonce: new Uint8Array(0),
    attributes: TPMA_SESSION.continueSession,
    hmac: password,
  };
}

/** A policy session without HMAC (its policy does not require the authValue). */
export function policySessionAuth(handle: number): AuthSession {
  return {
    handle,
    nonce: new Uint8Array(0),
    attributes: TPMA_SESSION.continueSession,
    hmac: new Uint8Array(0),
  };
}

/** Encodes a command: header, handles, authorization area (if any) and parameters. */
export function buildCommand<P, R>(
  d: CommandDescriptor<P, R>,
  handles: readonly number[],
  params: P,
  sessions: readonly AuthSession[] = [],
): Uint8Array {
  if (handles.length !== d.handles.length) {
    throw new ParseError("tpm.marshal", `${d.name} takes ${d.handles.length} handles`);
  }
  const authCount = d.handles.filter((h) => h.auth).length;
  if (sessions.length < authCount || sessions.length > 3) {
    throw new ParseError("tpm.marshal", `${d.name} needs ${authCount} authorization sessions`);
  }
  const w = new Writer();
  w.u16(sessions.length ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS).u32(0).u32(d.code);
  for (const h of handles) w.u32(h, "handle");
  if (sessions.length) {
    const aw = new Writer();
    for (const s of sessions) {
      aw.u32(s.handle).tpm2b(s.nonce).u8(s.attributes).tpm2b(s.hmac);
    }
    const area = aw.finish();
    w.u32(area.length).bytes(area);
  }
  d.params.write(w, params);
  if (w.length > MAX_COMMAND_SIZE) throw new ParseError("tpm.marshal", `${d.name} too large`);
  w.patchU32(2, w.length);
  return w.finish();
}

/** A decoded successful response. */
export interface ParsedResponse<R> {
  /** The response handle, when the command returns one. */
  handle?: number;
  /** Decoded response parameters. */
  out: R;
}

/**
 * Decodes a response to `d`: checks the header (tag, size, response code), then the handle,
 * parameter and session areas. A non-zero response code is a {@link TpmError}; malformed bytes
 * are a ParseError with code `parse.tpm.response`.
 */
export function parseResponse<P, R>(
  d: CommandDescriptor<P, R>,
  bytes: Uint8Array,
  sessionCount: number,
): ParsedResponse<R> {
  const r = new Reader(bytes, "tpm.response");
  const ctx = (m: string) => new ParseError("tpm.response", `${d.name} response: ${m}`);
  if (bytes.length < 10) throw ctx(`${bytes.length} bytes is shorter than the 10-byte header`);
  if (bytes.length > MAX_COMMAND_SIZE) throw ctx(`${bytes.length} bytes is too large`);
  const tag = r.u16();
  const size = r.u32();
  const rc = r.u32();
  if (size !== bytes.length) throw ctx(`size field says ${size} but ${bytes.length} bytes came`);
  if (tag !== TPM_ST.NO_SESSIONS && tag !== TPM_ST.SESSIONS && tag !== TPM_ST.RSP_COMMAND) {
    throw ctx(`unexpected tag 0x${tag.toString(16)}`);
  }
  if (rc !== 0) {
    if (size !== 10) throw ctx(`error response 0x${rc.toString(16)} with ${size - 10} extra bytes`);
    throw new TpmError(d.name, rc);
  }
  const expected = sessionCount ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS;
  if (tag !== expected) throw ctx(`tag 0x${tag.toString(16)}, expected 0x${expected.toString(16)}`);
  try {
    const handle = d.responseHandle ? r.u32("handle") : undefined;
    let out: R;
    if (sessionCount) {
      const paramSize = r.u32("parameterSize");
      const pr = r.sub(paramSize, "parameters");
      out = d.response.read(pr);
      pr.end("response parameters");
      for (let i = 0; i < sessionCount; i++) {
        r.tpm2b("nonceTPM", 64);
        r.u8("sessionAttributes");
        r.tpm2b("hmac", 64);
      }
    } else {
      out = d.response.read(r);
    }
    r.end("response");
    return { handle, out };
  } catch (e) {
    if (e instanceof ParseError) throw ctx(e.message.replace(/^tpm\.response: /, ""));
    throw e;
  }
}
