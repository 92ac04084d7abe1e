/**
 * Pure state model of the simulated body controller.
 *
 * Guarantees:
 * - Pure and deterministic: (state, command) → (new state, reply, events) and
 *   (state, physical action) → (new state, events). No I/O, clock or randomness;
 *   inputs are never mutated.
 * - Total: every well-typed command gets a reply; a command that cannot be
 *   carried out (door not fitted, display text that does not fit) leaves the
 *   state unchanged and answers a typed error.
 * - Actuator commands are idempotent: repeating LOCK/UNLOCK/DRIVE/TRUNK open/
 *   DISPLAY leaves the same state, so a host may retry after a lost reply
 *   (a retried BEEP/FLASH only beeps or flashes once more).
 * - Events are emitted only for changes a person would notice (trunk lid moving,
 *   a door opening or closing, the pairing button, a keycard tap), in the
 *   order they happen.
 * - Doors: every fitted door is sensed open or closed (power-on: closed). A
 *   person can open a door only while it is unlocked (from outside, a locked
 *   door stays shut: the action is refused with LOCKED and nothing changes);
 *   closing a door always works. Locking an open door locks its latch; the
 *   door stays open until a person closes it.
 */

import { doorPositionKey, WIRE_DOORS } from '../../src/vehicle/body-protocol.js';
import type { ButtonPress, DoorPosition, DriveState, HostCommand, LockState, TrunkState, WireDoor, WireErrorCode, WireEvent } from '../../src/vehicle/body-protocol.js';

/** Firmware identity reported by PING. */
export const FIRMWARE_ID = 'carkey-sim/1';

/** The display: DISPLAY_ROWS rows of DISPLAY_COLUMNS printable ASCII characters. */
export const DISPLAY_ROWS = 2;
export const DISPLAY_COLUMNS = 20;

export type DoorCount = 2 | 4;

export interface BodyState {
  readonly doorCount: DoorCount;
  /** Only fitted doors have an entry. */
  readonly locks: Readonly<Partial<Record<WireDoor, LockState>>>;
  /** Open/closed per fitted door (only fitted doors have an entry). */
  readonly positions: Readonly<Partial<Record<WireDoor, DoorPosition>>>;
  readonly drive: DriveState;
  readonly trunk: TrunkState;
  /** Exactly DISPLAY_ROWS rows, trailing spaces trimmed. */
  readonly display: readonly string[];
  /** How many beeps / light flashes the car has given since power-on. */
  readonly beeps: number;
  readonly flashes: number;
}

export type ModelReply = { readonly ok: true; readonly data: readonly string[] } | { readonly ok: false; readonly code: WireErrorCode; readonly text: string };

export interface CommandOutcome {
  readonly state: BodyState;
  readonly reply: ModelReply;
  readonly events: readonly WireEvent[];
}

/** What a person does to the car (the sim's control socket). */
export type PhysicalAction =
  | { readonly kind: 'button'; readonly press: ButtonPress }
  | { readonly kind: 'keycard'; readonly cardId: string }
  | { readonly kind: 'close-trunk' }
  | { readonly kind: 'open-door'; readonly door: WireDoor }
  | { readonly kind: 'close-door'; readonly door: WireDoor };

export interface ActionOutcome {
  readonly state: BodyState;
  readonly events: readonly WireEvent[];
  /** Set when the action could not be done (state unchanged, no events). */
  readonly refused?: { readonly code: WireErrorCode; readonly text: string };
}

/** The doors a car with `doorCount` doors has, in wire order. */
export function fittedDoors(doorCount: DoorCount): readonly WireDoor[] {
  return WIRE_DOORS.slice(0, doorCount);
}

function blankDisplay(): readonly string[] {
  return Array.from({ length: DISPLAY_ROWS }, () => '');
}

/** Power-on state: every door locked, drive off, trunk closed, display blank. */
export function initialState(doorCount: DoorCount): BodyState {
  const locks: Partial<Record<WireDoor, LockState>> = {};
  const positions: Partial<Record<WireDoor, DoorPosition>> = {};
  for (const door of fittedDoors(doorCount)) {
    locks[door] = 'locked';
    positions[door] = 'closed';
  }
  return { doorCount, locks, positions, drive: 'off', trunk: 'closed', display: blankDisplay(), beeps: 0, flashes: 0 };
}

function okReply(data: readonly string[] = []): ModelReply {
  return { ok: true, data };
}

function errReply(code: WireErrorCode, text: string): ModelReply {
  return { ok: false, code, text };
}

function unchanged(state: BodyState, reply: ModelReply): CommandOutcome {
  return { state, reply, events: [] };
}

