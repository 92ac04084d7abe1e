/**
 * A paired car syncing with a real carkey-cloud, for the chaos suite and the
 * end-to-end benchmark: `carkey-cloud serve` (SQLite, fault switch on), a
 * forwarding proxy between the car and the cloud (test/vehicle/sync/
 * cloud-proxy.ts: it can serve the car forged or rolled-back documents),
 * carkeyd with a `cloud` section, the sim radio and the body-controller sim,
 * each its own process, and an owner paired through the `carkey` CLI.
 *
 * `unlock()` runs `carkey unlock` as a user does and returns its wall time
 * (process start → exit) with the exit code. Needs `npm run build`.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { hardwareCtl, runCli, startDaemonProcess, startProgram, startRig, stopProgram, stopRig, type CarRig, type CliResult, type Started } from '../../firmware-sim/rig.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { CloudClient } from '../../src/cloud-client/client.js';
import { KeyStore } from '../../src/phone/keystore.js';
import type { VehicleRecord } from '../../src/phone/vehicle-record.js';
import { CloudProxy } from '../vehicle/sync/cloud-proxy.js';

export const crypto = createCrypto('node');
export const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The cloud fault switch's modes (docs/cloud.md). */
export const SWITCH_FAULTS = ['500', '503', 'hang', 'reset', 'trickle', 'malformed', 'truncated', 'tamper'] as const;

export interface OwnerPhone {
  readonly store: KeyStore;
  readonly seed: Uint8Array;
  readonly record: VehicleRecord;
  readonly client: CloudClient;
}

export interface CloudCar {
  readonly rig: CarRig;
  readonly cloud: Started;
  readonly cloudUrl: string;
  readonly proxy: CloudProxy;
  readonly owner: OwnerPhone;
  carkey(home: string, args: readonly string[]): Promise<CliResult>;
  /** `carkey unlock` as the owner: wall time of the process and its exit code. */
  unlock(): Promise<{ ms: number; code: number; stderr: string }>;
  setFault(route: string, mode: string): Promise<void>;
  carState(): Promise<Record<string, unknown>>;
  /** The car's audit entries, read-only from state.db. */
  carAudit(): { kind: string; fields: Record<string, unknown> }[];
  stop(): Promise<void>;
}

