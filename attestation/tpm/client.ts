/**
 * The TPM 2.0 client: typed commands over a {@link TpmTransport}. Transient handles created
 * here (sessions) are flushed on every path; objects the caller creates are the caller's to
 * flush ({@link withFlush}).
 *
 * @module
 */
import { ConfidantError, ParseError } from "../../lib/errors.ts";
import {
  type AuthSession,
  buildCommand,
  type CommandDescriptor,
  type ParsedResponse,
  parseResponse,
  passwordSession,
  policySessionAuth,
} from "./command.ts";
import {
  ActivateCredential,
  CreatePrimary,
  FlushContext,
  GetCapability,
  GetRandom,
  NV_Read,
  NV_ReadPublic,
  PCR_Extend,
  PCR_Read,
  PolicySecret,
  Quote,
  ReadPublic,
  StartAuthSession,
} from "./commands/mod.ts";
import { TPM_ALG, TPM_CAP, TPM_PT, TPM_RH, TPM_SE } from "./constants.ts";
import { TpmError } from "./errors.ts";
import type { CapabilityData } from "./structures/capability.ts";
import type { TpmtHa } from "./structures/digests.ts";
import { TPMA_NV, type TpmsNvPublic } from "./structures/nv_public.ts";
import type { TpmlPcrSelection } from "./structures/pcr_selection.ts";
import type { TpmtPublic } from "./structures/public.ts";
import type { TpmtAsymScheme } from "./structures/schemes.ts";
import { openTransport } from "./transport/open.ts";
import type { TpmTransport } from "./transport/transport.ts";

/** A loaded object: handle, public area, its exact TPMT_PUBLIC bytes and its name. */
export interface LoadedObject {
  /** Transient handle (flush when done). */
  handle: number;
  /** Decoded public area. */
  public: TpmtPublic;
  /** TPMT_PUBLIC bytes as the TPM returned them. */
  tpmtBytes: Uint8Array;
  /** Name as the TPM computed it. */
  name: Uint8Array;
}

/** PCR values by bank hash algorithm, then PCR index. */
export type PcrValues = Map<number, Map<number, Uint8Array>>;

/** Raw quote outputs. */
export interface QuoteResult {
  /** The TPMS_ATTEST bytes the AK signed (contents of TPM2B_ATTEST). */
  attest: Uint8Array;
  /** The TPMT_SIGNATURE bytes. */
  signature: Uint8Array;
}

/** Response codes after which the same command is sent again (Part 1, "TPM_RC_RETRY"). */
const RETRYABLE = new Set([0x922, /* RETRY */ 0x908, /* YIELDED */ 0x90a /* TESTING */]);
/** How many times a command is resent after a retryable warning. */
const MAX_RETRIES = 8;

/** Default NV read chunk when the TPM does not report TPM_PT_NV_BUFFER_MAX. */
const DEFAULT_NV_CHUNK = 512;

/** A TPM 2.0 client over one transport. */
export class Tpm {
  /** The transport commands go through. */
  readonly transport: TpmTransport;
  #nvChunk: number | undefined;

  constructor(transport: TpmTransport) {
    this.transport = transport;
  }

  /** Opens a client on `/dev/tpmrm0`, `/dev/tpm0` or `swtpm:HOST:PORT`. */
  static open(spec: string, opts: { timeoutMs?: number } = {}): Tpm {
    return new Tpm(openTransport(spec, opts));
  }

  /** Runs one command described by `d` and decodes its response. */
  async run<P, R>(
    d: CommandDescriptor<P, R>,
    handles: readonly number[],
    params: P,
    sessions: readonly AuthSession[] = [],
  ): Promise<ParsedResponse<R>> {
    const cmd = buildCommand(d, handles, params, sessions);
    for (let attempt = 0;; attempt++) {
      const rsp = await this.transport.send(cmd);
      try {
        return parseResponse(d, rsp, sessions.length);
      } catch (e) {
        // TPM_RC_RETRY / YIELDED / TESTING: the TPM asks for the same command again.
        if (e instanceof TpmError && RETRYABLE.has(e.rc) && attempt < MAX_RETRIES) continue;
        throw e;
      }
    }
  }

