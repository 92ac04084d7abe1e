/**
 * The signed documents that travel through carkey-cloud (docs/protocol.md §17).
 * The cloud stores and relays them; it can delay or withhold them, never
 * forge them: every one is signed by the car or by a phone, and checked here,
 * by the same code on the car, the phone and the cloud.
 *
 * (The car-signed vehicle statement, which registers a car, is in
 * vehicle-statement.ts: the car also signs it for the BLE command
 * `vehicleStatement`, so it is not cloud code.)
 * - Remote command (phone-signed, then sealed to the car): format u8 = 1 ‖
 *   vehicle id 16 ‖ command id 16 ‖ issued-at u64 ‖ expires-at u64 ‖ phone
 *   identity 32 ‖ credential kind u8 ‖ credential vbytes(512) ‖ command u8 ‖
 *   args vbytes(MAX_ARGS) ‖ signature 64 by the phone over
 *   L("carkey/v1/remote-command") ‖ the rest. The car decides it with the
 *   same policy as a BLE request; the command id makes it single-use.
 * - Remote result (car-signed, then sealed to the phone): format u8 = 1 ‖
 *   vehicle id 16 ‖ command id 16 ‖ time u64 ‖ status u8 ‖ category u8 ‖
 *   payload vbytes(MAX_PAYLOAD) ‖ signature 64 by the car over
 *   L("carkey/v1/remote-result") ‖ the rest.
 *
 * Guarantees: exact parsing (lengths before crypto, no trailing bytes),
 * verification never throws, keys are checked before they are trusted.
 * Pure: times are parameters.
 */
import { equalBytes } from './bytes.js';
import { decodeWith, Writer } from './codec.js';
import type { Crypto } from './crypto/policy.js';
import { CarkeyError, fail, ok, type Result } from './errors.js';
import { vehicleIdOf, VEHICLE_ID_LENGTH } from './identity.js';
import { LABELS } from './labels.js';
import { MAX_ARGS, MAX_CREDENTIAL, MAX_PAYLOAD } from './messages.js';

export const CLOUD_DOC_FORMAT = 0x01;
export const COMMAND_ID_LENGTH = 16;
/** A remote command may be valid for at most this long. */
export const MAX_REMOTE_COMMAND_LIFETIME_MS = 10 * 60_000;

function checkFormat(format: number, what: string): void {
  if (format !== CLOUD_DOC_FORMAT) throw new CarkeyError('CK_CODEC_BAD_VERSION', `${what} format ${format}`);
}

function signedPart(bytes: Uint8Array): Uint8Array {
  return bytes.subarray(0, bytes.length - 64);
}

// --- remote command -----------------------------------------------------------

export interface RemoteCommandBody {
  readonly vehicleId: Uint8Array;
  readonly commandId: Uint8Array;
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly identity: Uint8Array;
  /** 0 owner, 1 grant (as in REQUEST) */
  readonly credentialKind: number;
  readonly credential: Uint8Array;
  readonly command: number;
  readonly args: Uint8Array;
}

export interface RemoteCommand extends RemoteCommandBody {
  readonly signature: Uint8Array;
  readonly bytes: Uint8Array;
}

function writeRemoteCommandBody(m: RemoteCommandBody): Uint8Array {
  return new Writer()
    .u8(CLOUD_DOC_FORMAT)
    .fixed(m.vehicleId, VEHICLE_ID_LENGTH, 'vehicle id')
    .fixed(m.commandId, COMMAND_ID_LENGTH, 'command id')
    .time(m.issuedAt)
    .time(m.expiresAt)
    .fixed(m.identity, 32, 'identity')
    .u8(m.credentialKind)
    .vbytes(m.credential, MAX_CREDENTIAL, 'credential')
    .u8(m.command)
    .vbytes(m.args, MAX_ARGS, 'args')
    .finish();
}

/** Sign a remote command with the phone's seed (identity = its public key). */
export function signRemoteCommand(crypto: Crypto, phoneSeed: Uint8Array, body: Omit<RemoteCommandBody, 'identity'>): Uint8Array {
  if (body.expiresAt <= body.issuedAt || body.expiresAt - body.issuedAt > MAX_REMOTE_COMMAND_LIFETIME_MS) {
    throw new CarkeyError('CK_CODEC_BAD_VALUE', `a remote command expires 1 ms to ${MAX_REMOTE_COMMAND_LIFETIME_MS / 60_000} minutes after it is issued`);
  }
  const encoded = writeRemoteCommandBody({ ...body, identity: crypto.publicKeyFromSeed(phoneSeed) });
  const signature = crypto.sign(phoneSeed, new Writer().raw(LABELS.remoteCommand).raw(encoded).finish());
  return new Writer().raw(encoded).raw(signature).finish();
}

/**
 * Decode and verify a remote command for `vehicleId` at trusted time `now`:
 * the phone's key and signature, the vehicle, the lifetime. Whether the phone
 * may do it is the car's decision (authorize), not this function's.
 */
