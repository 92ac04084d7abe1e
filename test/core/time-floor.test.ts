/**
 * The trusted clock (src/core/time-floor.ts): never goes back, follows the
 * system clock forward only within its jump budget, far-future documents
 * lift it by a bounded lead that does not ratchet, corroborated documents
 * re-anchor it, physical presence resets it; ±20-year system clock jumps.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DAY_MS, DEFAULT_TIME_POLICY, TrustedClock } from '../../src/core/time-floor.js';

const T0 = Date.UTC(2026, 0, 1);
const YEAR = 365 * DAY_MS;

describe('TrustedClock', () => {
  it('never goes back, whatever the system clock and documents do (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            kind: fc.constantFrom('tick', 'document'),
            elapsed: fc.integer({ min: 0, max: 10 * DAY_MS }),
            system: fc.integer({ min: 0, max: T0 + 40 * YEAR }),
            document: fc.integer({ min: 0, max: T0 + 40 * YEAR }),
          }),
          { maxLength: 40 },
        ),
        (steps) => {
          let mono = 0;
          const clock = new TrustedClock(T0, T0, mono);
          let previous = clock.now(T0, mono);
          for (const step of steps) {
            mono += step.elapsed;
            if (step.kind === 'document') clock.observeDocument(step.document, step.system, mono);
            const now = clock.now(step.system, mono);
            expect(now).toBeGreaterThanOrEqual(previous);
            previous = now;
          }
        },
      ),
    );
  });

  it('stays within elapsed time + jump budget + document lead of its anchor unless a document corroborates the clock (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ elapsed: fc.integer({ min: 0, max: DAY_MS }), system: fc.integer({ min: 0, max: T0 + 40 * YEAR }), document: fc.integer({ min: T0 + 2 * YEAR, max: T0 + 40 * YEAR }) }), { maxLength: 30 }),
        (steps) => {
          let mono = 0;
          const clock = new TrustedClock(T0, T0, mono);
          for (const step of steps) {
            mono += step.elapsed;
            // far-future documents that never agree with the system clock: never corroborate
            const system = Math.abs(step.system - step.document) <= DEFAULT_TIME_POLICY.corroborationMs ? step.document - DAY_MS : step.system;
            clock.observeDocument(step.document, system, mono);
            const bound = T0 + mono + DEFAULT_TIME_POLICY.jumpBudgetMs + DEFAULT_TIME_POLICY.documentLeadMs;
            expect(clock.now(system, mono)).toBeLessThanOrEqual(bound);
          }
        },
      ),
    );
  });

  const table: readonly { name: string; run: (clock: TrustedClock) => number; expected: number }[] = [
    { name: 'follows a system clock that runs normally', run: (c) => c.now(T0 + 5_000, 5_000), expected: T0 + 5_000 },
    { name: 'ignores a system clock set back to 1970 (extrapolates by monotonic time)', run: (c) => c.now(0, 60_000), expected: T0 + 60_000 },
    { name: 'ignores a system clock 20 years behind', run: (c) => c.now(T0 - 20 * YEAR, 1_000), expected: T0 + 1_000 },
    { name: 'ignores a jump 20 years ahead', run: (c) => c.now(T0 + 20 * YEAR, 1_000), expected: T0 + 1_000 },
    { name: 'follows a jump of 3 weeks (first NTP answer after parking)', run: (c) => c.now(T0 + 21 * DAY_MS, 1_000), expected: T0 + 21 * DAY_MS },
    {
      name: 'a far-future signed list lifts the time by at most the document lead',
      run: (c) => {
        c.observeDocument(T0 + 10 * YEAR, T0, 0);
        return c.now(T0, 0);
      },
      expected: T0 + DEFAULT_TIME_POLICY.documentLeadMs,
    },
    {
      name: 'a sequence of far-future lists does not ratchet',
      run: (c) => {
        for (let i = 1; i <= 20; i++) c.observeDocument(T0 + i * YEAR, T0, i);
        return c.now(T0, 20);
      },
      expected: T0 + 20 + DEFAULT_TIME_POLICY.documentLeadMs,
    },
    {
      name: 'a document that agrees with a jumped system clock corroborates it',
      run: (c) => {
        c.now(T0 + 2 * YEAR, 0);
        c.observeDocument(T0 + 2 * YEAR + 60_000, T0 + 2 * YEAR, 0);
        return c.now(T0 + 2 * YEAR, 0);
      },
      expected: T0 + 2 * YEAR + 60_000,
    },
    {
      name: 'physical presence resets the time, also backwards',
      run: (c) => {
        c.observeDocument(T0 + 10 * YEAR, T0 + 10 * YEAR, 0);
        c.resetByPresence(T0 + DAY_MS, 0);
        return c.now(T0 + 10 * YEAR, 1);
      },
      expected: T0 + DAY_MS + 1,
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      const clock = new TrustedClock(T0, T0, 0);
      expect(row.run(clock)).toBe(row.expected);
    });
  }

  it('a car that never knew the time (floor 0) takes its system clock at first boot; a known floor does not', () => {
    expect(new TrustedClock(0, T0, 0).now(T0, 0)).toBe(T0);
    expect(new TrustedClock(T0 - 5 * YEAR, T0, 0).now(T0, 0)).toBe(T0 - 5 * YEAR);
  });

  it('the jump budget is spent: two jumps of 20 days are not both followed', () => {
    const clock = new TrustedClock(T0, T0, 0);
    expect(clock.now(T0 + 20 * DAY_MS, 0)).toBe(T0 + 20 * DAY_MS);
    expect(clock.now(T0 + 40 * DAY_MS, 0)).toBe(T0 + 20 * DAY_MS);
    expect(clock.lastSystemObservation).toBe('jump-ignored');
  });

  it('the persisted floor carries no document lead, so a reboot does not ratchet', () => {
    const clock = new TrustedClock(T0, T0, 0);
    clock.observeDocument(T0 + 5 * YEAR, T0, 0);
    expect(clock.now(T0, 0)).toBe(T0 + DAY_MS);
    expect(clock.floor(0)).toBe(T0);
    const rebooted = new TrustedClock(clock.floor(0), T0, 0);
    rebooted.observeDocument(T0 + 5 * YEAR, T0, 0);
    expect(rebooted.now(T0, 0)).toBe(T0 + DAY_MS);
  });

  it('refuses nonsense times without throwing', () => {
    const clock = new TrustedClock(Number.NaN, Number.POSITIVE_INFINITY, 0);
    expect(clock.now(Number.NaN, 10)).toBe(10);
    expect(clock.observeDocument(Number.MAX_VALUE, 0, 10)).toBe(false);
    clock.resetByPresence(-5, 10);
    expect(clock.now(0, 20)).toBe(20);
  });
});
