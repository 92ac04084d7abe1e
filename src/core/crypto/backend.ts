/**
 * The primitive interface both crypto backends implement, byte for byte alike.
 *
 * Guarantees (for implementers): every method is deterministic given its inputs,
 * never reads a clock or an RNG, and never throws for well-sized inputs except
 * where noted. Length and key-validity policy lives in `policy.ts`, not here;
 * backends may assume lengths were checked by the caller.
 */

export type BackendName = 'node' | 'tweetnacl';

export interface CryptoBackend {
  readonly name: BackendName;
  /** Ed25519 public key (32 bytes) from a 32-byte seed (RFC 8032 private key). */
  ed25519PublicKey(seed: Uint8Array): Uint8Array;
  /** Ed25519 signature (64 bytes), RFC 8032 pure EdDSA. */
  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /** Raw Ed25519 verification; returns false for any failure, never throws. */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  /** X25519 public key from a 32-byte secret (RFC 7748, clamping inside). */
  x25519PublicKey(secret: Uint8Array): Uint8Array;
  /** X25519 shared secret; returns an all-zero array for low-order inputs (never throws). */
  x25519(secret: Uint8Array, publicKey: Uint8Array): Uint8Array;
  /** SHA-512 digest (64 bytes). */
  sha512(data: Uint8Array): Uint8Array;
  /** XSalsa20-Poly1305 secretbox seal (NaCl crypto_secretbox); 32-byte key, 24-byte nonce. */
  secretboxSeal(plaintext: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array;
  /** secretbox open; returns null on authentication failure. */
  secretboxOpen(ciphertext: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | null;
}

/** Injected randomness: returns `length` fresh random bytes. */
export type RandomSource = (length: number) => Uint8Array;

/** Injected clock: milliseconds since the Unix epoch. */
export type Clock = () => number;
