/**
 * Shared imports of the structure files (private).
 *
 * @module
 */
export {
  type Codec,
  decode,
  encode,
  list,
  Reader,
  sized,
  struct,
  tpm2b,
  u16,
  u32,
  u64,
  u8,
  unionMember,
  Writer,
} from "../marshal.ts";
export { ParseError } from "../../../lib/errors.ts";
export { TPM_ALG, TPM_ST } from "../constants.ts";
