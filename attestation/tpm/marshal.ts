/**
 * The one TPM marshaller: a bounds-checked {@link Reader} and a {@link Writer} for the TPM 2.0
 * canonical big-endian encoding (Part 1, 18 "Command/Response Structure"; Part 2, 4 "Base Types"),
 * and small composable {@link Codec}s (`u8`, `u16`, `u32`, `u64`, `tpm2b`, `sized`, `list`,
 * `struct`) from which structures and command descriptors are built.
 *
 * Every read is bounds-checked: a short or inconsistent input is a {@link ParseError}, never a
 * RangeError.
 *
 * @module
 */
import { ParseError } from "../../lib/errors.ts";

/** Upper bound for any TPM2B this module reads or writes (the size field is a u16). */
export const MAX_TPM2B = 0xffff;

/** Sequential big-endian reader over a byte array; every read is bounds-checked. */
export class Reader {
  #buf: Uint8Array;
  #view: DataView;
  #pos = 0;
  /** Name used in ParseError codes (`parse.<what>`). */
  readonly what: string;
  constructor(buf: Uint8Array, what = "tpm") {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.what = what;
  }
  /** Bytes not yet read. */
  get remaining(): number {
    return this.#buf.length - this.#pos;
  }
  /** Current offset. */
  get offset(): number {
    return this.#pos;
  }
  /** A ParseError for this input, naming the current offset. */
  error(message: string): ParseError {
    return new ParseError(this.what, `${this.what}: ${message} (at offset ${this.#pos})`);
  }
  #need(n: number, field: string): void {
    if (n > this.remaining) {
      throw this.error(`truncated ${field}: need ${n} bytes, ${this.remaining} left`);
    }
  }
  /** One unsigned byte. */
  u8(field = "u8"): number {
    this.#need(1, field);
    return this.#view.getUint8(this.#pos++);
  }
  /** Big-endian u16. */
  u16(field = "u16"): number {
    this.#need(2, field);
    const v = this.#view.getUint16(this.#pos);
    this.#pos += 2;
    return v;
  }
  /** Big-endian u32. */
  u32(field = "u32"): number {
    this.#need(4, field);
    const v = this.#view.getUint32(this.#pos);
    this.#pos += 4;
    return v;
  }
  /** Big-endian u64. */
  u64(field = "u64"): bigint {
    this.#need(8, field);
    const v = this.#view.getBigUint64(this.#pos);
    this.#pos += 8;
    return v;
  }
  /** `n` raw bytes (a copy). */
  bytes(n: number, field = "bytes"): Uint8Array {
    this.#need(n, field);
    const out = this.#buf.slice(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }
  /** All remaining bytes (a copy). */
  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }
  /** A TPM2B: u16 size then that many bytes; a size above `max` is refused. */
  tpm2b(field = "TPM2B", max = MAX_TPM2B): Uint8Array {
    const n = this.u16(`${field}.size`);
    if (n > max) throw this.error(`${field} size ${n} exceeds ${max}`);
    return this.bytes(n, field);
  }
  /** A copy of the bytes from `start` up to the current offset (to keep raw encodings). */
  since(start: number): Uint8Array {
    return this.#buf.slice(start, this.#pos);
  }
  /** A sub-reader over the next `n` bytes (consumed from this reader). */
  sub(n: number, field = "sub"): Reader {
    this.#need(n, field);
    const r = new Reader(this.#buf.subarray(this.#pos, this.#pos + n), this.what);
    this.#pos += n;
    return r;
  }
  /** Refuses trailing bytes. */
  end(field = "structure"): void {
    if (this.remaining !== 0) throw this.error(`${this.remaining} trailing bytes after ${field}`);
  }
}

