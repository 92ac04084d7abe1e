// Share bundles (carkey1:...) and the key lists the phone builds for pairing,
// revocation and rebasing; every built list must pass the car's own check.
import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { acceptKeyList, containsKey, MAX_OWNERS, signGrant, signKeyList, type KeyList } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { CarkeyError } from '../../src/core/errors.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { Permission } from '../../src/core/roles.js';
import {
  buildPairingKeyList,
  buildRevocation,
  checkCarKeyList,
  isCoveredBy,
  latestKnownKeyList,
  parseRevocationTarget,
  pendingAfterDelivery,
  rebaseRevocations,
} from '../../src/phone/key-lists.js';
import { decodeShare, encodeShare, encodeShareBytes, SHARE_PREFIX } from '../../src/phone/share.js';
import { fixedSeed } from '../helpers/core-fixtures.js';

const crypto = createCrypto('node');
const carKey = crypto.publicKeyFromSeed(fixedSeed('car'));
const vehicleId = vehicleIdOf(crypto, carKey);
const owner = fixedSeed('owner');
const ownerKey = crypto.publicKeyFromSeed(owner);
const friendKey = crypto.publicKeyFromSeed(fixedSeed('friend'));
const serial = Uint8Array.of(8, 7, 6, 5, 4, 3, 2, 1);

function grant(subject = friendKey) {
  return signGrant(crypto, owner, { vehicleId, serial, subject, role: 'guest', permissions: Permission.unlock, notBefore: 1000, notAfter: 2000 });
}

function codeOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof CarkeyError) return error.code;
    throw error;
  }
  return 'no error';
}

describe('share bundle', () => {
  const bundle = { grant: grant(), carIdentityKey: carKey, advSecret: new Uint8Array(32).fill(5), vehicleName: 'Blue Van' };

  it('round-trips through the carkey1: text form', () => {
    const text = encodeShare(bundle);
    expect(text.startsWith(SHARE_PREFIX)).toBe(true);
    expect(text).toMatch(/^carkey1:[A-Za-z0-9_-]+$/);
    const decoded = decodeShare(crypto, `  ${text}\n`);
    if (!decoded.ok) throw decoded.error;
    expect(toHex(decoded.value.grant.bytes)).toBe(toHex(bundle.grant.bytes));
    expect(toHex(decoded.value.carIdentityKey)).toBe(toHex(carKey));
    expect(toHex(decoded.value.advSecret)).toBe(toHex(bundle.advSecret));
    expect(decoded.value.vehicleName).toBe('Blue Van');
  });

  it('rejects anything altered, truncated or for another car with CK_PHONE_BAD_SHARE', () => {
    const bytes = encodeShareBytes(bundle);
    const asText = (b: Uint8Array): string => SHARE_PREFIX + Buffer.from(b).toString('base64url');
    const flipped = (index: number): string => {
      const copy = Uint8Array.from(bytes);
      copy[index] = (copy[index] ?? 0) ^ 0x01;
      return asText(copy);
    };
    const otherCar = encodeShare({ ...bundle, carIdentityKey: crypto.publicKeyFromSeed(fixedSeed('other car')) });
    const cases = [
      'carkey2:AAAA',
      'hello',
      `${SHARE_PREFIX}***`,
      asText(bytes.subarray(0, bytes.length - 3)),
      asText(new Uint8Array([...bytes, 0])),
      flipped(0), // format
      flipped(30), // inside the signed grant body
      flipped(1 + 172 + 3), // car key: no longer the grant's vehicle
      otherCar,
      `${encodeShare(bundle)}A`, // not canonical base64url
    ];
    for (const text of cases) {
      const decoded = decodeShare(crypto, text);
      expect(decoded.ok, text).toBe(false);
      if (!decoded.ok) expect(decoded.error.code).toBe('CK_PHONE_BAD_SHARE');
    }
  });
});

function accepts(candidate: KeyList, current: KeyList | undefined, viaPairing = false): boolean {
  return acceptKeyList(crypto, candidate, current, vehicleId, { viaPairing }).ok;
}