export function verifyRemoteCommand(crypto: Crypto, bytes: Uint8Array, vehicleId: Uint8Array, now: number): Result<RemoteCommand> {
  const parsed = decodeWith(bytes, (r) => {
    checkFormat(r.u8('format'), 'remote command');
    return {
      vehicleId: r.bytesOf(VEHICLE_ID_LENGTH, 'vehicle id'),
      commandId: r.bytesOf(COMMAND_ID_LENGTH, 'command id'),
      issuedAt: r.time('issued-at'),
      expiresAt: r.time('expires-at'),
      identity: r.bytesOf(32, 'identity'),
      credentialKind: r.u8('credential kind'),
      credential: r.vbytes(MAX_CREDENTIAL, 'credential'),
      command: r.u8('command'),
      args: r.vbytes(MAX_ARGS, 'args'),
      signature: r.bytesOf(64, 'signature'),
    };
  });
  if (!parsed.ok) return parsed;
  const command = parsed.value;
  const keyCheck = crypto.checkPublicKey(command.identity);
  if (!keyCheck.ok) return keyCheck;
  if (!crypto.verify(command.identity, new Writer().raw(LABELS.remoteCommand).raw(signedPart(bytes)).finish(), command.signature).ok) {
    return fail('CK_PROTO_BAD_PHONE_SIGNATURE', 'remote command');
  }
  if (!equalBytes(command.vehicleId, vehicleId)) return fail('CK_CRED_WRONG_VEHICLE', 'remote command');
  if (command.expiresAt <= command.issuedAt || command.expiresAt - command.issuedAt > MAX_REMOTE_COMMAND_LIFETIME_MS) return fail('CK_CODEC_BAD_VALUE', 'remote command lifetime');
  if (now >= command.expiresAt) return fail('CK_REMOTE_EXPIRED');
  if (command.credentialKind !== 0 && command.credentialKind !== 1) return fail('CK_CODEC_BAD_VALUE', `credential kind ${command.credentialKind}`);
  if (command.credentialKind === 0 && command.credential.length !== 0) return fail('CK_CODEC_BAD_VALUE', 'owner credential must be empty');
  return ok({ ...command, bytes: Uint8Array.from(bytes) });
}

// --- remote result ------------------------------------------------------------

export interface RemoteResultBody {
  readonly vehicleId: Uint8Array;
  readonly commandId: Uint8Array;
  readonly time: number;
  /** as in RESULT: 0 ok, 1 denied, 2 failed */
  readonly status: number;
  readonly category: number;
  readonly payload: Uint8Array;
}

export interface RemoteResult extends RemoteResultBody {
  readonly signature: Uint8Array;
}

export function signRemoteResult(crypto: Crypto, vehicleSeed: Uint8Array, body: RemoteResultBody): Uint8Array {
  const encoded = new Writer()
    .u8(CLOUD_DOC_FORMAT)
    .fixed(body.vehicleId, VEHICLE_ID_LENGTH, 'vehicle id')
    .fixed(body.commandId, COMMAND_ID_LENGTH, 'command id')
    .time(body.time)
    .u8(body.status)
    .u8(body.category)
    .vbytes(body.payload, MAX_PAYLOAD, 'payload')
    .finish();
  const signature = crypto.sign(vehicleSeed, new Writer().raw(LABELS.remoteResult).raw(encoded).finish());
  return new Writer().raw(encoded).raw(signature).finish();
}

/** Verify a result with the car key the phone pinned, for the command it sent. */
export function verifyRemoteResult(crypto: Crypto, bytes: Uint8Array, vehicleKey: Uint8Array, commandId: Uint8Array): Result<RemoteResult> {
  const parsed = decodeWith(bytes, (r) => {
    checkFormat(r.u8('format'), 'remote result');
    return {
      vehicleId: r.bytesOf(VEHICLE_ID_LENGTH, 'vehicle id'),
      commandId: r.bytesOf(COMMAND_ID_LENGTH, 'command id'),
      time: r.time('time'),
      status: r.u8('status'),
      category: r.u8('category'),
      payload: r.vbytes(MAX_PAYLOAD, 'payload'),
      signature: r.bytesOf(64, 'signature'),
    };
  });
  if (!parsed.ok) return parsed;
  const result = parsed.value;
  if (!crypto.verify(vehicleKey, new Writer().raw(LABELS.remoteResult).raw(signedPart(bytes)).finish(), result.signature).ok) return fail('CK_PROTO_BAD_CAR_SIGNATURE', 'remote result');
  if (!equalBytes(result.vehicleId, vehicleIdOf(crypto, vehicleKey))) return fail('CK_CRED_WRONG_VEHICLE', 'remote result');
  if (!equalBytes(result.commandId, commandId)) return fail('CK_PROTO_UNEXPECTED_MESSAGE', 'the result answers another command');
  if (result.status > 2) return fail('CK_CODEC_BAD_VALUE', `result status ${result.status}`);
  return ok(result);
}
