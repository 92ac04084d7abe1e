/**
 * The phone key store: this phone's identity and what it knows about each vehicle.
 *
 * Layout (HOME is `--home DIR`, else $CARKEY_HOME, else ~/.config/carkey):
 *   HOME/                      mode 0700
 *     identity.json            mode 0600: { format, publicKey, createdAt, seed }
 *                              seed = { kind: "plain", seed } or
 *                                     { kind: "encrypted", ...seed-encryption.ts }
 *     vehicles/                mode 0700
 *       <vehicle id hex>.json  mode 0600: one VehicleRecord (vehicle-record.ts)
 *     store.lock               present only while a change is being written
 *
 * Guarantees:
 * - Files are written atomically (temp + fsync + rename + directory fsync);
 *   read-modify-write cycles hold `store.lock`, so two carkey processes never
 *   lose each other's updates.
 * - Everything read is validated; a damaged file is CK_PHONE_STORE_CORRUPT
 *   naming it, a file or directory readable by others is
 *   CK_STORE_INSECURE_PERMISSIONS. Nothing is created by read-only calls.
 * - The identity is never overwritten. The seed leaves this module only
 *   through `unlockSeed` (after the passphrase when encrypted), and is checked
 *   against the stored public key. No key material is ever put in an error.
 * - No process-global state: every dependency (crypto, RNG, clock, sleep) is
 *   injected per instance.
 */
import { join, resolve } from 'node:path';
import { equalBytes, fromHex, toHex } from '../core/bytes.js';
import type { Clock, Crypto, RandomSource } from '../core/crypto/index.js';
import { CarkeyError } from '../core/errors.js';
import { keyIdOf } from '../core/identity.js';
import { checkPrivateDirIfPresent, ensurePrivateDir, listFiles, readPrivateFile, readPrivateJson, withFileLock, writeFileAtomic } from './private-files.js';
import { decryptSeed, encryptSeed, parseEncryptedSeed, type EncryptedSeed } from './seed-encryption.js';
import { parseVehicleRecord, serializeVehicleRecord, vehicleIdHex, type VehicleRecord } from './vehicle-record.js';

export const IDENTITY_FORMAT = 1;
const MAX_IDENTITY_BYTES = 4096;
const MAX_VEHICLE_FILE_BYTES = 1024 * 1024;
const VEHICLE_FILE = /^[0-9a-f]{32}\.json$/;

/** Pick the home directory: flag, then $CARKEY_HOME, then ~/.config/carkey. */
export function resolveHome(flag: string | undefined, env: Readonly<Record<string, string | undefined>>, userHome: string): string {
  if (flag !== undefined && flag !== '') return resolve(flag);
  const fromEnv = env.CARKEY_HOME;
  if (fromEnv !== undefined && fromEnv !== '') return resolve(fromEnv);
  return join(userHome, '.config', 'carkey');
}

export interface KeyStorePaths {
  readonly home: string;
  readonly identity: string;
  readonly vehicles: string;
  readonly lock: string;
}

export function keyStorePaths(home: string): KeyStorePaths {
  return { home, identity: join(home, 'identity.json'), vehicles: join(home, 'vehicles'), lock: join(home, 'store.lock') };
}

/** The public part of the identity (no passphrase needed). */
export interface StoredIdentity {
  readonly publicKey: Uint8Array;
  readonly keyId: string;
  readonly encrypted: boolean;
  readonly createdAt: number;
}

type SeedField = { readonly kind: 'plain'; readonly seed: Uint8Array } | { readonly kind: 'encrypted'; readonly encrypted: EncryptedSeed };

interface IdentityFile {
  readonly publicKey: Uint8Array;
  readonly createdAt: number;
  readonly seed: SeedField;
}

/** Where a passphrase comes from when one is needed (undefined: none available). */
export type PassphraseSource = () => Promise<string | undefined>;

export interface KeyStoreDeps {
  readonly crypto: Crypto;
  readonly random: RandomSource;
  readonly clock: Clock;
  readonly sleep: (ms: number) => Promise<void>;
}

export class KeyStore {
  readonly paths: KeyStorePaths;

  constructor(home: string, private readonly deps: KeyStoreDeps) {
    this.paths = keyStorePaths(resolve(home));
  }

