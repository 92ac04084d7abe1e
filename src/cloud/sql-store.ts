/**
 * The CloudStore operations as SQL, shared by both databases. A dialect
 * supplies a small `SqlDriver` (run a statement, run a batch atomically,
 * publish a change); everything else — the queries, row decoding and the
 * migration runner — is here once.
 *
 * Guarantees: queries use `?` placeholders only (the PostgreSQL driver
 * numbers them), so the SQL text is the same on both; every statement that
 * changes a row either succeeds atomically or reports that the expected row
 * was not there (ON CONFLICT DO NOTHING / conditional UPDATE, checked by the
 * affected-row count); rows are decoded column by column and a column of the
 * wrong type is CK_CLOUD_STORE, never a wrong value. Topics are published
 * only after the change committed.
 */
import { CarkeyError } from '../core/errors.js';
import { asBuffer } from './encoding.js';
import { createMigrationsTable, MIGRATIONS, migrationStatements, SCHEMA_VERSION, type Dialect } from './migrations.js';
import {
  topics,
  type CloudStore,
  type CommandRecord,
  type KeyListState,
  type KeyListUpdate,
  type MailboxItem,
  type PurgeCounts,
  type StoredAuditEntry,
  type StoredCheckpoint,
  type VehicleRecord,
} from './store.js';

export type SqlValue = string | number | Buffer | null;
export type Row = Readonly<Record<string, unknown>>;

export interface SqlStatement {
  readonly sql: string;
  readonly params: readonly SqlValue[];
}

/** One connection (or session) on which the migration runner holds its lock. */
export interface MigrationSession {
  exec(sql: string, params?: readonly SqlValue[]): Promise<readonly Row[]>;
}

export interface SqlDriver {
  readonly dialect: Dialect;
  all(sql: string, params: readonly SqlValue[]): Promise<readonly Row[]>;
  /** Number of rows changed. */
  run(sql: string, params: readonly SqlValue[]): Promise<number>;
  /** All statements in one transaction; false (all rolled back) when a unique or primary key refused one. */
  batch(statements: readonly SqlStatement[]): Promise<boolean>;
  /** Run `fn` holding the database-wide migration lock. */
  withMigrationLock<T>(fn: (session: MigrationSession) => Promise<T>): Promise<T>;
  /** Announce a committed change of `topic` to every subscriber. */
  publish(topic: string): Promise<void>;
  subscribe(topic: string, listener: () => void): () => void;
  ping(): Promise<void>;
  close(): Promise<void>;
}

// --- row decoding ---------------------------------------------------------------

function bad(detail: string): CarkeyError {
  return new CarkeyError('CK_CLOUD_STORE', `unexpected row: ${detail}`);
}

function int(row: Row, name: string): number {
  const value = row[name];
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw bad(`column ${name} is not an integer`);
  return value;
}

function optionalInt(row: Row, name: string): number | undefined {
  return row[name] === null || row[name] === undefined ? undefined : int(row, name);
}

function text(row: Row, name: string): string {
  const value = row[name];
  if (typeof value !== 'string') throw bad(`column ${name} is not text`);
  return value;
}

