/**
 * The simulator's control protocol: what a person (or a test) does to the car.
 *
 * Guarantees:
 * - Same line grammar as the host protocol (protocol.ts): `<id> <VERB> [args]`
 *   requests, `<id> OK ...` / `<id> ERR ...` replies, but the checksum is
 *   optional on requests (people type these by hand); replies always carry it.
 * - Pure and total: parsing never throws; bad input yields a typed WireError.
 * - This protocol exists only in the simulator. Real hardware has a physical
 *   button, a card reader and a screen instead.
 */

import { formatRequestFrame, isCardId, isWireDoor, parseRequestFrame, WIRE_DOORS } from '../../src/vehicle/body-protocol.js';
import type { ButtonPress, RequestFrame, WireDoor, WireResult } from '../../src/vehicle/body-protocol.js';

export type ControlCommand =
  | { readonly verb: 'PING' }
  | { readonly verb: 'BUTTON'; readonly press: ButtonPress }
  | { readonly verb: 'KEYCARD'; readonly cardId: string }
  | { readonly verb: 'TRUNK' }
  | { readonly verb: 'DOOR'; readonly door: WireDoor; readonly action: 'open' | 'close' }
  | { readonly verb: 'STATE' }
  | { readonly verb: 'DISPLAY' };

/** Interpret a request frame as a control command. */
export function toControlCommand(frame: RequestFrame): WireResult<ControlCommand> {
  const { id, verb, args } = frame;
  const [arg] = args;
  const bad = (usage: string): WireResult<ControlCommand> => ({ ok: false, error: { code: 'ARGS', text: `usage: ${usage}`, id } });
  switch (verb) {
    case 'PING':
    case 'STATE':
    case 'DISPLAY':
      return args.length === 0 ? { ok: true, value: { verb } } : bad(verb);
    case 'BUTTON':
      return args.length === 1 && (arg === 'short' || arg === 'long') ? { ok: true, value: { verb, press: arg } } : bad('BUTTON short|long');
    case 'KEYCARD':
      return args.length === 1 && arg !== undefined && isCardId(arg) ? { ok: true, value: { verb, cardId: arg } } : bad('KEYCARD <card-id> (1-32 of A-Z a-z 0-9 _ -)');
    case 'TRUNK':
      return args.length === 1 && arg === 'close' ? { ok: true, value: { verb } } : bad('TRUNK close');
    case 'DOOR': {
      const [door, action] = args;
      if (args.length === 2 && door !== undefined && isWireDoor(door) && (action === 'open' || action === 'close')) return { ok: true, value: { verb, door, action } };
      return bad(`DOOR <door> open|close (doors: ${WIRE_DOORS.join(' ')})`);
    }
    default:
      return { ok: false, error: { code: 'UNKNOWN', text: `unknown control verb ${verb}`, id } };
  }
}

/** Parse one control request line (checksum optional). */
export function parseControlRequest(line: string): WireResult<{ readonly id: number; readonly command: ControlCommand }> {
  const frame = parseRequestFrame(line, 'optional');
  if (!frame.ok) return frame;
  const command = toControlCommand(frame.value);
  return command.ok ? { ok: true, value: { id: frame.value.id, command: command.value } } : command;
}

function controlArgs(command: ControlCommand): string[] {
  switch (command.verb) {
    case 'PING':
    case 'STATE':
    case 'DISPLAY':
      return [];
    case 'BUTTON':
      return [command.press];
    case 'KEYCARD':
      return [command.cardId];
    case 'TRUNK':
      return ['close'];
    case 'DOOR':
      return [command.door, command.action];
  }
}

/** Format a control request (with checksum). */
export function formatControlRequest(id: number, command: ControlCommand): string {
  return formatRequestFrame({ id, verb: command.verb, args: controlArgs(command) });
}
