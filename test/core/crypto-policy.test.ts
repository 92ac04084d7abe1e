/**
 * Tests of the strict crypto policy (src/core/crypto/policy.ts) on BOTH backends:
 * exact lengths, public-key enrollment checks proven against an independent
 * BigInt reference (test/helpers/edwards-reference.ts), verify refusing
 * small-order keys, X25519 zero secrets, secretbox tamper rejection, and
 * "never throws" on arbitrary bytes for every Result-returning method.
 *
 * Guarantees: deterministic (fast-check runs with a fixed seed); every
 * rejection is asserted by its exact error code.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { concatBytes, toHex } from '../../src/core/bytes.js';
import type { CryptoBackend } from '../../src/core/crypto/backend.js';
import { nodeBackend } from '../../src/core/crypto/node-backend.js';
import { Crypto } from '../../src/core/crypto/policy.js';
import { tweetnaclBackend } from '../../src/core/crypto/tweetnacl-backend.js';
import { isCarkeyError, type ErrorCode, type Result } from '../../src/core/errors.js';
import {
  BASE,
  L,
  P,
  add,
  decodePoint,
  encodePoint,
  hasSmallOrder,
  IDENTITY,
  isCanonicalEncoding,
  isOnCurve,
  multiply,
  numberToBytesLE,
  pointsEqual,
  smallOrder,
  toAffine,
  torsionSubgroup,
} from '../helpers/edwards-reference.js';

const BACKENDS: readonly CryptoBackend[] = [nodeBackend, tweetnaclBackend];
const FC_SEED = 0x5eed_c0de;

function bytes(length: number, fill: number): Uint8Array {
  return new Uint8Array(length).fill(fill);
}

function isResult(value: unknown): value is Result<unknown> {
  return typeof value === 'object' && value !== null && 'ok' in value && typeof value.ok === 'boolean';
}

/** What a call did: returned a Result (ok or a code), returned a plain value, or threw. */
function outcome(call: () => unknown): string {
  try {
    const value = call();
    if (isResult(value)) return value.ok ? 'returned ok' : `returned ${value.error.code}`;
    return 'returned value';
  } catch (error) {
    return isCarkeyError(error) ? `threw ${error.code}` : `threw untyped ${String(error)}`;
  }
}

function codeOf<T>(result: Result<T>): ErrorCode | 'ok' {
  return result.ok ? 'ok' : result.error.code;
}

/** Little-endian 32-byte encoding of y with the sign bit set to `sign`. */
function encodeY(y: bigint, sign: 0 | 1): Uint8Array {
  const out = numberToBytesLE(y, 32);
  out[31] = (out[31] ?? 0) | (sign << 7);
  return out;
}

function flipBit(data: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(data);
  const index = bit >> 3;
  out[index] = (out[index] ?? 0) ^ (1 << (bit & 7));
  return out;
}

// --- fixtures ----------------------------------------------------------------

const fixtureCrypto = new Crypto(nodeBackend);
const SEED = bytes(32, 7);
const MESSAGE = Uint8Array.from([1, 2, 3, 4, 5]);
const PUBLIC_KEY = fixtureCrypto.publicKeyFromSeed(SEED);
const SIGNATURE = fixtureCrypto.sign(SEED, MESSAGE);
const X_SECRET = bytes(32, 9);
const X_PEER = fixtureCrypto.x25519KeyPair(bytes(32, 11)).publicKey;
const BOX_KEY = bytes(32, 13);
const BOX_NONCE = bytes(24, 17);
const BOX_CIPHERTEXT = fixtureCrypto.seal(bytes(40, 19), BOX_NONCE, BOX_KEY);

// --- exact lengths -------------------------------------------------------------

interface LengthRule {
  readonly name: string;
  /** A correctly sized value for this argument; wrong sizes are cut or padded from it. */
  readonly valid: Uint8Array;
  /** 'throws' for caller-bug paths (sign, seal), 'returns' for never-throw paths. */
  readonly style: 'throws' | 'returns';
  readonly call: (crypto: Crypto, value: Uint8Array) => unknown;
}

