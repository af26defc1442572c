/**
 * Silences Node's deprecation warnings before any npm package loads. A
 * dependency of @kubernetes/client-node requires the deprecated `punycode`
 * module, which would print a warning on every CLI run; such warnings say
 * nothing to an operator. main.ts imports this module first.
 *
 * @module
 */
import process from "node:process";

process.noDeprecation = true;
