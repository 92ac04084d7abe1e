/**
 * Key lists and vehicle registration through carkey-cloud, phone side.
 *
 * - Registration: the owner fetches a car-signed vehicle statement over BLE
 *   (`vehicleStatement`, command 10) and forwards it. Before it is sent, the
 *   statement is verified with src/core and must be signed by the car key
 *   pinned at pairing; the key list it names is checked like one read over
 *   BLE and, when newer than what the phone knew, recorded as in force.
 * - Publishing: the newest queued (not yet confirmed on the car) key list is
 *   posted. When the cloud answers 409 because it holds a newer or a
 *   diverging list (reason CK_KEYLIST_ROLLBACK / CK_KEYLIST_VERSION_JUMP),
 *   the cloud's list is fetched, verified against the list this phone trusts
 *   (`verifyCloudKeyList`), and the queued revocations are re-applied on top
 *   of it with the same `rebaseRevocations` the BLE path uses, then posted.
 *
 * Guarantees:
 * - The cloud is untrusted. A list from it is used as a base only when it is
 *   for this car and this epoch, newer than the list the phone trusts,
 *   signed by an owner of that list who is neither revoked by it nor by this
 *   phone's own queue, and adds no owner the phone does not know; otherwise
 *   nothing is signed (CK_CLOUD_BAD_RESPONSE / CK_CLOUD_CONFLICT, the list
 *   stays queued). The phone never co-signs an owner it has not seen.
 * - A queued list stays queued until the car itself confirms it (BLE); the
 *   cloud accepting it only means the car can fetch it from there.
 */
import { equalBytes } from '../../core/bytes.js';
import { verifyVehicleStatement } from '../../core/vehicle-statement.js';
import { acceptKeyList, containsKey, decodeKeyList, type KeyList } from '../../core/credentials.js';
import type { Crypto } from '../../core/crypto/index.js';
import { CarkeyError, fail, isCarkeyError, ok, type ErrorCode, type Result } from '../../core/errors.js';
import { keyIdOf } from '../../core/identity.js';
import { checkCarKeyList, isCoveredBy, latestKnownKeyList, pendingAfterDelivery, rebaseRevocations } from '../key-lists.js';
import type { VehicleRecord } from '../vehicle-record.js';
import type { PhoneCloudDeps } from './deps.js';

/** 409 reasons after which the phone rebases on the cloud's list. */
const REBASE_REASONS: ReadonlySet<string> = new Set<ErrorCode>(['CK_KEYLIST_ROLLBACK', 'CK_KEYLIST_VERSION_JUMP']);

export interface CheckedStatement {
  readonly bytes: Uint8Array;
  readonly issuedAt: number;
  /** the list in force on the car, checked (undefined: the car has no owner) */
  readonly keyList: KeyList | undefined;
}

/**
 * Verify a statement the car sent over BLE: the car's signature, that it is
 * the pinned car, and the list it names (vehicle, owner signature).
 */
export function checkStatement(crypto: Crypto, bytes: Uint8Array, record: VehicleRecord): Result<CheckedStatement> {
  const verified = verifyVehicleStatement(crypto, bytes);
  if (!verified.ok) return verified;
  const statement = verified.value;
  if (!equalBytes(statement.vehicleKey, record.carIdentityKey)) return fail('CK_PROTO_BAD_CAR_SIGNATURE', 'the vehicle statement is signed by another key than the one pinned at pairing');
  if (!equalBytes(statement.vehicleId, record.vehicleId)) return fail('CK_CRED_WRONG_VEHICLE', 'vehicle statement');
  const list = checkCarKeyList(crypto, statement.keyListBytes, record.vehicleId);
  if (!list.ok) return list;
  return ok({ bytes: statement.bytes, issuedAt: statement.issuedAt, keyList: list.value });
}

export interface RegisterReport {
  readonly epoch: number;
  readonly version: number;
  /** the record after the statement's list was recorded */
  readonly record: VehicleRecord;
}

/** PUT the checked statement; record its list as in force when it is newer than the phone knew. */
export async function registerVehicle(deps: PhoneCloudDeps, record: VehicleRecord, statement: CheckedStatement): Promise<RegisterReport> {
  const answer = await deps.client.registerVehicle(record.vehicleId, statement.bytes);
  const inForce = statement.keyList;
  let updated = record;
  if (inForce !== undefined && (record.keyList === undefined || record.keyList.epoch !== inForce.epoch || inForce.version > record.keyList.version)) {
    updated = await deps.store.updateVehicle(record.vehicleId, (current) => {
      const base = current ?? record;
      return { ...base, keyList: inForce, pending: pendingAfterDelivery(base.pending, inForce) };
    });
  }
  return { epoch: answer.epoch, version: answer.version, record: updated };
}

/** The list this phone trusts for `record`: the one confirmed on the car, else its own newest. */
function trustedBase(record: VehicleRecord): KeyList | undefined {
  return record.keyList ?? latestKnownKeyList(record);
}

/**
 * Check a key list the cloud served for `record` before building on it (see
 * the module header). Never throws.
 */
