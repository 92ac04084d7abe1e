/**
 * Remote commands (remote-commands.ts): verified by core, single use by id
 * (durably), decided by the same authorize() as BLE plus the car's remote
 * policy, audited with origin 'cloud', answered with a car-signed result
 * sealed to the phone.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { toHex } from '../../../src/core/bytes.js';
import { verifyRemoteResult, type RemoteResult } from '../../../src/core/cloud-docs.js';
import { signKeyList } from '../../../src/core/credentials.js';
import { DenyCategoryCode, ResultStatus } from '../../../src/core/messages.js';
import { decodeStatus, encodePin } from '../../../src/core/payloads.js';
import { Permission } from '../../../src/core/roles.js';
import { openSealedBox, sealTo } from '../../../src/core/sealed-box.js';
import { CLOUD_DEFAULTS } from '../../../src/vehicle/config.js';
import { answerInterrupted, handleRemoteCommand, type RemoteContext } from '../../../src/vehicle/sync/remote-commands.js';
import { SyncDb } from '../../../src/vehicle/sync/sync-db.js';
import { crypto, guestGrant, openCar, person, random, remoteCommand, removeCar, silent, type Person, type SentCommand, type TestCar } from './car-fixture.js';

let car: TestCar | undefined;
let db: SyncDb | undefined;
afterEach(() => {
  db?.close();
  db = undefined;
  if (car !== undefined) removeCar(car);
  car = undefined;
});

function setup(options: { remote?: Partial<RemoteContext['remote']>; startPin?: string; outboxMax?: number } = {}): { car: TestCar; context: RemoteContext } {
  car = openCar();
  db = SyncDb.open(car.store.layout.dir, { outboxMax: options.outboxMax ?? 16 });
  const c = car;
  const context: RemoteContext = {
    crypto,
    random,
    store: c.store,
    audit: c.audit,
    syncDb: db,
    actuator: c.actuator,
    time: c.time,
    vehicleId: c.vehicleId,
    currentKeyList: () => c.keyList,
    onKeyListChanged: c.onKeyListChanged,
    pinGuard: c.pinGuard,
    monotonic: () => performance.now(),
    remote: { ...CLOUD_DEFAULTS.remote, ...options.remote },
    relayBoundMs: 500,
    startPin: options.startPin,
    logger: silent,
  };
  return { car: c, context };
}

/** What the phone sees: open the queued box with its seed, verify with the car key. */
function resultFor(c: TestCar, sent: SentCommand, phone: Person): RemoteResult {
  const entry = db?.outbox(100).find((e) => toHex(e.commandId) === toHex(sent.commandId));
  if (entry === undefined) throw new Error('no result queued');
  const opened = openSealedBox(crypto, phone.seed, entry.box);
  if (!opened.ok) throw opened.error;
  const verified = verifyRemoteResult(crypto, opened.value, c.store.identity.publicKey, sent.commandId);
  if (!verified.ok) throw verified.error;
  return verified.value;
}

function decisions(c: TestCar): Record<string, unknown>[] {
  return c.store.readAudit().filter((e) => e.kind === 'decision').map((e) => e.fields);
}

