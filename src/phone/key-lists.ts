/**
 * Building the owner-signed key lists the phone sends to the car.
 *
 * - Pairing: the car's current owners (from PAIR_READY) plus this phone, at
 *   exactly the epoch and version the car requires in PAIR_READY (after a
 *   factory reset: a fresh epoch, version 1), revocations kept, this phone's
 *   key taken off the revoked keys (pairing needs physical presence, the
 *   recovery path).
 * - Revocation: from the latest list the phone knows (pending or confirmed),
 *   version + 1, a grant serial or a public key added to the revoked sets (a
 *   revoked owner also leaves the owners).
 * - Rebase: when another owner device moved the car's list on, the
 *   revocations this phone still has queued are re-applied on top of the
 *   car's list instead of being lost.
 *
 * Guarantees: pure apart from signing (crypto and time injected); every
 * produced list passes the same limits the car checks (owners 1..8, revoked
 * sets bounded, version arithmetic total: CK_KEYLIST_VERSION_EXHAUSTED rather
 * than a u32 overflow) or the call throws a CarkeyError explaining why.
 */
import { equalBytes, fromHex, toHex } from '../core/bytes.js';
import {
  acceptKeyList,
  checkVersionStep,
  containsKey,
  decodeKeyList,
  MAX_OWNERS,
  nextVersion,
  signKeyList,
  SERIAL_LENGTH,
  type KeyList,
  type KeyListBody,
} from '../core/credentials.js';
import type { Crypto } from '../core/crypto/index.js';
import { CarkeyError, fail, ok, type Result } from '../core/errors.js';

export interface PairingListInput {
  readonly vehicleId: Uint8Array;
  /** the car's current list (undefined when it has no owner yet) */
  readonly current: KeyList | undefined;
  /** what the car requires in PAIR_READY */
  readonly epoch: number;
  readonly requiredVersion: number;
  readonly issuedAt: number;
}

function next(version: number): number {
  const result = nextVersion(version);
  if (!result.ok) throw result.error;
  return result.value;
}

/**
 * Check what PAIR_READY says against the list it carries: the car's current
 * list must be of the stated epoch, and the required version must be a legal
 * next version for it (core's version rule). Otherwise the car is not
 * following the protocol and nothing is signed.
 */
export function checkPairingRequirement(current: KeyList | undefined, epoch: number, requiredVersion: number): Result<true> {
  if (requiredVersion < 1) return fail('CK_PROTO_UNEXPECTED_MESSAGE', 'the car asked for key list version 0');
  if (current === undefined) return ok(true);
  const step = checkVersionStep({ epoch, version: requiredVersion }, { epoch: current.epoch, highestVersion: current.version });
  return step.ok ? ok(true) : fail('CK_PROTO_UNEXPECTED_MESSAGE', `the car's pairing requirement does not follow its own key list: ${step.error.message}`);
}

function without(keys: readonly Uint8Array[], key: Uint8Array): Uint8Array[] {
  return keys.filter((candidate) => !equalBytes(candidate, key));
}

/** The list a pairing phone signs and sends in PAIR_CONFIRM. */
export function buildPairingKeyList(crypto: Crypto, seed: Uint8Array, input: PairingListInput): KeyList {
  return signKeyList(crypto, seed, pairingKeyListBody(crypto.publicKeyFromSeed(seed), input));
}

/** The unsigned body of `buildPairingKeyList` for the phone key `self` (sign it with signKeyList or signKeyListWith). */
export function pairingKeyListBody(self: Uint8Array, input: PairingListInput): KeyListBody {
  const { current } = input;
  const check = checkPairingRequirement(current, input.epoch, input.requiredVersion);
  if (!check.ok) throw check.error;
  if (current === undefined) {
    return {
      vehicleId: input.vehicleId,
      epoch: input.epoch,
      version: input.requiredVersion,
      issuedAt: input.issuedAt,
      owners: [self],
      revokedSerials: [],
      revokedKeys: [],
    };
  }
  const owners = containsKey(current.owners, self) ? [...current.owners] : [...current.owners, self];
  if (owners.length > MAX_OWNERS) {
    throw new CarkeyError('CK_KEYLIST_TOO_LARGE', `the car already has ${MAX_OWNERS} owners; revoke one first (carkey revoke KEY from an owner phone)`);
  }
  return {
    vehicleId: input.vehicleId,
    epoch: input.epoch,
    version: input.requiredVersion,
    issuedAt: input.issuedAt,
    owners,
    revokedSerials: [...current.revokedSerials],
    revokedKeys: without(current.revokedKeys, self),
  };
}

/**
 * Check a key list the car presented (PAIR_READY or keyListGet): decodes,
 * belongs to `vehicleId`, signed by one of its own owners, valid keys.
 * An empty byte string means "no list" (undefined).
 */
export function checkCarKeyList(crypto: Crypto, bytes: Uint8Array, vehicleId: Uint8Array): Result<KeyList | undefined> {
  if (bytes.length === 0) return ok(undefined);
  const decoded = decodeKeyList(bytes);
  if (!decoded.ok) return decoded;
  const accepted = acceptKeyList(crypto, decoded.value, undefined, vehicleId, { viaPairing: true });
  if (!accepted.ok) return accepted;
  return ok(accepted.value);
}

export type RevocationTarget = { readonly kind: 'serial'; readonly serial: Uint8Array } | { readonly kind: 'key'; readonly key: Uint8Array };

