/**
 * The real carkeyd, SIGKILLed at seeded random points of real work (issue 12;
 * DESIGN invariant 5 for the whole daemon, not the store alone).
 *
 * One rig: `carkey-cloud serve` on SQLite, the sim radio and body
 * controller, and carkeyd with a `cloud` section (long-poll, audit upload
 * every second) and the smallest audit cap (auditMaxEntries 100, a
 * checkpoint every 8 entries, housekeeping every second), so the log is
 * uploaded and pruned while the test runs. Each kill point runs one
 * operation of one kind and SIGKILLs carkeyd `delayMs` after it started:
 *   unlock        `carkey unlock` over BLE (an audit append)
 *   revoke-ble    `carkey revoke <key>` over BLE (a key-list update)
 *   revoke-cloud  `carkey revoke --offline` + `carkey sync` (the car takes the
 *                 list over long-poll)
 *   remote        1-4 remote `status` commands through the cloud (outbox
 *                 writes and their delivery)
 *   audit         a burst of remote commands, then a kill while the car
 *                 uploads and prunes its log
 *   pairing       factory reset (long press + keycard) and a new owner
 *                 pairing (button, `carkey pair`, long press)
 * carkeyd is started again on the same state directory after every kill
 * (no `init`: the identity must survive). After every kill:
 *   - the audit database verifies read-only before the restart
 *     (`verifyAuditDatabase`, what `carkeyd audit verify` runs);
 *   - carkeyd starts (the store opens, its lock is free);
 *   - the key list in force is never below the last one the car
 *     acknowledged over BLE (epoch, version), and a car that acknowledged a
 *     pairing is paired;
 *   - every unlock the car acknowledged (CLI exit 0) has its 'decision'
 *     entry in the car's log or the cloud's copy, or lies in the range a
 *     signed prune checkpoint covers.
 * At the end (everything settled): the cloud's copy of the log has seqs
 *   1..n with no gap (one row per seq) and n equals the car's head; every
 *   entry the car retains equals the cloud's, hash for hash; the key list in
 *   force is at least every one the cloud acknowledged; every remote command
 *   the cloud accepted has exactly one result stored and at most one decision
 *   in the log (never acted twice); `carkey audit --verify` (over BLE) and
 *   `carkey audit --from-cloud --verify` pass.
 *
 * Size: CARKEY_CRASH_POINTS (default 50; `npm run soak` runs 200); seed:
 * CARKEY_CRASH_SEED (printed with the plan). SIGKILL keeps the page cache,
 * so this proves process-crash safety only; a power cut additionally rests
 * on synchronous=FULL (fsync per commit) in state.db and sync.db, which a
 * kill cannot show. Needs `npm run build` (dist/ programs).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hardwareCtl, runCli, startProgram, startRig, stopProgram, stopRig, type CarRig, type CliResult, type Started } from '../../firmware-sim/rig.js';
import { toHex } from '../../src/core/bytes.js';
import { signRemoteCommand } from '../../src/core/cloud-docs.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { Command } from '../../src/core/roles.js';
import { sealTo } from '../../src/core/sealed-box.js';
import { CloudClient } from '../../src/cloud-client/client.js';
import { KeyStore } from '../../src/phone/keystore.js';
import type { VehicleRecord } from '../../src/phone/vehicle-record.js';
import { verifyAuditDatabase } from '../../src/vehicle/store.js';
import { crashSettings, describePlan, planKillPoints, type KillPoint } from '../helpers/crash-points.js';

const crypto = createCrypto('node');
const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const CONFIRM_PROMPT = /Code \d{6} [0-9a-f]{8} \| Hold button to OK/;

type Kind = 'unlock' | 'revoke-ble' | 'revoke-cloud' | 'remote' | 'audit' | 'pairing';
/** When, after an operation starts, the kill lands (ms); steps repeat until then (a CLI needs ~300 ms to reach the radio). */
const WINDOWS: Record<Kind, readonly [number, number]> = {
  unlock: [500, 2200],
  'revoke-ble': [700, 2600],
  'revoke-cloud': [100, 1600],
  remote: [0, 1000],
  audit: [0, 1200],
  pairing: [0, 3000],
};
const WEIGHTS: Record<Kind, number> = { unlock: 4, 'revoke-ble': 3, 'revoke-cloud': 2, remote: 3, audit: 2, pairing: 1 };

