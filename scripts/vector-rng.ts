/**
 * Deterministic, recording randomness for the protocol test vectors.
 *
 * Guarantees: the same label gives the same byte stream on every machine
 * (SHA-512(label ‖ decimal block counter) blocks, the construction of
 * test/helpers/core-fixtures.ts); every draw is recorded in order, so the
 * vectors can list the exact bytes each party consumed and a third party can
 * replay a session without this generator. Never use it for real keys.
 */
import { createHash } from 'node:crypto';
import { toHex } from '../src/core/bytes.js';
import type { RandomSource } from '../src/core/crypto/backend.js';
import { CarkeyError } from '../src/core/errors.js';

/** How the fixed identity seeds are derived (documented in the vectors). */
export const SEED_DERIVATION = 'SHA-512(UTF-8 "carkey vectors v1 seed: " ‖ name)[0..32]';

/** A fixed 32-byte Ed25519 seed for a named party of the vectors. */
export function vectorSeed(name: string): Uint8Array {
  return new Uint8Array(createHash('sha512').update(`carkey vectors v1 seed: ${name}`).digest().subarray(0, 32));
}

export interface Draw {
  readonly length: number;
  readonly bytes: Uint8Array;
}

/** One labelled byte stream that remembers what it handed out. */
export class RecordingRandom {
  private counter = 0;
  private pool = new Uint8Array(0);
  private readonly recorded: Draw[] = [];
  /** The `RandomSource` to inject into a session. */
  readonly source: RandomSource;

  constructor(readonly label: string) {
    this.source = (length: number) => this.draw(length);
  }

  get draws(): readonly Draw[] {
    return this.recorded;
  }

  private draw(length: number): Uint8Array {
    while (this.pool.length < length) {
      const block = createHash('sha512').update(this.label).update(String(this.counter++)).digest();
      const next = new Uint8Array(this.pool.length + block.length);
      next.set(this.pool);
      next.set(block, this.pool.length);
      this.pool = next;
    }
    const out = this.pool.slice(0, length);
    this.pool = this.pool.slice(length);
    this.recorded.push({ length, bytes: Uint8Array.from(out) });
    return out;
  }

  /**
   * The draws, named by purpose, as JSON rows. Throws CK_INTERNAL when the
   * code consumed a different number or size of draws than `expected` says,
   * so a change in the reference code's RNG use cannot go unnoticed.
   */
  describe(expected: readonly (readonly [purpose: string, length: number])[]): { purpose: string; length: number; hex: string }[] {
    if (expected.length !== this.recorded.length) {
      throw new CarkeyError('CK_INTERNAL', `${this.label}: expected ${expected.length} random draws, the code made ${this.recorded.length}`);
    }
    return expected.map(([purpose, length], index) => {
      const draw = this.recorded[index];
      if (draw?.length !== length) {
        throw new CarkeyError('CK_INTERNAL', `${this.label}: draw ${index} (${purpose}) should be ${length} bytes, was ${draw?.length ?? 'missing'}`);
      }
      return { purpose, length, hex: toHex(draw.bytes) };
    });
  }

  /** The bytes of draw `index` (throws CK_INTERNAL if there is none). */
  bytesOf(index: number): Uint8Array {
    const draw = this.recorded[index];
    if (draw === undefined) throw new CarkeyError('CK_INTERNAL', `${this.label}: no draw ${index}`);
    return draw.bytes;
  }
}
