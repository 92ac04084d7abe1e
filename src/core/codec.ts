/**
 * Binary reader and writer for carkey's fixed message formats.
 *
 * Guarantees: all integers are big-endian; every read is bounds-checked and a
 * short input raises CK_CODEC_TRUNCATED; `Reader.end()` raises
 * CK_CODEC_TRAILING_BYTES if anything is left, so each format is parsed
 * exactly. Times are u64 milliseconds restricted to Number.MAX_SAFE_INTEGER.
 * Decoders use `decodeWith` to turn any of these into a typed `Result`.
 */
import { CarkeyError, toCarkeyError, type Result } from './errors.js';

export class Reader {
  private offset = 0;

  constructor(private readonly bytes: Uint8Array) {}

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  get position(): number {
    return this.offset;
  }

  private need(length: number, what: string): void {
    if (this.remaining < length) {
      throw new CarkeyError('CK_CODEC_TRUNCATED', `${what}: need ${length} bytes at offset ${this.offset}, have ${this.remaining}`);
    }
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    const value = this.bytes[this.offset] ?? 0;
    this.offset += 1;
    return value;
  }

  u16(what = 'u16'): number {
    this.need(2, what);
    const value = ((this.bytes[this.offset] ?? 0) << 8) | (this.bytes[this.offset + 1] ?? 0);
    this.offset += 2;
    return value;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const view = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.offset, 4);
    this.offset += 4;
    return view.getUint32(0);
  }

  /** u64 milliseconds; values above 2^53 - 1 are CK_CODEC_BAD_VALUE. */
  time(what = 'time'): number {
    this.need(8, what);
    const view = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.offset, 8);
    const value = view.getBigUint64(0);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new CarkeyError('CK_CODEC_BAD_VALUE', `${what} out of range`);
    this.offset += 8;
    return Number(value);
  }

  /** Exactly `length` bytes, copied. */
  bytesOf(length: number, what = 'bytes'): Uint8Array {
    this.need(length, what);
    const out = this.bytes.slice(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  /** Everything left, copied. */
  rest(): Uint8Array {
    const out = this.bytes.slice(this.offset);
    this.offset = this.bytes.length;
    return out;
  }

  /** u16 length prefix then that many bytes, capped at `max`. */
  vbytes(max: number, what = 'vbytes'): Uint8Array {
    const length = this.u16(`${what} length`);
    if (length > max) throw new CarkeyError('CK_CODEC_TOO_LARGE', `${what}: ${length} > ${max}`);
    return this.bytesOf(length, what);
  }

  end(what = 'message'): void {
    if (this.remaining !== 0) throw new CarkeyError('CK_CODEC_TRAILING_BYTES', `${what}: ${this.remaining} extra bytes`);
  }
}

export class Writer {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;

  private push(chunk: Uint8Array): this {
    this.chunks.push(chunk);
    this.length += chunk.length;
    return this;
  }

  u8(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new CarkeyError('CK_CODEC_BAD_VALUE', `u8 ${value}`);
    return this.push(Uint8Array.of(value));
  }

  u16(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new CarkeyError('CK_CODEC_BAD_VALUE', `u16 ${value}`);
    return this.push(Uint8Array.of(value >>> 8, value & 0xff));
  }

  u32(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new CarkeyError('CK_CODEC_BAD_VALUE', `u32 ${value}`);
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, value);
    return this.push(out);
  }

  time(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new CarkeyError('CK_CODEC_BAD_VALUE', `time ${value}`);
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, BigInt(value));
    return this.push(out);
  }

  /** Fixed-length field: throws if `bytes` is not exactly `length` long. */
  fixed(bytes: Uint8Array, length: number, what = 'field'): this {
    if (bytes.length !== length) throw new CarkeyError('CK_CODEC_BAD_VALUE', `${what} must be ${length} bytes, got ${bytes.length}`);
    return this.push(Uint8Array.from(bytes));
  }

  raw(bytes: Uint8Array): this {
    return this.push(Uint8Array.from(bytes));
  }

  vbytes(bytes: Uint8Array, max: number, what = 'vbytes'): this {
    if (bytes.length > max) throw new CarkeyError('CK_CODEC_TOO_LARGE', `${what}: ${bytes.length} > ${max}`);
    return this.u16(bytes.length).raw(bytes);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

/** Run a throwing parser over bytes and return a typed Result (never throws). */
export function decodeWith<T>(bytes: Uint8Array, parse: (reader: Reader) => T): Result<T> {
  try {
    const reader = new Reader(bytes);
    const value = parse(reader);
    reader.end();
    return { ok: true, value };
  } catch (error) {
    return { ok: false, error: toCarkeyError(error) };
  }
}
