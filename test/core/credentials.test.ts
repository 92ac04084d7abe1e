/**
 * Grants and key lists: signature round trips, vehicle binding, every tampered
 * bit, windows and permissions per role, exact decoding limits, and the key
 * list acceptance rules (newer only, signed by a current owner, or by an owner
 * it names itself on the physical pairing path).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { concatBytes, fromHex } from '../../src/core/bytes.js';
import { LABELS } from '../../src/core/labels.js';
import { Writer } from '../../src/core/codec.js';
import {
  acceptKeyList,
  checkGrantShape,
  decodeGrant,
  decodeKeyList,
  GRANT_LENGTH,
  MAX_KEY_LIST_LENGTH,
  MAX_KEY_LIST_VERSION,
  MAX_VERSION_STEP,
  nextVersion,
  type VersionState,
  MAX_OWNERS,
  MAX_REVOKED_KEYS,
  MAX_REVOKED_SERIALS,
  verifyGrant,
  type GrantBody,
  type KeyList,
} from '../../src/core/credentials.js';
import { isCarkeyError, type ErrorCode } from '../../src/core/errors.js';
import { ALL_PERMISSIONS, MAX_GRANT_WINDOW_MS, ROLE_MASK, type RoleName } from '../../src/core/roles.js';
import { crypto, DAY_MS, failureOf, flipBit, grantFor, pairedWorld, party, propertyRuns, signGrantUnchecked, signList, T0 } from '../helpers/core-harness.js';

const world = pairedWorld();
const friend = party('friend');
const stranger = party('stranger');
const GRANT_ROLES = ['driver', 'guest', 'monitor'] as const satisfies readonly Exclude<RoleName, 'owner'>[];
const SMALL_ORDER_KEY = fromHex('0100000000000000000000000000000000000000000000000000000000000000') ?? new Uint8Array(0);
const NONCANONICAL_KEY = fromHex('f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f') ?? new Uint8Array(0);

function throwsCode(run: () => unknown, code: ErrorCode): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(isCarkeyError(thrown, code), `threw ${String(thrown)}`).toBe(true);
}

function decoded<T>(result: { ok: true; value: T } | { ok: false; error: Error }): T {
  if (!result.ok) throw result.error;
  return result.value;
}

function grantBody(fields: Partial<Omit<GrantBody, 'issuer'>> = {}): Omit<GrantBody, 'issuer'> {
  return {
    vehicleId: world.vehicleId,
    serial: new Uint8Array(8).fill(4),
    subject: friend.publicKey,
    role: 'guest',
    permissions: 0x0001,
    notBefore: T0,
    notAfter: T0 + DAY_MS,
    ...fields,
  };
}

describe('grants', () => {
  const body = fc.constantFrom(...GRANT_ROLES).chain((role) =>
    fc.record({
      role: fc.constant(role),
      permissions: fc.integer({ min: 0, max: 0xffff }).map((bits) => bits & ROLE_MASK[role]),
      notBefore: fc.integer({ min: 0, max: 4_000_000_000_000 }),
      length: fc.integer({ min: 1, max: MAX_GRANT_WINDOW_MS[role] }),
      serial: fc.uint8Array({ minLength: 8, maxLength: 8, size: 'max' }),
    }),
  );

  it('sign → encode → decode → verify round-trips for any valid role, permissions and window', () => {
    fc.assert(
      fc.property(body, ({ role, permissions, notBefore, length, serial }) => {
        const grant = grantFor(world, friend, { role, permissions, notBefore, notAfter: notBefore + length, serial });
        expect(grant.bytes.length).toBe(GRANT_LENGTH);
        const parsed = decoded(decodeGrant(grant.bytes));
        expect(parsed).toEqual(grant);
        expect(verifyGrant(crypto, parsed, world.vehicleId).ok).toBe(true);
      }),
      propertyRuns(150),
    );
  });

  it('is bound to its vehicle', () => {
    const other = pairedWorld({ car: 'other car' });
    failureOf(verifyGrant(crypto, grantFor(world, friend), other.vehicleId), 'CK_CRED_WRONG_VEHICLE');
    // Signed for the other car, presented to this one.
    failureOf(verifyGrant(crypto, grantFor(other, friend), world.vehicleId), 'CK_CRED_WRONG_VEHICLE');
  });

  it('every single-bit change of an encoded grant is rejected by decode or verify', () => {
    const grant = grantFor(world, friend);
    const accepted: number[] = [];
    for (let bit = 0; bit < GRANT_LENGTH * 8; bit++) {
      const parsed = decodeGrant(flipBit(grant.bytes, bit));
      if (parsed.ok && verifyGrant(crypto, parsed.value, world.vehicleId).ok) accepted.push(bit);
    }
    expect(accepted).toEqual([]);
  });

  it('a tampered field fails the signature with CK_CRED_BAD_SIGNATURE', () => {
    const grant = grantFor(world, friend);
    for (const tampered of [
      { ...grant, role: 'driver' as const },
      { ...grant, permissions: grant.permissions | 0x0004 },
      { ...grant, notAfter: grant.notAfter + 1 },
      { ...grant, subject: stranger.publicKey },
    ]) {
      const bytes = new Writer()
        .raw(grant.bytes.subarray(0, 1 + 16 + 4 + 8 + 32))
        .fixed(tampered.subject, 32)
        .u8({ driver: 2, guest: 3, monitor: 4 }[tampered.role])
        .u16(tampered.permissions)
        .time(tampered.notBefore)
        .time(tampered.notAfter)
        .raw(grant.signature)
        .finish();
      failureOf(verifyGrant(crypto, decoded(decodeGrant(bytes)), world.vehicleId), 'CK_CRED_BAD_SIGNATURE');
    }
  });

  it('a grant signed by another key than the issuer it names is CK_CRED_BAD_SIGNATURE', () => {
    const body = grantFor(world, friend).bytes.subarray(0, GRANT_LENGTH - 64);
    const signature = crypto.sign(stranger.seed, concatBytes(LABELS.grant, body));
    failureOf(verifyGrant(crypto, decoded(decodeGrant(concatBytes(body, signature))), world.vehicleId), 'CK_CRED_BAD_SIGNATURE');
  });

  it('windows: empty, or longer than the role allows (guest > 30 days), are CK_CRED_BAD_WINDOW', () => {
    const thirtyDays = 30 * DAY_MS;
    expect(verifyGrant(crypto, grantFor(world, friend, { notBefore: T0, notAfter: T0 + thirtyDays }), world.vehicleId).ok).toBe(true);
    for (const [role, length] of [
      ['guest', thirtyDays + 1],
      ['guest', 0],
      ['driver', MAX_GRANT_WINDOW_MS.driver + 1],
      ['monitor', MAX_GRANT_WINDOW_MS.monitor + 1],
    ] as const) {
      const fields = { role, permissions: 0x0010, notBefore: T0, notAfter: T0 + length };
      throwsCode(() => grantFor(world, friend, fields), 'CK_CRED_BAD_WINDOW');
      // An issuer that skips the check still cannot get it past the car.
      const grant = decoded(decodeGrant(signGrantUnchecked(world.owner, grantBody(fields))));
      failureOf(verifyGrant(crypto, grant, world.vehicleId), 'CK_CRED_BAD_WINDOW');
    }
    const backwards = decoded(decodeGrant(signGrantUnchecked(world.owner, grantBody({ notBefore: T0, notAfter: T0 - 1 }))));
    failureOf(verifyGrant(crypto, backwards, world.vehicleId), 'CK_CRED_BAD_WINDOW');
  });

  it('permissions beyond the role mask or unknown bits are refused, at signing and at verification', () => {
    fc.assert(
      fc.property(fc.constantFrom(...GRANT_ROLES), fc.integer({ min: 0, max: 0xffff }), (role, permissions) => {
        const fields = grantBody({ role, permissions });
        const allowed = (permissions & ~ROLE_MASK[role]) === 0;
        expect(checkGrantShape({ ...fields, issuer: world.owner.publicKey }).ok).toBe(allowed);
        const grant = decoded(decodeGrant(signGrantUnchecked(world.owner, fields)));
        const verified = verifyGrant(crypto, grant, world.vehicleId);
        if (allowed) expect(verified.ok).toBe(true);
        else failureOf(verified, 'CK_CODEC_BAD_VALUE');
      }),
      propertyRuns(300),
    );
    throwsCode(() => grantFor(world, friend, { role: 'guest', permissions: 0x0008 }), 'CK_CODEC_BAD_VALUE');
    throwsCode(() => grantFor(world, friend, { role: 'monitor', permissions: 0x0010 | 0x8000 }), 'CK_CODEC_BAD_VALUE');
    expect(ALL_PERMISSIONS).toBe(0x1ff);
  });

  it('small-order or non-canonical issuer or subject keys are refused', () => {
    const grant = grantFor(world, friend);
    failureOf(verifyGrant(crypto, { ...grant, subject: SMALL_ORDER_KEY }, world.vehicleId), 'CK_CRYPTO_SMALL_ORDER_KEY');
    failureOf(verifyGrant(crypto, { ...grant, issuer: SMALL_ORDER_KEY }, world.vehicleId), 'CK_CRYPTO_SMALL_ORDER_KEY');
    failureOf(verifyGrant(crypto, { ...grant, subject: NONCANONICAL_KEY }, world.vehicleId), 'CK_CRYPTO_NONCANONICAL_KEY');
  });

  it('decode checks length, format, role and time range', () => {
    const bytes = grantFor(world, friend).bytes;
    failureOf(decodeGrant(bytes.subarray(0, GRANT_LENGTH - 1)), 'CK_CODEC_BAD_VALUE');
    failureOf(decodeGrant(Uint8Array.of(...bytes, 0)), 'CK_CODEC_BAD_VALUE');
    failureOf(decodeGrant(new Uint8Array(0)), 'CK_CODEC_BAD_VALUE');
    const patch = (index: number, value: number): Uint8Array => Uint8Array.from(bytes, (byte, i) => (i === index ? value : byte));
    failureOf(decodeGrant(patch(0, 2)), 'CK_CODEC_BAD_VERSION');
    const roleAt = 1 + 16 + 4 + 8 + 32 + 32;
    failureOf(decodeGrant(patch(roleAt, 1)), 'CK_CODEC_BAD_VALUE'); // owner is never granted
    failureOf(decodeGrant(patch(roleAt, 9)), 'CK_CODEC_BAD_VALUE');
    failureOf(decodeGrant(patch(roleAt + 3, 0xff)), 'CK_CODEC_BAD_VALUE'); // not-before above 2^53
  });
});

// --- key lists --------------------------------------------------------------------------------

function rawKeyList(counts: { owners: number; serials: number; keys: number }, version = 2): Uint8Array {
  const w = new Writer().u8(1).fixed(world.vehicleId, 16).u32(0).u32(version).time(T0).u8(counts.owners);
  for (let i = 0; i < counts.owners; i++) w.fixed(world.owner.publicKey, 32);
  w.u16(counts.serials);
  for (let i = 0; i < counts.serials; i++) w.fixed(new Uint8Array(8).fill(i & 0xff), 8);
  w.u16(counts.keys);
  for (let i = 0; i < counts.keys; i++) w.fixed(stranger.publicKey, 32);
  return w.fixed(world.owner.publicKey, 32).fixed(new Uint8Array(64), 64).finish();
}

describe('key lists: encoding', () => {
  it('sign → decode round-trips any counts within the limits', () => {
    const owners = [world.owner, friend, stranger, party('o4')].map((p) => p.publicKey);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0xffffffff }),
        fc.maxSafeNat(),
        fc.subarray(owners, { minLength: 1 }),
        fc.array(fc.uint8Array({ minLength: 8, maxLength: 8, size: 'max' }), { maxLength: 20 }),
        fc.array(fc.uint8Array({ minLength: 32, maxLength: 32, size: 'max' }), { maxLength: 5 }),
        (version, issuedAt, listOwners, revokedSerials, revokedKeys) => {
          const list = signList(world, world.owner, { version, issuedAt, owners: listOwners, revokedSerials, revokedKeys });
          expect(decoded(decodeKeyList(list.bytes))).toEqual(list);
        },
      ),
      propertyRuns(100),
    );
  });

  it('a list at every limit is exactly MAX_KEY_LIST_LENGTH and decodes', () => {
    const bytes = rawKeyList({ owners: MAX_OWNERS, serials: MAX_REVOKED_SERIALS, keys: MAX_REVOKED_KEYS });
    expect(bytes.length).toBe(MAX_KEY_LIST_LENGTH);
    expect(decodeKeyList(bytes).ok).toBe(true);
  });

  it('refuses 9 owners, 257 serials, 129 revoked keys, no owner and version 0 at signing and at decoding', () => {
    const keys = (n: number, length: number): Uint8Array[] => Array.from({ length: n }, (_, i) => new Uint8Array(length).fill(i & 0xff));
    throwsCode(() => signList(world, world.owner, { owners: keys(MAX_OWNERS + 1, 32) }), 'CK_KEYLIST_TOO_LARGE');
    throwsCode(() => signList(world, world.owner, { revokedSerials: keys(MAX_REVOKED_SERIALS + 1, 8) }), 'CK_KEYLIST_TOO_LARGE');
    throwsCode(() => signList(world, world.owner, { revokedKeys: keys(MAX_REVOKED_KEYS + 1, 32) }), 'CK_KEYLIST_TOO_LARGE');
    throwsCode(() => signList(world, world.owner, { owners: [] }), 'CK_KEYLIST_EMPTY_OWNERS');
    throwsCode(() => signList(world, world.owner, { version: 0 }), 'CK_CODEC_BAD_VALUE');

    failureOf(decodeKeyList(rawKeyList({ owners: MAX_OWNERS + 1, serials: 0, keys: 0 })), 'CK_KEYLIST_TOO_LARGE');
    failureOf(decodeKeyList(rawKeyList({ owners: 1, serials: MAX_REVOKED_SERIALS + 1, keys: 0 })), 'CK_KEYLIST_TOO_LARGE');
    failureOf(decodeKeyList(rawKeyList({ owners: 1, serials: 0, keys: MAX_REVOKED_KEYS + 1 })), 'CK_KEYLIST_TOO_LARGE');
    failureOf(decodeKeyList(rawKeyList({ owners: 0, serials: 0, keys: 0 })), 'CK_KEYLIST_EMPTY_OWNERS');
    failureOf(decodeKeyList(rawKeyList({ owners: 1, serials: 0, keys: 0 }, 0)), 'CK_CODEC_BAD_VALUE');
    failureOf(decodeKeyList(new Uint8Array(MAX_KEY_LIST_LENGTH + 1)), 'CK_KEYLIST_TOO_LARGE');
  });

  it('decode refuses truncation, trailing bytes and another format', () => {
    const bytes = world.keyList.bytes;
    failureOf(decodeKeyList(bytes.subarray(0, bytes.length - 1)), 'CK_CODEC_TRUNCATED');
    failureOf(decodeKeyList(Uint8Array.of(...bytes, 0)), 'CK_CODEC_TRAILING_BYTES');
    failureOf(decodeKeyList(Uint8Array.from(bytes, (byte, i) => (i === 0 ? 2 : byte))), 'CK_CODEC_BAD_VERSION');
  });

  it('every single-bit change of an encoded list is rejected by decode or acceptance', () => {
    const next = signList(world, world.owner, { version: 2, revokedSerials: [new Uint8Array(8).fill(1)] });
    const accepted: number[] = [];
    for (let bit = 0; bit < next.bytes.length * 8; bit++) {
      const parsed = decodeKeyList(flipBit(next.bytes, bit));
      if (parsed.ok && acceptKeyList(crypto, parsed.value, world.keyList, world.vehicleId).ok) accepted.push(bit);
    }
    expect(accepted).toEqual([]);
  });
});

describe('key lists: acceptance', () => {
  const accept = (candidate: KeyList, current: KeyList | undefined, viaPairing = false): ReturnType<typeof acceptKeyList> =>
    acceptKeyList(crypto, candidate, current, world.vehicleId, { viaPairing });

  it('accepts a newer list signed by a current owner', () => {
    const next = signList(world, world.owner, { version: 2, owners: [world.owner.publicKey, friend.publicKey] });
    expect(accept(next, world.keyList)).toEqual({ ok: true, value: next });
  });

  it('refuses an equal or lower version (rollback)', () => {
    const v5 = signList(world, world.owner, { version: 5 });
    for (const version of [5, 4, 1]) failureOf(accept(signList(world, world.owner, { version }), v5), 'CK_KEYLIST_ROLLBACK');
  });

  it('property: whatever sequence of versions arrives, the versions in force strictly increase', () => {
    const cache = new Map<number, KeyList>();
    const listAt = (version: number): KeyList => {
      let list = cache.get(version);
      if (list === undefined) {
        list = signList(world, world.owner, { version });
        cache.set(version, list);
      }
      return list;
    };
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 25 }), (versions) => {
        let current = world.keyList;
        const inForce = [current.version];
        for (const version of versions) {
          const result = accept(listAt(version), current);
          expect(result.ok).toBe(version > current.version && version - current.version <= MAX_VERSION_STEP);
          if (result.ok) {
            current = result.value;
            inForce.push(current.version);
          } else {
            expect(result.error.code).toBe(version <= current.version ? 'CK_KEYLIST_ROLLBACK' : 'CK_KEYLIST_VERSION_JUMP');
          }
        }
        for (let i = 1; i < inForce.length; i++) expect(inForce[i] ?? 0).toBeGreaterThan(inForce[i - 1] ?? 0);
      }),
      propertyRuns(150),
    );
  });

  it('version policy: a bounded step, the right epoch, total arithmetic at the top of the u32 range', () => {
    const at = (version: number, epoch = 0): KeyList => signList(world, world.owner, { version, epoch });
    const table: readonly { name: string; candidate: KeyList; state: VersionState; code?: string }[] = [
      { name: 'next version', candidate: at(2), state: { epoch: 0, highestVersion: 1 } },
      { name: 'largest allowed step', candidate: at(1 + MAX_VERSION_STEP), state: { epoch: 0, highestVersion: 1 } },
      { name: 'one past the step (stolen owner key jumping ahead)', candidate: at(2 + MAX_VERSION_STEP), state: { epoch: 0, highestVersion: 1 }, code: 'CK_KEYLIST_VERSION_JUMP' },
      { name: 'u32 maximum in one go', candidate: at(MAX_KEY_LIST_VERSION), state: { epoch: 0, highestVersion: 1 }, code: 'CK_KEYLIST_VERSION_JUMP' },
      { name: 'the top of the range, reached step by step', candidate: at(MAX_KEY_LIST_VERSION), state: { epoch: 0, highestVersion: MAX_KEY_LIST_VERSION - 1 } },
      { name: 'equal version', candidate: at(7), state: { epoch: 0, highestVersion: 7 }, code: 'CK_KEYLIST_ROLLBACK' },
      { name: 'a list from before a factory reset', candidate: at(9, 0), state: { epoch: 1, highestVersion: 0 }, code: 'CK_KEYLIST_WRONG_EPOCH' },
      { name: 'a list for a later epoch', candidate: at(1, 2), state: { epoch: 1, highestVersion: 0 }, code: 'CK_KEYLIST_WRONG_EPOCH' },
      { name: 'first list of a fresh epoch', candidate: at(1, 1), state: { epoch: 1, highestVersion: 0 } },
    ];
    for (const row of table) {
      const result = acceptKeyList(crypto, row.candidate, world.keyList, world.vehicleId, { state: row.state });
      if (row.code === undefined) expect(result.ok, row.name).toBe(true);
      else failureOf(result, row.code as Parameters<typeof failureOf>[1]);
    }
    expect(nextVersion(MAX_KEY_LIST_VERSION - 1)).toEqual({ ok: true, value: MAX_KEY_LIST_VERSION });
    failureOf(nextVersion(MAX_KEY_LIST_VERSION), 'CK_KEYLIST_VERSION_EXHAUSTED');
    throwsCode(() => signList(world, world.owner, { version: MAX_KEY_LIST_VERSION + 1 }), 'CK_CODEC_BAD_VALUE');
    throwsCode(() => signList(world, world.owner, { epoch: -1 }), 'CK_CODEC_BAD_VALUE');
  });

  it('a signer revoked by the current list cannot sign the next one, even if that list still names it as owner', () => {
    const handMade = signList(world, world.owner, { version: 2, owners: [world.owner.publicKey, friend.publicKey], revokedKeys: [friend.publicKey] });
    failureOf(accept(signList(world, friend, { version: 3, owners: [friend.publicKey] }), handMade), 'CK_KEYLIST_NOT_OWNER');
  });

  it('refuses a list signed by a non-owner, including a former owner', () => {
    failureOf(accept(signList(world, stranger, { version: 2 }), world.keyList), 'CK_KEYLIST_NOT_OWNER');
    // Ownership moves to `friend` in v2; the former owner can no longer sign v3.
    const v2 = signList(world, world.owner, { version: 2, owners: [friend.publicKey] });
    expect(accept(v2, world.keyList).ok).toBe(true);
    failureOf(accept(signList(world, world.owner, { version: 3 }), v2), 'CK_KEYLIST_NOT_OWNER');
    expect(accept(signList(world, friend, { version: 3, owners: [friend.publicKey] }), v2).ok).toBe(true);
  });

  it('refuses a list naming the signer as owner on the normal path (no self-appointment)', () => {
    const selfAppointed = signList(world, stranger, { version: 2, owners: [stranger.publicKey] });
    failureOf(accept(selfAppointed, world.keyList), 'CK_KEYLIST_NOT_OWNER');
    failureOf(accept(selfAppointed, undefined), 'CK_KEYLIST_NOT_OWNER');
  });

  it('pairing path: accepts a list signed by an owner it names itself, still newer only', () => {
    const first = signList(world, stranger, { version: 1, owners: [stranger.publicKey] });
    expect(accept(first, undefined, true).ok).toBe(true);
    const recovery = signList(world, stranger, { version: 2, owners: [stranger.publicKey] });
    expect(accept(recovery, world.keyList, true).ok).toBe(true);
    failureOf(accept(signList(world, stranger, { version: 1, owners: [stranger.publicKey] }), world.keyList, true), 'CK_KEYLIST_ROLLBACK');
    // The signer must be among the list's own owners.
    failureOf(accept(signList(world, stranger, { version: 2, owners: [friend.publicKey] }), world.keyList, true), 'CK_KEYLIST_NOT_OWNER');
  });

  it('refuses a list for another vehicle', () => {
    const other = pairedWorld({ car: 'other car' });
    failureOf(accept(signList(other, world.owner, { version: 2 }), world.keyList), 'CK_CRED_WRONG_VEHICLE');
  });

  it('refuses small-order and non-canonical owner keys', () => {
    const withOwner = (key: Uint8Array): KeyList => signList(world, world.owner, { version: 2, owners: [world.owner.publicKey, key] });
    failureOf(accept(withOwner(SMALL_ORDER_KEY), world.keyList), 'CK_CRYPTO_SMALL_ORDER_KEY');
    failureOf(accept(withOwner(NONCANONICAL_KEY), world.keyList), 'CK_CRYPTO_NONCANONICAL_KEY');
    failureOf(accept(withOwner(SMALL_ORDER_KEY), undefined, true), 'CK_CRYPTO_SMALL_ORDER_KEY');
  });

  it('refuses a signature that does not cover the list', () => {
    const next = signList(world, world.owner, { version: 2 });
    const other = signList(world, world.owner, { version: 3 });
    failureOf(accept({ ...next, signature: other.signature }, world.keyList), 'CK_CRED_BAD_SIGNATURE');
  });
});
