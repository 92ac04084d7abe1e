/**
 * Physical-presence gate for owner pairing and factory reset.
 *
 * Rules (docs/operations.md §Pairing):
 * - Unpaired car: a short press of the pairing button opens pairing mode for
 *   `windowMs`.
 * - Paired car (adding an owner, or recovering from a lost phone): pairing
 *   opens only when a registered keycard is tapped AND the button is pressed
 *   within `presenceMs` of each other. The cloud can never open it.
 * - One pairing per window: the first phone to reveal its commitment claims
 *   the window (`claim`); every other phone is told "busy" until the
 *   claimant's link closes or the window ends.
 * - A pairing phone's confirmation is accepted only by a LONG button press
 *   after the 6-digit code is shown (`awaitConfirmation`), within the window:
 *   a different gesture from the short press that opens pairing, so a natural
 *   "press again" while pairing never confirms a stranger's phone. A short
 *   press while a confirmation is pending only repeats the instruction.
 * - Factory reset: a long press (when no confirmation is pending) followed by
 *   a registered keycard tap within `presenceMs`.
 *
 * Guarantees: the state changes only on hardware events and time passing;
 * time is passed in (`now`), timers are the caller's. Pure apart from the
 * confirmation promise, which always settles (confirmed, refused or timed out).
 */

import type { HardwareEvent } from './actuator.js';

export type PairingAction =
  | { readonly kind: 'opened'; readonly until: number }
  | { readonly kind: 'confirmed' }
  | { readonly kind: 'factory-reset' }
  | { readonly kind: 'hint'; readonly text: string };

export interface PairingOptions {
  readonly windowMs: number;
  readonly presenceMs?: number;
  readonly keycards: readonly string[];
  readonly isPaired: () => boolean;
}

interface PendingConfirmation {
  readonly resolve: (confirmed: boolean) => void;
  readonly deadline: number;
}

export class PairingController {
  private openUntil = 0;
  private lastButton = -Infinity;
  private lastKeycard = -Infinity;
  private lastLongPress = -Infinity;
  private pending: PendingConfirmation | undefined;
  private claimant: string | undefined;
  private readonly presenceMs: number;

  constructor(private readonly options: PairingOptions) {
    this.presenceMs = options.presenceMs ?? 30_000;
  }

  isOpen(now: number): boolean {
    return now < this.openUntil;
  }

  close(): void {
    this.openUntil = 0;
    this.claimant = undefined;
    this.settle(false);
  }

  /**
   * Claim this window's one pairing for `linkId`. True when it was free or
   * already this link's; false while another link holds it.
   */
  claim(linkId: string, now: number): boolean {
    this.expire(now);
    if (!this.isOpen(now)) return false;
    if (this.claimant !== undefined && this.claimant !== linkId) return false;
    this.claimant = linkId;
    return true;
  }

  /** The claiming link went away: free the window (and cancel its pending confirmation). */
  release(linkId: string): void {
    if (this.claimant !== linkId) return;
    this.claimant = undefined;
    this.settle(false);
  }

  get awaitingConfirmation(): boolean {
    return this.pending !== undefined;
  }

  /** Feed a hardware event; returns what the daemon should do about it. */
  onHardwareEvent(event: HardwareEvent, now: number): PairingAction[] {
    this.expire(now);
    if (event.kind === 'button' && event.press === 'short') {
      if (this.pending !== undefined) return [{ kind: 'hint', text: 'Hold button to OK' }];
      this.lastButton = now;
      return this.maybeOpen(now);
    }
    if (event.kind === 'button' && event.press === 'long') {
      if (this.pending !== undefined) {
        this.settle(true);
        return [{ kind: 'confirmed' }];
      }
      this.lastLongPress = now;
      return [{ kind: 'hint', text: 'Tap keycard to reset' }];
    }
    if (event.kind === 'keycard') {
      if (!this.options.keycards.includes(event.cardId)) return [{ kind: 'hint', text: 'Unknown keycard' }];
      if (now - this.lastLongPress <= this.presenceMs) {
        this.lastLongPress = -Infinity;
        this.close();
        return [{ kind: 'factory-reset' }];
      }
      this.lastKeycard = now;
      return this.maybeOpen(now);
    }
    return [];
  }

  private maybeOpen(now: number): PairingAction[] {
    const paired = this.options.isPaired();
    const present = paired
      ? now - this.lastButton <= this.presenceMs && now - this.lastKeycard <= this.presenceMs
      : now - this.lastButton <= this.presenceMs;
    if (!present) return paired ? [{ kind: 'hint', text: 'Keycard + button to pair' }] : [];
    this.lastButton = -Infinity;
    this.lastKeycard = -Infinity;
    this.openUntil = now + this.options.windowMs;
    return [{ kind: 'opened', until: this.openUntil }];
  }

  /**
   * Wait for the physical confirmation of a pairing whose code is on the
   * display. Resolves false if the window closes first or another pairing
   * replaces this one. The caller drives time with `tick(now)`.
   */
  awaitConfirmation(now: number): Promise<boolean> {
    this.settle(false);
    return new Promise((resolve) => {
      this.pending = { resolve, deadline: Math.max(this.openUntil, now + 1) };
    });
  }

  /** Let time pass: closes an expired window and times out a pending confirmation. */
  tick(now: number): void {
    this.expire(now);
  }

  private expire(now: number): void {
    if (this.pending !== undefined && now >= this.pending.deadline) this.settle(false);
    if (!this.isOpen(now) && this.pending === undefined) this.claimant = undefined;
  }

  private settle(confirmed: boolean): void {
    const pending = this.pending;
    this.pending = undefined;
    pending?.resolve(confirmed);
    if (confirmed) {
      this.openUntil = 0;
      this.claimant = undefined;
    }
  }
}
