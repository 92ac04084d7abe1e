// The phone key store: layout and permissions, passphrase encryption, typed
// errors for wrong passphrases and damaged files, atomic writes, locking.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { signKeyList } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { CarkeyError } from '../../src/core/errors.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { KeyStore, resolveHome } from '../../src/phone/keystore.js';
import { nodeAtomicWriteOps, tempPathFor, withFileLock, writeFileAtomic } from '../../src/phone/private-files.js';
import { SCRYPT_N } from '../../src/phone/seed-encryption.js';
import { uniqueName, type VehicleRecord } from '../../src/phone/vehicle-record.js';
import { fixedSeed, seededRandom } from '../helpers/core-fixtures.js';

const crypto = createCrypto('node');
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ck-store-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function store(home = join(dir, 'home')): KeyStore {
  return new KeyStore(home, { crypto, random: seededRandom('store'), clock: () => 1_700_000_000_000, sleep: () => Promise.resolve() });
}

const mode = (path: string): number => statSync(path).mode & 0o777;

async function expectCode(promise: Promise<unknown> | (() => unknown), code: string): Promise<CarkeyError> {
  let error: unknown;
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (thrown) {
    error = thrown;
  }
  expect(error).toBeInstanceOf(CarkeyError);
  expect((error as CarkeyError).code).toBe(code);
  return error as CarkeyError;
}

function vehicle(name: string, carSeedName = name): VehicleRecord {
  const carKey = crypto.publicKeyFromSeed(fixedSeed(carSeedName));
  const vehicleId = vehicleIdOf(crypto, carKey);
  const owner = fixedSeed('owner');
  const keyList = signKeyList(crypto, owner, { vehicleId, version: 1, issuedAt: 5, owners: [crypto.publicKeyFromSeed(owner)], revokedSerials: [], revokedKeys: [] });
  return { name, vehicleName: 'car', carIdentityKey: carKey, vehicleId, advSecret: new Uint8Array(32).fill(3), owner: true, grants: [], issued: [], keyList, pending: [], addedAt: 1 };
}

describe('home directory', () => {
  it('is --home, then $CARKEY_HOME, then ~/.config/carkey', () => {
    expect(resolveHome('/x/y', { CARKEY_HOME: '/env' }, '/home/u')).toBe('/x/y');
    expect(resolveHome(undefined, { CARKEY_HOME: '/env' }, '/home/u')).toBe('/env');
    expect(resolveHome(undefined, {}, '/home/u')).toBe('/home/u/.config/carkey');
  });
});

