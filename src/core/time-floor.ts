/**
 * Trusted time for a car that may have no real-time clock, and whose system
 * clock, NTP answers and signed documents may each be wrong.
 *
 * Model (docs/threat-model.md "Time"): the car keeps one *anchor*, a trusted
 * wall time paired with a monotonic reading. Trusted time is the anchor
 * extrapolated by the monotonic clock, which an attacker cannot set. Then:
 *
 * - The system clock may move trusted time *forward* past the extrapolation,
 *   by at most `jumpBudgetMs` in total per anchor (default 30 days: the first
 *   NTP answer or RTC reading after a month parked, drift, slewing). A jump
 *   beyond what is left of the budget (a bad NTP answer, `date -s` twenty
 *   years ahead) is ignored until corroborated, and trusted time never
 *   follows the system clock backwards.
 * - A verified signed document (an owner's key list) *corroborates* the
 *   system clock when the two agree within `corroborationMs`: the anchor
 *   moves to the system clock and the budget refills. A document that
 *   disagrees lifts trusted time by at most `documentLeadMs` above the
 *   extrapolation, and never moves the anchor, so a series of far-future
 *   lists cannot ratchet the clock ahead: the lead stays bounded.
 * - Physical presence (a pairing confirmed with the car's button, a factory
 *   reset) re-anchors at a time the person vouches for; this is the only way
 *   trusted time can go back, and it is how an owner recovers a car whose
 *   clock was pushed ahead.
 *
 * The persisted floor is the anchor extrapolation (without the document
 * lead, which is re-derived from the key list in force at boot), so neither
 * a reboot nor a crash ratchets it. A reboot refills the jump budget: each
 * power cycle can move the floor at most `jumpBudgetMs` ahead of what the
 * car could justify.
 *
 * Pure: every reading (system clock, monotonic clock) is a parameter.
 */

export const DAY_MS = 86_400_000;

export interface TrustedClockOptions {
  /** Most the system clock may move trusted time ahead of the extrapolation, per anchor. */
  readonly jumpBudgetMs?: number;
  /** Most a disagreeing signed document lifts trusted time above the extrapolation. */
  readonly documentLeadMs?: number;
  /** A document time this close to the system clock corroborates it. */
  readonly corroborationMs?: number;
}

export const DEFAULT_TIME_POLICY: Required<TrustedClockOptions> = {
  jumpBudgetMs: 30 * DAY_MS,
  documentLeadMs: DAY_MS,
  corroborationMs: 5 * 60_000,
};

/** What happened to one reading of the system clock (for logs and metrics). */
export type ClockObservation = 'followed' | 'behind' | 'jump-ignored';

function isTime(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

export class TrustedClock {
  private anchorMs: number;
  private anchorMono: number;
  private budgetMs: number;
  private documentMs = 0;
  private lastObservation: ClockObservation = 'followed';
  private readonly policy: Required<TrustedClockOptions>;

  /**
   * Boot: anchor at the persisted floor (at the system clock when the floor
   * is 0, i.e. the car never knew the time); the system clock is then taken
   * within the jump budget like any other reading.
   */
  constructor(floorMs: number, systemMs: number, monoMs: number, options: TrustedClockOptions = {}) {
    this.policy = { ...DEFAULT_TIME_POLICY, ...options };
    this.anchorMs = isTime(floorMs) ? floorMs : 0;
    this.anchorMono = monoMs;
    this.budgetMs = this.policy.jumpBudgetMs;
    // A car that never knew the time (floor 0: first boot) has nothing to
    // contradict its system clock with: take it as the first anchor.
    if (this.anchorMs === 0 && isTime(systemMs)) this.anchorMs = systemMs;
    this.observe(systemMs, monoMs);
  }

  private extrapolated(monoMs: number): number {
    return this.anchorMs + Math.max(0, Math.floor(monoMs - this.anchorMono));
  }

  /** Feed one system-clock reading; follow it forward within the budget. */
  observe(systemMs: number, monoMs: number): ClockObservation {
    const base = this.extrapolated(monoMs);
    if (!isTime(systemMs) || systemMs <= base) {
      this.lastObservation = 'behind';
      return this.lastObservation;
    }
    const jump = systemMs - base;
    if (jump > this.budgetMs) {
      this.lastObservation = 'jump-ignored';
      return this.lastObservation;
    }
    this.budgetMs -= jump;
    this.anchorMs = systemMs;
    this.anchorMono = monoMs;
    this.lastObservation = 'followed';
    return this.lastObservation;
  }

  /** Trusted time now: the extrapolation, lifted by a verified document within its lead. */
  now(systemMs: number, monoMs: number): number {
    this.observe(systemMs, monoMs);
    const base = this.extrapolated(monoMs);
    return Math.max(base, Math.min(this.documentMs, base + this.policy.documentLeadMs));
  }

  /**
   * A verified signed document's time (a key list's issuedAt). Corroborates
   * the system clock when they agree; otherwise only lifts trusted time
   * within the document lead. Returns true when it corroborated.
   */
  observeDocument(documentMs: number, systemMs: number, monoMs: number): boolean {
    if (!isTime(documentMs)) return false;
    this.documentMs = Math.max(this.documentMs, documentMs);
    const corroborates = isTime(systemMs) && Math.abs(documentMs - systemMs) <= this.policy.corroborationMs;
    if (!corroborates) return false;
    if (systemMs > this.extrapolated(monoMs)) {
      this.anchorMs = systemMs;
      this.anchorMono = monoMs;
    }
    this.budgetMs = this.policy.jumpBudgetMs;
    return true;
  }

  /**
   * Physical presence vouches for `timeMs` (the pairing phone's signed time,
   * or the system clock at a factory reset): re-anchor there, even backwards,
   * refill the budget and forget document times.
   */
  resetByPresence(timeMs: number, monoMs: number): void {
    if (!isTime(timeMs)) return;
    this.anchorMs = timeMs;
    this.anchorMono = monoMs;
    this.budgetMs = this.policy.jumpBudgetMs;
    this.documentMs = timeMs;
  }

  /** The floor to persist: the extrapolation only (no document lead, see the header). */
  floor(monoMs: number): number {
    return this.extrapolated(monoMs);
  }

  /** How far the last system-clock reading was from trusted time (+ ahead, − behind). */
  systemSkew(systemMs: number, monoMs: number): number {
    return systemMs - this.now(systemMs, monoMs);
  }

  get lastSystemObservation(): ClockObservation {
    return this.lastObservation;
  }

  get remainingJumpBudgetMs(): number {
    return this.budgetMs;
  }
}
