/**
 * TPM 2.0 command descriptors, one per file, named after the spec (Part 3).
 *
 * @module
 */
export { ActivateCredential } from "./activate_credential.ts";
export { CreatePrimary } from "./create_primary.ts";
export { FlushContext } from "./flush_context.ts";
export { GetCapability } from "./get_capability.ts";
export { GetRandom } from "./get_random.ts";
export { NV_Read } from "./nv_read.ts";
export { NV_ReadPublic } from "./nv_read_public.ts";
export { PCR_Extend } from "./pcr_extend.ts";
export { PCR_Read } from "./pcr_read.ts";
export { PolicySecret } from "./policy_secret.ts";
export { Quote } from "./quote.ts";
export { ReadPublic } from "./read_public.ts";
export { StartAuthSession } from "./start_auth_session.ts";