const LENGTH_RULES: readonly LengthRule[] = [
  { name: 'publicKeyFromSeed: seed', valid: SEED, style: 'throws', call: (c, v) => c.publicKeyFromSeed(v) },
  { name: 'sign: seed', valid: SEED, style: 'throws', call: (c, v) => c.sign(v, MESSAGE) },
  { name: 'verify: public key', valid: PUBLIC_KEY, style: 'returns', call: (c, v) => c.verify(v, MESSAGE, SIGNATURE) },
  { name: 'verify: signature', valid: SIGNATURE, style: 'returns', call: (c, v) => c.verify(PUBLIC_KEY, MESSAGE, v) },
  { name: 'checkPublicKey: public key', valid: PUBLIC_KEY, style: 'returns', call: (c, v) => c.checkPublicKey(v) },
  { name: 'x25519KeyPair: secret', valid: X_SECRET, style: 'throws', call: (c, v) => c.x25519KeyPair(v) },
  { name: 'sharedSecret: secret', valid: X_SECRET, style: 'returns', call: (c, v) => c.sharedSecret(v, X_PEER) },
  { name: 'sharedSecret: peer public key', valid: X_PEER, style: 'returns', call: (c, v) => c.sharedSecret(X_SECRET, v) },
  { name: 'seal: key', valid: BOX_KEY, style: 'throws', call: (c, v) => c.seal(MESSAGE, BOX_NONCE, v) },
  { name: 'seal: nonce', valid: BOX_NONCE, style: 'throws', call: (c, v) => c.seal(MESSAGE, v, BOX_KEY) },
  { name: 'open: key', valid: BOX_KEY, style: 'returns', call: (c, v) => c.open(BOX_CIPHERTEXT, BOX_NONCE, v) },
  { name: 'open: nonce', valid: BOX_NONCE, style: 'returns', call: (c, v) => c.open(BOX_CIPHERTEXT, v, BOX_KEY) },
];

function wrongSizes(valid: Uint8Array): Uint8Array[] {
  const n = valid.length;
  return [0, 1, n - 1, n + 1, 2 * n].map((size) => {
    const out = new Uint8Array(size);
    out.set(valid.subarray(0, Math.min(size, n)));
    return out;
  });
}

describe.each(BACKENDS)('exact lengths on $name', (backend) => {
  const crypto = new Crypto(backend);

  it.each(LENGTH_RULES)('$name: the exact size passes the length check', (rule) => {
    expect(outcome(() => rule.call(crypto, rule.valid))).not.toContain('CK_CRYPTO_BAD_LENGTH');
    expect(outcome(() => rule.call(crypto, rule.valid))).not.toContain('threw untyped');
  });

  it.each(LENGTH_RULES)('$name: sizes 0, 1, n-1, n+1, 2n are CK_CRYPTO_BAD_LENGTH ($style)', (rule) => {
    const expected = rule.style === 'throws' ? 'threw CK_CRYPTO_BAD_LENGTH' : 'returned CK_CRYPTO_BAD_LENGTH';
    for (const value of wrongSizes(rule.valid)) expect(outcome(() => rule.call(crypto, value)), `${value.length} bytes`).toBe(expected);
  });

  it('open: a ciphertext shorter than the 16-byte tag is CK_CRYPTO_DECRYPT_FAILED', () => {
    for (let size = 0; size < 16; size++) {
      expect(codeOf(crypto.open(BOX_CIPHERTEXT.subarray(0, size), BOX_NONCE, BOX_KEY)), `${size} bytes`).toBe('CK_CRYPTO_DECRYPT_FAILED');
    }
  });
});

// --- public-key enrollment: small order and canonical encoding --------------------

const TORSION = torsionSubgroup();

/**
 * Every 32-byte string a lenient (ref10/tweetnacl-style) decoder maps to one of
 * the eight small-order points: each point's y, and y + p where that still fits
 * in 255 bits (only y = 0 and y = 1), each with the sign bit clear and set.
 */
