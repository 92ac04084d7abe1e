/**
 * The car locking itself: auto-relock (auto-relock.ts) and walk-away lock
 * (walk-away.ts) wired to the hardware, the links and the audit log.
 *
 * Guarantees:
 * - `port` is the ActuatorPort everyone else in carkeyd uses (links, the
 *   cloud's remote commands): it passes every call through unchanged and
 *   observes the outcomes. A successful unlock (from any caller) arms
 *   auto-relock; a successful lock, or drive ready, disarms both features.
 *   Door events from the hardware disarm auto-relock (a door opened) and
 *   re-check a waiting walk-away (a door closed).
 * - Before locking, the hardware's state is read again: the car never locks
 *   itself while drive is ready or a door is open, nor when the controller
 *   does not sense doors (then both features stay inactive, logged once).
 * - Every self-lock is audited once it was carried out: kind `auto-relock`
 *   or `walk-away` with why, or the same kind with `failed: <code>` when the
 *   hardware failed. Timers use the daemon's monotonic clock and unref'd
 *   intervals; no timer or handler body throws past its boundary.
 * - With both features off (the default), it adds nothing: no timer runs and
 *   `port` is the hardware port itself.
 */
import type { Logger } from 'pino';
import type { AuditFields, AuditKind } from '../core/audit.js';
import { toCarkeyError } from '../core/errors.js';
import type { PeripheralLink } from '../transport/types.js';
import type { ActuatorPort, DoorSelection, HardwareEvent, VehicleState } from './actuator.js';
import { AutoRelock, type AutoRelockSettings } from './auto-relock.js';
import { guarded, type BoundaryOptions } from './boundary.js';
import { WalkAwayWatch, type WalkAwayFacts, type WalkAwaySettings } from './walk-away.js';

/** How often the deadlines and the watched link's RSSI are checked (ms). */
export const AUTO_LOCK_CHECK_MS = 250;

export interface AutoLockOptions {
  readonly autoRelock: AutoRelockSettings | undefined;
  readonly walkAway: WalkAwaySettings | undefined;
  readonly hardware: ActuatorPort;
  readonly audit: { append(kind: AuditKind, fields: AuditFields): unknown };
  readonly logger: Logger;
  readonly monotonic: () => number;
  readonly boundary?: BoundaryOptions;
  /** The other authenticated links now: their key id and latest RSSI ("is another key at the car?"). */
  readonly links: () => Iterable<{ readonly key: string | undefined; readonly rssi: number | undefined }>;
}

function anyDoorOpen(state: VehicleState): boolean | undefined {
  if (state.positions === undefined) return undefined;
  return Object.values(state.positions).some((position) => position === 'open');
}

function anyUnlocked(state: VehicleState): boolean {
  return Object.values(state.doors).some((lock) => lock === 'unlocked');
}

export class AutoLock {
  readonly port: ActuatorPort;
  private readonly relock: AutoRelock | undefined;
  private readonly walkAway: WalkAwayWatch | undefined;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;
  private watchedLink: PeripheralLink | undefined;
  private readonly closeWatched = new WeakSet<PeripheralLink>();
  private checking = false;
  private again = false;
  private warnedNoSensing = false;
  private stopped = false;

  constructor(private readonly options: AutoLockOptions) {
    this.relock = options.autoRelock === undefined ? undefined : new AutoRelock(options.autoRelock);
    this.walkAway = options.walkAway === undefined ? undefined : new WalkAwayWatch(options.walkAway);
    const hardware = options.hardware;
    if (this.relock === undefined && this.walkAway === undefined) {
      this.port = hardware;
      this.timer = undefined;
      this.unsubscribe = () => undefined;
      return;
    }
    this.port = this.observing(hardware);
    this.unsubscribe = hardware.onEvent(guarded(options.logger, 'auto-lock door event', (event: HardwareEvent) => this.onHardwareEvent(event), options.boundary));
    this.timer = setInterval(guarded(options.logger, 'auto-lock check', () => this.check(), options.boundary), AUTO_LOCK_CHECK_MS);
    this.timer.unref();
  }

  /** A BLE link of `key` unlocked the car: watch that phone for walking away. */
  bleUnlocked(key: string, link: PeripheralLink): void {
    const watch = this.walkAway;
    if (watch === undefined || this.stopped) return;
    watch.unlockedBy(key, link.id);
    this.follow(watch, link);
  }

  /** Watch `link` (RSSI samples in `check`, and its close). */
  private follow(watch: WalkAwayWatch, link: PeripheralLink): void {
    this.watchedLink = link;
    if (this.closeWatched.has(link)) return;
    this.closeWatched.add(link);
    link.onClose(
      guarded(this.options.logger, 'walk-away link closed', (reason: string) => {
        if (watch.watched?.link === link.id) this.options.logger.info({ link: link.id, reason }, 'walk-away: the watched link closed');
        watch.linkClosed(link.id, reason === 'link-lost', this.options.monotonic());
        this.check();
      }, this.options.boundary),
    );
  }

  /** A link of `key` authenticated (a phone whose link was lost may be back). */
  authenticated(key: string, link: PeripheralLink): void {
    const watch = this.walkAway;
    if (watch === undefined) return;
    const before = watch.watched;
    watch.relinked(key, link.id);
    const after = watch.watched;
    if (before !== undefined && after !== undefined && before.link !== after.link) {
      this.options.logger.info({ link: link.id }, 'walk-away: the phone whose link was lost is back; watching its new link');
      this.follow(watch, link);
    }
  }