  /** `n` random bytes from the TPM (several calls when the TPM returns fewer). */
  async getRandom(n: number): Promise<Uint8Array> {
    if (!Number.isInteger(n) || n < 0 || n > 4096) {
      throw new ConfidantError("tpm.argument", "getRandom takes 0..4096 bytes");
    }
    const out = new Uint8Array(n);
    let have = 0;
    while (have < n) {
      const { out: r } = await this.run(GetRandom, [], {
        bytesRequested: Math.min(n - have, 64),
      });
      if (r.randomBytes.length === 0) {
        throw new ConfidantError("tpm.random", "TPM2_GetRandom returned no bytes");
      }
      const take = r.randomBytes.subarray(0, n - have);
      out.set(take, have);
      have += take.length;
    }
    return out;
  }

  /**
   * Reads the selected PCRs, looping because one TPM2_PCR_Read returns at most 8 digests.
   * If another process extends a PCR mid-way (pcrUpdateCounter changes), the read restarts.
   * A PCR the TPM never returns (bank not allocated) is a ConfidantError `tpm.pcr_unavailable`.
   */
  async pcrRead(selection: TpmlPcrSelection): Promise<PcrValues> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const values: PcrValues = new Map();
      let remaining = selection.map((s) => ({ hash: s.hash, pcrs: [...new Set(s.pcrs)] }))
        .filter((s) => s.pcrs.length);
      let counter: number | undefined;
      let restarted = false;
      while (remaining.length) {
        const { out } = await this.run(PCR_Read, [], { pcrSelectionIn: remaining });
        if (counter !== undefined && out.pcrUpdateCounter !== counter) {
          restarted = true;
          break;
        }
        counter = out.pcrUpdateCounter;
        const got: { hash: number; pcr: number }[] = [];
        for (const s of out.pcrSelectionOut) {
          for (const p of s.pcrs) got.push({ hash: s.hash, pcr: p });
        }
        if (got.length !== out.pcrValues.length) {
          throw new ParseError(
            "tpm.response",
            `TPM2_PCR_Read returned ${out.pcrValues.length} digests for ${got.length} PCRs`,
          );
        }
        if (got.length === 0) {
          const missing = remaining.map((s) => `${s.hash.toString(16)}:${s.pcrs.join(",")}`);
          throw new ConfidantError(
            "tpm.pcr_unavailable",
            `TPM returned no values for PCRs ${missing.join(" ")} (bank not allocated?)`,
          );
        }
        got.forEach((g, i) => {
          const wanted = remaining.find((s) => s.hash === g.hash)?.pcrs.includes(g.pcr);
          if (!wanted) {
            throw new ParseError("tpm.response", `TPM2_PCR_Read returned unrequested PCR ${g.pcr}`);
          }
          let bank = values.get(g.hash);
          if (!bank) values.set(g.hash, bank = new Map());
          bank.set(g.pcr, out.pcrValues[i]);
        });
        remaining = remaining
          .map((s) => ({ hash: s.hash, pcrs: s.pcrs.filter((p) => !values.get(s.hash)?.has(p)) }))
          .filter((s) => s.pcrs.length);
      }
      if (!restarted) return values;
    }
    throw new ConfidantError("tpm.pcr_unstable", "PCRs kept changing while being read");
  }

  /** Extends PCR `pcr` with one digest per bank (Part 3, 22.2), authorised by an empty password. */
  async pcrExtend(pcr: number, digests: TpmtHa[]): Promise<void> {
    if (!Number.isInteger(pcr) || pcr < 0 || pcr > 31) {
      throw new ConfidantError("tpm.argument", `PCR ${pcr} out of range`);
    }
    await this.run(PCR_Extend, [pcr], { digests }, [passwordSession()]);
  }

  /**
   * Creates a primary object under `hierarchy` (e.g. TPM_RH.ENDORSEMENT) from `template`.
   * The returned handle is transient: flush it ({@link withFlush}).
   */
  async createPrimary(
    hierarchy: number,
    template: TpmtPublic,
    opts: { hierarchyAuth?: Uint8Array; userAuth?: Uint8Array } = {},
  ): Promise<LoadedObject> {
    const { handle, out } = await this.run(
      CreatePrimary,
      [hierarchy],
      {
        inSensitive: { userAuth: opts.userAuth ?? new Uint8Array(0), data: new Uint8Array(0) },
        inPublic: template,
        outsideInfo: new Uint8Array(0),
        creationPCR: [],
      },
      [passwordSession(opts.hierarchyAuth)],
    );
    return {
      handle: handle!,
      public: out.outPublic.value,
      tpmtBytes: out.outPublic.bytes.slice(2),
      name: out.name,
    };
  }

  /** Public area and names of a loaded object. */
  async readPublic(
    handle: number,
  ): Promise<
    { public: TpmtPublic; tpmtBytes: Uint8Array; name: Uint8Array; qualifiedName: Uint8Array }
  > {
    const { out } = await this.run(ReadPublic, [handle], {});
    return {
      public: out.outPublic.value,
      tpmtBytes: out.outPublic.bytes.slice(2),
      name: out.name,
      qualifiedName: out.qualifiedName,
    };
  }

  /** Public area and name of an NV index. */
  async nvReadPublic(index: number): Promise<{ nvPublic: TpmsNvPublic; name: Uint8Array }> {
    const { out } = await this.run(NV_ReadPublic, [index], {});
    return { nvPublic: out.nvPublic, name: out.nvName };
  }

  /** TPM_PT_NV_BUFFER_MAX (cached), or a conservative default. */
  async nvBufferMax(): Promise<number> {
    if (this.#nvChunk === undefined) {
      const v = await this.getProperty(TPM_PT.NV_BUFFER_MAX);
      this.#nvChunk = v && v > 0 ? Math.min(v, 4096) : DEFAULT_NV_CHUNK;
    }
    return this.#nvChunk;
  }

  /**
   * Reads a whole NV index (e.g. an EK certificate), in chunks of the TPM's NV buffer size.
   * Authorisation: `authHandle` if given, else the owner when the index allows OWNERREAD, else
   * the index itself (AUTHREAD), each with a password session (`password`, empty by default).
   */
  async nvRead(
    index: number,
    opts: { authHandle?: number; password?: Uint8Array } = {},
  ): Promise<Uint8Array> {
    const { nvPublic } = await this.nvReadPublic(index);
    if (nvPublic.nvIndex !== index) {
      throw new ParseError("tpm.response", "TPM2_NV_ReadPublic answered for another index");
    }
    let auth = opts.authHandle;
    if (auth === undefined) {
      if (nvPublic.attributes & TPMA_NV.OWNERREAD) auth = TPM_RH.OWNER;
      else if (nvPublic.attributes & TPMA_NV.AUTHREAD) auth = index;
      else {
        throw new ConfidantError(
          "tpm.nv_auth",
          `NV index 0x${index.toString(16)} is readable neither by owner nor by its auth value`,
        );
      }
    }
    const chunk = await this.nvBufferMax();
    const out = new Uint8Array(nvPublic.dataSize);
    for (let off = 0; off < out.length;) {
      const size = Math.min(chunk, out.length - off);
      const { out: r } = await this.run(NV_Read, [auth, index], { size, offset: off }, [
        passwordSession(opts.password),
      ]);
      if (r.data.length !== size) {
        throw new ParseError("tpm.response", `TPM2_NV_Read returned ${r.data.length} of ${size}`);
      }
      out.set(r.data, off);
      off += size;
    }
    return out;
  }

  /**
   * Quotes `pcrSelection` with the AK at `akHandle` over `qualifyingData` (≤ 64 bytes), using the
   * key's own signing scheme unless `scheme` is given. Returns the raw TPMS_ATTEST and
   * TPMT_SIGNATURE bytes.
   */
  async quote(
    akHandle: number,
    qualifyingData: Uint8Array,
    pcrSelection: TpmlPcrSelection,
    opts: { scheme?: TpmtAsymScheme; password?: Uint8Array } = {},
  ): Promise<QuoteResult> {
    const { out } = await this.run(
      Quote,
      [akHandle],
      {
        qualifyingData,
        inScheme: opts.scheme ?? { scheme: TPM_ALG.NULL },
        PCRselect: pcrSelection,
      },
      [passwordSession(opts.password)],
    );
    return { attest: out.quoted, signature: out.signature.bytes };
  }

  /** Starts an unsalted, unbound policy session (caller nonce from the TPM's RNG). */
  async startPolicySession(authHash: number = TPM_ALG.SHA256): Promise<number> {
    const nonceCaller = await this.getRandom(16);
    const { handle } = await this.run(StartAuthSession, [TPM_RH.NULL, TPM_RH.NULL], {
      nonceCaller,
      encryptedSalt: new Uint8Array(0),
      sessionType: TPM_SE.POLICY,
      symmetric: { algorithm: TPM_ALG.NULL },
      authHash,
    });
    return handle!;
  }

  /** PolicySecret(authHandle) on a policy session, with a password session for `authHandle`. */
  async policySecret(
    authHandle: number,
    policySession: number,
    password: Uint8Array = new Uint8Array(0),
  ): Promise<void> {
    await this.run(PolicySecret, [authHandle, policySession], {
      nonceTPM: new Uint8Array(0),
      cpHashA: new Uint8Array(0),
      policyRef: new Uint8Array(0),
      expiration: 0,
    }, [passwordSession(password)]);
  }

  /**
   * ActivateCredential with the AK (`akHandle`, password auth) and the EK (`ekHandle`, whose
   * default policy is PolicySecret(TPM_RH_ENDORSEMENT)). `credentialBlob` and `encryptedSecret`
   * are the contents of the TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET. Returns the secret.
   * The policy session is flushed on every path.
   */
  async activateCredential(
    akHandle: number,
    ekHandle: number,
    credentialBlob: Uint8Array,
    encryptedSecret: Uint8Array,
    opts: { akPassword?: Uint8Array; endorsementPassword?: Uint8Array } = {},
  ): Promise<Uint8Array> {
    const session = await this.startPolicySession(TPM_ALG.SHA256);
    try {
      await this.policySecret(TPM_RH.ENDORSEMENT, session, opts.endorsementPassword);
      const { out } = await this.run(
        ActivateCredential,
        [akHandle, ekHandle],
        { credentialBlob, secret: encryptedSecret },
        [passwordSession(opts.akPassword), policySessionAuth(session)],
      );
      return out.certInfo;
    } finally {
      await this.flushContext(session).catch(() => {});
    }
  }

  /** Frees a transient object or session. */
  async flushContext(handle: number): Promise<void> {
    await this.run(FlushContext, [], { flushHandle: handle });
  }

  /** TPM2_GetCapability. */
  async getCapability(
    capability: number,
    property: number,
    propertyCount: number,
  ): Promise<{ moreData: boolean; data: CapabilityData }> {
    const { out } = await this.run(GetCapability, [], { capability, property, propertyCount });
    return { moreData: out.moreData !== 0, data: out.capabilityData };
  }

  /** One TPM_PT property value, or undefined if the TPM does not report it. */
  async getProperty(pt: number): Promise<number | undefined> {
    const { data } = await this.getCapability(TPM_CAP.TPM_PROPERTIES, pt, 1);
    if (!("properties" in data)) return undefined;
    return data.properties.find((p) => p.property === pt)?.value;
  }

  /** Closes the transport. */
  close(): Promise<void> {
    return this.transport.close();
  }
}

/** Runs `f(handle)` and flushes `handle` afterwards, on success and on failure. */
export async function withFlush<T>(
  tpm: Tpm,
  handle: number,
  f: (handle: number) => Promise<T>,
): Promise<T> {
  try {
    return await f(handle);
  } finally {
    await tpm.flushContext(handle).catch(() => {});
  }
}
