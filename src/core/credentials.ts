/**
 * Grants and key lists: owner-signed credentials the car verifies offline.
 *
 * Grant (176 bytes): format u8 = 1 ‖ vehicle id 16 ‖ epoch u32 ‖ serial 8 ‖
 *   issuer key 32 ‖ subject key 32 ‖ role u8 ‖ permissions u16 ‖
 *   not-before u64 ms ‖ not-after u64 ms ‖ Ed25519 signature 64 by the
 *   issuer over LABELS.grant ‖ the 112 bytes before it. The epoch binds a
 *   grant to the car's key-list epoch: a factory reset voids every grant.
 * Key list: format u8 = 1 ‖ vehicle id 16 ‖ epoch u32 ‖ version u32 ‖ issued-at u64 ms ‖
 *   owner count u8 (1..8) ‖ owners 32 each ‖ revoked-serial count u16 (≤ 256) ‖
 *   serials 8 each ‖ revoked-key count u16 (≤ 128) ‖ keys 32 each ‖
 *   signer key 32 ‖ signature 64 over LABELS.keyList ‖ everything before it.
 *
 * Guarantees: decoding checks every length and range before any crypto;
 * `verifyGrant` / `acceptKeyList` enforce signatures, key validity
 * (canonical, not small order), vehicle binding, windows, no rollback and
 * "only a current owner signs the next list". Pure; time is passed in.
 *
 * Version policy (docs/protocol.md §8.2): a list names the car's *epoch*
 * (a counter the car advances at each factory reset, so lists from before a
 * reset can never be replayed after it) and a *version* within that epoch.
 * A list is accepted only for the car's current epoch, with a version above
 * the highest one accepted in that epoch and at most MAX_VERSION_STEP above
 * it. So nobody, not even an owner key on a stolen phone, can exhaust the
 * u32 version space in fewer than 2^32 / MAX_VERSION_STEP accepted lists, and
 * a factory reset (physical presence) always starts a fresh epoch at 0.
 * Version arithmetic is total: `nextVersion` fails with
 * CK_KEYLIST_VERSION_EXHAUSTED instead of overflowing.
 */
import { equalBytes, toHex } from './bytes.js';
import { Reader, Writer, decodeWith } from './codec.js';
import type { Crypto } from './crypto/policy.js';
import { CarkeyError, fail, ok, type Result } from './errors.js';
import { VEHICLE_ID_LENGTH } from './identity.js';
import { LABELS } from './labels.js';
import { ALL_PERMISSIONS, MAX_GRANT_WINDOW_MS, ROLE_MASK, Role, roleName, type RoleName } from './roles.js';
import { checkedSign, type Signer } from './signer.js';

export const CREDENTIAL_FORMAT = 0x01;
export const SERIAL_LENGTH = 8;
export const GRANT_LENGTH = 176;
export const MAX_OWNERS = 8;
export const MAX_REVOKED_SERIALS = 256;
export const MAX_REVOKED_KEYS = 128;
/** Highest key-list version and epoch (u32). */
export const MAX_KEY_LIST_VERSION = 0xffff_ffff;
export const MAX_KEY_LIST_EPOCH = 0xffff_ffff;
/** The most one accepted list may move the version forward (docs/protocol.md §8.2). */
export const MAX_VERSION_STEP = 16;

export interface GrantBody {
  readonly vehicleId: Uint8Array;
  /** The car's key-list epoch the grant is for (0 for a car never reset). */
  readonly epoch?: number;
  readonly serial: Uint8Array;
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  readonly role: Exclude<RoleName, 'owner'>;
  readonly permissions: number;
  readonly notBefore: number;
  readonly notAfter: number;
}

export interface Grant extends GrantBody {
  readonly epoch: number;
  readonly signature: Uint8Array;
  /** The exact encoded bytes (what was signed plus the signature). */
  readonly bytes: Uint8Array;
}