/** Parse `revoke SERIAL|PUBKEY`: 16 hex digits is a grant serial, 64 a public key. */
export function parseRevocationTarget(text: string): Result<RevocationTarget> {
  const clean = text.trim().toLowerCase();
  const bytes = /^[0-9a-f]{16}$/.test(clean) || /^[0-9a-f]{64}$/.test(clean) ? fromHex(clean) : undefined;
  if (bytes?.length === SERIAL_LENGTH) return ok({ kind: 'serial', serial: bytes });
  if (bytes?.length === 32) return ok({ kind: 'key', key: bytes });
  return fail('CK_USAGE', `"${text}" is neither a grant serial (${SERIAL_LENGTH * 2} hex digits) nor a public key (64 hex digits)`);
}

/** The newest list this phone knows: the last pending one, else the confirmed one. */
export function latestKnownKeyList(record: { readonly keyList: KeyList | undefined; readonly pending: readonly KeyList[] }): KeyList | undefined {
  let latest = record.keyList;
  for (const list of record.pending) if (latest === undefined || list.version > latest.version) latest = list;
  return latest;
}

function body(list: KeyList): KeyListBody {
  return {
    vehicleId: list.vehicleId,
    epoch: list.epoch,
    version: list.version,
    issuedAt: list.issuedAt,
    owners: list.owners,
    revokedSerials: list.revokedSerials,
    revokedKeys: list.revokedKeys,
  };
}

/** A new list revoking `target`, built on `base`. Throws when it changes nothing or locks everyone out. */
export function buildRevocation(crypto: Crypto, seed: Uint8Array, base: KeyList, target: RevocationTarget, issuedAt: number): KeyList {
  return signKeyList(crypto, seed, revocationBody(crypto, crypto.publicKeyFromSeed(seed), base, target, issuedAt));
}

/** The unsigned body of `buildRevocation` for the phone key `self`; same checks. */
export function revocationBody(crypto: Crypto, self: Uint8Array, base: KeyList, target: RevocationTarget, issuedAt: number): KeyListBody {
  const following = { ...body(base), version: next(base.version), issuedAt };
  if (target.kind === 'serial') {
    if (containsKey(base.revokedSerials, target.serial)) throw new CarkeyError('CK_USAGE', `grant ${toHex(target.serial)} is already revoked (key list version ${base.version})`);
    return { ...following, revokedSerials: [...base.revokedSerials, target.serial] };
  }
  if (!crypto.checkPublicKey(target.key).ok) throw new CarkeyError('CK_USAGE', 'that is not a valid public key');
  if (equalBytes(target.key, self)) {
    throw new CarkeyError('CK_USAGE', "this phone cannot revoke its own key; revoke it from another owner's phone");
  }
  if (containsKey(base.revokedKeys, target.key)) throw new CarkeyError('CK_USAGE', `that key is already revoked (key list version ${base.version})`);
  return { ...following, owners: without(base.owners, target.key), revokedKeys: [...base.revokedKeys, target.key] };
}

/**
 * Re-apply the revocations of the queued lists `ours` on top of the car's
 * `carList` (newer, or signed by another owner device). Returns undefined
 * when the car's list already contains them all.
 */
export function rebaseRevocations(crypto: Crypto, seed: Uint8Array, carList: KeyList, ours: readonly KeyList[], issuedAt: number): KeyList | undefined {
  const rebased = rebaseBody(carList, ours, issuedAt);
  return rebased === undefined ? undefined : signKeyList(crypto, seed, rebased);
}

/** The unsigned body of `rebaseRevocations` (undefined when nothing is missing). */
export function rebaseBody(carList: KeyList, ours: readonly KeyList[], issuedAt: number): KeyListBody | undefined {
  const missingSerials: Uint8Array[] = [];
  const missingKeys: Uint8Array[] = [];
  for (const list of ours) {
    for (const serial of list.revokedSerials) if (!containsKey(carList.revokedSerials, serial) && !containsKey(missingSerials, serial)) missingSerials.push(serial);
    for (const key of list.revokedKeys) if (!containsKey(carList.revokedKeys, key) && !containsKey(missingKeys, key)) missingKeys.push(key);
  }
  if (missingSerials.length === 0 && missingKeys.length === 0) return undefined;
  const owners = carList.owners.filter((owner) => !containsKey(missingKeys, owner));
  if (owners.length === 0) throw new CarkeyError('CK_KEYLIST_EMPTY_OWNERS', 'the queued revocations would remove every owner');
  return {
    ...body(carList),
    version: next(carList.version),
    issuedAt,
    owners,
    revokedSerials: [...carList.revokedSerials, ...missingSerials],
    revokedKeys: [...carList.revokedKeys, ...missingKeys],
  };
}

/** True when every revocation in `list` is also in `confirmed`. */
export function isCoveredBy(list: KeyList, confirmed: KeyList): boolean {
  return list.revokedSerials.every((serial) => containsKey(confirmed.revokedSerials, serial)) && list.revokedKeys.every((key) => containsKey(confirmed.revokedKeys, key));
}

/**
 * The queue after `delivered` is known to be in force on the car: lists not
 * newer than it are dropped unless they carry a revocation it lacks (those
 * are rebased at the next connection); lists of another epoch are dropped.
 */
export function pendingAfterDelivery(pending: readonly KeyList[], delivered: KeyList): KeyList[] {
  // Lists of another epoch (made before a factory reset) can never be accepted again.
  return pending.filter((list) => list.epoch === delivered.epoch && (list.version > delivered.version || !isCoveredBy(list, delivered)));
}
