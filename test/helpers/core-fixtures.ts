/**
 * Deterministic fixtures for core tests and vectors: a seeded RNG (SHA-512 in
 * counter mode over a seed label) and fixed identities for car, owner and friend.
 */
import { createHash } from 'node:crypto';
import type { RandomSource } from '../../src/core/crypto/backend.js';

/** Deterministic byte stream: SHA-512(seed ‖ counter) blocks. Not for production. */
export function seededRandom(seed: string): RandomSource {
  let counter = 0;
  let pool = new Uint8Array(0);
  return (length: number) => {
    while (pool.length < length) {
      const block = createHash('sha512').update(seed).update(String(counter++)).digest();
      const next = new Uint8Array(pool.length + block.length);
      next.set(pool);
      next.set(block, pool.length);
      pool = next;
    }
    const out = pool.slice(0, length);
    pool = pool.slice(length);
    return out;
  };
}

export function fixedSeed(name: string): Uint8Array {
  return new Uint8Array(createHash('sha512').update(`carkey test seed: ${name}`).digest().subarray(0, 32));
}