  /** For /state: which features are on and what they wait for. */
  status(): { readonly autoRelock: { readonly armed: boolean } | null; readonly walkAway: { readonly watchingKey: string | null; readonly triggered: boolean } | null } {
    return {
      autoRelock: this.relock === undefined ? null : { armed: this.relock.armed },
      walkAway: this.walkAway === undefined ? null : { watchingKey: this.walkAway.watched?.key ?? null, triggered: this.walkAway.triggered },
    };
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.unsubscribe();
    this.relock?.disarm();
    this.walkAway?.stop();
  }

  private observing(hardware: ActuatorPort): ActuatorPort {
    const disarmAll = (): void => {
      this.relock?.disarm();
      this.walkAway?.stop();
    };
    return {
      unlock: async (doors?: DoorSelection) => {
        await hardware.unlock(doors);
        this.relock?.unlocked(this.options.monotonic());
      },
      lock: async (doors?: DoorSelection) => {
        await hardware.lock(doors);
        disarmAll();
      },
      setDrive: async (on: boolean) => {
        await hardware.setDrive(on);
        if (on) disarmAll();
      },
      openTrunk: () => hardware.openTrunk(),
      display: (rows) => hardware.display(rows),
      clearDisplay: () => hardware.clearDisplay(),
      signal: (kind, times) => hardware.signal(kind, times),
      state: () => hardware.state(),
      onEvent: (handler) => hardware.onEvent(handler),
      close: () => hardware.close(),
    };
  }

  private onHardwareEvent(event: HardwareEvent): void {
    if (event.kind !== 'door') return;
    if (event.position === 'open') this.relock?.disarm();
    else if (this.walkAway?.triggered === true) this.check();
  }

  /** Run one check; overlapping requests coalesce into one more run after the current one. */
  private check(): void {
    if (this.stopped) return;
    if (this.checking) {
      this.again = true;
      return;
    }
    this.checking = true;
    void this.checkOnce()
      .catch((error: unknown) => this.options.logger.warn({ errorCode: toCarkeyError(error).code, err: toCarkeyError(error).message }, 'auto-lock check failed; retrying at the next check'))
      .finally(() => {
        this.checking = false;
        if (this.again) {
          this.again = false;
          this.check();
        }
      });
  }

  private async checkOnce(): Promise<void> {
    const { monotonic } = this.options;
    const watch = this.walkAway;
    const watched = watch?.watched;
    if (watch !== undefined && watched !== undefined && this.watchedLink?.id === watched.link) watch.sample(watched.link, this.watchedLink.rssi(), monotonic());
    const relockDue = this.relock?.isDue(monotonic()) === true;
    const walkAwayDue = watch?.wantsFacts(monotonic()) === true;
    if (!relockDue && !walkAwayDue) return;
    const state = await this.options.hardware.state();
    const doorOpen = anyDoorOpen(state);
    if (doorOpen === undefined && !this.warnedNoSensing) {
      this.warnedNoSensing = true;
      this.options.logger.warn('the body controller does not report door positions: auto-relock and walk-away lock stay inactive (docs/operations.md)');
    }
    const facts = { anyDoorOpen: doorOpen, driveReady: state.drive === 'ready', anyUnlocked: anyUnlocked(state) };
    if (this.relock !== undefined && relockDue) {
      const verdict = this.relock.due(monotonic(), facts);
      if (verdict.action === 'relock') {
        await this.lock('auto-relock', { reason: 'no-door-opened', afterMs: verdict.afterMs });
        return;
      }
      if (verdict.action === 'disarmed') this.options.logger.info({ why: verdict.why }, 'auto-relock not needed');
    }
    if (watch !== undefined && walkAwayDue) {
      if (!watch.triggered) this.options.logger.info({ subject: `key:${watched?.key ?? '?'}` }, 'walk-away: the phone is gone; locking once the doors are closed');
      const walkFacts: WalkAwayFacts = { ...facts, otherKeyNear: this.otherKeyNear(watched?.key) };
      const verdict = watch.check(monotonic(), walkFacts);
      this.options.logger.debug({ facts: walkFacts, verdict: verdict.action }, 'walk-away check');
      if (verdict.action === 'lock') {
        const settings = this.options.walkAway;
        await this.lock('walk-away', { key: verdict.key, reason: verdict.reason, rssi: verdict.rssi ?? null, leaveRssi: settings?.leaveRssi ?? null, graceMs: settings?.graceMs ?? null, waitedMs: Math.round(verdict.waitedMs) });
      } else if (verdict.action === 'ended') {
        this.watchedLink = undefined;
        this.options.logger.info({ subject: `key:${verdict.key}`, reason: verdict.reason, why: verdict.why }, 'walk-away: not locking');
      }
    }
  }

  private otherKeyNear(key: string | undefined): boolean {
    const leaveRssi = this.options.walkAway?.leaveRssi ?? 0;
    for (const link of this.options.links()) {
      if (link.key === undefined || link.key === key) continue;
      // Unknown RSSI: the car cannot tell that this person has left, so it counts as near.
      if (link.rssi === undefined || link.rssi >= 127 || link.rssi >= leaveRssi) return true;
    }
    return false;
  }

  private async lock(kind: 'auto-relock' | 'walk-away', fields: AuditFields): Promise<void> {
    this.relock?.disarm();
    this.walkAway?.stop();
    this.watchedLink = undefined;
    try {
      await this.options.hardware.lock('all');
      this.options.audit.append(kind, fields);
      this.options.logger.info({ kind, reason: fields.reason ?? null }, 'the car locked itself');
    } catch (error) {
      const code = toCarkeyError(error).code;
      this.options.audit.append(kind, { ...fields, failed: code });
      this.options.logger.warn({ kind, errorCode: code }, 'the car tried to lock itself and the hardware failed');
    }
  }
}
