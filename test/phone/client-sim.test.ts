// CarkeyClient over the real simulated radio broker (a separate process),
// against a car made from the core VehicleSession (fake-car.ts): pairing,
// unlock and several commands on one session, grants, queued key-list
// delivery, rebase over another owner's list, audit verification, retries,
// not-found, a spoofed car, and clean disconnects.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { equalBytes } from '../../src/core/bytes.js';
import { containsKey, signGrant } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { CarkeyError } from '../../src/core/errors.js';
import { Permission } from '../../src/core/roles.js';
import { AuditCollector } from '../../src/core/audit-page.js';
import { CarkeyClient, type ProgressEvent } from '../../src/phone/client.js';
import { buildRevocation, latestKnownKeyList } from '../../src/phone/key-lists.js';
import { KeyStore } from '../../src/phone/keystore.js';
import type { VehicleRecord } from '../../src/phone/vehicle-record.js';
import { createSimCentral } from '../../src/transport/sim.js';
import type { CentralTransport } from '../../src/transport/types.js';
import { fixedSeed, seededRandom } from '../helpers/core-fixtures.js';
import { startBroker, type BrokerProcess } from '../radio/broker-process.js';
import { FakeCar } from './fake-car.js';

const crypto = createCrypto('node');
const advSecret = new Uint8Array(32).fill(9);
let broker: BrokerProcess;
let tempDir: string;
const cars: FakeCar[] = [];
let phoneCounter = 0;

beforeAll(async () => {
  broker = await startBroker();
  tempDir = mkdtempSync(join(tmpdir(), 'ck-client-'));
});

afterEach(async () => {
  await Promise.all(cars.splice(0).map((car) => car.stop()));
});

afterAll(async () => {
  await broker.stop();
  rmSync(tempDir, { recursive: true, force: true });
});

async function startCar(options: { seed?: string; pairingOpen?: boolean; pin?: string; name?: string } = {}): Promise<FakeCar> {
  const car = await FakeCar.start({
    crypto,
    socketPath: broker.socketPath,
    name: options.name ?? `car-${cars.length}`,
    seed: fixedSeed(options.seed ?? 'car'),
    advSecret,
    vehicleName: 'test car',
    pairingOpen: options.pairingOpen ?? false,
    ...(options.pin === undefined ? {} : { pin: options.pin }),
  });
  cars.push(car);
  return car;
}

interface Phone {
  readonly store: KeyStore;
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly events: ProgressEvent[];
  readonly sleeps: number[];
  client(options?: { scanMs?: number; wrap?: (transport: CentralTransport) => CentralTransport }): CarkeyClient;
}

async function makePhone(label: string): Promise<Phone> {
  const random = seededRandom(`phone ${label}`);
  const store = new KeyStore(join(tempDir, `${label}-${phoneCounter++}`), { crypto, random, clock: () => Date.now(), sleep: () => Promise.resolve() });
  const identity = await store.createIdentity(undefined);
  const seed = await store.unlockSeed(() => Promise.resolve(undefined));
  const events: ProgressEvent[] = [];
  const sleeps: number[] = [];
  return {
    store,
    seed,
    publicKey: identity.publicKey,
    events,
    sleeps,
    client: (options = {}) =>
      new CarkeyClient(
        {
          crypto,
          random,
          clock: () => Date.now(),
          sleep: (ms) => {
            sleeps.push(ms);
            return Promise.resolve();
          },
          store,
          openTransport: () => {
            const transport = createSimCentral({ socketPath: broker.socketPath, name: `${label}-${phoneCounter++}` });
            return Promise.resolve(options.wrap === undefined ? transport : options.wrap(transport));
          },
          progress: (event) => events.push(event),
        },
        { scanMs: options.scanMs ?? 5000, connectMs: 5000, answerMs: 5000, pairConfirmMs: 5000, attempts: 3, backoffMs: 10 },
      ),
  };
}

async function pairOwner(phone: Phone, car: FakeCar, name?: string): Promise<VehicleRecord> {
  await car.setPairing(true);
  let shown = '';
  const record = await phone.client().pair({
    seed: phone.seed,
    phoneName: 'test phone',
    ...(name === undefined ? {} : { localName: name }),
    confirmCode: (code) => {
      shown = code;
      return Promise.resolve(true);
    },
  });
  await car.setPairing(false);
  expect(shown).toMatch(/^\d{6}$/);
  expect(car.pairCodes.at(-1)).toBe(shown);
  return record;
}

