/**
 * The port through which carkeyd acts on the car's body hardware.
 *
 * Guarantees (for every implementation: the UART/pty/socket driver in
 * hw-driver.ts, and any future GPIO or CAN driver):
 * - Every method settles; failures reject with a `CarkeyError` whose code is
 *   one of CK_HW_UNAVAILABLE (no link), CK_HW_TIMEOUT (no answer in time),
 *   CK_HW_REJECTED (the hardware refused; nothing changed) or CK_HW_BAD_REPLY
 *   (garbled answer). After TIMEOUT or BAD_REPLY the command may or may not
 *   have taken effect; every actuator command is idempotent, so retrying is safe.
 * - Commands are carried out in the order they are called.
 * - `onEvent` handlers are called synchronously, in arrival order, and a
 *   throwing handler never stops delivery to the others.
 * - This module holds only types and constants: no I/O.
 */

/** Doors in a fixed order; a two-door car has only the first two. */
export const DOORS = ['front-left', 'front-right', 'rear-left', 'rear-right'] as const;
export type Door = (typeof DOORS)[number];

export type LockState = 'locked' | 'unlocked';
export type DriveState = 'off' | 'ready';
export type TrunkState = 'open' | 'closed';
/** A door standing open (ajar) or shut. */
export type DoorPosition = 'open' | 'closed';
export type ButtonPress = 'short' | 'long';

/** Which doors a lock/unlock applies to: every fitted door, or the listed ones. */
export type DoorSelection = 'all' | readonly Door[];

export interface VehicleState {
  /** Fitted doors only: a two-door car has no rear-left/rear-right entry. */
  readonly doors: Readonly<Partial<Record<Door, LockState>>>;
  /**
   * Open/closed per fitted door, when the hardware senses it; undefined when
   * it does not (older body-controller firmware): then nothing may assume a
   * door is closed.
   */
  readonly positions?: Readonly<Partial<Record<Door, DoorPosition>>>;
  readonly drive: DriveState;
  readonly trunk: TrunkState;
  /** The display's rows as shown, trailing spaces trimmed ('' for a blank row). */
  readonly display: readonly string[];
}

/** Something that happened at the car without the daemon asking. */
export type HardwareEvent =
  /** The pairing button (short press, or held for a long press). */
  | { readonly kind: 'button'; readonly press: ButtonPress }
  /** A keycard was held to the reader. */
  | { readonly kind: 'keycard'; readonly cardId: string }
  /** The trunk lid moved (opened on command, or closed by a person). */
  | { readonly kind: 'trunk'; readonly state: TrunkState }
  /** A door was opened or closed by a person. */
  | { readonly kind: 'door'; readonly door: Door; readonly position: DoorPosition }
  /** The link to the body controller went down or came back. */
  | { readonly kind: 'link'; readonly state: 'up' | 'down' };

export type SignalKind = 'beep' | 'flash';

export interface ActuatorPort {
  /** Unlock the given doors (default: all fitted doors). */
  unlock(doors?: DoorSelection): Promise<void>;
  /** Lock the given doors (default: all fitted doors). */
  lock(doors?: DoorSelection): Promise<void>;
  /** Enable (`ready`) or disable (`off`) driving. */
  setDrive(on: boolean): Promise<void>;
  /** Release the trunk latch; a person closes the lid. */
  openTrunk(): Promise<void>;
  /** Show text: one entry per display row (the controller rejects rows that do not fit). */
  display(rows: readonly string[]): Promise<void>;
  /** Blank the display. */
  clearDisplay(): Promise<void>;
  /** Beep the horn or flash the lights `times` times (default 1, at most 9). */
  signal(kind: SignalKind, times?: number): Promise<void>;
  /** Read the current state from the hardware. */
  state(): Promise<VehicleState>;
  /** Subscribe to hardware events; returns the unsubscribe function. */
  onEvent(handler: (event: HardwareEvent) => void): () => void;
  /** Release the link. Pending and later calls reject with CK_HW_UNAVAILABLE. Idempotent. */
  close(): Promise<void>;
}
