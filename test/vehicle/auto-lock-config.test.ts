import { describe, expect, it } from 'vitest';
import { CarkeyError } from '../../src/core/errors.js';
import { AUTO_RELOCK_DEFAULTS, resolveConfig, WALK_AWAY_DEFAULTS } from '../../src/vehicle/config.js';

function refusal(file: Record<string, unknown>): string {
  try {
    resolveConfig(file, {});
  } catch (error) {
    expect(error).toBeInstanceOf(CarkeyError);
    expect((error as CarkeyError).code).toBe('CK_CONFIG_INVALID');
    return (error as CarkeyError).message;
  }
  throw new Error(`accepted ${JSON.stringify(file)}`);
}

describe('autoRelock and walkAwayLock settings', () => {
  it('are off unless configured (absent or null)', () => {
    expect(resolveConfig({}, {})).toMatchObject({ autoRelock: undefined, walkAwayLock: undefined });
    expect(resolveConfig({ autoRelock: null, walkAwayLock: null }, {})).toMatchObject({ autoRelock: undefined, walkAwayLock: undefined });
  });

  it('an empty section turns the feature on with the documented defaults', () => {
    const config = resolveConfig({ autoRelock: {}, walkAwayLock: {} }, {});
    expect(config.autoRelock).toEqual({ afterMs: 30_000 });
    expect(AUTO_RELOCK_DEFAULTS).toEqual({ afterMs: 30_000 });
    expect(config.walkAwayLock).toEqual({ leaveRssi: -80, hysteresisDb: 6, graceMs: 5000, doorWaitMs: 120_000 });
    expect(WALK_AWAY_DEFAULTS).toEqual(config.walkAwayLock);
  });

  it('given fields override the defaults', () => {
    const config = resolveConfig({ autoRelock: { afterMs: 1500 }, walkAwayLock: { leaveRssi: -75, graceMs: 0 } }, {});
    expect(config.autoRelock).toEqual({ afterMs: 1500 });
    expect(config.walkAwayLock).toEqual({ leaveRssi: -75, hysteresisDb: 6, graceMs: 0, doorWaitMs: 120_000 });
  });

  it.each([
    [{ autoRelock: { afterMs: 999 } }, 'autoRelock.afterMs = 999: expected an integer in 1000..600000'],
    [{ autoRelock: { afterMs: 600_001 } }, 'autoRelock.afterMs = 600001: expected an integer in 1000..600000'],
    [{ autoRelock: { afterMs: '30000' } }, 'autoRelock.afterMs = "30000": expected an integer in 1000..600000 (a JSON number, not a string)'],
    [{ autoRelock: 30_000 }, 'autoRelock = 30000'],
    [{ autoRelock: { aftrMs: 30_000 } }, 'unknown setting "autoRelock.aftrMs" in the config file (did you mean "afterMs"?)'],
    [{ walkAwayLock: { leaveRssi: -128 } }, 'walkAwayLock.leaveRssi = -128: expected an integer in -127..20'],
    [{ walkAwayLock: { hysteresisDb: 41 } }, 'walkAwayLock.hysteresisDb = 41: expected an integer in 0..40'],
    [{ walkAwayLock: { graceMs: 60_001 } }, 'walkAwayLock.graceMs = 60001: expected an integer in 0..60000'],
    [{ walkAwayLock: { doorWaitMs: -1 } }, 'walkAwayLock.doorWaitMs = -1: expected an integer in 0..1800000'],
    [{ walkAwayLock: { graceMS: 5000 } }, 'unknown setting "walkAwayLock.graceMS" in the config file (did you mean "graceMs"?)'],
    [{ walkAwayLok: {} }, 'unknown setting "walkAwayLok" in the config file (did you mean "walkAwayLock"?)'],
  ])('refuses %j', (file, message) => {
    expect(refusal(file)).toContain(message);
  });
});