export function verifyCloudKeyList(crypto: Crypto, bytes: Uint8Array, record: VehicleRecord): Result<KeyList> {
  const decoded = decodeKeyList(bytes);
  if (!decoded.ok) return decoded;
  const candidate = decoded.value;
  const base = trustedBase(record);
  if (base === undefined) return fail('CK_KEYLIST_NOT_OWNER', 'this phone knows no key list of the car to check the cloud’s against');
  if (candidate.epoch !== base.epoch) return fail('CK_KEYLIST_WRONG_EPOCH', `the cloud's list is of epoch ${candidate.epoch}, this phone knows epoch ${base.epoch}`);
  if (candidate.version < base.version) return fail('CK_KEYLIST_ROLLBACK', `the cloud's list (version ${candidate.version}) is older than the one in force on the car (${base.version})`);
  if (candidate.version === base.version) {
    return equalBytes(candidate.bytes, base.bytes) ? ok(base) : fail('CK_KEYLIST_ROLLBACK', `the cloud's list has the version in force on the car (${base.version}) but other content`);
  }
  // Core's checks (vehicle, keys, signature, signer an owner of the trusted list and not revoked by it), without the
  // per-step bound: the cloud may legitimately be many versions ahead of what this phone last saw on the car.
  const accepted = acceptKeyList(crypto, candidate, base, record.vehicleId, { state: { epoch: base.epoch, highestVersion: candidate.version - 1 } });
  if (!accepted.ok) return accepted;
  if (record.pending.some((list) => containsKey(list.revokedKeys, candidate.signer))) {
    return fail('CK_KEYLIST_NOT_OWNER', `the cloud's list is signed by ${keyIdOf(crypto, candidate.signer)}, a key this phone is revoking`);
  }
  const unknown = candidate.owners.filter((owner) => !containsKey(base.owners, owner));
  if (unknown.length > 0) return fail('CK_KEYLIST_NOT_OWNER', `the cloud's list adds owner(s) this phone has not seen: ${unknown.map((key) => keyIdOf(crypto, key)).join(', ')}`);
  return ok(candidate);
}

export interface PublishReport {
  readonly vehicle: string;
  /** version the cloud now holds from this phone, when one was posted */
  readonly published: number | undefined;
  /** the cloud's version this phone rebased on, when it did */
  readonly rebasedOn: number | undefined;
  /** the cloud already held every queued revocation */
  readonly upToDate: boolean;
  /** lists still queued for the car (BLE confirms them) */
  readonly queued: number;
  readonly record: VehicleRecord;
}

function conflictReason(error: unknown): string | undefined {
  if (!isCarkeyError(error, 'CK_CLOUD_CONFLICT')) return undefined;
  const reason = error.details?.reason;
  return typeof reason === 'string' ? reason : undefined;
}

/** Post `record`'s queued key lists (see the module header). */
export async function publishPending(deps: PhoneCloudDeps, record: VehicleRecord, seed: Uint8Array): Promise<PublishReport> {
  const { crypto, client } = deps;
  const newest = latestKnownKeyList({ keyList: undefined, pending: record.pending });
  const report = (fields: Partial<PublishReport>, updated = record): PublishReport => ({
    vehicle: updated.name,
    published: undefined,
    rebasedOn: undefined,
    upToDate: false,
    ...fields,
    queued: updated.pending.length,
    record: updated,
  });
  if (!record.owner || newest === undefined) return report({ upToDate: true });
  deps.progress?.(`${record.name}: publishing key list version ${newest.version} to the cloud…`);
  try {
    const answer = await client.publishKeyList(record.vehicleId, newest.bytes);
    return report({ published: answer.version });
  } catch (error) {
    const reason = conflictReason(error);
    if (reason === undefined || !REBASE_REASONS.has(reason)) throw error;
  }
  const fetched = await client.getKeyList(record.vehicleId);
  if (fetched === 'unchanged') throw new CarkeyError('CK_CLOUD_BAD_RESPONSE', 'answered 304 to a request without If-None-Match');
  const checked = verifyCloudKeyList(crypto, fetched.keyList, record);
  if (!checked.ok) {
    const code = checked.error.code;
    if (code === 'CK_KEYLIST_ROLLBACK') {
      throw new CarkeyError('CK_CLOUD_CONFLICT', `${record.name}: the cloud's copy of the key list is behind the car (${checked.error.message})`, { reason: 'CK_KEYLIST_VERSION_JUMP', cloudVersion: fetched.version });
    }
    throw new CarkeyError('CK_CLOUD_BAD_RESPONSE', `${record.name}: the cloud's key list cannot be trusted: ${checked.error.message}`, { reason: code, cloudVersion: fetched.version });
  }
  const cloudList = checked.value;
  const rebased = rebaseRevocations(crypto, seed, cloudList, record.pending, deps.clock());
  if (rebased === undefined) {
    deps.progress?.(`${record.name}: the cloud's key list (version ${cloudList.version}) already holds every queued revocation`);
    return report({ upToDate: true, rebasedOn: cloudList.version });
  }
  deps.progress?.(`${record.name}: the cloud holds version ${cloudList.version}; re-applied the queued revocations as version ${rebased.version}`);
  const answer = await client.publishKeyList(record.vehicleId, rebased.bytes);
  const updated = await deps.store.updateVehicle(record.vehicleId, (current) => {
    const base = current ?? record;
    return { ...base, pending: [...base.pending.filter((list) => !isCoveredBy(list, rebased)), rebased] };
  });
  return report({ published: answer.version, rebasedOn: cloudList.version }, updated);
}
