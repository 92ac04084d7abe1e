/**
 * The cloud's schema, as versioned migrations shared by SQLite and
 * PostgreSQL: one list, rendered per dialect (column types and SQLite's
 * STRICT tables are the only differences).
 *
 * Guarantees: migrations are applied in version order, each in its own
 * transaction together with its row in `schema_migrations`, so a crash
 * leaves the schema at some version, never between two; a database whose
 * schema is newer than this code is refused (CK_CLOUD_STORE) rather than
 * used. Versions are never edited once released, only appended.
 */

export type Dialect = 'sqlite' | 'postgres';

interface Types {
  /** 64-bit integer */
  readonly int: string;
  readonly bytes: string;
  readonly text: string;
  /** table suffix */
  readonly strict: string;
}

const TYPES: Readonly<Record<Dialect, Types>> = {
  sqlite: { int: 'INTEGER', bytes: 'BLOB', text: 'TEXT', strict: ' STRICT' },
  postgres: { int: 'BIGINT', bytes: 'BYTEA', text: 'TEXT', strict: '' },
};

export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly statements: (t: Types) => readonly string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'vehicles, key lists, mailbox, audit, remote commands, request nonces',
    statements: (t) => [
      `CREATE TABLE vehicles (
        vehicle_id ${t.text} PRIMARY KEY,
        vehicle_key ${t.bytes} NOT NULL,
        statement ${t.bytes} NOT NULL,
        key_list ${t.bytes} NOT NULL,
        epoch ${t.int} NOT NULL CHECK (epoch BETWEEN 0 AND 4294967295),
        version ${t.int} NOT NULL CHECK (version BETWEEN 1 AND 4294967295),
        registered_at ${t.int} NOT NULL,
        updated_at ${t.int} NOT NULL
      )${t.strict}`,
      `CREATE TABLE mailbox (
        item_id ${t.text} PRIMARY KEY,
        recipient ${t.text} NOT NULL,
        sender ${t.text} NOT NULL,
        vehicle_id ${t.text} NOT NULL,
        box ${t.bytes} NOT NULL,
        posted_at ${t.int} NOT NULL,
        expires_at ${t.int} NOT NULL
      )${t.strict}`,
      'CREATE INDEX mailbox_by_recipient ON mailbox (recipient, expires_at)',
      'CREATE INDEX mailbox_by_expiry ON mailbox (expires_at)',
      `CREATE TABLE audit_entries (
        vehicle_id ${t.text} NOT NULL,
        seq ${t.int} NOT NULL CHECK (seq >= 1),
        time ${t.int} NOT NULL,
        kind ${t.text} NOT NULL,
        fields ${t.text} NOT NULL,
        hash ${t.bytes} NOT NULL,
        stored_at ${t.int} NOT NULL,
        PRIMARY KEY (vehicle_id, seq)
      )${t.strict}`,
      `CREATE TABLE audit_checkpoints (
        vehicle_id ${t.text} NOT NULL,
        seq ${t.int} NOT NULL CHECK (seq >= 1),
        hash ${t.bytes} NOT NULL,
        signature ${t.bytes} NOT NULL,
        stored_at ${t.int} NOT NULL,
        PRIMARY KEY (vehicle_id, seq)
      )${t.strict}`,
      `CREATE TABLE commands (
        vehicle_id ${t.text} NOT NULL,
        command_id ${t.text} NOT NULL,
        caller ${t.text} NOT NULL,
        box ${t.bytes} NOT NULL,
        posted_at ${t.int} NOT NULL,
        expires_at ${t.int} NOT NULL,
        result ${t.bytes},
        result_at ${t.int},
        PRIMARY KEY (vehicle_id, command_id)
      )${t.strict}`,
      'CREATE INDEX commands_by_expiry ON commands (expires_at)',
      `CREATE TABLE request_nonces (
        caller ${t.text} NOT NULL,
        nonce ${t.text} NOT NULL,
        expires_at ${t.int} NOT NULL,
        PRIMARY KEY (caller, nonce)
      )${t.strict}`,
      'CREATE INDEX request_nonces_by_expiry ON request_nonces (expires_at)',
    ],
  },
];

export const SCHEMA_VERSION = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

export function migrationStatements(migration: Migration, dialect: Dialect): readonly string[] {
  return migration.statements(TYPES[dialect]);
}

export function createMigrationsTable(dialect: Dialect): string {
  const t = TYPES[dialect];
  return `CREATE TABLE IF NOT EXISTS schema_migrations (version ${t.int} PRIMARY KEY, description ${t.text} NOT NULL, applied_at ${t.int} NOT NULL)${t.strict}`;
}
