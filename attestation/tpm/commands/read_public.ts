/**
 * Part 3, 12.4 TPM2_ReadPublic.
 *
 * @module
 */
import { defineCommand, struct, tpm2b, tpm2bPublic, TPM_CC, withBytes } from "./_deps.ts";

/** TPM2_ReadPublic: public area and name of a loaded object. */
export const ReadPublic = defineCommand({
  name: "TPM2_ReadPublic",
  code: TPM_CC.ReadPublic,
  handles: [{ name: "objectHandle", auth: false }],
  params: struct({}),
  responseHandle: false,
  response: struct({
    outPublic: withBytes(tpm2bPublic),
    name: tpm2b("TPM2B_NAME", 66),
    qualifiedName: tpm2b("TPM2B_NAME", 66),
  }),
});