describe('remote commands', () => {
  it('an owner locks remotely: executed, audited with origin cloud, car-signed result for the phone', async () => {
    const { car: c, context } = setup();
    const sent = remoteCommand(c, c.owner, 'lock');
    expect(await handleRemoteCommand(context, sent)).toEqual({ kind: 'decided', status: 'ok', command: 'lock' });
    expect(c.actuator.calls).toEqual(['lock']);
    expect(decisions(c)).toEqual([expect.objectContaining({ origin: 'cloud', command: 'lock', result: 'allow', role: 'owner', commandId: toHex(sent.commandId) })]);
    const result = resultFor(c, sent, c.owner);
    expect(result.status).toBe(ResultStatus.ok);
    expect(toHex(result.vehicleId)).toBe(toHex(c.vehicleId));
  });

  it('status returns the status payload', async () => {
    const { car: c, context } = setup();
    const sent = remoteCommand(c, c.owner, 'status');
    await handleRemoteCommand(context, sent);
    const status = decodeStatus(resultFor(c, sent, c.owner).payload);
    expect(status.ok && status.value.keyListVersion).toBe(1);
  });

  it('remote unlock is refused while disabled (the default) and works when enabled', async () => {
    const off = setup();
    const denied = remoteCommand(off.car, off.car.owner, 'unlock');
    expect(await handleRemoteCommand(off.context, denied)).toMatchObject({ kind: 'decided', status: 'denied', reason: 'not-permitted' });
    expect(off.car.actuator.calls).toEqual([]);
    expect(resultFor(off.car, denied, off.car.owner)).toMatchObject({ status: ResultStatus.denied, category: DenyCategoryCode['not-permitted'] });
    expect(decisions(off.car)).toEqual([expect.objectContaining({ result: 'deny', reason: 'not-permitted', remoteDisabled: true, origin: 'cloud' })]);
    db?.close();
    removeCar(off.car);

    const on = setup({ remote: { unlock: true } });
    const allowed = remoteCommand(on.car, on.car.owner, 'unlock');
    expect(await handleRemoteCommand(on.context, allowed)).toMatchObject({ kind: 'decided', status: 'ok' });
    expect(on.car.actuator.calls).toEqual(['unlock']);
  });

  it('a guest without start is refused by the car even though the cloud relayed it and remote start is on', async () => {
    const { car: c, context } = setup({ remote: { start: true } });
    const guest = person();
    const grant = guestGrant(c, guest, Permission.unlock | Permission.lock);
    const sent = remoteCommand(c, guest, 'start', { grant });
    expect(await handleRemoteCommand(context, sent)).toMatchObject({ kind: 'decided', status: 'denied', reason: 'not-permitted' });
    expect(c.actuator.calls).toEqual([]);
    expect(resultFor(c, sent, guest)).toMatchObject({ status: ResultStatus.denied, category: DenyCategoryCode['not-permitted'] });
    // The same guest may lock: the grant is honoured for what it allows.
    const lock = remoteCommand(c, guest, 'lock', { grant });
    expect(await handleRemoteCommand(context, lock)).toMatchObject({ kind: 'decided', status: 'ok' });
  });

  it('start needs the PIN when the car has one, with the shared per-key PIN guard', async () => {
    const { car: c, context } = setup({ remote: { start: true }, startPin: '2468' });
    const none = remoteCommand(c, c.owner, 'start');
    expect(await handleRemoteCommand(context, none)).toMatchObject({ status: 'denied', reason: 'pin-required' });
    const wrong = async (): Promise<unknown> => handleRemoteCommand(context, remoteCommand(c, c.owner, 'start', { args: encodePin('1111') }));
    for (let i = 0; i < 5; i++) expect(await wrong()).toMatchObject({ status: 'denied', reason: 'pin-wrong' });
    // Locked out now: even the right PIN is refused, and the phone is told for how long, as over BLE.
    const locked = remoteCommand(c, c.owner, 'start', { args: encodePin('2468') });
    expect(await handleRemoteCommand(context, locked)).toMatchObject({ status: 'denied', reason: 'pin-locked-out' });
    const answer = resultFor(c, locked, c.owner);
    expect(answer).toMatchObject({ status: ResultStatus.denied, category: DenyCategoryCode['locked-out'] });
    expect(answer.payload.length).toBe(4);
    expect(c.actuator.calls).toEqual([]);
    expect(c.pinGuard.locked({ key: toHex(c.owner.publicKey), owner: true }, performance.now())).toBe(true);
  });

  it('the right PIN starts', async () => {
    const { car: c, context } = setup({ remote: { start: true }, startPin: '2468' });
    expect(await handleRemoteCommand(context, remoteCommand(c, c.owner, 'start', { args: encodePin('2468') }))).toMatchObject({ status: 'ok' });
    expect(c.actuator.calls).toEqual(['drive-on']);
  });

  it('walk-up unlock and key management never run remotely, not even for an owner', async () => {
    const { car: c, context } = setup({ remote: { unlock: true } });
    for (const command of ['passiveUnlock', 'keyListGet', 'auditRead', 'vehicleStatement'] as const) {
      expect(await handleRemoteCommand(context, remoteCommand(c, c.owner, command))).toMatchObject({ status: 'denied', reason: 'not-permitted' });
    }
    expect(c.actuator.calls).toEqual([]);
  });

  it('an unknown or revoked key learns only "denied"', async () => {
    const { car: c, context } = setup();
    const stranger = person();
    const sent = remoteCommand(c, stranger, 'lock');
    expect(await handleRemoteCommand(context, sent)).toMatchObject({ status: 'denied', reason: 'unknown-key' });
    expect(resultFor(c, sent, stranger)).toMatchObject({ status: ResultStatus.denied, category: DenyCategoryCode.none });
    const guest = person();
    const grant = guestGrant(c, guest);
    const base = c.keyList;
    if (base === undefined) throw new Error('unpaired');
    c.keyList = signKeyList(crypto, c.owner.seed, { vehicleId: c.vehicleId, version: 2, issuedAt: Date.now(), owners: base.owners, revokedSerials: [grant.serial], revokedKeys: [] });
    expect(await handleRemoteCommand(context, remoteCommand(c, guest, 'lock', { grant }))).toMatchObject({ status: 'denied', reason: 'grant-revoked' });
    expect(c.actuator.calls).toEqual([]);
  });

  it('single use: the same command id is acted on once, also after sync.db is reopened', async () => {
    const { car: c, context } = setup();
    const sent = remoteCommand(c, c.owner, 'lock');
    await handleRemoteCommand(context, sent);
    expect(await handleRemoteCommand(context, sent)).toEqual({ kind: 'seen', queued: true });
    db?.removeResult(sent.commandId);
    db?.close();
    db = SyncDb.open(c.store.layout.dir, { outboxMax: 16 });
    expect(await handleRemoteCommand({ ...context, syncDb: db }, sent)).toEqual({ kind: 'seen', queued: false });
    expect(c.actuator.calls).toEqual(['lock']);
  });

  const refusals: [string, (c: TestCar) => SentCommand, string][] = [
    ['expired', (c) => remoteCommand(c, c.owner, 'lock', { issuedAt: Date.now() - 120_000, lifetimeMs: 60_000 }), 'CK_REMOTE_EXPIRED'],
    ['for another vehicle', (c) => remoteCommand(c, c.owner, 'lock', { vehicleId: new Uint8Array(16).fill(9) }), 'CK_CRED_WRONG_VEHICLE'],
    [
      'with a tampered box',
      (c) => {
        const sent = remoteCommand(c, c.owner, 'lock');
        const box = Uint8Array.from(sent.box);
        box[60] = (box[60] ?? 0) ^ 0x10;
        return { ...sent, box };
      },
      'CK_CRYPTO_DECRYPT_FAILED',
    ],
    ['sealed to another car', (c) => ({ ...remoteCommand(c, c.owner, 'lock'), box: sealTo(crypto, random, person().publicKey, new Uint8Array(200)) }), 'CK_CRYPTO_DECRYPT_FAILED'],
    ['listed under another id by the cloud', (c) => ({ ...remoteCommand(c, c.owner, 'lock'), commandId: random(16) }), 'CK_CLOUD_BAD_RESPONSE'],
  ];

  it.each(refusals)('a command %s is refused before any decision, audited, answered "failed"', async (_name, make, code) => {
    const { car: c, context } = setup();
    const sent = make(c);
    expect(await handleRemoteCommand(context, sent)).toEqual({ kind: 'refused', code });
    expect(c.actuator.calls).toEqual([]);
    expect(decisions(c)).toEqual([]);
    expect(c.store.readAudit().filter((e) => e.kind === 'sync').map((e) => e.fields)).toEqual([expect.objectContaining({ what: 'command', result: 'refused', reason: code })]);
    expect(db?.outboxSize()).toBe(1);
    // Re-listed by the cloud: not audited or answered again.
    expect((await handleRemoteCommand(context, sent)).kind).toBe('seen');
    expect(c.store.readAudit().filter((e) => e.kind === 'sync')).toHaveLength(1);
  });

  it('a full outbox defers new commands (they wait in the cloud) and runs nothing', async () => {
    const { car: c, context } = setup({ outboxMax: 2 });
    await handleRemoteCommand(context, remoteCommand(c, c.owner, 'lock'));
    await handleRemoteCommand(context, remoteCommand(c, c.owner, 'lock'));
    expect(await handleRemoteCommand(context, remoteCommand(c, c.owner, 'lock'))).toEqual({ kind: 'deferred', code: 'CK_SYNC_OUTBOX_FULL' });
    expect(c.actuator.calls).toEqual(['lock', 'lock']);
  });

  it('a hardware failure is a signed "failed" result with the code', async () => {
    const { car: c, context } = setup();
    const { CarkeyError } = await import('../../../src/core/errors.js');
    c.actuator.failNext = new CarkeyError('CK_HW_TIMEOUT');
    const sent = remoteCommand(c, c.owner, 'lock');
    expect(await handleRemoteCommand(context, sent)).toMatchObject({ status: 'failed' });
    const result = resultFor(c, sent, c.owner);
    expect(result.status).toBe(ResultStatus.failed);
    expect(new TextDecoder().decode(result.payload)).toBe('CK_HW_TIMEOUT');
  });

  it('a claim left without a result (the process died while acting) is answered CK_REMOTE_INTERRUPTED after a restart', () => {
    const { car: c, context } = setup();
    const sent = remoteCommand(c, c.owner, 'unlock');
    expect(db?.claimCommand(sent.commandId, c.owner.publicKey, sent.expiresAt, Date.now())).toBe('claimed');
    db?.close();
    db = SyncDb.open(c.store.layout.dir, { outboxMax: 16 });
    expect(answerInterrupted({ ...context, syncDb: db })).toBe(1);
    const result = resultFor(c, sent, c.owner);
    expect(result.status).toBe(ResultStatus.failed);
    expect(new TextDecoder().decode(result.payload)).toBe('CK_REMOTE_INTERRUPTED');
    expect(answerInterrupted({ ...context, syncDb: db })).toBe(0);
  });
});
