/**
 * The seeded randomness and RSSI profiles of the simulated radio: keyed draws
 * are reproducible and independent of call order, RSSI curves have the
 * documented shape, noise stays within its bound, bad specs are rejected.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createKeyedRandom } from '../../firmware-sim/radio/random.js';
import { RSSI_MAX_DBM, RSSI_MIN_DBM, meanRssi, parseRssiProfile, rssiAt, sampleRssi, type RssiProfile } from '../../firmware-sim/radio/rssi.js';

function profile(spec: string): RssiProfile {
  const parsed = parseRssiProfile(spec);
  if (!parsed.ok) throw parsed.error;
  return parsed.value;
}

describe('keyed random', () => {
  it('is a pure function of seed and key, in [0, 1)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.array(fc.oneof(fc.string(), fc.integer())), (seed, parts) => {
        const a = createKeyedRandom(seed).unit(...parts);
        const b = createKeyedRandom(seed).unit(...parts);
        expect(a).toBe(b);
        expect(a).toBeGreaterThanOrEqual(0);
        expect(a).toBeLessThan(1);
      }),
    );
  });

  it('does not depend on the order of other draws', () => {
    const random = createKeyedRandom(42);
    const first = random.unit('event', 0, 7);
    for (let i = 0; i < 100; i += 1) random.unit('noise', i);
    expect(random.unit('event', 0, 7)).toBe(first);
  });

  it('separates seeds, keys, key types and derived streams', () => {
    const r = createKeyedRandom(1);
    const values = [
      r.unit('a', 1),
      r.unit('a', '1'),
      r.unit('a1'),
      r.unit('a', 2),
      createKeyedRandom(2).unit('a', 1),
      r.derive('x').unit('a', 1),
      r.derive('y').unit('a', 1),
    ];
    expect(new Set(values).size).toBe(values.length);
    expect(r.derive('x').unit('a', 1)).toBe(createKeyedRandom(1).derive('x').unit('a', 1));
  });

  it('is roughly uniform (10 bins over 20 000 draws within ±10 %)', () => {
    const random = createKeyedRandom(7);
    const bins = new Array<number>(10).fill(0);
    for (let i = 0; i < 20_000; i += 1) {
      const bin = Math.floor(random.unit('u', i) * 10);
      bins[bin] = (bins[bin] ?? 0) + 1;
    }
    for (const count of bins) expect(Math.abs(count - 2000)).toBeLessThan(200);
  });

  it('rejects seeds that are not non-negative safe integers', () => {
    expect(() => createKeyedRandom(-1)).toThrow(RangeError);
    expect(() => createKeyedRandom(1.5)).toThrow(RangeError);
  });
});

describe('RSSI profile specs', () => {
  it.each([
    ['fixed:-60', { kind: 'fixed', dbm: -60 }],
    ['approach', { kind: 'approach', fromDbm: -95, toDbm: -50, durationMs: 10_000, noiseDb: 2 }],
    ['approach:-90:-40:5000', { kind: 'approach', fromDbm: -90, toDbm: -40, durationMs: 5000, noiseDb: 2 }],
    ['approach:-90:-40:5000:0', { kind: 'approach', fromDbm: -90, toDbm: -40, durationMs: 5000, noiseDb: 0 }],
    ['walk-away', { kind: 'walk-away', fromDbm: -50, toDbm: -105, durationMs: 10_000, noiseDb: 2 }],
    ['walk-away:-45:-100:2000:1', { kind: 'walk-away', fromDbm: -45, toDbm: -100, durationMs: 2000, noiseDb: 1 }],
    ['cabin', { kind: 'cabin', dbm: -45, noiseDb: 3 }],
    ['cabin:-40:1', { kind: 'cabin', dbm: -40, noiseDb: 1 }],
  ])('parses %s', (spec, expected) => {
    expect(parseRssiProfile(spec)).toEqual({ ok: true, value: expected });
  });

  it.each([
    'fixed',
    'fixed:-60.5',
    'fixed:-200',
    'fixed:abc',
    'fixed:-60:1',
    'approach:-40:-90:1000',
    'walk-away:-90:-40:1000',
    'approach:-90:-40',
    'approach:-90:-40:0',
    'approach:-90:-40:1000:-1',
    'cabin:-45:1:2',
    'nearby',
    '',
    'fixed:',
  ])('rejects %j with CK_CONFIG_INVALID', (spec) => {
    const parsed = parseRssiProfile(spec);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error.code).toBe('CK_CONFIG_INVALID');
  });
});

describe('RSSI curves', () => {
  const dbm = fc.integer({ min: -120, max: 0 });
  const pair = fc.tuple(dbm, dbm).filter(([a, b]) => a !== b).map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as const);
  const duration = fc.integer({ min: 1, max: 60_000 });
  const times = fc.tuple(fc.double({ min: -1000, max: 100_000, noNaN: true }), fc.double({ min: -1000, max: 100_000, noNaN: true }));

  it('approach rises monotonically from fromDbm to toDbm and stays there', () => {
    fc.assert(
      fc.property(pair, duration, times, ([weak, strong], durationMs, [t1, t2]) => {
        const p: RssiProfile = { kind: 'approach', fromDbm: weak, toDbm: strong, durationMs, noiseDb: 0 };
        const [early, late] = t1 <= t2 ? [t1, t2] : [t2, t1];
        expect(meanRssi(p, late)).toBeGreaterThanOrEqual(meanRssi(p, early) - 1e-9);
        expect(meanRssi(p, 0)).toBeCloseTo(weak, 9);
        expect(meanRssi(p, durationMs)).toBeCloseTo(strong, 9);
        expect(meanRssi(p, durationMs * 2)).toBeCloseTo(strong, 9);
      }),
    );
  });

  it('walk-away falls monotonically from fromDbm to toDbm', () => {
    fc.assert(
      fc.property(pair, duration, times, ([weak, strong], durationMs, [t1, t2]) => {
        const p: RssiProfile = { kind: 'walk-away', fromDbm: strong, toDbm: weak, durationMs, noiseDb: 0 };
        const [early, late] = t1 <= t2 ? [t1, t2] : [t2, t1];
        expect(meanRssi(p, late)).toBeLessThanOrEqual(meanRssi(p, early) + 1e-9);
        expect(meanRssi(p, 0)).toBeCloseTo(strong, 9);
        expect(meanRssi(p, durationMs)).toBeCloseTo(weak, 9);
      }),
    );
  });

  it('approach follows log-distance path loss: most of the change comes at the end', () => {
    const p = profile('approach:-95:-45:1000:0');
    expect(meanRssi(p, 500)).toBeLessThan(-95 + 10);
    expect(meanRssi(p, 900)).toBeLessThan(-70);
  });

  it('samples are integers within mean ± noise (after rounding) and inside the HCI range', () => {
    const specs = fc.constantFrom('fixed:-60', 'fixed:20', 'fixed:-127', 'approach', 'walk-away', 'cabin', 'cabin:-10:30', 'approach:-127:-100:100:30');
    fc.assert(
      fc.property(specs, fc.double({ min: 0, max: 20_000, noNaN: true }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (spec, elapsed, draw) => {
        const p = profile(spec);
        const sample = sampleRssi(p, elapsed, draw);
        const noise = p.kind === 'fixed' ? 0 : p.noiseDb;
        expect(Number.isInteger(sample)).toBe(true);
        expect(sample).toBeGreaterThanOrEqual(RSSI_MIN_DBM);
        expect(sample).toBeLessThanOrEqual(RSSI_MAX_DBM);
        const mean = meanRssi(p, elapsed);
        if (mean - noise >= RSSI_MIN_DBM && mean + noise <= RSSI_MAX_DBM) {
          expect(Math.abs(sample - mean)).toBeLessThanOrEqual(noise + 0.5);
        }
      }),
    );
  });

  it('fixed has no noise; cabin noise is redrawn per 100 ms slot and reproducible', () => {
    const random = createKeyedRandom(3).derive('pair', 'car', 'phone');
    expect(rssiAt(profile('fixed:-60'), 0, random, 12_345).rssi).toBe(-60);
    const cabin = profile('cabin');
    expect(rssiAt(cabin, 0, random, 110).rssi).toBe(rssiAt(cabin, 0, random, 199).rssi);
    const samples = Array.from({ length: 50 }, (_, i) => rssiAt(cabin, 0, random, i * 100).rssi);
    expect(new Set(samples).size).toBeGreaterThan(1);
    for (const s of samples) expect(Math.abs(s - -45)).toBeLessThanOrEqual(3);
    expect(samples).toEqual(Array.from({ length: 50 }, (_, i) => rssiAt(cabin, 0, createKeyedRandom(3).derive('pair', 'car', 'phone'), i * 100).rssi));
  });
});
