/**
 * Key lists from the cloud (key-list-sync.ts): verified by src/core before
 * installKeyList, refused and audited otherwise, never installed when bad.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { signKeyList } from '../../../src/core/credentials.js';
import { MAX_VERSION_STEP } from '../../../src/core/credentials.js';
import { applyCloudKeyList, type KeyListSyncContext } from '../../../src/vehicle/sync/key-list-sync.js';
import { crypto, DAY, nextList, openCar, person, removeCar, silent, type TestCar } from './car-fixture.js';

let car: TestCar | undefined;
afterEach(() => {
  if (car !== undefined) removeCar(car);
  car = undefined;
});

function context(c: TestCar): KeyListSyncContext {
  return { crypto, store: c.store, audit: c.audit, time: c.time, vehicleId: c.vehicleId, currentKeyList: () => c.keyList, onKeyListChanged: c.onKeyListChanged, logger: silent };
}

function syncEntries(c: TestCar): { reason: unknown; result: unknown }[] {
  return c.store.readAudit().filter((e) => e.kind === 'sync').map((e) => ({ reason: e.fields.reason, result: e.fields.result }));
}

describe('key lists from the cloud', () => {
  it('installs the next owner-signed list through installKeyList (audited via cloud, daemon told)', () => {
    car = openCar();
    const stranger = person();
    const next = nextList(car, { revokedKeys: [stranger.publicKey] });
    const outcome = applyCloudKeyList(context(car), next.bytes, undefined);
    expect(outcome).toEqual({ kind: 'installed', epoch: 0, version: 2 });
    expect(car.store.keyListVersion()).toBe(2);
    expect(car.changes.map((l) => l.version)).toEqual([2]);
    const entry = car.store.readAudit().filter((e) => e.kind === 'key-list').at(-1);
    expect(entry?.fields).toMatchObject({ via: 'cloud', version: 2, previousVersion: 1, revokedKeys: 1 });
  });

  it('the same list twice is a no-op: no write, no audit, no callback', () => {
    car = openCar();
    const next = nextList(car);
    expect(applyCloudKeyList(context(car), next.bytes, undefined).kind).toBe('installed');
    const seq = car.store.lastAuditSeq();
    expect(applyCloudKeyList(context(car), next.bytes, undefined)).toEqual({ kind: 'unchanged' });
    expect(car.store.lastAuditSeq()).toBe(seq);
    expect(car.changes).toHaveLength(1);
  });

  const bad: [string, (c: TestCar) => Uint8Array, string][] = [
    ['forged (signed by a key that is no owner)', (c) => nextList(c, {}, person()).bytes, 'CK_KEYLIST_NOT_OWNER'],
    ['for another vehicle', (c) => signKeyList(crypto, c.owner.seed, { vehicleId: new Uint8Array(16).fill(7), version: 2, issuedAt: Date.now(), owners: [c.owner.publicKey], revokedSerials: [], revokedKeys: [] }).bytes, 'CK_CRED_WRONG_VEHICLE'],
    ['rolled back (an older version)', (c) => nextList(c, { version: 1, issuedAt: Date.now() - 60_000 }).bytes, 'CK_KEYLIST_ROLLBACK'],
    ['replayed (another list of the version in force)', (c) => nextList(c, { version: 1, revokedKeys: [person().publicKey] }).bytes, 'CK_KEYLIST_ROLLBACK'],
    ['jumping the version too far', (c) => nextList(c, { version: 1 + MAX_VERSION_STEP + 1 }).bytes, 'CK_KEYLIST_VERSION_JUMP'],
    ['of another epoch', (c) => nextList(c, { epoch: 1 }).bytes, 'CK_KEYLIST_WRONG_EPOCH'],
    [
      'tampered (one byte changed)',
      (c) => {
        const bytes = Uint8Array.from(nextList(c).bytes);
        bytes[40] = (bytes[40] ?? 0) ^ 1;
        return bytes;
      },
      'CK_CRED_BAD_SIGNATURE',
    ],
    ['garbage', () => new Uint8Array([1, 2, 3]), 'CK_CODEC_TRUNCATED'],
  ];

  it.each(bad)('refuses and audits a list %s; nothing is installed', (_name, make, code) => {
    car = openCar();
    const before = car.store.keyList();
    const outcome = applyCloudKeyList(context(car), make(car), undefined);
    expect(outcome).toMatchObject({ kind: 'refused', code, audited: true });
    expect(car.store.keyList()).toEqual(before);
    expect(car.store.keyListVersion()).toBe(1);
    expect(car.changes).toEqual([]);
    expect(syncEntries(car)).toEqual([{ reason: code, result: 'refused' }]);
    expect(car.store.verifyAuditInStore().ok).toBe(true);
  });

  it('the cloud cannot pair a car: an owner-signed list for an unpaired car is refused', () => {
    car = openCar({ paired: false });
    const owner = person();
    const list = signKeyList(crypto, owner.seed, { vehicleId: car.vehicleId, version: 1, issuedAt: Date.now(), owners: [owner.publicKey], revokedSerials: [], revokedKeys: [] });
    expect(applyCloudKeyList(context(car), list.bytes, undefined)).toMatchObject({ kind: 'refused', code: 'CK_KEYLIST_NOT_OWNER' });
    expect(car.store.keyList()).toBeUndefined();
  });

  it('a cloud serving the same bad list on every poll is audited once', () => {
    car = openCar();
    const forged = nextList(car, {}, person()).bytes;
    const first = applyCloudKeyList(context(car), forged, undefined);
    if (first.kind !== 'refused') throw new Error('expected a refusal');
    for (let i = 0; i < 5; i++) expect(applyCloudKeyList(context(car), forged, first.digest)).toMatchObject({ kind: 'refused', audited: false });
    expect(syncEntries(car)).toHaveLength(1);
  });

  it('a far-future issue time moves the trusted clock by a bounded lead only', () => {
    car = openCar();
    const future = nextList(car, { issuedAt: Date.now() + 20 * 365 * DAY });
    expect(applyCloudKeyList(context(car), future.bytes, undefined).kind).toBe('installed');
    expect(car.time.now() - Date.now()).toBeLessThanOrEqual(DAY + 60_000);
  });

  it('a store that fails is an outcome, not an exception', () => {
    car = openCar();
    const next = nextList(car);
    car.store.close();
    expect(applyCloudKeyList(context(car), next.bytes, undefined)).toMatchObject({ kind: 'failed' });
  });
});
