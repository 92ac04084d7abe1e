import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AutoRelock, type RelockFacts } from '../../src/vehicle/auto-relock.js';

const QUIET: RelockFacts = { anyDoorOpen: false, driveReady: false, anyUnlocked: true };

describe('auto-relock decisions', () => {
  it.each([
    ['no door opened, drive off, unlocked: relock', QUIET, { action: 'relock', unlockedAt: 1000, afterMs: 30_000 }],
    ['a door stands open at the deadline', { ...QUIET, anyDoorOpen: true }, { action: 'disarmed', why: 'door-open' }],
    ['drive is ready at the deadline', { ...QUIET, driveReady: true }, { action: 'disarmed', why: 'drive-ready' }],
    ['someone locked it already', { ...QUIET, anyUnlocked: false }, { action: 'disarmed', why: 'already-locked' }],
    ['the controller does not sense doors', { ...QUIET, anyDoorOpen: undefined }, { action: 'disarmed', why: 'no-door-sensing' }],
  ] as const)('%s', (_name, facts: RelockFacts, verdict) => {
    const relock = new AutoRelock({ afterMs: 30_000 });
    relock.unlocked(1000);
    expect(relock.due(31_000, facts)).toEqual(verdict);
    // At most once per unlock.
    expect(relock.due(99_000, QUIET)).toEqual({ action: 'none' });
    expect(relock.armed).toBe(false);
  });

  it('does nothing before the deadline, then fires at it', () => {
    const relock = new AutoRelock({ afterMs: 30_000 });
    relock.unlocked(1000);
    expect(relock.deadline()).toBe(31_000);
    expect(relock.isDue(30_999)).toBe(false);
    expect(relock.due(30_999, QUIET)).toEqual({ action: 'none' });
    expect(relock.armed).toBe(true);
    expect(relock.due(31_000, QUIET).action).toBe('relock');
  });

  it('a door opening, a lock or drive ready cancels it (disarm)', () => {
    const relock = new AutoRelock({ afterMs: 1000 });
    relock.unlocked(0);
    relock.disarm();
    expect(relock.due(5000, QUIET)).toEqual({ action: 'none' });
  });

  it('a later unlock re-arms from the later time', () => {
    const relock = new AutoRelock({ afterMs: 1000 });
    relock.unlocked(0);
    relock.unlocked(800);
    expect(relock.due(1500, QUIET)).toEqual({ action: 'none' });
    expect(relock.due(1800, QUIET)).toMatchObject({ action: 'relock', unlockedAt: 800 });
  });

  it('is never armed without an unlock', () => {
    const relock = new AutoRelock({ afterMs: 1000 });
    expect(relock.deadline()).toBeUndefined();
    expect(relock.due(1e12, QUIET)).toEqual({ action: 'none' });
  });

  it('property: relocks exactly when the deadline has passed since the last unlock and nothing disarmed it', () => {
    type Step = { kind: 'unlock' | 'disarm' | 'check'; dt: number };
    const step = fc.record({ kind: fc.constantFrom<Step['kind']>('unlock', 'disarm', 'check'), dt: fc.integer({ min: 0, max: 5000 }) });
    fc.assert(
      fc.property(fc.integer({ min: 1000, max: 10_000 }), fc.array(step, { maxLength: 40 }), (afterMs, steps) => {
        const relock = new AutoRelock({ afterMs });
        let now = 0;
        let lastUnlock: number | undefined;
        for (const s of steps) {
          now += s.dt;
          if (s.kind === 'unlock') {
            relock.unlocked(now);
            lastUnlock = now;
          } else if (s.kind === 'disarm') {
            relock.disarm();
            lastUnlock = undefined;
          } else {
            const verdict = relock.due(now, QUIET);
            const expectFire = lastUnlock !== undefined && now - lastUnlock >= afterMs;
            expect(verdict.action).toBe(expectFire ? 'relock' : 'none');
            if (expectFire) {
              expect(verdict).toMatchObject({ unlockedAt: lastUnlock });
              lastUnlock = undefined;
            }
          }
        }
      }),
    );
  });
});
