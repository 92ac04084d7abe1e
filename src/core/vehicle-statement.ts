/**
 * The car-signed vehicle statement (docs/protocol.md §17.2): format u8 = 1 ‖
 * car identity key 32 ‖ issued-at u64 ms ‖ key list vbytes(MAX_KEY_LIST_LENGTH)
 * (empty: unpaired) ‖ signature 64 by the car over
 * L("carkey/v1/vehicle-statement") ‖ the rest. The car signs one for the BLE
 * command `vehicleStatement` and its sync worker; carkey-cloud and phones
 * verify it, so nobody can register a car's id with a list they signed.
 *
 * Guarantees: exact parsing (lengths before crypto, no trailing bytes),
 * verification never throws, the car key is checked before it is trusted,
 * and the named key list must be this car's. Pure: time is a parameter.
 */
import { equalBytes } from './bytes.js';
import { decodeWith, Writer } from './codec.js';
import { decodeKeyList, MAX_KEY_LIST_LENGTH, type KeyList } from './credentials.js';
import type { Crypto } from './crypto/policy.js';
import { CarkeyError, fail, ok, type Result } from './errors.js';
import { vehicleIdOf } from './identity.js';
import { LABELS } from './labels.js';

export const VEHICLE_STATEMENT_FORMAT = 0x01;

function checkFormat(format: number): void {
  if (format !== VEHICLE_STATEMENT_FORMAT) throw new CarkeyError('CK_CODEC_BAD_VERSION', `vehicle statement format ${format}`);
}

export interface VehicleStatement {
  readonly vehicleKey: Uint8Array;
  readonly vehicleId: Uint8Array;
  readonly issuedAt: number;
  /** the encoded key list in force (empty when the car has no owner) */
  readonly keyListBytes: Uint8Array;
  readonly keyList: KeyList | undefined;
  readonly bytes: Uint8Array;
}

export function signVehicleStatement(crypto: Crypto, vehicleSeed: Uint8Array, issuedAt: number, keyListBytes: Uint8Array): Uint8Array {
  const body = new Writer().u8(VEHICLE_STATEMENT_FORMAT).fixed(crypto.publicKeyFromSeed(vehicleSeed), 32, 'vehicle key').time(issuedAt).vbytes(keyListBytes, MAX_KEY_LIST_LENGTH, 'key list').finish();
  const signature = crypto.sign(vehicleSeed, new Writer().raw(LABELS.vehicleStatement).raw(body).finish());
  return new Writer().raw(body).raw(signature).finish();
}

/** Decode and verify a statement: the car's signature, its key, and that the list it names is for this car. */
export function verifyVehicleStatement(crypto: Crypto, bytes: Uint8Array): Result<VehicleStatement> {
  const parsed = decodeWith(bytes, (r) => {
    checkFormat(r.u8('format'));
    return { vehicleKey: r.bytesOf(32, 'vehicle key'), issuedAt: r.time('issued-at'), keyListBytes: r.vbytes(MAX_KEY_LIST_LENGTH, 'key list'), signature: r.bytesOf(64, 'signature') };
  });
  if (!parsed.ok) return parsed;
  const { vehicleKey, issuedAt, keyListBytes, signature } = parsed.value;
  const keyCheck = crypto.checkPublicKey(vehicleKey);
  if (!keyCheck.ok) return keyCheck;
  if (!crypto.verify(vehicleKey, new Writer().raw(LABELS.vehicleStatement).raw(bytes.subarray(0, bytes.length - 64)).finish(), signature).ok) {
    return fail('CK_CRED_BAD_SIGNATURE', 'vehicle statement');
  }
  const vehicleId = vehicleIdOf(crypto, vehicleKey);
  let keyList: KeyList | undefined;
  if (keyListBytes.length > 0) {
    const decoded = decodeKeyList(keyListBytes);
    if (!decoded.ok) return decoded;
    if (!equalBytes(decoded.value.vehicleId, vehicleId)) return fail('CK_CRED_WRONG_VEHICLE', 'the statement names a key list of another car');
    keyList = decoded.value;
  }
  return ok({ vehicleKey, vehicleId, issuedAt, keyListBytes, keyList, bytes: Uint8Array.from(bytes) });
}