async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('CarkeyClient over the simulated radio', () => {
  it('pairs, runs several commands on one session, delivers a queued revocation first, and disconnects', async () => {
    const car = await startCar({ pin: '4711' });
    const owner = await makePhone('owner');
    const record = await pairOwner(owner, car, 'my car');
    expect(record).toMatchObject({ name: 'my car', vehicleName: 'test car', owner: true });
    expect(record.keyList?.version).toBe(1);
    expect(equalBytes(record.carIdentityKey, car.publicKey)).toBe(true);
    expect(car.keyList?.version).toBe(1);
    expect(owner.store.selectVehicle(undefined).name).toBe('my car');

    // Several commands on one authenticated session.
    const client = owner.client();
    await client.withConnection(owner.store.selectVehicle('my car'), owner.seed, async (connection, delivery) => {
      expect(delivery).toEqual({ delivered: undefined, stillQueued: 0, failure: undefined });
      expect(connection.challenge.keyListVersion).toBe(1);
      expect((await connection.unlock()).status).toBe('ok');
      const status = await connection.status();
      expect(status).toMatchObject({ status: 'ok', value: { locked: [], drive: 'off', keyListVersion: 1 } });
      expect((await connection.trunk()).status).toBe('ok');
      expect(await connection.start()).toEqual({ status: 'denied', category: 'pin' });
      expect((await connection.start('4711')).status).toBe('ok');
      expect((await connection.lock()).status).toBe('ok');
    });
    expect(car.commands).toEqual(['unlock', 'status', 'trunk', 'start', 'lock']);
    await eventually(() => car.linkCount === 0, 'the link to close');

    // A friend with a guest grant: unlock allowed, trunk denied with a category.
    const friend = await makePhone('friend');
    const grant = signGrant(crypto, owner.seed, {
      vehicleId: record.vehicleId,
      serial: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
      subject: friend.publicKey,
      role: 'guest',
      permissions: Permission.unlock | Permission.lock,
      notBefore: Date.now() - 60_000,
      notAfter: Date.now() + 3_600_000,
    });
    const friendRecord = await friend.store.updateVehicle(record.vehicleId, () => ({ ...record, name: 'borrowed', owner: false, grants: [grant], issued: [], keyList: undefined, pending: [] }));
    await friend.client().withConnection(friendRecord, friend.seed, async (connection) => {
      expect((await connection.unlock()).status).toBe('ok');
      expect(await connection.trunk()).toEqual({ status: 'denied', category: 'not-permitted' });
    });

    // The owner revokes the grant offline: queued, then delivered first thing at the next connection.
    const queued = await owner.store.updateVehicle(record.vehicleId, (current) => {
      const base = current ?? record;
      const latest = latestKnownKeyList(base);
      if (latest === undefined) throw new Error('no list');
      return { ...base, pending: [buildRevocation(crypto, owner.seed, latest, { kind: 'serial', serial: grant.serial }, Date.now())] };
    });
    expect(queued.pending.map((list) => list.version)).toEqual([2]);
    const commandsBefore = car.commands.length;
    await owner.client().withConnection(queued, owner.seed, async (connection, delivery) => {
      expect(delivery).toEqual({ delivered: 2, stillQueued: 0, failure: undefined });
      expect(car.commands.slice(commandsBefore)).toEqual(['keyListPush']);
      expect((await connection.status()).status).toBe('ok');
    });
    expect(owner.events.some((event) => event.kind === 'delivered' && event.version === 2)).toBe(true);
    expect(car.keyList?.version).toBe(2);
    const after = owner.store.selectVehicle('my car');
    expect(after.pending).toEqual([]);
    expect(after.keyList?.version).toBe(2);

    // The revoked friend now gets the generic refusal.
    const refused = await friend.client().withConnection(friendRecord, friend.seed, (connection) => connection.unlock()).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(CarkeyError);
    expect((refused as CarkeyError).code).toBe('CK_PROTO_REFUSED');
    await eventually(() => car.linkCount === 0, 'all links to close');
  });

  it('re-applies queued revocations on top of a list another owner delivered, and verifies the audit log', async () => {
    const car = await startCar({ seed: 'car rebase' });
    const alice = await makePhone('alice');
    const bob = await makePhone('bob');
    const aliceRecord = await pairOwner(alice, car);
    await pairOwner(bob, car);
    expect(car.keyList?.version).toBe(2);
    expect(car.keyList?.owners.length).toBe(2);

    // Alice (still believing version 1) queues a revocation of some key.
    const victim = crypto.publicKeyFromSeed(fixedSeed('victim'));
    await alice.store.updateVehicle(aliceRecord.vehicleId, (current) => {
      const base = current ?? aliceRecord;
      const latest = latestKnownKeyList(base);
      if (latest === undefined) throw new Error('no list');
      return { ...base, pending: [buildRevocation(crypto, alice.seed, latest, { kind: 'key', key: victim }, Date.now())] };
    });
    const stored = alice.store.selectVehicle(undefined);
    expect(stored.pending[0]?.version).toBe(2);

    const page = await alice.client().withConnection(stored, alice.seed, async (connection, delivery) => {
      expect(delivery.delivered).toBe(3);
      const collector = new AuditCollector();
      for (;;) {
        const read = await connection.auditRead(collector.nextSeq, 2);
        if (read.status !== 'ok') throw new Error(`audit read ${read.status}`);
        if (!collector.add(read.value)) break;
      }
      return collector;
    });
    expect(car.keyList?.version).toBe(3);
    expect(car.keyList?.owners.length).toBe(2);
    expect(containsKey(car.keyList?.revokedKeys ?? [], victim)).toBe(true);
    const aliceAfter = alice.store.selectVehicle(undefined);
    expect(aliceAfter.pending).toEqual([]);
    expect(aliceAfter.keyList?.version).toBe(3);

    const verdict = page.verify(crypto, car.publicKey);
    expect(verdict.ok).toBe(true);
    expect(page.all.length).toBeGreaterThanOrEqual(4);
    // The same entries do not verify against another car's key.
    expect(page.verify(crypto, crypto.publicKeyFromSeed(fixedSeed('other car'))).ok).toBe(false);
  });

  it('retries a transient connect failure with backoff, but not a missing car', async () => {
    const car = await startCar({ seed: 'car retry' });
    const owner = await makePhone('retry');
    const record = await pairOwner(owner, car);
    let failures = 1;
    const flaky = (transport: CentralTransport): CentralTransport => ({
      scan: (options) => transport.scan(options),
      connect: (discovery, options) => {
        if (failures-- > 0) return Promise.reject(new CarkeyError('CK_TRANSPORT_CONNECT_FAILED', 'injected'));
        return transport.connect(discovery, options);
      },
      close: () => transport.close(),
    });
    const outcome = await owner.client({ wrap: flaky }).withConnection(record, owner.seed, (connection) => connection.unlock());
    expect(outcome.status).toBe('ok');
    expect(owner.sleeps).toEqual([10]);
    expect(owner.events.some((event) => event.kind === 'retrying' && event.attempt === 2)).toBe(true);

    // Another car's record: its rotating id does not match, and the car nearby does not sign with its key.
    const unknown = { ...record, advSecret: new Uint8Array(32).fill(1), carIdentityKey: owner.publicKey };
    const missing = await owner.client({ scanMs: 300 }).connect(unknown, owner.seed).catch((error: unknown) => error);
    expect((missing as CarkeyError).code).toBe('CK_TRANSPORT_NOT_FOUND');
    expect(owner.sleeps).toEqual([10]);
  });

  it('a link closed after the REQUEST with no RESULT is CK_PROTO_NO_ANSWER (not retried); closed before it, a retried disconnect', async () => {
    const car = await startCar({ seed: 'car hang-up' });
    const owner = await makePhone('hang-up');
    const record = await pairOwner(owner, car);

    car.hangUp = 'request';
    const noAnswer = await owner.client().withConnection(record, owner.seed, (connection) => connection.unlock()).catch((thrown: unknown) => thrown);
    expect((noAnswer as CarkeyError).code).toBe('CK_PROTO_NO_ANSWER');
    expect((noAnswer as CarkeyError).message).toMatch(/may or may not have been carried out/);
    expect(car.commands).toEqual(['unlock']); // the car did act: the phone cannot know, and says so
    expect(owner.sleeps).toEqual([]);

    car.hangUp = 'hello';
    const dropped = await owner.client().connect(record, owner.seed).catch((thrown: unknown) => thrown);
    expect((dropped as CarkeyError).code).toBe('CK_TRANSPORT_DISCONNECTED');
    expect(owner.sleeps).toEqual([10, 20]); // nothing was asked yet: retried with backoff
    expect(car.commands).toEqual(['unlock']);
  });

  it('refuses a car that does not hold the pinned key', async () => {
    const car = await startCar({ seed: 'car genuine' });
    const owner = await makePhone('spoof');
    const record = await pairOwner(owner, car);
    await car.stop();
    cars.splice(cars.indexOf(car), 1);
    const impostor = await startCar({ seed: 'car impostor', name: 'impostor' });
    const error = await owner.client().connect(record, owner.seed).catch((thrown: unknown) => thrown);
    expect((error as CarkeyError).code).toBe('CK_PROTO_BAD_CAR_SIGNATURE');
    expect(impostor.commands).toEqual([]);
  });

  it('stores nothing when the person says the codes differ', async () => {
    const car = await startCar({ seed: 'car mismatch', pairingOpen: true });
    const owner = await makePhone('mismatch');
    const error = await owner
      .client()
      .pair({ seed: owner.seed, phoneName: 'p', confirmCode: () => Promise.resolve(false) })
      .catch((thrown: unknown) => thrown);
    expect((error as CarkeyError).code).toBe('CK_PROTO_PAIRING_NOT_CONFIRMED');
    expect(owner.store.listVehicles()).toEqual([]);
    expect(car.keyList).toBeUndefined();
  });
});