const SMALL_ORDER_ENCODINGS: readonly { readonly label: string; readonly encoded: Uint8Array }[] = (() => {
  const ys = [...new Set(TORSION.map((point) => toAffine(point).y))].sort((a, b) => (a < b ? -1 : 1));
  return ys.flatMap((y) =>
    [0n, P]
      .filter((offset) => y + offset < 2n ** 255n)
      .flatMap((offset) =>
        ([0, 1] as const).map((sign) => ({
          label: `y=${offset === 0n ? '' : 'p+'}${y < 2n ** 20n ? y.toString() : `0x${y.toString(16).slice(0, 8)}…`} sign=${sign}`,
          encoded: encodeY(y + offset, sign),
        })),
      ),
  );
})();

/** All encodings with y >= p (y = p .. p + 18), both signs: never canonical. */
const Y_AT_LEAST_P_ENCODINGS: readonly Uint8Array[] = Array.from({ length: 19 }, (_, k) => BigInt(k)).flatMap((k) =>
  ([0, 1] as const).map((sign) => encodeY(P + k, sign)),
);

const NEGATIVE_ZERO_ENCODINGS = [encodeY(1n, 1), encodeY(P - 1n, 1)];

describe('the BigInt reference (test/helpers/edwards-reference.ts)', () => {
  it('encodes the RFC 8032 base point and knows [L]B = O', () => {
    expect(toHex(encodePoint(BASE))).toBe('5866666666666666666666666666666666666666666666666666666666666666');
    expect(isOnCurve(BASE)).toBe(true);
    expect(pointsEqual(multiply(BASE, L), IDENTITY)).toBe(true);
    expect(pointsEqual(multiply(BASE, 8n), IDENTITY)).toBe(false);
  });

  it('finds exactly eight distinct torsion points, of orders 1, 2, 4, 4, 8, 8, 8, 8', () => {
    const hexes = new Set(TORSION.map((point) => toHex(encodePoint(point))));
    expect(hexes.size).toBe(8);
    expect(TORSION.map((point) => smallOrder(point)).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual([1, 2, 4, 4, 8, 8, 8, 8]);
    for (const point of TORSION) expect(isOnCurve(point)).toBe(true);
  });

  it('lists 14 encodings of small-order points: 8 canonical, 6 not (negative zero and y + p)', () => {
    expect(SMALL_ORDER_ENCODINGS).toHaveLength(14);
    expect(SMALL_ORDER_ENCODINGS.filter((e) => isCanonicalEncoding(e.encoded))).toHaveLength(8);
    expect(new Set(SMALL_ORDER_ENCODINGS.map((e) => toHex(e.encoded))).size).toBe(14);
  });

  it('agrees with the libsodium blocklist the policy is modelled on', () => {
    const canonical = SMALL_ORDER_ENCODINGS.filter((e) => isCanonicalEncoding(e.encoded)).map((e) => toHex(e.encoded)).sort();
    expect(canonical).toEqual(
      [
        '0000000000000000000000000000000000000000000000000000000000000000',
        '0000000000000000000000000000000000000000000000000000000000000080',
        '0100000000000000000000000000000000000000000000000000000000000000',
        '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
        '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
        'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
        'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
        'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      ].sort(),
    );
  });
});

describe.each(BACKENDS)('checkPublicKey on $name', (backend) => {
  const crypto = new Crypto(backend);

  it.each(SMALL_ORDER_ENCODINGS)('rejects the small-order encoding $label (and the reference proves [8]P = O)', ({ encoded }) => {
    const point = decodePoint(encoded, 'lenient');
    expect(point).toBeDefined();
    if (point === undefined) return;
    expect(hasSmallOrder(point)).toBe(true);
    const expected = isCanonicalEncoding(encoded) ? 'CK_CRYPTO_SMALL_ORDER_KEY' : 'CK_CRYPTO_NONCANONICAL_KEY';
    expect(codeOf(crypto.checkPublicKey(encoded))).toBe(expected);
  });

  it('rejects every y >= p encoding (y = p .. p+18, both signs) as non-canonical', () => {
    expect(Y_AT_LEAST_P_ENCODINGS).toHaveLength(38);
    for (const encoded of Y_AT_LEAST_P_ENCODINGS) {
      expect(isCanonicalEncoding(encoded)).toBe(false);
      expect(codeOf(crypto.checkPublicKey(encoded)), toHex(encoded)).toBe('CK_CRYPTO_NONCANONICAL_KEY');
    }
  });

  it('rejects "negative zero" (x = 0 with the sign bit set: y = 1 and y = p - 1) as non-canonical', () => {
    for (const encoded of NEGATIVE_ZERO_ENCODINGS) {
      expect(decodePoint(encoded, 'strict')).toBeUndefined();
      expect(decodePoint(encoded, 'lenient')).toBeDefined();
      expect(codeOf(crypto.checkPublicKey(encoded)), toHex(encoded)).toBe('CK_CRYPTO_NONCANONICAL_KEY');
    }
  });

  it('accepts public keys of random seeds, which the reference shows are in the prime-order subgroup', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
        const publicKey = crypto.publicKeyFromSeed(seed);
        const point = decodePoint(publicKey, 'strict');
        expect(point).toBeDefined();
        if (point === undefined) return;
        expect(hasSmallOrder(point)).toBe(false);
        expect(pointsEqual(multiply(point, L), IDENTITY)).toBe(true);
        expect(codeOf(crypto.checkPublicKey(publicKey))).toBe('ok');
      }),
      { seed: FC_SEED, numRuns: backend.name === 'tweetnacl' ? 40 : 100 },
    );
  });

  it('on every encoding of a curve point, rejects exactly what the reference calls non-canonical or small-order', () => {
    const encodings = fc.oneof(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.constantFrom(...SMALL_ORDER_ENCODINGS.map((e) => e.encoded), ...Y_AT_LEAST_P_ENCODINGS),
      // mixed order: a random multiple of B plus a torsion point (not small order; not rejected by the blocklist)
      fc.tuple(fc.bigInt({ min: 1n, max: L - 1n }), fc.integer({ min: 0, max: 7 })).map(([scalar, t]) =>
        encodePoint(add(multiply(BASE, scalar), TORSION[t] ?? IDENTITY)),
      ),
    );
    fc.assert(
      fc.property(encodings, (encoded) => {
        const point = decodePoint(encoded, 'lenient');
        fc.pre(point !== undefined); // off-curve strings: see the report; checkPublicKey does not decode
        if (point === undefined) return;
        const expected = !isCanonicalEncoding(encoded)
          ? 'CK_CRYPTO_NONCANONICAL_KEY'
          : hasSmallOrder(point)
            ? 'CK_CRYPTO_SMALL_ORDER_KEY'
            : 'ok';
        expect(codeOf(crypto.checkPublicKey(encoded))).toBe(expected);
      }),
      { seed: FC_SEED, numRuns: 300 },
    );
  });
});

