// The compiled `carkey` CLI over the real simulated radio broker, against the
// in-test car (test/phone/fake-car.ts, core VehicleSession): pair, unlock and
// friends, share/accept/use, revoke delivered at once and queued, audit
// --verify, keys --fetch, scan. The full system with carkeyd is covered by
// the end-to-end tests.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCrypto } from '../../src/core/crypto/index.js';
import { fixedSeed } from '../helpers/core-fixtures.js';
import { startBroker, type BrokerProcess } from '../radio/broker-process.js';
import { killAllCarkey, requireBuiltCarkey, runCarkey, type CarkeyRun } from '../phone/carkey-run.js';
import { FakeCar } from '../phone/fake-car.js';

const crypto = createCrypto('node');
let broker: BrokerProcess;
let car: FakeCar;
let dir: string;

beforeAll(async () => {
  requireBuiltCarkey();
  broker = await startBroker();
  dir = mkdtempSync(join(tmpdir(), 'ck-cli-online-'));
  car = await FakeCar.start({
    crypto,
    socketPath: broker.socketPath,
    name: 'cli-car',
    seed: fixedSeed('cli car'),
    advSecret: new Uint8Array(32).fill(0x5a),
    vehicleName: 'Blue Van',
    pin: '2468',
  });
});

afterEach(async () => {
  await killAllCarkey();
});

afterAll(async () => {
  await car.stop();
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
});

function carkey(home: string, ...args: string[]): Promise<CarkeyRun> {
  return runCarkey(['--home', home, '--transport', 'sim', '--radio', broker.socketPath, '--timeout', '5000', '--json', ...args]);
}

function ok(run: CarkeyRun): Record<string, unknown> {
  if (run.code !== 0) throw new Error(`exit ${String(run.code)}\nstdout: ${run.stdout}\nstderr: ${run.stderr}\nbroker running: ${String(broker.process.running)} exit: ${JSON.stringify(broker.process.child.exitCode)} signal: ${String(broker.process.child.signalCode)} stderr: ${broker.process.stderr}`);
  return run.json();
}

