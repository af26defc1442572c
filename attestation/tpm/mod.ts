/**
 * The TPM 2.0 layer of confidant: constants, the marshaller, structure codecs, command
 * descriptors and a client over pluggable transports. No tpm2-tools at runtime.
 *
 * @module
 */
export * from "./constants.ts";
export * from "./marshal.ts";
export * from "./structures/mod.ts";
export * from "./errors.ts";
export * from "./command.ts";
export * as commands from "./commands/mod.ts";
export * from "./transport/mod.ts";
export * from "./client.ts";
export * from "./keys.ts";
export * from "./credential_file.ts";
