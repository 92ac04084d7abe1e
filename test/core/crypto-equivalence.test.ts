/**
 * Cross-backend equivalence (fast-check): on random seeds, secrets and
 * messages, the node (OpenSSL) and tweetnacl backends under the same policy
 * give byte-identical Ed25519 public keys and signatures, the same verification
 * results (also on tampered inputs), identical X25519 public keys and shared
 * secrets, SHA-512 digests and secretbox output; each verifies/opens what the
 * other produced.
 *
 * Guarantees: deterministic (fixed fast-check seed); run counts are modest
 * because tweetnacl verifies at tens per second.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { concatBytes, toHex } from '../../src/core/bytes.js';
import { nodeBackend } from '../../src/core/crypto/node-backend.js';
import { Crypto } from '../../src/core/crypto/policy.js';
import { tweetnaclBackend } from '../../src/core/crypto/tweetnacl-backend.js';
import type { ErrorCode, Result } from '../../src/core/errors.js';

const FC_SEED = 0x0c0ffee;
const node = new Crypto(nodeBackend);
const nacl = new Crypto(tweetnaclBackend);

const seed32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const message = fc.uint8Array({ minLength: 0, maxLength: 512 });

function codeOf<T>(result: Result<T>): ErrorCode | 'ok' {
  return result.ok ? 'ok' : result.error.code;
}

function flipBit(data: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(data);
  const index = (bit >> 3) % out.length;
  out[index] = (out[index] ?? 0) ^ (1 << (bit & 7));
  return out;
}

describe('node and tweetnacl backends are interchangeable', () => {
  it('Ed25519: identical public keys and signatures; each verifies the other\'s signature', () => {
    fc.assert(
      fc.property(seed32, message, (seed, msg) => {
        const publicKey = node.publicKeyFromSeed(seed);
        expect(toHex(nacl.publicKeyFromSeed(seed))).toBe(toHex(publicKey));
        const signature = node.sign(seed, msg);
        expect(toHex(nacl.sign(seed, msg))).toBe(toHex(signature));
        expect(codeOf(node.verify(publicKey, msg, signature))).toBe('ok');
        expect(codeOf(nacl.verify(publicKey, msg, signature))).toBe('ok');
      }),
      { seed: FC_SEED, numRuns: 40 },
    );
  });

  it('Ed25519: identical verification results after one flipped bit in the message, signature or key', () => {
    const target = fc.constantFrom('message', 'signature', 'publicKey');
    fc.assert(
      fc.property(seed32, message, target, fc.nat({ max: 4095 }), (seed, msg, which, bit) => {
        const publicKey = node.publicKeyFromSeed(seed);
        const signature = node.sign(seed, msg);
        const args: [Uint8Array, Uint8Array, Uint8Array] =
          which === 'message'
            ? [publicKey, msg.length === 0 ? Uint8Array.of(bit & 0xff) : flipBit(msg, bit), signature]
            : which === 'signature'
              ? [publicKey, msg, flipBit(signature, bit)]
              : [flipBit(publicKey, bit), msg, signature];
        const fromNode = codeOf(node.verify(...args));
        expect(codeOf(nacl.verify(...args))).toBe(fromNode);
        expect(fromNode).toBe('CK_CRYPTO_BAD_SIGNATURE');
      }),
      { seed: FC_SEED, numRuns: 40 },
    );
  });

  it('X25519: identical public keys and shared secrets, equal on both sides', () => {
    fc.assert(
      fc.property(seed32, seed32, (secretA, secretB) => {
        const a = node.x25519KeyPair(secretA);
        const b = node.x25519KeyPair(secretB);
        expect(toHex(nacl.x25519KeyPair(secretA).publicKey)).toBe(toHex(a.publicKey));
        expect(toHex(nacl.x25519KeyPair(secretB).publicKey)).toBe(toHex(b.publicKey));
        const results = [
          node.sharedSecret(secretA, b.publicKey),
          nacl.sharedSecret(secretA, b.publicKey),
          node.sharedSecret(secretB, a.publicKey),
          nacl.sharedSecret(secretB, a.publicKey),
        ].map((r) => (r.ok ? toHex(r.value) : r.error.code));
        expect(new Set(results).size).toBe(1);
        expect(results[0]).toMatch(/^[0-9a-f]{64}$/);
      }),
      { seed: FC_SEED, numRuns: 100 },
    );
  });

  it('X25519: identical results for arbitrary 32-byte peer keys (including low-order and non-canonical ones)', () => {
    fc.assert(
      fc.property(seed32, seed32, (secret, peer) => {
        const fromNode = node.sharedSecret(secret, peer);
        const fromNacl = nacl.sharedSecret(secret, peer);
        expect(fromNacl.ok ? toHex(fromNacl.value) : fromNacl.error.code).toBe(fromNode.ok ? toHex(fromNode.value) : fromNode.error.code);
      }),
      { seed: FC_SEED, numRuns: 200 },
    );
  });

  it('SHA-512: identical digests, and hash(...parts) is the digest of the concatenation', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 0, maxLength: 1500 }), { minLength: 1, maxLength: 4 }), (parts) => {
        const whole = concatBytes(...parts);
        const digest = toHex(node.hash(whole));
        expect(digest).toMatch(/^[0-9a-f]{128}$/);
        expect(toHex(nacl.hash(whole))).toBe(digest);
        expect(toHex(node.hash(...parts))).toBe(digest);
        expect(toHex(nacl.hash(...parts))).toBe(digest);
      }),
      { seed: FC_SEED, numRuns: 200 },
    );
  });

  it('secretbox: identical ciphertexts; each opens the other\'s', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 1024 }),
        fc.uint8Array({ minLength: 24, maxLength: 24 }),
        seed32,
        (plaintext, nonce, key) => {
          const sealed = node.seal(plaintext, nonce, key);
          expect(toHex(nacl.seal(plaintext, nonce, key))).toBe(toHex(sealed));
          const opened = nacl.open(sealed, nonce, key);
          expect(opened.ok ? toHex(opened.value) : opened.error.code).toBe(toHex(plaintext));
        },
      ),
      { seed: FC_SEED, numRuns: 200 },
    );
  });
});