describe('identity', () => {
  it('creates a private directory and file, and never overwrites the key', async () => {
    const keys = store();
    await expectCode(() => keys.identity(), 'CK_PHONE_NO_IDENTITY');
    expect(existsSync(keys.paths.home)).toBe(false); // read-only calls create nothing
    const created = await keys.createIdentity(undefined);
    expect(mode(keys.paths.home)).toBe(0o700);
    expect(mode(keys.paths.identity)).toBe(0o600);
    expect(keys.identity()).toMatchObject({ keyId: created.keyId, encrypted: false });
    const seed = await keys.unlockSeed(() => Promise.reject(new Error('no passphrase should be asked')));
    expect(toHex(crypto.publicKeyFromSeed(seed))).toBe(toHex(created.publicKey));
    const before = readFileSync(keys.paths.identity, 'utf8');
    await expectCode(keys.createIdentity(undefined), 'CK_PHONE_IDENTITY_EXISTS');
    expect(readFileSync(keys.paths.identity, 'utf8')).toBe(before);
    expect(existsSync(keys.paths.lock)).toBe(false);
  });

  it('encrypts the seed with scrypt + secretbox; the right passphrase opens it, a wrong one is CK_PHONE_BAD_PASSPHRASE', async () => {
    const keys = store();
    const created = await keys.createIdentity('correct horse');
    const text = readFileSync(keys.paths.identity, 'utf8');
    const json = JSON.parse(text) as { seed: Record<string, unknown> };
    expect(json.seed).toMatchObject({ kind: 'encrypted', kdf: 'scrypt', n: SCRYPT_N, r: 8, p: 1, cipher: 'xsalsa20-poly1305' });
    expect(keys.identity().encrypted).toBe(true);
    const seed = await keys.unlockSeed(() => Promise.resolve('correct horse'));
    expect(toHex(crypto.publicKeyFromSeed(seed))).toBe(toHex(created.publicKey));
    expect(text).not.toContain(toHex(seed));
    await expectCode(keys.unlockSeed(() => Promise.resolve('wrong horse')), 'CK_PHONE_BAD_PASSPHRASE');
    await expectCode(keys.unlockSeed(() => Promise.resolve(undefined)), 'CK_PHONE_NEED_PASSPHRASE');
  });

  it('reports a damaged identity file as CK_PHONE_STORE_CORRUPT naming it', async () => {
    const keys = store();
    await keys.createIdentity('pw');
    const good = readFileSync(keys.paths.identity, 'utf8');
    const cases: [string, string][] = [
      ['not json', '{'],
      ['bad public key', good.replace(/"publicKey": "[0-9a-f]+"/, '"publicKey": "00"')],
      ['huge scrypt N', good.replace(/"n": \d+/, '"n": 1073741824')],
      ['unknown kind', good.replace('"kind": "encrypted"', '"kind": "rot13"')],
    ];
    for (const [, text] of cases) {
      writeFileSync(keys.paths.identity, text, { mode: 0o600 });
      const error = await expectCode(() => keys.identity(), 'CK_PHONE_STORE_CORRUPT');
      expect(error.message).toContain(keys.paths.identity);
    }
    // A box that was tampered with reads as a wrong passphrase, never as another key.
    const json = JSON.parse(good) as { seed: { box: string } };
    json.seed.box = `${json.seed.box.slice(0, -2)}${json.seed.box.endsWith('00') ? '01' : '00'}`;
    writeFileSync(keys.paths.identity, JSON.stringify(json), { mode: 0o600 });
    await expectCode(keys.unlockSeed(() => Promise.resolve('pw')), 'CK_PHONE_BAD_PASSPHRASE');
  });

  it('refuses a key file or directory readable by others', async () => {
    const keys = store();
    await keys.createIdentity(undefined);
    chmodSync(keys.paths.identity, 0o644);
    expect((await expectCode(() => keys.identity(), 'CK_STORE_INSECURE_PERMISSIONS')).message).toContain('chmod 600');
    chmodSync(keys.paths.identity, 0o600);
    chmodSync(keys.paths.home, 0o755);
    expect((await expectCode(() => keys.identity(), 'CK_STORE_INSECURE_PERMISSIONS')).message).toContain('chmod 700');
  });
});

