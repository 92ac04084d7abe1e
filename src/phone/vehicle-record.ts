/**
 * What the phone knows about one vehicle, and its JSON file format.
 *
 * A record holds: the local name the person chose, the name the car gave
 * itself, the car's identity key (pinned at pairing or taken from a share),
 * the vehicle id derived from it, the advertising secret, whether this phone
 * is an owner, the grants it holds, the grants it issued, the last key list
 * known to be in force on the car, and the key lists waiting for delivery.
 * Optional, additive fields (a file without them is read as before, and an
 * older carkey reading a file with them ignores them): the label of an
 * issued grant (`issued[i].label`, the issuer's private note) and
 * `sharerLabels` (held grant serial → the label the sharer sent, display
 * only); see grant-label.ts.
 *
 * Guarantees: `parseVehicleRecord` validates every field (lengths, hex,
 * ranges) and re-decodes every grant and key list with the core decoders; it
 * checks that the vehicle id matches the car key and that credentials belong
 * to this vehicle. Anything off is CK_PHONE_STORE_CORRUPT naming the file and
 * the field. `serializeVehicleRecord` is its exact inverse (except that a
 * sharer label whose grant is no longer held is not written).
 */
import { equalBytes, fromHex, toHex } from '../core/bytes.js';
import { decodeGrant, decodeKeyList, type Grant, type KeyList } from '../core/credentials.js';
import type { Crypto } from '../core/crypto/index.js';
import { CarkeyError } from '../core/errors.js';
import { ADV_SECRET_LENGTH, vehicleIdOf } from '../core/identity.js';
import { MAX_NAME_BYTES } from '../core/messages.js';
import { checkLabel } from './grant-label.js';

export const VEHICLE_RECORD_FORMAT = 1;
/** Pending key lists kept at most (older ones are superseded by the newest). */
export const MAX_PENDING_KEY_LISTS = 16;
export const MAX_HELD_GRANTS = 64;
export const MAX_ISSUED_GRANTS = 1024;

/** A grant this phone signed for someone else, kept for `keys` and `revoke`. */
export interface IssuedGrant {
  readonly grant: Grant;
  /** phone time when it was issued (ms) */
  readonly issuedAt: number;
  /** the issuer's private note (grant-label.ts); never sent to the car or the cloud */
  readonly label?: string | undefined;
}

export interface VehicleRecord {
  /** local label, unique in this key store (`--vehicle NAME`) */
  readonly name: string;
  /** the name the car reported (pairing) or the owner put in a share */
  readonly vehicleName: string;
  readonly carIdentityKey: Uint8Array;
  readonly vehicleId: Uint8Array;
  readonly advSecret: Uint8Array;
  /** true when this phone paired as an owner */
  readonly owner: boolean;
  /** grants issued to this phone */
  readonly grants: readonly Grant[];
  /** grants this phone issued (owner only) */
  readonly issued: readonly IssuedGrant[];
  /** last key list known to be in force on the car */
  readonly keyList: KeyList | undefined;
  /** signed key lists waiting for delivery, oldest first */
  readonly pending: readonly KeyList[];
  /** phone time when the vehicle was added (ms) */
  readonly addedAt: number;
  /** held grant serial (hex) → the label its sharer sent with it (unsigned, display only) */
  readonly sharerLabels?: Readonly<Record<string, string>> | undefined;
}

/** Names: 1..32 UTF-8 bytes, no control characters, not only spaces. */
export function isValidName(name: string): boolean {
  const bytes = new TextEncoder().encode(name).length;
  // eslint-disable-next-line no-control-regex
  return bytes > 0 && bytes <= MAX_NAME_BYTES && !/[\u0000-\u001f\u007f]/.test(name) && name.trim() !== '';
}

export function checkName(name: string, what: string): string {
  if (!isValidName(name)) throw new CarkeyError('CK_USAGE', `${what} must be 1 to ${MAX_NAME_BYTES} bytes of printable text`);
  return name;
}

