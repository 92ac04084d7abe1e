/**
 * GATT framing: split/reassemble round trip for every MTU 23..517 and random
 * sizes, chunk sizes within MTU - 3, counters wrapping mod 64, the size cap
 * enforced on the START chunk, lost/reordered/duplicated chunks, overflow,
 * the inter-chunk timeout and recovery with the next START, and arbitrary
 * chunk sequences that never throw and never stop the next message.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { equalBytes } from '../../src/core/bytes.js';
import { CarkeyError, isCarkeyError, type ErrorCode } from '../../src/core/errors.js';
import { ATT_OVERHEAD, chunkPayloadSize, DEFAULT_MAX_MESSAGE, MAX_MTU, MIN_MTU, Reassembler, splitMessage, type ChunkOutcome } from '../../src/core/framing.js';
import { propertyRuns } from '../helpers/core-harness.js';

const ALL_MTUS = Array.from({ length: MAX_MTU - MIN_MTU + 1 }, (_, i) => MIN_MTU + i);

const PATTERN = Uint8Array.from({ length: DEFAULT_MAX_MESSAGE + 256 }, (_, i) => (i * 31) & 0xff);

function message(length: number, salt = 0): Uint8Array {
  return PATTERN.slice(salt, salt + length);
}

/** Push every chunk at `now`; return the outcomes. */
function pushAll(reassembler: Reassembler, chunks: readonly Uint8Array[], now = 0): ChunkOutcome[] {
  return chunks.map((chunk) => reassembler.push(chunk, now));
}

function errorCode(outcome: ChunkOutcome): ErrorCode | undefined {
  return outcome.error?.code;
}

/**
 * Split and reassemble; return what is wrong, if anything: chunk count and
 * sizes, headers, the message exactly once on the last chunk, no error.
 * (Plain checks: this runs for thousands of MTU × size pairs.)
 */
function roundTripProblem(input: Uint8Array, mtu: number): string | undefined {
  const chunks = splitMessage(input, mtu);
  const size = mtu - ATT_OVERHEAD;
  const expectedCount = 1 + Math.ceil(Math.max(0, input.length - (size - 3)) / (size - 1));
  if (chunks.length !== expectedCount) return `${chunks.length} chunks, expected ${expectedCount}`;
  const reassembler = new Reassembler();
  for (let index = 0; index < chunks.length; index++) {
    const chunk = chunks[index] ?? new Uint8Array(0);
    if (chunk.length > size) return `chunk ${index} has ${chunk.length} > ${size} bytes`;
    if (chunk[0] !== (index === 0 ? 0x80 : index & 0x3f)) return `chunk ${index} has header ${chunk[0]}`;
    const outcome = reassembler.push(chunk, 0);
    if (outcome.error !== undefined) return `chunk ${index}: ${outcome.error.code}`;
    const last = index === chunks.length - 1;
    if (!last && outcome.message !== undefined) return `message delivered early at chunk ${index}`;
    if (last && (outcome.message === undefined || !equalBytes(outcome.message, input))) return 'message missing or different';
  }
  return reassembler.busy ? 'still busy after the last chunk' : undefined;
}

function roundTrip(input: Uint8Array, mtu: number): void {
  expect(roundTripProblem(input, mtu), `MTU ${mtu}, ${input.length} bytes`).toBeUndefined();
}

