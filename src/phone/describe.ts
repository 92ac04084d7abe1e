/**
 * Plain-data views of what the phone knows, for people and for `--json`.
 *
 * Guarantees: pure; views contain public keys, key ids, serials, roles,
 * permissions, times and grant labels (validated text, grant-label.ts) only,
 * never a seed or the advertising secret; every value is JSON-safe (hex
 * strings, numbers, ISO times). A label this phone set is `label`; one a
 * sharer sent is `sharerLabel` and is always shown as coming from the sharer.
 */
import { equalBytes, toHex } from '../core/bytes.js';
import { containsKey, type Grant, type KeyList } from '../core/credentials.js';
import type { Crypto } from '../core/crypto/index.js';
import { keyIdOf } from '../core/identity.js';
import type { DenyCategoryName } from '../core/messages.js';
import type { StatusPayload } from '../core/payloads.js';
import { permissionNames } from '../core/roles.js';
import type { ProgressEvent } from './client.js';
import { latestKnownKeyList } from './key-lists.js';
import type { VehicleRecord } from './vehicle-record.js';

const iso = (ms: number): string => new Date(ms).toISOString();

/** One line of progress for a person, or undefined when the event needs none. */
export function describeProgress(event: ProgressEvent): string | undefined {
  switch (event.kind) {
    case 'scanning':
      return `scanning for ${event.target}… (up to ${Math.ceil(event.timeoutMs / 1000)} s)`;
    case 'found':
      return `found ${event.address}${event.rssi === undefined ? '' : ` (${event.rssi} dBm)`}`;
    case 'found-by-signature':
      return `recognised the car at ${event.address} by its signature (its clock seems far from this phone's; check the car's time)`;
    case 'connecting':
      return `connecting to ${event.address}…${event.attempt > 1 ? ` (attempt ${event.attempt})` : ''}`;
    case 'retrying':
      return `${event.error.message}; retrying in ${event.delayMs} ms`;
    case 'connected':
      return `connected; the car's key list is version ${event.keyListVersion}`;
    case 'delivering':
      return `delivering key list version ${event.version}…`;
    case 'delivered':
      return `key list version ${event.version} is now in force on the car`;
    case 'delivery-failed':
      return `key list version ${event.version} was not delivered (${event.reason}); it stays queued`;
    case 'waiting-for-car':
      return `on the car: check it shows the same code, then HOLD its pairing button to confirm (up to ${Math.ceil(event.timeoutMs / 1000)} s)…`;
    case 'pair-code':
      return undefined;
  }
}

/** "4 min 10 s", "45 s". */
export function describeWait(seconds: number): string {
  const minutes = Math.floor(seconds / 60);
  const rest = seconds % 60;
  return minutes === 0 ? `${rest} s` : rest === 0 ? `${minutes} min` : `${minutes} min ${rest} s`;
}

/** What to do next after the car denied a command with `category`. */
export function denialHint(category: DenyCategoryName, retryAfterSeconds?: number): string {
  switch (category) {
    case 'not-permitted':
      return 'your key does not allow this command; ask an owner for a key that does';
    case 'expired':
      return 'your key is not valid right now (expired or not started yet); ask an owner for a new one';
    case 'proximity':
      return 'the car judged you too far away (or the link looked relayed); come closer and try again';
    case 'pin':
      return 'this command needs the PIN: add --pin PIN';
    case 'busy':
      return 'the car is busy; try again in a moment';
    case 'locked-out':
      return `too many wrong PINs from this key: the car refuses every PIN from it (the right one too)${retryAfterSeconds === undefined ? ' for a few minutes' : ` for ${describeWait(retryAfterSeconds)} more`}; wait, then try again with the right PIN`;
    case 'none':
      return 'the car gave no reason; ask an owner to check the audit log (carkey audit)';
  }
}

export function describeStatus(status: StatusPayload): string[] {
  const doors = status.doorCount === 0 ? 'no doors reported' : `${status.locked.length}/${status.doorCount} doors locked${status.locked.length > 0 ? ` (${status.locked.join(', ')})` : ''}`;
  return [
    `doors: ${doors}`,
    `drive: ${status.drive}`,
    `trunk: ${status.trunk}`,
    `key list version: ${status.keyListVersion}`,
    `car time: ${iso(status.carTime)}`,
    `start needs a PIN: ${status.startNeedsPin ? 'yes' : 'no'}`,
  ];
}

export function statusView(status: StatusPayload): Record<string, unknown> {
  return { locked: status.locked, doorCount: status.doorCount, drive: status.drive, trunk: status.trunk, keyListVersion: status.keyListVersion, carTime: iso(status.carTime), startNeedsPin: status.startNeedsPin };
}

export interface KeyView {
  readonly publicKey: string;
  readonly keyId: string;
  readonly you: boolean;
}

function keyView(crypto: Crypto, key: Uint8Array, self: Uint8Array): KeyView {
  return { publicKey: toHex(key), keyId: keyIdOf(crypto, key), you: equalBytes(key, self) };
}

