/**
 * Brute-force guard for the `start` PIN, per key.
 *
 * Guarantees:
 * - Per key: after `maxFailures` wrong PINs from one key (public key hex)
 *   within `windowMs`, every PIN from that key is treated as wrong until
 *   `lockoutMs` has passed (even the right one), so a thief with a phone
 *   cannot walk a 4-digit space at the link's message rate: with the
 *   defaults (5 tries, 5-minute lockout) 10,000 PINs take ~7 days per key.
 *   A right PIN clears that key's count.
 * - One key's failures never lock another key: a grantee with `start` who
 *   sends wrong PINs cannot keep an owner's right PIN refused.
 * - Car-wide backstop for non-owners only: after `globalMaxFailures` wrong
 *   PINs from non-owner keys (all of them together) within `windowMs`, every
 *   non-owner PIN is wrong for `lockoutMs`. Grants are issued by owners, so
 *   this only bounds a group of grantees; owners are never subject to it.
 * - Bounded memory: at most `maxTrackedKeys` keys are tracked; a new key
 *   evicts the oldest tracked key that is not locked out (the oldest one if
 *   all are), so a lockout is only forgotten under pressure from more keys
 *   than the cap, and each such key needs a grant from an owner.
 * Pure: time is passed in; no I/O.
 */

export interface PinGuardOptions {
  readonly maxFailures?: number;
  readonly windowMs?: number;
  readonly lockoutMs?: number;
  readonly maxTrackedKeys?: number;
  readonly globalMaxFailures?: number;
}

/** Who is entering the PIN: the peer's public key (hex) and whether it is an owner now. */
export interface PinSubject {
  readonly key: string;
  readonly owner: boolean;
}

interface Tracked {
  failures: number[];
  lockedUntil: number;
}

export const PIN_GUARD_DEFAULTS = {
  maxFailures: 5,
  windowMs: 10 * 60_000,
  lockoutMs: 5 * 60_000,
  maxTrackedKeys: 256,
  globalMaxFailures: 20,
} as const;

export class PinGuard {
  /** Insertion order = age (a key is re-inserted when it fails again). */
  private readonly keys = new Map<string, Tracked>();
  private readonly nonOwner: Tracked = { failures: [], lockedUntil: -Infinity };
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly lockoutMs: number;
  private readonly maxTrackedKeys: number;
  private readonly globalMaxFailures: number;

  constructor(options: PinGuardOptions = {}) {
    this.maxFailures = options.maxFailures ?? PIN_GUARD_DEFAULTS.maxFailures;
    this.windowMs = options.windowMs ?? PIN_GUARD_DEFAULTS.windowMs;
    this.lockoutMs = options.lockoutMs ?? PIN_GUARD_DEFAULTS.lockoutMs;
    this.maxTrackedKeys = Math.max(1, options.maxTrackedKeys ?? PIN_GUARD_DEFAULTS.maxTrackedKeys);
    this.globalMaxFailures = options.globalMaxFailures ?? PIN_GUARD_DEFAULTS.globalMaxFailures;
  }

  /** Is this subject's PIN locked out at `now`? */
  locked(subject: PinSubject, now: number): boolean {
    return this.lockedFor(subject, now) > 0;
  }

  /** How long (ms) this subject's PIN stays locked out from `now`: 0 when it is not (the later of its key's and the non-owner lockout). */
  lockedFor(subject: PinSubject, now: number): number {
    const own = this.keys.get(subject.key)?.lockedUntil ?? -Infinity;
    const until = subject.owner ? own : Math.max(own, this.nonOwner.lockedUntil);
    return until > now ? until - now : 0;
  }

  /** Record the outcome of one PIN check (only for checks made while not locked). */
  record(subject: PinSubject, outcome: 'ok' | 'wrong', now: number): void {
    if (outcome === 'ok') {
      this.keys.delete(subject.key);
      return;
    }
    const tracked = this.keys.get(subject.key) ?? { failures: [], lockedUntil: -Infinity };
    this.keys.delete(subject.key);
    this.fail(tracked, this.maxFailures, now);
    if (this.keys.size >= this.maxTrackedKeys) this.evictOne(now);
    this.keys.set(subject.key, tracked);
    if (!subject.owner) this.fail(this.nonOwner, this.globalMaxFailures, now);
  }

  /** Number of keys currently tracked (for tests and status). */
  get trackedKeys(): number {
    return this.keys.size;
  }

  private fail(tracked: Tracked, limit: number, now: number): void {
    tracked.failures = tracked.failures.filter((t) => now - t < this.windowMs);
    tracked.failures.push(now);
    if (tracked.failures.length >= limit) {
      tracked.lockedUntil = now + this.lockoutMs;
      tracked.failures = [];
    }
  }

  private evictOne(now: number): void {
    let victim: string | undefined;
    for (const [key, tracked] of this.keys) {
      if (now >= tracked.lockedUntil) {
        victim = key;
        break;
      }
    }
    victim ??= this.keys.keys().next().value;
    if (victim !== undefined) this.keys.delete(victim);
  }
}
