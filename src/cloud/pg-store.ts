/**
 * The scale-out store: PostgreSQL through `pg` (a Pool), selected by
 * DATABASE_URL. Any number of stateless carkey-cloud instances share one
 * database.
 *
 * Guarantees:
 * - The same schema migrations as SQLite (migrations.ts), applied under a
 *   session advisory lock so instances starting together migrate once.
 * - Change notifications cross instances: a change is published with
 *   `pg_notify(channel, topic)` after it committed, and every instance keeps
 *   one LISTEN connection that feeds its ChangeHub. When that connection
 *   drops it is re-opened with backoff and every waiter is woken to re-read
 *   (notifications sent meanwhile are lost, so nobody may rely on them).
 *   The committing instance also wakes its own waiters directly.
 * - Request nonces are inserted through a second, small pool with
 *   `synchronous_commit=off` (the insert still conflicts atomically across
 *   instances; a database crash may forget the last few hundred ms of nonces).
 * - BIGINT columns come back as numbers (all values are < 2^53), BYTEA as
 *   bytes; driver and connection failures are CK_CLOUD_STORE; idle-client
 *   errors are reported, never thrown out of the process.
 * Connections per instance: `max` (default 10) + `nonceMax` (default 4) + 1.
 */
import pg from 'pg';
import { CarkeyError } from '../core/errors.js';
import { ChangeHub } from './changes.js';
import { SqlCloudStore, type MigrationSession, type Row, type SqlDriver, type SqlStatement, type SqlValue } from './sql-store.js';

export const DEFAULT_CHANNEL = 'carkey_cloud';

const types: pg.CustomTypesConfig = {
  getTypeParser: (id, format) => {
    if (id === pg.types.builtins.INT8 && format !== 'binary') return (value: string) => Number(value);
    const parser: unknown = pg.types.getTypeParser(id, format);
    return parser;
  },
};

function numbered(sql: string): string {
  let index = 0;
  return sql.replace(/\?/g, () => `$${++index}`);
}

function pgCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') return error.code;
  return undefined;
}

