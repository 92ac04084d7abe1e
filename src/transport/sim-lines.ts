/**
 * Splits a byte stream into length-capped UTF-8 lines (the framing of the
 * simulated radio protocol, see docs/firmware-sim.md "Simulated radio").
 *
 * Guarantees: never buffers more than `maxLineBytes` bytes of an unfinished
 * line; a line that grows past the cap is reported once as an error and its
 * remaining bytes are discarded up to the next newline; bytes that are not
 * valid UTF-8 produce an error for that line only. `push` never throws.
 */

import { CarkeyError, fail, ok, type Result } from '../core/errors.js';

const NEWLINE = 0x0a;

export class LineReader {
  private readonly maxLineBytes: number;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private discarding = false;

  constructor(maxLineBytes: number) {
    this.maxLineBytes = maxLineBytes;
  }

  /** Feed bytes; returns one result per completed (or overflowing) line. Empty lines are skipped. */
  push(bytes: Uint8Array): Result<string>[] {
    const results: Result<string>[] = [];
    let start = 0;
    while (start < bytes.length) {
      const newline = bytes.indexOf(NEWLINE, start);
      const end = newline === -1 ? bytes.length : newline;
      this.append(bytes.subarray(start, end), results);
      if (newline === -1) break;
      this.finishLine(results);
      start = newline + 1;
    }
    return results;
  }

  private append(piece: Uint8Array, results: Result<string>[]): void {
    if (this.discarding || piece.length === 0) return;
    if (this.pendingBytes + piece.length > this.maxLineBytes) {
      results.push(fail('CK_TRANSPORT_RADIO_PROTOCOL', `line exceeds ${this.maxLineBytes} bytes`));
      this.pending = [];
      this.pendingBytes = 0;
      this.discarding = true;
      return;
    }
    this.pending.push(Buffer.from(piece));
    this.pendingBytes += piece.length;
  }

  private finishLine(results: Result<string>[]): void {
    if (this.discarding) {
      this.discarding = false;
      return;
    }
    const line = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    if (line.length === 0) return;
    try {
      results.push(ok(this.decoder.decode(line)));
    } catch (error) {
      results.push({ ok: false, error: new CarkeyError('CK_TRANSPORT_RADIO_PROTOCOL', 'line is not valid UTF-8', undefined, { cause: error }) });
    }
  }
}
