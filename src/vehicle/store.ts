/**
 * carkeyd's durable state: one SQLite database (better-sqlite3) in the state
 * directory, plus the identity file, behind one typed class.
 *
 * What it holds: the current key list (opaque bytes from core, its u32
 * version, when it was accepted), the highest key-list version ever accepted,
 * the trusted time floor, the 32-byte advertising secret, small typed
 * metadata for pairing/bookkeeping, and the hash-chained audit log
 * (audit.ts) with its signed checkpoints.
 *
 * Guarantees:
 * - Crash safety (DESIGN invariant 5): `journal_mode=WAL`, `synchronous=FULL`
 *   (every commit is fsynced before the call returns), `foreign_keys=ON`.
 *   Every state change is one transaction; a change and the audit entry that
 *   records it commit together or not at all. After a kill or power cut at
 *   any instant the store opens, holds every change a call returned from, and
 *   its audit chain verifies with no seq gap (test/vehicle/crash.test.ts).
 * - Key lists never roll back: `replaceKeyList` refuses (CK_KEYLIST_ROLLBACK)
 *   any version <= the highest version accepted in the current epoch, and
 *   (CK_KEYLIST_WRONG_EPOCH) a list of another epoch; a factory reset starts
 *   the next epoch. The owner-signature and version-step checks are the
 *   caller's (core's); this is the last line of defence.
 * - The time floor only rises (`raiseTimeFloor` takes the max), except by
 *   `resetTimeFloor` / `factoryReset`, which physical presence vouches for.
 * - Audit entries get seq 1, 2, 3... with no gap; every `checkpointInterval`
 *   entries (default 64), and at `close()`, the chain head is signed by the
 *   vehicle key in the same transaction as the entry it covers.
 * - Bounded audit log: `pruneAudit(max)` deletes the oldest entries up to a
 *   signed checkpoint (the anchor, kept in meta `audit.anchor`) and records
 *   it with an 'audit-pruned' entry, in one transaction; the retained log
 *   verifies from the anchor (audit.ts). Meta keys under `audit.` are
 *   reserved for this.
 * - A full disk does not stop `open`: when SQLite cannot create the WAL's
 *   shared-memory file, the database is opened in exclusive locking mode
 *   (WAL index in heap memory; `sharedMemory` is false, and read-only
 *   inspection by another process waits until carkeyd stops). Reads work;
 *   writes fail with CK_STORE_IO (sqlite SQLITE_FULL) until space is freed.
 * - One process at a time: `open` holds the state-directory lock
 *   (state-dir.ts) until `close`; a second open gets CK_STORE_LOCKED.
 * - `open` runs `PRAGMA quick_check` (CK_STORE_CORRUPT on failure), applies
 *   schema migrations in one transaction each, and refuses a database that
 *   belongs to another identity or a newer schema.
 * - Errors are CarkeyErrors: CK_STORE_CORRUPT, CK_STORE_IO, CK_STORE_LOCKED,
 *   CK_STORE_INSECURE_PERMISSIONS, CK_KEYLIST_ROLLBACK, CK_CODEC_BAD_VALUE
 *   (bad argument), CK_KEYLIST_TOO_LARGE.
 *
 * The clock and RNG are injected (`now`, `random`). All methods are
 * synchronous. `atomically(fn)` groups several calls into one transaction
 * (e.g. a pairing's metadata and its audit entry).
 *
 * Read-only inspection (`carkeyd audit verify`) uses `verifyAuditDatabase`,
 * which neither takes the lock nor writes, so it works while carkeyd runs.
 */
import { existsSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { StatementCache } from '../common/statement-cache.js';
import { equalBytes, toHex } from '../core/bytes.js';
import type { Clock, Crypto, RandomSource } from '../core/crypto/index.js';
import { CarkeyError, toCarkeyError, type Result } from '../core/errors.js';
import {
  AUDIT_GENESIS_HASH,
  AuditChainVerifier,
  auditLinkHash,
  canonicalAuditFields,
  DEFAULT_CHECKPOINT_INTERVAL,
  signCheckpoint,
  type AuditCheckpoint,
  type AuditEntry,
  type AuditFields,
  type AuditFieldValue,
  type AuditKind,
  type AuditVerification,
} from '../core/audit.js';
import { loadOrCreateIdentity, readIdentityFile, VehicleIdentity } from './identity-file.js';
import {
  assertPrivateMode,
  createPrivateFileIfMissing,
  fsyncDirectory,
  isMissingFileError,
  prepareStateDir,
  StateLock,
  stateDirLayout,
  storeIoError,
  type StateDirLayout,
} from './state-dir.js';

export const STORE_SCHEMA_VERSION = 2;
export const KEY_LIST_MAX_VERSION = 0xffff_ffff;
export const KEY_LIST_MAX_BYTES = 1024 * 1024;
export const ADVERTISING_SECRET_LENGTH = 32;
export const META_KEY_PATTERN = /^[a-z][a-z0-9._-]{0,63}$/;
export const META_MAX_VALUE_LENGTH = 4096;
export const AUDIT_READ_MAX_LIMIT = 10_000;
/** Meta key of the signed checkpoint a pruned audit log starts after. */
export const AUDIT_ANCHOR_META = 'audit.anchor';
const RESERVED_META_PREFIX = 'audit.';
/** Most entries one `pruneAudit` call deletes (bounds the time of one transaction). */
export const AUDIT_PRUNE_MAX_BATCH = 50_000;

export interface VehicleStoreOptions {
  readonly crypto: Crypto;
  /** wall clock (ms); audit times and acceptance times are floor(now()) */
  readonly now: Clock;
  /** randomness for a new identity seed and the advertising secret */
  readonly random: RandomSource;
  /** sign a checkpoint after every this-many audit entries (default 64) */
  readonly checkpointInterval?: number;
  /** run PRAGMA quick_check at open (default true) */
  readonly integrityCheck?: boolean;
  /**
   * Create the car identity and database when the directory has none (default
   * true). `carkeyd run` passes false: only `carkeyd init` creates a car, so a
   * new or mistyped --state never silently cuts off every paired phone.
   */
  readonly create?: boolean;
}

export interface StoredKeyList {
  readonly bytes: Uint8Array;
  readonly version: number;
  /** ms timestamp of acceptance (the store's clock) */
  readonly acceptedAt: number;
}

export interface KeyListReplacement {
  readonly keyList: StoredKeyList;
  /** the 'key-list' audit entry committed with it */
  readonly auditEntry: AuditEntry;
}

export type MetaValue = string | number | boolean | null | Uint8Array;

export interface ReadAuditOptions {
  /** first seq to return (default 1) */
  readonly fromSeq?: number;
  /** most entries to return (default and maximum AUDIT_READ_MAX_LIMIT) */
  readonly limit?: number;
}

/** What one `pruneAudit` call did. */
export interface AuditPruning {
  /** first deleted seq */
  readonly fromSeq: number;
  /** last deleted seq: the new anchor */
  readonly throughSeq: number;
  readonly deleted: number;
  /** the 'audit-pruned' entry recording it */
  readonly auditEntry: AuditEntry;
}

export interface VerifyAuditDatabaseOptions {
  /**
   * The vehicle key to verify against, e.g. the one a phone pinned at
   * pairing. Default: the key in identity.key (or, if that file is gone, the
   * key recorded in state.db). Anyone who can write the state directory can
   * re-sign a rewritten log with those, so only a pinned key proves more.
   */
  readonly vehiclePublicKey?: Uint8Array;
}

const MIGRATIONS: readonly { readonly version: number; readonly sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE vehicle (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        public_key BLOB NOT NULL CHECK (length(public_key) = 32),
        advertising_secret BLOB NOT NULL CHECK (length(advertising_secret) = 32),
        time_floor_ms INTEGER NOT NULL CHECK (time_floor_ms >= 0),
        key_list_version INTEGER NOT NULL CHECK (key_list_version BETWEEN 0 AND 4294967295),
        created_at INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE key_list (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL CHECK (version BETWEEN 1 AND 4294967295),
        bytes BLOB NOT NULL,
        accepted_at INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        type TEXT NOT NULL CHECK (type IN ('string', 'number', 'boolean', 'bytes', 'null')),
        value ANY
      ) STRICT;
      CREATE TABLE audit_entry (
        seq INTEGER PRIMARY KEY CHECK (seq >= 1),
        time INTEGER NOT NULL,
        kind TEXT NOT NULL,
        fields TEXT NOT NULL,
        hash BLOB NOT NULL CHECK (length(hash) = 64)
      ) STRICT;
      CREATE TABLE audit_checkpoint (
        seq INTEGER PRIMARY KEY REFERENCES audit_entry (seq),
        hash BLOB NOT NULL CHECK (length(hash) = 64),
        signature BLOB NOT NULL CHECK (length(signature) = 64),
        created_at INTEGER NOT NULL
      ) STRICT;
    `,
  },
  {
    // The factory-reset epoch of key lists (credentials.ts "Version policy").
    version: 2,
    sql: `ALTER TABLE vehicle ADD COLUMN key_list_epoch INTEGER NOT NULL DEFAULT 0 CHECK (key_list_epoch BETWEEN 0 AND 4294967295);`,
  },
];

// --- row decoding: a tampered or foreign database gives CK_STORE_CORRUPT, never a wrong type ---

type Row = Readonly<Record<string, unknown>>;

/**
 * Refuse a state directory that holds no car yet (missing, empty, or a typo):
 * CK_STORE_NOT_INITIALIZED naming the directory and `carkeyd init`. A
 * directory with state.db but no identity.key goes on to open(), which says
 * to restore identity.key from backup.
 */
export function assertInitialized(dir: string): void {
  const layout = stateDirLayout(dir);
  if (existsSync(layout.identityPath) || existsSync(layout.databasePath)) return;
  const what = existsSync(layout.dir) ? 'holds no car identity (identity.key)' : 'does not exist';
  throw new CarkeyError(
    'CK_STORE_NOT_INITIALIZED',
    `${layout.dir} ${what}: a new or mistyped --state/stateDir? Point it at the car's state directory, or create a new car identity there with: carkeyd init --state ${layout.dir} (phones paired with another identity will not recognise it)`,
    { path: layout.dir },
  );
}

function corrupt(detail: string): CarkeyError {
  return new CarkeyError('CK_STORE_CORRUPT', detail);
}

function asRow(value: unknown): Row | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) throw corrupt('unexpected row shape');
  return value as Row;
}

function intColumn(row: Row, name: string): number {
  const value = row[name];
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw corrupt(`column ${name} is not an integer`);
  return value;
}

function textColumn(row: Row, name: string): string {
  const value = row[name];
  if (typeof value !== 'string') throw corrupt(`column ${name} is not text`);
  return value;
}

