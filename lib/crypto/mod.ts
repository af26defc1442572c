/**
 * Fast signature verification for the KMS hot path: ECDSA P-256/P-384 through OpenSSL's
 * libcrypto (FFI), with Web Crypto and node:crypto as fallbacks that give the same verdicts.
 * RSA verification stays with node:crypto / Web Crypto (it is already cheap there).
 *
 * @module
 */
export {
  createEcdsaVerifier,
  type EcdsaBackend,
  type EcdsaCurve,
  type EcdsaHash,
  type EcdsaVerifier,
  type EcdsaVerifierOptions,
  type EcdsaVerifyInput,
  libcryptoAvailable,
  verifyEcdsa,
  verifyEcdsaAsync,
} from "./ecdsa.ts";
