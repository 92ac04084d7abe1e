/**
 * Walk-away lock: when the phone whose BLE link unlocked the car goes away,
 * and nobody else is at the car, lock it. The decision logic only; the
 * daemon feeds it RSSI samples, link closes and hardware facts, and carries
 * out what it answers.
 *
 * Guarantees:
 * - Pure: no I/O, no clock, no timers; time is the caller's monotonic ms, so
 *   a wall-clock jump changes nothing.
 * - One watch at a time: the latest BLE unlock (`unlock` or `passiveUnlock`)
 *   starts it for that link's key; a lock or drive ready ends it.
 * - "Away" uses RSSI hysteresis (ProximityTracker, starting near): away once
 *   RSSI is below `leaveRssi`, near again only at `leaveRssi + hysteresisDb`
 *   or more. Unknown RSSI (no reading, the HCI "not available" 127) is never
 *   evidence of leaving: such samples are ignored.
 * - The watch triggers after the phone has been away for `graceMs` without a
 *   break, or `graceMs` after its link was lost (supervision timeout) unless
 *   the same key connects again in between. A link the phone or the car
 *   closed on purpose ends the watch without locking: a clean goodbye says
 *   nothing about where the phone is.
 * - Once triggered it answers `lock` only when every door is closed, drive is
 *   off, some door is unlocked and no other key's link is near. While a door
 *   is open or another key is near it waits, at most `doorWaitMs`, then gives
 *   up; drive ready, already locked or no door sensing end it at once. It
 *   answers `lock` at most once per watch.
 */
import { ProximityTracker } from './proximity.js';

export interface WalkAwaySettings {
  /** Away below this RSSI (dBm). */
  readonly leaveRssi: number;
  /** Near again only at leaveRssi + hysteresisDb or stronger (dB). */
  readonly hysteresisDb: number;
  /** How long the phone must stay away (or its link stay lost) before the car locks (ms). */
  readonly graceMs: number;
  /** How long a triggered walk-away waits for open doors to close / other keys to leave (ms). */
  readonly doorWaitMs: number;
}

export type WalkAwayReason = 'link-lost' | 'rssi';

/** What the car knows when a triggered walk-away is decided. */
export interface WalkAwayFacts {
  /** undefined: the controller does not sense doors. */
  readonly anyDoorOpen: boolean | undefined;
  readonly driveReady: boolean;
  readonly anyUnlocked: boolean;
  /** Another key's authenticated link is near (RSSI not below leaveRssi, or unknown). */
  readonly otherKeyNear: boolean;
}

export type WalkAwayEnd = 'drive-ready' | 'already-locked' | 'no-door-sensing' | 'door-open' | 'other-key-near';

export type WalkAwayVerdict =
  | { readonly action: 'none' }
  | { readonly action: 'lock'; readonly key: string; readonly reason: WalkAwayReason; readonly rssi: number | undefined; readonly waitedMs: number }
  | { readonly action: 'ended'; readonly key: string; readonly reason: WalkAwayReason; readonly why: WalkAwayEnd };

type Phase =
  | { readonly kind: 'watching'; readonly awaySince: number | undefined }
  | { readonly kind: 'lost'; readonly since: number }
  | { readonly kind: 'triggered'; readonly reason: WalkAwayReason; readonly since: number };

interface Watch {
  readonly key: string;
  link: string;
  tracker: ProximityTracker;
  phase: Phase;
}

export class WalkAwayWatch {
  private watch: Watch | undefined;

  constructor(private readonly settings: WalkAwaySettings) {}

  private newTracker(): ProximityTracker {
    return new ProximityTracker({ enterRssi: this.settings.leaveRssi + this.settings.hysteresisDb, exitRssi: this.settings.leaveRssi }, true);
  }

  /** The key and link being watched, if any. */
  get watched(): { readonly key: string; readonly link: string } | undefined {
    return this.watch === undefined ? undefined : { key: this.watch.key, link: this.watch.link };
  }

  /** Whether the watch has triggered and waits for the car's facts. */
  get triggered(): boolean {
    return this.watch?.phase.kind === 'triggered';
  }