describe('split and reassemble', () => {
  it('round-trips the boundary sizes of every MTU 23..517', () => {
    const problems: string[] = [];
    for (const mtu of ALL_MTUS) {
      const first = mtu - ATT_OVERHEAD - 3;
      const next = mtu - ATT_OVERHEAD - 1;
      for (const length of [0, 1, first - 1, first, first + 1, first + next - 1, first + next, first + next + 1, DEFAULT_MAX_MESSAGE]) {
        const problem = roundTripProblem(message(length, mtu % 256), mtu);
        if (problem !== undefined) problems.push(`MTU ${mtu}, ${length} bytes: ${problem}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('round-trips random sizes for every MTU (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: DEFAULT_MAX_MESSAGE }), fc.integer({ min: 0, max: 255 }), (length, salt) => {
        const problems = ALL_MTUS.map((mtu) => roundTripProblem(message(length, salt), mtu)).filter((p) => p !== undefined);
        expect(problems).toEqual([]);
      }),
      propertyRuns(40),
    );
  });

  it('round-trips random contents for random MTUs (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...ALL_MTUS), fc.uint8Array({ maxLength: DEFAULT_MAX_MESSAGE, size: 'max' }), (mtu, input) => roundTrip(input, mtu)),
      propertyRuns(300),
    );
  });

  it('wraps the chunk counter past 63 (an 8 KiB message at MTU 23 takes 432 chunks)', () => {
    const chunks = splitMessage(message(DEFAULT_MAX_MESSAGE), MIN_MTU);
    expect(chunks.length).toBe(432);
    expect(chunks[64]?.[0]).toBe(0);
    expect(chunks[65]?.[0]).toBe(1);
  });

  it('refuses MTUs outside 23..517 and messages above the cap', () => {
    for (const mtu of [0, 22, 518, 23.5, Number.NaN]) {
      expect(() => splitMessage(new Uint8Array(1), mtu)).toThrow(expect.objectContaining({ code: 'CK_FRAME_BAD_MTU' }) as CarkeyError);
      expect(() => chunkPayloadSize(mtu)).toThrow(CarkeyError);
    }
    expect(() => splitMessage(new Uint8Array(DEFAULT_MAX_MESSAGE + 1), 100)).toThrow(expect.objectContaining({ code: 'CK_CODEC_TOO_LARGE' }) as CarkeyError);
    expect(() => splitMessage(new Uint8Array(11), 100, 10)).toThrow(expect.objectContaining({ code: 'CK_CODEC_TOO_LARGE' }) as CarkeyError);
    // The u16 length field is a hard limit whatever the cap.
    expect(() => splitMessage(new Uint8Array(0x10000), 517, 0x20000)).toThrow(expect.objectContaining({ code: 'CK_CODEC_TOO_LARGE' }) as CarkeyError);
  });
});

describe('the reassembler rejects bad sequences and recovers with the next START', () => {
  const chunks = splitMessage(message(100), MIN_MTU); // 1 START (17 bytes of data) + 5 continuations
  const good = message(40, 7);
  const goodChunks = splitMessage(good, MIN_MTU);

  function recovers(reassembler: Reassembler, now = 0): void {
    const outcomes = pushAll(reassembler, goodChunks, now);
    expect(outcomes.at(-1)).toEqual({ message: good });
  }

  it('enforces the cap on the declared length of the START chunk, before any continuation', () => {
    const reassembler = new Reassembler({ maxMessage: 100 });
    const start = Uint8Array.of(0x80, 0, 101, 1, 2, 3);
    expect(errorCode(reassembler.push(start, 0))).toBe('CK_CODEC_TOO_LARGE');
    expect(reassembler.busy).toBe(false);
    expect(errorCode(reassembler.push(Uint8Array.of(0x01, 4, 5), 0))).toBe('CK_FRAME_OUT_OF_ORDER');
    expect(errorCode(new Reassembler().push(Uint8Array.of(0x80, 0x20, 0x01), 0))).toBe('CK_CODEC_TOO_LARGE'); // 8193 > default cap
    expect(new Reassembler({ maxMessage: 100 }).push(Uint8Array.of(0x80, 0, 100), 0)).toEqual({});
    recovers(reassembler);
  });

  it.each([
    ['a lost chunk', [0, 2, 3, 4, 5]],
    ['reordered chunks', [0, 2, 1, 3, 4, 5]],
    ['a duplicated chunk', [0, 1, 1, 2, 3, 4, 5]],
  ])('%s is CK_FRAME_OUT_OF_ORDER', (_name, order) => {
    const reassembler = new Reassembler();
    const outcomes = pushAll(reassembler, order.map((index) => chunks[index] ?? new Uint8Array(0)));
    expect(outcomes.map(errorCode)).toContain('CK_FRAME_OUT_OF_ORDER');
    expect(outcomes.some((o) => o.message !== undefined)).toBe(false);
    recovers(reassembler);
  });

  it('a continuation without a START is CK_FRAME_OUT_OF_ORDER', () => {
    expect(errorCode(new Reassembler().push(Uint8Array.of(0x01, 1), 0))).toBe('CK_FRAME_OUT_OF_ORDER');
  });

  it('a new START abandons a partial message: reported, and the new message still completes', () => {
    const reassembler = new Reassembler();
    reassembler.push(chunks[0] ?? new Uint8Array(0), 0);
    const outcomes = pushAll(reassembler, goodChunks);
    expect(errorCode(outcomes[0] ?? {})).toBe('CK_FRAME_OUT_OF_ORDER');
    expect(outcomes.at(-1)).toEqual({ message: good });
  });

  it('data past the declared length is CK_FRAME_OVERFLOW, in a START or a continuation', () => {
    expect(errorCode(new Reassembler().push(Uint8Array.of(0x80, 0, 2, 1, 2, 3), 0))).toBe('CK_FRAME_OVERFLOW');
    const reassembler = new Reassembler();
    expect(reassembler.push(Uint8Array.of(0x80, 0, 4, 1, 2), 0)).toEqual({});
    expect(errorCode(reassembler.push(Uint8Array.of(0x01, 3, 4, 5), 0))).toBe('CK_FRAME_OVERFLOW');
    expect(reassembler.busy).toBe(false);
    recovers(reassembler);
  });

  it('bad headers: empty chunk, reserved bit, START with a counter, START shorter than its header', () => {
    for (const chunk of [new Uint8Array(0), Uint8Array.of(0x40, 1), Uint8Array.of(0xc0, 0, 1, 1), Uint8Array.of(0x81, 0, 1, 1), Uint8Array.of(0x80, 0)]) {
      const reassembler = new Reassembler();
      reassembler.push(chunks[0] ?? new Uint8Array(0), 0);
      expect(errorCode(reassembler.push(chunk, 0))).toBe('CK_FRAME_BAD_HEADER');
      expect(reassembler.busy).toBe(false);
      recovers(reassembler);
    }
  });

  it('an empty message is one START chunk', () => {
    expect(new Reassembler().push(Uint8Array.of(0x80, 0, 0), 0)).toEqual({ message: new Uint8Array(0) });
  });
});

describe('inter-chunk timeout', () => {
  const chunks = splitMessage(message(60), MIN_MTU);
  const good = message(10, 3);

  it('drops a partial message after the timeout with CK_FRAME_TIMEOUT, and not at the limit', () => {
    const reassembler = new Reassembler({ interChunkTimeoutMs: 100 });
    reassembler.push(chunks[0] ?? new Uint8Array(0), 1000);
    expect(reassembler.expire(1100)).toBeUndefined();
    expect(reassembler.busy).toBe(true);
    expect(reassembler.expire(1101)?.code).toBe('CK_FRAME_TIMEOUT');
    expect(reassembler.busy).toBe(false);
    expect(reassembler.expire(5000)).toBeUndefined();
  });

  it('each chunk restarts the clock', () => {
    const reassembler = new Reassembler({ interChunkTimeoutMs: 100 });
    const outcomes = chunks.map((chunk, index) => reassembler.push(chunk, index * 100));
    expect(outcomes.at(-1)).toEqual({ message: message(60) });
  });

  it('a START after the timeout reports CK_FRAME_TIMEOUT and its message still counts', () => {
    const reassembler = new Reassembler({ interChunkTimeoutMs: 100 });
    reassembler.push(chunks[0] ?? new Uint8Array(0), 0);
    const outcome = reassembler.push(splitMessage(good, MIN_MTU)[0] ?? new Uint8Array(0), 500);
    expect(outcome.error?.code).toBe('CK_FRAME_TIMEOUT');
    expect(outcome.message).toEqual(good);
    // A multi-chunk message after a timeout: timeout reported on its START, then it completes.
    reassembler.push(chunks[0] ?? new Uint8Array(0), 1000);
    const outcomes = chunks.map((chunk, index) => reassembler.push(chunk, 2000 + index));
    expect(outcomes[0]?.error?.code).toBe('CK_FRAME_TIMEOUT');
    expect(outcomes.at(-1)).toEqual({ message: message(60) });
  });

  it('a late continuation of the expired message is rejected and delivers nothing', () => {
    const reassembler = new Reassembler({ interChunkTimeoutMs: 100 });
    reassembler.push(chunks[0] ?? new Uint8Array(0), 0);
    const late = reassembler.push(chunks[1] ?? new Uint8Array(0), 101);
    expect(late.message).toBeUndefined();
    expect(late.error).toBeInstanceOf(CarkeyError);
    expect(reassembler.busy).toBe(false);
  });
});

describe('arbitrary chunk sequences', () => {
  const realChunks = [...splitMessage(message(300), 40), ...splitMessage(message(30, 9), 23)];
  const chunk = fc.oneof(
    fc.uint8Array({ maxLength: 30, size: 'max' }),
    fc.constantFrom(...realChunks),
    fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 30, size: 'max' })).map(([header, rest]) => Uint8Array.of(header, ...rest)),
    fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 30, size: 'max' })).map(([length, rest]) => Uint8Array.of(0x80, length >>> 8, length & 0xff, ...rest)),
  );
  const FRAME_CODES: ErrorCode[] = ['CK_FRAME_BAD_HEADER', 'CK_FRAME_OUT_OF_ORDER', 'CK_FRAME_OVERFLOW', 'CK_FRAME_TIMEOUT', 'CK_CODEC_TOO_LARGE'];

  it('never throw, only produce frame errors, never deliver above the cap, and never block the next message', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(chunk, fc.integer({ min: 0, max: 150 })), { maxLength: 60 }), fc.constantFrom(23, 64, 185, 517), (sequence, mtu) => {
        const reassembler = new Reassembler({ maxMessage: 512, interChunkTimeoutMs: 100 });
        let now = 0;
        for (const [bytes, gap] of sequence) {
          now += gap;
          const outcome = reassembler.push(bytes, now);
          if (outcome.error !== undefined) expect(isCarkeyError(outcome.error) && FRAME_CODES.includes(outcome.error.code)).toBe(true);
          if (outcome.message !== undefined) expect(outcome.message.length).toBeLessThanOrEqual(512);
        }
        // Whatever came before, a complete message sent now is delivered intact.
        const next = message(200, 1);
        const outcomes = pushAll(reassembler, splitMessage(next, mtu, 512), now + 1);
        expect(outcomes.at(-1)?.message).toEqual(next);
        expect(reassembler.busy).toBe(false);
      }),
      propertyRuns(1500),
    );
  });
});
