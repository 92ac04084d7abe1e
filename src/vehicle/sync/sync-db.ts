/**
 * The sync worker's own durable state: `sync.db` in the state directory, a
 * SQLite file apart from `state.db`, so the worker never takes the store's
 * lock or transaction and a slow SD-card write here never holds up a BLE
 * decision's commit.
 *
 * What it holds: small cursors (the last audit seq the cloud acknowledged,
 * the last key-list ETag seen, the last refused document), the remote
 * command ids the car has taken (single use), and the outbox of car-signed
 * results not yet delivered.
 *
 * Guarantees:
 * - Crash safety: WAL, `synchronous=FULL`, mode 0600 (created with O_EXCL);
 *   every call is one transaction, fsynced before it returns, so after a
 *   kill -9 or a power cut a claimed command stays claimed and a stored
 *   result stays in the outbox (test/vehicle/sync/sync-db.test.ts).
 * - Single use: `claimCommand` records a command id before the car acts on
 *   it and refuses an id it holds; an id is kept until its command expired
 *   (plus `SEEN_RETENTION_MS`) and never forgotten early: when
 *   `MAX_SEEN_COMMANDS` unexpired ids are held, new commands are refused.
 * - Bounded: the outbox holds at most `outboxMax` results (claimed commands
 *   still running count against it), so `claimCommand` answers 'full' and
 *   the command waits in the cloud; nothing is dropped to make room.
 * - A claim that never got its result (the process died while acting) is
 *   reported by `interruptedCommands()` after a restart, so the worker can
 *   tell the caller "may or may not have been carried out".
 * - Errors are CarkeyErrors (CK_STORE_IO, CK_STORE_CORRUPT,
 *   CK_STORE_INSECURE_PERMISSIONS); nothing here touches state.db.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { StatementCache } from '../../common/statement-cache.js';
import { CarkeyError } from '../../core/errors.js';
import { assertPrivateMode, createPrivateFileIfMissing, fsyncDirectory, storeIoError } from '../state-dir.js';

export const SYNC_DB_FILE_NAME = 'sync.db';
export const SYNC_SCHEMA_VERSION = 1;
/** A taken command id is kept this long after its command expired. */
export const SEEN_RETENTION_MS = 60 * 60_000;
/** Unexpired command ids held at most; beyond, new commands are refused (never an id forgotten early). */
export const MAX_SEEN_COMMANDS = 10_000;

export type MetaKey = 'audit.uploadedSeq' | 'keyList.etag' | 'keyList.refused';

export interface OutboxEntry {
  readonly commandId: Uint8Array;
  readonly box: Uint8Array;
  readonly createdAt: number;
  readonly attempts: number;
}

export interface InterruptedCommand {
  readonly commandId: Uint8Array;
  readonly caller: Uint8Array;
}

export type ClaimResult = 'claimed' | 'seen' | 'full';

type Row = Readonly<Record<string, unknown>>;

function corrupt(detail: string): CarkeyError {
  return new CarkeyError('CK_STORE_CORRUPT', `sync.db: ${detail}`);
}

function row(value: unknown): Row | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) throw corrupt('unexpected row shape');
  return value as Row;
}

function int(r: Row, name: string): number {
  const value = r[name];
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw corrupt(`column ${name} is not an integer`);
  return value;
}

function blob(r: Row, name: string): Uint8Array {
  const value = r[name];
  if (!(value instanceof Uint8Array)) throw corrupt(`column ${name} is not a blob`);
  return Uint8Array.from(value);
}

function buffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function sqliteError(error: unknown, path: string): CarkeyError {
  if (error instanceof CarkeyError) return error;
  const code = typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
  const reason = error instanceof Error ? error.message : String(error);
  if (code !== undefined && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB')) return new CarkeyError('CK_STORE_CORRUPT', `${path}: ${reason}`, { path, sqlite: code });
  if (code !== undefined && code.startsWith('SQLITE_')) return new CarkeyError('CK_STORE_IO', `${path}: ${reason}`, { path, sqlite: code });
  return storeIoError('cannot use', path, error);
}

const SCHEMA = `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
  CREATE TABLE seen_command (
    command_id BLOB PRIMARY KEY CHECK (length(command_id) = 16),
    caller BLOB NOT NULL CHECK (length(caller) = 32),
    expires_at INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('executing', 'done')),
    seen_at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX seen_command_expiry ON seen_command (expires_at);
  CREATE TABLE outbox (
    command_id BLOB PRIMARY KEY CHECK (length(command_id) = 16),
    box BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
  ) STRICT;
`;

export class SyncDb {
  readonly path: string;
  readonly #db: Database.Database;
  /** Each query prepared once (common/statement-cache.ts). */
  readonly #statements: StatementCache;

  #prepare(sql: string): Database.Statement {
    return this.#statements.prepare(sql);
  }
  #closed = false;

  private constructor(path: string, db: Database.Database, readonly outboxMax: number) {
    this.path = path;
    this.#db = db;
    this.#statements = new StatementCache(db);
  }

  /** Open or create `sync.db` in `stateDir` (which the store has already prepared and locked). */
  static open(stateDir: string, options: { outboxMax: number }): SyncDb {
    const path = join(stateDir, SYNC_DB_FILE_NAME);
    let db: Database.Database | undefined;
    try {
      const created = createPrivateFileIfMissing(path);
      assertPrivateMode(path, statSync(path), 'file');
      db = new Database(path, { fileMustExist: true, timeout: 0 });
      const journal: unknown = db.pragma('journal_mode = WAL', { simple: true });
      if (journal !== 'wal') throw new CarkeyError('CK_STORE_IO', `${path}: cannot enable WAL (got ${String(journal)})`);
      db.pragma('synchronous = FULL');
      if (db.pragma('synchronous', { simple: true }) !== 2) throw new CarkeyError('CK_STORE_IO', `${path}: SQLite refused synchronous=FULL`);
      const check: unknown = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw corrupt(`quick_check: ${String(check)}`);
      const version: unknown = db.pragma('user_version', { simple: true });
      if (version === 0) {
        db.transaction(() => {
          db?.exec(SCHEMA);
          db?.pragma(`user_version = ${SYNC_SCHEMA_VERSION}`);
        }).immediate();
      } else if (version !== SYNC_SCHEMA_VERSION) {
        throw corrupt(`schema version ${String(version)} is not ${SYNC_SCHEMA_VERSION}`);
      }
      if (created) fsyncDirectory(stateDir);
      return new SyncDb(path, db, options.outboxMax);
    } catch (error) {
      db?.close();
      throw sqliteError(error, path);
    }
  }

  #run<T>(fn: () => T): T {
    if (this.#closed) throw new CarkeyError('CK_INTERNAL', 'sync.db is closed');
    try {
      return this.#db.transaction(fn).immediate();
    } catch (error) {
      throw sqliteError(error, this.path);
    }
  }

  // --- cursors --------------------------------------------------------------

  getMeta(key: MetaKey): string | undefined {
    return this.#run(() => {
      const r = row(this.#prepare('SELECT value FROM meta WHERE key = ?').get(key));
      if (r === undefined) return undefined;
      const value = r.value;
      if (typeof value !== 'string') throw corrupt(`meta ${key} is not text`);
      return value;
    });
  }

  setMeta(key: MetaKey, value: string | undefined): void {
    this.#run(() => {
      if (value === undefined) this.#prepare('DELETE FROM meta WHERE key = ?').run(key);
      else this.#prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(key, value);
    });
  }

  /** The last audit seq the cloud acknowledged (0 = none). */
  uploadedSeq(): number {
    const text = this.getMeta('audit.uploadedSeq');
    if (text === undefined) return 0;
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < 0) throw corrupt('audit.uploadedSeq is not a seq');
    return n;
  }

  setUploadedSeq(seq: number): void {
    if (!Number.isSafeInteger(seq) || seq < 0) throw new CarkeyError('CK_CODEC_BAD_VALUE', `audit seq ${seq}`);
    this.setMeta('audit.uploadedSeq', String(seq));
  }

  // --- single use -------------------------------------------------------------

  /**
   * Take a command id before acting on it. 'seen': already taken (a replay or
   * a re-listing); 'full': the outbox (or the id table) is at its bound.
   */
  claimCommand(commandId: Uint8Array, caller: Uint8Array, expiresAt: number, now: number): ClaimResult {
    return this.#run(() => {
      if (this.#prepare('SELECT 1 FROM seen_command WHERE command_id = ?').get(buffer(commandId)) !== undefined) return 'seen';
      const pending = row(this.#prepare("SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM seen_command WHERE state = 'executing') AS n").get());
      if (pending !== undefined && int(pending, 'n') >= this.outboxMax) return 'full';
      this.#prepare('DELETE FROM seen_command WHERE expires_at < ? AND state = ? AND command_id NOT IN (SELECT command_id FROM outbox)').run(now - SEEN_RETENTION_MS, 'done');
      const held = row(this.#prepare('SELECT count(*) AS n FROM seen_command').get());
      if (held !== undefined && int(held, 'n') >= MAX_SEEN_COMMANDS) return 'full';
      this.#prepare("INSERT INTO seen_command (command_id, caller, expires_at, state, seen_at) VALUES (?, ?, ?, 'executing', ?)").run(buffer(commandId), buffer(caller), expiresAt, now);
      return 'claimed';
    });
  }

  /** The car decided and acted: mark the id done and queue its sealed result, in one transaction. */
  completeCommand(commandId: Uint8Array, box: Uint8Array, now: number): void {
    this.#run(() => {
      this.#prepare("UPDATE seen_command SET state = 'done' WHERE command_id = ?").run(buffer(commandId));
      this.#prepare('INSERT OR REPLACE INTO outbox (command_id, box, created_at, attempts) VALUES (?, ?, ?, 0)').run(buffer(commandId), buffer(box), now);
    });
  }

  /** Claims left 'executing' by a process that died while acting. */
  interruptedCommands(): InterruptedCommand[] {
    return this.#run(() =>
      this.#prepare("SELECT command_id, caller FROM seen_command WHERE state = 'executing' ORDER BY seen_at")
        .all()
        .map((value) => {
          const r = row(value) ?? {};
          return { commandId: blob(r, 'command_id'), caller: blob(r, 'caller') };
        }),
    );
  }

  // --- outbox -----------------------------------------------------------------

  outbox(limit = 64): OutboxEntry[] {
    return this.#run(() =>
      this.#prepare('SELECT command_id, box, created_at, attempts FROM outbox ORDER BY created_at, command_id LIMIT ?')
        .all(limit)
        .map((value) => {
          const r = row(value) ?? {};
          return { commandId: blob(r, 'command_id'), box: blob(r, 'box'), createdAt: int(r, 'created_at'), attempts: int(r, 'attempts') };
        }),
    );
  }

  outboxSize(): number {
    return this.#run(() => int(row(this.#prepare('SELECT count(*) AS n FROM outbox').get()) ?? {}, 'n'));
  }

  noteAttempt(commandId: Uint8Array): void {
    this.#run(() => this.#prepare('UPDATE outbox SET attempts = attempts + 1 WHERE command_id = ?').run(buffer(commandId)));
  }

  /** The result reached the cloud (or can never be delivered): remove it. */
  removeResult(commandId: Uint8Array): void {
    this.#run(() => this.#prepare('DELETE FROM outbox WHERE command_id = ?').run(buffer(commandId)));
  }

  hasResult(commandId: Uint8Array): boolean {
    return this.#run(() => this.#prepare('SELECT 1 FROM outbox WHERE command_id = ?').get(buffer(commandId)) !== undefined);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}
