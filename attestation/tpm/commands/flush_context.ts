/**
 * Part 3, 28.4 TPM2_FlushContext.
 *
 * @module
 */
import { defineCommand, empty, struct, TPM_CC, u32 } from "./_deps.ts";

/** TPM2_FlushContext: frees a transient object or session (the handle is a parameter). */
export const FlushContext = defineCommand({
  name: "TPM2_FlushContext",
  code: TPM_CC.FlushContext,
  handles: [],
  params: struct({ flushHandle: u32 }),
  responseHandle: false,
  response: empty,
});
