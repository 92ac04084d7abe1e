/**
 * carkey-cloud under load: autocannon on loopback against one
 * `carkey-cloud serve` process (dist/src/cli/carkey-cloud.js, a separate
 * process, so the server has one core and the load generator the other),
 * on SQLite and — when PostgreSQL answers at CARKEY_BENCH_DATABASE_URL
 * (default postgres://postgres@127.0.0.1:5432/test) — on PostgreSQL, in a
 * fresh schema dropped afterwards.
 *
 * Rows (run.ts prints them with the other benchmarks):
 * - cloud-verify-request/node: the CPU cost of checking one request
 *   signature (core verifyRequestSignature), timed op by op like the crypto rows;
 * - cloud-http-time/STORE: unsigned GET /v1/time, the floor of an HTTP round trip;
 * - cloud-key-list-304/STORE: a car's signed GET key-list with a matching
 *   If-None-Match (what a polling car costs): signature, nonce, one read, 304;
 * - cloud-key-list-200/STORE: the same without If-None-Match (the document is sent).
 * For the HTTP rows ops/s is requests per second over the timed duration,
 * median/p99 are autocannon's request latencies, and cpu/op is the *server
 * process's* CPU time per request (from /proc), which hardly moves when the
 * machine is busy.
 *
 * How: every signed request needs its own nonce, so a pool of signed header
 * sets is made before each run (signing during the run would steal the
 * server's CPU); should the pool run out, the rest are signed on the fly and
 * the count is printed on stderr. Rate limits are switched off (--rate-key 0
 * --rate-ip 0) and logs are at warn. A 1 s warm-up precedes every run, and
 * setup checks that each scenario answers with the status it measures.
 */
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon, { type AutocannonRequest } from 'autocannon';
import pg from 'pg';
import { startProgram, stopProgram, type Started } from '../../firmware-sim/rig.js';
import { toHex } from '../../src/core/bytes.js';
import { signRequest, verifyRequestSignature, type RequestToSign } from '../../src/core/cloud-auth.js';
import { signVehicleStatement } from '../../src/core/vehicle-statement.js';
import { signKeyList } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { registerBench, type BenchResult } from './harness.js';

const crypto = createCrypto('node');
const PG_URL = process.env.CARKEY_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const CONNECTIONS = 20;
const POOL_PER_SECOND = 20_000;

function fixed(label: string, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (label.charCodeAt(i % label.length) * 31 + i * 7) & 0xff;
  return out;
}

let nonceCounter = 0;
/** Unique nonces without the RNG cost (the server only needs them unique). */
const random = (n: number): Uint8Array => {
  const out = new Uint8Array(n);
  let value = ++nonceCounter;
  for (let i = 0; i < n && value > 0; i++) {
    out[i] = value & 0xff;
    value = Math.floor(value / 256);
  }
  out[n - 1] = 0xc1;
  return out;
};

// --- the pure cost of one signature check ---------------------------------------------------

registerBench('cloud-verify-request/node', () => {
  const seed = fixed('bench-car', 32);
  const request: RequestToSign = { method: 'GET', path: `/v1/vehicles/${'ab'.repeat(16)}/key-list`, query: 'wait=30', body: new Uint8Array(0) };
  const now = 1_800_000_000_000;
  const headers = signRequest(crypto, random, seed, request, now);
  if (!verifyRequestSignature(crypto, headers, request, now).ok) throw new Error('benchmark setup: the request does not verify');
  return () => verifyRequestSignature(crypto, headers, request, now);
});

// --- HTTP under load ----------------------------------------------------------------------------

interface Fixture {
  readonly url: string;
  readonly pid: number;
  readonly carSeed: Uint8Array;
  readonly vehicleId: string;
  readonly stop: () => Promise<void>;
}

function cpuMicros(pid: number): number {
  // /proc/PID/stat fields 14 and 15 (utime, stime) in clock ticks; the name field may contain spaces.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / 100;
}

async function register(url: string, carSeed: Uint8Array): Promise<string> {
  const ownerSeed = fixed('bench-owner', 32);
  const carKey = crypto.publicKeyFromSeed(carSeed);
  const vehicleId = vehicleIdOf(crypto, carKey);
  const list = signKeyList(crypto, ownerSeed, { vehicleId, version: 1, issuedAt: Date.now(), owners: [crypto.publicKeyFromSeed(ownerSeed)], revokedSerials: [], revokedKeys: [] });
  const statement = Buffer.from(signVehicleStatement(crypto, carSeed, Date.now(), list.bytes)).toString('base64url');
  const id = toHex(vehicleId);
  const body = JSON.stringify({ statement });
  const headers = signRequest(crypto, random, carSeed, { method: 'PUT', path: `/v1/vehicles/${id}`, query: '', body: new TextEncoder().encode(body) }, Date.now());
  const answer = await fetch(`${url}/v1/vehicles/${id}`, { method: 'PUT', headers: { ...headers, 'content-type': 'application/json' }, body });
  if (answer.status !== 200) throw new Error(`benchmark setup: registration answered ${answer.status} ${await answer.text()}`);
  return id;
}