function writeGrantBody(body: GrantBody): Uint8Array {
  return new Writer()
    .u8(CREDENTIAL_FORMAT)
    .fixed(body.vehicleId, VEHICLE_ID_LENGTH, 'vehicle id')
    .u32(body.epoch ?? 0)
    .fixed(body.serial, SERIAL_LENGTH, 'serial')
    .fixed(body.issuer, 32, 'issuer')
    .fixed(body.subject, 32, 'subject')
    .u8(Role[body.role])
    .u16(body.permissions)
    .time(body.notBefore)
    .time(body.notAfter)
    .finish();
}

/** Check a grant body's own consistency (role, permissions, window). */
export function checkGrantShape(body: GrantBody): Result<true> {
  if ((body.permissions & ~ALL_PERMISSIONS) !== 0) return fail('CK_CODEC_BAD_VALUE', 'unknown permission bits');
  if ((body.permissions & ~ROLE_MASK[body.role]) !== 0) return fail('CK_CODEC_BAD_VALUE', `permissions exceed what role ${body.role} allows`);
  if (body.notAfter <= body.notBefore) return fail('CK_CRED_BAD_WINDOW', 'not-after must be later than not-before');
  if (body.notAfter - body.notBefore > MAX_GRANT_WINDOW_MS[body.role]) {
    return fail('CK_CRED_BAD_WINDOW', `a ${body.role} grant may last at most ${MAX_GRANT_WINDOW_MS[body.role] / 86_400_000} days`);
  }
  return ok(true);
}

/** Sign a grant with the issuing owner's seed. Throws on an inconsistent body. */
export function signGrant(crypto: Crypto, issuerSeed: Uint8Array, body: Omit<GrantBody, 'issuer'>): Grant {
  const full = { ...body, epoch: body.epoch ?? 0, issuer: crypto.publicKeyFromSeed(issuerSeed) };
  const shape = checkGrantShape(full);
  if (!shape.ok) throw shape.error;
  const encoded = writeGrantBody(full);
  const signature = crypto.sign(issuerSeed, new Writer().raw(LABELS.grant).raw(encoded).finish());
  return { ...full, signature, bytes: new Writer().raw(encoded).raw(signature).finish() };
}

/** `signGrant` with a Signer (e.g. a non-extractable WebCrypto key); the signature is checked before use. */
export async function signGrantWith(crypto: Crypto, issuer: Signer, body: Omit<GrantBody, 'issuer'>): Promise<Grant> {
  const full = { ...body, epoch: body.epoch ?? 0, issuer: issuer.publicKey };
  const shape = checkGrantShape(full);
  if (!shape.ok) throw shape.error;
  const encoded = writeGrantBody(full);
  const signature = await checkedSign(crypto, issuer, new Writer().raw(LABELS.grant).raw(encoded).finish());
  return { ...full, signature, bytes: new Writer().raw(encoded).raw(signature).finish() };
}

/** Parse a grant (no signature check). Never throws. */
export function decodeGrant(bytes: Uint8Array): Result<Grant> {
  if (bytes.length !== GRANT_LENGTH) return fail('CK_CODEC_BAD_VALUE', `grant must be ${GRANT_LENGTH} bytes, got ${bytes.length}`);
  return decodeWith(bytes, (r) => {
    const format = r.u8('format');
    if (format !== CREDENTIAL_FORMAT) throw new CarkeyError('CK_CODEC_BAD_VERSION', `grant format ${format}`);
    const vehicleId = r.bytesOf(VEHICLE_ID_LENGTH, 'vehicle id');
    const epoch = r.u32('epoch');
    const serial = r.bytesOf(SERIAL_LENGTH, 'serial');
    const issuer = r.bytesOf(32, 'issuer');
    const subject = r.bytesOf(32, 'subject');
    const roleCode = r.u8('role');
    const role = roleName(roleCode);
    if (role === undefined || role === 'owner') throw new CarkeyError('CK_CODEC_BAD_VALUE', `grant role ${roleCode}`);
    const permissions = r.u16('permissions');
    const notBefore = r.time('not-before');
    const notAfter = r.time('not-after');
    const signature = r.bytesOf(64, 'signature');
    return { vehicleId, epoch, serial, issuer, subject, role, permissions, notBefore, notAfter, signature, bytes: Uint8Array.from(bytes) };
  });
}

