/**
 * RSSI profiles of the simulated radio: how strong a phone hears a car (and
 * the car the phone) as a function of time since the profile was applied.
 *
 * Guarantees: `parseRssiProfile` accepts exactly the documented spec strings
 * and returns a typed profile or CK_CONFIG_INVALID; `meanRssi` is a pure,
 * continuous function of elapsed time (monotone for approach and walk-away,
 * a log-distance path-loss curve with exponent 2); `sampleRssi` adds bounded
 * uniform noise (|noise| <= noiseDb) from a caller-supplied uniform draw and
 * returns an integer dBm clamped to the HCI range [-127, 20].
 */

import { fail, ok, type Result } from '../../src/core/errors.js';
import type { KeyedRandom } from './random.js';

export type RssiProfile =
  | { readonly kind: 'fixed'; readonly dbm: number }
  | { readonly kind: 'approach' | 'walk-away'; readonly fromDbm: number; readonly toDbm: number; readonly durationMs: number; readonly noiseDb: number }
  | { readonly kind: 'cabin'; readonly dbm: number; readonly noiseDb: number };

export const RSSI_MIN_DBM = -127;
export const RSSI_MAX_DBM = 20;
/** Noise is redrawn once per slot of this length (coherence time of the fading). */
export const RSSI_NOISE_SLOT_MS = 100;

export const RSSI_DEFAULTS = {
  approach: { fromDbm: -95, toDbm: -50, durationMs: 10_000, noiseDb: 2 },
  walkAway: { fromDbm: -50, toDbm: -105, durationMs: 10_000, noiseDb: 2 },
  cabin: { dbm: -45, noiseDb: 3 },
} as const;

const MAX_NOISE_DB = 30;
const MAX_DURATION_MS = 3_600_000;

export function parseRssiProfile(spec: string): Result<RssiProfile> {
  const [kind, ...rest] = spec.trim().split(':');
  const numbers = rest.map((part) => (part.trim() === '' ? Number.NaN : Number(part)));
  const bad = (why: string): Result<RssiProfile> => fail('CK_CONFIG_INVALID', `RSSI profile "${spec}": ${why}`);
  if (numbers.some((n) => !Number.isFinite(n))) return bad('parameters must be numbers');
  const dbmOk = (n: number): boolean => n >= RSSI_MIN_DBM && n <= RSSI_MAX_DBM;
  switch (kind) {
    case 'fixed': {
      const [dbm] = numbers;
      if (numbers.length !== 1 || dbm === undefined) return bad('expected fixed:<dBm>');
      if (!Number.isInteger(dbm) || !dbmOk(dbm)) return bad(`dBm must be an integer from ${RSSI_MIN_DBM} to ${RSSI_MAX_DBM}`);
      return ok({ kind: 'fixed', dbm });
    }
    case 'approach':
    case 'walk-away': {
      const defaults = kind === 'approach' ? RSSI_DEFAULTS.approach : RSSI_DEFAULTS.walkAway;
      if (numbers.length !== 0 && numbers.length !== 3 && numbers.length !== 4) {
        return bad(`expected ${kind} or ${kind}:<fromDbm>:<toDbm>:<durationMs>[:<noiseDb>]`);
      }
      const [fromDbm = defaults.fromDbm, toDbm = defaults.toDbm, durationMs = defaults.durationMs, noiseDb = defaults.noiseDb] = numbers;
      if (!dbmOk(fromDbm) || !dbmOk(toDbm)) return bad(`dBm values must be from ${RSSI_MIN_DBM} to ${RSSI_MAX_DBM}`);
      if (kind === 'approach' && !(fromDbm < toDbm)) return bad('approach goes from a weaker to a stronger signal (fromDbm < toDbm)');
      if (kind === 'walk-away' && !(fromDbm > toDbm)) return bad('walk-away goes from a stronger to a weaker signal (fromDbm > toDbm)');
      if (!(durationMs > 0 && durationMs <= MAX_DURATION_MS)) return bad(`durationMs must be in (0, ${MAX_DURATION_MS}]`);
      if (!(noiseDb >= 0 && noiseDb <= MAX_NOISE_DB)) return bad(`noiseDb must be from 0 to ${MAX_NOISE_DB}`);
      return ok({ kind, fromDbm, toDbm, durationMs, noiseDb });
    }
    case 'cabin': {
      if (numbers.length > 2) return bad('expected cabin[:<dBm>[:<noiseDb>]]');
      const [dbm = RSSI_DEFAULTS.cabin.dbm, noiseDb = RSSI_DEFAULTS.cabin.noiseDb] = numbers;
      if (!dbmOk(dbm)) return bad(`dBm must be from ${RSSI_MIN_DBM} to ${RSSI_MAX_DBM}`);
      if (!(noiseDb >= 0 && noiseDb <= MAX_NOISE_DB)) return bad(`noiseDb must be from 0 to ${MAX_NOISE_DB}`);
      return ok({ kind: 'cabin', dbm, noiseDb });
    }
    default:
      return bad('unknown kind (use fixed:<dBm>, approach, walk-away or cabin)');
  }
}

/**
 * Noise-free RSSI (dBm, not rounded) `elapsedMs` after the profile started.
 * approach/walk-away: distance changes linearly in time between d_near = 1 and
 * d_far = 10^(|to - from| / 20); RSSI = strong end - 20·log10(d).
 */
export function meanRssi(profile: RssiProfile, elapsedMs: number): number {
  switch (profile.kind) {
    case 'fixed':
    case 'cabin':
      return profile.dbm;
    case 'approach':
    case 'walk-away': {
      const progress = Math.min(1, Math.max(0, elapsedMs / profile.durationMs));
      const strong = Math.max(profile.fromDbm, profile.toDbm);
      const farDistance = 10 ** (Math.abs(profile.toDbm - profile.fromDbm) / 20);
      const distance = profile.kind === 'approach' ? farDistance - (farDistance - 1) * progress : 1 + (farDistance - 1) * progress;
      return strong - 20 * Math.log10(distance);
    }
  }
}

export function noiseOf(profile: RssiProfile): number {
  return profile.kind === 'fixed' ? 0 : profile.noiseDb;
}

/** Reported RSSI: mean plus uniform noise in [-noiseDb, +noiseDb] from `unitDraw` in [0, 1), rounded and clamped. */
export function sampleRssi(profile: RssiProfile, elapsedMs: number, unitDraw: number): number {
  const noisy = meanRssi(profile, elapsedMs) + (2 * unitDraw - 1) * noiseOf(profile);
  return Math.min(RSSI_MAX_DBM, Math.max(RSSI_MIN_DBM, Math.round(noisy)));
}

/** RSSI of a (peripheral, central) pair at broker time `at`: noise comes from `pairRandom`, one draw per noise slot. */
export function rssiAt(profile: RssiProfile, origin: number, pairRandom: KeyedRandom, at: number): { readonly rssi: number; readonly mean: number } {
  const elapsed = Math.max(0, at - origin);
  const slot = Math.floor(elapsed / RSSI_NOISE_SLOT_MS);
  return { rssi: sampleRssi(profile, elapsed, pairRandom.unit('rssi-noise', origin, slot)), mean: meanRssi(profile, elapsed) };
}
