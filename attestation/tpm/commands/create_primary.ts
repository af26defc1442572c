/**
 * Part 3, 24.1 TPM2_CreatePrimary.
 *
 * @module
 */
import {
  defineCommand,
  sized,
  struct,
  tpm2b,
  tpm2bPublic,
  TPM_CC,
  tpmlPcrSelection,
  tpmtTicket,
  withBytes,
} from "./_deps.ts";

/** TPM2B_SENSITIVE_CREATE (Part 2, 11.1.16). */
const sensitiveCreate = sized(
  "TPM2B_SENSITIVE_CREATE",
  struct({ userAuth: tpm2b("TPM2B_AUTH", 64), data: tpm2b("TPM2B_SENSITIVE_DATA", 256) }),
);

/** TPM2_CreatePrimary: creates a primary object from a hierarchy's seed and a template. */
export const CreatePrimary = defineCommand({
  name: "TPM2_CreatePrimary",
  code: TPM_CC.CreatePrimary,
  handles: [{ name: "primaryHandle", auth: true }],
  params: struct({
    inSensitive: sensitiveCreate,
    inPublic: tpm2bPublic,
    outsideInfo: tpm2b("TPM2B_DATA", 64),
    creationPCR: tpmlPcrSelection,
  }),
  responseHandle: true,
  response: struct({
    outPublic: withBytes(tpm2bPublic),
    creationData: tpm2b("TPM2B_CREATION_DATA", 4096),
    creationHash: tpm2b("TPM2B_DIGEST", 64),
    creationTicket: tpmtTicket,
    name: tpm2b("TPM2B_NAME", 66),
  }),
});