async function startCloud(store: 'sqlite' | 'postgres'): Promise<Fixture> {
  const args = ['serve', '--port', '0', '--log-level', 'warn', '--rate-key', '0', '--rate-ip', '0'];
  let cleanup: () => Promise<void> = () => Promise.resolve();
  const env: NodeJS.ProcessEnv = {};
  if (store === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'carkey-cloud-bench-'));
    args.push('--data', dir);
    cleanup = () => Promise.resolve(rmSync(dir, { recursive: true, force: true }));
  } else {
    const schema = `cloud_bench_${toHex(random(4))}`;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.end();
    env.DATABASE_URL = `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    cleanup = async () => {
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      await client.query(`DROP SCHEMA ${schema} CASCADE`);
      await client.end();
    };
  }
  let server: Started;
  try {
    server = await startProgram('src/cli/carkey-cloud.js', args, { env });
  } catch (error) {
    await cleanup();
    throw error;
  }
  const url = String(server.ready.url);
  const carSeed = fixed(`bench-car-${store}`, 32);
  const vehicleId = await register(url, carSeed);
  return {
    url,
    pid: Number(server.ready.pid),
    carSeed,
    vehicleId,
    stop: async () => {
      await stopProgram(server);
      await cleanup();
    },
  };
}

type Scenario = 'time' | 'key-list-304' | 'key-list-200';

function requestOf(fixture: Fixture, scenario: Scenario): { path: string; signed: boolean; expect: number; extra: Record<string, string> } {
  if (scenario === 'time') return { path: '/v1/time', signed: false, expect: 200, extra: {} };
  return { path: `/v1/vehicles/${fixture.vehicleId}/key-list`, signed: true, expect: scenario === 'key-list-304' ? 304 : 200, extra: scenario === 'key-list-304' ? { 'if-none-match': '"0.1"' } : {} };
}

function signedHeaders(fixture: Fixture, path: string, extra: Record<string, string>): Record<string, string> {
  return { ...signRequest(crypto, random, fixture.carSeed, { method: 'GET', path, query: '', body: new Uint8Array(0) }, Date.now()), ...extra };
}

async function load(fixture: Fixture, scenario: Scenario, seconds: number): Promise<{ result: Awaited<ReturnType<typeof autocannon>>; cpuMicros: number; onTheFly: number }> {
  const { path, signed, expect, extra } = requestOf(fixture, scenario);
  const pool: Record<string, string>[] = [];
  if (signed) for (let i = 0; i < Math.ceil(POOL_PER_SECOND * seconds); i++) pool.push(signedHeaders(fixture, path, extra));
  let next = 0;
  let onTheFly = 0;
  const setupRequest = (request: AutocannonRequest): AutocannonRequest => {
    if (!signed) return request;
    const headers = pool[next++];
    if (headers !== undefined) return { ...request, headers };
    onTheFly++;
    return { ...request, headers: signedHeaders(fixture, path, extra) };
  };
  const cpuBefore = cpuMicros(fixture.pid);
  const result = await autocannon({ url: fixture.url, connections: CONNECTIONS, duration: seconds, requests: [{ method: 'GET', path, setupRequest }] });
  const cpu = cpuMicros(fixture.pid) - cpuBefore;
  const total = result.requests.total;
  const wrong = Object.entries(result.statusCodeStats).filter(([status]) => Number(status) !== expect);
  if (result.errors > 0 || wrong.length > 0) throw new Error(`benchmark ${scenario}: ${result.errors} errors, unexpected statuses ${JSON.stringify(wrong)}`);
  if (onTheFly > 0) process.stderr.write(`  (${scenario}: the pre-signed pool ran out; ${onTheFly} of ${total} requests were signed during the run)\n`);
  return { result, cpuMicros: cpu, onTheFly };
}

function toBenchResult(name: string, result: Awaited<ReturnType<typeof autocannon>>, cpuMicrosUsed: number): BenchResult {
  const total = result.requests.total;
  const elapsedNs = result.duration * 1e9;
  return {
    name,
    samples: total,
    elapsedNs,
    opsPerSecond: total / result.duration,
    meanNs: result.latency.average * 1e6,
    medianNs: result.latency.p50 * 1e6,
    p99Ns: result.latency.p99 * 1e6,
    minNs: result.latency.min * 1e6,
    maxNs: result.latency.max * 1e6,
    cpuNsPerOp: total > 0 ? (cpuMicrosUsed * 1000) / total : undefined,
  };
}

async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    return false;
  }
}

const stores: ('sqlite' | 'postgres')[] = (await postgresReachable()) ? ['sqlite', 'postgres'] : ['sqlite'];

for (const store of stores) {
  for (const scenario of ['time', 'key-list-304', 'key-list-200'] as const) {
    let fixture: Fixture | undefined;
    registerBench(`cloud-http-${scenario === 'time' ? 'time' : scenario}/${store}`, {
      setup: async () => {
        fixture = await startCloud(store);
        // warm-up, and proof that the scenario answers what it claims to measure
        await load(fixture, scenario, 1);
        return () => undefined;
      },
      measureSelf: async (name, seconds) => {
        if (fixture === undefined) throw new Error('benchmark setup did not run');
        const { result, cpuMicros: cpu } = await load(fixture, scenario, seconds);
        return toBenchResult(name, result, cpu);
      },
      teardown: async () => {
        await fixture?.stop();
        fixture = undefined;
      },
    });
  }
}
