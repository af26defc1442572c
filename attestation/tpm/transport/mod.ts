/**
 * TPM transports: Linux device, swtpm TCP, a recorded-bytes fake, and `openTransport(spec)`.
 *
 * @module
 */
export * from "./transport.ts";
export { DeviceTransport } from "./device.ts";
export { type SwtpmOptions, SwtpmTransport } from "./swtpm.ts";
export { FakeTransport, type RecordedExchange } from "./fake.ts";
export { openTransport, parseTransportSpec, type TransportSpec } from "./open.ts";
