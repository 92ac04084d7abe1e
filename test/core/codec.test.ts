/**
 * Reader / Writer / decodeWith and the byte helpers: exact big-endian
 * encodings, every bound checked with its catalog code, views at any offset,
 * copies never aliasing the input, and decodeWith turning every throw into a
 * typed Result.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { concatBytes, equalBytes, fromHex, isAllZero, toHex } from '../../src/core/bytes.js';
import { Reader, Writer, decodeWith } from '../../src/core/codec.js';
import { CarkeyError, isCarkeyError, type ErrorCode } from '../../src/core/errors.js';
import { propertyRuns } from '../helpers/core-harness.js';

function throwsCode(run: () => unknown, code: ErrorCode): void {
  try {
    run();
  } catch (error) {
    expect(isCarkeyError(error, code), `threw ${String(error)}`).toBe(true);
    return;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

type Field =
  | { readonly kind: 'u8' | 'u16' | 'u32' | 'time'; readonly value: number }
  | { readonly kind: 'fixed'; readonly value: Uint8Array }
  | { readonly kind: 'vbytes'; readonly value: Uint8Array };

const field: fc.Arbitrary<Field> = fc.oneof(
  fc.integer({ min: 0, max: 0xff }).map((value) => ({ kind: 'u8', value }) as const),
  fc.integer({ min: 0, max: 0xffff }).map((value) => ({ kind: 'u16', value }) as const),
  fc.integer({ min: 0, max: 0xffffffff }).map((value) => ({ kind: 'u32', value }) as const),
  fc.maxSafeNat().map((value) => ({ kind: 'time', value }) as const),
  fc.uint8Array({ maxLength: 40 }).map((value) => ({ kind: 'fixed', value }) as const),
  fc.uint8Array({ maxLength: 40 }).map((value) => ({ kind: 'vbytes', value }) as const),
);

function write(fields: readonly Field[]): Uint8Array {
  const w = new Writer();
  for (const f of fields) {
    if (f.kind === 'fixed') w.fixed(f.value, f.value.length);
    else if (f.kind === 'vbytes') w.vbytes(f.value, 40);
    else w[f.kind](f.value);
  }
  return w.finish();
}

function read(r: Reader, f: Field): number | Uint8Array {
  if (f.kind === 'fixed') return r.bytesOf(f.value.length);
  if (f.kind === 'vbytes') return r.vbytes(40);
  return r[f.kind]();
}

describe('Writer and Reader', () => {
  it('round-trip any sequence of fields, also from a view at a non-zero offset', () => {
    fc.assert(
      fc.property(fc.array(field, { maxLength: 12 }), fc.uint8Array({ maxLength: 7 }), (fields, prefix) => {
        const encoded = write(fields);
        // Decode from a subarray whose byteOffset is not zero (DataView must honour it).
        const backing = concatBytes(prefix, encoded, Uint8Array.of(0xee));
        const view = backing.subarray(prefix.length, prefix.length + encoded.length);
        const decoded = decodeWith(view, (r) => fields.map((f) => read(r, f)));
        expect(decoded.ok).toBe(true);
        if (decoded.ok) expect(decoded.value).toEqual(fields.map((f) => f.value));
      }),
      propertyRuns(500),
    );
  });

  it('writes big-endian integers', () => {
    expect(toHex(new Writer().u8(0xab).u16(0x0102).u32(0x03040506).time(0x0708090a0b0c).finish())).toBe('ab' + '0102' + '03040506' + '000007080' + '90a0b0c');
  });

  it('refuses values outside each field range with CK_CODEC_BAD_VALUE', () => {
    for (const [kind, value] of [
      ['u8', 256], ['u8', -1], ['u8', 1.5], ['u8', Number.NaN],
      ['u16', 0x10000], ['u16', -1],
      ['u32', 0x100000000], ['u32', -1], ['u32', 0.5],
      ['time', -1], ['time', Number.MAX_SAFE_INTEGER + 1], ['time', Number.POSITIVE_INFINITY],
    ] as const) {
      throwsCode(() => new Writer()[kind](value), 'CK_CODEC_BAD_VALUE');
    }
    throwsCode(() => new Writer().fixed(new Uint8Array(31), 32), 'CK_CODEC_BAD_VALUE');
    throwsCode(() => new Writer().vbytes(new Uint8Array(11), 10), 'CK_CODEC_TOO_LARGE');
  });

  it('copies: neither writer nor reader output aliases its input', () => {
    const source = Uint8Array.of(1, 2, 3);
    const encoded = new Writer().raw(source).fixed(source, 3).finish();
    source[0] = 9;
    expect([...encoded]).toEqual([1, 2, 3, 1, 2, 3]);
    const r = new Reader(encoded);
    const copy = r.bytesOf(3);
    const rest = r.rest();
    encoded.fill(0);
    expect([...copy, ...rest]).toEqual([1, 2, 3, 1, 2, 3]);
  });

  it('reports truncation for every reader, with CK_CODEC_TRUNCATED', () => {
    const short = Uint8Array.of(1, 2, 3);
    throwsCode(() => new Reader(new Uint8Array(0)).u8(), 'CK_CODEC_TRUNCATED');
    throwsCode(() => new Reader(Uint8Array.of(1)).u16(), 'CK_CODEC_TRUNCATED');
    throwsCode(() => new Reader(short).u32(), 'CK_CODEC_TRUNCATED');
    throwsCode(() => new Reader(new Uint8Array(7)).time(), 'CK_CODEC_TRUNCATED');
    throwsCode(() => new Reader(short).bytesOf(4), 'CK_CODEC_TRUNCATED');
    throwsCode(() => new Reader(Uint8Array.of(0, 5, 1, 2)).vbytes(10), 'CK_CODEC_TRUNCATED');
  });

  it('checks a vbytes length against its cap before reading, and times against 2^53 - 1', () => {
    throwsCode(() => new Reader(Uint8Array.of(0, 11)).vbytes(10), 'CK_CODEC_TOO_LARGE');
    const r = new Reader(Uint8Array.of(0x00, 0x20, 0, 0, 0, 0, 0, 0));
    throwsCode(() => r.time(), 'CK_CODEC_BAD_VALUE');
    expect(new Reader(Uint8Array.of(0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)).time()).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('end() refuses trailing bytes; position and remaining track the cursor', () => {
    const r = new Reader(Uint8Array.of(1, 2, 3));
    r.u16();
    expect(r.position).toBe(2);
    expect(r.remaining).toBe(1);
    throwsCode(() => r.end(), 'CK_CODEC_TRAILING_BYTES');
  });
});

describe('decodeWith', () => {
  it('turns a parse into a Result and requires the whole input to be consumed', () => {
    expect(decodeWith(Uint8Array.of(7), (r) => r.u8())).toEqual({ ok: true, value: 7 });
    const trailing = decodeWith(Uint8Array.of(7, 8), (r) => r.u8());
    expect(!trailing.ok && trailing.error.code).toBe('CK_CODEC_TRAILING_BYTES');
  });

  it('never throws: CarkeyErrors keep their code, anything else becomes CK_INTERNAL', () => {
    const typed = decodeWith(new Uint8Array(0), () => {
      throw new CarkeyError('CK_CODEC_BAD_TYPE');
    });
    expect(!typed.ok && typed.error.code).toBe('CK_CODEC_BAD_TYPE');
    const untyped = decodeWith(new Uint8Array(0), () => {
      throw new RangeError('boom');
    });
    expect(!untyped.ok && untyped.error.code).toBe('CK_INTERNAL');
  });
});

describe('byte helpers', () => {
  it('hex round-trips and rejects odd length or non-hex input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(fromHex(toHex(bytes))).toEqual(bytes);
        expect(fromHex(toHex(bytes).toUpperCase())).toEqual(bytes);
      }),
      propertyRuns(200),
    );
    expect(fromHex('abc')).toBeUndefined();
    expect(fromHex('zz')).toBeUndefined();
    expect(fromHex('0x00')).toBeUndefined();
  });

  it('equalBytes compares content and length; isAllZero; concatBytes', () => {
    expect(equalBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 2))).toBe(true);
    expect(equalBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 3))).toBe(false);
    expect(equalBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 0))).toBe(false);
    expect(isAllZero(new Uint8Array(5))).toBe(true);
    expect(isAllZero(Uint8Array.of(0, 0, 1))).toBe(false);
    expect([...concatBytes(Uint8Array.of(1), new Uint8Array(0), Uint8Array.of(2, 3))]).toEqual([1, 2, 3]);
  });
});
