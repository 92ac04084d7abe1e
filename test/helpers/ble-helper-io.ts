/**
 * Shared plumbing of the BLE helper programs (ble-peripheral-echo,
 * ble-central-probe): JSON-line events on stdout, the deterministic test
 * message, chunk statistics around a link, and the echo rule.
 *
 * Guarantees: each event is exactly one JSON object on one stdout line;
 * `testMessage(size, seed)` is the same bytes in every process;
 * `echoAnswer(message)` is reverse(message) ‖ message, so the answer is twice
 * as long as the request and differs from it.
 */
import { isCarkeyError } from '../../src/core/errors.js';
import type { ChunkLink } from '../../src/transport/channel.js';
import type { Unsubscribe } from '../../src/transport/types.js';

export type HelperEvent = { readonly event: string } & Readonly<Record<string, unknown>>;

export function emit(event: HelperEvent): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

export function toHex(bytes: Uint8Array | undefined): string | undefined {
  return bytes === undefined ? undefined : Buffer.from(bytes).toString('hex');
}

/** Deterministic message bytes: byte i = (i * 31 + seed * 7 + 3) mod 256. */
export function testMessage(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed * 7 + 3) & 0xff;
  return out;
}

/** What the echo peripheral answers to `message`. */
export function echoAnswer(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(message.length * 2);
  out.set(Uint8Array.from(message).reverse(), 0);
  out.set(message, message.length);
  return out;
}

export interface ChunkStats {
  sentChunks: number;
  sentMaxChunk: number;
  receivedChunks: number;
  receivedMaxChunk: number;
}

/** Wrap a chunk link so every chunk in either direction is counted. */
export function countingLink(link: ChunkLink): { readonly link: ChunkLink; readonly stats: ChunkStats } {
  const stats: ChunkStats = { sentChunks: 0, sentMaxChunk: 0, receivedChunks: 0, receivedMaxChunk: 0 };
  const counted: ChunkLink = {
    mtu: () => link.mtu(),
    sendChunk: (chunk: Uint8Array): Promise<void> => {
      stats.sentChunks += 1;
      stats.sentMaxChunk = Math.max(stats.sentMaxChunk, chunk.length);
      return link.sendChunk(chunk);
    },
    onChunk: (handler: (chunk: Uint8Array) => void): Unsubscribe =>
      link.onChunk((chunk) => {
        stats.receivedChunks += 1;
        stats.receivedMaxChunk = Math.max(stats.receivedMaxChunk, chunk.length);
        handler(chunk);
      }),
  };
  return { link: counted, stats };
}

/** Report a failure as an event and exit with the error's exit code (CarkeyError) or 1. */
export function exitWithError(error: unknown): never {
  const code = isCarkeyError(error) ? error.code : 'UNKNOWN';
  const exitCode = isCarkeyError(error) ? error.exitCode : 1;
  emit({ event: 'error', code, message: error instanceof Error ? error.message : String(error) });
  process.exit(exitCode);
}
