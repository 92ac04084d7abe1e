/**
 * Brute-force guard for the `start` PIN.
 *
 * Guarantees: after `maxFailures` wrong PINs within `windowMs`, every PIN is
 * treated as wrong until `lockoutMs` has passed (even the right one), so a
 * thief with a phone cannot walk a 4-digit space at the link's message rate:
 * with the defaults (5 tries, 5-minute lockout) 10,000 PINs take ~7 days.
 * The guard is global to the car (not per link) because links are cheap.
 * Pure: time is passed in.
 */

export interface PinGuardOptions {
  readonly maxFailures?: number;
  readonly windowMs?: number;
  readonly lockoutMs?: number;
}

export class PinGuard {
  private failures: number[] = [];
  private lockedUntil = -Infinity;
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly lockoutMs: number;

  constructor(options: PinGuardOptions = {}) {
    this.maxFailures = options.maxFailures ?? 5;
    this.windowMs = options.windowMs ?? 10 * 60_000;
    this.lockoutMs = options.lockoutMs ?? 5 * 60_000;
  }

  locked(now: number): boolean {
    return now < this.lockedUntil;
  }

  /** Record the outcome of one PIN check. */
  record(outcome: 'ok' | 'wrong', now: number): void {
    if (outcome === 'ok') {
      this.failures = [];
      return;
    }
    this.failures = this.failures.filter((t) => now - t < this.windowMs);
    this.failures.push(now);
    if (this.failures.length >= this.maxFailures) {
      this.lockedUntil = now + this.lockoutMs;
      this.failures = [];
    }
  }
}
