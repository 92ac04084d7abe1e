/**
 * Mutations of recorded protocol frames for the fuzz suites
 * (test/core/session-fuzz.test.ts, test/integration/radio-fuzz.test.ts).
 *
 * A fuzz case is a small integer seed: `FuzzRandom` (mulberry32) turns it into
 * the same stream of choices every time, so a failing case is rerun from the
 * seed printed with it. Byte-level edits: bit flips, byte replacement,
 * truncation, extension, a splice with another recorded frame, edits of the
 * header (version, type) and of the sealed sequence field. Sequence-level
 * edits: replace a frame by one from another session (replay), reorder,
 * duplicate, drop, cut the sequence short, insert a pure random frame.
 * Chunk-level edits (after `splitMessage`): the START chunk's length field,
 * the chunk counter, a dropped, duplicated or random chunk.
 *
 * Guarantees: pure functions of the seed and the inputs (no clock, no global
 * RNG); inputs are never modified in place.
 */
import { MAX_MESSAGE } from '../../src/core/messages.js';

/** mulberry32: a tiny, fast, seedable PRNG (not for keys). */
export class FuzzRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n) (0 when n ≤ 0). */
  below(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[this.below(items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }

  bytes(length: number): Uint8Array {
    return Uint8Array.from({ length }, () => this.u32() & 0xff);
  }
}

export const BYTE_MUTATIONS = ['bit-flip', 'bit-flips', 'byte-replace', 'truncate', 'extend', 'splice', 'header', 'seq-field', 'zero-run'] as const;
export type ByteMutation = (typeof BYTE_MUTATIONS)[number];

/** One byte-level edit of `frame`; `others` feeds splices. Returns the kind applied with the result. */
export function mutateFrame(r: FuzzRandom, frame: Uint8Array, others: readonly Uint8Array[]): { readonly kind: ByteMutation; readonly bytes: Uint8Array } {
  const kind = r.pick(BYTE_MUTATIONS);
  const out = Uint8Array.from(frame);
  const at = r.below(out.length);
  switch (kind) {
    case 'bit-flip':
      if (out.length > 0) out[at] = (out[at] ?? 0) ^ (1 << r.below(8));
      return { kind, bytes: out };
    case 'bit-flips':
      for (let i = 0, n = 2 + r.below(6); i < n && out.length > 0; i++) {
        const j = r.below(out.length);
        out[j] = (out[j] ?? 0) ^ (1 << r.below(8));
      }
      return { kind, bytes: out };
    case 'byte-replace':
      if (out.length > 0) out[at] = r.below(256);
      return { kind, bytes: out };
    case 'truncate':
      return { kind, bytes: out.slice(0, r.below(out.length)) };
    case 'extend': {
      const extra = r.chance(0.05) ? r.bytes(Math.max(0, MAX_MESSAGE + 1 - out.length)) : r.bytes(1 + r.below(64));
      return { kind, bytes: concat(out, extra) };
    }
    case 'splice': {
      const other = others.length > 0 ? r.pick(others) : r.bytes(r.below(200));
      return { kind, bytes: concat(out.subarray(0, r.below(out.length + 1)), other.subarray(r.below(other.length + 1))) };
    }
    case 'header':
      // version byte or type byte: another known type, or any byte
      if (out.length >= 2) {
        if (r.chance(0.5)) out[1] = r.pick([0x01, 0x02, 0x03, 0x04, 0x05, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15]);
        else out[r.below(2)] = r.below(256);
      }
      return { kind, bytes: out };
    case 'seq-field':
      // sealed frames carry seq u32 at bytes 2..5: off by one, zero, or all ones
      if (out.length >= 6) {
        const seq = ((out[2] ?? 0) << 24) | ((out[3] ?? 0) << 16) | ((out[4] ?? 0) << 8) | (out[5] ?? 0);
        const next = r.pick([seq + 1, seq - 1, 0, 0xffffffff, r.u32()]) >>> 0;
        out.set([next >>> 24, (next >>> 16) & 0xff, (next >>> 8) & 0xff, next & 0xff], 2);
      }
      return { kind, bytes: out };
    case 'zero-run': {
      const length = 1 + r.below(32);
      out.fill(0, at, Math.min(out.length, at + length));
      return { kind, bytes: out };
    }
  }
}

export const SEQUENCE_MUTATIONS = ['mutate', 'replay-other', 'reorder', 'duplicate', 'drop', 'cut', 'random-frame', 'reflect'] as const;
export type SequenceMutation = (typeof SEQUENCE_MUTATIONS)[number];

/**
 * Apply `count` sequence-level edits to `frames`. `otherPhoneFrames` are
 * frames of other recorded sessions (replays, splices); `carFrames` are frames
 * the car sent (reflected back at it).
 */
export function mutateSequence(r: FuzzRandom, frames: readonly Uint8Array[], count: number, otherPhoneFrames: readonly Uint8Array[], carFrames: readonly Uint8Array[]): { readonly kinds: string[]; readonly frames: Uint8Array[] } {
  let out = [...frames];
  const kinds: string[] = [];
  for (let i = 0; i < count; i++) {
    // Half the edits change bytes inside a frame; the rest rearrange whole frames.
    const kind = r.chance(0.5) ? 'mutate' : r.pick(SEQUENCE_MUTATIONS);
    const at = r.below(out.length);
    switch (kind) {
      case 'mutate': {
        const target = out[at];
        if (target === undefined) continue;
        const edit = mutateFrame(r, target, otherPhoneFrames);
        out[at] = edit.bytes;
        kinds.push(edit.kind);
        continue;
      }
      case 'replay-other':
        if (out.length > 0) out[at] = r.pick(otherPhoneFrames);
        break;
      case 'reorder':
        if (out.length >= 2) {
          const j = r.below(out.length);
          const a = out[at];
          const b = out[j];
          if (a !== undefined && b !== undefined) {
            out[at] = b;
            out[j] = a;
          }
        }
        break;
      case 'duplicate': {
        const target = out[at];
        if (target !== undefined) out.splice(at, 0, target);
        break;
      }
      case 'drop':
        out.splice(at, 1);
        break;
      case 'cut':
        out = out.slice(0, at);
        break;
      case 'random-frame':
        out.splice(r.below(out.length + 1), 0, randomFrame(r));
        break;
      case 'reflect':
        out.splice(r.below(out.length + 1), 0, r.pick(carFrames));
        break;
    }
    kinds.push(kind);
  }
  return { kinds, frames: out };
}

/** Pure random bytes, or a random body behind a valid version byte and a known or unknown type. */
export function randomFrame(r: FuzzRandom): Uint8Array {
  const body = r.bytes(r.below(r.chance(0.1) ? 600 : 200));
  if (r.chance(0.4)) return body;
  return concat(Uint8Array.of(1, r.chance(0.7) ? r.pick([0x01, 0x03, 0x05, 0x10, 0x12, 0x14]) : r.below(256)), body);
}

export const CHUNK_MUTATIONS = ['length-field', 'counter', 'drop-chunk', 'duplicate-chunk', 'random-chunk', 'reserved-bit'] as const;

/** One framing-level edit of the chunks of one message (START header: 0x80 ‖ length u16). */
export function mutateChunks(r: FuzzRandom, chunks: readonly Uint8Array[]): { readonly kind: (typeof CHUNK_MUTATIONS)[number]; readonly chunks: Uint8Array[] } {
  const kind = r.pick(CHUNK_MUTATIONS);
  const out: Uint8Array[] = chunks.map((c) => Uint8Array.from(c));
  const at = r.below(out.length);
  const chunk = out[at];
  switch (kind) {
    case 'length-field': {
      const first = out[0];
      if (first !== undefined && first.length >= 3) {
        const total = ((first[1] ?? 0) << 8) | (first[2] ?? 0);
        const next = r.pick([total + 1, total - 1, 0, 0xffff, MAX_MESSAGE, MAX_MESSAGE + 1, r.below(0x10000)]) & 0xffff;
        first[1] = next >>> 8;
        first[2] = next & 0xff;
      }
      break;
    }
    case 'counter':
      if (chunk !== undefined && chunk.length > 0) chunk[0] = ((chunk[0] ?? 0) & 0x80) | r.below(64);
      break;
    case 'drop-chunk':
      out.splice(at, 1);
      break;
    case 'duplicate-chunk':
      if (chunk !== undefined) out.splice(at, 0, Uint8Array.from(chunk));
      break;
    case 'random-chunk':
      out.splice(r.below(out.length + 1), 0, r.bytes(r.below(40)));
      break;
    case 'reserved-bit':
      if (chunk !== undefined && chunk.length > 0) chunk[0] = (chunk[0] ?? 0) | 0x40;
      break;
  }
  return { kind, chunks: out };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
