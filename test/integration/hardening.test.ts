/**
 * The security review's trust rules, through real processes (carkeyd, the
 * body-controller sim, the radio broker, the `carkey` CLI; a library phone
 * where a test needs to sign what the CLI never would):
 *
 * - key-list versions cannot be exhausted: a stolen owner key pushing
 *   0xFFFFFFFF is refused (bounded step), and the real owner still revokes;
 * - factory reset then re-pair: pair, use, reset (long press + keycard),
 *   pair a new phone, old phone and old grant refused, new phone unlocks;
 * - one pairing at a time: a second phone gets "busy", and the natural
 *   "press again" short press does not confirm the first phone;
 * - trusted time: the car's system clock jumping ±20 years (libfaketime) and
 *   a run of far-future signed lists do not expire a 2-day grant; a phone
 *   whose clock is years off still finds its car by the CHALLENGE signature.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { hardwareCtl, runCli, startDaemonProcess, startRig, stopProgram, stopRig, type CarRig, type CliResult } from '../../firmware-sim/rig.js';
import { signKeyList, MAX_KEY_LIST_VERSION, MAX_VERSION_STEP, type KeyList } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { ExitCode } from '../../src/core/errors.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { PhonePairing } from '../../src/core/phone-session.js';
import { CarkeyClient } from '../../src/phone/client.js';
import { KeyStore } from '../../src/phone/keystore.js';
import { openCentral } from '../../src/phone/transports.js';
import { MessageChannel, centralChunks } from '../../src/transport/channel.js';
import { createSimCentral } from '../../src/transport/sim.js';

const crypto = createCrypto('node');
const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const DAY = 86_400_000;
/** What the car shows while it waits for the person to confirm a pairing. */
const CONFIRM_PROMPT = /Code \d{6} [0-9a-f]{8} \| Hold button to OK/;
const FAKETIME_LIB = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1'].find((path) => existsSync(path));

let rig: CarRig | undefined;

afterEach(async () => {
  await stopRig(rig);
  rig = undefined;
});

function requireRig(): CarRig {
  if (rig === undefined) throw new Error('no rig');
  return rig;
}

