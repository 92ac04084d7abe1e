// The compiled `carkey` CLI, spawned as a user would run it, for everything
// that needs no car: help, keygen/whoami, share/accept between two key
// stores, keys, offline revoke, bad input and the exit codes and --json shapes.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { signKeyList } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { KeyStore } from '../../src/phone/keystore.js';
import { fixedSeed, seededRandom } from '../helpers/core-fixtures.js';
import { runCarkey, type CarkeyRun } from '../phone/carkey-run.js';
import { useCarkeyHomes } from './carkey-homes.js';

const crypto = createCrypto('node');
const { dir, newHome, carkey } = useCarkeyHomes('ck-cli-');

function errorOf(run: CarkeyRun): Record<string, unknown> {
  const json = run.json();
  expect(json.ok).toBe(false);
  return json.error as Record<string, unknown>;
}

/** A key store whose phone owns a (fake) vehicle named `name`. */
async function ownerHome(name = 'van'): Promise<string> {
  const home = newHome();
  expect((await carkey(home, 'keygen')).code).toBe(0);
  const store = new KeyStore(home, { crypto, random: seededRandom('owner'), clock: () => Date.now(), sleep: () => Promise.resolve() });
  const seed = await store.unlockSeed(() => Promise.resolve(undefined));
  const carKey = crypto.publicKeyFromSeed(fixedSeed(`car ${name}`));
  const vehicleId = vehicleIdOf(crypto, carKey);
  const keyList = signKeyList(crypto, seed, { vehicleId, version: 1, issuedAt: Date.now(), owners: [crypto.publicKeyFromSeed(seed)], revokedSerials: [], revokedKeys: [] });
  await store.updateVehicle(vehicleId, () => ({ name, vehicleName: `${name} car`, carIdentityKey: carKey, vehicleId, advSecret: new Uint8Array(32).fill(4), owner: true, grants: [], issued: [], keyList, pending: [], addedAt: Date.now() }));
  return home;
}

