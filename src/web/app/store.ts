/**
 * The phone's state in IndexedDB (schema in docs/app.md).
 *
 * Database `carkey`, version 1:
 *   identity  (out-of-line key "self"): StoredIdentity (identity.ts); a
 *             device-bound CryptoKey is stored as the structured-clone object.
 *   vehicles  (out-of-line key: vehicle id, 32 hex digits):
 *             { format: 1, record: <the CLI's vehicle file JSON> }, the exact
 *             text of src/phone/vehicle-record.ts, so every record read is
 *             re-validated by the same parser the CLI uses.
 *   outbox    reserved for cloud features (unused while there is no cloud).
 *
 * Guarantees: every read-modify-write of a vehicle runs inside one
 * readwrite transaction on the record as stored (two tabs cannot lose each
 * other's updates); a record that does not parse is CK_PHONE_STORE_CORRUPT
 * naming it; the identity is written once and never overwritten except by
 * an explicit import onto an empty store.
 */
import type { Crypto } from '../../core/crypto/policy.js';
import { CarkeyError } from '../../core/errors.js';
import { toHex } from '../../core/bytes.js';
import { parseVehicleRecord, serializeVehicleRecord, type VehicleRecord } from '../../phone/vehicle-record.js';
import type { StoredIdentity } from './identity.js';

export const DB_NAME = 'carkey';
export const DB_VERSION = 1;
const IDENTITY = 'identity';
const VEHICLES = 'vehicles';
const OUTBOX = 'outbox';
const SELF = 'self';

interface StoredVehicle {
  readonly format: 1;
  readonly record: string;
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new CarkeyError('CK_STORE_IO', `IndexedDB: ${req.error?.message ?? 'request failed'}`));
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error instanceof DOMException && tx.error.name !== 'AbortError' ? new CarkeyError('CK_STORE_IO', `IndexedDB: ${tx.error.message}`) : abortReason(tx));
    tx.onerror = () => undefined;
  });
}

const reasons = new WeakMap<IDBTransaction, unknown>();
function abortReason(tx: IDBTransaction): Error {
  const reason = reasons.get(tx);
  return reason instanceof Error ? reason : new CarkeyError('CK_STORE_IO', 'IndexedDB transaction aborted');
}

export function openDatabase(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(IDENTITY)) db.createObjectStore(IDENTITY);
      if (!db.objectStoreNames.contains(VEHICLES)) db.createObjectStore(VEHICLES);
      if (!db.objectStoreNames.contains(OUTBOX)) db.createObjectStore(OUTBOX, { autoIncrement: true });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new CarkeyError('CK_STORE_IO', `IndexedDB cannot be opened: ${req.error?.message ?? 'unknown'}`));
    req.onblocked = () => reject(new CarkeyError('CK_PHONE_STORE_BUSY', 'close the other carkey tabs and reload'));
  });
}

function parseStored(crypto: Crypto, key: string, value: unknown): VehicleRecord {
  const stored = value as Partial<StoredVehicle> | null;
  if (typeof stored !== 'object' || stored === null || stored.format !== 1 || typeof stored.record !== 'string') {
    throw new CarkeyError('CK_PHONE_STORE_CORRUPT', `vehicles/${key}: not a vehicle record`);
  }
  const record = parseVehicleRecord(crypto, stored.record, `vehicles/${key}`);
  if (toHex(record.vehicleId) !== key) throw new CarkeyError('CK_PHONE_STORE_CORRUPT', `vehicles/${key}: stored under another vehicle id`);
  return record;
}

export class WebStore {
  private vehicles: VehicleRecord[] = [];
  private identityValue: StoredIdentity | undefined;

  private constructor(
    private readonly db: IDBDatabase,
    private readonly crypto: Crypto,
  ) {}

  static async open(crypto: Crypto): Promise<WebStore> {
    const store = new WebStore(await openDatabase(), crypto);
    await store.reload();
    return store;
  }