function carkey(home: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<CliResult> {
  const r = requireRig();
  return runCli('src/cli/carkey.js', ['--home', join(r.dir, home), '--transport', 'sim', '--radio', r.radio, '--quiet', ...args], env === undefined ? {} : { env });
}

function json(result: CliResult): Record<string, unknown> {
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

async function display(): Promise<string> {
  const out = await hardwareCtl(requireRig(), 'state', '--json');
  return (JSON.parse(out.stdout) as { display: string[] }).display.join(' | ');
}

async function waitForDisplay(text: string | RegExp): Promise<void> {
  for (let i = 0; i < 150; i++) {
    const shown = await display();
    if (typeof text === 'string' ? shown.includes(text) : text.test(shown)) return;
    await sleep(100);
  }
  throw new Error(`display never showed "${text}" (shows "${await display()}")`);
}

async function carState(): Promise<Record<string, unknown>> {
  const url = String(requireRig().daemon?.ready.status);
  const response = await fetch(`${url}/state`);
  return (await response.json()) as Record<string, unknown>;
}

/** The owner flow a person follows: open pairing, run `carkey pair`, compare, hold the button. */
async function pairOwner(home: string, open: 'button' | 'keycard+button'): Promise<CliResult> {
  const r = requireRig();
  if (open === 'keycard+button') await hardwareCtl(r, 'tap-keycard', 'card-1');
  await hardwareCtl(r, 'press-button');
  const pairing = carkey(home, ['pair', '--yes', '--name', home]);
  await waitForDisplay(CONFIRM_PROMPT);
  await hardwareCtl(r, 'long-press');
  return pairing;
}

async function share(owner: string, friend: string, until = '+2d'): Promise<void> {
  const who = json(await carkey(friend, ['whoami', '--json']));
  const shared = await carkey(owner, ['share', '--role', 'guest', '--until', until, '--to', String(who.publicKey), '--json']);
  expect(shared.code, shared.stderr).toBe(0);
  const accepted = await carkey(friend, ['accept', String(json(shared).share)]);
  expect(accepted.code, accepted.stderr).toBe(0);
}

/** A phone library client on the owner's key store, to sign lists the CLI never would. */
async function libraryOwner(home: string): Promise<{ client: CarkeyClient; store: KeyStore; seed: Uint8Array }> {
  const r = requireRig();
  const deps = { crypto, random, clock: () => Date.now(), sleep };
  const store = new KeyStore(join(r.dir, home), deps);
  const client = new CarkeyClient({ ...deps, store, openTransport: () => openCentral({ transport: 'sim', radio: r.radio, name: `lib-${randomBytes(3).toString('hex')}` }) });
  const seed = await store.unlockSeed(() => Promise.resolve(undefined));
  return { client, store, seed };
}

function forgeNext(seed: Uint8Array, base: KeyList, version: number, issuedAt = Date.now()): KeyList {
  return signKeyList(crypto, seed, {
    vehicleId: base.vehicleId,
    epoch: base.epoch,
    version,
    issuedAt,
    owners: base.owners,
    revokedSerials: base.revokedSerials,
    revokedKeys: base.revokedKeys,
  });
}

describe('key-list versions and factory reset', () => {
  afterAll(async () => {
    await stopRig(rig);
  });

  it('a stolen owner key cannot exhaust the version space; a factory reset always leads to a working pairing', async () => {
    rig = await startRig();
    await startDaemonProcess(rig);
    for (const home of ['owner', 'friend', 'new-owner']) expect((await carkey(home, ['keygen'])).code).toBe(0);
    const paired = await pairOwner('owner', 'button');
    expect(paired.code, paired.stderr).toBe(0);
    await share('owner', 'friend');
    expect((await carkey('friend', ['unlock'])).code).toBe(0);

    // A thief with the owner's key pushes the top of the u32 range, then one step too far.
    const { client, store, seed } = await libraryOwner('owner');
    const record = store.selectVehicle(undefined);
    const base = record.keyList;
    if (base === undefined) throw new Error('owner has no key list');
    const outcomes = await client.withConnection(record, seed, async (connection) => [
      await connection.keyListPush(forgeNext(seed, base, MAX_KEY_LIST_VERSION)),
    ]);
    const second = await client.withConnection(record, seed, async (connection) => [
      await connection.keyListPush(forgeNext(seed, base, base.version + MAX_VERSION_STEP + 1)),
      await connection.keyListPush(forgeNext(seed, base, base.version + MAX_VERSION_STEP)),
    ]);
    expect(outcomes[0]).toEqual({ status: 'failed', reason: 'CK_KEYLIST_VERSION_JUMP' });
    expect(second[0]).toEqual({ status: 'failed', reason: 'CK_KEYLIST_VERSION_JUMP' });
    expect(second[1]).toEqual({ status: 'ok', value: base.version + MAX_VERSION_STEP });
    expect((await carState()).keyListVersion).toBe(base.version + MAX_VERSION_STEP);

    // The real owner still revokes the friend (the CLI rebases on the car's newer list).
    const friend = json(await carkey('friend', ['whoami', '--json']));
    const revoked = await carkey('owner', ['revoke', String(friend.publicKey)]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await carkey('friend', ['unlock'])).code).toBe(ExitCode.denied);

    // Factory reset by physical presence: long press, then a registered keycard.
    await hardwareCtl(rig, 'long-press');
    await hardwareCtl(rig, 'tap-keycard', 'card-1');
    await waitForDisplay('Factory reset');
    const afterReset = await carState();
    expect([afterReset.paired, afterReset.keyListEpoch, afterReset.keyListVersion]).toEqual([false, 1, 0]);

    // The old owner is refused with a clear refusal (found by signature: the advertising secret changed).
    const oldOwner = await carkey('owner', ['unlock', '--json']);
    expect(oldOwner.code, oldOwner.stderr).toBe(ExitCode.denied);

    // A new phone pairs: the car states epoch 1 / version 1 in PAIR_READY, nothing is refused after the button.
    const repaired = await pairOwner('new-owner', 'button');
    expect(repaired.code, repaired.stderr).toBe(0);
    // The pairing flag is gone from the air as soon as the pairing is confirmed.
    const scanned = json(await carkey('new-owner', ['scan', '--timeout', '700', '--json'])) as { cars: { pairing: boolean; vehicle: string | null }[] };
    expect(scanned.cars.map((car) => [car.vehicle, car.pairing])).toEqual([['new-owner', false]]);
    expect((await carkey('new-owner', ['unlock'])).code).toBe(0);
    const state = await carState();
    expect([state.paired, state.keyListEpoch, state.keyListVersion]).toEqual([true, 1, 1]);

    // Old phone and old grant stay refused; the old owner's pre-reset list cannot be replayed.
    expect((await carkey('owner', ['unlock'])).code).toBe(ExitCode.denied);
    expect((await carkey('friend', ['unlock'])).code).toBe(ExitCode.denied);
    const fresh = await libraryOwner('new-owner');
    const newRecord = fresh.store.selectVehicle(undefined);
    const replay = await fresh.client.withConnection(newRecord, fresh.seed, (connection) => connection.keyListPush(forgeNext(seed, base, 2)));
    expect(replay).toEqual({ status: 'failed', reason: 'CK_KEYLIST_WRONG_EPOCH' });
  }, 120_000);
});

describe('one pairing at a time', () => {
  it('a second phone is told "busy"; a short press does not confirm the first; the window frees when it leaves', async () => {
    rig = await startRig();
    await startDaemonProcess(rig);
    expect((await carkey('owner', ['keygen'])).code).toBe(0);
    await hardwareCtl(rig, 'press-button');

    // Mallory, in range, reveals first and asks to be confirmed.
    const mallorySeed = random(32);
    const central = createSimCentral({ socketPath: rig.radio, name: 'mallory' });
    try {
      const scan = await central.scan({ timeoutMs: 5000, accept: () => true });
      if (scan.match === undefined) throw new Error('car not found');
      const link = await central.connect(scan.match, { timeoutMs: 5000, mtu: 247 });
      const channel = new MessageChannel(centralChunks(link));
      const exchange = async (message: Uint8Array, timeoutMs = 5000): Promise<Uint8Array> => {
        await channel.send(message);
        return channel.next(timeoutMs);
      };
      const pairing = new PhonePairing({ crypto, random, identitySeed: mallorySeed });
      const challenge = pairing.onChallenge(await exchange(pairing.start()));
      if (!challenge.ok) throw challenge.error;
      const reveal = pairing.reveal();
      if (!reveal.ok) throw reveal.error;
      const ready = pairing.onReady(await exchange(reveal.value.message));
      if (!ready.ok) throw ready.error;
      expect(ready.value).toMatchObject({ status: 'ready', epoch: 0, requiredVersion: 1 });
      const list = signKeyList(crypto, mallorySeed, {
        vehicleId: vehicleIdOf(crypto, challenge.value.carIdentityKey),
        version: 1,
        issuedAt: Date.now(),
        owners: [crypto.publicKeyFromSeed(mallorySeed)],
        revokedSerials: [],
        revokedKeys: [],
      });
      const malloryAnswer = exchange(pairing.confirm(list.bytes, 'owner-phone'), 4000).then(
        (bytes) => pairing.onResult(bytes),
        (error: unknown) => ({ ok: false as const, error }),
      );

      // The owner tries to pair and is told the car is busy, before any code comparison.
      const owner = await carkey('owner', ['pair', '--yes', '--json']);
      expect(owner.code, owner.stderr).toBe(ExitCode.denied);
      expect(owner.stderr + owner.stdout).toContain('CK_PAIRING_BUSY');

      // The car shows the code and key id it is asked to confirm; the natural short press does not confirm it.
      await waitForDisplay(CONFIRM_PROMPT);
      expect(await display()).toContain(`Code ${reveal.value.code}`);
      await hardwareCtl(rig, 'press-button');
      const outcome = await malloryAnswer;
      expect(outcome.ok).toBe(false);
      expect((await carState()).paired).toBe(false);
      await link.disconnect();
    } finally {
      await central.close();
    }

    // Mallory gone: the owner pairs (the window is still open).
    const pairing = carkey('owner', ['pair', '--yes']);
    await waitForDisplay(CONFIRM_PROMPT);
    await hardwareCtl(rig, 'long-press');
    const paired = await pairing;
    expect(paired.code, paired.stderr).toBe(0);
    expect((await carkey('owner', ['unlock'])).code).toBe(0);
  }, 90_000);
});

describe('trusted time', () => {
  it.runIf(process.env.CARKEY_REQUIRE_FAKETIME === '1' && FAKETIME_LIB === undefined)('libfaketime is installed (scripts/install.sh installs the faketime package)', () => {
    expect(FAKETIME_LIB, 'apt-get install faketime').toBeDefined();
  });

  it.runIf(FAKETIME_LIB !== undefined)('a car clock jumping ±20 years and far-future signed lists do not expire a 2-day grant; a phone with a clock years off finds its car', async () => {
    rig = await startRig();
    const offsetFile = join(rig.dir, 'faketime');
    writeFileSync(offsetFile, '+0');
    const faketime = (lib: string): NodeJS.ProcessEnv => ({ LD_PRELOAD: lib, FAKETIME_TIMESTAMP_FILE: offsetFile, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' });
    const lib = FAKETIME_LIB ?? '';
    await startDaemonProcess(rig, { env: faketime(lib) });
    for (const home of ['owner', 'friend']) expect((await carkey(home, ['keygen'])).code).toBe(0);
    expect((await pairOwner('owner', 'button')).code).toBe(0);
    await share('owner', 'friend', '+2d');
    expect((await carkey('friend', ['unlock'])).code).toBe(0);

    const trusted = async (): Promise<number> => Date.parse(String((await carState()).trustedTime));
    for (const offset of ['+20y', '-20y']) {
      writeFileSync(offsetFile, offset);
      await sleep(1500);
      const friend = await carkey('friend', ['unlock']);
      expect(friend.code, `${offset}: ${friend.stderr}`).toBe(0);
      expect(Math.abs((await trusted()) - Date.now())).toBeLessThan(60_000);
    }

    // A restart while the system clock is 20 years ahead: the jump is not persisted, nor taken at boot.
    writeFileSync(offsetFile, '+20y');
    await stopProgram(rig.daemon);
    await startDaemonProcess(rig, { env: faketime(lib) });
    expect((await carkey('friend', ['unlock'])).code).toBe(0);
    expect(Math.abs((await trusted()) - Date.now())).toBeLessThan(60_000);
    writeFileSync(offsetFile, '+0');

    // A run of far-future signed lists (each a year further) lifts the car's time by at most a day.
    const { client, store, seed } = await libraryOwner('owner');
    const record = store.selectVehicle(undefined);
    const base = record.keyList;
    if (base === undefined) throw new Error('owner has no key list');
    await client.withConnection(record, seed, async (connection) => {
      for (let i = 1; i <= 5; i++) {
        const pushed = await connection.keyListPush(forgeNext(seed, base, base.version + i, Date.now() + i * 366 * DAY));
        expect(pushed.status).toBe('ok');
      }
    });
    expect((await trusted()) - Date.now()).toBeLessThanOrEqual(DAY + 60_000);
    expect((await carkey('friend', ['unlock'])).code).toBe(0);

    // A phone whose own clock is 3 years ahead does not match the rotating id, but finds the car by its signature.
    writeFileSync(offsetFile, '+3y');
    const r = requireRig();
    const ahead = await runCli('src/cli/carkey.js', ['--home', join(r.dir, 'owner'), '--transport', 'sim', '--radio', r.radio, 'unlock'], { env: faketime(lib) });
    writeFileSync(offsetFile, '+0');
    expect(ahead.code, ahead.stderr).toBe(0);
    expect(ahead.stderr).toContain('by its signature');
  }, 120_000);
});