describe('carkey (offline commands)', () => {
  it('prints help with an example for every command, exit 0', async () => {
    const top = await runCarkey(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('Exit codes');
    for (const command of ['keygen', 'whoami', 'scan', 'pair', 'unlock', 'lock', 'start', 'trunk', 'status', 'share', 'accept', 'keys', 'revoke', 'audit']) {
      const help = await runCarkey([command, '--help']);
      expect(help.code, command).toBe(0);
      expect(help.stdout, command).toMatch(/Example:\n {2}\$ carkey /);
    }
  });

  it('keygen creates a key once; whoami shows it; --json shapes', async () => {
    const home = newHome();
    const missing = await carkey(home, 'whoami');
    expect(missing.code).toBe(7);
    expect(missing.stderr).toContain('CK_PHONE_NO_IDENTITY');
    expect(missing.stderr).toContain('next: run `carkey keygen`');

    const created = await carkey(home, 'keygen', '--json');
    expect(created.code).toBe(0);
    const key = created.json();
    expect(key).toMatchObject({ ok: true, encrypted: false, home });
    expect(key.publicKey).toMatch(/^[0-9a-f]{64}$/);
    expect(key.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(readFileSync(join(home, 'identity.json'), 'utf8')).not.toContain('passphrase');

    const who = await carkey(home, 'whoami', '--json');
    expect(who.code).toBe(0);
    expect(who.json()).toEqual({ ok: true, publicKey: key.publicKey, keyId: key.keyId, encrypted: false, home, vehicles: [] });
    const human = await carkey(home, 'whoami');
    expect(human.stdout).toContain(`public key: ${String(key.publicKey)}`);

    const again = await carkey(home, 'keygen', '--json');
    expect(again.code).toBe(2);
    expect(errorOf(again)).toMatchObject({ code: 'CK_PHONE_IDENTITY_EXISTS', exitCode: 2 });

    const viaEnv = await runCarkey(['whoami', '--json'], { CARKEY_HOME: home });
    expect(viaEnv.json().publicKey).toBe(key.publicKey);
  });

  it('encrypts the key with --encrypt; a wrong or missing passphrase is refused with the documented exit codes', async () => {
    const home = await ownerHome();
    const encryptedHome = newHome();
    const passFile = join(dir(), 'pass.txt');
    writeFileSync(passFile, 'open sesame\n', { mode: 0o600 });
    const created = await carkey(encryptedHome, '--passphrase-file', passFile, 'keygen', '--encrypt', '--json');
    expect(created.code).toBe(0);
    expect(created.json().encrypted).toBe(true);
    expect(readFileSync(join(encryptedHome, 'identity.json'), 'utf8')).toContain('"kind": "encrypted"');
    expect((await carkey(encryptedHome, 'whoami', '--json')).json().encrypted).toBe(true);
    const noPass = await runCarkey(['--home', encryptedHome, 'keygen', '--encrypt', '--json'], {});
    expect(noPass.code).toBe(2);

    // Signing needs the passphrase: move the owner vehicle test to an encrypted store.
    const friend = (await carkey(newHome(), 'keygen', '--json')).json().publicKey as string;
    const wrongFile = join(dir(), 'wrong.txt');
    writeFileSync(wrongFile, 'not it\n', { mode: 0o600 });
    const store = new KeyStore(encryptedHome, { crypto, random: seededRandom('enc'), clock: () => Date.now(), sleep: () => Promise.resolve() });
    const ownerFile = new KeyStore(home, { crypto, random: seededRandom('x'), clock: () => Date.now(), sleep: () => Promise.resolve() }).selectVehicle('van');
    await store.updateVehicle(ownerFile.vehicleId, () => ownerFile);
    const wrong = await carkey(encryptedHome, '--passphrase-file', wrongFile, 'share', '--role', 'guest', '--until', '+1d', '--to', friend, '--json');
    expect(wrong.code).toBe(7);
    expect(errorOf(wrong).code).toBe('CK_PHONE_BAD_PASSPHRASE');
    const none = await carkey(encryptedHome, 'share', '--role', 'guest', '--until', '+1d', '--to', friend, '--json');
    expect(none.code).toBe(2);
    expect(errorOf(none).code).toBe('CK_PHONE_NEED_PASSPHRASE');
    const right = await runCarkey(['--home', encryptedHome, 'share', '--role', 'guest', '--until', '+1d', '--to', friend, '--json'], { CARKEY_PASSPHRASE: 'open sesame' });
    expect(right.code).toBe(0);
  });

  it('shares a key, the friend accepts it, keys lists it, and an offline revoke queues a new key list', async () => {
    const owner = await ownerHome();
    const friend = newHome();
    const stranger = newHome();
    await carkey(friend, 'keygen');
    await carkey(stranger, 'keygen');
    const friendKeyFile = join(dir(), 'friend.json');
    writeFileSync(friendKeyFile, (await carkey(friend, 'whoami', '--json')).stdout);
    const shareFile = join(dir(), 'share.carkey');

    const shared = await carkey(owner, 'share', '--role', 'guest', '--until', '+2d', '--to', friendKeyFile, '--permissions', 'unlock,lock', '--out', shareFile, '--json');
    expect(shared.code).toBe(0);
    const grant = shared.json();
    expect(grant).toMatchObject({ ok: true, vehicle: 'van', role: 'guest', permissions: ['unlock', 'lock'], out: shareFile });
    expect(grant.serial).toMatch(/^[0-9a-f]{16}$/);
    expect(grant.share).toMatch(/^carkey1:[A-Za-z0-9_-]+$/);
    expect(readFileSync(shareFile, 'utf8').trim()).toBe(grant.share);
    expect(shared.stderr).not.toContain('carkey1:');

    const humanShare = await carkey(owner, 'share', '--role', 'monitor', '--from', '2030-01-01', '--until', '2030-02-01T00:00Z', '--to', friendKeyFile);
    expect(humanShare.code).toBe(0);
    expect(humanShare.stdout).toMatch(/carkey1:[A-Za-z0-9_-]+/);
    expect(humanShare.stdout).toMatch(/[▀▄█]/); // the QR code

    const notMine = await carkey(stranger, 'accept', shareFile, '--json');
    expect(notMine.code).toBe(2);
    expect(errorOf(notMine).code).toBe('CK_PHONE_SHARE_NOT_FOR_ME');
    const garbage = await carkey(friend, 'accept', 'carkey1:AAAA', '--json');
    expect(garbage.code).toBe(2);
    expect(errorOf(garbage).code).toBe('CK_PHONE_BAD_SHARE');

    const accepted = await carkey(friend, 'accept', shareFile, '--name', 'borrowed', '--json');
    expect(accepted.code).toBe(0);
    expect(accepted.json()).toMatchObject({ ok: true, vehicle: 'borrowed', vehicleName: 'van car', role: 'guest', serial: grant.serial });
    const friendKeys = (await carkey(friend, 'keys', '--json')).json();
    const friendVehicles = friendKeys.vehicles as Record<string, unknown>[];
    expect(friendVehicles).toHaveLength(1);
    expect(friendVehicles[0]).toMatchObject({ vehicle: 'borrowed', owner: false, keyList: null, held: [{ serial: grant.serial, role: 'guest', state: 'valid' }] });
    // A second key for the same car never renames it silently.
    const second = String((await carkey(owner, 'share', '--role', 'guest', '--until', '+1d', '--to', friendKeyFile, '--json')).json().share);
    const renamed = await carkey(friend, 'accept', second, '--name', 'other', '--json');
    expect(renamed.code).toBe(2);
    expect(String(errorOf(renamed).message)).toContain('already stored as "borrowed": add --replace to rename it to "other"');
    const joined = await carkey(friend, 'accept', second, '--json');
    expect(joined.code).toBe(0);
    expect(joined.json()).toMatchObject({ vehicle: 'borrowed' });
    expect(joined.stderr).toContain('this car is already stored as "borrowed"; the key is added to it');
    const replaced = await carkey(friend, 'accept', second, '--name', 'other', '--replace', '--json');
    expect(replaced.json()).toMatchObject({ vehicle: 'other' });
    expect((await carkey(friend, 'accept', second, '--name', 'borrowed', '--replace', '--json')).json()).toMatchObject({ vehicle: 'borrowed' });
    const notOwner = await carkey(friend, 'share', '--role', 'guest', '--until', '+1d', '--to', friendKeyFile, '--json');
    expect(notOwner.code).toBe(3);
    expect(errorOf(notOwner).code).toBe('CK_PHONE_NOT_OWNER');

    const tooLong = await carkey(owner, 'share', '--role', 'guest', '--until', '+31d', '--to', friendKeyFile, '--json');
    expect(tooLong.code).toBe(2);
    expect(errorOf(tooLong).code).toBe('CK_CRED_BAD_WINDOW');

    const revoked = await carkey(owner, 'revoke', String(grant.serial), '--offline', '--json');
    expect(revoked.code).toBe(0);
    expect(revoked.json()).toMatchObject({ ok: true, vehicle: 'van', revoked: { serial: grant.serial }, version: 2, delivered: false, queued: true });
    const again = await carkey(owner, 'revoke', String(grant.serial), '--offline', '--json');
    expect(again.code).toBe(2);
    const ownerKeys = ((await carkey(owner, 'keys', '--json')).json().vehicles as Record<string, unknown>[])[0];
    expect(ownerKeys).toMatchObject({ vehicle: 'van', owner: true, keyList: { version: 1 }, pending: [{ version: 2, revokedSerials: 1 }] });
    expect((ownerKeys?.issued as Record<string, unknown>[]).find((issued) => issued.serial === grant.serial)).toMatchObject({ state: 'revoked', role: 'guest' });
    const humanKeys = await carkey(owner, 'keys');
    expect(humanKeys.stdout).toContain('queued: key list version 2');

    // The car is not reachable: the revocation stays queued, exit 0 with a clear message.
    const unreachable = await carkey(owner, '--transport', 'sim', '--radio', join(dir(), 'no-radio.sock'), 'revoke', String((await carkey(friend, 'whoami', '--json')).json().publicKey), '--json');
    expect(unreachable.code).toBe(0);
    expect(unreachable.json()).toMatchObject({ delivered: false, queued: true, version: 3, reason: 'CK_TRANSPORT_RADIO_UNAVAILABLE' });
    expect(unreachable.stderr).toContain('NOT in force yet');
  });

  it('share refuses a private key file, a window that is over, and warns on a start far ahead', async () => {
    const owner = await ownerHome();
    const friend = newHome();
    await carkey(friend, 'keygen');
    const identityFile = join(friend, 'identity.json');
    const seedRefusal = await carkey(owner, 'share', '--role', 'guest', '--until', '+1d', '--to', identityFile, '--json');
    expect(seedRefusal.code).toBe(2);
    expect(errorOf(seedRefusal)).toMatchObject({ code: 'CK_USAGE' });
    expect(String(errorOf(seedRefusal).message)).toContain('holds a private key (its "seed" field)');
    expect(String(errorOf(seedRefusal).message)).toContain('carkey whoami --json');
    const pem = join(dir(), 'key.pem');
    writeFileSync(pem, '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI' + 'A'.repeat(40) + '\n-----END PRIVATE KEY-----\n');
    expect(String(errorOf(await carkey(owner, 'share', '--role', 'guest', '--until', '+1d', '--to', pem, '--json')).message)).toContain('holds a private key');
    const friendKey = String((await carkey(friend, 'whoami', '--json')).json().publicKey);
    const two = join(dir(), 'two-keys.txt');
    writeFileSync(two, `${friendKey}\n${'ab'.repeat(32)}\n`);
    expect(String(errorOf(await carkey(owner, 'share', '--role', 'guest', '--until', '+1d', '--to', two, '--json')).message)).toContain('more than one');

    const past = await carkey(owner, 'share', '--role', 'guest', '--from', '2020-01-01', '--until', '2020-01-02', '--to', friendKey, '--json');
    expect(past.code).toBe(2);
    expect(String(errorOf(past).message)).toContain('--until 2020-01-02T00:00:00.000Z is not in the future');
    const farAhead = await carkey(owner, 'share', '--role', 'guest', '--from', '+8d', '--until', '+9d', '--to', friendKey, '--json');
    expect(farAhead.code).toBe(0);
    expect(farAhead.stderr).toMatch(/warning: the key becomes valid only at \S+, more than 7 days from now/);
    const soon = await carkey(owner, 'share', '--role', 'guest', '--from', '+6d', '--until', '+7d', '--to', friendKey, '--json');
    expect(soon.code).toBe(0);
    expect(soon.stderr).not.toContain('warning');
  });

  it('maps bad input and missing things to the documented exit codes, with JSON errors on stdout', async () => {
    const home = await ownerHome('van');
    const cases: [string[], number, string][] = [
      [['--bogus'], 2, 'CK_USAGE'],
      [['--transport', 'carrier-pigeon', 'scan'], 2, 'CK_USAGE'],
      [['--timeout', 'soon', 'scan'], 2, 'CK_USAGE'],
      [['share', '--role', 'guest'], 2, 'CK_USAGE'],
      [['share', '--role', 'guest', '--until', 'tomorrow', '--to', 'x'], 2, 'CK_USAGE'],
      [['revoke', 'not-a-serial'], 2, 'CK_USAGE'],
      [['start', '--pin', '12'], 2, 'CK_USAGE'],
      [['pair', '--code', '12345'], 2, 'CK_USAGE'],
      [['pair'], 2, 'CK_USAGE'],
      [['unlock', '--vehicle', 'bus'], 4, 'CK_PHONE_NOT_PAIRED'],
      [['audit', '--verify', '--from', '5'], 2, 'CK_USAGE'],
      // no cloud configured (no --cloud, no CARKEY_CLOUD, nothing stored): a usage error with a hint
      [['sync'], 2, 'CK_USAGE'],
      [['remote', 'unlock'], 2, 'CK_USAGE'],
      [['remote', 'honk'], 2, 'CK_USAGE'],
      [['--cloud', 'ftp://x', 'inbox'], 2, 'CK_USAGE'],
      [['--transport', 'sim', '--radio', join(dir(), 'none.sock'), 'unlock'], 6, 'CK_TRANSPORT_RADIO_UNAVAILABLE'],
    ];
    for (const [args, code, errorCode] of cases) {
      const run = await carkey(home, '--json', ...args);
      expect(run.code, args.join(' ')).toBe(code);
      expect(errorOf(run).code, args.join(' ')).toBe(errorCode);
      expect(run.stderr.length, args.join(' ')).toBeGreaterThan(0);
    }
    // progress goes to stderr, never into JSON stdout
    const progress = await carkey(home, '--json', '--transport', 'sim', '--radio', join(dir(), 'none.sock'), 'unlock');
    expect(progress.stderr).toContain('scanning');
    expect(progress.stdout.trim().split('\n')).toHaveLength(1);

    await new KeyStore(home, { crypto, random: seededRandom('y'), clock: () => Date.now(), sleep: () => Promise.resolve() }).updateVehicle(
      vehicleIdOf(crypto, crypto.publicKeyFromSeed(fixedSeed('car bus'))),
      (current) => {
        if (current !== undefined) throw new Error('unexpected');
        const van = new KeyStore(home, { crypto, random: seededRandom('z'), clock: () => Date.now(), sleep: () => Promise.resolve() }).selectVehicle('van');
        const carKey = crypto.publicKeyFromSeed(fixedSeed('car bus'));
        return { ...van, name: 'bus', carIdentityKey: carKey, vehicleId: vehicleIdOf(crypto, carKey), keyList: undefined };
      },
    );
    const ambiguous = await carkey(home, '--json', 'unlock');
    expect(ambiguous.code).toBe(2);
    expect(errorOf(ambiguous)).toMatchObject({ code: 'CK_PHONE_AMBIGUOUS_VEHICLE', hint: expect.stringContaining('--vehicle') as unknown });

    writeFileSync(join(home, 'identity.json'), '{"format":1', { mode: 0o600 });
    const corrupt = await carkey(home, '--json', 'whoami');
    expect(corrupt.code).toBe(7);
    expect(errorOf(corrupt)).toMatchObject({ code: 'CK_PHONE_STORE_CORRUPT' });
    expect(String(errorOf(corrupt).message)).toContain(join(home, 'identity.json'));
  });
});
