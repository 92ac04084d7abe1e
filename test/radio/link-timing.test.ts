/**
 * The link-layer timing model: deliveries happen at connection events strictly
 * after submission, in order per direction, at most pdusPerEvent per event,
 * failed events push PDUs to later events, a run of failed events as long as
 * the supervision timeout loses the link, and everything is reproducible.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LinkTiming, effectiveSupervisionMs, type Direction, type TimingParams, type Transfer } from '../../firmware-sim/radio/link-timing.js';
import { createKeyedRandom } from '../../firmware-sim/radio/random.js';

const base: TimingParams = { intervalMs: 7.5, jitterMs: 0, lossRate: 0, pdusPerEvent: 4, supervisionTimeoutMs: 100 };

function delivered(transfer: Transfer): Extract<Transfer, { kind: 'delivered' }> {
  if (transfer.kind !== 'delivered') throw new Error(`expected delivery, got ${JSON.stringify(transfer)}`);
  return transfer;
}

const intervalArb = fc.integer({ min: 6, max: 80 }).map((steps) => steps * 1.25);
const paramsArb = fc.record({
  intervalMs: intervalArb,
  jitterMs: fc.constantFrom(0, 0.5, 3),
  lossRate: fc.constantFrom(0, 0.1, 0.5),
  pdusPerEvent: fc.integer({ min: 1, max: 6 }),
  supervisionTimeoutMs: fc.constantFrom(1000, 4000, 32_000),
});
const submissionsArb = fc.array(fc.tuple(fc.constantFrom<Direction>('c2p', 'p2c'), fc.double({ min: 0, max: 50, noNaN: true })), { minLength: 1, maxLength: 60 });

describe('LinkTiming', () => {
  it('delivers at connection events strictly after submission, in order, within capacity', () => {
    fc.assert(
      fc.property(paramsArb, fc.integer({ min: 0, max: 1000 }), fc.double({ min: 0, max: 1000, noNaN: true }), submissionsArb, (params, seed, openedAt, steps) => {
        const timing = new LinkTiming(openedAt, params, createKeyedRandom(seed));
        let now = openedAt;
        const last: Record<Direction, number> = { c2p: -Infinity, p2c: -Infinity };
        const perEvent = new Map<string, number>();
        for (const [dir, gap] of steps) {
          now += gap;
          const t = timing.schedule(dir, now);
          if (t.kind === 'lost') {
            expect(t.lostAt).toBe(t.silentFrom + effectiveSupervisionMs(params));
            return;
          }
          expect(t.eventAt).toBeGreaterThan(now);
          const index = (t.eventAt - openedAt) / params.intervalMs;
          expect(Math.abs(index - Math.round(index))).toBeLessThan(1e-6);
          expect(t.deliverAt).toBeGreaterThanOrEqual(t.eventAt);
          expect(t.deliverAt).toBeGreaterThanOrEqual(last[dir]);
          expect(t.deliverAt - t.eventAt).toBeLessThanOrEqual(Math.max(params.jitterMs, last[dir] - t.eventAt) + 1e-9);
          last[dir] = t.deliverAt;
          const key = `${dir}@${Math.round(index)}`;
          perEvent.set(key, (perEvent.get(key) ?? 0) + 1);
          expect(perEvent.get(key)).toBeLessThanOrEqual(params.pdusPerEvent);
        }
      }),
    );
  });

  it('without loss or jitter, a lone PDU goes out at the very next event', () => {
    fc.assert(
      fc.property(intervalArb, fc.double({ min: 0, max: 10_000, noNaN: true }), (intervalMs, offset) => {
        const index = offset / intervalMs;
        fc.pre(Math.abs(index - Math.round(index)) > 1e-6);
        const timing = new LinkTiming(0, { ...base, intervalMs }, createKeyedRandom(1));
        const t = delivered(timing.schedule('c2p', offset));
        expect(t.eventAt).toBeCloseTo((Math.floor(offset / intervalMs) + 1) * intervalMs, 6);
        expect(t.retries).toBe(0);
        expect(t.deliverAt).toBe(t.eventAt);
      }),
    );
  });

  it('a burst spills into later events when an event is full', () => {
    const timing = new LinkTiming(0, { ...base, pdusPerEvent: 2 }, createKeyedRandom(1));
    const events = Array.from({ length: 5 }, () => delivered(timing.schedule('p2c', 1)).eventAt);
    expect(events).toEqual([7.5, 7.5, 15, 15, 22.5]);
    // The other direction has its own capacity in the same events.
    expect(delivered(timing.schedule('c2p', 1)).eventAt).toBe(7.5);
  });

  it('lost events delay delivery; both directions agree on which events failed', () => {
    const params = { ...base, lossRate: 0.5, supervisionTimeoutMs: 32_000 };
    let sawRetry = false;
    for (let seed = 0; seed < 50; seed += 1) {
      const a = new LinkTiming(0, params, createKeyedRandom(seed));
      const b = new LinkTiming(0, params, createKeyedRandom(seed));
      const up = delivered(a.schedule('c2p', 0));
      const down = delivered(b.schedule('p2c', 0));
      expect(up.eventAt).toBe(down.eventAt);
      expect(up.eventAt).toBe(7.5 * (1 + up.retries));
      if (up.retries > 0) sawRetry = true;
    }
    expect(sawRetry).toBe(true);
  });

  it('loss rate 1 loses the link one supervision timeout after the first failed event', () => {
    const timing = new LinkTiming(0, { ...base, lossRate: 1, supervisionTimeoutMs: 100 }, createKeyedRandom(1));
    expect(timing.schedule('c2p', 3)).toEqual({ kind: 'lost', silentFrom: 7.5, lostAt: 107.5 });
  });

  it('the supervision timeout is at least two intervals', () => {
    expect(effectiveSupervisionMs({ ...base, intervalMs: 100, supervisionTimeoutMs: 100 })).toBe(200);
    expect(effectiveSupervisionMs({ ...base, intervalMs: 7.5, supervisionTimeoutMs: 100 })).toBe(100);
  });

  it('is reproducible from the seed', () => {
    fc.assert(
      fc.property(paramsArb, fc.integer({ min: 0, max: 1000 }), submissionsArb, (params, seed, steps) => {
        const run = (): Transfer[] => {
          const timing = new LinkTiming(0, params, createKeyedRandom(seed));
          let now = 0;
          return steps.map(([dir, gap]) => timing.schedule(dir, (now += gap)));
        };
        expect(run()).toEqual(run());
      }),
    );
  });

  it('an interval change takes effect after everything already scheduled and keeps order', () => {
    const timing = new LinkTiming(0, { ...base, intervalMs: 10, pdusPerEvent: 1 }, createKeyedRandom(1));
    const before = [0, 0, 0].map(() => delivered(timing.schedule('c2p', 0)).eventAt);
    expect(before).toEqual([10, 20, 30]);
    timing.setParams(5, { ...base, intervalMs: 50, pdusPerEvent: 1 });
    expect(timing.nextEventAfter(5)).toBe(40);
    const after = [0, 0].map(() => delivered(timing.schedule('c2p', 5)).eventAt);
    expect(after).toEqual([40, 90]);
    expect(delivered(timing.schedule('p2c', 5)).eventAt).toBe(40);
  });

  it('jitter delays the host, never reorders a direction', () => {
    const timing = new LinkTiming(0, { ...base, jitterMs: 20, pdusPerEvent: 8 }, createKeyedRandom(9));
    let previous = -Infinity;
    let jittered = false;
    for (let i = 0; i < 40; i += 1) {
      const t = delivered(timing.schedule('p2c', i));
      expect(t.deliverAt).toBeGreaterThanOrEqual(previous);
      if (t.deliverAt > t.eventAt) jittered = true;
      previous = t.deliverAt;
    }
    expect(jittered).toBe(true);
  });
});
