/**
 * Issuing an attestation document from a TPM: EK (and its certificate from NV when present),
 * AK as a primary in the endorsement hierarchy, a quote over the SHA-256 bank with
 * qualifyingData = qualifyingData(nonce, userData) (attestation/qualifying_data.ts: SHA-256 of the
 * "confidant-attestation-v2" label and the length-framed nonce and userData), and the PCR
 * values of the same selection.
 *
 * PCR reads and the quote are separate commands, so a PCR may be extended in between. The
 * digest is therefore recomputed from the values read; on a mismatch the read+quote is done
 * once more, and a second mismatch is a ConfidantError `attestation.pcr_race`.
 *
 * With `tee` (`"auto"`, `"sev-snp"`, `"tdx"`) the document becomes a `sev-snp`/`tdx` document:
 * after the quote, a TEE report is requested through configfs-tsm over
 * `teeReportData({ nonce, userData, akPublic })` with the same AK bytes the document carries
 * (attestation/tee_issue.ts). `"auto"` adds the section only on an SEV-SNP or TDX guest.
 *
 * @module
 */
import { ConfidantError } from "../lib/errors.ts";
import { bytesEqual, fromBase64, toBase64, toHex } from "../lib/bytes.ts";
import { parseCertificate } from "./ek_certificate.ts";
import type { SnpDocument, TdxDocument, TpmDocument } from "./document.ts";
import { issueTeeSection, resolveTee, type TeeChoice, type TeeIssueOptions } from "./tee_issue.ts";
import { qualifyingData } from "./qualifying_data.ts";
import {
  type KeyKind,
  loadAttestationKeys,
  marshalTpm2bPublic,
  type Tpm,
  TPM_ALG,
  TpmError,
  unmarshalTpm2bPublic,
  unmarshalTpmsAttest,
  unmarshalTpmtSignature,
} from "./tpm/mod.ts";
import { computePcrDigest } from "./tpm/verify/mod.ts";

/**
 * PCRs quoted by default: the measured-boot set that is stable across boots of the same image.
 * 0–7 firmware, its configuration, option ROMs, boot manager, GPT and Secure Boot policy;
 * 8–9 boot loader commands and the kernel/initrd it loaded; 11 the unified kernel image
 * (systemd-stub); 12 the kernel command line and credentials; 14 shim's MOK certificates.
 * Left out: 10 (IMA, grows at run time), 13 (system extensions), 15 (systemd's run-time
 * measurements such as machine-id and volume keys) and 16–23 (debug / application use).
 */
export const DEFAULT_PCRS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14];

/** Options of {@link issueDocument}. */
export interface IssueOptions {
  /** Verifier's nonce (≤ 64 bytes). */
  nonce: Uint8Array;
  /** Data bound to the quote (≤ 1024 bytes; default empty). */
  userData?: Uint8Array;
  /** SHA-256 PCRs to quote (default {@link DEFAULT_PCRS}). */
  pcrs?: readonly number[];
  /** EK algorithm (default "ecc"). */
  ekAlg?: KeyKind;
  /** Endorsement hierarchy password, if one is set. */
  endorsementPassword?: Uint8Array;
  /** TEE evidence to add (default "none": a `tpm` document). */
  tee?: TeeChoice;
  /** How to reach configfs-tsm and what chain/collateral to add (TEE documents only). */
  teeOptions?: TeeIssueOptions;
}

/** Any document {@link issueDocument} produces. */
export type IssuedDocument = TpmDocument | SnpDocument | TdxDocument;

/** Read the EK certificate from NV; absent index → undefined. DER padding is trimmed. */
async function readEkCertificate(tpm: Tpm, index: number): Promise<Uint8Array | undefined> {
  let raw: Uint8Array;
  try {
    raw = await tpm.nvRead(index);
  } catch (e) {
    // TPM_RC_HANDLE (0x18b) and friends: no certificate provisioned at this index.
    if (e instanceof TpmError) return undefined;
    throw e;
  }
  try {
    return new Uint8Array(parseCertificate(raw).rawData);
  } catch (e) {
    throw new ConfidantError(
      "attestation.ek_certificate",
      `the EK certificate in NV 0x${index.toString(16)} cannot be parsed`,
      { cause: e },
    );
  }
}