  // --- identity ------------------------------------------------------------

  hasIdentity(): boolean {
    return this.readIdentityFile() !== undefined;
  }

  /** The public identity; CK_PHONE_NO_IDENTITY when there is none. */
  identity(): StoredIdentity {
    const file = this.requireIdentityFile();
    return { publicKey: file.publicKey, keyId: keyIdOf(this.deps.crypto, file.publicKey), encrypted: file.seed.kind === 'encrypted', createdAt: file.createdAt };
  }

  /** Create the identity from a fresh seed; encrypt it when a passphrase is given. */
  async createIdentity(passphrase: string | undefined): Promise<StoredIdentity> {
    const { crypto, random, clock } = this.deps;
    ensurePrivateDir(this.paths.home);
    return withFileLock(this.paths.lock, this.lockOptions(), async () => {
      if (this.readIdentityFile() !== undefined) throw new CarkeyError('CK_PHONE_IDENTITY_EXISTS', this.paths.identity, { path: this.paths.identity });
      const seed = random(32);
      const publicKey = crypto.publicKeyFromSeed(seed);
      const seedField = passphrase === undefined ? { kind: 'plain' as const, seed: toHex(seed) } : { kind: 'encrypted' as const, ...(await encryptSeed(crypto, random, seed, passphrase)) };
      seed.fill(0);
      const createdAt = clock();
      const text = `${JSON.stringify({ format: IDENTITY_FORMAT, publicKey: toHex(publicKey), createdAt, seed: seedField }, null, 2)}\n`;
      writeFileAtomic(this.paths.identity, new TextEncoder().encode(text));
      return { publicKey, keyId: keyIdOf(crypto, publicKey), encrypted: passphrase !== undefined, createdAt };
    });
  }

  /** The seed, asking `passphrase` when it is encrypted. */
  async unlockSeed(passphrase: PassphraseSource): Promise<Uint8Array> {
    const file = this.requireIdentityFile();
    let seed: Uint8Array;
    if (file.seed.kind === 'plain') seed = Uint8Array.from(file.seed.seed);
    else {
      const given = await passphrase();
      if (given === undefined) throw new CarkeyError('CK_PHONE_NEED_PASSPHRASE');
      seed = await decryptSeed(this.deps.crypto, file.seed.encrypted, given);
    }
    if (!equalBytes(this.deps.crypto.publicKeyFromSeed(seed), file.publicKey)) {
      throw new CarkeyError('CK_PHONE_STORE_CORRUPT', `${this.paths.identity}: the key does not match its public key`, { path: this.paths.identity });
    }
    return seed;
  }

  private requireIdentityFile(): IdentityFile {
    const file = this.readIdentityFile();
    if (file === undefined) throw new CarkeyError('CK_PHONE_NO_IDENTITY', `no ${this.paths.identity}`, { path: this.paths.identity });
    return file;
  }

  private readIdentityFile(): IdentityFile | undefined {
    const file = readPrivateJson(this.paths.home, this.paths.identity, MAX_IDENTITY_BYTES, IDENTITY_FORMAT);
    if (file === undefined) return undefined;
    const { json, corrupt } = file;
    const publicKey = typeof json.publicKey === 'string' ? fromHex(json.publicKey) : undefined;
    if (publicKey?.length !== 32 || !this.deps.crypto.checkPublicKey(publicKey).ok) throw corrupt('publicKey is not a valid public key');
    const createdAt = json.createdAt;
    if (typeof createdAt !== 'number' || !Number.isSafeInteger(createdAt) || createdAt < 0) throw corrupt('createdAt must be a time in ms');
    const seedJson = json.seed;
    if (typeof seedJson !== 'object' || seedJson === null || Array.isArray(seedJson)) throw corrupt('seed must be an object');
    const seedRecord = seedJson as Record<string, unknown>;
    let seed: SeedField;
    if (seedRecord.kind === 'plain') {
      const plain = typeof seedRecord.seed === 'string' ? fromHex(seedRecord.seed) : undefined;
      if (plain?.length !== 32) throw corrupt('seed must be 32 bytes of hex');
      seed = { kind: 'plain', seed: plain };
    } else if (seedRecord.kind === 'encrypted') {
      seed = { kind: 'encrypted', encrypted: parseEncryptedSeed(seedRecord, this.paths.identity) };
    } else throw corrupt('unknown seed kind');
    return { publicKey, createdAt, seed };
  }

