/**
 * Fast crypto backend on node:crypto (OpenSSL): the default where it exists.
 *
 * Guarantees: byte-identical to the tweetnacl backend (same Ed25519 signatures
 * from the same seed, same X25519 outputs, same SHA-512); 70-115x faster for
 * Ed25519 and 8-18x for X25519 (docs/performance.md). OpenSSL has no
 * XSalsa20-Poly1305, so secretbox is tweetnacl's here too (it is cheap next to
 * the public-key operations). Raw keys are imported through JWK (see
 * `privateKey`); verify and X25519 never throw: OpenSSL's refusal of a key or
 * an all-zero X25519 result becomes `false` / all-zero output, as in tweetnacl.
 *
 * node:crypto is computation, not I/O: importing it keeps src/core pure.
 */
import { createHash, createPrivateKey, createPublicKey, diffieHellman, sign, verify, type KeyObject } from 'node:crypto';
import { CarkeyError } from '../errors.js';
import type { CryptoBackend } from './backend.js';
import { tweetnaclBackend } from './tweetnacl-backend.js';

type OkpCurve = 'Ed25519' | 'X25519';

/** Placeholder `x` for private JWKs: Node derives the public half from `d` (see below). */
const UNUSED_X = Buffer.alloc(32).toString('base64url');

function base64url(raw: Uint8Array): string {
  return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url');
}

/**
 * Raw 32-byte private key -> KeyObject, through JWK rather than PKCS#8 DER:
 * on Node 20 / OpenSSL 3.0 the DER path costs ~320 us per key, JWK ~26 us
 * (docs/performance.md), and a key is built per sign / X25519 call.
 * Node imports an OKP JWK with `d` as a raw private key (lib/internal/crypto/
 * keys.js, getKeyObjectHandleFromJwk -> initEDRaw(crv, d)); `x` is only
 * type-checked, and the public key is derived from `d`. The vector and
 * cross-backend tests (test/core/crypto-*.test.ts) pin this behaviour.
 */
function privateKey(crv: OkpCurve, raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv, d: base64url(raw), x: UNUSED_X }, format: 'jwk' });
}

/** Raw 32-byte public key -> KeyObject (JWK: ~5 us, against ~70 us for SPKI DER). */
function publicKey(crv: OkpCurve, raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv, x: base64url(raw) }, format: 'jwk' });
}

function rawPublicKey(key: KeyObject): Uint8Array {
  const { x } = key.export({ format: 'jwk' });
  if (typeof x !== 'string') throw new CarkeyError('CK_INTERNAL', 'OKP public key export has no x');
  return new Uint8Array(Buffer.from(x, 'base64url'));
}

/**
 * Verified public keys are cached as KeyObjects: a car verifies the same few
 * owner keys over and over, and key import is a measurable part of a verify.
 */
const VERIFY_KEY_CACHE_LIMIT = 256;
const verifyKeyCache = new Map<string, KeyObject>();

function ed25519VerifyKey(raw: Uint8Array): KeyObject {
  const id = base64url(raw);
  const cached = verifyKeyCache.get(id);
  if (cached !== undefined) return cached;
  const key = publicKey('Ed25519', raw);
  if (verifyKeyCache.size >= VERIFY_KEY_CACHE_LIMIT) verifyKeyCache.clear();
  verifyKeyCache.set(id, key);
  return key;
}

export const nodeBackend: CryptoBackend = {
  name: 'node',
  ed25519PublicKey(seed) {
    return rawPublicKey(createPublicKey(privateKey('Ed25519', seed)));
  },
  ed25519Sign(seed, message) {
    return new Uint8Array(sign(null, message, privateKey('Ed25519', seed)));
  },
  ed25519Verify(rawKey, message, signature) {
    if (rawKey.length !== 32 || signature.length !== 64) return false;
    try {
      return verify(null, message, ed25519VerifyKey(rawKey), signature);
    } catch {
      return false;
    }
  },
  x25519PublicKey(secret) {
    return rawPublicKey(createPublicKey(privateKey('X25519', secret)));
  },
  x25519(secret, peer) {
    try {
      return new Uint8Array(
        diffieHellman({ privateKey: privateKey('X25519', secret), publicKey: publicKey('X25519', peer) }),
      );
    } catch {
      // OpenSSL refuses an all-zero result (low-order peer key): report it the way tweetnacl does.
      return new Uint8Array(32);
    }
  },
  sha512(data) {
    return new Uint8Array(createHash('sha512').update(data).digest());
  },
  secretboxSeal(plaintext, nonce, key) {
    return tweetnaclBackend.secretboxSeal(plaintext, nonce, key);
  },
  secretboxOpen(ciphertext, nonce, key) {
    return tweetnaclBackend.secretboxOpen(ciphertext, nonce, key);
  },
};
