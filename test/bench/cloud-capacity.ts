/**
 * Capacity figures for docs/scaling.md, measured against one
 * `carkey-cloud serve` process (SQLite; `--postgres` for PostgreSQL in a fresh
 * schema, whose size per car it also reports):
 *
 *   node dist/test/bench/cloud-capacity.js [--waiters N] [--cars N] [--postgres]
 *
 * - held long-polls: N signed GET key-list?wait=60 requests parked at once
 *   (N sockets), the server's resident memory before and after → bytes per
 *   held request; then one change wakes them all → the time until every one
 *   has answered (the fan-out cost of a change).
 * - database size per car (PostgreSQL): N cars registered with a key list
 *   and 100 audit entries each, pg_total_relation_size per table ÷ N.
 * Prints one JSON object on stdout; progress on stderr.
 */
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { startProgram, stopProgram } from '../../firmware-sim/rig.js';
import { toHex } from '../../src/core/bytes.js';
import { encodeAuditPage } from '../../src/core/audit-page.js';
import { AUDIT_GENESIS_HASH, auditLinkHash, signCheckpoint, type AuditEntry } from '../../src/core/audit.js';
import { signRequest } from '../../src/core/cloud-auth.js';
import { signVehicleStatement } from '../../src/core/vehicle-statement.js';
import { signKeyList } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { vehicleIdOf } from '../../src/core/identity.js';

const crypto = createCrypto('node');
const PG_URL = process.env.CARKEY_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
let counter = 0;
const random = (n: number): Uint8Array => {
  const out = new Uint8Array(n);
  let value = ++counter;
  for (let i = 0; i < n; i++) {
    out[i] = (value & 0xff) ^ (i * 29);
    value = Math.floor(value / 256);
  }
  return out;
};

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(name);
  const value = index < 0 ? undefined : Number(process.argv[index + 1]);
  return value === undefined || !Number.isSafeInteger(value) || value <= 0 ? fallback : value;
}

function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:')) ?? 'VmRSS: 0 kB';
  return Number(/(\d+)/.exec(line)?.[1] ?? 0) * 1024;
}

interface Car {
  readonly seed: Uint8Array;
  readonly ownerSeed: Uint8Array;
  readonly id: string;
  readonly vehicleId: Uint8Array;
}

function newCar(): Car {
  const seed = random(32);
  const vehicleId = vehicleIdOf(crypto, crypto.publicKeyFromSeed(seed));
  return { seed, ownerSeed: random(32), vehicleId, id: toHex(vehicleId) };
}

