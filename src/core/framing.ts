/**
 * GATT framing: split a message into chunks that fit the negotiated ATT MTU,
 * and reassemble chunks into messages with a size cap and an inter-chunk timeout.
 *
 * Chunk format (docs/protocol.md §Framing):
 *   header u8: bit 7 = START, bits 0-5 = chunk counter (0 for START, +1 mod 64)
 *   START chunk:        header ‖ total length u16 ‖ first bytes
 *   continuation chunk: header ‖ next bytes
 * A chunk carries at most MTU - 3 bytes (the ATT write/notify payload).
 *
 * Guarantees: the reassembler never buffers more than `maxMessage` bytes,
 * rejects a declared length above the cap before buffering, detects lost or
 * reordered chunks by the counter, drops a partial message after
 * `interChunkTimeoutMs`, and never throws: every problem is a typed error
 * after which it is ready for the next START chunk. Pure: time is passed in.
 */
import { CarkeyError } from './errors.js';

export const MIN_MTU = 23;
export const MAX_MTU = 517;
export const ATT_OVERHEAD = 3;
export const DEFAULT_MAX_MESSAGE = 8192;
export const DEFAULT_INTER_CHUNK_TIMEOUT_MS = 2000;
const START = 0x80;
const COUNTER_MASK = 0x3f;
const START_HEADER_LENGTH = 3;

export function chunkPayloadSize(mtu: number): number {
  if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_MTU) {
    throw new CarkeyError('CK_FRAME_BAD_MTU', `${mtu} not in ${MIN_MTU}..${MAX_MTU}`);
  }
  return mtu - ATT_OVERHEAD;
}

/** Split `message` into chunks for `mtu`. Throws CK_CODEC_TOO_LARGE above `maxMessage`. */
export function splitMessage(message: Uint8Array, mtu: number, maxMessage = DEFAULT_MAX_MESSAGE): Uint8Array[] {
  const size = chunkPayloadSize(mtu);
  if (message.length > maxMessage || message.length > 0xffff) {
    throw new CarkeyError('CK_CODEC_TOO_LARGE', `message of ${message.length} bytes exceeds ${maxMessage}`);
  }
  const chunks: Uint8Array[] = [];
  const firstData = Math.min(message.length, size - START_HEADER_LENGTH);
  const first = new Uint8Array(START_HEADER_LENGTH + firstData);
  first[0] = START;
  first[1] = message.length >>> 8;
  first[2] = message.length & 0xff;
  first.set(message.subarray(0, firstData), START_HEADER_LENGTH);
  chunks.push(first);
  let offset = firstData;
  let counter = 1;
  while (offset < message.length) {
    const take = Math.min(message.length - offset, size - 1);
    const chunk = new Uint8Array(1 + take);
    chunk[0] = counter & COUNTER_MASK;
    chunk.set(message.subarray(offset, offset + take), 1);
    chunks.push(chunk);
    offset += take;
    counter++;
  }
  return chunks;
}

export interface ReassemblerOptions {
  readonly maxMessage?: number;
  readonly interChunkTimeoutMs?: number;
}

/** Outcome of one chunk: a completed message, an error, both (timeout then a new message), or neither. */
export interface ChunkOutcome {
  readonly message?: Uint8Array;
  readonly error?: CarkeyError;
}

interface Partial {
  readonly buffer: Uint8Array;
  filled: number;
  nextCounter: number;
  lastChunkAt: number;
}

export class Reassembler {
  private readonly maxMessage: number;
  private readonly timeoutMs: number;
  private partial: Partial | undefined;

  constructor(options: ReassemblerOptions = {}) {
    this.maxMessage = options.maxMessage ?? DEFAULT_MAX_MESSAGE;
    this.timeoutMs = options.interChunkTimeoutMs ?? DEFAULT_INTER_CHUNK_TIMEOUT_MS;
  }

  /** True while a message is partly received. */
  get busy(): boolean {
    return this.partial !== undefined;
  }

