import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WalkAwayWatch, type WalkAwayFacts, type WalkAwaySettings } from '../../src/vehicle/walk-away.js';

const SETTINGS: WalkAwaySettings = { leaveRssi: -80, hysteresisDb: 6, graceMs: 5000, doorWaitMs: 60_000 };
const CLEAR: WalkAwayFacts = { anyDoorOpen: false, driveReady: false, anyUnlocked: true, otherKeyNear: false };

function watching(): WalkAwayWatch {
  const watch = new WalkAwayWatch(SETTINGS);
  watch.unlockedBy('k1', 'link-1');
  return watch;
}

/** Feed RSSI samples every 500 ms from `from`; returns the time after the last one. */
function feed(watch: WalkAwayWatch, samples: readonly number[], from = 0, link = 'link-1'): number {
  let t = from;
  for (const rssi of samples) {
    watch.sample(link, rssi, t);
    t += 500;
  }
  return t;
}

describe('walk-away: when the phone counts as gone', () => {
  it('locks once RSSI stayed below leaveRssi for graceMs, with the key, the reason and the last RSSI', () => {
    const watch = watching();
    feed(watch, [-60, -70, -79, -85, -86, -88], 0);
    // Away since t=1500 (-85); grace ends at 6500.
    expect(watch.wantsFacts(6499)).toBe(false);
    expect(watch.check(6499, CLEAR)).toEqual({ action: 'none' });
    expect(watch.check(6500, CLEAR)).toEqual({ action: 'lock', key: 'k1', reason: 'rssi', rssi: -88, waitedMs: 0 });
    expect(watch.watched).toBeUndefined();
    expect(watch.check(9000, CLEAR)).toEqual({ action: 'none' });
  });

  it.each([
    ['a dip back above leaveRssi + hysteresis restarts the grace', [-85, -85, -73, -85], 'restart'],
    ['a wobble between leaveRssi and leaveRssi + hysteresis does not', [-85, -85, -76, -85], 'keep'],
  ] as const)('%s', (_name, samples, expected) => {
    const watch = watching();
    feed(watch, samples, 0);
    // First away sample at t=0; grace would end at 5000 unless it restarted at t=1500.
    expect(watch.check(5000, CLEAR).action).toBe(expected === 'keep' ? 'lock' : 'none');
  });

  it('a phone near the threshold does not count as gone: starts near, needs to drop below leaveRssi', () => {
    const watch = watching();
    const t = feed(watch, Array.from({ length: 30 }, () => -79));
    expect(watch.check(t, CLEAR)).toEqual({ action: 'none' });
  });

  it.each([
    ['no reading', undefined],
    ['HCI "not available"', 127],
    ['NaN', Number.NaN],
  ])('unknown RSSI (%s) is never evidence of leaving', (_name, rssi) => {
    const watch = watching();
    for (let t = 0; t < 20_000; t += 500) watch.sample('link-1', rssi, t);
    expect(watch.check(20_000, CLEAR)).toEqual({ action: 'none' });
  });

  it("another link's samples are ignored", () => {
    const watch = watching();
    feed(watch, [-100, -100, -100], 0, 'link-2');
    expect(watch.check(10_000, CLEAR)).toEqual({ action: 'none' });
  });

  it('a lost link locks after graceMs, reason link-lost', () => {
    const watch = watching();
    watch.sample('link-1', -70, 0);
    watch.linkClosed('link-1', true, 1000);
    expect(watch.check(5999, CLEAR)).toEqual({ action: 'none' });
    expect(watch.check(6000, CLEAR)).toMatchObject({ action: 'lock', key: 'k1', reason: 'link-lost', rssi: -70 });
  });

  it('the same key reconnecting within graceMs cancels a link loss', () => {
    const watch = watching();
    watch.linkClosed('link-1', true, 1000);
    watch.relinked('k1', 'link-9');
    expect(watch.watched).toEqual({ key: 'k1', link: 'link-9' });
    expect(watch.check(60_000, CLEAR)).toEqual({ action: 'none' });
    // ... and the new link is the one watched now.
    feed(watch, [-90, -90], 60_000, 'link-9');
    expect(watch.check(65_000, CLEAR).action).toBe('lock');
  });

  it('another key reconnecting does not cancel it', () => {
    const watch = watching();
    watch.linkClosed('link-1', true, 0);
    watch.relinked('k2', 'link-9');
    expect(watch.check(5000, CLEAR).action).toBe('lock');
  });

  it('a deliberate disconnect (by the phone or the car) ends the watch without locking', () => {
    const watch = watching();
    watch.linkClosed('link-1', false, 0);
    expect(watch.watched).toBeUndefined();
    expect(watch.check(60_000, CLEAR)).toEqual({ action: 'none' });
  });

  it('a lock or drive ready (stop) ends the watch', () => {
    const watch = watching();
    feed(watch, [-90, -90]);
    watch.stop();
    expect(watch.check(60_000, CLEAR)).toEqual({ action: 'none' });
  });

  it('a newer unlock watches the newer phone', () => {
    const watch = watching();
    watch.unlockedBy('k2', 'link-2');
    feed(watch, [-90, -90], 0, 'link-1');
    expect(watch.check(10_000, CLEAR)).toEqual({ action: 'none' });
    feed(watch, [-90, -90], 10_000, 'link-2');
    expect(watch.check(15_000, CLEAR)).toMatchObject({ action: 'lock', key: 'k2' });
  });
});

