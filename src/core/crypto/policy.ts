/**
 * The strict crypto layer every other module uses. One policy, both backends.
 *
 * Policy (each rule has a test):
 * - Exact lengths: seeds 32, public keys 32, signatures 64, secretbox keys 32,
 *   nonces 24. A wrong length is a typed failure, never an exception out of a
 *   verify or decrypt path.
 * - Ed25519 verify rejects S >= L (malleable signatures; tweetnacl alone would
 *   accept them) before calling the backend. It also refuses public keys that
 *   `checkPublicKey` refuses: under a small-order key (e.g. the identity) one
 *   fixed signature verifies for every message on both backends, so verify
 *   does not rely on every caller having checked the key at enrollment.
 * - `checkPublicKey` rejects non-canonical encodings (y >= p) and the eight
 *   small-order points in every encoding; it is applied wherever a key is
 *   enrolled (pairing, key lists) or a grant accepted.
 * - X25519 rejects an all-zero shared secret (low-order peer key).
 * - Hashing is SHA-512; `hash(...parts)` hashes the concatenation, callers
 *   put a domain-separation label first.
 */
import { concatBytes, fromHex, isAllZero } from '../bytes.js';
import { CarkeyError, fail, ok, type Result } from '../errors.js';
import type { BackendName, CryptoBackend } from './backend.js';

export const SEED_LENGTH = 32;
export const PUBLIC_KEY_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;
export const SECRETBOX_KEY_LENGTH = 32;
export const SECRETBOX_NONCE_LENGTH = 24;
export const SECRETBOX_OVERHEAD = 16;

/** L = 2^252 + 27742317777372353535851937790883648493, little-endian. */
const GROUP_ORDER_LE = Uint8Array.from([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
]);

/**
 * y-coordinates (sign bit cleared) of the Ed25519 points of order 1, 2, 4 and 8,
 * as in libsodium's blocklist. Compared with the top bit masked, so both signs
 * of x are caught. Encodings y >= p are caught by the canonical check first.
 */
const SMALL_ORDER_Y = [
  '0000000000000000000000000000000000000000000000000000000000000000', // order 4 (y = 0)
  '0100000000000000000000000000000000000000000000000000000000000000', // order 1 (identity)
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', // order 8
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', // order 8
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // order 2 (y = p - 1)
].map((hex) => fromHex(hex) ?? new Uint8Array(32));

/** True when the little-endian 32-byte scalar is < L. */
export function isCanonicalScalar(scalarLE: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const s = scalarLE[i] ?? 0;
    const l = GROUP_ORDER_LE[i] ?? 0;
    if (s < l) return true;
    if (s > l) return false;
  }
  return false; // equal to L
}

/** True when the encoded y (sign bit cleared) is < p = 2^255 - 19. */
export function isCanonicalPoint(encoded: Uint8Array): boolean {
  if ((encoded[31] ?? 0) & 0x80 && isYZeroOrOneWithSign(encoded)) return false;
  // y >= p iff bytes are ff..ff7f with first byte >= 0xed (after masking the sign bit).
  if (((encoded[31] ?? 0) & 0x7f) !== 0x7f) return true;
  for (let i = 30; i >= 1; i--) if (encoded[i] !== 0xff) return true;
  return (encoded[0] ?? 0) < 0xed;
}

/** x = 0 points (y = ±1) with the sign bit set are non-canonical ("negative zero"). */
function isYZeroOrOneWithSign(encoded: Uint8Array): boolean {
  const masked = Uint8Array.from(encoded);
  masked[31] = (masked[31] ?? 0) & 0x7f;
  return matchesAny(masked, [SMALL_ORDER_Y[1], SMALL_ORDER_Y[4]]);
}

function matchesAny(value: Uint8Array, candidates: readonly (Uint8Array | undefined)[]): boolean {
  return candidates.some((c) => c !== undefined && c.every((byte, i) => byte === value[i]));
}

export function isSmallOrderPoint(encoded: Uint8Array): boolean {
  const masked = Uint8Array.from(encoded);
  masked[31] = (masked[31] ?? 0) & 0x7f;
  return matchesAny(masked, SMALL_ORDER_Y);
}

export interface X25519KeyPair {
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

function lengthError(what: string, expected: number, actual: number): CarkeyError {
  return new CarkeyError('CK_CRYPTO_BAD_LENGTH', `${what} must be ${expected} bytes, got ${actual}`);
}

function requireLength(what: string, bytes: Uint8Array, expected: number): void {
  if (bytes.length !== expected) throw lengthError(what, expected, bytes.length);
}

/** Strict crypto over a backend. Stateless apart from the backend; safe to share. */
export class Crypto {
  constructor(readonly backend: CryptoBackend) {}

  get backendName(): BackendName {
    return this.backend.name;
  }

