/**
 * The one import point for @peculiar/x509. The library resolves its algorithm
 * providers through tsyringe, which needs the Reflect metadata polyfill loaded
 * before it; every module that parses certificates imports from here.
 *
 * @module
 */
import "reflect-metadata";
export * from "@peculiar/x509";