/**
 * Verify a grant's signature, keys and shape, and its binding to `vehicleId`.
 * Does NOT check the time window or revocation: that is the decision's job
 * (`authorize.ts`), so it can name the reason.
 */
export function verifyGrant(crypto: Crypto, grant: Grant, vehicleId: Uint8Array): Result<true> {
  const issuerKey = crypto.checkPublicKey(grant.issuer);
  if (!issuerKey.ok) return issuerKey;
  const subjectKey = crypto.checkPublicKey(grant.subject);
  if (!subjectKey.ok) return subjectKey;
  const signed = new Writer().raw(LABELS.grant).raw(grant.bytes.subarray(0, GRANT_LENGTH - 64)).finish();
  const signature = crypto.verify(grant.issuer, signed, grant.signature);
  if (!signature.ok) return fail('CK_CRED_BAD_SIGNATURE', 'grant');
  if (!equalBytes(grant.vehicleId, vehicleId)) return fail('CK_CRED_WRONG_VEHICLE');
  return checkGrantShape(grant);
}

export function serialHex(serial: Uint8Array): string {
  return toHex(serial);
}

// --- key lists --------------------------------------------------------------

export interface KeyListBody {
  readonly vehicleId: Uint8Array;
  /** The car's factory-reset epoch this list belongs to (0 for a car never reset). */
  readonly epoch?: number;
  readonly version: number;
  readonly issuedAt: number;
  readonly owners: readonly Uint8Array[];
  readonly revokedSerials: readonly Uint8Array[];
  readonly revokedKeys: readonly Uint8Array[];
}

export interface KeyList extends KeyListBody {
  readonly epoch: number;
  readonly signer: Uint8Array;
  readonly signature: Uint8Array;
  readonly bytes: Uint8Array;
}

function checkKeyListLimits(body: KeyListBody): void {
  if (body.owners.length === 0) throw new CarkeyError('CK_KEYLIST_EMPTY_OWNERS');
  if (body.owners.length > MAX_OWNERS) throw new CarkeyError('CK_KEYLIST_TOO_LARGE', `at most ${MAX_OWNERS} owners`);
  if (body.revokedSerials.length > MAX_REVOKED_SERIALS) throw new CarkeyError('CK_KEYLIST_TOO_LARGE', `at most ${MAX_REVOKED_SERIALS} revoked serials`);
  if (body.revokedKeys.length > MAX_REVOKED_KEYS) throw new CarkeyError('CK_KEYLIST_TOO_LARGE', `at most ${MAX_REVOKED_KEYS} revoked keys`);
  if (!Number.isInteger(body.version) || body.version < 1 || body.version > MAX_KEY_LIST_VERSION) {
    throw new CarkeyError('CK_CODEC_BAD_VALUE', `key list version must be 1..${MAX_KEY_LIST_VERSION}`);
  }
  const epoch = body.epoch ?? 0;
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > MAX_KEY_LIST_EPOCH) throw new CarkeyError('CK_CODEC_BAD_VALUE', `key list epoch must be 0..${MAX_KEY_LIST_EPOCH}`);
}

/** The version after `version`, or CK_KEYLIST_VERSION_EXHAUSTED at the top of the u32 range. Total. */
export function nextVersion(version: number): Result<number> {
  if (!Number.isInteger(version) || version < 0) return fail('CK_CODEC_BAD_VALUE', `version ${version}`);
  if (version >= MAX_KEY_LIST_VERSION) return fail('CK_KEYLIST_VERSION_EXHAUSTED', 'a factory reset (long press + keycard) starts a fresh epoch');
  return ok(version + 1);
}