  /** Drop a partial message whose next chunk is overdue. */
  expire(now: number): CarkeyError | undefined {
    if (this.partial !== undefined && now - this.partial.lastChunkAt > this.timeoutMs) {
      this.partial = undefined;
      return new CarkeyError('CK_FRAME_TIMEOUT', `no chunk for more than ${this.timeoutMs} ms`);
    }
    return undefined;
  }

  push(chunk: Uint8Array, now: number): ChunkOutcome {
    const timedOut = this.expire(now);
    const outcome = this.accept(chunk, now);
    if (timedOut === undefined) return outcome;
    // Report the timeout; a START chunk that follows still counts.
    return outcome.message === undefined ? { error: outcome.error ?? timedOut } : { message: outcome.message, error: timedOut };
  }

  private accept(chunk: Uint8Array, now: number): ChunkOutcome {
    const header = chunk[0];
    if (header === undefined) return this.reject('CK_FRAME_BAD_HEADER', 'empty chunk');
    if ((header & 0x40) !== 0) return this.reject('CK_FRAME_BAD_HEADER', 'reserved bit set');
    if ((header & START) !== 0) {
      const abandoned = this.partial !== undefined;
      this.partial = undefined;
      if ((header & COUNTER_MASK) !== 0) return this.reject('CK_FRAME_BAD_HEADER', 'START chunk with a non-zero counter');
      if (chunk.length < START_HEADER_LENGTH) return this.reject('CK_FRAME_BAD_HEADER', 'START chunk shorter than its header');
      const total = ((chunk[1] ?? 0) << 8) | (chunk[2] ?? 0);
      if (total > this.maxMessage) return this.reject('CK_CODEC_TOO_LARGE', `declared ${total} > cap ${this.maxMessage}`);
      const data = chunk.subarray(START_HEADER_LENGTH);
      if (data.length > total) return this.reject('CK_FRAME_OVERFLOW', `START chunk carries ${data.length} > ${total}`);
      const partial: Partial = { buffer: new Uint8Array(total), filled: 0, nextCounter: 1, lastChunkAt: now };
      partial.buffer.set(data, 0);
      partial.filled = data.length;
      const outcome = this.completeOrKeep(partial);
      if (!abandoned) return outcome;
      const lost = new CarkeyError('CK_FRAME_OUT_OF_ORDER', 'new message started before the previous one completed');
      return outcome.message === undefined ? { error: lost } : { message: outcome.message, error: lost };
    }
    const partial = this.partial;
    if (partial === undefined) return this.reject('CK_FRAME_OUT_OF_ORDER', 'continuation chunk without a START');
    if ((header & COUNTER_MASK) !== (partial.nextCounter & COUNTER_MASK)) {
      return this.reject('CK_FRAME_OUT_OF_ORDER', `expected chunk ${partial.nextCounter & COUNTER_MASK}, got ${header & COUNTER_MASK}`);
    }
    const data = chunk.subarray(1);
    if (partial.filled + data.length > partial.buffer.length) return this.reject('CK_FRAME_OVERFLOW', 'chunk runs past the declared length');
    partial.buffer.set(data, partial.filled);
    partial.filled += data.length;
    partial.nextCounter++;
    partial.lastChunkAt = now;
    return this.completeOrKeep(partial);
  }

  private completeOrKeep(partial: Partial): ChunkOutcome {
    if (partial.filled === partial.buffer.length) {
      this.partial = undefined;
      return { message: partial.buffer };
    }
    this.partial = partial;
    return {};
  }

  private reject(code: 'CK_FRAME_BAD_HEADER' | 'CK_FRAME_OUT_OF_ORDER' | 'CK_FRAME_OVERFLOW' | 'CK_CODEC_TOO_LARGE', detail: string): ChunkOutcome {
    this.partial = undefined;
    return { error: new CarkeyError(code, detail) };
  }
}