describe('carkey over the simulated radio', () => {
  it('pair with the car nearby but not in pairing mode says so (not "move closer")', async () => {
    const home = join(dir, 'early');
    ok(await carkey(home, 'keygen'));
    const json = await carkey(home, 'pair', '--yes', '--timeout', '1500');
    expect(json.code).toBe(3);
    expect(json.json().error).toMatchObject({ code: 'CK_PAIRING_NOT_ACTIVE', details: { carsNearby: 1 } });
    const text = await runCarkey(['--home', home, '--transport', 'sim', '--radio', broker.socketPath, '--timeout', '1500', 'pair', '--yes']);
    expect(text.code).toBe(3);
    expect(text.stderr).toContain('a car is nearby but not in pairing mode');
    expect(text.stderr).toContain('next: press its pairing button (or keycard + button');
    expect(text.stderr).not.toContain('move closer');
  });

  it('pairs, drives the car, shares and revokes a key, and verifies the audit log', async () => {
    const owner = join(dir, 'owner');
    const friend = join(dir, 'friend');
    ok(await carkey(owner, 'keygen'));
    ok(await carkey(friend, 'keygen'));

    // A code that differs from the car's stops pairing; nothing is stored.
    await car.setPairing(true);
    const wrong = await carkey(owner, 'pair', '--code', '000000');
    if (car.pairCodes.at(-1) !== '000000') {
      expect(wrong.code).toBe(3);
      expect((wrong.json().error as Record<string, unknown>).code).toBe('CK_PROTO_PAIRING_NOT_CONFIRMED');
      expect(car.keyList).toBeUndefined();
    }

    const paired = ok(await carkey(owner, 'pair', '--yes', '--name', 'van', '--phone-name', 'owner laptop'));
    await car.setPairing(false);
    expect(paired).toMatchObject({ vehicle: 'van', vehicleName: 'Blue Van', keyListVersion: 1, code: car.pairCodes.at(-1) });
    expect(car.keyList?.version).toBe(1);

    const scan = ok(await carkey(owner, '--timeout', '1500', 'scan'));
    expect(scan.cars).toEqual([expect.objectContaining({ address: 'cli-car', vehicle: 'van', pairing: false })]);

    const unlocked = ok(await carkey(owner, 'unlock'));
    expect(unlocked).toMatchObject({ vehicle: 'van', command: 'unlock', delivery: { delivered: null, queued: 0, failure: null } });
    const status = ok(await carkey(owner, 'status'));
    expect(status.status).toMatchObject({ locked: [], drive: 'off', trunk: 'closed', keyListVersion: 1 });
    const noPin = await carkey(owner, 'start');
    expect(noPin.code).toBe(3);
    expect(noPin.json().error).toMatchObject({ code: 'CK_DENIED', hint: expect.stringContaining('--pin') as unknown });
    ok(await carkey(owner, 'start', '--pin', '2468'));
    ok(await carkey(owner, 'lock'));
    expect(car.commands).toEqual(['unlock', 'status', 'start', 'lock']);

    // Share with the friend, who can unlock but not open the trunk (the phone knows before asking the car).
    const friendKey = ok(await carkey(friend, 'whoami')).publicKey as string;
    const shared = ok(await carkey(owner, 'share', '--role', 'guest', '--until', '+1d', '--to', friendKey, '--permissions', 'unlock,lock'));
    ok(await carkey(friend, 'accept', shared.share as string));
    ok(await carkey(friend, 'unlock'));
    const trunk = await carkey(friend, 'trunk');
    expect(trunk.code).toBe(3);
    expect(trunk.json().error).toMatchObject({ code: 'CK_PHONE_NO_CREDENTIAL', message: expect.stringContaining('trunk') as unknown });

    // Revoke while the car is in range: in force at once; the friend is refused.
    const revoked = ok(await carkey(owner, 'revoke', shared.serial as string));
    expect(revoked).toMatchObject({ delivered: true, queued: false, version: 2, inForce: 2 });
    expect(car.keyList?.version).toBe(2);
    const refused = await carkey(friend, 'unlock');
    expect(refused.code).toBe(3);
    expect((refused.json().error as Record<string, unknown>).code).toBe('CK_PROTO_REFUSED');

    // Revoke offline: delivered first thing by the next command.
    ok(await carkey(owner, 'revoke', friendKey, '--offline'));
    expect(car.keyList?.version).toBe(2);
    const next = ok(await carkey(owner, 'status'));
    expect(next.delivery).toEqual({ delivered: 3, queued: 0, failure: null });
    expect(car.keyList?.version).toBe(3);

    const keys = ok(await carkey(owner, 'keys', '--fetch'));
    expect(keys).toMatchObject({ fetched: true, vehicles: [{ vehicle: 'van', keyList: { version: 3, revokedKeys: [{ publicKey: friendKey }] }, pending: [] }] });

    const audit = ok(await carkey(owner, 'audit', '--verify'));
    const verified = audit.verified as Record<string, number>;
    expect(verified.entries).toBe(car.audit.length);
    expect(verified.checkpoints).toBeGreaterThan(0);
    expect((audit.entries as unknown[]).length).toBe(car.audit.length);
    const partial = ok(await carkey(owner, 'audit', '--from', '3', '--limit', '2'));
    expect((partial.entries as { seq: number }[]).map((entry) => entry.seq)).toEqual([3, 4]);
    // --limit with --verify: the whole chain is verified, N entries are shown.
    const limited = ok(await carkey(owner, 'audit', '--verify', '--limit', '2'));
    expect((limited.verified as Record<string, number>).entries).toBe(car.audit.length);
    expect((limited.entries as { seq: number }[]).map((entry) => entry.seq)).toEqual([1, 2]);
    // --tail N: the newest N, newest first (with and without --verify).
    const tail = ok(await carkey(owner, 'audit', '--tail', '3'));
    const newest = (tail.entries as { seq: number }[])[0]?.seq ?? 0;
    // The newest when asked: the car may audit the read itself after answering (tail.last is then one more).
    expect(newest).toBeGreaterThanOrEqual(Number(tail.last) - 1);
    expect((tail.entries as { seq: number }[]).map((entry) => entry.seq)).toEqual([newest, newest - 1, newest - 2]);
    expect(tail.order).toBe('newest-first');
    const tailVerified = ok(await carkey(owner, 'audit', '--tail', '2', '--verify'));
    const verifiedCount = (tailVerified.verified as Record<string, number>).entries ?? 0;
    expect(verifiedCount).toBeGreaterThan(newest - 1);
    expect((tailVerified.entries as { seq: number }[]).map((entry) => entry.seq)).toEqual([verifiedCount, verifiedCount - 1]);
    expect((await carkey(owner, 'audit', '--tail', '2', '--limit', '1')).code).toBe(2);
    const friendAudit = await carkey(friend, 'audit');
    expect(friendAudit.code).toBe(3);
    expect((friendAudit.json().error as Record<string, unknown>).code).toBe('CK_PHONE_NOT_OWNER');
  });
});