/** Where the car's version counter stands: its epoch and the highest version accepted in it (0 = none yet). */
export interface VersionState {
  readonly epoch: number;
  readonly highestVersion: number;
}

/**
 * The version rule on its own: right epoch, strictly above the highest
 * version accepted in it, at most MAX_VERSION_STEP above. Total (no overflow).
 */
export function checkVersionStep(candidate: { readonly epoch: number; readonly version: number }, state: VersionState): Result<true> {
  if (candidate.epoch !== state.epoch) return fail('CK_KEYLIST_WRONG_EPOCH', `list is for epoch ${candidate.epoch}, the car is in epoch ${state.epoch}`);
  if (candidate.version <= state.highestVersion) return fail('CK_KEYLIST_ROLLBACK', `version ${candidate.version} <= current ${state.highestVersion}`);
  if (candidate.version - state.highestVersion > MAX_VERSION_STEP) {
    return fail('CK_KEYLIST_VERSION_JUMP', `version ${candidate.version} is more than ${MAX_VERSION_STEP} above ${state.highestVersion}`);
  }
  return ok(true);
}

function writeKeyListBody(body: KeyListBody, signer: Uint8Array): Uint8Array {
  checkKeyListLimits(body);
  const w = new Writer()
    .u8(CREDENTIAL_FORMAT)
    .fixed(body.vehicleId, VEHICLE_ID_LENGTH, 'vehicle id')
    .u32(body.epoch ?? 0)
    .u32(body.version)
    .time(body.issuedAt)
    .u8(body.owners.length);
  for (const owner of body.owners) w.fixed(owner, 32, 'owner');
  w.u16(body.revokedSerials.length);
  for (const serial of body.revokedSerials) w.fixed(serial, SERIAL_LENGTH, 'serial');
  w.u16(body.revokedKeys.length);
  for (const key of body.revokedKeys) w.fixed(key, 32, 'revoked key');
  return w.fixed(signer, 32, 'signer').finish();
}

export function signKeyList(crypto: Crypto, signerSeed: Uint8Array, body: KeyListBody): KeyList {
  const signer = crypto.publicKeyFromSeed(signerSeed);
  const encoded = writeKeyListBody(body, signer);
  const signature = crypto.sign(signerSeed, new Writer().raw(LABELS.keyList).raw(encoded).finish());
  return { ...body, epoch: body.epoch ?? 0, signer, signature, bytes: new Writer().raw(encoded).raw(signature).finish() };
}

/** `signKeyList` with a Signer (e.g. a non-extractable WebCrypto key); the signature is checked before use. */
export async function signKeyListWith(crypto: Crypto, signer: Signer, body: KeyListBody): Promise<KeyList> {
  const encoded = writeKeyListBody(body, signer.publicKey);
  const signature = await checkedSign(crypto, signer, new Writer().raw(LABELS.keyList).raw(encoded).finish());
  return { ...body, epoch: body.epoch ?? 0, signer: signer.publicKey, signature, bytes: new Writer().raw(encoded).raw(signature).finish() };
}

/** Upper bound of an encoded key list, for frame caps. */
export const MAX_KEY_LIST_LENGTH = 1 + 16 + 4 + 4 + 8 + 1 + 32 * MAX_OWNERS + 2 + SERIAL_LENGTH * MAX_REVOKED_SERIALS + 2 + 32 * MAX_REVOKED_KEYS + 32 + 64;