  /** `key` unlocked the car over link `link` at `at`: watch that phone (replaces any earlier watch). */
  unlockedBy(key: string, link: string): void {
    this.watch = { key, link, tracker: this.newTracker(), phase: { kind: 'watching', awaySince: undefined } };
  }

  /** An RSSI sample of link `link` at `at` (undefined: the radio has none). */
  sample(link: string, rssi: number | undefined, at: number): void {
    const watch = this.watch;
    if (watch === undefined || watch.link !== link) return;
    if (rssi === undefined || !Number.isFinite(rssi) || rssi >= 127) return;
    const near = watch.tracker.observe(rssi);
    const phase = watch.phase;
    if (phase.kind === 'watching') {
      if (near) watch.phase = { kind: 'watching', awaySince: undefined };
      else if (phase.awaySince === undefined) watch.phase = { kind: 'watching', awaySince: at };
    } else if (phase.kind === 'triggered' && phase.reason === 'rssi' && near) {
      // The phone came back while the car waited for a door: not walking away after all.
      watch.phase = { kind: 'watching', awaySince: undefined };
    }
  }

  /** Link `link` closed: `lost` for a radio link loss (supervision timeout), false for a deliberate disconnect by either side. */
  linkClosed(link: string, lost: boolean, at: number): void {
    const watch = this.watch;
    if (watch === undefined || watch.link !== link) return;
    if (!lost) {
      if (watch.phase.kind !== 'triggered') this.watch = undefined;
      return;
    }
    if (watch.phase.kind !== 'triggered') watch.phase = { kind: 'lost', since: at };
  }

  /** `key` authenticated again on link `link`: a lost phone is back (in range: it connected). */
  relinked(key: string, link: string): void {
    const watch = this.watch;
    if (watch === undefined || watch.key !== key) return;
    const phase = watch.phase;
    if (phase.kind === 'lost' || (phase.kind === 'triggered' && phase.reason === 'link-lost')) {
      watch.link = link;
      watch.tracker = this.newTracker();
      watch.phase = { kind: 'watching', awaySince: undefined };
    }
  }

  /** The car was locked or drive became ready: nothing to watch. */
  stop(): void {
    this.watch = undefined;
  }

  /** Whether `check` at `now` needs the car's facts (the watch has triggered or triggers now). */
  wantsFacts(now: number): boolean {
    const phase = this.watch?.phase;
    if (phase === undefined) return false;
    switch (phase.kind) {
      case 'triggered':
        return true;
      case 'lost':
        return now - phase.since >= this.settings.graceMs;
      case 'watching':
        return phase.awaySince !== undefined && now - phase.awaySince >= this.settings.graceMs;
    }
  }

  /** Decide at monotonic `now`; `facts` is read only when `wantsFacts(now)`. */
  check(now: number, facts: WalkAwayFacts | undefined): WalkAwayVerdict {
    const watch = this.watch;
    if (watch === undefined || !this.wantsFacts(now) || facts === undefined) return { action: 'none' };
    const phase = watch.phase;
    const triggered = phase.kind === 'triggered' ? phase : { kind: 'triggered' as const, reason: phase.kind === 'lost' ? ('link-lost' as const) : ('rssi' as const), since: now };
    watch.phase = triggered;
    const end = (why: WalkAwayEnd): WalkAwayVerdict => {
      this.watch = undefined;
      return { action: 'ended', key: watch.key, reason: triggered.reason, why };
    };
    if (facts.driveReady) return end('drive-ready');
    if (!facts.anyUnlocked) return end('already-locked');
    if (facts.anyDoorOpen === undefined) return end('no-door-sensing');
    if (facts.anyDoorOpen || facts.otherKeyNear) {
      if (now - triggered.since >= this.settings.doorWaitMs) return end(facts.anyDoorOpen ? 'door-open' : 'other-key-near');
      return { action: 'none' };
    }
    this.watch = undefined;
    return { action: 'lock', key: watch.key, reason: triggered.reason, rssi: watch.tracker.rssi, waitedMs: now - triggered.since };
  }
}
