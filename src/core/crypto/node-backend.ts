/**
 * Fast crypto backend on node:crypto (OpenSSL): the default where it exists.
 *
 * Guarantees: byte-identical to the tweetnacl backend (same Ed25519 signatures
 * from the same seed, same X25519 outputs, same SHA-512); ~150x faster for
 * signatures. OpenSSL has no XSalsa20-Poly1305, so secretbox is tweetnacl's
 * here too (it is cheap next to the public-key operations). Raw keys are
 * wrapped in fixed DER prefixes (PKCS#8 / SPKI) to make KeyObjects; verify and
 * X25519 never throw: OpenSSL's refusal of a key or an all-zero X25519 result
 * becomes `false` / all-zero output, as in tweetnacl.
 *
 * node:crypto is computation, not I/O: importing it keeps src/core pure.
 */
import { createHash, createPrivateKey, createPublicKey, diffieHellman, sign, verify, type KeyObject } from 'node:crypto';
import type { CryptoBackend } from './backend.js';
import { tweetnaclBackend } from './tweetnacl-backend.js';

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

function privateKey(prefix: Buffer, raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([prefix, raw]), format: 'der', type: 'pkcs8' });
}

function publicKey(prefix: Buffer, raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([prefix, raw]), format: 'der', type: 'spki' });
}

function rawPublicKey(key: KeyObject): Uint8Array {
  const der = key.export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - 32));
}

/**
 * Verified public keys are cached as KeyObjects: a car verifies the same few
 * owner keys over and over, and DER parsing is a measurable part of a verify.
 */
const VERIFY_KEY_CACHE_LIMIT = 256;
const verifyKeyCache = new Map<string, KeyObject>();

function ed25519VerifyKey(raw: Uint8Array): KeyObject {
  const id = Buffer.from(raw).toString('hex');
  const cached = verifyKeyCache.get(id);
  if (cached !== undefined) return cached;
  const key = publicKey(ED25519_SPKI_PREFIX, raw);
  if (verifyKeyCache.size >= VERIFY_KEY_CACHE_LIMIT) verifyKeyCache.clear();
  verifyKeyCache.set(id, key);
  return key;
}

export const nodeBackend: CryptoBackend = {
  name: 'node',
  ed25519PublicKey(seed) {
    return rawPublicKey(createPublicKey(privateKey(ED25519_PKCS8_PREFIX, seed)));
  },
  ed25519Sign(seed, message) {
    return new Uint8Array(sign(null, message, privateKey(ED25519_PKCS8_PREFIX, seed)));
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
    return rawPublicKey(createPublicKey(privateKey(X25519_PKCS8_PREFIX, secret)));
  },
  x25519(secret, peer) {
    try {
      return new Uint8Array(
        diffieHellman({ privateKey: privateKey(X25519_PKCS8_PREFIX, secret), publicKey: publicKey(X25519_SPKI_PREFIX, peer) }),
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
