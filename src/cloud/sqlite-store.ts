/**
 * The embedded store: one SQLite file (`cloud.db`) in the data directory,
 * through better-sqlite3. For one carkey-cloud process (scale out with
 * PostgreSQL, pg-store.ts).
 *
 * Guarantees:
 * - `journal_mode=WAL`, `synchronous=FULL`: a call that returned has its
 *   change on disk (fsynced) before the answer goes out.
 * - The directory is created 0700 and the file 0600 (it holds no secret, but
 *   it is nobody else's business which cars use this cloud).
 * - Change notifications are in-process (ChangeHub), published after commit.
 * - Request nonces are checked against an in-memory set (loaded from the
 *   table at open) and written to the table in batches every
 *   NONCE_FLUSH_MS, one fsync per batch instead of one per request. A power
 *   cut can lose the last batch; a request replayed within its ±120 s
 *   window right after such a crash would then be accepted once more — the
 *   price of answering 10,000 signed requests a second from one file.
 * - Driver failures become CK_CLOUD_STORE; a primary-key conflict inside a
 *   batch rolls the whole batch back and reports false.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { StatementCache } from '../common/statement-cache.js';
import { CarkeyError } from '../core/errors.js';
import { ChangeHub } from './changes.js';
import { SqlCloudStore, type MigrationSession, type Row, type SqlDriver, type SqlStatement, type SqlValue } from './sql-store.js';

export const SQLITE_FILE = 'cloud.db';
export const NONCE_FLUSH_MS = 10;

function sqliteCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') return error.code;
  return undefined;
}

function storeError(error: unknown): CarkeyError {
  if (error instanceof CarkeyError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new CarkeyError('CK_CLOUD_STORE', `sqlite: ${reason}`, { sqlite: sqliteCode(error) ?? 'unknown' }, { cause: error });
}

function isConstraint(error: unknown): boolean {
  const code = sqliteCode(error);
  return code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

function asRows(value: unknown[]): readonly Row[] {
  return value.map((row) => {
    if (typeof row !== 'object' || row === null) throw new CarkeyError('CK_CLOUD_STORE', 'unexpected row shape');
    return row as Row;
  });
}

class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite' as const;
  readonly hub = new ChangeHub();
  readonly #db: Database.Database;
  /** Each query prepared once (common/statement-cache.ts). */
  readonly #statements: StatementCache;
  #closed = false;

  constructor(db: Database.Database) {
    this.#db = db;
    this.#statements = new StatementCache(db);
  }

  #prepare(sql: string): Database.Statement {
    if (this.#closed) throw new CarkeyError('CK_CLOUD_STORE', 'the store is closed');
    return this.#statements.prepare(sql);
  }

  allSync(sql: string, params: readonly SqlValue[]): readonly Row[] {
    try {
      return asRows(this.#prepare(sql).all(...params));
    } catch (error) {
      throw storeError(error);
    }
  }

  runSync(sql: string, params: readonly SqlValue[]): number {
    try {
      return this.#prepare(sql).run(...params).changes;
    } catch (error) {
      throw storeError(error);
    }
  }

  all(sql: string, params: readonly SqlValue[]): Promise<readonly Row[]> {
    try {
      return Promise.resolve(this.allSync(sql, params));
    } catch (error) {
      return Promise.reject(storeError(error));
    }
  }

  run(sql: string, params: readonly SqlValue[]): Promise<number> {
    try {
      return Promise.resolve(this.runSync(sql, params));
    } catch (error) {
      return Promise.reject(storeError(error));
    }
  }

  batchSync(statements: readonly SqlStatement[]): boolean {
    try {
      this.#db
        .transaction(() => {
          for (const statement of statements) this.#prepare(statement.sql).run(...statement.params);
        })
        .immediate();
      return true;
    } catch (error) {
      if (isConstraint(error)) return false;
      throw storeError(error);
    }
  }

  batch(statements: readonly SqlStatement[]): Promise<boolean> {
    try {
      return Promise.resolve(this.batchSync(statements));
    } catch (error) {
      return Promise.reject(storeError(error));
    }
  }

  async withMigrationLock<T>(fn: (session: MigrationSession) => Promise<T>): Promise<T> {
    const session: MigrationSession = {
      exec: (sql, params = []) => {
        try {
          if (params.length === 0 && !/^\s*(SELECT|INSERT)/i.test(sql)) {
            this.#db.exec(sql);
            return Promise.resolve([]);
          }
          const statement = this.#db.prepare(sql);
          if (statement.reader) return Promise.resolve(asRows(statement.all(...params)));
          statement.run(...params);
          return Promise.resolve([]);
        } catch (error) {
          return Promise.reject(storeError(error));
        }
      },
    };
    try {
      return await fn(session);
    } catch (error) {
      throw storeError(error);
    }
  }

  publish(topic: string): Promise<void> {
    this.hub.emit(topic);
    return Promise.resolve();
  }

  subscribe(topic: string, listener: () => void): () => void {
    return this.hub.subscribe(topic, listener);
  }

  ping(): Promise<void> {
    try {
      this.#prepare('SELECT 1 AS one').get();
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(storeError(error));
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#statements.clear();
      this.#db.close();
    }
    return Promise.resolve();
  }
}