// --- verify refuses the keys checkPublicKey refuses ----------------------------------

/** R = [S]B, S small: under the identity public key, [S]B = R + [k]O holds for EVERY message. */
const FORGED_S = 12345n;
const UNIVERSAL_FORGERY = concatBytes(encodePoint(multiply(BASE, FORGED_S)), numberToBytesLE(FORGED_S, 32));
const IDENTITY_ENCODINGS = SMALL_ORDER_ENCODINGS.filter((e) => {
  const point = decodePoint(e.encoded, 'lenient');
  return point !== undefined && pointsEqual(point, IDENTITY);
});
const FORGED_MESSAGES = ['unlock', 'start', ''].map((text) => new TextEncoder().encode(text));

describe.each(BACKENDS)('verify with small-order or non-canonical keys on $name', (backend) => {
  const crypto = new Crypto(backend);

  it('the raw backend accepts one fixed signature for every message under each identity encoding (the hazard)', () => {
    expect(IDENTITY_ENCODINGS).toHaveLength(4);
    for (const { encoded } of IDENTITY_ENCODINGS) {
      for (const message of FORGED_MESSAGES) expect(backend.ed25519Verify(encoded, message, UNIVERSAL_FORGERY), toHex(encoded)).toBe(true);
    }
  });

  it('Crypto.verify refuses that forgery under every identity encoding', () => {
    for (const { encoded } of IDENTITY_ENCODINGS) {
      for (const message of FORGED_MESSAGES) {
        const result = crypto.verify(encoded, message, UNIVERSAL_FORGERY);
        expect(codeOf(result), toHex(encoded)).toBe('CK_CRYPTO_BAD_SIGNATURE');
        expect(result.ok ? '' : result.error.message).toContain('small order');
      }
    }
  });

  it('Crypto.verify refuses every small-order and y >= p key, whatever the signature', () => {
    for (const encoded of [...SMALL_ORDER_ENCODINGS.map((e) => e.encoded), ...Y_AT_LEAST_P_ENCODINGS]) {
      expect(codeOf(crypto.verify(encoded, MESSAGE, UNIVERSAL_FORGERY)), toHex(encoded)).toBe('CK_CRYPTO_BAD_SIGNATURE');
      expect(codeOf(crypto.verify(encoded, MESSAGE, SIGNATURE)), toHex(encoded)).toBe('CK_CRYPTO_BAD_SIGNATURE');
    }
  });
});

