import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CarkeyError } from '../../src/core/errors.js';
import { DEFAULTS, resolveConfig } from '../../src/vehicle/config.js';
import { PairingController } from '../../src/vehicle/pairing-mode.js';
import { ProximityTracker } from '../../src/vehicle/proximity.js';
import { TokenBucket } from '../../src/vehicle/rate-limit.js';

describe('config', () => {
  it('defaults validate', () => {
    expect(resolveConfig({}, {})).toEqual(DEFAULTS);
  });
  it.each([
    ['slots', 2],
    ['slots', 'many'],
    ['idleTimeoutMs', 10_000],
    ['transport', 'wifi'],
    ['adapter', 'eth0'],
    ['startPin', '12'],
    ['name', ''],
    ['keycards', 'card-1'],
    ['statusPort', 70_000],
  ])('rejects %s = %j with CK_CONFIG_INVALID naming the field', (key, value) => {
    try {
      resolveConfig({ [key]: value }, {});
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(CarkeyError);
      expect((error as CarkeyError).code).toBe('CK_CONFIG_INVALID');
      expect((error as CarkeyError).message).toContain(key);
    }
  });
  it('refuses unknown keys (typos must not weaken settings)', () => {
    expect(() => resolveConfig({ relayBoundMS: 10 }, {})).toThrow(/unknown setting "relayBoundMS"/);
  });
  it('flags override the file, strings from flags are parsed', () => {
    const config = resolveConfig({ slots: 5 }, { slots: '6', transport: 'sim' });
    expect(config.slots).toBe(6);
    expect(config.transport).toBe('sim');
  });
  it('refuses inverted hysteresis and a relay bound above the TTL', () => {
    expect(() => resolveConfig({ passiveEnterRssi: -70, passiveExitRssi: -60 }, {})).toThrow(/hysteresis/);
    expect(() => resolveConfig({ relayBoundMs: 5000, challengeTtlMs: 3000 }, {})).toThrow(/relayBoundMs/);
  });
});

describe('proximity hysteresis', () => {
  it('enters at the enter threshold and leaves only below the exit threshold', () => {
    const t = new ProximityTracker({ enterRssi: -60, exitRssi: -70 });
    expect([-80, -65, -60, -65, -70, -71, -65, -59].map((r) => t.observe(r))).toEqual([false, false, true, true, true, false, false, true]);
  });
  it('unknown RSSI (undefined or the HCI 127 sentinel) is never near', () => {
    const t = new ProximityTracker({ enterRssi: -60, exitRssi: -70 });
    t.observe(-40);
    expect(t.observe(undefined)).toBe(false);
    expect(t.observe(127)).toBe(false);
  });
  it('never flaps inside the band (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -69, max: -61 }), { minLength: 1, maxLength: 50 }), fc.boolean(), (samples, startNear) => {
        const t = new ProximityTracker({ enterRssi: -60, exitRssi: -70 });
        if (startNear) t.observe(-50);
        const first = t.near;
        return samples.every((s) => t.observe(s) === first);
      }),
    );
  });
});

describe('token bucket', () => {
  it('allows the burst, then the rate', () => {
    const b = new TokenBucket(10, 3, 0);
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).toEqual([true, true, true, false]);
    expect(b.take(100)).toBe(true);
    expect(b.take(100)).toBe(false);
  });
  it('time going backwards adds nothing (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 10_000 }), { maxLength: 200 }), (times) => {
        const b = new TokenBucket(5, 5, 0);
        let allowed = 0;
        let max = 0;
        for (const t of times) {
          max = Math.max(max, t);
          if (b.take(t)) allowed++;
        }
        return allowed <= 5 + Math.floor((max / 1000) * 5) + 1;
      }),
    );
  });
});

describe('pairing mode (physical presence)', () => {
  const make = (paired: boolean) => new PairingController({ windowMs: 60_000, keycards: ['card-1'], isPaired: () => paired });
  it('unpaired: a short press opens the window, which closes in time', () => {
    const p = make(false);
    expect(p.onHardwareEvent({ kind: 'button', press: 'short' }, 1000)).toEqual([{ kind: 'opened', until: 61_000 }]);
    expect(p.isOpen(60_999)).toBe(true);
    expect(p.isOpen(61_000)).toBe(false);
  });
  it('paired: the button alone does not open; keycard + button does', () => {
    const p = make(true);
    expect(p.onHardwareEvent({ kind: 'button', press: 'short' }, 0).map((a) => a.kind)).toEqual(['hint']);
    expect(p.isOpen(1)).toBe(false);
    expect(p.onHardwareEvent({ kind: 'keycard', cardId: 'card-1' }, 5000).map((a) => a.kind)).toEqual(['opened']);
  });
  it('an unknown keycard does nothing', () => {
    const p = make(true);
    p.onHardwareEvent({ kind: 'button', press: 'short' }, 0);
    expect(p.onHardwareEvent({ kind: 'keycard', cardId: 'stolen' }, 10).map((a) => a.kind)).toEqual(['hint']);
    expect(p.isOpen(11)).toBe(false);
  });
  it('a pending confirmation is settled by a long press (not the short press that opened pairing), or times out with the window', async () => {
    const p = make(false);
    p.onHardwareEvent({ kind: 'button', press: 'short' }, 0);
    const confirmed = p.awaitConfirmation(10);
    expect(p.onHardwareEvent({ kind: 'button', press: 'short' }, 15)).toEqual([{ kind: 'hint', text: 'Hold button to OK' }]);
    expect(p.onHardwareEvent({ kind: 'button', press: 'long' }, 20).map((a) => a.kind)).toEqual(['confirmed']);
    await expect(confirmed).resolves.toBe(true);
    expect(p.isOpen(21)).toBe(false);
    p.onHardwareEvent({ kind: 'button', press: 'short' }, 100);
    const late = p.awaitConfirmation(110);
    p.tick(100 + 60_000);
    await expect(late).resolves.toBe(false);
  });
  it('one pairing per window: the first claimant holds it until its link goes or the window ends', async () => {
    const p = make(false);
    p.onHardwareEvent({ kind: 'button', press: 'short' }, 0);
    expect(p.claim('phone', 1)).toBe(true);
    expect(p.claim('phone', 2)).toBe(true);
    expect(p.claim('mallory', 3)).toBe(false);
    const pending = p.awaitConfirmation(4);
    p.release('mallory');
    expect(p.awaitingConfirmation).toBe(true);
    p.release('phone');
    await expect(pending).resolves.toBe(false);
    expect(p.claim('mallory', 5)).toBe(true);
    p.tick(60_001);
    expect(p.claim('phone', 60_002)).toBe(false); // window closed
  });
  it('factory reset needs a long press and then a registered keycard', () => {
    const p = make(true);
    expect(p.onHardwareEvent({ kind: 'keycard', cardId: 'card-1' }, 0).map((a) => a.kind)).toEqual(['hint']);
    p.onHardwareEvent({ kind: 'button', press: 'long' }, 100_000);
    expect(p.onHardwareEvent({ kind: 'keycard', cardId: 'card-1' }, 101_000).map((a) => a.kind)).toEqual(['factory-reset']);
  });
});