  // --- vehicles --------------------------------------------------------------

  /** Every stored vehicle, sorted by name. */
  listVehicles(): VehicleRecord[] {
    if (!checkPrivateDirIfPresent(this.paths.home) || !checkPrivateDirIfPresent(this.paths.vehicles)) return [];
    const records = listFiles(this.paths.vehicles)
      .filter((name) => VEHICLE_FILE.test(name))
      .map((name) => this.readVehicleFile(join(this.paths.vehicles, name)))
      .filter((record): record is VehicleRecord => record !== undefined);
    return records.sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * The vehicle called `name`, or the only one when `name` is undefined.
   * CK_PHONE_NOT_PAIRED (none / no such name), CK_PHONE_AMBIGUOUS_VEHICLE (several).
   */
  selectVehicle(name: string | undefined): VehicleRecord {
    const all = this.listVehicles();
    if (name !== undefined) {
      const found = all.find((record) => record.name === name);
      if (found === undefined) {
        const known = all.map((record) => record.name);
        throw new CarkeyError('CK_PHONE_NOT_PAIRED', known.length === 0 ? `"${name}" (no vehicles stored yet)` : `"${name}" (known: ${known.join(', ')})`);
      }
      return found;
    }
    const [only, ...others] = all;
    if (only === undefined) throw new CarkeyError('CK_PHONE_NOT_PAIRED', 'no vehicles stored yet');
    if (others.length > 0) throw new CarkeyError('CK_PHONE_AMBIGUOUS_VEHICLE', `known: ${all.map((record) => record.name).join(', ')}`);
    return only;
  }

  /** Re-read one vehicle by id (undefined when it is not stored). */
  vehicleById(vehicleId: Uint8Array): VehicleRecord | undefined {
    return this.readVehicleFile(this.vehiclePath(toHex(vehicleId)));
  }

  /**
   * Read-modify-write one vehicle under the store lock. `change` sees the
   * current record (undefined for a new vehicle) and returns the new one; the
   * local name must stay unique (CK_PHONE_VEHICLE_EXISTS).
   */
  async updateVehicle(vehicleId: Uint8Array, change: (current: VehicleRecord | undefined) => VehicleRecord): Promise<VehicleRecord> {
    ensurePrivateDir(this.paths.home);
    ensurePrivateDir(this.paths.vehicles);
    const idHex = toHex(vehicleId);
    return withFileLock(this.paths.lock, this.lockOptions(), () => {
      const path = this.vehiclePath(idHex);
      const next = change(this.readVehicleFile(path));
      if (vehicleIdHex(next) !== idHex) throw new CarkeyError('CK_INTERNAL', 'a vehicle record cannot change its vehicle id');
      const clash = this.listVehicles().find((other) => other.name === next.name && vehicleIdHex(other) !== idHex);
      if (clash !== undefined) throw new CarkeyError('CK_PHONE_VEHICLE_EXISTS', `"${next.name}"`);
      const text = serializeVehicleRecord(next);
      parseVehicleRecord(this.deps.crypto, text, path); // never write what we could not read back
      writeFileAtomic(path, new TextEncoder().encode(text));
      return next;
    });
  }

  private vehiclePath(idHex: string): string {
    return join(this.paths.vehicles, `${idHex}.json`);
  }

  private readVehicleFile(path: string): VehicleRecord | undefined {
    const bytes = readPrivateFile(path, MAX_VEHICLE_FILE_BYTES);
    if (bytes === undefined) return undefined;
    const record = parseVehicleRecord(this.deps.crypto, bytes.toString('utf8'), path);
    if (join(this.paths.vehicles, `${vehicleIdHex(record)}.json`) !== path) {
      throw new CarkeyError('CK_PHONE_STORE_CORRUPT', `${path}: file name does not match its vehicle id`, { path });
    }
    return record;
  }

  private lockOptions(): { now: Clock; sleep: (ms: number) => Promise<void> } {
    return { now: this.deps.clock, sleep: this.deps.sleep };
  }
}
