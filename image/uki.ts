/**
 * Assemble a unified kernel image (UKI): systemd-stub (Debian 12's
 * systemd-boot-efi `linuxx64.efi.stub`) with the kernel, initrd, command line
 * and os-release added as PE sections by objcopy. Section addresses are computed
 * from the stub's own layout (after its last section, aligned to its
 * SectionAlignment), so a bigger kernel or initrd never overlaps.
 *
 * @module
 */
import { join } from "node:path";
import { ConfidantError } from "../lib/errors.ts";
import { parsePe, setPeTimestamp } from "./pe.ts";

/** Default location of the stub on Debian 12 (package systemd-boot-efi). */
export const DEBIAN_STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

/** Inputs of {@link buildUki}. */
export interface UkiInputs {
  /** Path of the systemd-stub PE image. */
  stub: string;
  /** Path of the kernel (bzImage). */
  linux: string;
  /** Path of the initrd (cpio, possibly compressed). */
  initrd: string;
  /** Kernel command line (measured into PCR 11 with the rest). */
  cmdline: string;
  /** os-release text for the .osrel section. */
  osrel: string;
  /** COFF TimeDateStamp of the result (default 0), instead of the build time. */
  timestamp?: number;
}

/** Align `n` up to a multiple of `a`. */
function alignUp(n: bigint, a: bigint): bigint {
  return (n + a - 1n) / a * a;
}

/**
 * Plan the section VMAs for objcopy (pure): each new section starts after the
 * previous one, aligned to `alignment`, beginning after the stub's last section.
 */
export function planSections(
  stubEnd: bigint,
  alignment: bigint,
  sizes: { name: string; size: number }[],
): { name: string; vma: bigint }[] {
  if (alignment <= 0n) throw new ConfidantError("image.uki", "bad section alignment");
  let at = alignUp(stubEnd, alignment);
  return sizes.map((s) => {
    const vma = at;
    at = alignUp(at + BigInt(s.size), alignment);
    return { name: s.name, vma };
  });
}

/**
 * Build the UKI at `out` with objcopy. Deterministic: the same inputs give the
 * same bytes (objcopy's build-time TimeDateStamp is replaced by a fixed one and
 * the PE checksum recomputed).
 */
export async function buildUki(inputs: UkiInputs, out: string, workDir: string): Promise<void> {
  const stub = await Deno.readFile(inputs.stub);
  const pe = parsePe(stub);
  if (pe.magic !== 0x20b) throw new ConfidantError("image.uki", "stub is not a PE32+ image");
  let end = 0n;
  for (const s of pe.sections) {
    const e = BigInt(s.virtualAddress) + BigInt(Math.max(s.virtualSize, s.sizeOfRawData));
    if (e > end) end = e;
  }
  const cmdlinePath = join(workDir, "cmdline.txt");
  const osrelPath = join(workDir, "os-release");
  await Deno.writeTextFile(cmdlinePath, inputs.cmdline);
  await Deno.writeTextFile(osrelPath, inputs.osrel);
  const files = [
    { name: ".osrel", path: osrelPath },
    { name: ".cmdline", path: cmdlinePath },
    { name: ".linux", path: inputs.linux },
    { name: ".initrd", path: inputs.initrd },
  ];
  const sizes = [];
  for (const f of files) sizes.push({ name: f.name, size: (await Deno.stat(f.path)).size });
  // page alignment at least: the stub and the kernel's EFI entry expect page-aligned payloads
  const plan = planSections(end, BigInt(Math.max(pe.sectionAlignment, 0x1000)), sizes);
  const args: string[] = [];
  files.forEach((f, i) => {
    const vma = pe.imageBase + plan[i].vma;
    args.push(
      "--add-section",
      `${f.name}=${f.path}`,
      "--change-section-vma",
      `${f.name}=0x${vma.toString(16)}`,
    );
  });
  const tmp = `${out}.${crypto.randomUUID()}.tmp`;
  const r = await new Deno.Command("objcopy", {
    args: [...args, inputs.stub, tmp],
    stdout: "piped",
    stderr: "piped",
  }).output().catch((e) => {
    throw new ConfidantError("image.tool", `cannot run objcopy (install binutils): ${e}`);
  });
  if (!r.success) {
    await Deno.remove(tmp).catch(() => {});
    throw new ConfidantError("image.uki", `objcopy failed: ${new TextDecoder().decode(r.stderr)}`);
  }
  // objcopy stamps the build time into the COFF header: pin it (and the checksum)
  const bytes = await Deno.readFile(tmp);
  setPeTimestamp(bytes, inputs.timestamp ?? 0);
  // the result must parse and carry every section we added
  const uki = parsePe(bytes);
  for (const f of files) {
    if (!uki.sections.some((s) => s.name === f.name)) {
      throw new ConfidantError("image.uki", `objcopy output lacks ${f.name}`);
    }
  }
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, out);
}