// --- verify and sharedSecret never throw ---------------------------------------------

describe.each(BACKENDS)('never throws on arbitrary bytes on $name', (backend) => {
  const crypto = new Crypto(backend);
  const anyBytes = fc.uint8Array({ minLength: 0, maxLength: 80 });
  const exactOrNot = (n: number): fc.Arbitrary<Uint8Array> => fc.oneof(fc.uint8Array({ minLength: n, maxLength: n }), anyBytes);

  // Random S is >= L 15 times in 16; clearing the top nibble sends the rest on to the backend.
  const reducedS = fc.uint8Array({ minLength: 64, maxLength: 64 }).map((signature) => {
    signature[63] = (signature[63] ?? 0) & 0x0f;
    return signature;
  });

  it('verify returns a typed failure for arbitrary key, message and signature', () => {
    fc.assert(
      fc.property(exactOrNot(32), anyBytes, fc.oneof(exactOrNot(64), reducedS), (publicKey, message, signature) => {
        const result = crypto.verify(publicKey, message, signature);
        const lengthsOk = publicKey.length === 32 && signature.length === 64;
        expect(codeOf(result)).toBe(lengthsOk ? 'CK_CRYPTO_BAD_SIGNATURE' : 'CK_CRYPTO_BAD_LENGTH');
      }),
      { seed: FC_SEED, numRuns: backend.name === 'tweetnacl' ? 60 : 300 },
    );
  });

  it('sharedSecret returns a secret or a typed failure for arbitrary inputs', () => {
    fc.assert(
      fc.property(exactOrNot(32), exactOrNot(32), (secret, peer) => {
        const result = crypto.sharedSecret(secret, peer);
        if (secret.length !== 32 || peer.length !== 32) expect(codeOf(result)).toBe('CK_CRYPTO_BAD_LENGTH');
        else if (result.ok) expect(result.value).toHaveLength(32);
        else expect(result.error.code).toBe('CK_CRYPTO_ZERO_SHARED_SECRET');
      }),
      { seed: FC_SEED, numRuns: 200 },
    );
  });
});

// --- X25519 zero shared secret -----------------------------------------------------------

describe.each(BACKENDS)('X25519 all-zero shared secret on $name', (backend) => {
  const crypto = new Crypto(backend);

  it('refuses the low-order peer keys u = 0 and u = 1 (and their u + p encodings)', () => {
    for (const u of [0n, 1n, P, P + 1n]) {
      expect(codeOf(crypto.sharedSecret(X_SECRET, numberToBytesLE(u, 32))), `u = ${u}`).toBe('CK_CRYPTO_ZERO_SHARED_SECRET');
    }
  });

  it('derives the same secret on both sides for ordinary keys', () => {
    const a = crypto.x25519KeyPair(bytes(32, 21));
    const b = crypto.x25519KeyPair(bytes(32, 22));
    const ab = crypto.sharedSecret(a.secretKey, b.publicKey);
    const ba = crypto.sharedSecret(b.secretKey, a.publicKey);
    expect(ab.ok && ba.ok && toHex(ab.value) === toHex(ba.value)).toBe(true);
  });
});

