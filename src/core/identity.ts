/**
 * Derived identifiers: vehicle id (16 bytes) from the car's identity key, key
 * id (8 bytes) from any public key, and the rotating advertising identifier.
 *
 * Guarantees: every derivation is domain-separated (LABELS) and deterministic;
 * the advertising identifier changes every `ADV_EPOCH_MS` and can be matched
 * only by holders of the car's advertising secret (paired phones, grantees).
 */
import { Writer } from './codec.js';
import type { Crypto } from './crypto/policy.js';
import { CarkeyError } from './errors.js';
import { LABELS } from './labels.js';
import { equalBytes, toHex } from './bytes.js';

export const VEHICLE_ID_LENGTH = 16;
export const KEY_ID_LENGTH = 8;
export const ADV_ID_LENGTH = 8;
export const ADV_SECRET_LENGTH = 32;
/** Advertising identifier rotation period: 15 minutes. */
export const ADV_EPOCH_MS = 15 * 60 * 1000;
/** Service-data format version byte. */
export const ADV_FORMAT = 0x01;
/** Service-data flag: the car is in pairing mode. */
export const ADV_FLAG_PAIRING = 0x01;

export function vehicleIdOf(crypto: Crypto, vehicleIdentityKey: Uint8Array): Uint8Array {
  return crypto.hash(LABELS.vehicleId, vehicleIdentityKey).slice(0, VEHICLE_ID_LENGTH);
}

export function keyIdOf(crypto: Crypto, publicKey: Uint8Array): string {
  return toHex(crypto.hash(LABELS.keyId, publicKey).slice(0, KEY_ID_LENGTH));
}

export function advertisingId(crypto: Crypto, advSecret: Uint8Array, timeMs: number): Uint8Array {
  if (advSecret.length !== ADV_SECRET_LENGTH) throw new CarkeyError('CK_CRYPTO_BAD_LENGTH', 'advertising secret must be 32 bytes');
  const epoch = Math.floor(timeMs / ADV_EPOCH_MS);
  return crypto.hash(LABELS.advertising, advSecret, new Writer().time(epoch).finish()).slice(0, ADV_ID_LENGTH);
}

/** Service data the car advertises: format ‖ flags ‖ advertising id. */
export function encodeServiceData(flags: number, advId: Uint8Array): Uint8Array {
  return new Writer().u8(ADV_FORMAT).u8(flags).fixed(advId, ADV_ID_LENGTH, 'advertising id').finish();
}

export interface ServiceData {
  readonly flags: number;
  readonly pairing: boolean;
  readonly advId: Uint8Array;
}

export function decodeServiceData(bytes: Uint8Array | undefined): ServiceData | undefined {
  if (bytes?.length !== 2 + ADV_ID_LENGTH || bytes[0] !== ADV_FORMAT) return undefined;
  const flags = bytes[1] ?? 0;
  return { flags, pairing: (flags & ADV_FLAG_PAIRING) !== 0, advId: bytes.slice(2) };
}

/**
 * True when `advId` matches this car at `timeMs`, allowing one epoch of skew
 * ahead and `behindEpochs` epochs behind (default 1). A car without a
 * real-time clock restarts from its persisted time floor after a power-off, so
 * its clock may lag by however long it was off: phones pass a wider window
 * (`PHONE_BEHIND_EPOCHS`, 7 days ≈ 672 hashes, about a millisecond).
 */
export function matchesAdvertisingId(crypto: Crypto, advSecret: Uint8Array, advId: Uint8Array, timeMs: number, behindEpochs = 1): boolean {
  if (advId.length !== ADV_ID_LENGTH) return false;
  for (let step = 1; step >= -behindEpochs; step--) {
    const at = timeMs + step * ADV_EPOCH_MS;
    // There is no epoch before time 0 (advertisingId would refuse the negative time).
    if (at < 0) break;
    if (equalBytes(advertisingId(crypto, advSecret, at), advId)) return true;
  }
  return false;
}

/** How far behind a phone accepts the car's clock: 7 days of epochs. */
export const PHONE_BEHIND_EPOCHS = (7 * 24 * 3600 * 1000) / ADV_EPOCH_MS;
