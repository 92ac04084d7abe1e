/**
 * A car for the sync worker's unit tests: a real VehicleStore in a fresh
 * state directory, the real CarTime and AuditWriter, an in-memory actuator
 * that records what it was told, and an owner (and a guest) with keys.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { signRemoteCommand } from '../../../src/core/cloud-docs.js';
import { signGrant, signKeyList, type Grant, type KeyList, type KeyListBody } from '../../../src/core/credentials.js';
import { createCrypto } from '../../../src/core/crypto/index.js';
import { vehicleIdOf } from '../../../src/core/identity.js';
import { Command, Permission, type CommandName } from '../../../src/core/roles.js';
import { sealTo } from '../../../src/core/sealed-box.js';
import type { ActuatorPort, HardwareEvent, VehicleState } from '../../../src/vehicle/actuator.js';
import { AuditWriter } from '../../../src/vehicle/audit-writer.js';
import { CarTime } from '../../../src/vehicle/car-time.js';
import { CLOUD_DEFAULTS, type CloudConfig } from '../../../src/vehicle/config.js';
import { PinGuard } from '../../../src/vehicle/pin-guard.js';
import { VehicleStore } from '../../../src/vehicle/store.js';

export const crypto = createCrypto('node');
export const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
export const silent: Logger = pino({ level: 'silent' });
export const DAY = 86_400_000;

export interface Person {
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
}

export function person(): Person {
  const seed = random(32);
  return { seed, publicKey: crypto.publicKeyFromSeed(seed) };
}

export class FakeActuator implements ActuatorPort {
  readonly calls: string[] = [];
  locked = true;
  drive: 'off' | 'ready' = 'off';
  failNext: Error | undefined;
  private act(name: string): Promise<void> {
    this.calls.push(name);
    const failure = this.failNext;
    this.failNext = undefined;
    return failure === undefined ? Promise.resolve() : Promise.reject(failure);
  }
  unlock(): Promise<void> {
    this.locked = false;
    return this.act('unlock');
  }
  lock(): Promise<void> {
    this.locked = true;
    return this.act('lock');
  }
  setDrive(on: boolean): Promise<void> {
    this.drive = on ? 'ready' : 'off';
    return this.act(on ? 'drive-on' : 'drive-off');
  }
  openTrunk(): Promise<void> {
    return this.act('trunk');
  }
  display(): Promise<void> {
    return Promise.resolve();
  }
  clearDisplay(): Promise<void> {
    return Promise.resolve();
  }
  signal(): Promise<void> {
    return Promise.resolve();
  }
  state(): Promise<VehicleState> {
    const lock = this.locked ? 'locked' : 'unlocked';
    return Promise.resolve({ doors: { 'front-left': lock, 'front-right': lock }, drive: this.drive, trunk: 'closed', display: [] });
  }
  onEvent(_handler: (event: HardwareEvent) => void): () => void {
    return () => undefined;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

export interface TestCar {
  readonly dir: string;
  readonly store: VehicleStore;
  readonly time: CarTime;
  readonly audit: AuditWriter;
  readonly actuator: FakeActuator;
  readonly pinGuard: PinGuard;
  readonly vehicleId: Uint8Array;
  readonly owner: Person;
  keyList: KeyList | undefined;
  readonly changes: KeyList[];
  readonly onKeyListChanged: (list: KeyList) => void;
  close(): void;
}

/** A car paired with one owner (key list version 1, epoch 0) unless `paired` is false. */
export function openCar(options: { paired?: boolean; dir?: string } = {}): TestCar {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'carkey-sync-'));
  const store = VehicleStore.open(join(dir, 'state'), { crypto, now: () => Date.now(), random });
  const time = new CarTime({ store, wallClock: () => Date.now(), monotonic: () => performance.now(), logger: silent });
  // A new car trusts no clock yet; pairing (physical presence) anchors it, as here.
  time.resetByPresence(Date.now());
  const vehicleId = vehicleIdOf(crypto, store.identity.publicKey);
  const owner = person();
  const changes: KeyList[] = [];
  const car: TestCar = {
    dir,
    store,
    time,
    audit: new AuditWriter({ store, logger: silent }),
    actuator: new FakeActuator(),
    pinGuard: new PinGuard(),
    vehicleId,
    owner,
    keyList: undefined,
    changes,
    onKeyListChanged: (list) => {
      car.keyList = list;
      changes.push(list);
    },
    close: () => {
      if (!store.closed) store.close();
    },
  };
  if (options.paired ?? true) {
    const list = signKeyList(crypto, owner.seed, { vehicleId, version: 1, issuedAt: Date.now(), owners: [owner.publicKey], revokedSerials: [], revokedKeys: [] });
    store.replaceKeyList(list.bytes, list.version, { via: 'test' }, list.epoch);
    car.keyList = list;
  }
  return car;
}

export function removeCar(car: TestCar): void {
  car.close();
  rmSync(car.dir, { recursive: true, force: true });
}

/** The next list after the car's, signed by `signer` (default the owner). */
export function nextList(car: TestCar, body: Partial<KeyListBody> = {}, signer: Person = car.owner): KeyList {
  const base = car.keyList;
  return signKeyList(crypto, signer.seed, {
    vehicleId: car.vehicleId,
    epoch: base?.epoch ?? 0,
    version: (base?.version ?? 0) + 1,
    issuedAt: Date.now(),
    owners: base?.owners ?? [car.owner.publicKey],
    revokedSerials: base?.revokedSerials ?? [],
    revokedKeys: base?.revokedKeys ?? [],
    ...body,
  });
}

export function guestGrant(car: TestCar, guest: Person, permissions: number = Permission.unlock | Permission.lock | Permission.status): Grant {
  return signGrant(crypto, car.owner.seed, { vehicleId: car.vehicleId, serial: random(8), subject: guest.publicKey, role: 'guest', permissions, notBefore: Date.now() - DAY, notAfter: Date.now() + DAY });
}

export interface SentCommand {
  readonly commandId: Uint8Array;
  readonly box: Uint8Array;
  readonly caller: Uint8Array;
  readonly expiresAt: number;
}

/** A phone-signed remote command sealed to the car, as a phone would post it. */
export function remoteCommand(car: TestCar, from: Person, command: CommandName, options: { grant?: Grant; args?: Uint8Array; lifetimeMs?: number; vehicleId?: Uint8Array; issuedAt?: number } = {}): SentCommand {
  const commandId = random(16);
  const issuedAt = options.issuedAt ?? Date.now();
  const expiresAt = issuedAt + (options.lifetimeMs ?? 60_000);
  const signed = signRemoteCommand(crypto, from.seed, {
    vehicleId: options.vehicleId ?? car.vehicleId,
    commandId,
    issuedAt,
    expiresAt,
    credentialKind: options.grant === undefined ? 0 : 1,
    credential: options.grant?.bytes ?? new Uint8Array(0),
    command: Command[command],
    args: options.args ?? new Uint8Array(0),
  });
  return { commandId, box: sealTo(crypto, random, car.store.identity.publicKey, signed), caller: from.publicKey, expiresAt };
}

export function cloudConfig(url: string, overrides: Partial<CloudConfig> = {}): CloudConfig {
  return { ...CLOUD_DEFAULTS, url, longPollSeconds: 2, requestTimeoutMs: 2000, ...overrides };
}

/** Poll `check` until it holds (no timing assertion: a deadline only bounds a failing test). */
export async function until(check: () => boolean | Promise<boolean>, what: string, deadlineMs = 10_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for: ${what}`);
}