const settings = crashSettings(50);
const plan = planKillPoints(settings.seed, settings.points, WINDOWS, WEIGHTS);

interface Phone {
  readonly home: string;
  readonly seed: Uint8Array;
  readonly record: VehicleRecord;
  readonly client: CloudClient;
}

interface KeyListMark {
  readonly epoch: number;
  readonly version: number;
}

const below = (a: KeyListMark, b: KeyListMark): boolean => a.epoch < b.epoch || (a.epoch === b.epoch && a.version < b.version);

/** What the car and the cloud acknowledged so far. */
const acked = {
  unlocks: 0,
  /** the key list the car confirmed over BLE (revoke delivered, pairing done) */
  ble: { epoch: 0, version: 0 } as KeyListMark,
  /** the key list the cloud took from the owner (`carkey sync` published) */
  cloud: { epoch: 0, version: 0 } as KeyListMark,
  paired: false,
  commands: [] as string[],
};
const tally = { kills: 0, killedDuringOp: 0, prunes: 0, pairings: 0, bleLists: 0, restartsMs: [] as number[] };

let rig: CarRig;
let cloud: Started | undefined;
let cloudUrl = '';
let owner: Phone;
let ownerCount = 0;

function carkey(home: string, args: readonly string[], timeoutMs = 30_000): Promise<CliResult> {
  return runCli('src/cli/carkey.js', ['--home', join(rig.dir, home), '--transport', 'sim', '--radio', rig.radio, '--cloud', cloudUrl, '--timeout', '4000', '--quiet', ...args], { timeoutMs });
}