function storeError(error: unknown): CarkeyError {
  if (error instanceof CarkeyError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new CarkeyError('CK_CLOUD_STORE', `postgres: ${reason}`, { postgres: pgCode(error) ?? 'unknown' }, { cause: error });
}

export interface PgStoreOptions {
  /** postgres://… (DATABASE_URL) */
  readonly connectionString: string;
  /** extra startup options, e.g. "-c search_path=myschema" */
  readonly options?: string;
  /** pool size (default 10) */
  readonly max?: number;
  /** nonce pool size (default 4) */
  readonly nonceMax?: number;
  /** LISTEN/NOTIFY channel (default carkey_cloud) */
  readonly channel?: string;
  /** connection-level problems (LISTEN lost, idle client error) */
  readonly onError?: (error: CarkeyError) => void;
}

/** Startup options of the nonce pool's connections: the caller's, plus `synchronous_commit=off`. */
export function nonceConnectionOptions(callerOptions: string | undefined): string {
  return [callerOptions, '-c synchronous_commit=off'].filter((part) => part !== undefined && part.trim() !== '').join(' ');
}

class PgDriver implements SqlDriver {
  readonly dialect = 'postgres' as const;
  readonly hub = new ChangeHub();
  readonly pool: pg.Pool;
  readonly noncePool: pg.Pool;
  readonly #options: PgStoreOptions;
  readonly #channel: string;
  #listener: pg.Client | undefined;
  #listenerPid: number | undefined;
  #listenBackoffMs = 250;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: PgStoreOptions) {
    this.#options = options;
    this.#channel = options.channel ?? DEFAULT_CHANNEL;
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.#channel)) throw new CarkeyError('CK_CONFIG_INVALID', 'the NOTIFY channel must be a lowercase identifier');
    const base: pg.PoolConfig = { connectionString: options.connectionString, types, connectionTimeoutMillis: 5000, application_name: 'carkey-cloud' };
    this.pool = new pg.Pool({ ...base, max: options.max ?? 10, ...(options.options === undefined ? {} : { options: options.options }) });
    // The nonce connections commit without waiting for the WAL flush: set as a startup parameter,
    // so no query of ours runs beside the first one on a new connection (pg deprecates that).
    this.noncePool = new pg.Pool({ ...base, max: options.nonceMax ?? 4, options: nonceConnectionOptions(options.options) });
    for (const pool of [this.pool, this.noncePool]) pool.on('error', (error) => this.#report(error));
  }

  #report(error: unknown): void {
    this.#options.onError?.(storeError(error));
  }

  async all(sql: string, params: readonly SqlValue[]): Promise<readonly Row[]> {
    try {
      const result = await this.pool.query<Row>(numbered(sql), [...params]);
      return result.rows;
    } catch (error) {
      throw storeError(error);
    }
  }

  async run(sql: string, params: readonly SqlValue[]): Promise<number> {
    try {
      const result = await this.pool.query(numbered(sql), [...params]);
      return result.rowCount ?? 0;
    } catch (error) {
      throw storeError(error);
    }
  }

  async insertNonce(caller: string, nonce: string, expiresAt: number): Promise<boolean> {
    try {
      const result = await this.noncePool.query('INSERT INTO request_nonces (caller, nonce, expires_at) VALUES ($1, $2, $3) ON CONFLICT (caller, nonce) DO NOTHING', [caller, nonce, expiresAt]);
      return result.rowCount === 1;
    } catch (error) {
      throw storeError(error);
    }
  }

  async batch(statements: readonly SqlStatement[]): Promise<boolean> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw storeError(error);
    }
    try {
      await client.query('BEGIN');
      for (const statement of statements) await client.query(numbered(statement.sql), [...statement.params]);
      await client.query('COMMIT');
      return true;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      if (pgCode(error) === '23505') return false;
      throw storeError(error);
    } finally {
      client.release();
    }
  }

  async withMigrationLock<T>(fn: (session: MigrationSession) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw storeError(error);
    }
    const session: MigrationSession = {
      exec: async (sql, params = []) => (await client.query<Row>(numbered(sql), [...params])).rows,
    };
    try {
      await client.query('SELECT pg_advisory_lock(hashtext(current_schema()))');
      try {
        return await fn(session);
      } finally {
        await client.query('SELECT pg_advisory_unlock(hashtext(current_schema()))').catch(() => undefined);
      }
    } catch (error) {
      throw storeError(error);
    } finally {
      client.release();
    }
  }

  async publish(topic: string): Promise<void> {
    this.hub.emit(topic);
    try {
      await this.pool.query('SELECT pg_notify($1, $2)', [this.#channel, topic]);
    } catch (error) {
      // A lost notice only delays the other instances' waiters until their timeout.
      this.#report(error);
    }
  }

  subscribe(topic: string, listener: () => void): () => void {
    return this.hub.subscribe(topic, listener);
  }

  /** Open the LISTEN connection (resolves once listening; later drops reconnect by themselves). */
  async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#options.connectionString, types, connectionTimeoutMillis: 5000, application_name: 'carkey-cloud-listen', ...(this.#options.options === undefined ? {} : { options: this.#options.options }) });
    client.on('notification', (message) => {
      if (message.channel === this.#channel && message.payload !== undefined) this.hub.emit(message.payload);
    });
    client.on('error', (error) => {
      this.#report(error);
      this.#lost(client);
    });
    client.on('end', () => this.#lost(client));
    let pid: unknown;
    try {
      await client.connect();
      await client.query(`LISTEN ${this.#channel}`);
      pid = (await client.query<{ pid: unknown }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    } catch (error) {
      await client.end().catch(() => undefined);
      throw storeError(error);
    }
    if (this.#closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#listener = client;
    this.#listenerPid = typeof pid === 'number' ? pid : undefined;
    this.#listenBackoffMs = 250;
  }

  #lost(client: pg.Client): void {
    if (this.#listener !== client) return;
    this.#listener = undefined;
    void client.end().catch(() => undefined);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer !== undefined) return;
    const delay = this.#listenBackoffMs;
    this.#listenBackoffMs = Math.min(this.#listenBackoffMs * 2, 10_000);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.listen().then(
        () => this.hub.wakeAll(),
        (error: unknown) => {
          this.#report(error);
          this.#scheduleReconnect();
        },
      );
    }, delay);
    this.#reconnectTimer.unref();
  }

  get listening(): boolean {
    return this.#listener !== undefined;
  }

  /** The server process of the LISTEN connection (operations, tests). */
  get listenerPid(): number | undefined {
    return this.#listener === undefined ? undefined : this.#listenerPid;
  }

  async ping(): Promise<void> {
    await this.all('SELECT 1 AS one', []);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => undefined);
    await Promise.all([this.pool.end(), this.noncePool.end()]).catch(() => undefined);
  }
}

export class PgCloudStore extends SqlCloudStore {
  readonly #driver: PgDriver;

  private constructor(driver: PgDriver) {
    super(driver);
    this.#driver = driver;
  }

  /** Connect (the pools connect lazily) and start listening for changes. */
  static async open(options: PgStoreOptions): Promise<PgCloudStore> {
    const driver = new PgDriver(options);
    try {
      await driver.listen();
    } catch (error) {
      await driver.close();
      throw error;
    }
    return new PgCloudStore(driver);
  }

  get hub(): ChangeHub {
    return this.#driver.hub;
  }

  get listening(): boolean {
    return this.#driver.listening;
  }

  get listenerPid(): number | undefined {
    return this.#driver.listenerPid;
  }

  override rememberNonce(caller: string, nonce: string, expiresAt: number): Promise<boolean> {
    return this.#driver.insertNonce(caller, nonce, expiresAt);
  }
}