function blob(row: Row, name: string): Uint8Array {
  const value = row[name];
  if (!(value instanceof Uint8Array)) throw bad(`column ${name} is not bytes`);
  // Both drivers hand out a fresh buffer per row and column: a plain view, no copy.
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

function optionalBlob(row: Row, name: string): Uint8Array | undefined {
  return row[name] === null || row[name] === undefined ? undefined : blob(row, name);
}

function vehicleFrom(row: Row): VehicleRecord {
  return {
    vehicleId: text(row, 'vehicle_id'),
    vehicleKey: blob(row, 'vehicle_key'),
    statement: blob(row, 'statement'),
    keyList: blob(row, 'key_list'),
    epoch: int(row, 'epoch'),
    version: int(row, 'version'),
    registeredAt: int(row, 'registered_at'),
    updatedAt: int(row, 'updated_at'),
  };
}

function mailboxFrom(row: Row): MailboxItem {
  return {
    id: text(row, 'item_id'),
    recipient: text(row, 'recipient'),
    sender: text(row, 'sender'),
    vehicleId: text(row, 'vehicle_id'),
    box: blob(row, 'box'),
    postedAt: int(row, 'posted_at'),
    expiresAt: int(row, 'expires_at'),
  };
}

function entryFrom(row: Row): StoredAuditEntry {
  return { seq: int(row, 'seq'), time: int(row, 'time'), kind: text(row, 'kind'), fields: text(row, 'fields'), hash: blob(row, 'hash') };
}

function checkpointFrom(row: Row): StoredCheckpoint {
  return { seq: int(row, 'seq'), hash: blob(row, 'hash'), signature: blob(row, 'signature') };
}

function commandFrom(row: Row): CommandRecord {
  return {
    vehicleId: text(row, 'vehicle_id'),
    commandId: text(row, 'command_id'),
    caller: text(row, 'caller'),
    box: blob(row, 'box'),
    postedAt: int(row, 'posted_at'),
    expiresAt: int(row, 'expires_at'),
    result: optionalBlob(row, 'result'),
    resultAt: optionalInt(row, 'result_at'),
  };
}

// --- migrations -------------------------------------------------------------------

/** Bring the schema to SCHEMA_VERSION; refuses a newer one. */
export async function runMigrations(driver: SqlDriver, now: number): Promise<number> {
  return driver.withMigrationLock(async (session) => {
    await session.exec(createMigrationsTable(driver.dialect));
    const rows = await session.exec('SELECT max(version) AS version FROM schema_migrations');
    const first = rows[0];
    let current = first === undefined || first.version === null ? 0 : int(first, 'version');
    if (current > SCHEMA_VERSION) {
      throw new CarkeyError('CK_CLOUD_STORE', `the database schema is version ${current}, newer than this carkey-cloud supports (${SCHEMA_VERSION}); upgrade carkey-cloud`);
    }
    for (const migration of MIGRATIONS) {
      if (migration.version <= current) continue;
      await session.exec(driver.dialect === 'sqlite' ? 'BEGIN IMMEDIATE' : 'BEGIN');
      try {
        for (const statement of migrationStatements(migration, driver.dialect)) await session.exec(statement);
        await session.exec('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)', [migration.version, migration.description, now]);
        await session.exec('COMMIT');
      } catch (error) {
        await session.exec('ROLLBACK').catch(() => undefined);
        throw error;
      }
      current = migration.version;
    }
    return current;
  });
}

// --- the store ------------------------------------------------------------------

const VEHICLE_COLUMNS = 'vehicle_id, vehicle_key, statement, key_list, epoch, version, registered_at, updated_at';
const MAILBOX_COLUMNS = 'item_id, recipient, sender, vehicle_id, box, posted_at, expires_at';
const COMMAND_COLUMNS = 'vehicle_id, command_id, caller, box, posted_at, expires_at, result, result_at';

export class SqlCloudStore implements CloudStore {
  readonly dialect: Dialect;
  readonly #driver: SqlDriver;

  constructor(driver: SqlDriver) {
    this.#driver = driver;
    this.dialect = driver.dialect;
  }

  migrate(now: number): Promise<number> {
    return runMigrations(this.#driver, now);
  }

  ping(): Promise<void> {
    return this.#driver.ping();
  }

  close(): Promise<void> {
    return this.#driver.close();
  }

  subscribe(topic: string, listener: () => void): () => void {
    return this.#driver.subscribe(topic, listener);
  }

  async getVehicle(vehicleId: string): Promise<VehicleRecord | undefined> {
    const rows = await this.#driver.all(`SELECT ${VEHICLE_COLUMNS} FROM vehicles WHERE vehicle_id = ?`, [vehicleId]);
    const row = rows[0];
    return row === undefined ? undefined : vehicleFrom(row);
  }

  async insertVehicle(r: VehicleRecord): Promise<boolean> {
    const changed = await this.#driver.run(
      `INSERT INTO vehicles (${VEHICLE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (vehicle_id) DO NOTHING`,
      [r.vehicleId, asBuffer(r.vehicleKey), asBuffer(r.statement), asBuffer(r.keyList), r.epoch, r.version, r.registeredAt, r.updatedAt],
    );
    if (changed === 1) await this.#driver.publish(topics.keyList(r.vehicleId));
    return changed === 1;
  }

  async updateKeyList(vehicleId: string, expected: KeyListState, next: KeyListUpdate): Promise<boolean> {
    const changed =
      next.statement === undefined
        ? await this.#driver.run('UPDATE vehicles SET key_list = ?, epoch = ?, version = ?, updated_at = ? WHERE vehicle_id = ? AND epoch = ? AND version = ?', [
            asBuffer(next.keyList), next.epoch, next.version, next.updatedAt, vehicleId, expected.epoch, expected.version,
          ])
        : await this.#driver.run('UPDATE vehicles SET key_list = ?, statement = ?, epoch = ?, version = ?, updated_at = ? WHERE vehicle_id = ? AND epoch = ? AND version = ?', [
            asBuffer(next.keyList), asBuffer(next.statement), next.epoch, next.version, next.updatedAt, vehicleId, expected.epoch, expected.version,
          ]);
    if (changed === 1) await this.#driver.publish(topics.keyList(vehicleId));
    return changed === 1;
  }

  async rememberNonce(caller: string, nonce: string, expiresAt: number): Promise<boolean> {
    return (await this.#driver.run('INSERT INTO request_nonces (caller, nonce, expires_at) VALUES (?, ?, ?) ON CONFLICT (caller, nonce) DO NOTHING', [caller, nonce, expiresAt])) === 1;
  }

  async putMailboxItem(item: MailboxItem): Promise<void> {
    await this.#driver.run(`INSERT INTO mailbox (${MAILBOX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`, [
      item.id, item.recipient, item.sender, item.vehicleId, asBuffer(item.box), item.postedAt, item.expiresAt,
    ]);
  }

  async listMailbox(recipient: string, now: number, limit: number): Promise<readonly MailboxItem[]> {
    const rows = await this.#driver.all(`SELECT ${MAILBOX_COLUMNS} FROM mailbox WHERE recipient = ? AND expires_at > ? ORDER BY posted_at, item_id LIMIT ?`, [recipient, now, limit]);
    return rows.map(mailboxFrom);
  }

  async deleteMailboxItem(recipient: string, id: string): Promise<boolean> {
    return (await this.#driver.run('DELETE FROM mailbox WHERE item_id = ? AND recipient = ?', [id, recipient])) === 1;
  }

  async auditHead(vehicleId: string): Promise<StoredAuditEntry | undefined> {
    const rows = await this.#driver.all('SELECT seq, time, kind, fields, hash FROM audit_entries WHERE vehicle_id = ? ORDER BY seq DESC LIMIT 1', [vehicleId]);
    const row = rows[0];
    return row === undefined ? undefined : entryFrom(row);
  }

  async auditEntries(vehicleId: string, fromSeq: number, toSeq: number): Promise<readonly StoredAuditEntry[]> {
    const rows = await this.#driver.all('SELECT seq, time, kind, fields, hash FROM audit_entries WHERE vehicle_id = ? AND seq >= ? AND seq <= ? ORDER BY seq', [vehicleId, fromSeq, toSeq]);
    return rows.map(entryFrom);
  }

  async auditCheckpoints(vehicleId: string, fromSeq: number, toSeq: number): Promise<readonly StoredCheckpoint[]> {
    const rows = await this.#driver.all('SELECT seq, hash, signature FROM audit_checkpoints WHERE vehicle_id = ? AND seq >= ? AND seq <= ? ORDER BY seq', [vehicleId, fromSeq, toSeq]);
    return rows.map(checkpointFrom);
  }

  appendAudit(vehicleId: string, entries: readonly StoredAuditEntry[], checkpoints: readonly StoredCheckpoint[], storedAt: number): Promise<boolean> {
    const statements: SqlStatement[] = [
      ...entries.map((e) => ({
        sql: 'INSERT INTO audit_entries (vehicle_id, seq, time, kind, fields, hash, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        params: [vehicleId, e.seq, e.time, e.kind, e.fields, asBuffer(e.hash), storedAt],
      })),
      ...checkpoints.map((c) => ({
        sql: 'INSERT INTO audit_checkpoints (vehicle_id, seq, hash, signature, stored_at) VALUES (?, ?, ?, ?, ?)',
        params: [vehicleId, c.seq, asBuffer(c.hash), asBuffer(c.signature), storedAt],
      })),
    ];
    if (statements.length === 0) return Promise.resolve(true);
    return this.#driver.batch(statements);
  }

  async putCommand(r: CommandRecord): Promise<boolean> {
    const changed = await this.#driver.run(
      `INSERT INTO commands (${COMMAND_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL) ON CONFLICT (vehicle_id, command_id) DO NOTHING`,
      [r.vehicleId, r.commandId, r.caller, asBuffer(r.box), r.postedAt, r.expiresAt],
    );
    if (changed === 1) await this.#driver.publish(topics.commands(r.vehicleId));
    return changed === 1;
  }

  async pendingCommands(vehicleId: string, now: number, limit: number): Promise<readonly CommandRecord[]> {
    const rows = await this.#driver.all(
      `SELECT ${COMMAND_COLUMNS} FROM commands WHERE vehicle_id = ? AND result IS NULL AND expires_at > ? ORDER BY posted_at, command_id LIMIT ?`,
      [vehicleId, now, limit],
    );
    return rows.map(commandFrom);
  }

  async getCommand(vehicleId: string, commandId: string): Promise<CommandRecord | undefined> {
    const rows = await this.#driver.all(`SELECT ${COMMAND_COLUMNS} FROM commands WHERE vehicle_id = ? AND command_id = ?`, [vehicleId, commandId]);
    const row = rows[0];
    return row === undefined ? undefined : commandFrom(row);
  }

  async putResult(vehicleId: string, commandId: string, box: Uint8Array, at: number): Promise<boolean> {
    const changed = await this.#driver.run('UPDATE commands SET result = ?, result_at = ? WHERE vehicle_id = ? AND command_id = ? AND result IS NULL', [asBuffer(box), at, vehicleId, commandId]);
    if (changed === 1) {
      await this.#driver.publish(topics.result(vehicleId, commandId));
      await this.#driver.publish(topics.commands(vehicleId));
    }
    return changed === 1;
  }

  async purgeExpired(now: number, commandsBefore: number): Promise<PurgeCounts> {
    const nonces = await this.#driver.run('DELETE FROM request_nonces WHERE expires_at < ?', [now]);
    const mailbox = await this.#driver.run('DELETE FROM mailbox WHERE expires_at <= ?', [now]);
    const commands = await this.#driver.run('DELETE FROM commands WHERE expires_at < ?', [commandsBefore]);
    return { nonces, mailbox, commands };
  }
}