export interface SqliteStoreOptions {
  /** the data directory (created 0700 when missing) */
  readonly dir: string;
  /** how often buffered request nonces are written (default NONCE_FLUSH_MS) */
  readonly nonceFlushMs?: number;
}

export class SqliteCloudStore extends SqlCloudStore {
  readonly path: string;
  readonly #driver: SqliteDriver;
  readonly #nonces = new Map<string, number>();
  #pendingNonces: SqlStatement[] = [];
  #flushTimer: NodeJS.Timeout | undefined;
  readonly #flushMs: number;
  #noncesLoaded = false;

  private constructor(driver: SqliteDriver, path: string, flushMs: number) {
    super(driver);
    this.#driver = driver;
    this.path = path;
    this.#flushMs = flushMs;
  }

  static open(options: SqliteStoreOptions): SqliteCloudStore {
    const path = join(options.dir, SQLITE_FILE);
    let db: Database.Database | undefined;
    try {
      mkdirSync(options.dir, { recursive: true, mode: 0o700 });
      db = new Database(path);
      chmodSync(path, 0o600);
      const mode: unknown = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new CarkeyError('CK_CLOUD_STORE', `${path}: cannot enable WAL (got ${String(mode)})`);
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      return new SqliteCloudStore(new SqliteDriver(db), path, options.nonceFlushMs ?? NONCE_FLUSH_MS);
    } catch (error) {
      db?.close();
      throw storeError(error);
    }
  }

  /** The in-process change hub (tests count its subscribers). */
  get hub(): ChangeHub {
    return this.#driver.hub;
  }

  override async migrate(now: number): Promise<number> {
    const version = await super.migrate(now);
    this.#loadNonces(now);
    return version;
  }

  #loadNonces(now: number): void {
    if (this.#noncesLoaded) return;
    for (const row of this.#driver.allSync('SELECT caller, nonce, expires_at FROM request_nonces WHERE expires_at >= ?', [now])) {
      const { caller, nonce, expires_at: expiresAt } = row;
      if (typeof caller === 'string' && typeof nonce === 'string' && typeof expiresAt === 'number') this.#nonces.set(`${nonce}${caller}`, expiresAt);
    }
    this.#noncesLoaded = true;
  }

  override rememberNonce(caller: string, nonce: string, expiresAt: number): Promise<boolean> {
    const key = `${nonce}${caller}`;
    if (this.#nonces.has(key)) return Promise.resolve(false);
    this.#nonces.set(key, expiresAt);
    this.#pendingNonces.push({ sql: 'INSERT INTO request_nonces (caller, nonce, expires_at) VALUES (?, ?, ?) ON CONFLICT (caller, nonce) DO NOTHING', params: [caller, nonce, expiresAt] });
    if (this.#flushTimer === undefined) {
      this.#flushTimer = setTimeout(() => this.#flushNonces(), this.#flushMs);
      this.#flushTimer.unref();
    }
    return Promise.resolve(true);
  }

  #flushNonces(): void {
    this.#flushTimer = undefined;
    const pending = this.#pendingNonces;
    this.#pendingNonces = [];
    if (pending.length === 0) return;
    try {
      this.#driver.batchSync(pending);
    } catch {
      // The set in memory still refuses these nonces for this process's lifetime.
    }
  }

  override async purgeExpired(now: number, commandsBefore: number): ReturnType<SqlCloudStore['purgeExpired']> {
    for (const [key, expiresAt] of this.#nonces) if (expiresAt < now) this.#nonces.delete(key);
    return super.purgeExpired(now, commandsBefore);
  }

  override async close(): Promise<void> {
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer);
    this.#flushNonces();
    await super.close();
  }
}
