/**
 * The car's trusted time: the core's TrustedClock (src/core/time-floor.ts)
 * fed with the real clocks and persisted in the store.
 *
 * Guarantees: `now()` never throws and never goes back (except after
 * `resetByPresence`); the persisted floor is written at most every
 * `persistEveryMs` (and at once after a document or presence changed it), so
 * an SD card is not written every second; a failing write (full or
 * read-only disk) is reported by `persist()`'s caller, never thrown from
 * `now()`. A system-clock jump the clock ignores is logged once per jump.
 */
import type { Logger } from 'pino';
import { TrustedClock, type ClockObservation, type TrustedClockOptions } from '../core/time-floor.js';
import type { VehicleStore } from './store.js';

export interface CarTimeDeps {
  readonly store: VehicleStore;
  readonly wallClock: () => number;
  readonly monotonic: () => number;
  readonly logger: Logger;
  readonly policy?: TrustedClockOptions;
}

export interface CarTimeStatus {
  readonly trustedTime: number;
  readonly systemTime: number;
  /** system clock minus trusted time (ms): large when a jump is being ignored */
  readonly systemSkewMs: number;
  readonly lastSystemObservation: ClockObservation;
  readonly remainingJumpBudgetMs: number;
}

export class CarTime {
  private readonly clock: TrustedClock;
  private lastPersisted: number;
  private warnedJump = false;

  constructor(private readonly deps: CarTimeDeps) {
    this.lastPersisted = deps.store.timeFloor();
    this.clock = new TrustedClock(this.lastPersisted, deps.wallClock(), deps.monotonic(), deps.policy);
  }

  /** Trusted wall time (ms) to decide with. */
  now(): number {
    const value = this.clock.now(this.deps.wallClock(), this.deps.monotonic());
    this.noteObservation();
    return value;
  }

  private noteObservation(): void {
    const observation = this.clock.lastSystemObservation;
    if (observation === 'jump-ignored' && !this.warnedJump) {
      this.warnedJump = true;
      this.deps.logger.warn({ systemTime: this.deps.wallClock(), trustedTime: this.clock.floor(this.deps.monotonic()) }, 'system clock jumped further ahead than the car can justify; ignoring it until a signed document corroborates it');
    } else if (observation === 'followed') {
      this.warnedJump = false;
    }
  }

  /** A verified key list's issue time. Persists the floor when it moved. */
  observeDocument(issuedAt: number): void {
    this.clock.observeDocument(issuedAt, this.deps.wallClock(), this.deps.monotonic());
    this.persist(true);
  }

  /** Physical presence vouches for `timeMs`: re-anchor (also backwards) and persist at once. */
  resetByPresence(timeMs: number): void {
    this.clock.resetByPresence(timeMs, this.deps.monotonic());
    const floor = this.clock.floor(this.deps.monotonic());
    this.deps.store.resetTimeFloor(floor);
    this.lastPersisted = floor;
  }

  /** The floor a factory reset should store: the earlier of trusted time and the system clock. */
  resetCandidate(): number {
    return Math.min(this.now(), Math.max(0, Math.floor(this.deps.wallClock())));
  }

  /**
   * Write the floor if it moved by `persistEveryMs` or more (or `force`).
   * Throws the store's error (the caller's timer reports it).
   */
  persist(force = false, persistEveryMs = 60_000): void {
    this.now();
    const floor = this.clock.floor(this.deps.monotonic());
    if (floor <= this.lastPersisted) return;
    if (!force && floor - this.lastPersisted < persistEveryMs) return;
    this.deps.store.raiseTimeFloor(floor);
    this.lastPersisted = floor;
  }

  status(): CarTimeStatus {
    const systemTime = this.deps.wallClock();
    const trustedTime = this.now();
    return {
      trustedTime,
      systemTime,
      systemSkewMs: Math.round(systemTime - trustedTime),
      lastSystemObservation: this.clock.lastSystemObservation,
      remainingJumpBudgetMs: this.clock.remainingJumpBudgetMs,
    };
  }
}