function send(agent: Agent, base: string, seed: Uint8Array, method: string, path: string, query: string, body: string | undefined, extra: Record<string, string> = {}): Promise<number> {
  const bytes = new TextEncoder().encode(body ?? '');
  const headers = { ...signRequest(crypto, random, seed, { method, path, query, body: bytes }, Date.now()), ...extra, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}${query === '' ? '' : `?${query}`}`, { method, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function keyList(car: Car, version: number): Uint8Array {
  return signKeyList(crypto, car.ownerSeed, { vehicleId: car.vehicleId, version, issuedAt: Date.now(), owners: [crypto.publicKeyFromSeed(car.ownerSeed)], revokedSerials: [], revokedKeys: [] }).bytes;
}

async function register(agent: Agent, base: string, car: Car): Promise<void> {
  const statement = Buffer.from(signVehicleStatement(crypto, car.seed, Date.now(), keyList(car, 1))).toString('base64url');
  const status = await send(agent, base, car.seed, 'PUT', `/v1/vehicles/${car.id}`, '', JSON.stringify({ statement }));
  if (status !== 200) throw new Error(`registration answered ${status}`);
}

async function main(): Promise<void> {
  const waiters = option('--waiters', 5000);
  const cars = option('--cars', 2000);
  const postgres = process.argv.includes('--postgres');
  const args = ['serve', '--port', '0', '--log-level', 'warn', '--rate-key', '0', '--rate-ip', '0'];
  const env: NodeJS.ProcessEnv = {};
  const dir = mkdtempSync(join(tmpdir(), 'carkey-cloud-capacity-'));
  const schema = `cloud_capacity_${toHex(random(4))}`;
  if (postgres) {
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.end();
    env.DATABASE_URL = `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  } else args.push('--data', dir);
  const server = await startProgram('src/cli/carkey-cloud.js', args, { env });
  const base = String(server.ready.url);
  const pid = Number(server.ready.pid);
  const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  const report: Record<string, unknown> = { store: postgres ? 'postgres' : 'sqlite', node: process.version };
  try {
    // --- held long-polls ---
    const car = newCar();
    await register(agent, base, car);
    const path = `/v1/vehicles/${car.id}/key-list`;
    await new Promise((resolve) => setTimeout(resolve, 500));
    const before = rssBytes(pid);
    process.stderr.write(`parking ${waiters} long-polls ...\n`);
    const held: Promise<number>[] = [];
    for (let i = 0; i < waiters; i++) held.push(send(agent, base, car.seed, 'GET', path, 'wait=60', undefined, { 'if-none-match': '"0.1"' }));
    for (let i = 0; i < 600; i++) {
      const metrics = await (await fetch(`${base}/metrics`)).text();
      const parked = Number(/carkey_cloud_long_polls (\d+)/.exec(metrics)?.[1] ?? 0);
      if (parked >= waiters) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const parkedRss = rssBytes(pid);
    const wakeStart = performance.now();
    const body = JSON.stringify({ keyList: Buffer.from(keyList(car, 2)).toString('base64url') });
    if ((await send(new Agent(), base, car.ownerSeed, 'POST', path, '', body)) !== 200) throw new Error('publishing v2 failed');
    const statuses = await Promise.all(held);
    const wakeMs = performance.now() - wakeStart;
    report.longPolls = {
      held: waiters,
      rssBeforeMiB: Math.round(before / 2 ** 20),
      rssHeldMiB: Math.round(parkedRss / 2 ** 20),
      bytesPerHeldRequest: Math.round((parkedRss - before) / waiters),
      allAnswered200: statuses.every((s) => s === 200),
      wakeAllMs: Math.round(wakeMs),
    };
    // --- database size per car (PostgreSQL) ---
    if (postgres) {
      process.stderr.write(`registering ${cars} cars with 100 audit entries each ...\n`);
      for (let i = 0; i < cars; i++) {
        const c = newCar();
        await register(agent, base, c);
        const entries: AuditEntry[] = [];
        let previous = AUDIT_GENESIS_HASH;
        for (let seq = 1; seq <= 100; seq++) {
          const record = { seq, time: Date.now(), kind: 'decision', fields: { command: 'unlock', result: 'allow', key: toHex(random(8)), rssi: -60 } };
          previous = auditLinkHash(crypto, previous, record);
          entries.push({ ...record, hash: previous });
        }
        for (let from = 0; from < 100; from += 50) {
          const page = entries.slice(from, from + 50);
          const last = page[page.length - 1];
          const checkpoints = last === undefined ? [] : [signCheckpoint(crypto, c.seed, last.seq, last.hash)];
          const status = await send(agent, base, c.seed, 'POST', `/v1/vehicles/${c.id}/audit`, '', new TextDecoder().decode(encodeAuditPage({ entries: page, checkpoints, last: last?.seq ?? 0 })));
          if (status !== 200) throw new Error(`audit upload answered ${status}`);
        }
      }
      const client = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
      await client.connect();
      const sizes: Record<string, number> = {};
      for (const table of ['vehicles', 'audit_entries', 'audit_checkpoints', 'request_nonces']) {
        const { rows } = await client.query<{ bytes: string; n: string }>(`SELECT pg_total_relation_size('${table}') AS bytes, (SELECT count(*) FROM ${table}) AS n`);
        sizes[table] = Number(rows[0]?.bytes ?? 0);
        sizes[`${table}Rows`] = Number(rows[0]?.n ?? 0);
      }
      await client.end();
      report.database = {
        cars: cars + 1,
        bytesPerCarVehicleRow: Math.round((sizes.vehicles ?? 0) / (cars + 1)),
        bytesPerAuditEntry: Math.round((sizes.audit_entries ?? 0) / Math.max(1, sizes.audit_entriesRows ?? 1)),
        bytesPerCheckpoint: Math.round((sizes.audit_checkpoints ?? 0) / Math.max(1, sizes.audit_checkpointsRows ?? 1)),
        bytesPerNonce: Math.round((sizes.request_nonces ?? 0) / Math.max(1, sizes.request_noncesRows ?? 1)),
      };
    }
  } finally {
    agent.destroy();
    await stopProgram(server);
    rmSync(dir, { recursive: true, force: true });
    if (postgres) {
      const admin = new pg.Client({ connectionString: PG_URL });
      await admin.connect();
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    }
  }
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`capacity run failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