function blobColumn(row: Row, name: string): Uint8Array {
  const value = row[name];
  if (!(value instanceof Uint8Array)) throw corrupt(`column ${name} is not a blob`);
  return Uint8Array.from(value);
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function parseFields(text: string, seq: number): AuditFields {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw corrupt(`audit entry ${seq}: fields are not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw corrupt(`audit entry ${seq}: fields are not an object`);
  const fields: Record<string, AuditFieldValue> = {};
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (value !== null && typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw corrupt(`audit entry ${seq}: field ${key} is not a scalar`);
    }
    fields[key] = value;
  }
  return fields;
}

function entryFromRow(row: Row): AuditEntry {
  const seq = intColumn(row, 'seq');
  return { seq, time: intColumn(row, 'time'), kind: textColumn(row, 'kind'), fields: parseFields(textColumn(row, 'fields'), seq), hash: blobColumn(row, 'hash') };
}

function checkpointFromRow(row: Row): AuditCheckpoint {
  return { seq: intColumn(row, 'seq'), hash: blobColumn(row, 'hash'), signature: blobColumn(row, 'signature') };
}

/** Anchor as stored in meta: u64be seq ‖ hash (64) ‖ signature (64). */
function encodeAnchor(checkpoint: AuditCheckpoint): Buffer {
  const out = Buffer.alloc(8 + 64 + 64);
  out.writeBigUInt64BE(BigInt(checkpoint.seq), 0);
  out.set(checkpoint.hash, 8);
  out.set(checkpoint.signature, 72);
  return out;
}

function decodeAnchor(value: unknown): AuditCheckpoint {
  if (!(value instanceof Uint8Array) || value.length !== 136) throw corrupt(`meta ${AUDIT_ANCHOR_META} is not a 136-byte checkpoint`);
  const bytes = Uint8Array.from(value);
  const seq = Number(new DataView(bytes.buffer).getBigUint64(0));
  if (!Number.isSafeInteger(seq) || seq < 1) throw corrupt(`meta ${AUDIT_ANCHOR_META} has a bad seq`);
  return { seq, hash: bytes.slice(8, 72), signature: bytes.slice(72, 136) };
}

function readAnchor(db: Database.Database): AuditCheckpoint | undefined {
  const row = asRow(db.prepare('SELECT type, value FROM meta WHERE key = ?').get(AUDIT_ANCHOR_META));
  if (row === undefined) return undefined;
  if (textColumn(row, 'type') !== 'bytes') throw corrupt(`meta ${AUDIT_ANCHOR_META} is not bytes`);
  return decodeAnchor(row['value']);
}

function sqliteCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' && error.code.startsWith('SQLITE_')) return error.code;
  return undefined;
}

/** A node:fs failure (ENOENT, EACCES, ENOSPC...). */
function isErrnoError(error: unknown): boolean {
  return error instanceof Error && 'errno' in error && 'code' in error && typeof error.code === 'string' && /^E[A-Z]+$/.test(error.code);
}

/** Map a better-sqlite3 or node:fs failure to the catalog. */
function storeError(error: unknown, path: string): CarkeyError {
  if (error instanceof CarkeyError) return error;
  const code = sqliteCode(error);
  const reason = error instanceof Error ? error.message : String(error);
  if (code !== undefined && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB')) {
    return new CarkeyError('CK_STORE_CORRUPT', `${path}: ${reason}`, { path, sqlite: code }, { cause: error });
  }
  if (code !== undefined) return new CarkeyError('CK_STORE_IO', `${path}: ${reason}`, { path, sqlite: code }, { cause: error });
  if (isErrnoError(error)) return storeIoError('cannot access', path, error);
  return toCarkeyError(error);
}

function readSchemaVersion(db: Database.Database): number {
  const table = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get();
  if (table === undefined) return 0;
  const row = asRow(db.prepare('SELECT coalesce(max(version), 0) AS version FROM schema_version').get());
  return row === undefined ? 0 : intColumn(row, 'version');
}

function checkSchemaSupported(version: number, path: string): void {
  if (version > STORE_SCHEMA_VERSION) {
    throw corrupt(`${path} has schema version ${version}, newer than this carkeyd supports (${STORE_SCHEMA_VERSION}); upgrade carkeyd`);
  }
}

function migrate(db: Database.Database, path: string, now: number): void {
  // Up to date: no write transaction at all (a full or read-only disk can still open).
  const current = readSchemaVersion(db);
  checkSchemaSupported(current, path);
  if (current === MIGRATIONS[MIGRATIONS.length - 1]?.version) return;
  db.transaction(() => {
    let version = readSchemaVersion(db);
    checkSchemaSupported(version, path);
    if (version === 0) db.exec('CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT');
    for (const migration of MIGRATIONS) {
      if (migration.version <= version) continue;
      db.exec(migration.sql);
      db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)').run(migration.version, now);
      version = migration.version;
    }
  }).immediate();
}

/** SQLite failures that mean "no room (or no write access) for the WAL's shared-memory file". */
function isSharedMemoryFailure(error: unknown): boolean {
  const code = sqliteCode(error);
  return code !== undefined && (code === 'SQLITE_FULL' || code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_READONLY'));
}

/**
 * Open the database in WAL mode. If the shared-memory file cannot be made
 * (disk full, read-only), fall back to exclusive locking, where SQLite keeps
 * the WAL index in heap memory and needs no -shm file.
 */
function openWal(path: string): { db: Database.Database; sharedMemory: boolean } {
  const attempt = (exclusive: boolean): Database.Database => {
    const db = new Database(path, { fileMustExist: true });
    try {
      if (exclusive) db.pragma('locking_mode = EXCLUSIVE');
      const journalMode: unknown = db.pragma('journal_mode = WAL', { simple: true });
      if (journalMode !== 'wal') throw new CarkeyError('CK_STORE_IO', `${path}: cannot enable WAL (got ${String(journalMode)})`);
      // Touch the WAL index now, so a missing -shm shows here rather than at the first query.
      db.prepare('SELECT count(*) FROM sqlite_master').get();
      return db;
    } catch (error) {
      db.close();
      throw error;
    }
  };
  try {
    return { db: attempt(false), sharedMemory: true };
  } catch (error) {
    if (!isSharedMemoryFailure(error)) throw error;
    return { db: attempt(true), sharedMemory: false };
  }
}

function quickCheck(db: Database.Database, path: string): void {
  const result: unknown = db.pragma('quick_check', { simple: true });
  if (result !== 'ok') throw corrupt(`${path} failed PRAGMA quick_check: ${String(result)}`);
}

function readVehiclePublicKey(db: Database.Database): Uint8Array | undefined {
  const row = asRow(db.prepare('SELECT public_key FROM vehicle WHERE id = 1').get());
  return row === undefined ? undefined : blobColumn(row, 'public_key');
}

function verifyRows(db: Database.Database, vehiclePublicKey: Uint8Array, crypto: Crypto): Result<AuditVerification> {
  const checkpoints = db
    .prepare('SELECT seq, hash, signature FROM audit_checkpoint ORDER BY seq')
    .all()
    .map((row) => checkpointFromRow(asRow(row) ?? {}));
  const verifier = new AuditChainVerifier(checkpoints, vehiclePublicKey, crypto, { anchor: readAnchor(db) });
  for (const row of db.prepare('SELECT seq, time, kind, fields, hash FROM audit_entry ORDER BY seq').iterate()) {
    if (!verifier.push(entryFromRow(asRow(row) ?? {}))) break;
  }
  return verifier.finish();
}

function checkInteger(value: number, min: number, max: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new CarkeyError('CK_CODEC_BAD_VALUE', `${what} must be an integer in ${min}..${max}`);
  }
}

/** The daemon's state store. Create with `VehicleStore.open`; call `close()` at shutdown. */
export class VehicleStore {
  readonly layout: StateDirLayout;
  readonly identity: VehicleIdentity;
  readonly checkpointInterval: number;
  /** false when the disk had no room for the WAL's shared-memory file at open (exclusive locking; see the header) */
  sharedMemory = true;
  readonly #db: Database.Database;
  /** Each query prepared once (common/statement-cache.ts). */
  readonly #statements: StatementCache;

  #prepare(sql: string): Database.Statement {
    return this.#statements.prepare(sql);
  }
  readonly #lock: StateLock;
  readonly #crypto: Crypto;
  readonly #now: Clock;
  readonly #random: RandomSource;
  #closed = false;

  private constructor(
    layout: StateDirLayout,
    identity: VehicleIdentity,
    db: Database.Database,
    lock: StateLock,
    options: VehicleStoreOptions,
    checkpointInterval: number,
  ) {
    this.layout = layout;
    this.identity = identity;
    this.#db = db;
    this.#statements = new StatementCache(db);
    this.#lock = lock;
    this.#crypto = options.crypto;
    this.#now = options.now;
    this.#random = options.random;
    this.checkpointInterval = checkpointInterval;
  }

  /**
   * Open (creating on first start) the store in `dir`: directory 0700,
   * lock, identity.key, state.db with migrations. On failure nothing stays
   * open and the lock is released.
   */
  static open(dir: string, options: VehicleStoreOptions): VehicleStore {
    const interval = options.checkpointInterval ?? DEFAULT_CHECKPOINT_INTERVAL;
    checkInteger(interval, 1, 1_000_000, 'checkpointInterval');
    const create = options.create ?? true;
    if (!create) assertInitialized(dir);
    const layout = prepareStateDir(dir, { create });
    const lock = StateLock.acquire(layout.lockPath);
    let db: Database.Database | undefined;
    try {
      createPrivateFileIfMissing(layout.databasePath);
      assertPrivateMode(layout.databasePath, statSync(layout.databasePath), 'file');
      const opened = openWal(layout.databasePath);
      db = opened.db;
      const sharedMemory = opened.sharedMemory;
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      if (db.pragma('synchronous', { simple: true }) !== 2 || db.pragma('foreign_keys', { simple: true }) !== 1) {
        throw new CarkeyError('CK_STORE_IO', `${layout.databasePath}: SQLite refused synchronous=FULL or foreign_keys=ON`);
      }
      if (options.integrityCheck ?? true) quickCheck(db, layout.databasePath);
      const now = VehicleStore.#timeFrom(options.now);
      migrate(db, layout.databasePath, now);

      const recordedKey = readVehiclePublicKey(db);
      if (recordedKey !== undefined && readIdentityFile(layout.identityPath) === undefined) {
        throw corrupt(`${layout.identityPath} is missing but ${layout.databasePath} belongs to vehicle key ${toHex(recordedKey)}; restore identity.key from backup`);
      }
      const { identity } = loadOrCreateIdentity(layout.identityPath, { crypto: options.crypto, ...(create ? { random: options.random } : {}) });
      if (recordedKey === undefined) {
        const secret = options.random(ADVERTISING_SECRET_LENGTH);
        if (secret.length !== ADVERTISING_SECRET_LENGTH) throw new CarkeyError('CK_INTERNAL', 'random source returned the wrong number of bytes');
        db.prepare(
          'INSERT INTO vehicle (id, public_key, advertising_secret, time_floor_ms, key_list_version, created_at) VALUES (1, ?, ?, 0, 0, ?)',
        ).run(toBuffer(identity.publicKey), toBuffer(secret), now);
      } else if (!equalBytes(recordedKey, identity.publicKey)) {
        throw corrupt(`${layout.identityPath} (key ${toHex(identity.publicKey)}) does not belong to ${layout.databasePath} (key ${toHex(recordedKey)})`);
      }
      // Make the names of state.db (and of a WAL a crashed run created) durable; one fsync per boot.
      fsyncDirectory(layout.dir);
      const store = new VehicleStore(layout, identity, db, lock, options, interval);
      store.sharedMemory = sharedMemory;
      return store;
    } catch (error) {
      db?.close();
      lock.release();
      throw storeError(error, layout.databasePath);
    }
  }

  static #timeFrom(clock: Clock): number {
    const time = Math.floor(clock());
    if (!Number.isSafeInteger(time) || time < 0) throw new CarkeyError('CK_INTERNAL', 'the clock returned an invalid time');
    return time;
  }

  /** Run `fn` (synchronous) with the database open; map SQLite failures to the catalog. */
  #run<T>(fn: () => T): T {
    if (this.#closed) throw new CarkeyError('CK_INTERNAL', 'the vehicle store is closed');
    try {
      return fn();
    } catch (error) {
      throw storeError(error, this.layout.databasePath);
    }
  }

  #transaction<T>(fn: () => T): T {
    return this.#run(() => this.#db.transaction(fn).immediate());
  }

  /**
   * Run several store calls as one transaction: all commit or none. `fn`
   * must be synchronous; throwing rolls everything back and rethrows.
   */
  atomically<T>(fn: () => T): T {
    return this.#transaction(fn);
  }

  // --- key list -------------------------------------------------------------

  /** The current key list, or undefined before the first one (or after a factory reset). */
  keyList(): StoredKeyList | undefined {
    return this.#run(() => {
      const row = asRow(this.#prepare('SELECT version, bytes, accepted_at FROM key_list WHERE id = 1').get());
      if (row === undefined) return undefined;
      return { version: intColumn(row, 'version'), bytes: blobColumn(row, 'bytes'), acceptedAt: intColumn(row, 'accepted_at') };
    });
  }

  /** Highest key-list version accepted in the current epoch (0 if none); a new list must exceed it. */
  keyListVersion(): number {
    return this.#run(() => intColumn(this.#vehicleRow('key_list_version'), 'key_list_version'));
  }

  /** The key-list epoch: 0 for a new car, +1 at every factory reset. */
  keyListEpoch(): number {
    return this.#run(() => intColumn(this.#vehicleRow('key_list_epoch'), 'key_list_epoch'));
  }

  /**
   * Store a key list the caller has already verified, with a 'key-list' audit
   * entry (the caller's `fields` plus version, previousVersion and size), in
   * one transaction. Throws CK_KEYLIST_ROLLBACK when `version` is not greater
   * than `keyListVersion()`; nothing is written then.
   */
  replaceKeyList(bytes: Uint8Array, version: number, fields: AuditFields = {}, epoch = this.keyListEpoch()): KeyListReplacement {
    checkInteger(version, 1, KEY_LIST_MAX_VERSION, 'key list version');
    if (bytes.length > KEY_LIST_MAX_BYTES) throw new CarkeyError('CK_KEYLIST_TOO_LARGE', `key list is ${bytes.length} bytes (limit ${KEY_LIST_MAX_BYTES})`);
    const copy = Uint8Array.from(bytes);
    return this.#transaction(() => {
      const currentEpoch = this.keyListEpoch();
      if (epoch !== currentEpoch) {
        throw new CarkeyError('CK_KEYLIST_WRONG_EPOCH', `list is for epoch ${epoch}, the car is in epoch ${currentEpoch}`, { epoch, currentEpoch });
      }
      const current = this.keyListVersion();
      if (version <= current) {
        throw new CarkeyError('CK_KEYLIST_ROLLBACK', `version ${version} is not newer than the current version ${current}`, { version, current });
      }
      const acceptedAt = this.#time();
      this.#prepare('UPDATE vehicle SET key_list_version = ? WHERE id = 1').run(version);
      this.#prepare('INSERT OR REPLACE INTO key_list (id, version, bytes, accepted_at) VALUES (1, ?, ?, ?)')
        .run(version, toBuffer(copy), acceptedAt);
      const auditEntry = this.#append('key-list', { ...fields, version, previousVersion: current, size: copy.length }, acceptedAt);
      return { keyList: { bytes: Uint8Array.from(copy), version, acceptedAt }, auditEntry };
    });
  }

  // --- trusted time ---------------------------------------------------------

  /** The persisted trusted time floor (ms); 0 until first raised. */
  timeFloor(): number {
    return this.#run(() => intColumn(this.#vehicleRow('time_floor_ms'), 'time_floor_ms'));
  }

  /**
   * Set the floor to `ms`, also lower: only for a time vouched for by
   * physical presence (a pairing confirmed on the car, a factory reset).
   */
  resetTimeFloor(ms: number): void {
    checkInteger(ms, 0, Number.MAX_SAFE_INTEGER, 'time floor');
    this.#transaction(() => this.#prepare('UPDATE vehicle SET time_floor_ms = ? WHERE id = 1').run(ms));
  }

  /** Raise the floor to `ms` if that is higher; never lowers it. Returns the floor after the call. */
  raiseTimeFloor(ms: number): number {
    checkInteger(ms, 0, Number.MAX_SAFE_INTEGER, 'time floor');
    return this.#transaction(() => {
      this.#prepare('UPDATE vehicle SET time_floor_ms = max(time_floor_ms, ?) WHERE id = 1').run(ms);
      return this.timeFloor();
    });
  }

  // --- advertising secret, factory reset ------------------------------------

  /** The 32-byte advertising secret (created at first open, replaced by `factoryReset`). */
  advertisingSecret(): Uint8Array {
    return this.#run(() => blobColumn(this.#vehicleRow('advertising_secret'), 'advertising_secret'));
  }

  /**
   * Factory reset, in one transaction with its 'factory-reset' audit entry:
   * forget the key list, start the next key-list epoch at version 0 (lists
   * from before the reset name the old epoch and can never be replayed),
   * draw a new advertising secret and set the time floor to `timeFloorMs`
   * (physical presence vouches for it). Kept: the identity, the audit log and
   * metadata (delete what you need inside `atomically`). Throws
   * CK_KEYLIST_VERSION_EXHAUSTED only after 2^32 resets.
   */
  factoryReset(fields: AuditFields = {}, timeFloorMs?: number): AuditEntry {
    return this.#transaction(() => {
      const secret = this.#random(ADVERTISING_SECRET_LENGTH);
      if (secret.length !== ADVERTISING_SECRET_LENGTH) throw new CarkeyError('CK_INTERNAL', 'random source returned the wrong number of bytes');
      const previousEpoch = this.keyListEpoch();
      if (previousEpoch >= KEY_LIST_MAX_VERSION) throw new CarkeyError('CK_KEYLIST_VERSION_EXHAUSTED', 'no key-list epoch left');
      const previousVersion = this.keyListVersion();
      const hadKeyList = this.#prepare('DELETE FROM key_list').run().changes > 0;
      this.#prepare('UPDATE vehicle SET advertising_secret = ?, key_list_epoch = ?, key_list_version = 0 WHERE id = 1')
        .run(toBuffer(secret), previousEpoch + 1);
      if (timeFloorMs !== undefined) {
        checkInteger(timeFloorMs, 0, Number.MAX_SAFE_INTEGER, 'time floor');
        this.#prepare('UPDATE vehicle SET time_floor_ms = ? WHERE id = 1').run(timeFloorMs);
      }
      return this.#append('factory-reset', { ...fields, epoch: previousEpoch + 1, previousEpoch, previousVersion, hadKeyList }, this.#time());
    });
  }

  // --- metadata -------------------------------------------------------------

  /** A small typed value by key (META_KEY_PATTERN), or undefined. */
  getMeta(key: string): MetaValue | undefined {
    VehicleStore.#checkMetaKey(key);
    return this.#run(() => {
      const row = asRow(this.#prepare('SELECT type, value FROM meta WHERE key = ?').get(key));
      if (row === undefined) return undefined;
      const type = textColumn(row, 'type');
      const value = row['value'];
      if (type === 'null' && value === null) return null;
      if (type === 'string' && typeof value === 'string') return value;
      if (type === 'number' && typeof value === 'number') return value;
      if (type === 'boolean' && (value === 0 || value === 1)) return value === 1;
      if (type === 'bytes' && value instanceof Uint8Array) return Uint8Array.from(value);
      throw corrupt(`meta ${key}: stored value does not match its type ${type}`);
    });
  }

  /** Set a small typed value (strings and bytes up to META_MAX_VALUE_LENGTH). */
  setMeta(key: string, value: MetaValue): void {
    VehicleStore.#checkMetaKey(key);
    let type: string;
    let stored: string | number | Buffer | null;
    if (value === null) [type, stored] = ['null', null];
    else if (typeof value === 'string') [type, stored] = ['string', value];
    else if (typeof value === 'boolean') [type, stored] = ['boolean', value ? 1 : 0];
    else if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new CarkeyError('CK_CODEC_BAD_VALUE', `meta ${key} must be a finite number`);
      [type, stored] = ['number', value];
    } else [type, stored] = ['bytes', toBuffer(Uint8Array.from(value))];
    if ((typeof value === 'string' || value instanceof Uint8Array) && value.length > META_MAX_VALUE_LENGTH) {
      throw new CarkeyError('CK_CODEC_BAD_VALUE', `meta ${key} is longer than ${META_MAX_VALUE_LENGTH}`);
    }
    this.#run(() => this.#prepare('INSERT OR REPLACE INTO meta (key, type, value) VALUES (?, ?, ?)').run(key, type, stored));
  }

  /** Remove a value; returns whether it existed. */
  deleteMeta(key: string): boolean {
    VehicleStore.#checkMetaKey(key);
    return this.#run(() => this.#prepare('DELETE FROM meta WHERE key = ?').run(key).changes > 0);
  }

  static #checkMetaKey(key: string): void {
    if (!META_KEY_PATTERN.test(key)) throw new CarkeyError('CK_CODEC_BAD_VALUE', `meta key ${JSON.stringify(key.slice(0, 70))} is not allowed`);
    if (key.startsWith(RESERVED_META_PREFIX)) throw new CarkeyError('CK_CODEC_BAD_VALUE', `meta keys under ${RESERVED_META_PREFIX} are reserved for the audit log`);
  }

  // --- audit log ------------------------------------------------------------

  /**
   * Append one entry (time = floor(now())). Commits on its own, or with the
   * surrounding `atomically` block. Throws CK_CODEC_BAD_VALUE for fields
   * outside the audit format (audit.ts).
   */
  appendAudit(kind: AuditKind, fields: AuditFields): AuditEntry {
    return this.#transaction(() => this.#append(kind, fields, this.#time()));
  }

  /** Entries in seq order starting at `fromSeq`. */
  readAudit(options: ReadAuditOptions = {}): AuditEntry[] {
    const fromSeq = options.fromSeq ?? 1;
    const limit = options.limit ?? AUDIT_READ_MAX_LIMIT;
    checkInteger(fromSeq, 1, Number.MAX_SAFE_INTEGER, 'fromSeq');
    checkInteger(limit, 0, AUDIT_READ_MAX_LIMIT, 'limit');
    return this.#run(() =>
      this.#prepare('SELECT seq, time, kind, fields, hash FROM audit_entry WHERE seq >= ? ORDER BY seq LIMIT ?')
        .all(fromSeq, limit)
        .map((row) => entryFromRow(asRow(row) ?? {})),
    );
  }

  /** Seq of the last entry (0 when the log is empty). */
  lastAuditSeq(): number {
    return this.#run(() => this.#head().seq);
  }

  /** The signed checkpoint the retained log starts after, once it has been pruned. */
  auditAnchor(): AuditCheckpoint | undefined {
    return this.#run(() => readAnchor(this.#db));
  }

  /** Entries retained (seqs are contiguous from the anchor, so this is a subtraction). */
  auditEntryCount(): number {
    return this.#run(() => this.#head().seq - (readAnchor(this.#db)?.seq ?? 0));
  }

  /**
   * Keep the log within `maxEntries`: when more are retained, delete the
   * oldest ones up to the oldest signed checkpoint that leaves at most 90%
   * of `maxEntries` (at most AUDIT_PRUNE_MAX_BATCH per call; with
   * `keepAfterSeq`, e.g. the last seq the cloud holds, nothing after it is
   * deleted until the log reaches twice `maxEntries`), make that
   * checkpoint the anchor and append an 'audit-pruned' entry (fromSeq,
   * throughSeq, entries), all in one transaction. Returns undefined when
   * nothing needed (or could be) pruned: no checkpoint in range.
   */
  pruneAudit(maxEntries: number, options: { readonly keepAfterSeq?: number } = {}): AuditPruning | undefined {
    checkInteger(maxEntries, 1, Number.MAX_SAFE_INTEGER, 'maxEntries');
    return this.#transaction(() => {
      const head = this.#head();
      const anchorSeq = readAnchor(this.#db)?.seq ?? 0;
      if (head.seq - anchorSeq <= maxEntries) return undefined;
      const keep = Math.max(1, maxEntries - Math.max(1, Math.floor(maxEntries / 10)));
      // Entries not yet uploaded (keepAfterSeq) are kept until the log reaches twice its cap: then the disk wins.
      const protect = options.keepAfterSeq !== undefined && head.seq - anchorSeq <= 2 * maxEntries;
      // Delete through at least `target` (then at most `keep` remain), but not far past the batch limit.
      const target = protect ? Math.min(head.seq - keep, options.keepAfterSeq ?? 0) : head.seq - keep;
      const limit = protect ? Math.min(anchorSeq + AUDIT_PRUNE_MAX_BATCH, options.keepAfterSeq ?? 0) : anchorSeq + AUDIT_PRUNE_MAX_BATCH;
      if (limit <= anchorSeq) return undefined;
      const chosen = asRow(
        target <= limit && !protect
          ? this.#prepare('SELECT seq, hash, signature FROM audit_checkpoint WHERE seq > ? AND seq >= ? ORDER BY seq LIMIT 1').get(anchorSeq, target)
          : this.#prepare('SELECT seq, hash, signature FROM audit_checkpoint WHERE seq > ? AND seq <= ? ORDER BY seq DESC LIMIT 1').get(anchorSeq, limit),
      );
      if (chosen === undefined) return undefined;
      const anchor = checkpointFromRow(chosen);
      this.#prepare('DELETE FROM audit_checkpoint WHERE seq <= ?').run(anchor.seq);
      const deleted = this.#prepare('DELETE FROM audit_entry WHERE seq <= ?').run(anchor.seq).changes;
      this.#prepare("INSERT OR REPLACE INTO meta (key, type, value) VALUES (?, 'bytes', ?)").run(AUDIT_ANCHOR_META, encodeAnchor(anchor));
      const auditEntry = this.#append('audit-pruned', { fromSeq: anchorSeq + 1, throughSeq: anchor.seq, entries: deleted, maxEntries }, this.#time());
      return { fromSeq: anchorSeq + 1, throughSeq: anchor.seq, deleted, auditEntry };
    });
  }

  /** Signed checkpoints in seq order, optionally from `fromSeq`. */
  checkpoints(options: ReadAuditOptions = {}): AuditCheckpoint[] {
    const fromSeq = options.fromSeq ?? 1;
    const limit = options.limit ?? AUDIT_READ_MAX_LIMIT;
    checkInteger(fromSeq, 1, Number.MAX_SAFE_INTEGER, 'fromSeq');
    checkInteger(limit, 0, AUDIT_READ_MAX_LIMIT, 'limit');
    return this.#run(() =>
      this.#prepare('SELECT seq, hash, signature FROM audit_checkpoint WHERE seq >= ? ORDER BY seq LIMIT ?')
        .all(fromSeq, limit)
        .map((row) => checkpointFromRow(asRow(row) ?? {})),
    );
  }

  /**
   * Sign the current head now unless it is already covered (also done by
   * `close`). Returns the new checkpoint, or undefined if there was nothing to sign.
   */
  checkpoint(): AuditCheckpoint | undefined {
    return this.#transaction(() => {
      const head = this.#head();
      const last = asRow(this.#prepare('SELECT coalesce(max(seq), 0) AS seq FROM audit_checkpoint').get());
      if (head.seq === 0 || (last !== undefined && intColumn(last, 'seq') >= head.seq)) return undefined;
      return this.#insertCheckpoint(head.seq, head.hash);
    });
  }

  /** Verify the whole chain and every checkpoint against this vehicle's key. Never throws. */
  verifyAuditInStore(): Result<AuditVerification> {
    try {
      return this.#run(() => verifyRows(this.#db, this.identity.publicKey, this.#crypto));
    } catch (error) {
      return { ok: false, error: storeError(error, this.layout.databasePath) };
    }
  }

  /** Checkpoint the unsigned tail, close the database and release the lock. Idempotent. */
  close(): void {
    if (this.#closed) return;
    try {
      if (!this.#db.inTransaction) this.checkpoint();
    } finally {
      this.#closed = true;
      try {
        this.#db.close();
      } finally {
        this.#lock.release();
      }
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  // --- internals (called inside a transaction) -------------------------------

  #time(): number {
    return VehicleStore.#timeFrom(this.#now);
  }

  #vehicleRow(column: 'key_list_version' | 'key_list_epoch' | 'time_floor_ms' | 'advertising_secret'): Row {
    const row = asRow(this.#prepare(`SELECT ${column} FROM vehicle WHERE id = 1`).get());
    if (row === undefined) throw corrupt('vehicle row is missing');
    return row;
  }

  #head(): { seq: number; hash: Uint8Array } {
    const row = asRow(this.#prepare('SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1').get());
    return row === undefined ? { seq: 0, hash: AUDIT_GENESIS_HASH } : { seq: intColumn(row, 'seq'), hash: blobColumn(row, 'hash') };
  }

  #append(kind: string, fields: AuditFields, time: number): AuditEntry {
    const head = this.#head();
    const record = { seq: head.seq + 1, time, kind, fields: { ...fields } };
    const hash = auditLinkHash(this.#crypto, head.hash, record);
    this.#prepare('INSERT INTO audit_entry (seq, time, kind, fields, hash) VALUES (?, ?, ?, ?, ?)')
      .run(record.seq, time, kind, canonicalAuditFields(record.fields), toBuffer(hash));
    if (record.seq % this.checkpointInterval === 0) this.#insertCheckpoint(record.seq, hash);
    return { ...record, hash };
  }

  #insertCheckpoint(seq: number, hash: Uint8Array): AuditCheckpoint {
    const checkpoint = signCheckpoint(this.#crypto, this.identity.exportSeed(), seq, hash);
    this.#prepare('INSERT INTO audit_checkpoint (seq, hash, signature, created_at) VALUES (?, ?, ?, ?)')
      .run(seq, toBuffer(checkpoint.hash), toBuffer(checkpoint.signature), this.#time());
    return checkpoint;
  }
}

/**
 * Verify the audit log of a state directory without taking the lock or
 * writing (read-only SQLite open; works while carkeyd runs and after a
 * crash). For `carkeyd audit verify`. Never throws.
 */
export function verifyAuditDatabase(stateDir: string, crypto: Crypto, options: VerifyAuditDatabaseOptions = {}): Result<AuditVerification> {
  let path = stateDir;
  let db: Database.Database | undefined;
  try {
    const layout = prepareStateDir(stateDir, { create: false });
    path = layout.databasePath;
    try {
      assertPrivateMode(path, statSync(path), 'file');
    } catch (error) {
      if (isMissingFileError(error)) throw new CarkeyError('CK_STORE_IO', `${path} does not exist`, { path });
      throw storeIoError('cannot stat', path, error);
    }
    const seed = readIdentityFile(layout.identityPath);
    db = new Database(path, { readonly: true, fileMustExist: true });
    quickCheck(db, path);
    const schemaVersion = readSchemaVersion(db);
    checkSchemaSupported(schemaVersion, path);
    const recordedKey = schemaVersion === 0 ? undefined : readVehiclePublicKey(db);
    if (recordedKey === undefined) throw corrupt(`${path} is not an initialised carkeyd store`);
    const identityKey = seed === undefined ? undefined : crypto.publicKeyFromSeed(seed);
    if (identityKey !== undefined && !equalBytes(identityKey, recordedKey)) {
      throw corrupt(`${layout.identityPath} (key ${toHex(identityKey)}) does not belong to ${path} (key ${toHex(recordedKey)})`);
    }
    return verifyRows(db, options.vehiclePublicKey ?? identityKey ?? recordedKey, crypto);
  } catch (error) {
    return { ok: false, error: storeError(error, path) };
  } finally {
    db?.close();
  }
}