// --- secretbox ------------------------------------------------------------------------

describe.each(BACKENDS)('secretbox on $name', (backend) => {
  const crypto = new Crypto(backend);
  const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
  const nonce24 = fc.uint8Array({ minLength: 24, maxLength: 24 });

  it('round-trips any plaintext, with exactly 16 bytes of overhead', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 1024 }), nonce24, key32, (plaintext, nonce, key) => {
        const sealed = crypto.seal(plaintext, nonce, key);
        expect(sealed).toHaveLength(plaintext.length + 16);
        const opened = crypto.open(sealed, nonce, key);
        expect(opened.ok ? toHex(opened.value) : opened.error.code).toBe(toHex(plaintext));
      }),
      { seed: FC_SEED, numRuns: 200 },
    );
  });

  it('rejects every single-bit flip of the ciphertext (all 448 of a 56-byte box)', () => {
    expect(BOX_CIPHERTEXT).toHaveLength(56);
    for (let bit = 0; bit < BOX_CIPHERTEXT.length * 8; bit++) {
      expect(codeOf(crypto.open(flipBit(BOX_CIPHERTEXT, bit), BOX_NONCE, BOX_KEY)), `bit ${bit}`).toBe('CK_CRYPTO_DECRYPT_FAILED');
    }
    expect(codeOf(crypto.open(BOX_CIPHERTEXT, BOX_NONCE, BOX_KEY))).toBe('ok');
  });

  it('rejects every single-bit flip of the nonce and of the key', () => {
    for (let bit = 0; bit < 24 * 8; bit++) {
      expect(codeOf(crypto.open(BOX_CIPHERTEXT, flipBit(BOX_NONCE, bit), BOX_KEY)), `nonce bit ${bit}`).toBe('CK_CRYPTO_DECRYPT_FAILED');
    }
    for (let bit = 0; bit < 32 * 8; bit++) {
      expect(codeOf(crypto.open(BOX_CIPHERTEXT, BOX_NONCE, flipBit(BOX_KEY, bit))), `key bit ${bit}`).toBe('CK_CRYPTO_DECRYPT_FAILED');
    }
  });

  it('rejects every truncation and an appended byte', () => {
    for (let size = 0; size < BOX_CIPHERTEXT.length; size++) {
      expect(codeOf(crypto.open(BOX_CIPHERTEXT.subarray(0, size), BOX_NONCE, BOX_KEY)), `${size} bytes`).toBe('CK_CRYPTO_DECRYPT_FAILED');
    }
    expect(codeOf(crypto.open(concatBytes(BOX_CIPHERTEXT, Uint8Array.of(0)), BOX_NONCE, BOX_KEY))).toBe('CK_CRYPTO_DECRYPT_FAILED');
  });

  it('open never throws on arbitrary bytes and fails with the code the lengths call for', () => {
    const sized = (n: number): fc.Arbitrary<Uint8Array> =>
      fc.oneof(fc.uint8Array({ minLength: n, maxLength: n }), fc.uint8Array({ minLength: 0, maxLength: 2 * n }));
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), sized(24), sized(32), (ciphertext, nonce, key) => {
        let result: Result<Uint8Array> | undefined;
        expect(() => {
          result = crypto.open(ciphertext, nonce, key);
        }).not.toThrow();
        if (result === undefined) throw new Error('open returned nothing');
        const lengthsOk = nonce.length === 24 && key.length === 32;
        expect(codeOf(result)).toBe(lengthsOk ? 'CK_CRYPTO_DECRYPT_FAILED' : 'CK_CRYPTO_BAD_LENGTH');
      }),
      { seed: FC_SEED, numRuns: 500 },
    );
  });
});