/** `base` (or "car" when it is not a valid name), made unique with " (2)", " (3)", … within 32 bytes. */
export function uniqueName(base: string, taken: ReadonlySet<string>): string {
  const name = isValidName(base) ? base : 'car';
  if (!taken.has(name)) return name;
  for (let i = 2; ; i++) {
    const suffix = ` (${i})`;
    let stem = name;
    while (new TextEncoder().encode(stem + suffix).length > MAX_NAME_BYTES) stem = stem.slice(0, -1);
    if (!taken.has(stem + suffix)) return stem + suffix;
  }
}

export function vehicleIdHex(record: Pick<VehicleRecord, 'vehicleId'>): string {
  return toHex(record.vehicleId);
}

export function serializeVehicleRecord(record: VehicleRecord): string {
  const json = {
    format: VEHICLE_RECORD_FORMAT,
    name: record.name,
    vehicleName: record.vehicleName,
    carIdentityKey: toHex(record.carIdentityKey),
    vehicleId: toHex(record.vehicleId),
    advSecret: toHex(record.advSecret),
    owner: record.owner,
    grants: record.grants.map((grant) => toHex(grant.bytes)),
    issued: record.issued.map((issued) => ({ grant: toHex(issued.grant.bytes), issuedAt: issued.issuedAt, ...(issued.label === undefined ? {} : { label: issued.label }) })),
    keyList: record.keyList === undefined ? null : toHex(record.keyList.bytes),
    pending: record.pending.map((list) => toHex(list.bytes)),
    addedAt: record.addedAt,
    ...sharerLabelsField(record),
  };
  return `${JSON.stringify(json, null, 2)}\n`;
}

/** `sharerLabels` for the held grants only (a label outlives no grant), left out when there is none. */
function sharerLabelsField(record: VehicleRecord): { sharerLabels?: Record<string, string> } {
  const labels = record.sharerLabels;
  if (labels === undefined) return {};
  const held = Object.fromEntries(record.grants.map((grant) => toHex(grant.serial)).flatMap((serial) => (labels[serial] === undefined ? [] : [[serial, labels[serial]]])));
  return Object.keys(held).length === 0 ? {} : { sharerLabels: held };
}

class FieldCheck {
  constructor(private readonly path: string) {}

  fail(detail: string): CarkeyError {
    return new CarkeyError('CK_PHONE_STORE_CORRUPT', `${this.path}: ${detail}`, { path: this.path });
  }

  object(value: unknown, what: string): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw this.fail(`${what} must be an object`);
    return value as Record<string, unknown>;
  }

  string(value: unknown, what: string): string {
    if (typeof value !== 'string') throw this.fail(`${what} must be a string`);
    return value;
  }

  label(value: unknown, what: string): string {
    const text = this.string(value, what);
    const checked = checkLabel(text);
    if (!checked.ok) throw this.fail(`${what}: ${checked.error.message}`);
    if (checked.value !== text) throw this.fail(`${what} is not a normalised label`);
    return text;
  }

  time(value: unknown, what: string): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw this.fail(`${what} must be a time in ms`);
    return value;
  }

  hex(value: unknown, what: string, length?: number): Uint8Array {
    const bytes = typeof value === 'string' ? fromHex(value) : undefined;
    if (bytes === undefined || (length !== undefined && bytes.length !== length)) {
      throw this.fail(`${what} must be ${length === undefined ? '' : `${length} bytes of `}hex`);
    }
    return bytes;
  }

  array(value: unknown, what: string, max: number): unknown[] {
    if (!Array.isArray(value)) throw this.fail(`${what} must be a list`);
    if (value.length > max) throw this.fail(`${what} has more than ${max} items`);
    return value as unknown[];
  }

  grant(value: unknown, what: string, vehicleId: Uint8Array): Grant {
    const decoded = decodeGrant(this.hex(value, what));
    if (!decoded.ok) throw this.fail(`${what}: ${decoded.error.message}`);
    if (!equalBytes(decoded.value.vehicleId, vehicleId)) throw this.fail(`${what} belongs to another vehicle`);
    return decoded.value;
  }

  keyList(value: unknown, what: string, vehicleId: Uint8Array): KeyList {
    const decoded = decodeKeyList(this.hex(value, what));
    if (!decoded.ok) throw this.fail(`${what}: ${decoded.error.message}`);
    if (!equalBytes(decoded.value.vehicleId, vehicleId)) throw this.fail(`${what} belongs to another vehicle`);
    return decoded.value;
  }
}