  /** SHA-512 of the concatenation of `parts`. */
  hash(...parts: readonly Uint8Array[]): Uint8Array {
    return this.backend.sha512(parts.length === 1 && parts[0] !== undefined ? parts[0] : concatBytes(...parts));
  }

  /** Ed25519 public key from a 32-byte seed. Throws CK_CRYPTO_BAD_LENGTH. */
  publicKeyFromSeed(seed: Uint8Array): Uint8Array {
    requireLength('seed', seed, SEED_LENGTH);
    return this.backend.ed25519PublicKey(seed);
  }

  /** Ed25519 signature. Throws CK_CRYPTO_BAD_LENGTH for a bad seed. */
  sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
    requireLength('seed', seed, SEED_LENGTH);
    return this.backend.ed25519Sign(seed, message);
  }

  /**
   * Ed25519 verification under the policy. Never throws: wrong lengths give
   * CK_CRYPTO_BAD_LENGTH, anything else that fails gives CK_CRYPTO_BAD_SIGNATURE.
   */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Result<true> {
    if (publicKey.length !== PUBLIC_KEY_LENGTH) return { ok: false, error: lengthError('public key', PUBLIC_KEY_LENGTH, publicKey.length) };
    if (signature.length !== SIGNATURE_LENGTH) return { ok: false, error: lengthError('signature', SIGNATURE_LENGTH, signature.length) };
    if (!isCanonicalScalar(signature.subarray(32))) return fail('CK_CRYPTO_BAD_SIGNATURE', 'S is not reduced (S >= L)');
    if (!isCanonicalPoint(publicKey) || isSmallOrderPoint(publicKey)) {
      return fail('CK_CRYPTO_BAD_SIGNATURE', 'public key is non-canonical or of small order');
    }
    if (!this.backend.ed25519Verify(publicKey, message, signature)) return fail('CK_CRYPTO_BAD_SIGNATURE');
    return ok(true);
  }

  /**
   * Enrollment check for an Ed25519 public key: exact length, canonical
   * encoding, not of small order. Apply wherever a key becomes trusted.
   */
  checkPublicKey(publicKey: Uint8Array): Result<true> {
    if (publicKey.length !== PUBLIC_KEY_LENGTH) return { ok: false, error: lengthError('public key', PUBLIC_KEY_LENGTH, publicKey.length) };
    if (!isCanonicalPoint(publicKey)) return fail('CK_CRYPTO_NONCANONICAL_KEY');
    if (isSmallOrderPoint(publicKey)) return fail('CK_CRYPTO_SMALL_ORDER_KEY');
    return ok(true);
  }

  /** X25519 key pair from 32 random bytes (the caller's injected RNG). */
  x25519KeyPair(secretKey: Uint8Array): X25519KeyPair {
    requireLength('X25519 secret', secretKey, 32);
    return { secretKey: Uint8Array.from(secretKey), publicKey: this.backend.x25519PublicKey(secretKey) };
  }

  /** X25519 shared secret; all-zero results (low-order peer keys) are refused. Never throws. */
  sharedSecret(secretKey: Uint8Array, peerPublicKey: Uint8Array): Result<Uint8Array> {
    if (secretKey.length !== 32) return { ok: false, error: lengthError('X25519 secret', 32, secretKey.length) };
    if (peerPublicKey.length !== 32) return { ok: false, error: lengthError('X25519 public key', 32, peerPublicKey.length) };
    const shared = this.backend.x25519(secretKey, peerPublicKey);
    if (isAllZero(shared)) return fail('CK_CRYPTO_ZERO_SHARED_SECRET');
    return ok(shared);
  }

  /** secretbox seal. Throws CK_CRYPTO_BAD_LENGTH for a bad key or nonce (caller bug). */
  seal(plaintext: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array {
    requireLength('secretbox key', key, SECRETBOX_KEY_LENGTH);
    requireLength('secretbox nonce', nonce, SECRETBOX_NONCE_LENGTH);
    return this.backend.secretboxSeal(plaintext, nonce, key);
  }

  /** secretbox open. Never throws: CK_CRYPTO_BAD_LENGTH or CK_CRYPTO_DECRYPT_FAILED. */
  open(ciphertext: Uint8Array, nonce: Uint8Array, key: Uint8Array): Result<Uint8Array> {
    if (key.length !== SECRETBOX_KEY_LENGTH) return { ok: false, error: lengthError('secretbox key', 32, key.length) };
    if (nonce.length !== SECRETBOX_NONCE_LENGTH) return { ok: false, error: lengthError('secretbox nonce', 24, nonce.length) };
    if (ciphertext.length < SECRETBOX_OVERHEAD) return fail('CK_CRYPTO_DECRYPT_FAILED', 'ciphertext shorter than the tag');
    const plaintext = this.backend.secretboxOpen(ciphertext, nonce, key);
    return plaintext === null ? fail('CK_CRYPTO_DECRYPT_FAILED') : ok(plaintext);
  }
}
