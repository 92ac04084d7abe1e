/**
 * The car's sync worker through real processes: `carkey-cloud serve`
 * (SQLite, fault switch on), carkeyd with a `cloud` section, the radio
 * broker and the body-controller sim, and the `carkey` CLI / phone library
 * as the owner and friends. Between the car and the cloud sits a forwarding
 * proxy (test/vehicle/sync/cloud-proxy.ts) that can make the cloud, as the
 * car sees it, serve any document or refuse any request.
 *
 * - The owner revokes a friend through the cloud with no phone near the car
 *   (`carkey revoke --offline` + `carkey sync`); the car applies it over
 *   long-poll and refuses the friend over BLE. Latency from publish to
 *   applied is measured (library publish) and must stay within 2 s.
 * - A tampered (fault switch), forged, rolled-back or foreign list is
 *   refused, audited (kind 'sync' with the core code) and never installed.
 * - A remote lock from the owner is executed; its car-signed result verifies
 *   with the car key (verifyRemoteResult). Remote unlock is refused while
 *   disabled and works once enabled in the car's config. A guest without
 *   `start` is refused by the car although the cloud relayed the command.
 * - carkeyd killed -9 with results in its outbox delivers them exactly once
 *   after the restart, and did not act twice.
 *
 * Needs `npm run build` (dist/ programs).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hardwareCtl, runCli, startDaemonProcess, startProgram, startRig, stopProgram, stopRig, type CarRig, type CliResult, type Started } from '../../firmware-sim/rig.js';
import { toBase64Url, toHex } from '../../src/core/bytes.js';
import { signRemoteCommand, verifyRemoteResult } from '../../src/core/cloud-docs.js';
import { decodeKeyList, signKeyList, type KeyList } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { ExitCode } from '../../src/core/errors.js';
import { DenyCategoryCode, ResultStatus } from '../../src/core/messages.js';
import { Command } from '../../src/core/roles.js';
import { openSealedBox, sealTo } from '../../src/core/sealed-box.js';
import { CloudClient } from '../../src/cloud-client/client.js';
import { buildRevocation } from '../../src/phone/key-lists.js';
import { KeyStore } from '../../src/phone/keystore.js';
import type { VehicleRecord } from '../../src/phone/vehicle-record.js';
import { CloudProxy } from '../vehicle/sync/cloud-proxy.js';

const crypto = createCrypto('node');
const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const CONFIRM_PROMPT = /Code \d{6} [0-9a-f]{8} \| Hold button to OK/;

let cloudDir: string;
let cloud: Started | undefined;
let cloudUrl = '';
let proxy: CloudProxy;
let rig: CarRig;
let owner: { store: KeyStore; seed: Uint8Array; record: VehicleRecord; client: CloudClient };
const latencies: number[] = [];

function carkey(home: string, args: readonly string[]): Promise<CliResult> {
  return runCli('src/cli/carkey.js', ['--home', join(rig.dir, home), '--transport', 'sim', '--radio', rig.radio, '--cloud', cloudUrl, '--quiet', ...args]);
}

function json(result: CliResult): Record<string, unknown> {
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

async function display(): Promise<string> {
  const out = await hardwareCtl(rig, 'state', '--json');
  return (JSON.parse(out.stdout) as { display: string[] }).display.join(' | ');
}

async function locks(): Promise<string[]> {
  const out = await hardwareCtl(rig, 'state', '--json');
  return Object.values((JSON.parse(out.stdout) as { locks: Record<string, string> }).locks);
}

async function drive(): Promise<string> {
  const out = await hardwareCtl(rig, 'state', '--json');
  return (JSON.parse(out.stdout) as { drive: string }).drive;
}

async function carState(): Promise<Record<string, unknown>> {
  const response = await fetch(`${String(rig.daemon?.ready.status)}/state`);
  return (await response.json()) as Record<string, unknown>;
}

async function syncState(): Promise<{ registered: boolean; backlog: { outbox: number | null } }> {
  return (await carState()).sync as { registered: boolean; backlog: { outbox: number | null } };
}

async function until(check: () => Promise<boolean> | boolean, what: string, deadlineMs = 15_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for: ${what}`);
}

function writeCarConfig(cloudSection: Record<string, unknown>): void {
  const config = JSON.parse(readFileSync(rig.configPath, 'utf8')) as Record<string, unknown>;
  writeFileSync(rig.configPath, JSON.stringify({ ...config, cloud: { url: proxy.url, longPollSeconds: 5, requestTimeoutMs: 3000, auditUploadIntervalMs: 2000, ...cloudSection } }));
}

async function restartCar(): Promise<void> {
  await stopProgram(rig.daemon);
  await startDaemonProcess(rig);
  await until(async () => (await syncState()).registered, 'the car registered after the restart');
}

/** The car's audit entries, read-only from state.db (WAL; works while carkeyd runs). */
function carAudit(): { kind: string; fields: Record<string, unknown> }[] {
  const db = new Database(join(rig.stateDir, 'state.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT kind, fields FROM audit_entry ORDER BY seq').all() as { kind: string; fields: string }[]).map((row) => ({ kind: row.kind, fields: JSON.parse(row.fields) as Record<string, unknown> }));
  } finally {
    db.close();
  }
}

