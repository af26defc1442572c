/**
 * Attestation keys: the EK and the AK as primaries in the endorsement hierarchy. Primaries
 * derive from the endorsement primary seed, so the same template yields the same key every
 * boot (until the seed is changed by TPM2_ChangeEPS / a clear).
 *
 * @module
 */
import type { LoadedObject, Tpm } from "./client.ts";
import { EK_CERT_NV_INDEX, TPM_RH } from "./constants.ts";
import {
  AK_TEMPLATE_ECC_P256,
  AK_TEMPLATE_RSA2048,
  EK_TEMPLATE_ECC_P256,
  EK_TEMPLATE_RSA2048,
} from "./structures/templates.ts";

/** Key type of the EK or AK. */
export type KeyKind = "ecc" | "rsa";

/** Loaded EK and AK; call `flush()` when done. */
export interface AttestationKeys {
  /** The endorsement key (default TCG template). */
  ek: LoadedObject;
  /** The attestation key (restricted signing key). */
  ak: LoadedObject;
  /** NV index where the EK certificate of this EK type lives. */
  ekCertIndex: number;
  /** Flushes both handles. */
  flush(): Promise<void>;
}

/**
 * Creates the EK (ECC P-256 by default, RSA 2048 optional) and the AK (ECC P-256 ECDSA/SHA-256
 * by default) as primaries in the endorsement hierarchy. On failure nothing stays loaded.
 */
export async function loadAttestationKeys(
  tpm: Tpm,
  opts: { ek?: KeyKind; ak?: KeyKind; endorsementPassword?: Uint8Array } = {},
): Promise<AttestationKeys> {
  const ekKind = opts.ek ?? "ecc";
  const ekTemplate = ekKind === "ecc" ? EK_TEMPLATE_ECC_P256 : EK_TEMPLATE_RSA2048;
  const akTemplate = (opts.ak ?? "ecc") === "ecc" ? AK_TEMPLATE_ECC_P256 : AK_TEMPLATE_RSA2048;
  const auth = { hierarchyAuth: opts.endorsementPassword };
  const ek = await tpm.createPrimary(TPM_RH.ENDORSEMENT, ekTemplate, auth);
  let ak: LoadedObject;
  try {
    ak = await tpm.createPrimary(TPM_RH.ENDORSEMENT, akTemplate, auth);
  } catch (e) {
    await tpm.flushContext(ek.handle).catch(() => {});
    throw e;
  }
  return {
    ek,
    ak,
    ekCertIndex: ekKind === "ecc" ? EK_CERT_NV_INDEX.ECC_P256 : EK_CERT_NV_INDEX.RSA2048,
    async flush() {
      await tpm.flushContext(ak.handle).catch(() => {});
      await tpm.flushContext(ek.handle).catch(() => {});
    },
  };
}
