/**
 * Auto-relock: after an unlock, lock the car again when no door was opened
 * within `afterMs`. The decision logic only; the daemon feeds it facts and
 * carries out what it answers.
 *
 * Guarantees:
 * - Pure: no I/O, no clock, no timers. Time is the caller's monotonic ms
 *   (`performance.now()` in carkeyd), so a wall-clock jump (NTP step, an RTC
 *   that was wrong at boot) can neither fire it early nor postpone it forever.
 * - Armed by every successful unlock (re-armed from the latest one);
 *   disarmed by a door opening, a lock, drive ready. Nothing else arms it.
 * - `due` answers `relock` at most once per arming, and only when the
 *   deadline has passed, no door is open, drive is off and some door is
 *   unlocked; with a door open or drive ready at the deadline it disarms
 *   instead (that is a person using the car). Unknown door positions (a
 *   controller without door sensing) never relock.
 */

export interface AutoRelockSettings {
  /** Lock again this long after an unlock when no door opened (ms). */
  readonly afterMs: number;
}

/** What the hardware says at the moment the deadline is checked. */
export interface RelockFacts {
  /** undefined: the controller does not sense doors. */
  readonly anyDoorOpen: boolean | undefined;
  readonly driveReady: boolean;
  readonly anyUnlocked: boolean;
}

export type RelockVerdict =
  | { readonly action: 'none' }
  | { readonly action: 'relock'; readonly unlockedAt: number; readonly afterMs: number }
  | { readonly action: 'disarmed'; readonly why: 'door-open' | 'drive-ready' | 'already-locked' | 'no-door-sensing' };

export class AutoRelock {
  private unlockedAt: number | undefined;

  constructor(private readonly settings: AutoRelockSettings) {}

  /** A successful unlock at monotonic time `at` (re-arms from now). */
  unlocked(at: number): void {
    this.unlockedAt = at;
  }

  /** A door opened, the car was locked, or drive became ready: no relock for the last unlock. */
  disarm(): void {
    this.unlockedAt = undefined;
  }

  get armed(): boolean {
    return this.unlockedAt !== undefined;
  }

  /** Monotonic time at which `due` should be asked next, if armed. */
  deadline(): number | undefined {
    return this.unlockedAt === undefined ? undefined : this.unlockedAt + this.settings.afterMs;
  }

  /** Whether the deadline has passed (cheap; ask before reading the hardware). */
  isDue(now: number): boolean {
    const deadline = this.deadline();
    return deadline !== undefined && now >= deadline;
  }

  /** Decide at monotonic `now`, given what the hardware reports now. */
  due(now: number, facts: RelockFacts): RelockVerdict {
    const unlockedAt = this.unlockedAt;
    if (unlockedAt === undefined || !this.isDue(now)) return { action: 'none' };
    this.unlockedAt = undefined;
    if (facts.anyDoorOpen === undefined) return { action: 'disarmed', why: 'no-door-sensing' };
    if (facts.anyDoorOpen) return { action: 'disarmed', why: 'door-open' };
    if (facts.driveReady) return { action: 'disarmed', why: 'drive-ready' };
    if (!facts.anyUnlocked) return { action: 'disarmed', why: 'already-locked' };
    return { action: 'relock', unlockedAt, afterMs: this.settings.afterMs };
  }
}