/** Growable big-endian writer; values out of range are a ParseError (the caller built them). */
export class Writer {
  #buf = new Uint8Array(64);
  #len = 0;
  #grow(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < this.#len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.#buf.subarray(0, this.#len));
    this.#buf = nb;
  }
  #int(v: number, max: number, field: string): void {
    if (!Number.isInteger(v) || v < 0 || v > max) {
      throw new ParseError("tpm.marshal", `${field} ${v} is not an integer in 0..${max}`);
    }
  }
  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }
  /** One byte. */
  u8(v: number, field = "u8"): this {
    this.#int(v, 0xff, field);
    this.#grow(1);
    this.#buf[this.#len++] = v;
    return this;
  }
  /** Big-endian u16. */
  u16(v: number, field = "u16"): this {
    this.#int(v, 0xffff, field);
    this.#grow(2);
    this.#buf[this.#len++] = v >>> 8;
    this.#buf[this.#len++] = v & 0xff;
    return this;
  }
  /** Big-endian u32. */
  u32(v: number, field = "u32"): this {
    this.#int(v, 0xffffffff, field);
    this.#grow(4);
    new DataView(this.#buf.buffer).setUint32(this.#len, v);
    this.#len += 4;
    return this;
  }
  /** Big-endian u64. */
  u64(v: bigint, field = "u64"): this {
    if (typeof v !== "bigint" || v < 0n || v > 0xffffffffffffffffn) {
      throw new ParseError("tpm.marshal", `${field} is not a u64`);
    }
    this.#grow(8);
    new DataView(this.#buf.buffer).setBigUint64(this.#len, v);
    this.#len += 8;
    return this;
  }
  /** Raw bytes. */
  bytes(b: Uint8Array): this {
    this.#grow(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
    return this;
  }
  /** A TPM2B: u16 size then the bytes. */
  tpm2b(b: Uint8Array, field = "TPM2B"): this {
    if (b.length > MAX_TPM2B) throw new ParseError("tpm.marshal", `${field} is too large`);
    return this.u16(b.length, `${field}.size`).bytes(b);
  }
  /** Overwrites a u32 at `offset` (for size fields patched after the body is written). */
  patchU32(offset: number, v: number): this {
    new DataView(this.#buf.buffer).setUint32(offset, v);
    return this;
  }
  /** The bytes written (a copy). */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** A two-way codec for one TPM type. */
export interface Codec<T> {
  /** Reads one value; throws ParseError on malformed input. */
  read(r: Reader): T;
  /** Writes one value. */
  write(w: Writer, v: T): void;
}

/** The value type of a codec. */
export type Infer<C> = C extends Codec<infer T> ? T : never;

/** UINT8 / BYTE / TPMI_YES_NO / TPM_SE. */
export const u8: Codec<number> = { read: (r) => r.u8(), write: (w, v) => void w.u8(v) };
/** UINT16 / TPM_ALG_ID / TPM_ST / TPM_ECC_CURVE. */
export const u16: Codec<number> = { read: (r) => r.u16(), write: (w, v) => void w.u16(v) };
/** UINT32 / TPM_HANDLE / TPMA_OBJECT / TPM_CC. */
export const u32: Codec<number> = { read: (r) => r.u32(), write: (w, v) => void w.u32(v) };
/** INT32 (e.g. PolicySecret expiration). */
export const i32: Codec<number> = {
  read: (r) => r.u32() | 0,
  write: (w, v) => void w.u32(v >>> 0),
};
/** UINT64. */
export const u64: Codec<bigint> = { read: (r) => r.u64(), write: (w, v) => void w.u64(v) };

/** A TPM2B_xxx byte buffer (u16 size + bytes) with an optional maximum size. */
export function tpm2b(name: string, max = MAX_TPM2B): Codec<Uint8Array> {
  return {
    read: (r) => r.tpm2b(name, max),
    write: (w, v) => {
      if (v.length > max) throw new ParseError("tpm.marshal", `${name} exceeds ${max} bytes`);
      w.tpm2b(v, name);
    },
  };
}

/**
 * A structure wrapped in a u16 size (TPM2B_PUBLIC, TPM2B_ATTEST, TPM2B_SENSITIVE_CREATE, ...):
 * the inner codec must consume exactly `size` bytes. A zero size is refused unless `allowEmpty`.
 */
export function sized<T>(name: string, inner: Codec<T>): Codec<T> {
  return {
    read: (r) => {
      const n = r.u16(`${name}.size`);
      const sub = r.sub(n, name);
      const v = inner.read(sub);
      sub.end(name);
      return v;
    },
    write: (w, v) => {
      const iw = new Writer();
      inner.write(iw, v);
      w.tpm2b(iw.finish(), name);
    },
  };
}

/** A TPML_xxx: u32 count then `count` elements, refusing more than `max` elements. */
export function list<T>(name: string, inner: Codec<T>, max: number): Codec<T[]> {
  return {
    read: (r) => {
      const n = r.u32(`${name}.count`);
      if (n > max) throw r.error(`${name} count ${n} exceeds ${max}`);
      const out: T[] = [];
      for (let i = 0; i < n; i++) out.push(inner.read(r));
      return out;
    },
    write: (w, v) => {
      if (v.length > max) throw new ParseError("tpm.marshal", `${name} has more than ${max}`);
      w.u32(v.length);
      for (const x of v) inner.write(w, x);
    },
  };
}

/** Fields of a structure in wire order. */
export type Fields = Record<string, Codec<unknown>>;
/** The value type of a structure with these fields. */
export type StructOf<F extends Fields> = { [K in keyof F]: Infer<F[K]> };

/** A structure: fields encoded in the order the object literal lists them (wire order). */
export function struct<F extends Fields>(fields: F): Codec<StructOf<F>> {
  const keys = Object.keys(fields) as (keyof F & string)[];
  return {
    read: (r) => {
      const out: Record<string, unknown> = {};
      for (const k of keys) out[k] = fields[k].read(r);
      return out as StructOf<F>;
    },
    write: (w, v) => {
      for (const k of keys) fields[k].write(w, v[k]);
    },
  };
}

/** A value together with the exact bytes it was decoded from (writes the value back). */
export function withBytes<T>(inner: Codec<T>): Codec<{ value: T; bytes: Uint8Array }> {
  return {
    read: (r) => {
      const start = r.offset;
      const value = inner.read(r);
      return { value, bytes: r.since(start) };
    },
    write: (w, v) => inner.write(w, v.value),
  };
}

/** The empty structure (commands without parameters, responses without outputs). */
export const empty: Codec<Record<string, never>> = {
  read: () => ({}),
  write: () => {},
};

/**
 * A union member chosen by a selector already read (Part 2, "Unions": the selector is a preceding field): `table[selector]`
 * gives the codec; an unknown selector is a ParseError.
 */
export function unionMember<T>(
  r: Reader,
  name: string,
  selector: number,
  table: Record<number, (r: Reader) => T>,
): T {
  const f = table[selector];
  if (!f) throw r.error(`${name}: unsupported selector 0x${selector.toString(16)}`);
  return f(r);
}

/** Decodes a whole buffer with a codec, refusing trailing bytes. */
export function decode<T>(codec: Codec<T>, b: Uint8Array, what: string): T {
  const r = new Reader(b, what);
  const v = codec.read(r);
  r.end(what);
  return v;
}

/** Encodes one value with a codec. */
export function encode<T>(codec: Codec<T>, v: T): Uint8Array {
  const w = new Writer();
  codec.write(w, v);
  return w.finish();
}
