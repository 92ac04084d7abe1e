/**
 * Shared fixtures for the carkey-cloud tests: the two databases (SQLite in a
 * fresh directory, PostgreSQL in a fresh schema per test file, dropped
 * afterwards), the two transports (fastify `inject()` and a real socket via
 * fetch), signed requests made with core `signRequest`, and parties with
 * fresh random keys so tests sharing one database never collide.
 *
 * PostgreSQL is expected at CARKEY_TEST_DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/test, as on the development and CI
 * machines); set CARKEY_TEST_NO_PG=1 to skip its pass explicitly.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { toHex } from '../../src/core/bytes.js';
import { signRequest } from '../../src/core/cloud-auth.js';
import { signVehicleStatement } from '../../src/core/vehicle-statement.js';
import { signKeyList, type KeyList, type KeyListBody } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { buildCloudApp, type CloudAppOptions } from '../../src/cloud/app.js';
import { encodeB64 } from '../../src/cloud/encoding.js';
import { PgCloudStore } from '../../src/cloud/pg-store.js';
import { SqliteCloudStore } from '../../src/cloud/sqlite-store.js';
import type { ChangeHub } from '../../src/cloud/changes.js';
import type { CloudStore } from '../../src/cloud/store.js';

export const crypto = createCrypto('node');
export const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

export const PG_URL = process.env.CARKEY_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const PG_ENABLED = process.env.CARKEY_TEST_NO_PG !== '1';
export const MQTT_URL = process.env.CARKEY_TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

// --- parties and documents ---------------------------------------------------------

export interface Party {
  readonly name: string;
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly hex: string;
}

export function newParty(name: string): Party {
  const seed = random(32);
  const publicKey = crypto.publicKeyFromSeed(seed);
  return { name, seed, publicKey, hex: toHex(publicKey) };
}

export interface Car {
  readonly car: Party;
  readonly owner: Party;
  readonly vehicleId: Uint8Array;
  readonly id: string;
  /** version 1 (epoch 0) signed by the owner, naming the owner */
  readonly keyList: KeyList;
}

export function newCar(name = 'car'): Car {
  const car = newParty(`${name}-car`);
  const owner = newParty(`${name}-owner`);
  const vehicleId = vehicleIdOf(crypto, car.publicKey);
  const keyList = signKeyList(crypto, owner.seed, { vehicleId, version: 1, issuedAt: Date.now(), owners: [owner.publicKey], revokedSerials: [], revokedKeys: [] });
  return { car, owner, vehicleId, id: toHex(vehicleId), keyList };
}

export function listFor(car: Car, signer: Party, body: Partial<KeyListBody>): KeyList {
  return signKeyList(crypto, signer.seed, { vehicleId: car.vehicleId, version: 2, issuedAt: Date.now(), owners: [car.owner.publicKey], revokedSerials: [], revokedKeys: [], ...body });
}

export function statementFor(car: Car, keyList: Uint8Array = car.keyList.bytes, signer: Party = car.car): string {
  return encodeB64(signVehicleStatement(crypto, signer.seed, Date.now(), keyList));
}

// --- transports -------------------------------------------------------------------------

export interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly text: string;
  json(): unknown;
}

export interface OutgoingRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body?: string | Buffer;
}

export interface Transport {
  readonly name: 'inject' | 'socket';
  send(request: OutgoingRequest): Promise<Answer>;
}

function answer(status: number, headers: Readonly<Record<string, string | undefined>>, text: string): Answer {
  return { status, headers, text, json: () => JSON.parse(text) as unknown };
}

export function injectTransport(app: FastifyInstance): Transport {
  return {
    name: 'inject',
    async send(request) {
      const response = await app.inject({
        method: request.method as 'GET',
        url: request.url,
        headers: request.headers,
        ...(request.body === undefined ? {} : { payload: request.body }),
        remoteAddress: '127.0.0.1',
      });
      const headers: Record<string, string | undefined> = {};
      for (const [name, value] of Object.entries(response.headers)) headers[name] = Array.isArray(value) ? value.join(', ') : value === undefined ? undefined : String(value);
      return answer(response.statusCode, headers, response.body);
    },
  };
}

export function socketTransport(baseUrl: string): Transport {
  return {
    name: 'socket',
    async send(request) {
      const response = await fetch(`${baseUrl}${request.url}`, { method: request.method, headers: request.headers, ...(request.body === undefined ? {} : { body: request.body }) });
      const headers: Record<string, string | undefined> = {};
      response.headers.forEach((value, name) => {
        headers[name] = value;
      });
      return answer(response.status, headers, await response.text());
    },
  };
}

// --- signed requests ----------------------------------------------------------------------

export interface SignOptions {
  /** the time to sign with (default now) */
  readonly time?: number;
  readonly headers?: Record<string, string>;
  /** sign this body but send `sentBody` */
  readonly sentBody?: string;
}

