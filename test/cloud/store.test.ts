/**
 * The storage layer on both databases: the shared migrations (idempotent,
 * the same tables and columns on SQLite and PostgreSQL, a newer schema
 * refused, two instances migrating one fresh PostgreSQL schema at once),
 * nonces (once only, also after a restart), compare-and-set updates, and
 * database failures surfacing as CK_CLOUD_STORE / 503 on /ready.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { isCarkeyError } from '../../src/core/errors.js';
import { PgCloudStore } from '../../src/cloud/pg-store.js';
import { SqliteCloudStore } from '../../src/cloud/sqlite-store.js';
import { SCHEMA_VERSION } from '../../src/cloud/migrations.js';
import { backends, newCar, pgBackend, PG_ENABLED, PG_URL, sqliteBackend, startHarness, type Backend } from './helpers.js';

const TABLES = ['audit_checkpoints', 'audit_entries', 'commands', 'mailbox', 'request_nonces', 'schema_migrations', 'vehicles'];

async function columns(backend: Backend): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const table of TABLES) {
    const rows =
      backend.name === 'sqlite'
        ? await backend.exec(`SELECT name FROM pragma_table_info('${table}') ORDER BY cid`)
        : await backend.exec('SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position', [table]);
    out[table] = rows.map((row) => String(row.name));
  }
  return out;
}

const cleanups: Backend[] = [];
afterAll(async () => {
  for (const backend of cleanups) await backend.cleanup();
});

describe.runIf(PG_ENABLED)('one schema on both databases', () => {
  it('the migrations create the same tables and columns on SQLite and PostgreSQL', async () => {
    const sqlite = sqliteBackend();
    const postgres = pgBackend();
    cleanups.push(sqlite, postgres);
    await sqlite.open();
    await postgres.open();
    const a = await columns(sqlite);
    expect(a.vehicles).toContain('key_list');
    expect(await columns(postgres)).toEqual(a);
  });

  it('two instances migrating one fresh PostgreSQL schema at once both end at the same version', async () => {
    const postgres = pgBackend();
    cleanups.push(postgres);
    await (await postgres.open()).close();
    await postgres.exec('DROP TABLE vehicles, mailbox, audit_entries, audit_checkpoints, commands, request_nonces, schema_migrations');
    const options = `-c search_path=${postgres.location}`;
    const [one, two] = await Promise.all([PgCloudStore.open({ connectionString: PG_URL, options }), PgCloudStore.open({ connectionString: PG_URL, options })]);
    try {
      expect(await Promise.all([one.migrate(Date.now()), two.migrate(Date.now())])).toEqual([SCHEMA_VERSION, SCHEMA_VERSION]);
      expect(await postgres.exec('SELECT version FROM schema_migrations')).toHaveLength(SCHEMA_VERSION);
    } finally {
      await one.close();
      await two.close();
    }
  });
});

for (const makeBackend of backends()) {
  describe(`${makeBackend().name} store`, () => {
    const backend = makeBackend();
    cleanups.push(backend);

    it('migrating again changes nothing; a newer schema is refused', async () => {
      const store = await backend.open();
      expect(await store.migrate(Date.now())).toBe(SCHEMA_VERSION);
      expect(await backend.exec('SELECT version FROM schema_migrations')).toHaveLength(SCHEMA_VERSION);
      await backend.exec('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)', [SCHEMA_VERSION + 98, 'from the future', 0]);
      const failure = await store.migrate(Date.now()).catch((error: unknown) => error);
      expect(isCarkeyError(failure, 'CK_CLOUD_STORE')).toBe(true);
      await backend.exec('DELETE FROM schema_migrations WHERE version = ?', [SCHEMA_VERSION + 98]);
    });

    it('a nonce is accepted once, also across a restart of the store', async () => {
      const store = await backend.open();
      const caller = 'ab'.repeat(32);
      const nonce = Date.now().toString(16).padEnd(32, '0');
      expect(await store.rememberNonce(caller, nonce, Date.now() + 120_000)).toBe(true);
      expect(await store.rememberNonce(caller, nonce, Date.now() + 120_000)).toBe(false);
      expect(await store.rememberNonce('cd'.repeat(32), nonce, Date.now() + 120_000)).toBe(true);
      await store.close();
      const reopened = await backend.open();
      expect(await reopened.rememberNonce(caller, nonce, Date.now() + 120_000)).toBe(false);
      // expired nonces are purged (their requests are stale by then anyway)
      await reopened.purgeExpired(Date.now() + 200_000, 0);
      expect(await reopened.rememberNonce(caller, nonce, Date.now() + 120_000)).toBe(true);
    });

    it('updateKeyList is a compare-and-set on (epoch, version)', async () => {
      const store = await backend.open();
      const car = newCar();
      const record = { vehicleId: car.id, vehicleKey: car.car.publicKey, statement: Uint8Array.of(1), keyList: car.keyList.bytes, epoch: 0, version: 1, registeredAt: 1, updatedAt: 1 };
      expect(await store.insertVehicle(record)).toBe(true);
      expect(await store.insertVehicle(record)).toBe(false);
      const next = { keyList: Uint8Array.of(9), epoch: 0, version: 2, updatedAt: 2 };
      expect(await store.updateKeyList(car.id, { epoch: 0, version: 1 }, next)).toBe(true);
      expect(await store.updateKeyList(car.id, { epoch: 0, version: 1 }, { ...next, version: 3 })).toBe(false);
      expect(await store.getVehicle(car.id)).toMatchObject({ version: 2, keyList: Uint8Array.of(9), statement: Uint8Array.of(1) });
    });

    it('a database that fails makes /ready 503 CK_CLOUD_STORE and requests 503, never a crash', async () => {
      const store = await backend.open();
      const h = await startHarness(store, 'inject');
      const car = newCar();
      expect((await h.client.register(car)).status).toBe(200);
      await store.close();
      const ready = await h.client.raw('GET', '/ready');
      expect({ status: ready.status, code: (ready.json() as { error: { code: string } }).error.code }).toEqual({ status: 503, code: 'CK_CLOUD_STORE' });
      const read = await h.client.call(car.car, 'GET', `/v1/vehicles/${car.id}/key-list`);
      expect(read.status).toBe(503);
      expect((await h.client.raw('GET', '/health')).status).toBe(200);
      await h.close();
    });
  });
}

describe.runIf(PG_ENABLED)('PostgreSQL unreachable', () => {
  it('opening the store fails with CK_CLOUD_STORE', async () => {
    const failure = await PgCloudStore.open({ connectionString: 'postgres://postgres@127.0.0.1:1/none' }).catch((error: unknown) => error);
    expect(isCarkeyError(failure, 'CK_CLOUD_STORE')).toBe(true);
  });
});

describe('SQLite files', () => {
  it('the database file is private (0600)', async () => {
    const backend = sqliteBackend();
    cleanups.push(backend);
    const store = await backend.open();
    const { statSync } = await import('node:fs');
    expect(store instanceof SqliteCloudStore && (statSync(store.path).mode & 0o777).toString(8)).toBe('600');
  });
});