function setLocks(state: BodyState, target: 'all' | readonly WireDoor[], value: LockState): CommandOutcome {
  const fitted = fittedDoors(state.doorCount);
  const doors = target === 'all' ? fitted : target;
  const missing = doors.filter((d) => !fitted.includes(d));
  if (missing.length > 0) return unchanged(state, errReply('NODOOR', `door not fitted: ${missing.join(' ')}`));
  const locks: Partial<Record<WireDoor, LockState>> = { ...state.locks };
  for (const door of doors) locks[door] = value;
  return { state: { ...state, locks }, reply: okReply(), events: [] };
}

function isDisplayable(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

function showDisplay(state: BodyState, rows: readonly string[]): CommandOutcome {
  if (rows.length < 1 || rows.length > DISPLAY_ROWS) return unchanged(state, errReply('RANGE', `the display has ${DISPLAY_ROWS} rows`));
  const shown: string[] = [];
  for (const row of rows) {
    const trimmed = row.trimEnd();
    if (!isDisplayable(trimmed)) return unchanged(state, errReply('RANGE', 'the display shows printable ASCII only'));
    if (trimmed.length > DISPLAY_COLUMNS) return unchanged(state, errReply('RANGE', `a display row holds ${DISPLAY_COLUMNS} characters`));
    shown.push(trimmed);
  }
  while (shown.length < DISPLAY_ROWS) shown.push('');
  return { state: { ...state, display: shown }, reply: okReply(), events: [] };
}

/** The PING reply data. */
export function identityReport(state: BodyState): readonly string[] {
  return [`firmware=${FIRMWARE_ID}`, `doors=${state.doorCount}`];
}

/** The STATE reply data: `key=value` tokens (values not yet percent-encoded). */
export function stateReport(state: BodyState): readonly string[] {
  const report = [`doors=${state.doorCount}`];
  for (const door of fittedDoors(state.doorCount)) report.push(`${door}=${state.locks[door] ?? 'locked'}`);
  report.push(`drive=${state.drive}`, `trunk=${state.trunk}`);
  state.display.forEach((row, i) => report.push(`display${i + 1}=${row}`));
  report.push(`beeps=${state.beeps}`, `flashes=${state.flashes}`);
  for (const door of fittedDoors(state.doorCount)) report.push(`${doorPositionKey(door)}=${state.positions[door] ?? 'closed'}`);
  return report;
}

/** Apply one host command. */
export function applyCommand(state: BodyState, command: HostCommand): CommandOutcome {
  switch (command.verb) {
    case 'PING':
      return unchanged(state, okReply(identityReport(state)));
    case 'STATE':
      return unchanged(state, okReply(stateReport(state)));
    case 'LOCK':
      return setLocks(state, command.doors, 'locked');
    case 'UNLOCK':
      return setLocks(state, command.doors, 'unlocked');
    case 'DRIVE':
      return { state: { ...state, drive: command.on ? 'ready' : 'off' }, reply: okReply(), events: [] };
    case 'TRUNK':
      if (state.trunk === 'open') return unchanged(state, okReply());
      return { state: { ...state, trunk: 'open' }, reply: okReply(), events: [{ event: 'TRUNK', state: 'open' }] };
    case 'DISPLAY':
      if (command.op === 'clear') return { state: { ...state, display: blankDisplay() }, reply: okReply(), events: [] };
      return showDisplay(state, command.rows);
    case 'BEEP':
      return { state: { ...state, beeps: state.beeps + command.count }, reply: okReply(), events: [] };
    case 'FLASH':
      return { state: { ...state, flashes: state.flashes + command.count }, reply: okReply(), events: [] };
  }
}

/** Apply one thing a person does to the car. */
export function applyAction(state: BodyState, action: PhysicalAction): ActionOutcome {
  switch (action.kind) {
    case 'button':
      return { state, events: [{ event: 'BUTTON', press: action.press }] };
    case 'keycard':
      return { state, events: [{ event: 'KEYCARD', cardId: action.cardId }] };
    case 'close-trunk':
      if (state.trunk === 'closed') return { state, events: [] };
      return { state: { ...state, trunk: 'closed' }, events: [{ event: 'TRUNK', state: 'closed' }] };
    case 'open-door':
    case 'close-door':
      return moveDoor(state, action.door, action.kind === 'open-door' ? 'open' : 'closed');
  }
}

function moveDoor(state: BodyState, door: WireDoor, position: DoorPosition): ActionOutcome {
  if (!fittedDoors(state.doorCount).includes(door)) return { state, events: [], refused: { code: 'NODOOR', text: `door not fitted: ${door}` } };
  if ((state.positions[door] ?? 'closed') === position) return { state, events: [] };
  if (position === 'open' && state.locks[door] !== 'unlocked') return { state, events: [], refused: { code: 'LOCKED', text: `${door} is locked: it cannot be opened from outside` } };
  return { state: { ...state, positions: { ...state.positions, [door]: position } }, events: [{ event: 'DOOR', door, position }] };
}