function json(result: CliResult): Record<string, unknown> {
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

async function until(check: () => Promise<boolean> | boolean, what: string, deadlineMs = 20_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for: ${what}`);
}

async function carState(): Promise<Record<string, unknown>> {
  return (await (await fetch(`${String(rig.daemon?.ready.status)}/state`)).json()) as Record<string, unknown>;
}

async function syncState(): Promise<{ registered: boolean; backlog: { outbox: number | null; audit: number | null } }> {
  return (await carState()).sync as { registered: boolean; backlog: { outbox: number | null; audit: number | null } };
}

async function display(): Promise<string> {
  return (JSON.parse((await hardwareCtl(rig, 'state', '--json')).stdout) as { display: string[] }).display.join(' | ');
}

function markOf(state: Record<string, unknown>): KeyListMark {
  return { epoch: Number(state.keyListEpoch), version: Number(state.keyListVersion) };
}

async function startCar(): Promise<void> {
  const t0 = performance.now();
  rig.daemon = await startProgram('src/cli/carkeyd.js', ['--config', rig.configPath]);
  tally.restartsMs.push(performance.now() - t0);
}

async function killCar(): Promise<void> {
  const daemon = rig.daemon;
  if (daemon === undefined || daemon.child.exitCode !== null || daemon.child.signalCode !== null) return;
  const exited = new Promise((resolve) => daemon.child.once('exit', resolve));
  daemon.child.kill('SIGKILL');
  await exited;
  // rig.ts's stopProgram waits for an exit that already happened if it gets a killed child (exitCode stays null).
  rig.daemon = undefined;
  tally.kills++;
}

async function loadPhone(home: string): Promise<Phone> {
  const store = new KeyStore(join(rig.dir, home), { crypto, random, clock: () => Date.now(), sleep });
  const seed = await store.unlockSeed(() => Promise.resolve(undefined));
  const record = store.selectVehicle(undefined);
  const client = new CloudClient({ baseUrl: cloudUrl, crypto, random, clock: () => Date.now(), seed: () => seed, timeoutMs: 5000 });
  return { home, seed, record, client };
}

interface AuditRow {
  readonly seq: number;
  readonly kind: string;
  readonly fields: Record<string, unknown>;
  readonly hash: string;
}

function readRows(path: string, sql: string, params: readonly string[]): AuditRow[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare(sql).all(...params) as { seq: number; kind: string; fields: string; hash: Buffer }[]).map((r) => ({ seq: r.seq, kind: r.kind, fields: JSON.parse(r.fields) as Record<string, unknown>, hash: toHex(r.hash) }));
  } finally {
    db.close();
  }
}

const carAudit = (): AuditRow[] => readRows(join(rig.stateDir, 'state.db'), 'SELECT seq, kind, fields, hash FROM audit_entry ORDER BY seq', []);
const cloudDb = (): string => join(rig.dir, 'cloud-data', 'cloud.db');
const cloudAudit = (): AuditRow[] => readRows(cloudDb(), 'SELECT seq, kind, fields, hash FROM audit_entries WHERE vehicle_id = ? ORDER BY seq', [toHex(owner.record.vehicleId)]);

function cloudResults(): Map<string, number> {
  const db = new Database(cloudDb(), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT command_id, result IS NOT NULL AS answered FROM commands WHERE vehicle_id = ?').all(toHex(owner.record.vehicleId)) as { command_id: string; answered: number }[];
    const counts = new Map<string, number>();
    for (const row of rows) counts.set(row.command_id, (counts.get(row.command_id) ?? 0) + row.answered);
    return counts;
  } finally {
    db.close();
  }
}

/** Pair a fresh owner phone with an unpaired car (button, CLI, long press at the prompt). */
async function pairNewOwner(): Promise<CliResult> {
  const home = `owner-${++ownerCount}`;
  expect((await carkey(home, ['keygen'])).code).toBe(0);
  await hardwareCtl(rig, 'press-button');
  const pairing = carkey(home, ['pair', '--yes', '--name', 'car', '--wait', '8000']);
  let confirmed = false;
  const confirmer = (async () => {
    const end = Date.now() + 8000;
    while (Date.now() < end && !confirmed) {
      const shown = await display().catch(() => '');
      if (CONFIRM_PROMPT.test(shown)) {
        await hardwareCtl(rig, 'long-press');
        return;
      }
      await sleep(30);
    }
  })();
  const result = await pairing;
  confirmed = true;
  await confirmer;
  if (result.code === 0) owner = await loadPhone(home);
  return result;
}

async function factoryReset(): Promise<void> {
  await hardwareCtl(rig, 'long-press');
  await hardwareCtl(rig, 'tap-keycard', 'card-1');
}

async function sendStatus(): Promise<string> {
  const commandId = random(16);
  const issuedAt = Date.now();
  const expiresAt = issuedAt + 10 * 60_000;
  const signed = signRemoteCommand(crypto, owner.seed, { vehicleId: owner.record.vehicleId, commandId, issuedAt, expiresAt, credentialKind: 0, credential: new Uint8Array(0), command: Command.status, args: new Uint8Array(0) });
  await owner.client.postCommand(owner.record.vehicleId, commandId, expiresAt, sealTo(crypto, random, owner.record.carIdentityKey, signed));
  return toHex(commandId);
}

const randomKey = (): string => toHex(crypto.publicKeyFromSeed(random(32)));

/** Set at the operation's SIGKILL: it starts no new step (the step in flight ends on its own). */
interface Stop {
  now: boolean;
}

/**
 * The operation of `point.kind`, repeated until the kill (so steps before it
 * are acknowledged and one is cut); records what was acknowledged.
 */
async function operation(point: KillPoint<Kind>, stop: Stop): Promise<void> {
  switch (point.kind) {
    case 'unlock':
      while (!stop.now) {
        const run = await carkey(owner.home, ['unlock']);
        if (run.code === 0) acked.unlocks++;
      }
      return;
    case 'revoke-ble':
      while (!stop.now) {
        const run = await carkey(owner.home, ['revoke', randomKey(), '--json']);
        if (run.code !== 0) continue;
        const out = json(run);
        if (out.delivered === true) {
          const mark = { epoch: acked.ble.epoch, version: Number(out.inForce) };
          if (below(acked.ble, mark)) acked.ble = mark;
          tally.bleLists++;
        }
      }
      return;
    case 'revoke-cloud':
      for (let first = true; first || !stop.now; first = false) {
        if (!first) expect((await carkey(owner.home, ['revoke', randomKey(), '--offline'])).code).toBe(0);
        const run = await carkey(owner.home, ['sync', '--json']);
        if (run.code !== 0) continue;
        const published = (json(run).vehicles as { published: number | null }[])[0]?.published;
        if (typeof published === 'number') {
          const mark = { epoch: acked.ble.epoch, version: published };
          if (below(acked.cloud, mark)) acked.cloud = mark;
        }
      }
      return;
    case 'remote':
    case 'audit': {
      const n = point.kind === 'remote' ? 1 + Math.floor(point.pick * 4) : 6;
      while (!stop.now) {
        const sent = await Promise.allSettled(Array.from({ length: n }, () => sendStatus()));
        for (const s of sent) if (s.status === 'fulfilled') acked.commands.push(s.value);
        await sleep(150);
      }
      return;
    }
    case 'pairing': {
      // The pairing run is the kill's target; the reset before it is part of it.
      const before = markOf(await carState().catch(() => ({ keyListEpoch: acked.ble.epoch, keyListVersion: 0 })));
      // The reset un-pairs the car on purpose: from here only a finished pairing is acknowledged.
      acked.paired = false;
      await factoryReset();
      await until(async () => /Factory reset/.test(await display()), 'the factory reset', 5000).catch(() => undefined);
      const paired = await pairNewOwner();
      if (paired.code === 0) {
        tally.pairings++;
        acked.paired = true;
        acked.ble = { epoch: before.epoch + 1, version: 1 };
        acked.cloud = { epoch: before.epoch + 1, version: 0 };
      }
      return;
    }
  }
}

/** Before the operation: queue the revocation that `revoke-cloud` publishes (no car involved). */
async function prepare(point: KillPoint<Kind>): Promise<void> {
  if (point.kind === 'revoke-cloud') expect((await carkey(owner.home, ['revoke', randomKey(), '--offline'])).code).toBe(0);
  if (point.kind === 'audit') {
    // Fill the log so the kill meets an upload and a prune.
    const head = carAudit().at(-1)?.seq ?? 0;
    for (let i = 0; i < 4; i++) acked.commands.push(await sendStatus());
    await until(() => (carAudit().at(-1)?.seq ?? 0) >= head + 4, 'the burst in the log', 10_000).catch(() => undefined);
  }
}

/** The unpaired car after a pairing that was cut: reset (if it is paired to an owner we do not know) and pair again. */
async function recoverPairing(): Promise<void> {
  for (let attempt = 0; attempt < 4; attempt++) {
    const state = await carState();
    if (state.paired === true && acked.paired) return;
    if (state.paired === true) {
      await factoryReset();
      await until(async () => (await carState()).paired === false, 'the factory reset', 5000);
    }
    const epoch = Number((await carState()).keyListEpoch);
    const paired = await pairNewOwner();
    if (paired.code === 0) {
      tally.pairings++;
      acked.paired = true;
      acked.ble = { epoch, version: 1 };
      acked.cloud = { epoch, version: 0 };
      return;
    }
  }
  throw new Error('could not pair the car again after a cut pairing');
}

function checkAfterKill(point: KillPoint<Kind>): void {
  const where = `seed ${settings.seed} point ${point.index} (${point.kind} @${point.delayMs} ms)`;
  const verified = verifyAuditDatabase(rig.stateDir, crypto);
  expect(verified.ok ? 'ok' : verified.error.message, `${where}: the audit chain verifies read-only after the kill`).toBe('ok');
}

async function checkAfterRestart(point: KillPoint<Kind>): Promise<void> {
  const where = `seed ${settings.seed} point ${point.index} (${point.kind} @${point.delayMs} ms)`;
  const state = await carState();
  const mark = markOf(state);
  expect(below(mark, acked.ble), `${where}: key list ${mark.epoch}.${mark.version} is below the acknowledged ${acked.ble.epoch}.${acked.ble.version}`).toBe(false);
  if (acked.paired) expect(state.paired, `${where}: the acknowledged pairing survived`).toBe(true);
  // Acknowledged unlocks: in the car's log, in the cloud's copy, or pruned under a signed checkpoint.
  const verified = verifyAuditDatabase(rig.stateDir, crypto);
  if (!verified.ok) throw verified.error;
  const bySeq = new Map<number, AuditRow>();
  for (const row of cloudAudit()) bySeq.set(row.seq, row);
  for (const row of carAudit()) bySeq.set(row.seq, row);
  let unlocks = 0;
  let covered = 0;
  for (let seq = 1; seq <= verified.value.lastSeq; seq++) {
    const row = bySeq.get(seq);
    if (row === undefined) {
      if (seq <= verified.value.anchorSeq) covered++;
      else expect.fail(`${where}: audit seq ${seq} is neither on the car nor in the cloud, and not pruned`);
    } else if (row.kind === 'decision' && row.fields.command === 'unlock' && row.fields.result === 'allow' && row.fields.origin !== 'cloud') unlocks++;
  }
  expect(unlocks + covered, `${where}: acknowledged unlocks (${acked.unlocks}) in the log`).toBeGreaterThanOrEqual(acked.unlocks);
}

describe('carkeyd SIGKILLed during real work', () => {
  beforeAll(async () => {
    process.stdout.write(`crash-daemon: seed ${settings.seed}, ${plan.length} kill points (CARKEY_CRASH_SEED=${settings.seed} CARKEY_CRASH_POINTS=${plan.length} to replay)\n${describePlan(plan)}\n`);
    rig = await startRig({ config: { logLevel: 'warn', auditMaxEntries: 100, auditCheckpointEvery: 8, auditSummaryEveryMs: 1000 } });
    cloud = await startProgram('src/cli/carkey-cloud.js', ['serve', '--port', '0', '--host', '127.0.0.1', '--data', join(rig.dir, 'cloud-data'), '--log-level', 'error'], { env: { DATABASE_URL: '' } });
    cloudUrl = String(cloud.ready.url);
    const config = JSON.parse(readFileSync(rig.configPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(rig.configPath, JSON.stringify({ ...config, cloud: { url: cloudUrl, longPollSeconds: 2, requestTimeoutMs: 2000, auditUploadIntervalMs: 1000 } }));
    const init = await runCli('src/cli/carkeyd.js', ['init', '--config', rig.configPath, '--log-level', 'warn']);
    expect(init.code, init.stderr).toBe(0);
    await startCar();
    const paired = await pairNewOwner();
    expect(paired.code, paired.stderr).toBe(0);
    acked.paired = true;
    acked.ble = markOf(await carState());
    await until(async () => (await syncState()).registered, 'the car registered with the cloud');
  }, 60_000);

  afterAll(async () => {
    owner?.seed.fill(0);
    await stopRig(rig);
    await stopProgram(cloud);
  });

  it(`keeps every acknowledged operation over ${plan.length} seeded kill points`, async () => {
    const inFlight: Promise<void>[] = [];
    // A step that failed in the background fails the test where it is awaited (never as an unhandled rejection).
    const background: unknown[] = [];
    const drain = async (): Promise<void> => {
      await Promise.all(inFlight.splice(0));
      if (background.length > 0) throw background[0];
    };
    for (const point of plan) {
      await prepare(point);
      // A pairing needs the car to itself: let the steps cut by earlier kills end first.
      if (point.kind === 'pairing') await drain();
      let done = false;
      const stop: Stop = { now: false };
      const work = operation(point, stop).finally(() => {
        done = true;
      });
      await sleep(point.delayMs);
      if (!done) tally.killedDuringOp++;
      stop.now = true;
      await killCar();
      // A CLI cut by the kill waits for its own timeout; it ends (and records any ack) in the background.
      if (point.kind === 'pairing') await work;
      else inFlight.push(work.catch((error: unknown) => void background.push(error)));
      checkAfterKill(point);
      await startCar();
      await checkAfterRestart(point);
      if (!acked.paired || (await carState()).paired !== true) await recoverPairing();
    }

    await drain();
    await until(async () => !below(markOf(await carState()), acked.cloud), `the car took the list the cloud acknowledged (${acked.cloud.epoch}.${acked.cloud.version})`, 20_000);
    await until(() => acked.commands.every((id) => cloudResults().get(id) === 1), 'a result for every accepted remote command', 30_000);

    // Settle last (taking the list and answering commands append audit entries): the car syncs
    // with the cloud until nothing is left to send.
    await until(async () => {
      const sync = await syncState();
      const head = carAudit().at(-1)?.seq ?? 0;
      return sync.registered && sync.backlog.outbox === 0 && (cloudAudit().at(-1)?.seq ?? 0) === head;
    }, 'the outbox drained and the cloud holds the whole log', 60_000).catch(async (error: unknown) => {
      const state = await carState();
      throw new Error(`${(error as Error).message}: car head ${carAudit().at(-1)?.seq ?? 0}, cloud head ${cloudAudit().at(-1)?.seq ?? 0}, sync ${JSON.stringify(state.sync)}\n${rig.daemon?.stderr().slice(-4000) ?? ''}`);
    });
    // The cloud's copy: one row per seq, 1..n, no gap, n = the car's head; equal to the car's retained entries.
    const cloudRows = cloudAudit();
    tally.prunes = cloudRows.filter((r) => r.kind === 'audit-pruned').length;
    cloudRows.forEach((row, i) => expect(row.seq, 'cloud audit seqs are 1..n without a gap').toBe(i + 1));
    const carRows = carAudit();
    expect(cloudRows.at(-1)?.seq).toBe(carRows.at(-1)?.seq);
    const cloudBySeq = new Map(cloudRows.map((r) => [r.seq, r.hash]));
    for (const row of carRows) expect(cloudBySeq.get(row.seq), `car entry ${row.seq} equals the cloud's`).toBe(row.hash);

    // Remote commands: one result each (checked above), never carried out twice.
    const decisions = new Map<string, number>();
    for (const row of cloudRows) {
      const id = row.fields.commandId;
      if (row.kind === 'decision' && typeof id === 'string') decisions.set(id, (decisions.get(id) ?? 0) + 1);
    }
    const twice = acked.commands.filter((id) => (decisions.get(id) ?? 0) > 1);
    expect(twice, 'remote commands carried out twice').toEqual([]);
    const interrupted = acked.commands.filter((id) => !decisions.has(id)).length;

    // The owner's own verification, from the car over BLE and from the cloud copy.
    const fromCar = await carkey(owner.home, ['audit', '--verify', '--json'], 60_000);
    expect(fromCar.code, fromCar.stderr).toBe(0);
    const fromCloud = await carkey(owner.home, ['audit', '--from-cloud', '--verify', '--json'], 60_000);
    expect(fromCloud.code, fromCloud.stderr).toBe(0);
    const carkeydVerify = await runCli('src/cli/carkeyd.js', ['audit', 'verify', '--state', rig.stateDir]);
    expect(carkeydVerify.code, carkeydVerify.stderr).toBe(0);

    const byKind = new Map<string, number>();
    for (const p of plan) byKind.set(p.kind, (byKind.get(p.kind) ?? 0) + 1);
    const restarts = [...tally.restartsMs].sort((a, b) => a - b);
    process.stdout.write(
      `crash-daemon: seed ${settings.seed}: ${tally.kills} SIGKILLs (${tally.killedDuringOp} while the operation ran; ${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}); ` +
        `acknowledged: ${acked.unlocks} unlocks, ${tally.bleLists} key lists over BLE (last ${acked.ble.epoch}.${acked.ble.version}), ${tally.pairings} pairings, key list ${acked.cloud.epoch}.${acked.cloud.version} via the cloud, ${acked.commands.length} remote commands (${interrupted} answered as interrupted); ` +
        `audit head ${carRows.at(-1)?.seq ?? 0}, ${tally.prunes} prunes on the car, cloud rows ${cloudRows.length}; restart to ready p50 ${restarts[Math.floor(restarts.length / 2)]?.toFixed(0) ?? '?'} ms\n`,
    );
    // The run must have exercised the daemon: kills inside operations, prunes, uploads.
    expect(tally.killedDuringOp).toBeGreaterThanOrEqual(plan.length / 2);
    if (plan.length >= 40) {
      expect(acked.unlocks, 'unlocks acknowledged').toBeGreaterThan(0);
      expect(acked.commands.length, 'remote commands accepted').toBeGreaterThan(0);
      expect(tally.prunes, 'the car pruned its log').toBeGreaterThan(0);
      expect(tally.pairings, 'pairings acknowledged').toBeGreaterThan(0);
    }
  }, Math.max(600_000, plan.length * 10_000));
});