/** A signed request: `body` is JSON-encoded unless it is a string or raw bytes (a Buffer, sent as is). */
export function signedRequest(who: Party, method: string, url: string, body?: unknown, options: SignOptions = {}): OutgoingRequest {
  const sent: string | Buffer | undefined = body === undefined ? undefined : Buffer.isBuffer(body) ? body : typeof body === 'string' ? body : JSON.stringify(body);
  const mark = url.indexOf('?');
  const path = mark < 0 ? url : url.slice(0, mark);
  const query = mark < 0 ? '' : url.slice(mark + 1);
  const bytes = sent === undefined ? new Uint8Array(0) : typeof sent === 'string' ? new TextEncoder().encode(sent) : new Uint8Array(sent);
  const headers: Record<string, string> = {
    ...signRequest(crypto, random, who.seed, { method, path, query, body: bytes }, options.time ?? Date.now()),
    ...(sent === undefined ? {} : { 'content-type': 'application/json' }),
    ...options.headers,
  };
  const actual = options.sentBody ?? sent;
  return { method, url, headers, ...(actual === undefined ? {} : { body: actual }) };
}

/** A client bound to a transport: `call(party, method, url, body)` signs and sends. */
export class Client {
  constructor(readonly transport: Transport) {}

  call(who: Party, method: string, url: string, body?: unknown, options: SignOptions = {}): Promise<Answer> {
    return this.transport.send(signedRequest(who, method, url, body, options));
  }

  raw(method: string, url: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<Answer> {
    return this.transport.send({ method, url, headers, ...(body === undefined ? {} : { body }) });
  }

  async register(car: Car, keyList: Uint8Array = car.keyList.bytes): Promise<Answer> {
    return this.call(car.car, 'PUT', `/v1/vehicles/${car.id}`, { statement: statementFor(car, keyList) });
  }
}

/** The `error.code` of an answer, or undefined. */
export function codeOf(a: Answer): string | undefined {
  try {
    const body = a.json() as { error?: { code?: string } };
    return body.error?.code;
  } catch {
    return undefined;
  }
}

export function reasonOf(a: Answer): string | undefined {
  const body = a.json() as { error?: { details?: { reason?: string } } };
  return body.error?.details?.reason;
}

// --- databases ------------------------------------------------------------------------------

/** A store with its change hub visible (tests wait until a long-poll is parked). */
export type TestStore = CloudStore & { readonly hub: ChangeHub };

export interface Backend {
  readonly name: 'sqlite' | 'postgres';
  /** a new store on this test file's database, migrated */
  open(): Promise<TestStore>;
  /** run SQL directly on the database (to corrupt rows, inspect) with `?` placeholders */
  exec(sql: string, params?: readonly (string | number | Buffer)[]): Promise<readonly Record<string, unknown>[]>;
  /** drop the database (schema or directory) */
  cleanup(): Promise<void>;
  /** PostgreSQL: this file's schema; SQLite: its data directory */
  readonly location: string;
}

export function sqliteBackend(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'carkey-cloud-test-'));
  const opened: SqliteCloudStore[] = [];
  return {
    name: 'sqlite',
    location: dir,
    async open() {
      const store = SqliteCloudStore.open({ dir });
      await store.migrate(Date.now());
      opened.push(store);
      return store;
    },
    async exec(sql, params = []) {
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(join(dir, 'cloud.db'));
      try {
        const statement = db.prepare(sql);
        if (statement.reader) return statement.all(...params) as Record<string, unknown>[];
        statement.run(...params);
        return [];
      } finally {
        db.close();
      }
    },
    async cleanup() {
      for (const store of opened) await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function pgBackend(): Backend {
  const schema = `cloud_test_${toHex(random(6))}`;
  const options = `-c search_path=${schema}`;
  const opened: PgCloudStore[] = [];
  let created = false;
  const admin = async <T>(fn: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: PG_URL, options });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  };
  return {
    name: 'postgres',
    location: schema,
    async open() {
      if (!created) {
        await admin((client) => client.query(`CREATE SCHEMA ${schema}`));
        created = true;
      }
      const store = await PgCloudStore.open({ connectionString: PG_URL, options, max: 4, nonceMax: 2 });
      await store.migrate(Date.now());
      opened.push(store);
      return store;
    },
    async exec(sql, params = []) {
      let index = 0;
      const numbered = sql.replace(/\?/g, () => `$${++index}`);
      return admin(async (client) => (await client.query(numbered, [...params])).rows as Record<string, unknown>[]);
    },
    async cleanup() {
      for (const store of opened) await store.close();
      if (created) await admin((client) => client.query(`DROP SCHEMA ${schema} CASCADE`));
    },
  };
}

export function backends(): (() => Backend)[] {
  return PG_ENABLED ? [sqliteBackend, pgBackend] : [sqliteBackend];
}

/** Resolve once `condition` holds (checked every 10 ms); the test's own timeout bounds it. */
export async function until(condition: () => boolean | Promise<boolean>, what = 'condition'): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Limits high enough that only the rate-limit tests ever meet them. */
export const TEST_LIMITS = { perKeyPerMinute: 100_000, perIpPerMinute: 1_000_000 };

export interface Harness {
  readonly app: FastifyInstance;
  readonly store: CloudStore;
  readonly client: Client;
  readonly url: string | undefined;
  close(): Promise<void>;
}

/** An app on `store`, reached through `transport` ('inject', or a real socket on 127.0.0.1). */
export async function startHarness(store: CloudStore, transport: 'inject' | 'socket', options: Partial<CloudAppOptions> = {}): Promise<Harness> {
  const app = await buildCloudApp({ store, limits: TEST_LIMITS, docs: false, ...options });
  let url: string | undefined;
  if (transport === 'socket') url = await app.listen({ host: '127.0.0.1', port: 0 });
  else await app.ready();
  return {
    app,
    store,
    url,
    client: new Client(url === undefined ? injectTransport(app) : socketTransport(url)),
    close: () => app.close(),
  };
}
