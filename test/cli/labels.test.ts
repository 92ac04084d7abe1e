// Grant labels (issue 9) through the compiled `carkey` CLI: share --label
// [--send-label], keys and keys --json, accept, `carkey label`, revoke
// --label (offline, fake owner store), and over the sim radio with the real
// carkeyd and carkey-cloud: the friend unlocks and the owner's `carkey audit`
// (BLE and --from-cloud) shows the label next to that unlock, while neither
// the car's state nor the cloud's database ever holds the label.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signKeyList } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { KeyStore } from '../../src/phone/keystore.js';
import { decodeShare } from '../../src/phone/share.js';
import { fixedSeed, seededRandom } from '../helpers/core-fixtures.js';
import { runCarkey, type CarkeyRun } from '../phone/carkey-run.js';
import { useCarkeyHomes } from './carkey-homes.js';
import { startCloudCar, until, type CloudCar } from '../integration/chaos-rig.js';

const crypto = createCrypto('node');
const LABEL = 'Sam, weekend';
const { newHome, carkey } = useCarkeyHomes('ck-cli-labels-');

function ok(run: CarkeyRun): Record<string, unknown> {
  if (run.code !== 0) throw new Error(`exit ${String(run.code)}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  return run.json();
}

function errorOf(run: CarkeyRun): Record<string, unknown> {
  const json = run.json();
  expect(json.ok).toBe(false);
  return json.error as Record<string, unknown>;
}

/** A key store whose phone owns a (fake) vehicle named `name`. */
async function ownerHome(name = 'van'): Promise<string> {
  const home = newHome();
  ok(await carkey(home, 'keygen', '--json'));
  const store = new KeyStore(home, { crypto, random: seededRandom('owner'), clock: () => Date.now(), sleep: () => Promise.resolve() });
  const seed = await store.unlockSeed(() => Promise.resolve(undefined));
  const carKey = crypto.publicKeyFromSeed(fixedSeed(`label car ${name}`));
  const vehicleId = vehicleIdOf(crypto, carKey);
  const keyList = signKeyList(crypto, seed, { vehicleId, version: 1, issuedAt: Date.now(), owners: [crypto.publicKeyFromSeed(seed)], revokedSerials: [], revokedKeys: [] });
  await store.updateVehicle(vehicleId, () => ({ name, vehicleName: `${name} car`, carIdentityKey: carKey, vehicleId, advSecret: new Uint8Array(32).fill(4), owner: true, grants: [], issued: [], keyList, pending: [], addedAt: Date.now() }));
  return home;
}

async function friendHome(): Promise<{ home: string; key: string; keyId: string }> {
  const home = newHome();
  const created = ok(await carkey(home, 'keygen', '--json'));
  return { home, key: String(created.publicKey), keyId: String(created.keyId) };
}

interface IssuedView {
  serial: string;
  label: string | null;
  subjectKeyId: string;
}

async function issued(home: string): Promise<IssuedView[]> {
  const keys = ok(await carkey(home, 'keys', '--json'));
  return (keys.vehicles as { issued: IssuedView[] }[]).flatMap((vehicle) => vehicle.issued);
}

describe('grant labels (offline)', () => {
  it('label, share and revoke document the label options with examples in --help', async () => {
    const label = await runCarkey(['label', '--help']);
    expect(label.code).toBe(0);
    expect(label.stdout).toMatch(/Example:\n {2}\$ carkey label [0-9a-f]{16} "Sam, weekend"/);
    expect(label.stdout).toContain('--clear');
    expect((await runCarkey(['share', '--help'])).stdout).toContain('--send-label');
    expect((await runCarkey(['revoke', '--help'])).stdout).toContain('--label <text>');
  });

  it('share --label keeps the label on this phone: keys and keys --json show it; the share carries none (format 1)', async () => {
    const owner = await ownerHome();
    const friend = await friendHome();
    const shared = ok(await carkey(owner, 'share', '--role', 'guest', '--until', '+1d', '--to', friend.key, '--label', `  ${LABEL}  `, '--json'));
    expect(shared).toMatchObject({ label: LABEL, labelSent: false });
    expect(String(shared.share).startsWith('carkey1:AQ')).toBe(true); // format byte 0x01
    const decoded = decodeShare(crypto, String(shared.share));
    if (!decoded.ok) throw decoded.error;
    expect(decoded.value.sharerLabel).toBeUndefined();

    expect(await issued(owner)).toEqual([expect.objectContaining({ serial: shared.serial, label: LABEL, subjectKeyId: friend.keyId })]);
    const human = await carkey(owner, 'keys');
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`issued  ${String(shared.serial)} guest to ${friend.keyId} "${LABEL}" `);
    const text = await carkey(owner, 'share', '--role', 'guest', '--until', '+1d', '--to', friend.key, '--label', 'Ann');
    expect(text.stdout).toContain('"Ann"');
    expect(text.stdout).toContain('the label stays on this phone (add --send-label to send it with the share)');

    // The friend accepts it: no label arrives.
    const accepted = ok(await carkey(friend.home, 'accept', String(shared.share), '--json'));
    expect(accepted.sharerLabel).toBeNull();
    const held = ok(await carkey(friend.home, 'keys', '--json'));
    expect((held.vehicles as { held: { sharerLabel: unknown }[] }[])[0]?.held).toEqual([expect.objectContaining({ sharerLabel: null })]);
  });

  it('share --send-label carries it: the friend sees it as the label from the sharer (accept, keys, keys --json)', async () => {
    const owner = await ownerHome();
    const friend = await friendHome();
    const shared = ok(await carkey(owner, 'share', '--role', 'guest', '--until', '+1d', '--to', friend.key, '--label', LABEL, '--send-label', '--json'));
    expect(shared).toMatchObject({ label: LABEL, labelSent: true });
    expect(String(shared.share).startsWith('carkey1:Ag')).toBe(true); // format byte 0x02

    const accept = await carkey(friend.home, 'accept', String(shared.share));
    expect(accept.code, accept.stderr).toBe(0);
    expect(accept.stdout).toContain(`label from the sharer: "${LABEL}"`);
    const keys = ok(await carkey(friend.home, 'keys', '--json'));
    const vehicle = (keys.vehicles as { held: Record<string, unknown>[]; issued: unknown[] }[])[0];
    expect(vehicle?.held).toEqual([expect.objectContaining({ serial: shared.serial, sharerLabel: LABEL })]);
    expect(vehicle?.issued).toEqual([]);
    const human = await carkey(friend.home, 'keys');
    expect(human.stdout).toMatch(new RegExp(`held +${String(shared.serial)} guest .*\\(label from the sharer: "${LABEL}"\\)`));
    // The friend cannot relabel a grant it did not issue.
    const relabel = await carkey(friend.home, 'label', String(shared.serial), 'mine', '--json');
    expect(relabel.code).toBe(4);
    expect(errorOf(relabel)).toMatchObject({ code: 'CK_PHONE_NO_SUCH_GRANT', message: expect.stringContaining('shared with this phone') as unknown });
  });

  it.each([
    ['an empty label', '', 'it is empty'],
    ['white space only', '   ', 'only white space'],
    ['65 characters', 'x'.repeat(65), 'it is 65 characters long; at most 64'],
    ['a line break', 'Sam\nweekend', 'control character (U+000A'],
    ['an escape sequence', 'Sam\u001b[31m', 'control character (U+001B'],
    ['a right-to-left override', 'Sam\u202eevil', 'bidirectional formatting character'],
  ])('refuses a label with %s before signing anything (exit 2, CK_PHONE_BAD_LABEL)', async (_what, label, why) => {
    const owner = await ownerHome();
    const friend = await friendHome();
    const run = await carkey(owner, 'share', '--role', 'guest', '--until', '+1d', '--to', friend.key, '--label', label, '--json');
    expect(run.code).toBe(2);
    expect(errorOf(run)).toMatchObject({ code: 'CK_PHONE_BAD_LABEL', exitCode: 2, message: expect.stringContaining(why) as unknown });
    expect(await issued(owner)).toEqual([]);
  });

  it('--send-label without --label is a usage error', async () => {
    const owner = await ownerHome();
    const friend = await friendHome();
    const run = await carkey(owner, 'share', '--role', 'guest', '--until', '+1d', '--to', friend.key, '--send-label', '--json');
    expect(run.code).toBe(2);
    expect(errorOf(run)).toMatchObject({ code: 'CK_USAGE', message: expect.stringContaining('--label') as unknown });
  });

  it('carkey label sets, changes and clears labels by serial, key id (with --all for several) or public key', async () => {
    const owner = await ownerHome();
    const sam = await friendHome();
    const ann = await friendHome();
    const first = ok(await carkey(owner, 'share', '--role', 'guest', '--until', '+1d', '--to', sam.key, '--json'));
    const second = ok(await carkey(owner, 'share', '--role', 'driver', '--until', '+7d', '--to', sam.key, '--json'));
    const third = ok(await carkey(owner, 'share', '--role', 'guest', '--until', '+1d', '--to', ann.key, '--label', 'Ann', '--json'));
    const labels = async (): Promise<Record<string, string | null>> => Object.fromEntries((await issued(owner)).map((entry) => [entry.serial, entry.label]));
    expect(await labels()).toEqual({ [String(first.serial)]: null, [String(second.serial)]: null, [String(third.serial)]: 'Ann' });

    const set = ok(await carkey(owner, 'label', String(first.serial), LABEL, '--json'));
    expect(set).toMatchObject({ vehicle: 'van', label: LABEL, grants: [{ serial: first.serial, role: 'guest', subjectKeyId: sam.keyId, label: LABEL }] });
    const human = await carkey(owner, 'label', String(third.serial), 'Ann, holiday');
    expect(human.stdout).toBe(`grant ${String(third.serial)} (guest to ${ann.keyId}) on van: label "Ann, holiday"\n`);
    expect(await labels()).toEqual({ [String(first.serial)]: LABEL, [String(second.serial)]: null, [String(third.serial)]: 'Ann, holiday' });

    // Sam's key holds two grants: a key id names both, so --all is needed.
    const ambiguous = await carkey(owner, 'label', sam.keyId, 'Sam', '--json');
    expect(ambiguous.code).toBe(2);
    expect(errorOf(ambiguous)).toMatchObject({ code: 'CK_USAGE', message: expect.stringContaining('--all') as unknown });
    expect(await labels()).toEqual({ [String(first.serial)]: LABEL, [String(second.serial)]: null, [String(third.serial)]: 'Ann, holiday' });
    ok(await carkey(owner, 'label', sam.keyId, 'Sam', '--all', '--json'));
    expect(await labels()).toEqual({ [String(first.serial)]: 'Sam', [String(second.serial)]: 'Sam', [String(third.serial)]: 'Ann, holiday' });
    ok(await carkey(owner, 'label', ann.key, '--clear', '--json'));
    expect(await labels()).toEqual({ [String(first.serial)]: 'Sam', [String(second.serial)]: 'Sam', [String(third.serial)]: null });

    const unknown = await carkey(owner, 'label', 'ffffffffffffffff', 'x', '--json');
    expect(unknown.code).toBe(4);
    expect(errorOf(unknown).code).toBe('CK_PHONE_NO_SUCH_GRANT');
    const bad = await carkey(owner, 'label', String(first.serial), 'a\tb', '--json');
    expect(bad.code).toBe(2);
    expect(errorOf(bad).code).toBe('CK_PHONE_BAD_LABEL');
    expect((await carkey(owner, 'label', String(first.serial), '--json')).code).toBe(2);
    expect((await carkey(owner, 'label', String(first.serial), 'x', '--clear', '--json')).code).toBe(2);
    expect((await carkey(owner, 'label', 'not-hex', 'x', '--json')).code).toBe(2);
  });

  it('revoke --label revokes the one grant in force with that label, and refuses when none or several match', async () => {
    const owner = await ownerHome();
    const sam = await friendHome();
    const a = ok(await carkey(owner, 'share', '--role', 'guest', '--until', '+1d', '--to', sam.key, '--label', 'Sam', '--json'));
    ok(await carkey(owner, 'share', '--role', 'guest', '--until', '+2d', '--to', sam.key, '--label', 'Sam', '--json'));
    const c = ok(await carkey(owner, 'share', '--role', 'guest', '--until', '+1d', '--to', sam.key, '--label', LABEL, '--json'));

    const several = await carkey(owner, 'revoke', '--label', 'Sam', '--offline', '--json');
    expect(several.code).toBe(2);
    expect(errorOf(several)).toMatchObject({ code: 'CK_USAGE', message: expect.stringContaining(String(a.serial)) as unknown });
    const none = await carkey(owner, 'revoke', '--label', 'Nobody', '--offline', '--json');
    expect(none.code).toBe(4);
    expect(errorOf(none).code).toBe('CK_PHONE_NO_SUCH_GRANT');

    const revoked = ok(await carkey(owner, 'revoke', '--label', LABEL, '--offline', '--json'));
    expect(revoked).toMatchObject({ revoked: { serial: c.serial }, queued: true, version: 2 });
    // Revoked now (queued): the label no longer names a grant in force.
    const again = await carkey(owner, 'revoke', '--label', LABEL, '--offline', '--json');
    expect(again.code).toBe(4);
    expect(errorOf(again)).toMatchObject({ code: 'CK_PHONE_NO_SUCH_GRANT', message: expect.stringContaining('already revoked or expired') as unknown });
    expect((await carkey(owner, 'revoke', String(a.serial), '--label', 'Sam', '--offline', '--json')).code).toBe(2);
    expect((await carkey(owner, 'revoke', '--offline', '--json')).code).toBe(2);
  });
});

/** Every file under `root`, concatenated as bytes (to look for text that must not be there). */
function allBytes(root: string): Buffer {
  if (!existsSync(root)) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  const walk = (path: string): void => {
    if (statSync(path).isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
    else parts.push(readFileSync(path));
  };
  walk(root);
  return Buffer.concat(parts);
}

describe('grant labels in the audit log (carkeyd + carkey-cloud over the sim radio)', () => {
  let car: CloudCar;

  beforeAll(async () => {
    car = await startCloudCar();
  }, 90_000);

  afterAll(async () => {
    await car.stop();
  });

  function run(home: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return car.carkey(home, args);
  }

  function json(result: { code: number; stdout: string; stderr: string }): Record<string, unknown> {
    if (result.code !== 0) throw new Error(`exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
    return JSON.parse(result.stdout) as Record<string, unknown>;
  }

  interface Entry {
    seq: number;
    kind: string;
    fields: Record<string, unknown>;
    label: string | null;
  }

  it("the friend unlocks; the owner's audit shows the label next to that unlock (BLE and --from-cloud); car and cloud never hold it", async () => {
    expect((await run('friend', 'keygen')).code).toBe(0);
    const friendKey = String(json(await run('friend', 'whoami', '--json')).publicKey);
    // --send-label and --via-cloud: the label travels to the friend, sealed to their key.
    const shared = json(await run('owner', 'share', '--role', 'guest', '--until', '+1d', '--to', friendKey, '--label', LABEL, '--send-label', '--via-cloud', '--json'));
    expect(shared).toMatchObject({ label: LABEL, labelSent: true, mailbox: { id: expect.any(String) as unknown } });
    const inbox = json(await run('friend', 'inbox', '--json'));
    expect(inbox.items).toEqual([expect.objectContaining({ share: expect.objectContaining({ serial: shared.serial, sharerLabel: LABEL }) as unknown })]);
    const accepted = json(await run('friend', 'accept', '--from-cloud', '--json'));
    expect(accepted.accepted).toEqual([expect.objectContaining({ serial: shared.serial, sharerLabel: LABEL })]);

    const unlocked = await run('friend', 'unlock');
    expect(unlocked.code, unlocked.stderr).toBe(0);
    expect((await run('owner', 'lock')).code).toBe(0);

    const audit = json(await run('owner', 'audit', '--json'));
    const entries = audit.entries as Entry[];
    const friendUnlock = entries.filter((entry) => entry.kind === 'decision' && entry.fields.subject === `grant:${String(shared.serial)}` && entry.fields.command === 'unlock');
    expect(friendUnlock).toHaveLength(1);
    expect(friendUnlock[0]).toMatchObject({ fields: { result: 'allow' }, label: LABEL });
    // The owner's own decisions carry no label.
    const ownerLock = entries.filter((entry) => entry.kind === 'decision' && entry.fields.command === 'lock');
    expect(ownerLock.length).toBeGreaterThan(0);
    expect(ownerLock.every((entry) => entry.label === null)).toBe(true);
    const human = await run('owner', 'audit');
    const line = human.stdout.split('\n').find((text) => text.includes(`"grant:${String(shared.serial)}"`) && text.includes('"unlock"'));
    expect(line).toMatch(/ \[label "Sam, weekend"\]$/);

    // The same entry from the cloud's copy (uploaded by the car), verified against the car key.
    await until(async () => {
      const read = await run('owner', 'audit', '--from-cloud', '--verify', '--json');
      if (read.code !== 0) return false;
      const copy = (JSON.parse(read.stdout) as { entries: Entry[] }).entries;
      return copy.some((entry) => entry.seq === friendUnlock[0]?.seq && entry.label === LABEL);
    }, 'the friend\'s unlock, labelled, in the cloud copy of the audit log', 30_000);

    // The car recorded no label (it never saw one), on disk or in its audit fields; nor did the cloud.
    const elsewhere = car.carAudit().filter((entry) => JSON.stringify(entry).includes(LABEL));
    expect(elsewhere).toEqual([]);
    const needle = Buffer.from(LABEL, 'utf8');
    expect(allBytes(car.rig.stateDir).includes(needle)).toBe(false);
    expect(allBytes(join(car.rig.dir, 'cloud-data')).includes(needle)).toBe(false);
    // The owner's key store does hold it (that is where it lives).
    expect(allBytes(join(car.rig.dir, 'owner', 'vehicles')).includes(needle)).toBe(true);
  }, 120_000);
});