export async function until(check: () => Promise<boolean> | boolean, what: string, deadlineMs = 15_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for: ${what}`);
}

/** `carConfig`: carkeyd settings on top of the rig's (its `cloud` members are merged under the rig's cloud URL and timings). */
export async function startCloudCar(options: { readonly carConfig?: Record<string, unknown> } = {}): Promise<CloudCar> {
  let rig: CarRig | undefined;
  let cloud: Started | undefined;
  let proxy: CloudProxy | undefined;
  const stop = async (): Promise<void> => {
    await stopRig(rig);
    await proxy?.close();
    await stopProgram(cloud);
  };
  try {
    const { cloud: carCloud, ...carConfig } = options.carConfig ?? {};
    rig = await startRig({ config: { logLevel: 'warn', ...carConfig } });
    cloud = await startProgram('src/cli/carkey-cloud.js', ['serve', '--port', '0', '--host', '127.0.0.1', '--data', join(rig.dir, 'cloud-data'), '--faults', '--log-level', 'error'], { env: { DATABASE_URL: '' } });
    const cloudUrl = String(cloud.ready.url);
    proxy = new CloudProxy(cloudUrl);
    await proxy.start();
    const config = JSON.parse(readFileSync(rig.configPath, 'utf8')) as Record<string, unknown>;
    const extraCloud = typeof carCloud === 'object' && carCloud !== null ? carCloud : {};
    writeFileSync(rig.configPath, JSON.stringify({ ...config, cloud: { ...extraCloud, url: proxy.url, longPollSeconds: 5, requestTimeoutMs: 2000, auditUploadIntervalMs: 1000 } }));
    await startDaemonProcess(rig);
    const car = rig;
    const carkey = (home: string, args: readonly string[]): Promise<CliResult> =>
      runCli('src/cli/carkey.js', ['--home', join(car.dir, home), '--transport', 'sim', '--radio', car.radio, '--cloud', cloudUrl, '--timeout', '5000', '--quiet', ...args]);
    const carState = async (): Promise<Record<string, unknown>> => (await (await fetch(`${String(car.daemon?.ready.status)}/state`)).json()) as Record<string, unknown>;
    const display = async (): Promise<string> => (JSON.parse((await hardwareCtl(car, 'state', '--json')).stdout) as { display: string[] }).display.join(' | ');

    const keygen = await carkey('owner', ['keygen']);
    if (keygen.code !== 0) throw new Error(`keygen: ${keygen.stderr}`);
    await hardwareCtl(car, 'press-button');
    const pairing = carkey('owner', ['pair', '--yes', '--name', 'car']);
    await until(async () => /Code \d{6}.*Hold button/.test(await display()), 'the confirmation prompt');
    await hardwareCtl(car, 'long-press');
    const paired = await pairing;
    if (paired.code !== 0) throw new Error(`pair: ${paired.stderr}`);
    await until(async () => ((await carState()).sync as { registered?: boolean } | undefined)?.registered === true, 'the car registered with the cloud');

    const store = new KeyStore(join(car.dir, 'owner'), { crypto, random, clock: () => Date.now(), sleep });
    const seed = await store.unlockSeed(() => Promise.resolve(undefined));
    const record = store.selectVehicle(undefined);
    const client = new CloudClient({ baseUrl: cloudUrl, crypto, random, clock: () => Date.now(), seed: () => seed, timeoutMs: 5000 });
    const started = cloud;
    const theProxy = proxy;
    return {
      rig: car,
      cloud: started,
      cloudUrl,
      proxy: theProxy,
      owner: { store, seed, record, client },
      carkey,
      unlock: async () => {
        const t0 = performance.now();
        const run = await carkey('owner', ['unlock']);
        return { ms: performance.now() - t0, code: run.code, stderr: run.stderr };
      },
      setFault: async (route, mode) => {
        const response = await fetch(`${cloudUrl}/_faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ route, mode }) });
        if (response.status !== 200) throw new Error(`POST /_faults ${route} ${mode}: ${response.status}`);
      },
      carState,
      carAudit: () => {
        const db = new Database(join(car.stateDir, 'state.db'), { readonly: true, fileMustExist: true });
        try {
          return (db.prepare('SELECT kind, fields FROM audit_entry ORDER BY seq').all() as { kind: string; fields: string }[]).map((row) => ({ kind: row.kind, fields: JSON.parse(row.fields) as Record<string, unknown> }));
        } finally {
          db.close();
        }
      },
      stop: async () => {
        seed.fill(0);
        await stop();
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Nearest-rank percentile of unsorted values (q in (0, 1]). */
export function pct(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

export interface FaultRun {
  readonly fault: string;
  readonly healthy: number[];
  readonly faulted: number[];
  readonly failures: string[];
}

/**
 * RUNS owner unlocks with `apply` in force (the fault is switched on first and
 * held for the whole block, so the car's own sync traffic meets it), then RUNS
 * with the cloud healthy again, in the same run; every unlock that does not
 * exit 0 is listed in `failures`. `during` runs once with the fault on, after
 * the unlocks (checks that need the fault in force).
 */
export async function compareUnlocks(car: CloudCar, fault: string, runs: number, apply: () => Promise<void>, clear: () => Promise<void>, during?: () => Promise<void>): Promise<FaultRun> {
  const result: FaultRun = { fault, healthy: [], faulted: [], failures: [] };
  const block = async (faulted: boolean): Promise<void> => {
    for (let i = 0; i < runs; i++) {
      const run = await car.unlock();
      (faulted ? result.faulted : result.healthy).push(run.ms);
      if (run.code !== 0) result.failures.push(`${fault}${faulted ? '' : ' (healthy)'} run ${i}: exit ${run.code} ${run.stderr.trim().split('\n').at(-1) ?? ''}`);
    }
  };
  await apply();
  try {
    await sleep(300);
    await block(true);
    await during?.();
  } finally {
    await clear();
  }
  await block(false);
  return result;
}

export function describeRun(run: FaultRun): string {
  const h50 = pct(run.healthy, 0.5);
  const f50 = pct(run.faulted, 0.5);
  const h99 = pct(run.healthy, 0.99);
  const f99 = pct(run.faulted, 0.99);
  return `${run.fault.padEnd(11)} healthy p50 ${h50.toFixed(0)} ms p99 ${h99.toFixed(0)} ms | faulted p50 ${f50.toFixed(0)} ms p99 ${f99.toFixed(0)} ms | ratio p50 ×${(f50 / h50).toFixed(2)} p99 ×${(f99 / h99).toFixed(2)} (n=${run.faulted.length})`;
}
