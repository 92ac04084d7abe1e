/**
 * Retry pacing for the sync worker: exponential backoff with full jitter,
 * and one circuit breaker shared by every request to the cloud.
 *
 * Guarantees:
 * - `Backoff.next()` is a delay in [0, min(capMs, baseMs·2^attempt)] drawn
 *   with the injected `random` (full jitter, so many cars that lost the same
 *   cloud do not come back in step); `reset()` after a success.
 * - `CircuitBreaker`: after `threshold` consecutive failures it opens for a
 *   cool-down that doubles at each failed probe (capped at `maxOpenMs`);
 *   while open, `allow()` is false and nothing is sent; after the cool-down
 *   one probe is let through (half-open); a success closes it. Time is the
 *   injected monotonic clock. Pure: no timers, no I/O, never throws.
 */

export interface BackoffOptions {
  readonly baseMs: number;
  readonly capMs: number;
  /** uniform in [0, 1) */
  readonly random: () => number;
}

export class Backoff {
  private attempt = 0;

  constructor(private readonly options: BackoffOptions) {}

  /** The ceiling of the next delay (for tests and status). */
  get ceilingMs(): number {
    return Math.min(this.options.capMs, this.options.baseMs * 2 ** Math.min(this.attempt, 30));
  }

  get failures(): number {
    return this.attempt;
  }

  next(): number {
    const ceiling = this.ceilingMs;
    this.attempt++;
    const r = this.options.random();
    const unit = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0.5;
    return Math.floor(unit * ceiling);
  }

  reset(): void {
    this.attempt = 0;
  }
}

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** consecutive failures that open the circuit */
  readonly threshold: number;
  readonly openMs: number;
  readonly maxOpenMs: number;
  readonly monotonic: () => number;
}

export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private coolDownMs: number;
  private stateValue: CircuitState = 'closed';
  private probing = false;

  constructor(private readonly options: CircuitBreakerOptions) {
    this.coolDownMs = options.openMs;
  }

  get state(): CircuitState {
    if (this.stateValue === 'open' && this.options.monotonic() - this.openedAt >= this.coolDownMs) this.stateValue = 'half-open';
    return this.stateValue;
  }

  /** May a request go out now? In half-open, only one probe at a time. */
  allow(): boolean {
    const state = this.state;
    if (state === 'closed') return true;
    if (state === 'open' || this.probing) return false;
    this.probing = true;
    return true;
  }

  /** ms until the circuit lets a probe through (0 when closed or half-open). */
  waitMs(): number {
    if (this.state !== 'open') return 0;
    return Math.max(0, this.coolDownMs - (this.options.monotonic() - this.openedAt));
  }

  success(): void {
    this.failures = 0;
    this.probing = false;
    this.stateValue = 'closed';
    this.coolDownMs = this.options.openMs;
  }

  failure(): void {
    const wasProbe = this.stateValue === 'half-open' || this.state === 'half-open';
    this.probing = false;
    this.failures++;
    if (wasProbe) {
      this.coolDownMs = Math.min(this.options.maxOpenMs, this.coolDownMs * 2);
      this.open();
    } else if (this.stateValue === 'closed' && this.failures >= this.options.threshold) {
      this.open();
    }
  }

  /** A request that got no verdict (aborted at shutdown): frees a half-open probe slot. */
  release(): void {
    this.probing = false;
  }

  private open(): void {
    this.stateValue = 'open';
    this.openedAt = this.options.monotonic();
  }
}
