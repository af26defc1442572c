/**
 * Byte buffers for FFI. V8 keeps small typed arrays made with `new Uint8Array(n)`
 * (up to 64 bytes) inside its own heap, where the garbage collector may move
 * them. A pointer to such an array handed to a `nonblocking` foreign call (which
 * runs on another thread while JavaScript, and the collector, go on) or stored
 * inside a C struct can then point at moved memory. A typed array over an
 * explicit `ArrayBuffer` always has its bytes outside the V8 heap, at an address
 * that does not change; every buffer that crosses into C is made here.
 *
 * @module
 */

/** `n` zero bytes at a stable address (never inside the V8 heap). */
export function ffiBytes(n: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(new ArrayBuffer(n));
}

/** A copy of `b` at a stable address. */
export function ffiCopy(b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = ffiBytes(b.length);
  out.set(b);
  return out;
}