function validatePcrs(pcrs: readonly number[]): number[] {
  const list = [...new Set(pcrs)].sort((a, b) => a - b);
  if (list.length === 0 || list.some((p) => !Number.isInteger(p) || p < 0 || p > 23)) {
    throw new ConfidantError("attestation.pcrs", "PCR indices must be 0..23 and not empty");
  }
  return list;
}

/**
 * Produce an attestation document with the TPM behind `tpm`: `variant: "tpm"`, or with
 * `opts.tee` a `sev-snp`/`tdx` document (for `"auto"`: when the guest has such a TEE).
 */
export async function issueDocument(
  tpm: Tpm,
  opts: IssueOptions & { tee?: "none" },
): Promise<TpmDocument>;
export async function issueDocument(tpm: Tpm, opts: IssueOptions): Promise<IssuedDocument>;
export async function issueDocument(tpm: Tpm, opts: IssueOptions): Promise<IssuedDocument> {
  // Detect first: a guest whose TEE cannot be reached fails before any TPM work.
  const tee = await resolveTee(opts.tee ?? "none", opts.teeOptions);
  const doc = await issueTpmDocument(tpm, opts);
  if (!tee) return doc;
  const binding = {
    nonce: opts.nonce,
    userData: opts.userData ?? new Uint8Array(0),
    akPublic: fromBase64(doc.tpm.akPublic, "akPublic"),
  };
  if (tee === "sev-snp") {
    return { ...doc, variant: tee, tee: await issueTeeSection(tee, binding, opts.teeOptions) };
  }
  return { ...doc, variant: tee, tee: await issueTeeSection(tee, binding, opts.teeOptions) };
}

async function issueTpmDocument(tpm: Tpm, opts: IssueOptions): Promise<TpmDocument> {
  const userData = opts.userData ?? new Uint8Array(0);
  const qual = qualifyingData(opts.nonce, userData);
  const pcrs = validatePcrs(opts.pcrs ?? DEFAULT_PCRS);
  const selection = [{ hash: TPM_ALG.SHA256, pcrs }];
  const keys = await loadAttestationKeys(tpm, {
    ek: opts.ekAlg ?? "ecc",
    endorsementPassword: opts.endorsementPassword,
  });
  try {
    const ekCertificate = await readEkCertificate(tpm, keys.ekCertIndex);
    const akPublic = marshalTpm2bPublic(keys.ak.public);
    // The TPM2B we publish must carry exactly the TPMT_PUBLIC bytes the TPM returned.
    if (!bytesEqual(unmarshalTpm2bPublic(akPublic).tpmtBytes, keys.ak.tpmtBytes)) {
      throw new ConfidantError("attestation.ak", "AK public area does not round-trip");
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      const values = await tpm.pcrRead(selection);
      const q = await tpm.quote(keys.ak.handle, qual, selection);
      const attest = unmarshalTpmsAttest(q.attest);
      const sig = unmarshalTpmtSignature(q.signature);
      if (attest.attested.kind !== "quote" || sig.sigAlg === TPM_ALG.NULL) {
        throw new ConfidantError("attestation.quote", "the TPM returned no signed quote");
      }
      const digest = computePcrDigest(sig.hash, attest.attested.pcrSelect, values);
      if (!bytesEqual(digest, attest.attested.pcrDigest)) continue; // a PCR changed: retry once
      const bank = values.get(TPM_ALG.SHA256)!;
      const sha256: Record<string, string> = {};
      for (const p of pcrs) sha256[String(p)] = toHex(bank.get(p)!);
      const doc: TpmDocument = {
        version: 1,
        variant: "tpm",
        nonce: toBase64(opts.nonce),
        userData: toBase64(userData),
        tpm: {
          akPublic: toBase64(akPublic),
          quote: toBase64(q.attest),
          signature: toBase64(q.signature),
          pcrs: { sha256 },
        },
      };
      if (ekCertificate) doc.tpm.ekCertificate = toBase64(ekCertificate);
      return doc;
    }
    throw new ConfidantError(
      "attestation.pcr_race",
      "PCRs changed between reading and quoting twice in a row; try again",
    );
  } finally {
    await keys.flush();
  }
}