/** Parse and validate a vehicle file's text (see the module header). */
export function parseVehicleRecord(crypto: Crypto, text: string, path: string): VehicleRecord {
  const check = new FieldCheck(path);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw check.fail(`not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  const json = check.object(raw, 'the file');
  if (json.format !== VEHICLE_RECORD_FORMAT) throw check.fail(`unknown format ${String(json.format)}`);
  let name: string;
  let vehicleName: string;
  try {
    name = checkName(check.string(json.name, 'name'), 'name');
    vehicleName = checkName(check.string(json.vehicleName, 'vehicleName'), 'vehicleName');
  } catch (error) {
    throw check.fail(error instanceof Error ? error.message : String(error));
  }
  const carIdentityKey = check.hex(json.carIdentityKey, 'carIdentityKey', 32);
  if (!crypto.checkPublicKey(carIdentityKey).ok) throw check.fail('carIdentityKey is not a valid public key');
  const vehicleId = check.hex(json.vehicleId, 'vehicleId', 16);
  if (!equalBytes(vehicleId, vehicleIdOf(crypto, carIdentityKey))) throw check.fail('vehicleId does not match carIdentityKey');
  const advSecret = check.hex(json.advSecret, 'advSecret', ADV_SECRET_LENGTH);
  if (typeof json.owner !== 'boolean') throw check.fail('owner must be true or false');
  const grants = check.array(json.grants, 'grants', MAX_HELD_GRANTS).map((item, i) => check.grant(item, `grants[${i}]`, vehicleId));
  const issued = check.array(json.issued, 'issued', MAX_ISSUED_GRANTS).map((item, i) => {
    const entry = check.object(item, `issued[${i}]`);
    const issuedGrant = { grant: check.grant(entry.grant, `issued[${i}].grant`, vehicleId), issuedAt: check.time(entry.issuedAt, `issued[${i}].issuedAt`) };
    return entry.label === undefined ? issuedGrant : { ...issuedGrant, label: check.label(entry.label, `issued[${i}].label`) };
  });
  const keyList = json.keyList === null ? undefined : check.keyList(json.keyList, 'keyList', vehicleId);
  const pending = check.array(json.pending, 'pending', MAX_PENDING_KEY_LISTS).map((item, i) => check.keyList(item, `pending[${i}]`, vehicleId));
  const addedAt = check.time(json.addedAt, 'addedAt');
  const record = { name, vehicleName, carIdentityKey, vehicleId, advSecret, owner: json.owner, grants, issued, keyList, pending, addedAt };
  if (json.sharerLabels === undefined) return record;
  const labels = check.object(json.sharerLabels, 'sharerLabels');
  const entries = Object.entries(labels);
  if (entries.length > MAX_HELD_GRANTS) throw check.fail(`sharerLabels has more than ${MAX_HELD_GRANTS} items`);
  const sharerLabels: Record<string, string> = {};
  for (const [serial, label] of entries) {
    if (!/^[0-9a-f]{16}$/.test(serial)) throw check.fail(`sharerLabels: "${serial.slice(0, 40)}" is not a grant serial (16 hex digits)`);
    sharerLabels[serial] = check.label(label, `sharerLabels.${serial}`);
  }
  return { ...record, sharerLabels };
}
