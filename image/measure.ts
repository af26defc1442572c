/**
 * Predict the PCR values a node reports after booting a unified kernel image
 * (UKI) under UEFI firmware, from the UKI file alone — so the KMS policy can be
 * written before any node boots.
 *
 * - PCR 4 (boot loader code), as OVMF extends it when its boot manager starts
 *   the UKI from a boot option: the EV_EFI_ACTION "Calling EFI Application from
 *   Boot Option", the EV_SEPARATOR (four zero bytes) of PCRs 0–7 at ReadyToBoot,
 *   then the Authenticode hash of each loaded PE image (EV_EFI_BOOT_SERVICES_APPLICATION):
 *   the UKI, then the embedded kernel, which Debian 12's stub starts through the
 *   firmware's LoadImage ({@link Pcr4Options.kernelLoadedAsImage}).
 * - PCR 11 (systemd-stub): for each UKI section the stub knows, in the stub's
 *   order (.linux, .osrel, .cmdline, .initrd, .splash, .dtb), the section name
 *   with its terminating NUL, then the section contents (VirtualSize bytes),
 *   each as one EV_IPL extend.
 *
 * Every value is SHA-256 (the bank the policy uses). Pure functions: bytes in,
 * digests out.
 *
 * @module
 */
import { concat, sha256, utf8 } from "../lib/bytes.ts";
import { ConfidantError } from "../lib/errors.ts";
import { authenticodeSha256, parsePe, sectionData } from "./pe.ts";

/** UKI sections systemd-stub (Debian 12, systemd 252) measures into PCR 11, in its order. */
export const STUB_MEASURED_SECTIONS = [
  ".linux",
  ".osrel",
  ".cmdline",
  ".initrd",
  ".splash",
  ".dtb",
];

/** The EV_EFI_ACTION string the firmware measures before starting a boot option. */
export const CALLING_EFI_APPLICATION = "Calling EFI Application from Boot Option";

/** TPM2_PCR_Extend with SHA-256: new = SHA-256(old || digest). */
export async function extendSha256(pcr: Uint8Array, digest: Uint8Array): Promise<Uint8Array> {
  if (pcr.length !== 32 || digest.length !== 32) {
    throw new ConfidantError("image.measure", "SHA-256 PCR and digest must be 32 bytes");
  }
  return await sha256(concat(pcr, digest));
}

/** One predicted extend: which PCR, the digest, and a human description. */
export interface PredictedEvent {
  pcr: number;
  digest: Uint8Array;
  description: string;
}

/** Options of the PCR 4 prediction. */
export interface Pcr4Options {
  /**
   * The stub starts the embedded kernel through the firmware's LoadImage, so
   * the firmware measures the kernel's Authenticode hash into PCR 4 after the
   * UKI's. True for Debian 12's stub (systemd 252.39-1~deb12u2), as the event
   * log of a booted VM shows; this is the default.
   */
  kernelLoadedAsImage?: boolean;
}

/** The events the firmware extends into PCR 4 when it boots `uki`. */
export async function pcr4Events(
  uki: Uint8Array,
  opts: Pcr4Options = {},
): Promise<PredictedEvent[]> {
  const ev: PredictedEvent[] = [
    {
      pcr: 4,
      digest: await sha256(utf8(CALLING_EFI_APPLICATION)),
      description: `EV_EFI_ACTION "${CALLING_EFI_APPLICATION}"`,
    },
    { pcr: 4, digest: await sha256(new Uint8Array(4)), description: "EV_SEPARATOR" },
    {
      pcr: 4,
      digest: await authenticodeSha256(uki),
      description: "EV_EFI_BOOT_SERVICES_APPLICATION (UKI)",
    },
  ];
  if (opts.kernelLoadedAsImage ?? true) {
    const linux = sectionData(uki, parsePe(uki), ".linux");
    if (!linux) throw new ConfidantError("image.measure", "the UKI has no .linux section");
    ev.push({
      pcr: 4,
      digest: await authenticodeSha256(linux),
      description: "EV_EFI_BOOT_SERVICES_APPLICATION (kernel)",
    });
  }
  return ev;
}

/** The events systemd-stub extends into PCR 11 for `uki`. */
export async function pcr11Events(uki: Uint8Array): Promise<PredictedEvent[]> {
  const pe = parsePe(uki);
  const ev: PredictedEvent[] = [];
  for (const name of STUB_MEASURED_SECTIONS) {
    const data = sectionData(uki, pe, name);
    if (!data) continue;
    ev.push({ pcr: 11, digest: await sha256(utf8(name + "\0")), description: `${name} name` });
    ev.push({ pcr: 11, digest: await sha256(data), description: `${name} contents` });
  }
  if (ev.length === 0) {
    throw new ConfidantError("image.measure", "the image has no UKI sections (not a UKI?)");
  }
  return ev;
}

/** Fold events into a PCR value starting from all zeros. */
export async function replay(events: PredictedEvent[]): Promise<Uint8Array> {
  let pcr: Uint8Array = new Uint8Array(32);
  for (const e of events) pcr = await extendSha256(pcr, e.digest);
  return pcr;
}

/** Predicted PCR values of a UKI. */
export interface UkiMeasurement {
  pcr4: Uint8Array;
  pcr11: Uint8Array;
  events: PredictedEvent[];
}

/** Predict PCR 4 and PCR 11 for booting `uki` (see the module doc for the model). */
export async function measureUki(
  uki: Uint8Array,
  opts: Pcr4Options = {},
): Promise<UkiMeasurement> {
  const e4 = await pcr4Events(uki, opts);
  const e11 = await pcr11Events(uki);
  return { pcr4: await replay(e4), pcr11: await replay(e11), events: [...e4, ...e11] };
}
