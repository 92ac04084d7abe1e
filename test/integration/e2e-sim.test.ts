/**
 * End to end, as a user would type it: the real `carkey` CLI against a real
 * `carkeyd`, the simulated body controller and the simulated radio, each its
 * own process, talking over UNIX sockets. One car, one story in order:
 * pairing → unlock/lock/start/trunk → sharing → revocation → deny paths →
 * restart with state kept → audit.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex } from '../../src/core/bytes.js';
import { signGrant } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { ExitCode } from '../../src/core/errors.js';
import { Permission } from '../../src/core/roles.js';
import { decodeShare, encodeShare } from '../../src/phone/share.js';
import { hardwareCtl, runCli, startDaemonProcess, startRig, stopProgram, stopRig, type CarRig, type CliResult } from '../../firmware-sim/rig.js';
import { rawRequest } from '../helpers/raw-phone.js';
import { createSimCentral, setLinkProfile } from '../../src/transport/sim.js';

const crypto = createCrypto('node');
let rig: CarRig;

function carkey(home: string, ...args: string[]): Promise<CliResult> {
  return runCli('src/cli/carkey.js', ['--home', join(rig.dir, home), '--transport', 'sim', '--radio', rig.radio, '--quiet', ...args]);
}

async function hwState(): Promise<{ locks: Record<string, string>; drive: string; trunk: string; display: string[]; beeps: number; flashes: number }> {
  const out = await hardwareCtl(rig, 'state', '--json');
  return JSON.parse(out.stdout) as { locks: Record<string, string>; drive: string; trunk: string; display: string[]; beeps: number; flashes: number };
}

function json(result: CliResult): Record<string, unknown> {
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

async function waitForDisplay(text: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await hwState()).display.join(' ').includes(text)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`display never showed "${text}"`);
}

const carKey = (): Uint8Array => fromHex(String(rig.daemon?.ready.vehicleKey)) ?? new Uint8Array(32);

describe('carkey end to end over the simulated radio', () => {
  beforeAll(async () => {
    rig = await startRig({ config: { startPin: '4711' } });
    await startDaemonProcess(rig);
    for (const home of ['owner', 'friend', 'late-friend', 'stranger']) expect((await carkey(home, 'keygen')).code).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await stopRig(rig);
  });

  it('caps the ATT MTU at 256 on the sim radio too (a phone asking for 517 gets 256; protocol.md §4)', async () => {
    const central = createSimCentral({ socketPath: rig.radio, name: 'mtu-probe' });
    try {
      const { match } = await central.scan({ timeoutMs: 5000, accept: (d) => d.address === 'Test-Car' });
      if (match === undefined) throw new Error('the car is not advertising');
      const link = await central.connect(match, { timeoutMs: 5000, mtu: 517 });
      expect(link.mtu()).toBe(256);
      await link.disconnect();
    } finally {
      await central.close();
    }
  });

  it('refuses to pair while the car is not in pairing mode', async () => {
    const result = await carkey('owner', 'pair', '--yes', '--timeout', '1500');
    // The car is heard but not in pairing mode: say that (exit 3), not "not found, move closer".
    expect(result.code).toBe(ExitCode.denied);
    expect(result.stderr).toContain('a car is nearby but not in pairing mode');
  });

  it('pairs the first owner after the button press and the code confirmation on the car', async () => {
    await hardwareCtl(rig, 'press-button');
    const pairing = carkey('owner', 'pair', '--yes', '--json');
    await waitForDisplay('Hold button');
    await hardwareCtl(rig, 'long-press');
    const result = await pairing;
    expect(result.code, result.stderr).toBe(0);
    expect(json(result)).toMatchObject({ ok: true });
  });

  it('unlocks, locks, opens the trunk and reports status', async () => {
    expect((await carkey('owner', 'unlock')).code).toBe(0);
    expect(Object.values((await hwState()).locks)).toEqual(['unlocked', 'unlocked', 'unlocked', 'unlocked']);
    expect((await carkey('owner', 'lock')).code).toBe(0);
    expect(Object.values((await hwState()).locks)).toEqual(['locked', 'locked', 'locked', 'locked']);
    expect((await carkey('owner', 'trunk')).code).toBe(0);
    expect((await hwState()).trunk).toBe('open');
    const status = await carkey('owner', 'status', '--json');
    expect(status.code).toBe(0);
    expect(json(status)).toMatchObject({ status: { drive: 'off', trunk: 'open', keyListVersion: 1 } });
  });

  it('honks and flashes on the body controller (their own commands and permission bits)', async () => {
    const before = await hwState();
    const honk = await carkey('owner', 'honk');
    expect(honk.code, honk.stderr).toBe(0);
    expect(honk.stdout).toBe('honked the horn of Test Car\n');
    expect((await carkey('owner', 'flash')).code).toBe(0);
    const after = await hwState();
    expect([after.beeps - before.beeps, after.flashes - before.flashes]).toEqual([1, 1]);
  });

  it('walk-up unlock works only while the phone is close (RSSI from the radio, with hysteresis)', async () => {
    await carkey('owner', 'lock');
    await setLinkProfile(rig.radio, { peripheral: 'Test-Car', rssi: 'fixed:-85' });
    const far = await carkey('owner', 'unlock', '--walk-up');
    expect(far.code, far.stderr).toBe(ExitCode.denied);
    expect(Object.values((await hwState()).locks)).toEqual(['locked', 'locked', 'locked', 'locked']);
    await setLinkProfile(rig.radio, { peripheral: 'Test-Car', rssi: 'fixed:-50' });
    const near = await carkey('owner', 'unlock', '--walk-up');
    expect(near.code, near.stderr).toBe(0);
    expect(Object.values((await hwState()).locks)).toEqual(['unlocked', 'unlocked', 'unlocked', 'unlocked']);
    // The threshold is inclusive (protocol.md §7): RSSI -60 with passiveEnterRssi -60 is near, -61 is not.
    await carkey('owner', 'lock');
    await setLinkProfile(rig.radio, { peripheral: 'Test-Car', rssi: 'fixed:-61' });
    expect((await carkey('owner', 'unlock', '--walk-up')).code).toBe(ExitCode.denied);
    await setLinkProfile(rig.radio, { peripheral: 'Test-Car', rssi: 'fixed:-60' });
    const atThreshold = await carkey('owner', 'unlock', '--walk-up');
    expect(atThreshold.code, atThreshold.stderr).toBe(0);
    await setLinkProfile(rig.radio, { peripheral: 'Test-Car', rssi: 'fixed:-60' });
  });

  it('start needs the PIN: missing and wrong are denied, right starts', async () => {
    expect((await carkey('owner', 'start')).code).toBe(ExitCode.denied);
    expect((await carkey('owner', 'start', '--pin', '1234')).code).toBe(ExitCode.denied);
    expect((await hwState()).drive).toBe('off');
    const ok = await carkey('owner', 'start', '--pin', '4711');
    expect(ok.code, ok.stderr).toBe(0);
    expect((await hwState()).drive).toBe('ready');
  });

  let friendSerial = '';
  let friendGrant: Uint8Array = new Uint8Array(0);

  it('shares a guest key; the friend unlocks but may not open the trunk', async () => {
    const who = json(await carkey('friend', 'whoami', '--json'));
    const share = await carkey('owner', 'share', '--role', 'guest', '--until', '+1d', '--to', String(who.publicKey), '--out', join(rig.dir, 'friend.carkey'), '--json');
    expect(share.code, share.stderr).toBe(0);
    const bundle = decodeShare(crypto, String(json(share).share));
    if (!bundle.ok) throw bundle.error;
    friendSerial = Buffer.from(bundle.value.grant.serial).toString('hex');
    friendGrant = bundle.value.grant.bytes;
    expect((await carkey('friend', 'accept', join(rig.dir, 'friend.carkey'))).code).toBe(0);
    await carkey('owner', 'lock');
    const unlock = await carkey('friend', 'unlock');
    expect(unlock.code, unlock.stderr).toBe(0);
    expect(Object.values((await hwState()).locks)).toContain('unlocked');
    expect((await carkey('friend', 'trunk')).code).toBe(ExitCode.denied);
    // A guest may flash the lights to find the car, not sound the horn.
    expect((await carkey('friend', 'flash')).code).toBe(0);
    const honk = await carkey('friend', 'honk', '--json');
    expect(honk.code).toBe(ExitCode.denied);
    // (the phone knows its grant lacks the honk bit and does not even ask the car)
    expect(json(honk)).toMatchObject({ ok: false, error: { code: 'CK_PHONE_NO_CREDENTIAL' } });
  });

  it('denies an expired grant and a grant held by someone else', async () => {
    const late = json(await carkey('late-friend', 'whoami', '--json'));
    // `carkey share` refuses a window that is over, so the owner's key signs the expired grant directly
    // (same car, epoch and friend as a share the CLI made).
    const fresh = await carkey('owner', 'share', '--role', 'guest', '--until', '+1d', '--to', String(late.publicKey), '--json');
    expect(fresh.code, fresh.stderr).toBe(0);
    const bundle = decodeShare(crypto, String(json(fresh).share));
    if (!bundle.ok) throw bundle.error;
    const ownerFile = JSON.parse(readFileSync(join(rig.dir, 'owner', 'identity.json'), 'utf8')) as { seed: { seed: string } };
    const ownerSeed = fromHex(ownerFile.seed.seed);
    if (ownerSeed === undefined) throw new Error('owner seed');
    const old = bundle.value.grant;
    const expiredGrant = signGrant(crypto, ownerSeed, { vehicleId: old.vehicleId, epoch: old.epoch, serial: new Uint8Array(randomBytes(8)), subject: old.subject, role: 'guest', permissions: old.permissions, notBefore: Date.parse('2024-01-01T00:00:00Z'), notAfter: Date.parse('2024-01-02T00:00:00Z') });
    const expired = encodeShare({ ...bundle.value, grant: expiredGrant });
    expect((await carkey('late-friend', 'accept', expired)).code).toBe(0);
    expect((await carkey('late-friend', 'unlock')).code).toBe(ExitCode.denied);
    // The CLI will not even store a grant made out to someone else...
    expect((await carkey('stranger', 'accept', join(rig.dir, 'friend.carkey'))).code).toBe(ExitCode.badInput);
    // ...and a phone that presents it anyway is refused by the car.
    const outcome = await rawRequest({ crypto, radio: rig.radio, carIdentityKey: carKey(), identitySeed: new Uint8Array(randomBytes(32)), credential: { kind: 'grant', bytes: friendGrant }, command: 'unlock' });
    expect(outcome).toEqual({ kind: 'refused', code: 'CK_PROTO_REFUSED' });
  });

  it('refuses a grant made for another vehicle (generic refusal on the wire)', async () => {
    const issuerSeed = new Uint8Array(randomBytes(32));
    const phoneSeed = new Uint8Array(randomBytes(32));
    const grant = signGrant(crypto, issuerSeed, {
      vehicleId: new Uint8Array(randomBytes(16)),
      serial: new Uint8Array(randomBytes(8)),
      subject: crypto.publicKeyFromSeed(phoneSeed),
      role: 'driver',
      permissions: Permission.unlock,
      notBefore: Date.now() - 60_000,
      notAfter: Date.now() + 86_400_000,
    });
    const outcome = await rawRequest({ crypto, radio: rig.radio, carIdentityKey: carKey(), identitySeed: phoneSeed, credential: { kind: 'grant', bytes: grant.bytes }, command: 'unlock' });
    expect(outcome).toEqual({ kind: 'refused', code: 'CK_PROTO_REFUSED' });
  });

  it('revokes the friend over BLE at once; the friend is then refused', async () => {
    const revoke = await carkey('owner', 'revoke', friendSerial, '--json');
    expect(revoke.code, revoke.stderr).toBe(0);
    // the generic refusal reaches the phone before the car drops the link (not CK_TRANSPORT_DISCONNECTED, exit 6)
    const refused = await carkey('friend', 'unlock', '--json');
    expect(refused.code, refused.stderr).toBe(ExitCode.denied);
    expect(json(refused)).toMatchObject({ ok: false, error: { code: 'CK_PROTO_REFUSED' } });
    const status = json(await carkey('owner', 'status', '--json'));
    expect(status).toMatchObject({ status: { keyListVersion: 2 } });
  });

  it('queues a revocation made offline and delivers it at the next connection', async () => {
    const late = json(await carkey('late-friend', 'whoami', '--json'));
    expect((await carkey('owner', 'revoke', String(late.publicKey), '--offline')).code).toBe(0);
    expect(json(await carkey('owner', 'keys', '--json'))).toMatchObject({});
    const status = await carkey('owner', 'status', '--json');
    expect(status.code).toBe(0);
    expect(json(status)).toMatchObject({ status: { keyListVersion: 3 } });
  });

  it('keeps its state across a restart', async () => {
    expect(await stopProgram(rig.daemon)).toBe(0);
    await startDaemonProcess(rig);
    expect((await carkey('owner', 'unlock')).code).toBe(0);
    expect((await carkey('friend', 'unlock')).code).toBe(ExitCode.denied);
    expect(json(await carkey('owner', 'status', '--json'))).toMatchObject({ status: { keyListVersion: 3 } });
  });

  it('survives SIGKILL right after a key-list change: state kept, audit chain intact', async () => {
    const stranger = json(await carkey('stranger', 'whoami', '--json'));
    const revoke = await carkey('owner', 'revoke', String(stranger.publicKey), '--json');
    expect(revoke.code, revoke.stderr).toBe(0);
    expect(await stopProgram(rig.daemon, 'SIGKILL')).toBe(null);
    const verify = await runCli('src/cli/carkeyd.js', ['audit', 'verify', '--state', rig.stateDir, '--json']);
    expect(verify.code, verify.stderr).toBe(0);
    await startDaemonProcess(rig);
    expect(json(await carkey('owner', 'status', '--json'))).toMatchObject({ status: { keyListVersion: 4 } });
  });

  it('the audit log verifies on the car and from the owner phone over BLE', async () => {
    const local = await runCli('src/cli/carkeyd.js', ['audit', 'verify', '--state', rig.stateDir, '--json']);
    expect(local.code, local.stderr).toBe(0);
    expect(json(local)).toMatchObject({ ok: true });
    expect(Number(json(local).entries)).toBeGreaterThan(10);
    const remote = await carkey('owner', 'audit', '--verify', '--json');
    expect(remote.code, remote.stderr).toBe(0);
    const friend = await carkey('friend', 'audit');
    expect(friend.code).not.toBe(0);
  });

  it('serves health, state and metrics on loopback', async () => {
    const base = String(rig.daemon?.ready.status);
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:/);
    expect(await (await fetch(`${base}/health`)).json()).toEqual({ ok: true });
    const state = (await (await fetch(`${base}/state`)).json()) as Record<string, unknown>;
    expect(state).toMatchObject({ paired: true, keyListVersion: 4 });
    expect(JSON.stringify(state)).not.toMatch(/[0-9a-f]{64}/);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/carkey_decisions_total\{result="allow",reason="none",command="status"\} \d+/);
  });

  it('factory reset needs the long press and the keycard; afterwards old phones cannot even find the car', async () => {
    await hardwareCtl(rig, 'tap-keycard', 'card-1');
    expect((await carkey('owner', 'status')).code).toBe(0);
    await hardwareCtl(rig, 'long-press');
    await hardwareCtl(rig, 'tap-keycard', 'card-1');
    await waitForDisplay('Factory reset');
    const base = String(rig.daemon?.ready.status);
    expect(await (await fetch(`${base}/state`)).json()).toMatchObject({ paired: false });
    // The reset also rotates the advertising secret: old phones no longer recognise the car on the air.
    expect((await carkey('owner', 'unlock', '--timeout', '1500')).code).toBe(ExitCode.notFound);
  });
});