export function decodeKeyList(bytes: Uint8Array): Result<KeyList> {
  if (bytes.length > MAX_KEY_LIST_LENGTH) return fail('CK_KEYLIST_TOO_LARGE', `${bytes.length} bytes`);
  return decodeWith(bytes, (r: Reader) => {
    const format = r.u8('format');
    if (format !== CREDENTIAL_FORMAT) throw new CarkeyError('CK_CODEC_BAD_VERSION', `key list format ${format}`);
    const vehicleId = r.bytesOf(VEHICLE_ID_LENGTH, 'vehicle id');
    const epoch = r.u32('epoch');
    const version = r.u32('version');
    const issuedAt = r.time('issued-at');
    const ownerCount = r.u8('owner count');
    if (ownerCount === 0) throw new CarkeyError('CK_KEYLIST_EMPTY_OWNERS');
    if (ownerCount > MAX_OWNERS) throw new CarkeyError('CK_KEYLIST_TOO_LARGE', 'owners');
    const owners = Array.from({ length: ownerCount }, () => r.bytesOf(32, 'owner'));
    const serialCount = r.u16('revoked serial count');
    if (serialCount > MAX_REVOKED_SERIALS) throw new CarkeyError('CK_KEYLIST_TOO_LARGE', 'revoked serials');
    const revokedSerials = Array.from({ length: serialCount }, () => r.bytesOf(SERIAL_LENGTH, 'serial'));
    const keyCount = r.u16('revoked key count');
    if (keyCount > MAX_REVOKED_KEYS) throw new CarkeyError('CK_KEYLIST_TOO_LARGE', 'revoked keys');
    const revokedKeys = Array.from({ length: keyCount }, () => r.bytesOf(32, 'revoked key'));
    const signer = r.bytesOf(32, 'signer');
    const signature = r.bytesOf(64, 'signature');
    if (version < 1) throw new CarkeyError('CK_CODEC_BAD_VALUE', 'key list version 0');
    return { vehicleId, epoch, version, issuedAt, owners, revokedSerials, revokedKeys, signer, signature, bytes: Uint8Array.from(bytes) };
  });
}

function verifyKeyListSignature(crypto: Crypto, list: KeyList): Result<true> {
  const signed = new Writer().raw(LABELS.keyList).raw(list.bytes.subarray(0, list.bytes.length - 64)).finish();
  return crypto.verify(list.signer, signed, list.signature).ok ? ok(true) : fail('CK_CRED_BAD_SIGNATURE', 'key list');
}

export function containsKey(keys: readonly Uint8Array[], key: Uint8Array): boolean {
  return keys.some((candidate) => equalBytes(candidate, key));
}

/**
 * Decide whether `candidate` may replace the car's current list.
 * - normal path: signer is an owner in `current` and not revoked by it;
 * - pairing path (`viaPairing`, only after physical confirmation on the car):
 *   signer is an owner in the candidate itself.
 * Both: the vehicle id matches, every owner key passes the enrollment check,
 * the signature verifies, and the version rule (`checkVersionStep`) holds
 * against `state` (the car's epoch and highest version accepted in it; by
 * default, the current list's epoch and version).
 */
export function acceptKeyList(
  crypto: Crypto,
  candidate: KeyList,
  current: KeyList | undefined,
  vehicleId: Uint8Array,
  options: { readonly viaPairing?: boolean; readonly state?: VersionState } = {},
): Result<KeyList> {
  if (!equalBytes(candidate.vehicleId, vehicleId)) return fail('CK_CRED_WRONG_VEHICLE', 'key list');
  for (const owner of [...candidate.owners, candidate.signer]) {
    const check = crypto.checkPublicKey(owner);
    if (!check.ok) return { ok: false, error: check.error };
  }
  const signature = verifyKeyListSignature(crypto, candidate);
  if (!signature.ok) return { ok: false, error: signature.error };
  const state = options.state ?? (current === undefined ? undefined : { epoch: current.epoch, highestVersion: current.version });
  if (state !== undefined) {
    const step = checkVersionStep(candidate, state);
    if (!step.ok) return step;
  }
  if (options.viaPairing === true) {
    if (!containsKey(candidate.owners, candidate.signer)) return fail('CK_KEYLIST_NOT_OWNER');
  } else {
    if (current === undefined || !containsKey(current.owners, candidate.signer)) return fail('CK_KEYLIST_NOT_OWNER');
    if (containsKey(current.revokedKeys, candidate.signer)) return fail('CK_KEYLIST_NOT_OWNER', 'the signer is revoked by the current list');
  }
  return ok(candidate);
}
