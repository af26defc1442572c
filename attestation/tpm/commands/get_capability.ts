/**
 * Part 3, 30.2 TPM2_GetCapability.
 *
 * @module
 */
import { capabilityData, defineCommand, struct, TPM_CC, u32, u8 } from "./_deps.ts";

/** TPM2_GetCapability: TPM properties, PCR banks, handles, ... */
export const GetCapability = defineCommand({
  name: "TPM2_GetCapability",
  code: TPM_CC.GetCapability,
  handles: [],
  params: struct({ capability: u32, property: u32, propertyCount: u32 }),
  responseHandle: false,
  response: struct({ moreData: u8, capabilityData }),
});