export function keyListView(crypto: Crypto, list: KeyList, self: Uint8Array): Record<string, unknown> {
  return {
    version: list.version,
    issuedAt: iso(list.issuedAt),
    signer: keyView(crypto, list.signer, self),
    owners: list.owners.map((key) => keyView(crypto, key, self)),
    revokedSerials: list.revokedSerials.map(toHex),
    revokedKeys: list.revokedKeys.map((key) => keyView(crypto, key, self)),
  };
}

export function grantView(crypto: Crypto, grant: Grant, revokedBy: KeyList | undefined, now: number): Record<string, unknown> {
  const revoked = revokedBy !== undefined && (containsKey(revokedBy.revokedSerials, grant.serial) || containsKey(revokedBy.revokedKeys, grant.subject));
  const state = revoked ? 'revoked' : now < grant.notBefore ? 'not-yet-valid' : now >= grant.notAfter ? 'expired' : 'valid';
  return {
    serial: toHex(grant.serial),
    role: grant.role,
    permissions: permissionNames(grant.permissions),
    notBefore: iso(grant.notBefore),
    notAfter: iso(grant.notAfter),
    subject: toHex(grant.subject),
    subjectKeyId: keyIdOf(crypto, grant.subject),
    issuerKeyId: keyIdOf(crypto, grant.issuer),
    state,
  };
}

/** The `keys` view of one vehicle (latest known list = newest of confirmed and queued). */
export function vehicleKeysView(crypto: Crypto, record: VehicleRecord, self: Uint8Array, now: number): Record<string, unknown> {
  const newest = latestKnownKeyList(record);
  return {
    vehicle: record.name,
    vehicleName: record.vehicleName,
    vehicleId: toHex(record.vehicleId),
    carKeyId: keyIdOf(crypto, record.carIdentityKey),
    owner: record.owner,
    keyList: record.keyList === undefined ? null : keyListView(crypto, record.keyList, self),
    pending: record.pending.map((list) => ({ version: list.version, issuedAt: iso(list.issuedAt), revokedSerials: list.revokedSerials.length, revokedKeys: list.revokedKeys.length })),
    issued: record.issued.map((issued) => ({ ...grantView(crypto, issued.grant, newest, now), issuedAt: iso(issued.issuedAt), label: issued.label ?? null })),
    held: record.grants.map((grant) => ({ ...grantView(crypto, grant, record.keyList, now), sharerLabel: sharerLabelOf(record, grant) ?? null })),
  };
}

/** The label the sharer sent with a held grant, if any. */
export function sharerLabelOf(record: Pick<VehicleRecord, 'sharerLabels'>, grant: Grant): string | undefined {
  return record.sharerLabels?.[toHex(grant.serial)];
}

/** A label in a human line: quoted the way JSON quotes it (labels hold no control characters). */
export function quoteLabel(label: string): string {
  return JSON.stringify(label);
}

/** What a line of the audit log gets when this phone knows a label for its grant: `  [label "…"]` (else nothing). */
export function auditLabelSuffix(label: string | undefined): string {
  return label === undefined ? '' : `  [label ${quoteLabel(label)}]`;
}

/** Human lines for `carkey keys`. */
export function describeVehicleKeys(crypto: Crypto, record: VehicleRecord, self: Uint8Array, now: number): string[] {
  const lines = [`${record.name} (${record.vehicleName}), car key id ${keyIdOf(crypto, record.carIdentityKey)}${record.owner ? ', you are an owner' : ''}`];
  const list = record.keyList;
  if (list === undefined) lines.push('  key list: none known');
  else {
    lines.push(`  key list version ${list.version} (issued ${iso(list.issuedAt)})`);
    for (const owner of list.owners) lines.push(`    owner   ${keyIdOf(crypto, owner)}${equalBytes(owner, self) ? ' (you)' : ''}`);
    for (const serial of list.revokedSerials) lines.push(`    revoked grant ${toHex(serial)}`);
    for (const key of list.revokedKeys) lines.push(`    revoked key   ${keyIdOf(crypto, key)} ${toHex(key)}`);
  }
  for (const pending of record.pending) lines.push(`  queued: key list version ${pending.version}, not delivered yet (goes out at the next connection)`);
  const newest = latestKnownKeyList(record);
  for (const issued of record.issued) {
    const view = grantView(crypto, issued.grant, newest, now);
    const label = issued.label === undefined ? '' : ` ${quoteLabel(issued.label)}`;
    lines.push(`  issued  ${String(view.serial)} ${issued.grant.role} to ${String(view.subjectKeyId)}${label} ${String(view.notBefore)} → ${String(view.notAfter)} [${String(view.state)}]`);
  }
  for (const grant of record.grants) {
    const view = grantView(crypto, grant, record.keyList, now);
    const sharerLabel = sharerLabelOf(record, grant);
    const label = sharerLabel === undefined ? '' : ` (label from the sharer: ${quoteLabel(sharerLabel)})`;
    lines.push(`  held    ${String(view.serial)} ${grant.role} (${permissionNames(grant.permissions).join(',')}) ${String(view.notBefore)} → ${String(view.notAfter)} [${String(view.state)}]${label}`);
  }
  return lines;
}

export function isRevoked(list: KeyList | undefined, grant: Grant): boolean {
  return list !== undefined && (containsKey(list.revokedSerials, grant.serial) || containsKey(list.revokedKeys, grant.subject));
}
