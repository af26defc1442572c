/**
 * TPMS_CAPABILITY_DATA (Part 2, 10.10.2): decoded for TPM_CAP_TPM_PROPERTIES and TPM_CAP_PCRS,
 * kept raw for the other capabilities.
 *
 * @module
 */
import { TPM_CAP } from "../constants.ts";
import { type Codec, list, ParseError, type Reader, struct, u32, type Writer } from "./_deps.ts";
import { type TpmlPcrSelection, tpmlPcrSelection } from "./pcr_selection.ts";

/** TPMS_TAGGED_PROPERTY. */
export interface TaggedProperty {
  /** TPM_PT. */
  property: number;
  /** Its value. */
  value: number;
}

/** TPMS_CAPABILITY_DATA by capability. */
export type CapabilityData =
  | { capability: 0x00000006; properties: TaggedProperty[] }
  | { capability: 0x00000005; pcrs: TpmlPcrSelection }
  | { capability: number; raw: Uint8Array };

const tpmlTaggedProperty = list(
  "TPML_TAGGED_TPM_PROPERTY",
  struct({ property: u32, value: u32 }),
  256,
);

/** Codec of TPMS_CAPABILITY_DATA (the raw form takes the remaining bytes). */
export const capabilityData: Codec<CapabilityData> = {
  read(r: Reader): CapabilityData {
    const capability = r.u32("TPMS_CAPABILITY_DATA.capability");
    if (capability === TPM_CAP.TPM_PROPERTIES) {
      return { capability, properties: tpmlTaggedProperty.read(r) };
    }
    if (capability === TPM_CAP.PCRS) return { capability, pcrs: tpmlPcrSelection.read(r) };
    return { capability, raw: r.rest() };
  },
  write(w: Writer, c: CapabilityData): void {
    w.u32(c.capability);
    if ("properties" in c) tpmlTaggedProperty.write(w, c.properties);
    else if ("pcrs" in c) tpmlPcrSelection.write(w, c.pcrs);
    else if ("raw" in c) w.bytes(c.raw);
    else throw new ParseError("tpm.marshal", "capability data without content");
  },
};
