/**
 * The sync worker end to end against an in-process cloud (cloud-stub.ts, per
 * docs/cloud.md), with a real store, sync.db and HTTP: registration, key
 * lists over long-poll / poll / MQTT notices, remote commands with a durable
 * outbox, audit upload with a persisted cursor, and a cloud that answers
 * 500, hangs, resets or sends garbage. Jitter is injected; no test asserts
 * how long anything took (deadlines only bound a failing test).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toHex } from '../../../src/core/bytes.js';
import { verifyRemoteResult } from '../../../src/core/cloud-docs.js';
import { ResultStatus } from '../../../src/core/messages.js';
import { openSealedBox } from '../../../src/core/sealed-box.js';
import type { CloudConfig } from '../../../src/vehicle/config.js';
import type { NoticeConnector, NoticeHandlers } from '../../../src/vehicle/sync/mqtt-notices.js';
import { SyncWorker, type SyncTuning } from '../../../src/vehicle/sync/worker.js';
import { cloudConfig, crypto, nextList, openCar, person, random, remoteCommand, removeCar, silent, until, type TestCar } from './car-fixture.js';
import { CloudStub } from './cloud-stub.js';

const FAST: Partial<SyncTuning> = { retryBaseMs: 20, retryCapMs: 200, circuitThreshold: 3, circuitOpenMs: 400, circuitMaxOpenMs: 800, minFetchIntervalMs: 10, idlePauseMs: 50, stopWaitMs: 500 };
const MQTT_URL = process.env.CARKEY_TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

let stub: CloudStub;
let car: TestCar | undefined;
let worker: SyncWorker | undefined;
let registry: Registry;

beforeEach(async () => {
  stub = new CloudStub();
  await stub.start();
  registry = new Registry();
});

afterEach(async () => {
  await worker?.stop();
  worker = undefined;
  await stub.close();
  if (car !== undefined) removeCar(car);
  car = undefined;
});

function start(c: TestCar, overrides: Partial<CloudConfig> = {}, extra: { notices?: NoticeConnector; tuning?: Partial<SyncTuning> } = {}): SyncWorker {
  worker = SyncWorker.start({
    cloud: cloudConfig(stub.url, overrides),
    relayBoundMs: 500,
    startPin: undefined,
    crypto,
    random,
    store: c.store,
    audit: c.audit,
    actuator: c.actuator,
    time: c.time,
    vehicleId: c.vehicleId,
    keyList: () => c.keyList,
    onKeyListChanged: c.onKeyListChanged,
    pinGuard: c.pinGuard,
    logger: silent,
    monotonic: () => performance.now(),
    jitter: () => 0.5,
    tuning: { ...FAST, ...extra.tuning },
    registry,
    ...(extra.notices === undefined ? {} : { notices: extra.notices }),
  });
  return worker;
}

function id(c: TestCar): string {
  return toHex(c.vehicleId);
}

async function registered(c: TestCar): Promise<void> {
  await until(() => stub.cars.has(id(c)) && worker?.status().registered === true, 'the car registered');
}

describe('sync worker', () => {
  it('registers with a car-signed statement, then applies an owner revocation from the cloud over long-poll', async () => {
    car = openCar();
    const c = car;
    start(c);
    await registered(c);
    expect(stub.statements.at(-1)).toEqual({ vehicle: id(c), epoch: 0, version: 1 });
    // The owner revokes a friend through the cloud while the long-poll is held.
    await until(() => stub.count('GET', /key-list$/) >= 1, 'a long-poll is held');
    const friend = person();
    const revocation = nextList(c, { revokedKeys: [friend.publicKey] });
    stub.serveKeyList(id(c), revocation.bytes);
    await until(() => c.store.keyListVersion() === 2, 'the revocation is installed');
    expect(c.keyList?.revokedKeys.map(toHex)).toEqual([toHex(friend.publicKey)]);
    expect(c.store.readAudit().filter((e) => e.kind === 'key-list').at(-1)?.fields.via).toBe('cloud');
    await until(() => worker?.status().keyListEtag === '"0.2"', 'the etag follows');
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/carkey_sync_key_lists_total\{outcome="installed",reason="none"\} 1/);
  });

  it('a list the car got over BLE is registered, so the cloud moves forward', async () => {
    car = openCar();
    const c = car;
    start(c);
    await registered(c);
    const ble = nextList(c);
    c.store.replaceKeyList(ble.bytes, ble.version, { via: 'ble' }, ble.epoch);
    c.onKeyListChanged(ble);
    worker?.keyListChanged();
    await until(() => stub.statements.some((s) => s.version === 2), 'the newer list is registered');
    await until(() => stub.keyLists.get(id(c))?.etag === '"0.2"', 'the cloud holds it');
  });

  it('a compromised cloud serving a forged list is refused, audited once, never installed', async () => {
    car = openCar();
    const c = car;
    start(c);
    await registered(c);
    const forged = nextList(c, { owners: [person().publicKey] }, person());
    stub.serveKeyList(id(c), forged.bytes);
    await until(() => c.store.readAudit().some((e) => e.kind === 'sync' && e.fields.reason === 'CK_KEYLIST_NOT_OWNER'), 'the refusal is audited');
    // Poll a few more times against the same bad document: still one audit entry, still version 1.
    const gets = stub.count('GET', /key-list$/);
    stub.serveKeyList(id(c), forged.bytes, '"0.7"');
    await until(() => stub.count('GET', /key-list$/) >= gets + 2, 'more polls');
    expect(c.store.readAudit().filter((e) => e.kind === 'sync')).toHaveLength(1);
    expect(c.store.keyListVersion()).toBe(1);
    expect(c.changes).toEqual([]);
    // The cloud stops lying (same ETag as the forgery, genuine bytes): the car hears it on its next try.
    stub.serveKeyList(id(c), nextList(c).bytes, '"0.7"');
    await until(() => c.store.keyListVersion() === 2, 'the genuine list is installed');
  });

  it('remote lock: fetched, executed, the car-signed result reaches the cloud and verifies for the phone', async () => {
    car = openCar();
    const c = car;
    start(c);
    await registered(c);
    const sent = remoteCommand(c, c.owner, 'lock');
    stub.postCommand(id(c), sent.commandId, sent.box, sent.caller, sent.expiresAt);
    await until(() => stub.result(sent.commandId) !== undefined, 'the result is delivered');
    const opened = openSealedBox(crypto, c.owner.seed, stub.result(sent.commandId) ?? new Uint8Array(0));
    if (!opened.ok) throw opened.error;
    const result = verifyRemoteResult(crypto, opened.value, c.store.identity.publicKey, sent.commandId);
    expect(result.ok && result.value.status).toBe(ResultStatus.ok);
    expect(c.actuator.calls).toEqual(['lock']);
    await until(() => worker?.status().backlog.outbox === 0, 'the outbox is empty');
  });

  it('a result the cloud will not take yet stays in the outbox and is delivered exactly once when it does', async () => {
    car = openCar();
    const c = car;
    let refuse = true;
    stub.override = (request) => (refuse && request.method === 'PUT' && request.path.endsWith('/result') ? { status: 503, body: '{}' } : undefined);
    start(c);
    await registered(c);
    const sent = remoteCommand(c, c.owner, 'lock');
    stub.postCommand(id(c), sent.commandId, sent.box, sent.caller, sent.expiresAt);
    await until(() => stub.count('PUT', /result$/) >= 2, 'the PUT is retried');
    expect(worker?.status().backlog.outbox).toBe(1);
    refuse = false;
    await until(() => stub.result(sent.commandId) !== undefined, 'delivered');
    await until(() => worker?.status().backlog.outbox === 0, 'the outbox is empty');
    expect(stub.resultPuts.get(toHex(sent.commandId))).toBe(1);
    expect(c.actuator.calls).toEqual(['lock']);
  });

  it('results survive a restart of the worker (sync.db) and are then delivered', async () => {
    car = openCar();
    const c = car;
    stub.override = (request) => (request.method === 'PUT' && request.path.endsWith('/result') ? 'reset' : undefined);
    start(c);
    await registered(c);
    const sent = remoteCommand(c, c.owner, 'lock');
    stub.postCommand(id(c), sent.commandId, sent.box, sent.caller, sent.expiresAt);
    await until(() => worker?.status().backlog.outbox === 1, 'queued');
    await worker?.stop();
    stub.override = undefined;
    start(c);
    await until(() => stub.result(sent.commandId) !== undefined, 'delivered after the restart');
    expect(c.actuator.calls).toEqual(['lock']);
    expect(c.store.readAudit().filter((e) => e.kind === 'decision' && e.fields.commandId === toHex(sent.commandId))).toHaveLength(1);
  });

  it('uploads the audit log in pages after a persisted cursor; a restart does not start over', async () => {
    car = openCar();
    const c = car;
    for (let i = 0; i < 150; i++) c.audit.append('sync', { what: 'filler', i });
    start(c, { auditUploadIntervalMs: 60_000 });
    const last = c.store.lastAuditSeq();
    await until(() => (stub.audit.get(id(c))?.size ?? 0) >= last, 'everything uploaded');
    expect([...(stub.audit.get(id(c))?.keys() ?? [])].sort((a, b) => a - b)).toEqual(Array.from({ length: stub.audit.get(id(c))?.size ?? 0 }, (_, i) => i + 1));
    await until(() => worker?.status().backlog.audit === 0 || (worker?.status().auditUploadedSeq ?? 0) >= last, 'the cursor is saved');
    expect(stub.auditPosts.length).toBeGreaterThan(2);
    await worker?.stop();
    const before = c.store.lastAuditSeq();
    const posts = stub.auditPosts.length;
    for (let i = 0; i < 3; i++) c.audit.append('sync', { what: 'after restart', i });
    start(c, { auditUploadIntervalMs: 60_000 });
    await until(() => (stub.audit.get(id(c))?.size ?? 0) >= before + 3, 'the new entries are uploaded');
    // After the restart only entries past the saved cursor were sent.
    expect(stub.auditPosts.slice(posts).flat().every((seq) => seq > before)).toBe(true);
  });

  it('a cloud that lost audit entries gets them again from where it stands', async () => {
    car = openCar();
    const c = car;
    for (let i = 0; i < 20; i++) c.audit.append('sync', { what: 'filler', i });
    start(c, { auditUploadIntervalMs: 100 });
    await until(() => (stub.audit.get(id(c))?.size ?? 0) >= 20, 'uploaded');
    stub.audit.delete(id(c)); // the cloud's database was restored from an old backup
    c.audit.append('sync', { what: 'one more' });
    const last = c.store.lastAuditSeq();
    await until(() => (stub.audit.get(id(c))?.size ?? 0) >= last, 'uploaded again from seq 1');
    expect(Math.min(...(stub.audit.get(id(c))?.keys() ?? []))).toBe(1);
  });

  it('a cloud answering 500 opens the circuit (few requests), and the worker recovers when it is back', async () => {
    car = openCar();
    const c = car;
    let broken = true;
    stub.override = () => (broken ? { status: 500, body: '{"error":"boom"}' } : undefined);
    start(c);
    await until(() => worker?.status().circuit === 'open', 'the circuit opens');
    expect(worker?.status().lastError?.code).toBe('CK_CLOUD_SERVER_ERROR');
    const during = stub.log.length;
    broken = false;
    await registered(c);
    expect(during).toBeLessThan(20);
    stub.serveKeyList(id(c), nextList(c).bytes);
    await until(() => c.store.keyListVersion() === 2, 'a list is applied after recovery');
    expect(worker?.status().circuit).toBe('closed');
  });

  it.each([
    ['hangs', 'hang', 'CK_CLOUD_TIMEOUT'],
    ['resets the connection', 'reset', 'CK_CLOUD_UNAVAILABLE'],
    ['sends garbage', { status: 200, body: '{"keyList": trunc' }, 'CK_CLOUD_BAD_RESPONSE'],
    ['answers 200 with a wrong shape', { status: 200, body: '{"vehicleId":7}' }, 'CK_CLOUD_BAD_RESPONSE'],
  ] as const)('a cloud that %s: the worker logs %s, keeps trying, never throws, and stops promptly', async (_name, behaviour, code) => {
    car = openCar();
    const c = car;
    stub.override = () => behaviour;
    start(c, { requestTimeoutMs: 500 });
    await until(() => worker?.status().lastError?.code === code, `lastError ${code}`);
    await until(() => stub.log.length >= 2, 'it tries again');
    await worker?.stop();
    worker = undefined;
    expect(c.store.keyListVersion()).toBe(1);
  });

  it('poll mode fetches on its interval', async () => {
    car = openCar();
    const c = car;
    start(c, { mode: 'poll', pollIntervalMs: 100 });
    await registered(c);
    stub.serveKeyList(id(c), nextList(c).bytes);
    await until(() => c.store.keyListVersion() === 2, 'applied by a poll');
    expect(stub.log.filter((e) => e.path.endsWith('/key-list')).every((e) => e.status !== 0)).toBe(true);
  });

  it('mqtt mode fetches when a notice arrives (injected connector), not before', async () => {
    car = openCar();
    const c = car;
    let handlers: NoticeHandlers | undefined;
    const connector: NoticeConnector = (_url, topic, h) => {
      expect(topic).toBe(`carkey/v1/vehicles/${id(c)}`);
      handlers = h;
      return Promise.resolve({ connected: () => true, close: () => Promise.resolve() });
    };
    start(c, { mode: 'mqtt', mqttUrl: 'mqtt://127.0.0.1:1', pollIntervalMs: 3_600_000 }, { notices: connector });
    await registered(c);
    await until(() => handlers !== undefined, 'subscribed');
    await until(() => stub.count('GET', /key-list$/) >= 1, 'the first fetch');
    const fetches = stub.count('GET', /key-list$/);
    stub.serveKeyList(id(c), nextList(c).bytes);
    expect(stub.count('GET', /key-list$/)).toBe(fetches);
    handlers?.onNotice('key-list');
    await until(() => c.store.keyListVersion() === 2, 'applied after the notice');
    expect(worker?.status().mqttConnected).toBe(true);
  });

  it('mqtt mode over the real broker: a published notice wakes the car', async () => {
    car = openCar();
    const c = car;
    start(c, { mode: 'mqtt', mqttUrl: MQTT_URL, pollIntervalMs: 3_600_000 });
    await registered(c);
    await until(() => worker?.status().mqttConnected === true, 'connected to the broker');
    await until(() => stub.count('GET', /key-list$/) >= 1, 'the first fetch');
    stub.serveKeyList(id(c), nextList(c).bytes);
    const publisher = await connectAsync(MQTT_URL);
    try {
      await publisher.publishAsync(`carkey/v1/vehicles/${id(c)}`, '{"changed":"key-list"}', { qos: 1 });
      await until(() => c.store.keyListVersion() === 2, 'applied after the broker notice');
    } finally {
      await publisher.endAsync();
    }
  });

  it('an unpaired car contacts nobody until it is paired', async () => {
    car = openCar({ paired: false });
    const c = car;
    start(c);
    await until(() => worker?.status().running === true, 'started');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(stub.log).toEqual([]);
    const owner = c.owner;
    const { signKeyList } = await import('../../../src/core/credentials.js');
    const list = signKeyList(crypto, owner.seed, { vehicleId: c.vehicleId, version: 1, issuedAt: Date.now(), owners: [owner.publicKey], revokedSerials: [], revokedKeys: [] });
    c.store.replaceKeyList(list.bytes, 1, { via: 'pairing' }, 0);
    c.onKeyListChanged(list);
    worker?.keyListChanged();
    await registered(c);
  });

  it('a sync.db that cannot be opened is retried; BLE state is untouched and nothing throws', async () => {
    car = openCar();
    const c = car;
    const blocker = join(c.store.layout.dir, 'sync.db');
    mkdirSync(blocker, { mode: 0o700 });
    start(c);
    await until(() => worker?.status().lastError?.code === 'CK_STORE_IO', 'the failure is reported');
    expect(stub.log).toEqual([]);
    rmSync(blocker, { recursive: true });
    await registered(c);
  });

  it('a refused request clock makes the worker learn the cloud time (for signing only)', async () => {
    car = openCar();
    const c = car;
    let stale = true;
    stub.override = (request) => {
      if (stale && request.path.endsWith('/v1/vehicles/' + id(c))) {
        stale = false;
        return { status: 401, body: JSON.stringify({ error: { code: 'CK_CLOUD_AUTH_STALE', message: 'stale', details: {} } }) };
      }
      return undefined;
    };
    start(c);
    await registered(c);
    expect(stub.count('GET', /\/v1\/time$/)).toBe(1);
  });
});