describe('key lists', () => {
  it('pairing: the first owner gets version 1; later owners are added with revocations kept and themselves un-revoked', () => {
    const first = buildPairingKeyList(crypto, owner, { vehicleId, current: undefined, epoch: 0, requiredVersion: 1, issuedAt: 10 });
    expect(first.version).toBe(1);
    expect(first.owners.map(toHex)).toEqual([toHex(ownerKey)]);
    expect(accepts(first, undefined, true)).toBe(true);

    const second = fixedSeed('second owner');
    const secondKey = crypto.publicKeyFromSeed(second);
    const current = signKeyList(crypto, owner, { vehicleId, version: 4, issuedAt: 20, owners: [ownerKey], revokedSerials: [serial], revokedKeys: [secondKey, friendKey] });
    const next = buildPairingKeyList(crypto, second, { vehicleId, current, epoch: 0, requiredVersion: 5, issuedAt: 30 });
    expect(next.version).toBe(5);
    expect(next.owners.map(toHex)).toEqual([toHex(ownerKey), toHex(secondKey)]);
    expect(next.revokedSerials.map(toHex)).toEqual([toHex(serial)]);
    expect(next.revokedKeys.map(toHex)).toEqual([toHex(friendKey)]);
    expect(accepts(next, current, true)).toBe(true);

    const again = buildPairingKeyList(crypto, owner, { vehicleId, current: next, epoch: 0, requiredVersion: 6, issuedAt: 40 });
    expect(again.owners.length).toBe(2);

    const full = signKeyList(crypto, owner, {
      vehicleId, version: 1, issuedAt: 1, revokedSerials: [], revokedKeys: [],
      owners: Array.from({ length: MAX_OWNERS }, (_, i) => crypto.publicKeyFromSeed(fixedSeed(`o${i}`))),
    });
    expect(codeOf(() => buildPairingKeyList(crypto, second, { vehicleId, current: full, epoch: 0, requiredVersion: 2, issuedAt: 1 }))).toBe('CK_KEYLIST_TOO_LARGE');
  });

  it('checks a list presented by the car', () => {
    const list = buildPairingKeyList(crypto, owner, { vehicleId, current: undefined, epoch: 0, requiredVersion: 1, issuedAt: 10 });
    expect(checkCarKeyList(crypto, new Uint8Array(0), vehicleId)).toEqual({ ok: true, value: undefined });
    expect(checkCarKeyList(crypto, list.bytes, vehicleId).ok).toBe(true);
    const tampered = Uint8Array.from(list.bytes);
    tampered[20] = (tampered[20] ?? 0) ^ 1;
    expect(checkCarKeyList(crypto, tampered, vehicleId).ok).toBe(false);
    expect(checkCarKeyList(crypto, list.bytes, new Uint8Array(16)).ok).toBe(false);
  });

  it('revocation: by serial or key, version + 1, accepted by the car; no-ops and self-revocation refused', () => {
    const base = buildPairingKeyList(crypto, owner, { vehicleId, current: undefined, epoch: 0, requiredVersion: 1, issuedAt: 10 });
    const bySerial = buildRevocation(crypto, owner, base, { kind: 'serial', serial }, 20);
    expect(bySerial.version).toBe(2);
    expect(containsKey(bySerial.revokedSerials, serial)).toBe(true);
    expect(accepts(bySerial, base)).toBe(true);
    const byKey = buildRevocation(crypto, owner, bySerial, { kind: 'key', key: friendKey }, 30);
    expect(byKey.version).toBe(3);
    expect(containsKey(byKey.revokedKeys, friendKey)).toBe(true);
    expect(containsKey(byKey.revokedSerials, serial)).toBe(true);
    expect(accepts(byKey, bySerial)).toBe(true);

    const coOwner = crypto.publicKeyFromSeed(fixedSeed('co-owner'));
    const two = signKeyList(crypto, owner, { vehicleId, version: 7, issuedAt: 1, owners: [ownerKey, coOwner], revokedSerials: [], revokedKeys: [] });
    const dropped = buildRevocation(crypto, owner, two, { kind: 'key', key: coOwner }, 2);
    expect(dropped.owners.map(toHex)).toEqual([toHex(ownerKey)]);

    expect(codeOf(() => buildRevocation(crypto, owner, bySerial, { kind: 'serial', serial }, 1))).toBe('CK_USAGE');
    expect(codeOf(() => buildRevocation(crypto, owner, base, { kind: 'key', key: ownerKey }, 1))).toBe('CK_USAGE');
    expect(codeOf(() => buildRevocation(crypto, owner, byKey, { kind: 'key', key: friendKey }, 1))).toBe('CK_USAGE');
  });

  it('parses revoke targets', () => {
    expect(parseRevocationTarget('0807060504030201')).toEqual({ ok: true, value: { kind: 'serial', serial } });
    const key = parseRevocationTarget(toHex(friendKey).toUpperCase());
    expect(key.ok && key.value.kind).toBe('key');
    for (const bad of ['', '123', 'zz07060504030201', toHex(friendKey).slice(2)]) expect(parseRevocationTarget(bad).ok).toBe(false);
  });

  it('rebase re-applies queued revocations over a newer list from another owner; delivered lists leave the queue', () => {
    const base = buildPairingKeyList(crypto, owner, { vehicleId, current: undefined, epoch: 0, requiredVersion: 1, issuedAt: 10 });
    const queued = buildRevocation(crypto, owner, base, { kind: 'serial', serial }, 20);
    expect(latestKnownKeyList({ keyList: base, pending: [queued] })?.version).toBe(2);
    const other = fixedSeed('other owner');
    const otherKey = crypto.publicKeyFromSeed(other);
    const carList = signKeyList(crypto, owner, { vehicleId, version: 2, issuedAt: 15, owners: [ownerKey, otherKey], revokedSerials: [], revokedKeys: [friendKey] });
    expect(accepts(queued, carList)).toBe(false); // pushing it as is would be a rollback

    const rebased = rebaseRevocations(crypto, owner, carList, [queued], 30);
    if (rebased === undefined) throw new Error('expected a rebased list');
    expect(rebased.version).toBe(3);
    expect(rebased.owners.length).toBe(2);
    expect(containsKey(rebased.revokedSerials, serial)).toBe(true);
    expect(containsKey(rebased.revokedKeys, friendKey)).toBe(true);
    expect(accepts(rebased, carList)).toBe(true);
    expect(rebaseRevocations(crypto, owner, rebased, [queued], 40)).toBeUndefined();

    expect(isCoveredBy(queued, rebased)).toBe(true);
    expect(isCoveredBy(queued, carList)).toBe(false);
    expect(pendingAfterDelivery([queued], rebased)).toEqual([]);
    expect(pendingAfterDelivery([queued], carList)).toEqual([queued]); // its revocation is not in force yet
    const later = buildRevocation(crypto, owner, queued, { kind: 'key', key: friendKey }, 25);
    expect(pendingAfterDelivery([queued, later], queued).map((list) => list.version)).toEqual([3]);
  });
});
