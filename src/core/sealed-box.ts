/**
 * Anonymous public-key encryption to an Ed25519 identity: how a share bundle
 * reaches a friend through the cloud mailbox, how a remote command reaches
 * the car and its result the phone, without the cloud reading them.
 *
 * Construction (docs/protocol.md §17.3), the libsodium `crypto_box_seal`
 * idea on carkey's primitives:
 *   recipient X25519 public = the Montgomery form u = (1 + y) / (1 − y) mod p
 *     of the recipient's Ed25519 public key (libsodium
 *     crypto_sign_ed25519_pk_to_curve25519);
 *   recipient X25519 secret = SHA-512(Ed25519 seed)[0..32] (clamped by X25519;
 *     libsodium crypto_sign_ed25519_sk_to_curve25519);
 *   e = fresh X25519 key pair; shared = X25519(e.secret, recipient public) ≠ 0;
 *   okm = SHA-512(L("carkey/v1/sealed-box") ‖ shared ‖ e.public ‖ recipient Ed25519 key);
 *   box = e.public (32) ‖ secretbox(plaintext, nonce = okm[32..56], key = okm[0..32]).
 *
 * Guarantees: the recipient key is checked (canonical, not small order)
 * before use; an all-zero shared secret is refused; `openSealedBox` never
 * throws. A sealed box is confidential and tamper-evident but anonymous:
 * whatever must be attributed inside it carries its own signature.
 * Pure: randomness is a parameter.
 */
import { concatBytes } from './bytes.js';
import type { RandomSource } from './crypto/backend.js';
import type { Crypto } from './crypto/policy.js';
import { CarkeyError, fail, ok, type Result } from './errors.js';
import { LABELS } from './labels.js';

export const SEALED_BOX_OVERHEAD = 32 + 16;

const P = (1n << 255n) - 19n;

function modPow(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  let b = base % P;
  let e = exponent;
  while (e > 0n) {
    if ((e & 1n) === 1n) result = (result * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return result;
}

function littleEndianToBigInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] ?? 0);
  return value;
}

function bigIntToLittleEndian(value: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let v = value;
  for (let i = 0; i < length; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/**
 * The X25519 public key of an Ed25519 public key. The caller has checked the
 * key (`crypto.checkPublicKey`); y = 1 (the identity, excluded by that check)
 * has no image.
 */
export function montgomeryFromEdwards(edwardsPublicKey: Uint8Array): Uint8Array {
  const y = littleEndianToBigInt(edwardsPublicKey) & ((1n << 255n) - 1n);
  const denominator = (P + 1n - y) % P;
  if (denominator === 0n) throw new CarkeyError('CK_CRYPTO_SMALL_ORDER_KEY', 'the identity point has no X25519 form');
  const u = ((1n + y) * modPow(denominator, P - 2n)) % P;
  return bigIntToLittleEndian(u, 32);
}

/** The X25519 secret that belongs to an Ed25519 seed (X25519 clamps it). */
export function x25519SecretFromSeed(crypto: Crypto, seed: Uint8Array): Uint8Array {
  if (seed.length !== 32) throw new CarkeyError('CK_CRYPTO_BAD_LENGTH', 'seed must be 32 bytes');
  return crypto.hash(seed).subarray(0, 32);
}

function boxKeys(crypto: Crypto, shared: Uint8Array, ephemeralPublic: Uint8Array, recipient: Uint8Array): { key: Uint8Array; nonce: Uint8Array } {
  const okm = crypto.hash(LABELS.sealedBox, shared, ephemeralPublic, recipient);
  return { key: okm.subarray(0, 32), nonce: okm.subarray(32, 56) };
}

/** Seal `plaintext` to the holder of `recipient`'s Ed25519 seed. Throws only on a bad recipient key. */
export function sealTo(crypto: Crypto, random: RandomSource, recipient: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const check = crypto.checkPublicKey(recipient);
  if (!check.ok) throw check.error;
  const ephemeral = crypto.x25519KeyPair(random(32));
  const shared = crypto.sharedSecret(ephemeral.secretKey, montgomeryFromEdwards(recipient));
  if (!shared.ok) throw shared.error;
  const { key, nonce } = boxKeys(crypto, shared.value, ephemeral.publicKey, recipient);
  return concatBytes(ephemeral.publicKey, crypto.seal(plaintext, nonce, key));
}

/** Open a box sealed to the Ed25519 identity of `seed`. Never throws. */
export function openSealedBox(crypto: Crypto, seed: Uint8Array, box: Uint8Array): Result<Uint8Array> {
  if (box.length < SEALED_BOX_OVERHEAD) return fail('CK_CRYPTO_DECRYPT_FAILED', 'sealed box too short');
  if (seed.length !== 32) return fail('CK_CRYPTO_BAD_LENGTH', 'seed must be 32 bytes');
  const ephemeralPublic = box.subarray(0, 32);
  const shared = crypto.sharedSecret(x25519SecretFromSeed(crypto, seed), ephemeralPublic);
  if (!shared.ok) return shared;
  const { key, nonce } = boxKeys(crypto, shared.value, ephemeralPublic, crypto.publicKeyFromSeed(seed));
  const opened = crypto.open(box.subarray(32), nonce, key);
  return opened.ok ? ok(opened.value) : opened;
}
