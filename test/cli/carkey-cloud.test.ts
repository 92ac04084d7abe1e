/**
 * The `carkey` cloud commands as a user types them, through real processes:
 * the sim radio, the hardware sim and carkeyd (firmware-sim/rig.ts), the
 * compiled CLI, and `carkey-cloud serve` (SQLite in the rig's temp dir).
 *
 * One story in order: pair over BLE and register the car with the cloud
 * (statement forwarded by the owner); share through the mailbox, the friend
 * accepts from the inbox and unlocks over Bluetooth; the car is restarted with
 * its cloud section and remote commands get car-signed results (lock, status;
 * unlock refused by the car's remote policy); a revocation published with
 * `carkey sync` reaches the parked car with no phone near it; the cloud's
 * audit copy verifies against the pinned car key; a cloud that hangs costs
 * `carkey unlock` nothing (it is never contacted); with the cloud stopped,
 * cloud commands exit 6 with a clear message while Bluetooth keeps working.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hardwareCtl, startDaemonProcess, startProgram, startRig, stopProgram, stopRig, type CarRig, type Started } from '../../firmware-sim/rig.js';
import { killAllCarkey, requireBuiltCarkey, runCarkey, type CarkeyRun } from '../phone/carkey-run.js';

let rig: CarRig;
let cloudProc: Started | undefined;
let cloudUrl = '';
let friendKey = '';
const FAKETIME_LIB = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1'].find((path) => existsSync(path));

/** `carkey --json ARGS` as HOME. */
function carkey(home: string, ...args: string[]): Promise<CarkeyRun> {
  return runCarkey(['--home', join(rig.dir, home), '--transport', 'sim', '--radio', rig.radio, '--timeout', '5000', '--json', ...args]);
}

/** `carkey ARGS` as HOME, human output. */
function carkeyText(home: string, ...args: string[]): Promise<CarkeyRun> {
  return runCarkey(['--home', join(rig.dir, home), '--transport', 'sim', '--radio', rig.radio, '--timeout', '5000', ...args]);
}

function ok(run: CarkeyRun): Record<string, unknown> {
  if (run.code !== 0) throw new Error(`exit ${String(run.code)}\nstdout: ${run.stdout}\nstderr: ${run.stderr}\ncarkeyd: ${rig.daemon?.stderr().slice(-3000) ?? ''}`);
  return run.json();
}

function errorOf(run: CarkeyRun): Record<string, unknown> {
  return run.json().error as Record<string, unknown>;
}

async function hwLocks(): Promise<string[]> {
  const out = await hardwareCtl(rig, 'state', '--json');
  return Object.values((JSON.parse(out.stdout) as { locks: Record<string, string> }).locks);
}

