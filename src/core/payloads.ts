/**
 * Command arguments and result payloads carried inside sealed messages.
 *
 * - start args: PIN as ASCII digits (4..8), or empty.
 * - status result: doors-locked bitmask u8 (bit 0 front-left, 1 front-right,
 *   2 rear-left, 3 rear-right) ‖ door count u8 ‖ drive u8 (0 off, 1 ready) ‖
 *   trunk u8 (0 closed, 1 open) ‖ key-list version u32 ‖ car time u64 ms ‖
 *   flags u8 (bit 0: `start` needs a PIN; other bits 0).
 * - keyListPush args: an encoded key list; result: the version now in force u32.
 * - keyListGet result: the encoded current key list.
 * - auditRead args: from-seq u32 ‖ max entries u16; result: UTF-8 JSON
 *   `{ "entries": [...], "checkpoints": [...], "last": n }` (see docs/protocol.md).
 * Guarantees: exact lengths, typed errors, never throws out of a decoder.
 */
import { Writer, decodeWith } from './codec.js';
import { CarkeyError, fail, type Result } from './errors.js';

export const DOORS = ['front-left', 'front-right', 'rear-left', 'rear-right'] as const;
export type DoorName = (typeof DOORS)[number];

export interface StatusPayload {
  readonly locked: readonly DoorName[];
  readonly doorCount: number;
  readonly drive: 'off' | 'ready';
  readonly trunk: 'open' | 'closed';
  readonly keyListVersion: number;
  readonly carTime: number;
  /** The car asks for a PIN with `start` (so a phone can ask the person first). */
  readonly startNeedsPin: boolean;
}

export const STATUS_FLAG_START_NEEDS_PIN = 0x01;

export function encodeStatus(status: StatusPayload): Uint8Array {
  let mask = 0;
  DOORS.forEach((door, index) => {
    if (status.locked.includes(door)) mask |= 1 << index;
  });
  return new Writer()
    .u8(mask)
    .u8(status.doorCount)
    .u8(status.drive === 'ready' ? 1 : 0)
    .u8(status.trunk === 'open' ? 1 : 0)
    .u32(status.keyListVersion)
    .time(status.carTime)
    .u8(status.startNeedsPin ? STATUS_FLAG_START_NEEDS_PIN : 0)
    .finish();
}

export function decodeStatus(bytes: Uint8Array): Result<StatusPayload> {
  return decodeWith(bytes, (r) => {
    const mask = r.u8('doors');
    const doorCount = r.u8('door count');
    const drive = r.u8('drive');
    const trunk = r.u8('trunk');
    if (doorCount > DOORS.length || drive > 1 || trunk > 1) throw new CarkeyError('CK_CODEC_BAD_VALUE', 'status field out of range');
    return {
      locked: DOORS.filter((_, index) => index < doorCount && (mask & (1 << index)) !== 0),
      doorCount,
      drive: drive === 1 ? 'ready' : 'off',
      trunk: trunk === 1 ? 'open' : 'closed',
      keyListVersion: r.u32('key list version'),
      carTime: r.time('car time'),
      startNeedsPin: readFlags(r.u8('flags')),
    };
  });
}

function readFlags(flags: number): boolean {
  if ((flags & ~STATUS_FLAG_START_NEEDS_PIN) !== 0) throw new CarkeyError('CK_CODEC_BAD_VALUE', `unknown status flags ${flags}`);
  return (flags & STATUS_FLAG_START_NEEDS_PIN) !== 0;
}

export const PIN_PATTERN = /^[0-9]{4,8}$/;

export function encodePin(pin: string): Uint8Array {
  if (!PIN_PATTERN.test(pin)) throw new CarkeyError('CK_CODEC_BAD_VALUE', 'PIN must be 4 to 8 digits');
  return new TextEncoder().encode(pin);
}

/** Empty args → undefined (no PIN given). */
export function decodePin(bytes: Uint8Array): Result<string | undefined> {
  if (bytes.length === 0) return { ok: true, value: undefined };
  const text = new TextDecoder().decode(bytes);
  return PIN_PATTERN.test(text) ? { ok: true, value: text } : fail('CK_CODEC_BAD_VALUE', 'PIN must be 4 to 8 digits');
}

export interface AuditReadArgs {
  readonly fromSeq: number;
  readonly limit: number;
}

export const MAX_AUDIT_PAGE = 64;

export function encodeAuditRead(args: AuditReadArgs): Uint8Array {
  return new Writer().u32(args.fromSeq).u16(args.limit).finish();
}

export function decodeAuditRead(bytes: Uint8Array): Result<AuditReadArgs> {
  return decodeWith(bytes, (r) => ({ fromSeq: r.u32('from seq'), limit: Math.min(r.u16('limit'), MAX_AUDIT_PAGE) }));
}

export function encodeVersion(version: number): Uint8Array {
  return new Writer().u32(version).finish();
}

export function decodeVersion(bytes: Uint8Array): Result<number> {
  return decodeWith(bytes, (r) => r.u32('version'));
}
