/**
 * Counter-based seeded randomness for the simulated radio.
 *
 * Guarantees: `unit(...parts)` is a pure function of the seed and `parts`
 * (a keyed 53-bit hash mapped to [0, 1)), so each random decision of the
 * simulation (fate of connection event k on link L, RSSI noise of pair P in
 * time slot s, ...) is reproducible from `--seed` and does not depend on the
 * order in which unrelated traffic reached the broker. `derive` gives an
 * independent stream for a sub-component. No global state, no clock.
 */

export type RandomKey = string | number;

export interface KeyedRandom {
  /** Uniform number in [0, 1), fixed by the seed and `parts`. */
  unit(...parts: readonly RandomKey[]): number;
  /** An independent stream keyed by `parts`. */
  derive(...parts: readonly RandomKey[]): KeyedRandom;
}

const TWO_POW_32 = 4_294_967_296;
const TWO_POW_53 = 9_007_199_254_740_992;

/** Largest accepted seed (seeds are unsigned 32-bit integers). */
export const MAX_SEED = TWO_POW_32 - 1;

export function createKeyedRandom(seed: number): KeyedRandom {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
  return new HashRandom(seed % TWO_POW_32, Math.floor(seed / TWO_POW_32) % TWO_POW_32);
}

class HashRandom implements KeyedRandom {
  private readonly low: number;
  private readonly high: number;

  constructor(low: number, high: number) {
    this.low = low;
    this.high = high;
  }

  unit(...parts: readonly RandomKey[]): number {
    return hash53(keyOf(parts), this.low, this.high) / TWO_POW_53;
  }

  derive(...parts: readonly RandomKey[]): KeyedRandom {
    const value = hash53(`derive\u0000${keyOf(parts)}`, this.low, this.high);
    return new HashRandom(value % TWO_POW_32, Math.floor(value / TWO_POW_32));
  }
}

function keyOf(parts: readonly RandomKey[]): string {
  return parts.map((part) => (typeof part === 'number' ? `#${part}` : `$${part}`)).join('\u0000');
}

/** cyrb53-style 53-bit string hash keyed by two 32-bit words. */
function hash53(text: string, low: number, high: number): number {
  let h1 = 0xdeadbeef ^ low;
  let h2 = 0x41c6ce57 ^ high;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (h2 & 0x1fffff) * TWO_POW_32 + (h1 >>> 0);
}
