/**
 * Who may do what to a vehicle's documents (docs/cloud.md "Who may read and
 * write what"): the *car* is the identity key of its registered statement;
 * an *owner* is a key in the current key list and not in its revoked keys.
 *
 * Guarantees: `requireRole` answers the one CK_CLOUD_FORBIDDEN whether the
 * vehicle is unknown or the caller has no role on it; a stored list that no
 * longer decodes makes nobody an owner (the car keeps its access, so it can
 * still fetch — and its own verification refuse — what is stored).
 */
import { equalBytes } from '../core/bytes.js';
import { containsKey, decodeKeyList, type KeyList } from '../core/credentials.js';
import { forbidden } from './http-errors.js';
import type { CloudStore, VehicleRecord } from './store.js';

export type Role = 'car' | 'owner';

export interface VehicleAccess {
  readonly record: VehicleRecord;
  /** the stored key list, decoded (undefined when the stored bytes no longer decode) */
  readonly list: KeyList | undefined;
  readonly role: Role;
}

export function decodeStoredList(record: VehicleRecord): KeyList | undefined {
  const decoded = decodeKeyList(record.keyList);
  return decoded.ok ? decoded.value : undefined;
}

export function isOwner(list: KeyList | undefined, key: Uint8Array): boolean {
  return list !== undefined && containsKey(list.owners, key) && !containsKey(list.revokedKeys, key);
}

export function roleOf(record: VehicleRecord, list: KeyList | undefined, key: Uint8Array): Role | undefined {
  if (equalBytes(record.vehicleKey, key)) return 'car';
  if (isOwner(list, key)) return 'owner';
  return undefined;
}

/** The caller's access to a stored record, if it has one of `roles`. */
export function accessTo(record: VehicleRecord | undefined, key: Uint8Array, roles: readonly Role[]): VehicleAccess | undefined {
  if (record === undefined) return undefined;
  // The car is recognised without decoding the list (the hot path: a polling car).
  if (roles.includes('car') && equalBytes(record.vehicleKey, key)) return { record, get list() { return decodeStoredList(record); }, role: 'car' };
  const list = decodeStoredList(record);
  const role = roleOf(record, list, key);
  return role !== undefined && roles.includes(role) ? { record, list, role } : undefined;
}

/** Load a vehicle and check the caller's role; the one 403 otherwise. */
export async function requireRole(store: CloudStore, vehicleId: string, key: Uint8Array, roles: readonly Role[]): Promise<VehicleAccess> {
  const access = accessTo(await store.getVehicle(vehicleId), key, roles);
  if (access === undefined) throw forbidden();
  return access;
}