  /** Re-read everything (after another tab changed it). */
  async reload(): Promise<void> {
    const tx = this.db.transaction([IDENTITY, VEHICLES], 'readonly');
    const identity = request(tx.objectStore(IDENTITY).get(SELF) as IDBRequest<StoredIdentity | undefined>);
    const keys = request(tx.objectStore(VEHICLES).getAllKeys());
    const values = request(tx.objectStore(VEHICLES).getAll());
    const [id, k, v] = await Promise.all([identity, keys, values]);
    this.identityValue = id;
    this.vehicles = k.map((key, i) => parseStored(this.crypto, typeof key === 'string' ? key : '', v[i]));
    this.vehicles.sort((a, b) => a.addedAt - b.addedAt);
  }

  identity(): StoredIdentity | undefined {
    return this.identityValue;
  }

  /** Store the identity; refuses to replace one. */
  async createIdentity(identity: StoredIdentity): Promise<void> {
    const tx = this.db.transaction(IDENTITY, 'readwrite');
    const objects = tx.objectStore(IDENTITY);
    const existing = objects.get(SELF);
    existing.onsuccess = () => {
      if (existing.result !== undefined) {
        reasons.set(tx, new CarkeyError('CK_PHONE_IDENTITY_EXISTS', 'this app already has a key'));
        tx.abort();
        return;
      }
      objects.put(identity, SELF);
    };
    await done(tx);
    this.identityValue = identity;
  }

  listVehicles(): VehicleRecord[] {
    return [...this.vehicles];
  }

  /** Read-modify-write one vehicle inside a single transaction. */
  async updateVehicle(vehicleId: Uint8Array, change: (current: VehicleRecord | undefined) => VehicleRecord): Promise<VehicleRecord> {
    const key = toHex(vehicleId);
    const tx = this.db.transaction(VEHICLES, 'readwrite');
    const objects = tx.objectStore(VEHICLES);
    const read = objects.get(key);
    let updated: VehicleRecord | undefined;
    read.onsuccess = () => {
      try {
        const current = read.result === undefined ? undefined : parseStored(this.crypto, key, read.result);
        const next = change(current);
        if (toHex(next.vehicleId) !== key) throw new CarkeyError('CK_INTERNAL', 'a change may not move a record to another vehicle id');
        const stored: StoredVehicle = { format: 1, record: serializeVehicleRecord(next) };
        objects.put(stored, key);
        updated = next;
      } catch (error) {
        reasons.set(tx, error);
        tx.abort();
      }
    };
    await done(tx);
    if (updated === undefined) throw new CarkeyError('CK_INTERNAL', 'vehicle update did not run');
    const result = updated;
    this.vehicles = [...this.vehicles.filter((record) => toHex(record.vehicleId) !== key), result].sort((a, b) => a.addedAt - b.addedAt);
    return result;
  }

  async removeVehicle(vehicleId: Uint8Array): Promise<void> {
    const key = toHex(vehicleId);
    const tx = this.db.transaction(VEHICLES, 'readwrite');
    tx.objectStore(VEHICLES).delete(key);
    await done(tx);
    this.vehicles = this.vehicles.filter((record) => toHex(record.vehicleId) !== key);
  }

  /** Replace everything with an imported state (only onto a store without a key). */
  async importAll(identity: StoredIdentity, vehicles: readonly VehicleRecord[]): Promise<void> {
    const tx = this.db.transaction([IDENTITY, VEHICLES], 'readwrite');
    const ids = tx.objectStore(IDENTITY);
    const existing = ids.get(SELF);
    existing.onsuccess = () => {
      if (existing.result !== undefined) {
        reasons.set(tx, new CarkeyError('CK_PHONE_IDENTITY_EXISTS', 'import moves a key onto a new phone: this app already has one (use a fresh browser profile, or clear this site’s data first)'));
        tx.abort();
        return;
      }
      ids.put(identity, SELF);
      const objects = tx.objectStore(VEHICLES);
      for (const record of vehicles) objects.put({ format: 1, record: serializeVehicleRecord(record) } satisfies StoredVehicle, toHex(record.vehicleId));
    };
    await done(tx);
    await this.reload();
  }
}
