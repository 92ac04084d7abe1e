// CarkeyClient's early connection to a car's remembered address (ClientDeps.addressHints), over
// the real simulated radio broker against fake cars: the connection is started before the scan
// and used when the scan finds the car there; a stale hint, or a hint pointing at another car,
// still ends at the right car (its rotating id, then its signed CHALLENGE), and the hint follows
// the car to its new address.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import type { AddressHints } from '../../src/phone/address-hints.js';
import { CarkeyClient } from '../../src/phone/client.js';
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
let counter = 0;

beforeAll(async () => {
  broker = await startBroker();
  tempDir = mkdtempSync(join(tmpdir(), 'ck-hints-'));
});

afterEach(async () => {
  await Promise.all(cars.splice(0).map((car) => car.stop()));
});

afterAll(async () => {
  await broker.stop();
  rmSync(tempDir, { recursive: true, force: true });
});

async function startCar(name: string, seed = 'car', secret = advSecret): Promise<FakeCar> {
  const car = await FakeCar.start({ crypto, socketPath: broker.socketPath, name, seed: fixedSeed(seed), advSecret: secret, vehicleName: 'test car', pairingOpen: false });
  cars.push(car);
  return car;
}

/** What the transport was asked, in order: `scan`, `connect ADDRESS`. */
type Calls = string[];

function memoryHints(initial: Record<string, string> = {}): AddressHints & { readonly map: Map<string, string> } {
  const map = new Map(Object.entries(initial));
  return { map, get: (id) => map.get(id), set: (id, address) => void map.set(id, address) };
}

async function phone(label: string): Promise<{ store: KeyStore; seed: Uint8Array; client: (hints: AddressHints, calls: Calls) => CarkeyClient }> {
  const random = seededRandom(`phone ${label}`);
  const store = new KeyStore(join(tempDir, `${label}-${counter++}`), { crypto, random, clock: () => Date.now(), sleep: () => Promise.resolve() });
  await store.createIdentity(undefined);
  const seed = await store.unlockSeed(() => Promise.resolve(undefined));
  const client = (hints: AddressHints, calls: Calls): CarkeyClient =>
    new CarkeyClient(
      {
        crypto,
        random,
        clock: () => Date.now(),
        sleep: () => Promise.resolve(),
        store,
        addressHints: hints,
        openTransport: () => {
          const transport = createSimCentral({ socketPath: broker.socketPath, name: `${label}-${counter++}` });
          const recorded: CentralTransport = {
            scan: (options) => {
              calls.push('scan');
              return transport.scan(options);
            },
            connect: (discovery, options) => {
              calls.push(`connect ${discovery.address}`);
              return transport.connect(discovery, options);
            },
            close: () => transport.close(),
          };
          return Promise.resolve(recorded);
        },
      },
      { scanMs: 5000, connectMs: 3000, answerMs: 5000, pairConfirmMs: 5000, attempts: 1, backoffMs: 10 },
    );
  return { store, seed, client };
}

async function pair(owner: Awaited<ReturnType<typeof phone>>, car: FakeCar): Promise<VehicleRecord> {
  await car.setPairing(true);
  const record = await owner.client(memoryHints(), []).pair({ seed: owner.seed, phoneName: 'test phone', confirmCode: () => Promise.resolve(true) });
  await car.setPairing(false);
  return record;
}

async function unlock(client: CarkeyClient, record: VehicleRecord, seed: Uint8Array): Promise<string> {
  return client.withConnection(record, seed, async (connection) => (await connection.unlock()).status);
}

describe('CarkeyClient address hints', () => {
  it('without a hint scans first and remembers where it found the car', async () => {
    const car = await startCar('car-a');
    const owner = await phone('plain');
    const record = await pair(owner, car);
    const hints = memoryHints();
    const calls: Calls = [];
    expect(await unlock(owner.client(hints, calls), record, owner.seed)).toBe('ok');
    expect(calls).toEqual(['scan', 'connect car-a']);
    expect(hints.map.get(toHex(record.vehicleId))).toBe('car-a');
  });

  it('with a hint connects to it before scanning and uses that link when the scan finds the car there', async () => {
    const car = await startCar('car-b');
    const owner = await phone('hinted');
    const record = await pair(owner, car);
    const calls: Calls = [];
    expect(await unlock(owner.client(memoryHints({ [toHex(record.vehicleId)]: 'car-b' }), calls), record, owner.seed)).toBe('ok');
    expect(calls).toEqual(['connect car-b', 'scan']);
    expect(car.commands).toEqual(['unlock']);
  });

  it('a stale hint (nobody there) costs nothing but the scan, and the hint follows the car', async () => {
    const car = await startCar('car-c');
    const owner = await phone('stale');
    const record = await pair(owner, car);
    const hints = memoryHints({ [toHex(record.vehicleId)]: 'gone-car' });
    const calls: Calls = [];
    expect(await unlock(owner.client(hints, calls), record, owner.seed)).toBe('ok');
    expect(calls).toEqual(['connect gone-car', 'scan', 'connect car-c']);
    expect(hints.map.get(toHex(record.vehicleId))).toBe('car-c');
  });

  it('a hint naming another carkey car: the scan picks the right car by its rotating id, the other gets nothing', async () => {
    const car = await startCar('car-d', 'car genuine');
    const owner = await phone('moved');
    const record = await pair(owner, car);
    const other = await startCar('car-e', 'car other', new Uint8Array(32).fill(7));
    const calls: Calls = [];
    expect(await unlock(owner.client(memoryHints({ [toHex(record.vehicleId)]: 'car-e' }), calls), record, owner.seed)).toBe('ok');
    expect(calls).toEqual(['connect car-e', 'scan', 'connect car-d']);
    expect(car.commands).toEqual(['unlock']);
    expect(other.commands).toEqual([]);
  });
});
