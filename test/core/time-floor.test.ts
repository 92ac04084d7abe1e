/**
 * Trusted time without a real-time clock: trustedNow never below the floor,
 * raiseFloor monotonic and never below either input, document times capped
 * at a year ahead and never invented, and the point of it all: a clock reset
 * to 1970 cannot revive an expired grant.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide } from '../../src/core/authorize.js';
import { raiseFloor, trustedNow } from '../../src/core/time-floor.js';
import { crypto, DAY_MS, grantFor, pairedWorld, party, propertyRuns, T0 } from '../helpers/core-harness.js';

const YEAR_PLUS_DAY = 366 * DAY_MS;
const ms = fc.integer({ min: 0, max: 8_000_000_000_000 });
const docs = fc.array(fc.oneof(ms, fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })), { maxLength: 6 });

describe('trustedNow', () => {
  it('is max(system time, floor): never below the floor', () => {
    fc.assert(
      fc.property(ms, ms, (system, floor) => {
        const now = trustedNow(system, floor);
        expect(now).toBeGreaterThanOrEqual(floor);
        expect(now).toBeGreaterThanOrEqual(system);
        expect(now).toBe(Math.max(system, floor));
      }),
      propertyRuns(500),
    );
  });
});

describe('raiseFloor', () => {
  it('is never below either input and never above the latest observed time', () => {
    fc.assert(
      fc.property(ms, ms, docs, (floor, system, documents) => {
        const next = raiseFloor(floor, system, documents);
        expect(next).toBeGreaterThanOrEqual(floor);
        expect(next).toBeGreaterThanOrEqual(system);
        expect(next).toBeLessThanOrEqual(Math.max(floor, system, ...documents));
        expect(next).toBeLessThanOrEqual(trustedNow(system, floor) + YEAR_PLUS_DAY);
      }),
      propertyRuns(500),
    );
  });

  it('only moves forward over any sequence of observations', () => {
    fc.assert(
      fc.property(ms, fc.array(fc.tuple(ms, docs), { maxLength: 20 }), (start, observations) => {
        let floor = start;
        for (const [system, documents] of observations) {
          const next = raiseFloor(floor, system, documents);
          expect(next).toBeGreaterThanOrEqual(floor);
          floor = next;
        }
      }),
      propertyRuns(300),
    );
  });

  it('is monotonic in its floor and system-time inputs', () => {
    fc.assert(
      fc.property(ms, ms, ms, fc.nat({ max: 1_000_000_000 }), docs, (floor, system, extra, more, documents) => {
        const base = raiseFloor(floor, system, documents);
        expect(raiseFloor(floor + extra, system, documents)).toBeGreaterThanOrEqual(base);
        expect(raiseFloor(floor, system + more, documents)).toBeGreaterThanOrEqual(base);
      }),
      propertyRuns(300),
    );
  });

  it('caps far-future document times at max future ahead of the trusted time', () => {
    expect(raiseFloor(T0, 0, [T0 + 50 * YEAR_PLUS_DAY])).toBe(T0 + YEAR_PLUS_DAY);
    expect(raiseFloor(T0, 0, [Number.MAX_SAFE_INTEGER])).toBe(T0 + YEAR_PLUS_DAY);
    expect(raiseFloor(T0, 0, [T0 + 10 * DAY_MS], DAY_MS)).toBe(T0 + DAY_MS);
    expect(raiseFloor(T0, 0, [T0 + DAY_MS, T0 + 3 * DAY_MS, T0 + 2 * DAY_MS])).toBe(T0 + 3 * DAY_MS);
  });

  it('ignores past document times and values that are not safe integers', () => {
    expect(raiseFloor(T0, T0 - 5, [T0 - DAY_MS])).toBe(T0);
    expect(raiseFloor(T0, 0, [Number.NaN, Number.POSITIVE_INFINITY, T0 + 0.5, Number.MAX_SAFE_INTEGER + 2])).toBe(T0);
    expect(raiseFloor(T0, 0)).toBe(T0);
  });
});

describe('what the floor protects', () => {
  it('a system clock reset to 1970 does not revive an expired grant', () => {
    const world = pairedWorld();
    const friend = party('friend');
    const grant = grantFor(world, friend, { notBefore: T0, notAfter: T0 + DAY_MS });
    const floor = raiseFloor(0, T0 + 2 * DAY_MS, [world.keyList.issuedAt]);
    const now = trustedNow(0, floor);
    const decision = decide(crypto, {
      vehicleId: world.vehicleId,
      keyList: world.keyList,
      peerKey: friend.publicKey,
      credential: { kind: 'grant', grant },
      command: 'unlock',
      now,
      proximity: { rssi: -50, near: true, responseTimeMs: 5 },
      policy: { relayBoundMs: 50, startPinRequired: false },
      pin: undefined,
    });
    expect(decision).toMatchObject({ allow: false, reason: 'grant-expired' });
  });
});