describe('vehicles', () => {
  it('makes local names unique within 32 bytes', () => {
    expect(uniqueName('van', new Set())).toBe('van');
    expect(uniqueName('van', new Set(['van', 'van (2)']))).toBe('van (3)');
    const long = 'ü'.repeat(16); // 32 bytes
    const made = uniqueName(long, new Set([long]));
    expect(made.endsWith(' (2)')).toBe(true);
    expect(new TextEncoder().encode(made).length).toBeLessThanOrEqual(32);
    expect(uniqueName('', new Set())).toBe('car');
  });

  it('round-trips records, selects by name, and keeps names unique', async () => {
    const keys = store();
    await expectCode(() => keys.selectVehicle(undefined), 'CK_PHONE_NOT_PAIRED');
    const van = vehicle('van');
    await keys.updateVehicle(van.vehicleId, () => van);
    expect(mode(join(keys.paths.vehicles, `${toHex(van.vehicleId)}.json`))).toBe(0o600);
    expect(mode(keys.paths.vehicles)).toBe(0o700);
    const loaded = keys.selectVehicle(undefined);
    expect(loaded.name).toBe('van');
    expect(loaded.keyList?.version).toBe(1);
    expect(toHex(loaded.advSecret)).toBe(toHex(van.advSecret));
    const bus = vehicle('bus');
    await keys.updateVehicle(bus.vehicleId, () => bus);
    await expectCode(() => keys.selectVehicle(undefined), 'CK_PHONE_AMBIGUOUS_VEHICLE');
    expect(keys.selectVehicle('bus').name).toBe('bus');
    await expectCode(() => keys.selectVehicle('truck'), 'CK_PHONE_NOT_PAIRED');
    await expectCode(keys.updateVehicle(bus.vehicleId, (current) => ({ ...(current ?? bus), name: 'van' })), 'CK_PHONE_VEHICLE_EXISTS');
    expect(keys.listVehicles().map((record) => record.name)).toEqual(['bus', 'van']);
  });

  it('reports damaged vehicle files as CK_PHONE_STORE_CORRUPT naming the file', async () => {
    const keys = store();
    const van = vehicle('van');
    await keys.updateVehicle(van.vehicleId, () => van);
    const path = join(keys.paths.vehicles, `${toHex(van.vehicleId)}.json`);
    const good = readFileSync(path, 'utf8');
    const other = toHex(vehicle('other').vehicleId);
    for (const text of [
      'garbage',
      good.replace(/"vehicleId": "[0-9a-f]+"/, `"vehicleId": "${other}"`),
      good.replace(/"keyList": "[0-9a-f]+"/, '"keyList": "0100"'),
      good.replace('"owner": true', '"owner": "yes"'),
    ]) {
      writeFileSync(path, text, { mode: 0o600 });
      const error = await expectCode(() => keys.listVehicles(), 'CK_PHONE_STORE_CORRUPT');
      expect(error.message).toContain(path);
    }
  });

  it('serialises concurrent read-modify-write cycles and breaks a stale lock', async () => {
    const keys = store();
    const van = vehicle('van');
    await keys.updateVehicle(van.vehicleId, () => van);
    const slowClock = { now: () => Date.now(), sleep: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)) };
    const concurrent = new KeyStore(keys.paths.home, { crypto, random: seededRandom('x'), clock: slowClock.now, sleep: slowClock.sleep });
    const rename = (store: KeyStore, suffix: string): Promise<VehicleRecord> =>
      store.updateVehicle(van.vehicleId, (current) => ({ ...(current ?? van), vehicleName: `${current?.vehicleName ?? ''}${suffix}` }));
    // Another holder keeps the lock while it works: the update waits for it.
    let release: () => void = () => undefined;
    const held = withFileLock(keys.paths.lock, { now: Date.now, sleep: slowClock.sleep }, async () => {
      await new Promise<void>((resolve) => {
        release = resolve;
      });
    });
    const waiting = rename(concurrent, 'b');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(keys.selectVehicle('van').vehicleName).toBe('car'); // still waiting for the lock
    release();
    await Promise.all([held, waiting]);
    expect(keys.selectVehicle('van').vehicleName).toBe('carb');

    writeFileSync(keys.paths.lock, '999999\n', { mode: 0o600 });
    const old = (Date.now() - 60_000) / 1000;
    utimesSync(keys.paths.lock, old, old);
    await rename(concurrent, 'd');
    expect(keys.selectVehicle('van').vehicleName.endsWith('d')).toBe(true);
    expect(existsSync(keys.paths.lock)).toBe(false);

    writeFileSync(keys.paths.lock, '999999\n', { mode: 0o600 });
    await expectCode(withFileLock(keys.paths.lock, { now: Date.now, sleep: () => Promise.resolve(), waitMs: 50 }, () => 1), 'CK_PHONE_STORE_BUSY');
  });
});

describe('atomic writes', () => {
  it('replaces the file, leaves no temp file, and keeps the old content when the write fails', () => {
    mkdirSync(join(dir, 'a'), { mode: 0o700 });
    const path = join(dir, 'a', 'file.json');
    writeFileAtomic(path, new TextEncoder().encode('one'));
    expect(readFileSync(path, 'utf8')).toBe('one');
    expect(mode(path)).toBe(0o600);
    writeFileAtomic(path, new TextEncoder().encode('two'));
    expect(readFileSync(path, 'utf8')).toBe('two');
    expect(readdirSync(join(dir, 'a'))).toEqual(['file.json']);

    for (const failing of ['renameSync', 'fsyncSync', 'writeSync'] as const) {
      const ops = { ...nodeAtomicWriteOps, [failing]: () => { throw new Error(`injected ${failing} failure`); } };
      expect(() => writeFileAtomic(path, new TextEncoder().encode('three'), ops)).toThrow(/injected/);
      expect(readFileSync(path, 'utf8')).toBe('two');
      expect(readdirSync(join(dir, 'a'))).toEqual(['file.json']);
    }

    // A temp file left by a crash (same pid) is garbage: the next write replaces it.
    writeFileSync(tempPathFor(path), 'torn', { mode: 0o600 });
    writeFileAtomic(path, new TextEncoder().encode('four'));
    expect(readFileSync(path, 'utf8')).toBe('four');
    expect(readdirSync(join(dir, 'a'))).toEqual(['file.json']);
  });
});
