/**
 * Seeded kill-point plans for the process crash suites
 * (test/integration/crash-daemon.test.ts, test/cloud/crash.test.ts).
 *
 * Guarantees: a plan is a pure function of (seed, count, kinds): the same
 * seed gives the same kinds and delays, so a failing run is replayed with
 * CARKEY_CRASH_SEED. `crashSettings` reads CARKEY_CRASH_POINTS (the number
 * of kill points) and CARKEY_CRASH_SEED (default: drawn from the clock and
 * printed by the suites).
 */
import { seededRandom } from './crash-writer.js';

export interface KillPoint<K extends string> {
  readonly index: number;
  readonly kind: K;
  /** ms after the operation started at which the process is SIGKILLed */
  readonly delayMs: number;
  /** a second seeded number in [0, 1) for the workload's own choices */
  readonly pick: number;
}

export interface CrashSettings {
  readonly points: number;
  readonly seed: number;
}

export function crashSettings(defaultPoints: number): CrashSettings {
  const points = Number(process.env.CARKEY_CRASH_POINTS ?? defaultPoints);
  if (!Number.isSafeInteger(points) || points < 1) throw new Error(`CARKEY_CRASH_POINTS must be a positive integer, not ${String(process.env.CARKEY_CRASH_POINTS)}`);
  const seedText = process.env.CARKEY_CRASH_SEED;
  const seed = seedText === undefined ? Date.now() % 2 ** 31 : Number(seedText);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`CARKEY_CRASH_SEED must be a non-negative integer, not ${String(seedText)}`);
  return { points, seed };
}

/**
 * `count` points; each kind appears in turn (so every kind gets its share
 * whatever the count), shuffled by the seed; delays uniform in the kind's
 * [min, max] window.
 */
export function planKillPoints<K extends string>(seed: number, count: number, windows: Readonly<Record<K, readonly [number, number]>>, weights: Readonly<Record<K, number>>): KillPoint<K>[] {
  const random = seededRandom(seed);
  const kinds = Object.keys(windows) as K[];
  const total = kinds.reduce((sum, kind) => sum + weights[kind], 0);
  const sequence: K[] = [];
  for (let i = 0; sequence.length < count; i++) {
    for (const kind of kinds) {
      // weight w: the kind is listed in w of every `total` slots
      if (sequence.length < count && (i % total) < weights[kind]) sequence.push(kind);
    }
  }
  for (let i = sequence.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const a = sequence[i];
    const b = sequence[j];
    if (a === undefined || b === undefined) continue;
    sequence[i] = b;
    sequence[j] = a;
  }
  return sequence.map((kind, index) => {
    const [min, max] = windows[kind];
    return { index, kind, delayMs: Math.round(min + random() * (max - min)), pick: random() };
  });
}

export function describePlan(points: readonly KillPoint<string>[]): string {
  return points.map((p) => `${p.index}:${p.kind}@${p.delayMs}`).join(' ');
}