async function loadPhone(home: string): Promise<{ store: KeyStore; seed: Uint8Array; record: VehicleRecord; client: CloudClient }> {
  const store = new KeyStore(join(rig.dir, home), { crypto, random, clock: () => Date.now(), sleep });
  const seed = await store.unlockSeed(() => Promise.resolve(undefined));
  const record = store.selectVehicle(undefined);
  const client = new CloudClient({ baseUrl: cloudUrl, crypto, random, clock: () => Date.now(), seed: () => seed, timeoutMs: 5000 });
  return { store, seed, record, client };
}

async function cloudKeyList(): Promise<KeyList> {
  const answer = await owner.client.getKeyList(owner.record.vehicleId);
  if (answer === 'unchanged') throw new Error('unexpected 304');
  const decoded = decodeKeyList(answer.keyList);
  if (!decoded.ok) throw decoded.error;
  return decoded.value;
}

async function faults(route: string, mode: string): Promise<void> {
  const response = await fetch(`${cloudUrl}/_faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ route, mode }) });
  expect(response.status).toBeLessThan(300);
}

type Phone = typeof owner;

/**
 * A phone sends a remote command itself (library), so the test holds the
 * command id; with a grant it sends it even when the grant does not allow it
 * (as a modified phone would: the CLI checks first, the car must too).
 */
async function sendRemote(command: 'lock' | 'unlock' | 'status' | 'start', phone: Phone = owner): Promise<Uint8Array> {
  const commandId = random(16);
  const issuedAt = Date.now();
  const expiresAt = issuedAt + 120_000;
  const grant = phone.record.owner ? undefined : phone.record.grants[0];
  const signed = signRemoteCommand(crypto, phone.seed, { vehicleId: phone.record.vehicleId, commandId, issuedAt, expiresAt, credentialKind: grant === undefined ? 0 : 1, credential: grant?.bytes ?? new Uint8Array(0), command: Command[command], args: new Uint8Array(0) });
  await phone.client.postCommand(phone.record.vehicleId, commandId, expiresAt, sealTo(crypto, random, phone.record.carIdentityKey, signed));
  return commandId;
}

/** Wait for the car's answer and verify it as the phone does: open with the phone seed, check the car signature. */
async function verifiedResult(commandId: Uint8Array, phone: Phone = owner): Promise<{ status: number; category: number }> {
  for (let i = 0; i < 10; i++) {
    const box = await phone.client.getResult(phone.record.vehicleId, commandId, { waitS: 5 });
    if (box === undefined) continue;
    const opened = openSealedBox(crypto, phone.seed, box);
    if (!opened.ok) throw opened.error;
    const verified = verifyRemoteResult(crypto, opened.value, phone.record.carIdentityKey, commandId);
    if (!verified.ok) throw verified.error;
    return verified.value;
  }
  throw new Error('no result from the car');
}

describe('the car syncing with the real carkey-cloud', () => {
  beforeAll(async () => {
    cloudDir = mkdtempSync(join(tmpdir(), 'carkey-sync-cloud-'));
    cloud = await startProgram('src/cli/carkey-cloud.js', ['serve', '--port', '0', '--host', '127.0.0.1', '--data', cloudDir, '--faults', '--log-level', 'warn']);
    cloudUrl = String(cloud.ready.url);
    proxy = new CloudProxy(cloudUrl);
    await proxy.start();
    rig = await startRig({ config: { cloud: { url: proxy.url, longPollSeconds: 5, requestTimeoutMs: 3000, auditUploadIntervalMs: 2000 } } });
    await startDaemonProcess(rig);
    for (const home of ['owner', 'friend', 'guest']) expect((await carkey(home, ['keygen'])).code).toBe(0);
    await hardwareCtl(rig, 'press-button');
    const pairing = carkey('owner', ['pair', '--yes', '--name', 'car']);
    await until(async () => CONFIRM_PROMPT.test(await display()), 'the confirmation prompt');
    await hardwareCtl(rig, 'long-press');
    const paired = await pairing;
    expect(paired.code, paired.stderr).toBe(0);
    // Pairing is a key-list change: the car registers itself with the cloud (no phone involved).
    await until(async () => (await syncState()).registered, 'the car registered');
    owner = await loadPhone('owner');
  }, 90_000);

  afterAll(async () => {
    owner?.seed.fill(0);
    await stopRig(rig);
    await proxy?.close();
    await stopProgram(cloud);
    rmSync(cloudDir, { recursive: true, force: true });
    if (latencies.length > 0) process.stdout.write(`revocation publish → applied on the car over long-poll (ms): ${latencies.map((l) => l.toFixed(0)).join(', ')}\n`);
  });

  it('the owner revokes a friend through the cloud with no phone near the car; the car applies it and refuses the friend', async () => {
    const friend = json(await carkey('friend', ['whoami', '--json']));
    const shared = await carkey('owner', ['share', '--role', 'guest', '--until', '+2d', '--to', String(friend.publicKey), '--json']);
    expect(shared.code, shared.stderr).toBe(0);
    expect((await carkey('friend', ['accept', String(json(shared).share)])).code).toBe(0);
    expect((await carkey('friend', ['unlock'])).code).toBe(0);
    const before = Number((await carState()).keyListVersion);

    // At work: queue the revocation without Bluetooth, then push it through the cloud.
    const revoked = await carkey('owner', ['revoke', String(friend.publicKey), '--offline']);
    expect(revoked.code, revoked.stderr).toBe(0);
    const synced = await carkey('owner', ['sync', '--json']);
    expect(synced.code, synced.stderr).toBe(0);
    await until(async () => Number((await carState()).keyListVersion) === before + 1, 'the car applied the revocation');
    const refused = await carkey('friend', ['unlock']);
    expect(refused.code).toBe(ExitCode.denied);
    expect(carAudit().filter((e) => e.kind === 'key-list').at(-1)?.fields.via).toBe('cloud');
  });

  it('a list published to the cloud is applied by the car within 2 s over long-poll (measured 5 times)', async () => {
    owner = await loadPhone('owner');
    for (let round = 0; round < 5; round++) {
      const base = await cloudKeyList();
      await until(async () => Number((await carState()).keyListVersion) === base.version, 'the car is in step');
      // let the car's long-poll for the current version be held by the cloud
      await sleep(200);
      const next = buildRevocation(crypto, owner.seed, base, { kind: 'key', key: crypto.publicKeyFromSeed(random(32)) }, Date.now());
      await owner.client.publishKeyList(owner.record.vehicleId, next.bytes);
      const published = performance.now();
      await until(async () => Number((await carState()).keyListVersion) === next.version, `version ${next.version} applied`, 2000);
      latencies.push(performance.now() - published);
    }
    expect(latencies).toHaveLength(5);
  });

  it('a tampered, forged, rolled-back or foreign list is refused, audited with its code, and never installed', async () => {
    const reasons = (): unknown[] => carAudit().filter((e) => e.kind === 'sync' && e.fields.what === 'key-list').map((e) => e.fields.reason);
    const current = await cloudKeyList();
    const version = Number((await carState()).keyListVersion);
    expect(version).toBe(current.version);

    // The real cloud's fault switch: every stored document served with one byte changed.
    await faults('key-list', 'tamper');
    const next = buildRevocation(crypto, owner.seed, current, { kind: 'key', key: crypto.publicKeyFromSeed(random(32)) }, Date.now());
    await owner.client.publishKeyList(owner.record.vehicleId, next.bytes);
    await until(() => reasons().length >= 1, 'the tampered list is refused');
    expect(Number((await carState()).keyListVersion)).toBe(version);
    await faults('key-list', 'off');
    // The cloud stops tampering: the genuine list arrives on the car's next try.
    await until(async () => Number((await carState()).keyListVersion) === next.version, 'the genuine list applied');

    // A compromised cloud (as the car sees it, through the proxy) serving lists it should never have.
    const stranger = random(32);
    const sign = (seed: Uint8Array, body: Partial<KeyList>): Uint8Array =>
      signKeyList(crypto, seed, { vehicleId: owner.record.vehicleId, epoch: next.epoch, version: next.version + 1, issuedAt: Date.now(), owners: next.owners, revokedSerials: next.revokedSerials, revokedKeys: next.revokedKeys, ...body }).bytes;
    const hostile: [Uint8Array, string][] = [
      [sign(stranger, { owners: [crypto.publicKeyFromSeed(stranger)] }), 'CK_KEYLIST_NOT_OWNER'],
      [sign(owner.seed, { version: next.version - 1 }), 'CK_KEYLIST_ROLLBACK'],
      [sign(owner.seed, { vehicleId: random(16) }), 'CK_CRED_WRONG_VEHICLE'],
      [sign(owner.seed, { epoch: next.epoch + 1 }), 'CK_KEYLIST_WRONG_EPOCH'],
    ];
    for (const [bytes, code] of hostile) {
      const served = decodeKeyList(bytes);
      if (!served.ok) throw served.error;
      proxy.intercept = (request) =>
        request.method === 'GET' && request.path.endsWith('/key-list')
          ? { status: 200, body: JSON.stringify({ keyList: toBase64Url(bytes), epoch: served.value.epoch, version: served.value.version }), headers: { etag: `"${served.value.epoch}.${served.value.version}"` }, delayMs: 100 }
          : 'upstream';
      await until(() => reasons().includes(code), `${code} audited`);
      expect(Number((await carState()).keyListVersion)).toBe(next.version);
    }
    proxy.intercept = () => 'upstream';
    // Each bad document was audited once, however often the car asked.
    expect(reasons().filter((r) => r === 'CK_KEYLIST_NOT_OWNER')).toHaveLength(1);
    // The car still opens for its owner over BLE.
    expect((await carkey('owner', ['unlock'])).code).toBe(0);
  });

  it('a remote lock from the owner is executed and its car-signed result verifies with the car key', async () => {
    expect((await carkey('owner', ['unlock'])).code).toBe(0);
    expect(new Set(await locks())).toEqual(new Set(['unlocked']));
    const commandId = await sendRemote('lock');
    const result = await verifiedResult(commandId);
    expect(result.status).toBe(ResultStatus.ok);
    expect(new Set(await locks())).toEqual(new Set(['locked']));
    const decision = carAudit().filter((e) => e.kind === 'decision' && e.fields.commandId === toHex(commandId));
    expect(decision).toEqual([expect.objectContaining({ fields: expect.objectContaining({ origin: 'cloud', result: 'allow', command: 'lock' }) as unknown })]);
    // And through the CLI, which verifies the same way.
    const cli = await carkey('owner', ['remote', 'lock', '--wait', '20', '--json']);
    expect(cli.code, cli.stderr).toBe(0);
  });

  it("the car's audit log reaches the cloud, and the owner verifies it from there against the pinned car key", async () => {
    await until(async () => {
      const read = await carkey('owner', ['audit', '--from-cloud', '--verify', '--json']);
      if (read.code !== 0) return false;
      const entries = json(read).entries as { kind: string; fields: Record<string, unknown> }[];
      return entries.some((e) => e.kind === 'decision' && e.fields.origin === 'cloud' && e.fields.command === 'lock');
    }, 'the remote lock is in the cloud copy of the audit log, and it verifies');
  });

  it('remote unlock is refused while disabled in the car config and works once enabled', async () => {
    const refused = await carkey('owner', ['remote', 'unlock', '--wait', '20']);
    expect(refused.code, refused.stderr).toBe(ExitCode.denied);
    expect(new Set(await locks())).toEqual(new Set(['locked']));
    writeCarConfig({ remote: { unlock: true, start: true } });
    await restartCar();
    const allowed = await carkey('owner', ['remote', 'unlock', '--wait', '20']);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(new Set(await locks())).toEqual(new Set(['unlocked']));
  });

  it('a guest without start is refused by the car even though the cloud relayed the command', async () => {
    const guest = json(await carkey('guest', ['whoami', '--json']));
    const shared = await carkey('owner', ['share', '--role', 'guest', '--permissions', 'unlock,lock', '--until', '+2d', '--to', String(guest.publicKey), '--json']);
    expect(shared.code, shared.stderr).toBe(0);
    expect((await carkey('guest', ['accept', String(json(shared).share)])).code).toBe(0);
    // The CLI does not even send it (its grant does not allow start) ...
    const cli = await carkey('guest', ['remote', 'start', '--wait', '20']);
    expect(cli.code, cli.stderr).toBe(ExitCode.denied);
    // ... so send it as a modified phone would: the cloud relays it, the car decides.
    const phone = await loadPhone('guest');
    const commandId = await sendRemote('start', phone);
    expect(await verifiedResult(commandId, phone)).toMatchObject({ status: ResultStatus.denied, category: DenyCategoryCode['not-permitted'] });
    expect(await drive()).toBe('off');
    expect(carAudit().filter((e) => e.kind === 'decision' && e.fields.commandId === toHex(commandId))).toEqual([
      expect.objectContaining({ fields: expect.objectContaining({ origin: 'cloud', command: 'start', result: 'deny', reason: 'not-permitted' }) as unknown }),
    ]);
    // The same guest may lock remotely: the grant is honoured for what it allows.
    expect((await verifiedResult(await sendRemote('lock', phone), phone)).status).toBe(ResultStatus.ok);
    phone.seed.fill(0);
  });

  it('with the cloud in every fault mode the owner still unlocks over BLE, and carkeyd stays up', async () => {
    const decisionStats = async (): Promise<{ sum: number; count: number }> => {
      const text = await (await fetch(`${String(rig.daemon?.ready.status)}/metrics`)).text();
      const read = (name: string): number => Number(new RegExp(`^carkey_decision_seconds_${name}\\{command="unlock"\\} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? 0);
      return { sum: read('sum'), count: read('count') };
    };
    const report: string[] = [];
    for (const mode of ['off', '500', '503', 'hang', 'reset', 'trickle', 'malformed', 'truncated', 'tamper']) {
      await faults('*', mode);
      await sleep(300); // let the car's requests meet the fault
      const before = await decisionStats();
      for (let i = 0; i < 2; i++) {
        const unlocked = await carkey('owner', ['unlock']);
        expect(unlocked.code, `${mode}: ${unlocked.stderr}`).toBe(0);
        expect((await carkey('owner', ['lock'])).code).toBe(0);
      }
      const after = await decisionStats();
      report.push(`${mode} ${(((after.sum - before.sum) / Math.max(1, after.count - before.count)) * 1000).toFixed(2)}`);
    }
    await faults('*', 'off');
    expect(rig.daemon?.child.exitCode).toBeNull();
    process.stdout.write(`car-side unlock decision (REQUEST→RESULT, ms, mean of 2) by cloud fault mode: ${report.join(', ')}\n`);
    // The worker comes back by itself once the cloud does.
    await until(async () => {
      const metrics = await (await fetch(`${String(rig.daemon?.ready.status)}/metrics`)).text();
      return /carkey_sync_circuit_state 0/.test(metrics) && (await syncState()).registered;
    }, 'the sync worker recovered', 30_000);
  }, 240_000);

  it('carkeyd killed -9 with results in its outbox delivers them exactly once after the restart', async () => {
    proxy.intercept = (request) => (request.method === 'PUT' && request.path.endsWith('/result') ? { status: 503, body: '{"error":{"code":"CK_CLOUD_STORE","message":"down","details":{}}}' } : 'upstream');
    const first = await sendRemote('lock');
    const second = await sendRemote('status');
    await until(async () => (await syncState()).backlog.outbox === 2, 'both results wait in the outbox');
    const daemon = rig.daemon;
    if (daemon === undefined) throw new Error('no daemon');
    const exited = new Promise((resolve) => daemon.child.once('exit', resolve));
    daemon.child.kill('SIGKILL');
    await exited;
    proxy.intercept = () => 'upstream';
    await startDaemonProcess(rig);
    for (const id of [first, second]) expect((await verifiedResult(id)).status).toBe(ResultStatus.ok);
    await until(async () => (await syncState()).backlog.outbox === 0, 'the outbox is empty');
    for (const id of [first, second]) {
      const hex = toHex(id);
      expect(proxy.count('PUT', new RegExp(`/${hex}/result$`), 204)).toBe(1);
      expect(carAudit().filter((e) => e.kind === 'decision' && e.fields.commandId === hex)).toHaveLength(1);
    }
  });
});