async function carState(): Promise<Record<string, unknown>> {
  return (await (await fetch(`${String(rig.daemon?.ready.status)}/state`)).json()) as Record<string, unknown>;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function waitForDisplay(text: string): Promise<void> {
  await until(`the display to show "${text}"`, async () => {
    const out = await hardwareCtl(rig, 'state', '--json');
    return (JSON.parse(out.stdout) as { display: string[] }).display.join(' ').includes(text) ? true : undefined;
  });
}

async function restartCarWithCloud(): Promise<void> {
  await stopProgram(rig.daemon);
  const config = JSON.parse(readFileSync(rig.configPath, 'utf8')) as Record<string, unknown>;
  config.cloud = { url: cloudUrl, longPollSeconds: 5, requestTimeoutMs: 3000, auditUploadIntervalMs: 1000, remote: { lock: true, status: true } };
  writeFileSync(rig.configPath, JSON.stringify(config));
  await startDaemonProcess(rig);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

describe('carkey through carkey-cloud (real processes)', () => {
  beforeAll(async () => {
    requireBuiltCarkey();
    rig = await startRig({ config: { auditCheckpointEvery: 4 } });
    cloudProc = await startProgram('src/cli/carkey-cloud.js', ['serve', '--port', '0', '--host', '127.0.0.1', '--data', join(rig.dir, 'cloud-data'), '--log-level', 'warn', '--faults'], { env: { DATABASE_URL: '' } });
    cloudUrl = String(cloudProc.ready.url);
    await startDaemonProcess(rig);
    for (const home of ['owner', 'friend']) ok(await carkey(home, 'keygen'));
    friendKey = String(ok(await carkey('friend', 'whoami', '--json')).publicKey);
  }, 60_000);

  afterEach(async () => {
    await killAllCarkey();
  });

  afterAll(async () => {
    await stopProgram(cloudProc);
    await stopRig(rig);
  });

  it('pairs over Bluetooth and registers the car with the cloud by forwarding its signed statement', async () => {
    await hardwareCtl(rig, 'press-button');
    const pairing = carkey('owner', 'pair', '--yes', '--json');
    await waitForDisplay('Hold button');
    await hardwareCtl(rig, 'long-press');
    ok(await pairing);

    // No cloud configured yet: a usage error that says how to configure one.
    const none = await carkey('owner', 'inbox', '--json');
    expect(none.code).toBe(2);
    expect(errorOf(none)).toMatchObject({ code: 'CK_USAGE', hint: expect.stringContaining('carkey cloud use') as unknown });

    const registered = ok(await carkey('owner', '--cloud', cloudUrl, 'cloud', 'register', '--json'));
    expect(registered).toMatchObject({ vehicle: 'Test Car', epoch: 0, version: 1, published: null, queued: 0 });

    for (const home of ['owner', 'friend']) ok(await carkey(home, 'cloud', 'use', cloudUrl, '--json'));
    const status = ok(await carkey('owner', 'cloud', 'status', '--json'));
    expect(status).toMatchObject({ cloud: cloudUrl, source: 'config', reachable: true });
    expect(Math.abs(Number(status.skewMs))).toBeLessThan(5000);
  });

  it('shares through the cloud mailbox; the friend accepts from the inbox and unlocks over Bluetooth', async () => {
    const shared = ok(await carkey('owner', 'share', '--role', 'guest', '--until', '+1d', '--to', friendKey, '--via-cloud', '--json'));
    const mailbox = shared.mailbox as { id: string; expiresAt: string };
    expect(mailbox.id).toMatch(/^[0-9a-f]{32}$/);
    expect(mailbox.expiresAt).toBe(shared.notAfter);

    const inbox = ok(await carkey('friend', 'inbox', '--json'));
    const ownerKeyId = String(ok(await carkey('owner', 'whoami', '--json')).keyId);
    expect(inbox.items).toEqual([
      expect.objectContaining({ id: mailbox.id, usable: true, senderKeyId: ownerKeyId, share: expect.objectContaining({ vehicleName: 'Test Car', role: 'guest', serial: shared.serial, state: 'valid', stored: false }) as unknown }),
    ]);
    const human = await carkeyText('friend', 'inbox');
    expect(human.stdout).toContain(mailbox.id);
    expect(human.stdout).toContain('Test Car: guest');

    const accepted = ok(await carkey('friend', 'accept', '--from-cloud', '--json'));
    expect(accepted.accepted).toEqual([expect.objectContaining({ mailboxId: mailbox.id, acknowledged: true, serial: shared.serial, role: 'guest' })]);
    expect(ok(await carkey('friend', 'inbox', '--json')).items).toEqual([]);

    ok(await carkey('owner', 'lock'));
    ok(await carkey('friend', 'unlock'));
    expect(await hwLocks()).toEqual(['unlocked', 'unlocked', 'unlocked', 'unlocked']);
  });

  it('sends remote commands through the cloud and reports the car-signed results', async () => {
    await restartCarWithCloud();
    await until('the car to register itself', async () => ((await carState()).sync as Record<string, unknown> | undefined)?.registered === true || undefined);

    const started = performance.now();
    const locked = ok(await carkey('owner', 'remote', 'lock', '--wait', '20', '--json'));
    const roundTrip = performance.now() - started;
    expect(locked).toMatchObject({ vehicle: 'Test Car', command: 'lock', via: 'cloud', commandId: expect.stringMatching(/^[0-9a-f]{32}$/) as unknown });
    expect(await hwLocks()).toEqual(['locked', 'locked', 'locked', 'locked']);
    console.log(`carkey remote lock (process start to verified result, sim car long-polling): ${Math.round(roundTrip)} ms`);

    const status = ok(await carkey('owner', 'remote', 'status', '--wait', '20', '--json'));
    expect(status.status).toMatchObject({ doorCount: 4, drive: 'off' });
    expect((status.status as { locked: string[] }).locked).toHaveLength(4);

    // The car's remote policy keeps unlock off unless its owner enables it: the car says no, with its category.
    const unlock = await carkey('owner', 'remote', 'unlock', '--wait', '20', '--json');
    expect(unlock.code, unlock.stderr).toBe(3);
    expect(errorOf(unlock)).toMatchObject({ code: 'CK_DENIED', details: { command: 'unlock', category: 'not-permitted' } });
    expect(await hwLocks()).toEqual(['locked', 'locked', 'locked', 'locked']);

    // The friend's guest grant allows lock; it does not allow trunk (refused on the phone, nothing is sent).
    ok(await carkey('friend', 'remote', 'lock', '--wait', '20', '--json'));
    const trunk = await carkey('friend', 'remote', 'trunk', '--json');
    expect(trunk.code).toBe(3);
    expect(errorOf(trunk).code).toBe('CK_PHONE_NO_CREDENTIAL');
    const human = await carkeyText('owner', 'remote', 'lock', '--wait', '20');
    expect(human.stdout).toContain('locked Test Car through the cloud');
    expect(human.stderr).toContain('waiting for the car');
  });

  it('publishes a revocation with `carkey sync`; the parked car applies it with no phone near it', async () => {
    const queued = ok(await carkey('owner', 'revoke', friendKey, '--offline', '--json'));
    expect(queued).toMatchObject({ version: 2, queued: true });
    const synced = ok(await carkey('owner', 'sync', '--json'));
    expect(synced.vehicles).toEqual([expect.objectContaining({ vehicle: 'Test Car', published: 2, queued: 1 })]);
    const started = Date.now();
    await until('the car to apply key list version 2', async () => ((await carState()).keyListVersion === 2 ? true : undefined), 10_000);
    console.log(`revocation via the cloud applied by the car ${Date.now() - started} ms after \`carkey sync\` returned`);
    const refused = await carkey('friend', 'unlock', '--json');
    expect(refused.code).toBe(3);
    expect(errorOf(refused).code).toBe('CK_PROTO_REFUSED');
    // The next Bluetooth connection of the owner confirms it and empties the queue.
    expect(ok(await carkey('owner', 'status', '--json')).delivery).toMatchObject({ queued: 0 });
  });

  it('verifies the audit copy in the cloud against the pinned car key, entry for entry the car’s own log', async () => {
    const uploaded = await until('the car to upload its audit log', async () => {
      const state = await carState();
      const seq = (state.sync as Record<string, unknown> | undefined)?.auditUploadedSeq;
      return typeof seq === 'number' && seq >= 8 ? seq : undefined;
    });
    const fromCloud = ok(await carkey('owner', 'audit', '--from-cloud', '--verify', '--json'));
    const verified = fromCloud.verified as { entries: number; checkpoints: number };
    expect(fromCloud.source).toBe('cloud');
    expect(verified.entries).toBeGreaterThanOrEqual(uploaded);
    expect(verified.checkpoints).toBeGreaterThanOrEqual(1);
    const fromCar = ok(await carkey('owner', 'audit', '--verify', '--json'));
    const cloudEntries = fromCloud.entries as { seq: number; kind: string; time: string }[];
    expect((fromCar.entries as unknown[]).slice(0, cloudEntries.length)).toEqual(cloudEntries.map((entry) => expect.objectContaining(entry) as unknown));
    const partial = ok(await carkey('owner', 'audit', '--from-cloud', '--from', '2', '--limit', '3', '--json'));
    expect((partial.entries as { seq: number }[]).map((entry) => entry.seq)).toEqual([2, 3, 4]);
    const friend = await carkey('friend', 'audit', '--from-cloud', '--json');
    expect(friend.code).toBe(3);
    expect(errorOf(friend).code).toBe('CK_PHONE_NOT_OWNER');
  });

  it('cloud failures and refusals exit with their codes and a next: hint; Bluetooth is unaffected', async () => {
    const fault = async (route: string, mode: string): Promise<void> => {
      const response = await fetch(`${cloudUrl}/_faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ route, mode }) });
      expect(response.status).toBe(200);
    };
    try {
      await fault('mailbox', '500');
      let run = await carkey('friend', 'inbox');
      expect(run.code).toBe(6);
      expect(errorOf(run)).toMatchObject({ code: 'CK_CLOUD_SERVER_ERROR', hint: expect.stringContaining('problem of its own') as unknown });
      await fault('mailbox', 'malformed');
      run = await carkey('friend', 'inbox');
      expect(run.code).toBe(6);
      expect(errorOf(run)).toMatchObject({ code: 'CK_CLOUD_BAD_RESPONSE', hint: expect.stringContaining('nothing from that answer was used') as unknown });
      await fault('mailbox', 'off');
      await fault('*', 'hang');
      const started = performance.now();
      run = await carkey('friend', '--timeout', '1000', 'inbox');
      expect(run.code, run.stdout).toBe(5);
      expect(errorOf(run)).toMatchObject({ code: 'CK_CLOUD_TIMEOUT', hint: expect.stringContaining('did not answer in time') as unknown });
      expect(performance.now() - started).toBeLessThan(10_000);
      // Every route of the cloud hangs, and the car itself syncs with it: Bluetooth does not care.
      ok(await carkey('owner', 'unlock'));
      ok(await carkey('owner', 'lock'));
    } finally {
      await fault('*', 'off');
    }
    if (FAKETIME_LIB !== undefined) {
      const skewed = await runCarkey(['--home', join(rig.dir, 'friend'), '--json', 'inbox'], { LD_PRELOAD: FAKETIME_LIB, FAKETIME: '+10m', FAKETIME_DONT_FAKE_MONOTONIC: '1' });
      expect(skewed.code, skewed.stderr).toBe(3);
      expect(errorOf(skewed)).toMatchObject({ code: 'CK_CLOUD_AUTH_STALE', hint: expect.stringContaining('clock') as unknown });
    }
  });

  it('never contacts the cloud for Bluetooth commands: a hanging cloud costs `unlock` nothing', async () => {
    const sockets = new Set<Socket>();
    let connections = 0;
    const hanging: Server = createServer((socket) => {
      connections++;
      sockets.add(socket);
    });
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const hangUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}`;
    const unlock = (env: Record<string, string>, ...extra: string[]): Promise<CarkeyRun> =>
      runCarkey(['--home', join(rig.dir, 'owner'), ...extra, '--transport', 'sim', '--radio', rig.radio, '--timeout', '5000', 'unlock', '--json'], env);
    try {
      const none: number[] = [];
      const hung: number[] = [];
      const withoutCloud = async (): Promise<void> => {
        // No cloud anywhere: no flag, no environment, no stored default.
        ok(await carkey('owner', 'cloud', 'use', '--clear'));
        const started = performance.now();
        ok(await unlock({}));
        none.push(performance.now() - started);
      };
      const withHangingCloud = async (): Promise<void> => {
        // Every way of naming a cloud points at the hanging server.
        ok(await carkey('owner', 'cloud', 'use', hangUrl));
        const started = performance.now();
        ok(await unlock({ CARKEY_CLOUD: hangUrl }, '--cloud', hangUrl));
        hung.push(performance.now() - started);
      };
      for (let round = 0; round < 4; round++) {
        // alternate the order, so neither variant always runs right after the other
        if (round % 2 === 0) {
          await withoutCloud();
          await withHangingCloud();
        } else {
          await withHangingCloud();
          await withoutCloud();
        }
      }
      ok(await carkey('owner', 'cloud', 'use', cloudUrl));
      console.log(`carkey unlock, no cloud: ${none.map(Math.round).join(', ')} ms (median ${Math.round(median(none))}); with --cloud and CARKEY_CLOUD pointing at a server that never answers: ${hung.map(Math.round).join(', ')} ms (median ${Math.round(median(hung))})`);
      expect(connections).toBe(0);
      expect(median(hung)).toBeLessThan(median(none) + 3000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => hanging.close(() => resolve()));
    }
  }, 120_000);

  it('a car that is offline: the remote command times out naming its expiry; with the cloud stopped, cloud commands exit 6 and Bluetooth still works', async () => {
    await stopProgram(rig.daemon);
    const offline = await carkey('owner', 'remote', 'lock', '--wait', '2', '--expires', '10');
    expect(offline.code, offline.stderr).toBe(5);
    expect(errorOf(offline)).toMatchObject({ code: 'CK_CLOUD_TIMEOUT', details: { expiresAt: expect.any(String) as unknown }, hint: expect.stringContaining('the car may be offline') as unknown });
    expect(String(errorOf(offline).hint)).toContain(String((errorOf(offline).details as Record<string, unknown>).expiresAt));

    expect(await stopProgram(cloudProc)).toBe(0);
    await startDaemonProcess(rig);
    for (const args of [['sync'], ['inbox'], ['remote', 'lock', '--wait', '5'], ['audit', '--from-cloud'], ['cloud', 'status']]) {
      const run = await carkey('owner', ...args, '--json');
      expect(run.code, `${args.join(' ')}\n${run.stderr}`).toBe(6);
      expect(errorOf(run)).toMatchObject({ code: 'CK_CLOUD_UNAVAILABLE', hint: expect.stringContaining('work without the cloud') as unknown });
      expect(run.stderr).toContain('the cloud could not be reached');
    }
    const shared = await carkey('owner', 'share', '--role', 'guest', '--until', '+1d', '--to', friendKey, '--via-cloud', '--json');
    expect(shared.code).toBe(6);
    expect(String(errorOf(shared).message)).toContain('is recorded on this phone');
    ok(await carkey('owner', 'unlock'));
    expect(await hwLocks()).toEqual(['unlocked', 'unlocked', 'unlocked', 'unlocked']);
    ok(await carkey('owner', 'lock'));
  });
});
