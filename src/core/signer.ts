/**
 * Who signs for a phone: its Ed25519 public key and a way to sign, possibly
 * asynchronously. The CLI signs with a seed (`seedSigner`); the web app signs
 * with a non-extractable WebCrypto key that page script cannot read, whose
 * `sign` is necessarily async. Core code that signs for the phone has a
 * `…With(signer)` variant taking one of these.
 *
 * Guarantees: pure (no I/O, no clock, no RNG). `checkedSign` verifies what a
 * signer returned under the core policy before it is used, so a signer that
 * returns garbage (wrong key, broken backend) fails with
 * CK_CRYPTO_BAD_SIGNATURE instead of producing a document the car refuses.
 */
import type { Crypto } from './crypto/policy.js';
import { CarkeyError } from './errors.js';

export interface Signer {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/** A signer over a seed held in memory (the seed stays the caller's to wipe). */
export function seedSigner(crypto: Crypto, seed: Uint8Array): Signer {
  const publicKey = crypto.publicKeyFromSeed(seed);
  return { publicKey, sign: (message) => Promise.resolve(crypto.sign(seed, message)) };
}

/** Sign with `signer` and check the signature verifies under its public key. */
export async function checkedSign(crypto: Crypto, signer: Signer, message: Uint8Array): Promise<Uint8Array> {
  const signature = await signer.sign(message);
  const verified = crypto.verify(signer.publicKey, message, signature);
  if (!verified.ok) throw new CarkeyError('CK_CRYPTO_BAD_SIGNATURE', `the signer's signature does not verify: ${verified.error.message}`);
  return signature;
}
