/**
 * Tests of the phase-trace helpers the latency benchmarks use: the trace
 * line format round trip, tolerant parsing, the phase split, the GATT count,
 * connection events recovered from broker times (property test over anchors,
 * intervals, jitter and read delays), and the floor.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lineTrace, TRACE_PREFIX } from '../../src/common/phase-trace.js';
import { connectionEvents, countGatt, MIN_EVENTS_OWNER_UNLOCK, parseTrace, splitPhases, unlockFloorMs, type TraceMark } from './phases.js';

const mark = (phase: string, t: number, detail: Record<string, number | string> = {}): TraceMark => ({ phase, t, detail });

/** A traced owner unlock at a 30 ms interval, as carkey writes it (times in ms since process start). */
const UNLOCK: readonly TraceMark[] = [
  mark('main-loaded', 100),
  mark('scan-start', 115),
  mark('adv-seen', 160, { at: 1000 }),
  mark('connect', 116),
  mark('link-open', 162),
  mark('broker-time', 162.5, { brokerNow: 1001.6 }),
  mark('mtu', 222, { mtu: 256 }),
  mark('discovered', 282),
  mark('subscribed', 342),
  mark('hello', 342.5),
  mark('write', 342.6, { bytes: 53, withResponse: 1 }),
  mark('notification', 402, { at: 1241.25 + 0.4, bytes: 131 }),
  mark('write-done', 402.2),
  mark('challenge', 402.3),
  mark('request', 404),
  mark('write', 404.1, { bytes: 200, withResponse: 1 }),
  mark('notification', 462, { at: 1301.25 + 0.9, bytes: 60 }),
  mark('write-done', 462.1),
  mark('result', 462.3),
  mark('exit', 466),
];

describe('trace lines', () => {
  it('round-trips through lineTrace and parseTrace, skipping everything else on stderr', () => {
    const lines: string[] = [];
    let now = 0;
    const trace = lineTrace((line) => lines.push(line), () => (now += 1.23456));
    trace('main-loaded');
    trace('notification', { at: 12.5, bytes: 20 });
    const stderr = ['carkey: scanning for "car" ...', ...lines, `${TRACE_PREFIX}{not json`, `${TRACE_PREFIX}{"phase":3,"t":1}`, `${TRACE_PREFIX}{"phase":"x"}`, `${TRACE_PREFIX}[1]`, 'unlocked car'].join('');
    expect(lines.every((line) => line.startsWith(TRACE_PREFIX) && line.endsWith('\n'))).toBe(true);
    expect(parseTrace(stderr.replace(/\}(?=carkey|unlocked)/g, '}\n').replace(/(\.\.\.)/, '$1\n'))).toEqual([
      { phase: 'main-loaded', t: 1.235, detail: {} },
      { phase: 'notification', t: 2.469, detail: { at: 12.5, bytes: 20 } },
    ]);
  });
});

describe('splitPhases', () => {
  it('splits a traced unlock into its phases', () => {
    const split = splitPhases(UNLOCK);
    expect(split).toEqual({
      load: 100,
      prepare: 15,
      scan: 45,
      connect: 2,
      setup: 180,
      challenge: expect.closeTo(59.8, 6) as number,
      think: expect.closeTo(1.7, 6) as number,
      result: expect.closeTo(58.3, 6) as number,
      finish: expect.closeTo(3.7, 6) as number,
      firstWriteToResult: expect.closeTo(119.7, 6) as number,
      toResult: 462.3,
      total: 466,
    });
  });

  it.each(['main-loaded', 'scan-start', 'adv-seen', 'link-open', 'subscribed', 'hello', 'challenge', 'request', 'result', 'write'])('is undefined without the %s mark', (missing) => {
    expect(splitPhases(UNLOCK.filter((m) => m.phase !== missing))).toBeUndefined();
  });
});

describe('countGatt', () => {
  it('counts writes, notifications and ATT round trips', () => {
    expect(countGatt(UNLOCK)).toEqual({ writes: 2, notifications: 2, roundTrips: 5 });
  });

  it('counts a write without response as a write but not a round trip', () => {
    const marks = [...UNLOCK, mark('write', 470, { bytes: 10, withResponse: 0 })];
    expect(countGatt(marks)).toEqual({ writes: 3, notifications: 2, roundTrips: 5 });
  });
});

describe('connectionEvents', () => {
  it('counts the fixture unlock at its minimum', () => {
    expect(connectionEvents(UNLOCK, 30, 1)).toBe(MIN_EVENTS_OWNER_UNLOCK);
  });

  it('is undefined without broker time or a notification', () => {
    expect(connectionEvents(UNLOCK.filter((m) => m.phase !== 'broker-time'), 30, 1)).toBeUndefined();
    expect(connectionEvents(UNLOCK.filter((m) => m.phase !== 'notification'), 30, 1)).toBeUndefined();
  });

  it('recovers k for any anchor, interval, jitter up to its bound and read delay below interval − jitter bound', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.integer({ min: 6, max: 80 }),
        fc.integer({ min: 1, max: 60 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 0.999, noNaN: true }),
        (anchor, steps, k, jitterFraction, delayFraction) => {
          const interval = steps * 1.25;
          const jitterMs = 1;
          const marks = [mark('broker-time', 0, { brokerNow: anchor + delayFraction * (interval - jitterMs) }), mark('notification', 1, { at: anchor + k * interval + jitterFraction * jitterMs })];
          expect(connectionEvents(marks, interval, jitterMs)).toBe(k);
        },
      ),
    );
  });
});

describe('unlockFloorMs', () => {
  it.each([
    { adv: 100, interval: 30, start: 40, want: 40 + 52.5 + 1.25 + 300 },
    { adv: 100, interval: 7.5, start: 40, want: 40 + 52.5 + 1.25 + 75 },
    { adv: 20, interval: 7.5, start: 0, want: 12.5 + 1.25 + 75 },
  ])('adv $adv ms, interval $interval ms, process start $start ms → $want ms', ({ adv, interval, start, want }) => {
    expect(unlockFloorMs({ advertisingIntervalMs: adv, advDelayMeanMs: 5, connectionIntervalMs: interval, events: MIN_EVENTS_OWNER_UNLOCK, processStartMs: start })).toBeCloseTo(want, 9);
  });
});