describe('walk-away: what the car checks before it locks', () => {
  function triggeredAt(t: number): WalkAwayWatch {
    const watch = watching();
    watch.linkClosed('link-1', true, t - SETTINGS.graceMs);
    return watch;
  }

  it.each([
    ['drive ready', { ...CLEAR, driveReady: true }, 'drive-ready'],
    ['already locked', { ...CLEAR, anyUnlocked: false }, 'already-locked'],
    ['no door sensing', { ...CLEAR, anyDoorOpen: undefined }, 'no-door-sensing'],
  ] as const)('%s: ends without locking', (_name, facts: WalkAwayFacts, why) => {
    const watch = triggeredAt(10_000);
    expect(watch.check(10_000, facts)).toEqual({ action: 'ended', key: 'k1', reason: 'link-lost', why });
    expect(watch.check(10_001, CLEAR)).toEqual({ action: 'none' });
  });

  it.each([
    ['a door is open', { ...CLEAR, anyDoorOpen: true }],
    ['another key is near', { ...CLEAR, otherKeyNear: true }],
  ] as const)('%s: waits, locks once that ends within doorWaitMs', (_name, facts: WalkAwayFacts) => {
    const watch = triggeredAt(10_000);
    expect(watch.check(10_000, facts)).toEqual({ action: 'none' });
    expect(watch.triggered).toBe(true);
    expect(watch.check(40_000, facts)).toEqual({ action: 'none' });
    expect(watch.check(50_000, CLEAR)).toEqual({ action: 'lock', key: 'k1', reason: 'link-lost', rssi: undefined, waitedMs: 40_000 });
  });

  it.each([
    ['a door is open', { ...CLEAR, anyDoorOpen: true }, 'door-open'],
    ['another key is near', { ...CLEAR, otherKeyNear: true }, 'other-key-near'],
  ] as const)('%s for longer than doorWaitMs: gives up', (_name, facts: WalkAwayFacts, why) => {
    const watch = triggeredAt(10_000);
    expect(watch.check(10_000, facts)).toEqual({ action: 'none' });
    expect(watch.check(70_000, facts)).toEqual({ action: 'ended', key: 'k1', reason: 'link-lost', why });
  });

  it('the phone coming back while the car waits for a door cancels an RSSI walk-away', () => {
    const watch = watching();
    feed(watch, [-90, -90], 0);
    expect(watch.check(5000, { ...CLEAR, anyDoorOpen: true })).toEqual({ action: 'none' });
    watch.sample('link-1', -60, 6000);
    expect(watch.triggered).toBe(false);
    expect(watch.check(7000, CLEAR)).toEqual({ action: 'none' });
  });

  it('property: never locks with a door open, drive ready, all locked or another key near; at most one lock per watch', () => {
    const facts = fc.record({
      anyDoorOpen: fc.constantFrom(true, false, undefined),
      driveReady: fc.boolean(),
      anyUnlocked: fc.boolean(),
      otherKeyNear: fc.boolean(),
    });
    const event = fc.oneof(
      fc.record({ kind: fc.constant('sample' as const), rssi: fc.integer({ min: -127, max: 20 }) }),
      fc.record({ kind: fc.constant('lost' as const) }),
      fc.record({ kind: fc.constant('relinked' as const) }),
      fc.record({ kind: fc.constant('check' as const), facts }),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 4000 }), event), { maxLength: 60 }), (events) => {
        const watch = watching();
        let now = 0;
        let locks = 0;
        for (const [dt, e] of events) {
          now += dt;
          if (e.kind === 'sample') watch.sample('link-1', e.rssi, now);
          else if (e.kind === 'lost') watch.linkClosed('link-1', true, now);
          else if (e.kind === 'relinked') watch.relinked('k1', 'link-1');
          else {
            const verdict = watch.check(now, e.facts);
            if (verdict.action === 'lock') {
              locks++;
              expect(e.facts).toEqual({ anyDoorOpen: false, driveReady: false, anyUnlocked: true, otherKeyNear: false });
            }
          }
        }
        expect(locks).toBeLessThanOrEqual(1);
      }),
    );
  });
});
