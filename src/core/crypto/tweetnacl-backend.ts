/**
 * Portable crypto backend on tweetnacl (pure JS: browsers, React Native).
 *
 * Guarantees: byte-identical results to the node backend for every input the
 * policy layer lets through; never throws for wrong lengths in verify (it
 * returns false — tweetnacl itself throws there). tweetnacl does not check
 * S < L; the policy layer does, for both backends alike.
 */
import nacl from 'tweetnacl';
import type { CryptoBackend } from './backend.js';

export const tweetnaclBackend: CryptoBackend = {
  name: 'tweetnacl',
  ed25519PublicKey(seed) {
    return nacl.sign.keyPair.fromSeed(seed).publicKey;
  },
  ed25519Sign(seed, message) {
    const { secretKey } = nacl.sign.keyPair.fromSeed(seed);
    return nacl.sign.detached(message, secretKey);
  },
  ed25519Verify(publicKey, message, signature) {
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    try {
      return nacl.sign.detached.verify(message, signature, publicKey);
    } catch {
      return false;
    }
  },
  x25519PublicKey(secret) {
    return nacl.scalarMult.base(secret);
  },
  x25519(secret, publicKey) {
    return nacl.scalarMult(secret, publicKey);
  },
  sha512(data) {
    return nacl.hash(data);
  },
  secretboxSeal(plaintext, nonce, key) {
    return nacl.secretbox(plaintext, nonce, key);
  },
  secretboxOpen(ciphertext, nonce, key) {
    return nacl.secretbox.open(ciphertext, nonce, key);
  },
};
