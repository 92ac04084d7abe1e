/**
 * Trusted time for a car that may have no real-time clock.
 *
 * Guarantees: `trustedNow` never returns less than the persisted floor; the
 * floor only moves forward (`raiseFloor` is monotonic) and moves to the max of
 * the system time and the times found in verified signed documents (key-list
 * issue times). A system clock reset to 1970 therefore cannot revive an
 * expired grant. Pure: every input is a parameter.
 */

/** The time the car decides with: max(system clock, persisted floor). */
export function trustedNow(systemNowMs: number, floorMs: number): number {
  return Math.max(systemNowMs, floorMs);
}

/**
 * The new floor after observing the system time and verified document times.
 * Document times further than `maxFutureMs` ahead of the current trusted time
 * are capped there, so one mis-dated signed document cannot push the car's
 * clock years ahead and expire every grant.
 */
export function raiseFloor(floorMs: number, systemNowMs: number, documentTimesMs: readonly number[] = [], maxFutureMs = 366 * 86_400_000): number {
  const base = trustedNow(systemNowMs, floorMs);
  let next = base;
  for (const time of documentTimesMs) {
    if (Number.isSafeInteger(time) && time > next) next = Math.min(time, base + maxFutureMs);
  }
  return next;
}
