/**
 * The locked-out denial on the wire (docs/protocol.md §6.4, §10): category 6
 * with the seconds left as a u32 payload, decoded by the phone; other denials
 * still carry no payload; a malformed locked-out payload is refused.
 */
import { describe, expect, it } from 'vitest';
import { DenyCategoryCode, decodeLockoutPayload, decodeResultPlain, encodeLockoutPayload } from '../../src/core/messages.js';
import { pairedWorld, runUnlock } from '../helpers/core-harness.js';

const world = pairedWorld();

describe('RESULT denied / locked-out', () => {
  it('category 6 carries the seconds left; the phone reads them', () => {
    const end = runUnlock(world, { seedLabel: 'locked-out', respond: () => ({ status: 'denied', category: 'locked-out', retryAfterSeconds: 250 }) });
    expect('results' in end ? end.results[0] : undefined).toEqual({ status: 'denied', category: 'locked-out', retryAfterSeconds: 250 });
  });
  it('other denials carry no payload and no retry time', () => {
    const end = runUnlock(world, { seedLabel: 'pin-denied', respond: () => ({ status: 'denied', category: 'pin' }) });
    expect('results' in end ? end.results[0] : undefined).toEqual({ status: 'denied', category: 'pin' });
  });
  it('the payload is a big-endian u32 and nothing else', () => {
    expect(DenyCategoryCode['locked-out']).toBe(6);
    expect([...encodeLockoutPayload(300)]).toEqual([0, 0, 1, 0x2c]);
    expect(decodeLockoutPayload(Uint8Array.of(0, 0, 1, 0x2c))).toEqual({ ok: true, value: 300 });
    expect(decodeLockoutPayload(Uint8Array.of(0, 1, 0x2c)).ok).toBe(false);
    expect(decodeLockoutPayload(Uint8Array.of(0, 0, 1, 0x2c, 0)).ok).toBe(false);
    expect(decodeResultPlain(Uint8Array.of(0, 0, 0, 1, 1, 6, 0, 4, 0, 0, 0, 5))).toMatchObject({ ok: true, value: { status: 1, category: 6 } });
  });
});