describe('fleet push: the car waits for MQTT notices instead of long-polling', () => {
  const MQTT_URL = process.env.CARKEY_TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';
  let mqttCloudDir: string;
  let mqttCloud: Started | undefined;

  beforeAll(async () => {
    mqttCloudDir = mkdtempSync(join(tmpdir(), 'carkey-sync-mqtt-'));
    mqttCloud = await startProgram('src/cli/carkey-cloud.js', ['serve', '--port', '0', '--host', '127.0.0.1', '--data', mqttCloudDir, '--mqtt', MQTT_URL, '--log-level', 'warn']);
    cloudUrl = String(mqttCloud.ready.url);
    // Polling once an hour: only a notice can make the car fetch in this test's time.
    rig = await startRig({ config: { cloud: { url: cloudUrl, mode: 'mqtt', mqttUrl: MQTT_URL, pollIntervalMs: 3_600_000, requestTimeoutMs: 3000 } } });
    await startDaemonProcess(rig);
    expect((await carkey('owner', ['keygen'])).code).toBe(0);
    await hardwareCtl(rig, 'press-button');
    const pairing = carkey('owner', ['pair', '--yes', '--name', 'car']);
    await until(async () => CONFIRM_PROMPT.test(await display()), 'the confirmation prompt');
    await hardwareCtl(rig, 'long-press');
    expect((await pairing).code).toBe(0);
    await until(async () => (await syncState()).registered && (await carState()).sync !== undefined && ((await carState()).sync as { mqttConnected?: boolean }).mqttConnected === true, 'registered and subscribed');
    owner = await loadPhone('owner');
  }, 90_000);

  afterAll(async () => {
    owner?.seed.fill(0);
    await stopRig(rig);
    await stopProgram(mqttCloud);
    rmSync(mqttCloudDir, { recursive: true, force: true });
  });

  it('a revocation published to the cloud reaches the car through the notice (measured 3 times)', async () => {
    const measured: number[] = [];
    for (let round = 0; round < 3; round++) {
      const base = await cloudKeyList();
      await until(async () => Number((await carState()).keyListVersion) === base.version, 'the car is in step');
      const next = buildRevocation(crypto, owner.seed, base, { kind: 'key', key: crypto.publicKeyFromSeed(random(32)) }, Date.now());
      await owner.client.publishKeyList(owner.record.vehicleId, next.bytes);
      const published = performance.now();
      await until(async () => Number((await carState()).keyListVersion) === next.version, `version ${next.version} applied after the notice`, 5000);
      measured.push(performance.now() - published);
    }
    process.stdout.write(`revocation publish → applied on the car via MQTT notice (ms): ${measured.map((l) => l.toFixed(0)).join(', ')}\n`);
    // A remote command is announced the same way.
    const commandId = await sendRemote('status');
    expect((await verifiedResult(commandId)).status).toBe(ResultStatus.ok);
  });
});
