/**
 * carkey-cloud on SQLite, SIGKILLed at seeded random points while clients
 * write (issue 12). The real `carkey-cloud serve` process (dist/; run
 * `npm run build` first) on one data directory, restarted after every kill.
 *
 * Clients (signed requests from test/cloud/helpers.ts, over a real socket),
 * for each of CARS cars, each a loop of sequential requests until the kill:
 *   key lists   the owner POSTs version n+1 (owner-signed)
 *   audit       the car POSTs pages of 1-6 new chained entries, a car-signed
 *               checkpoint every 8th seq
 *   commands    a phone POSTs remote commands; the car PUTs their results
 *   shares      the owner POSTs sealed boxes to a friend's mailbox
 * A kill point is a seeded delay after the clients started (or, for the
 * first start and a few others, after the process was spawned: during
 * migrations and start-up). After every kill, before the restart, the
 * database opens read-only; after the restart:
 *   - the service starts (its store opens and migrates);
 *   - every request it answered 2xx is stored exactly once: the stored key
 *     list is at least the last acknowledged version (and is the exact bytes
 *     of the version it holds); the audit log is seqs 1..n with no gap, n at
 *     least the last acknowledged seq, each entry the one sent (hash) and each
 *     acknowledged checkpoint there; every acknowledged command, result and
 *     mailbox item is there (one row each);
 *   - each request that was in flight when the process died is sent again
 *     (freshly signed, same document) and gives the answer an idempotent
 *     retry must: key list 200 with its version, or 409 CK_KEYLIST_ROLLBACK
 *     with exactly those bytes stored; audit page 200 with lastSeq ≥ its last
 *     seq; command 202, or 409 CK_PROTO_REPLAY with the command stored once;
 *     result 204. A mailbox POST is not idempotent (the service picks the item
 *     id): the retry stores a second item when the first had been stored,
 *     counted and printed, never more than one extra.
 * Also two regression tests for what crash-daemon.test.ts found: the first
 * audit page after the car pruned its log carries `anchor`, and the cloud
 * must take it (it answered 400, which left a pruned car's upload stuck for
 * good); and the cloud's copy, which keeps the entries the car pruned,
 * verifies from seq 1 with the car's 'audit-pruned' records in it (the core
 * verifier refused any log from seq 1 holding one, so `carkey audit
 * --from-cloud --verify` failed after every prune).
 *
 * Size: CARKEY_CRASH_POINTS (default 50; soak 200), CARKEY_CRASH_SEED
 * (printed). SIGKILL keeps the page cache: this shows process-crash safety;
 * a power cut additionally rests on synchronous=FULL, and the request-nonce
 * batch (flushed every 10 ms, sqlite-store.ts) can be lost by either.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { DIST, startProgram, type Started } from '../../firmware-sim/rig.js';
import { decodeAuditPage, encodeAuditPage } from '../../src/core/audit-page.js';
import { AUDIT_GENESIS_HASH, auditLinkHash, signCheckpoint, verifyAudit, type AuditCheckpoint, type AuditEntry } from '../../src/core/audit.js';
import { toHex } from '../../src/core/bytes.js';
import { encodeB64 } from '../../src/cloud/encoding.js';
import { crashSettings, describePlan, planKillPoints, type KillPoint } from '../helpers/crash-points.js';
import { seededRandom } from '../helpers/crash-writer.js';
import { codeOf, crypto, listFor, newCar, newParty, random, reasonOf, signedRequest, socketTransport, sqliteBackend, startHarness, statementFor, type Answer, type Car, type OutgoingRequest, type Party } from './helpers.js';

const CARS = 3;
const CHECKPOINT_EVERY = 8;
type Kind = 'running' | 'starting';
const settings = crashSettings(50);
const plan = planKillPoints<Kind>(settings.seed, settings.points, { running: [20, 700], starting: [0, 400] }, { running: 5, starting: 1 });

const root = mkdtempSync(join(tmpdir(), 'carkey-cloud-crash-'));
const dataDir = join(root, 'data');
const dbPath = join(dataDir, 'cloud.db');
let server: Started | undefined;
let baseUrl = '';

afterAll(async () => {
  await killServer();
  rmSync(root, { recursive: true, force: true });
});

/** A request that got no answer: the process died under it. */
interface InFlight {
  readonly kind: 'key-list' | 'audit' | 'command' | 'result' | 'mailbox';
  readonly car: CarState;
  /** how to send the same document again, freshly signed */
  readonly again: () => OutgoingRequest;
  readonly detail: { version?: number; bytes?: Uint8Array; lastSeq?: number; commandId?: string; box?: string };
}

interface CarState {
  readonly car: Car;
  readonly phone: Party;
  readonly friend: Party;
  /** every entry made so far (index = seq - 1) */
  readonly chain: AuditEntry[];
  readonly checkpoints: AuditCheckpoint[];
  ackedVersion: number;
  /** the bytes of every version sent, stored or not */
  readonly lists: Map<number, Uint8Array>;
  ackedSeq: number;
  readonly ackedCheckpoints: Set<number>;
  readonly ackedCommands: Set<string>;
  /** command id → the result box the cloud acknowledged */
  readonly ackedResults: Map<string, string>;
  /** command ids acknowledged but not answered yet */
  readonly toAnswer: string[];
  readonly ackedMailbox: Set<string>;
  /** box → how many times it was posted and answered 201 or sent without an answer */
  readonly mailboxBoxes: Map<string, number>;
}

function makeCar(index: number): CarState {
  const car = newCar(`crash-${index}`);
  return {
    car,
    phone: newParty(`phone-${index}`),
    friend: newParty(`friend-${index}`),
    chain: [],
    checkpoints: [],
    ackedVersion: 1,
    lists: new Map([[1, car.keyList.bytes]]),
    ackedSeq: 0,
    ackedCheckpoints: new Set(),
    ackedCommands: new Set(),
    ackedResults: new Map(),
    toAnswer: [],
    ackedMailbox: new Set(),
    mailboxBoxes: new Map(),
  };
}

function grow(state: CarState, count: number): AuditEntry[] {
  const made: AuditEntry[] = [];
  for (let i = 0; i < count; i++) {
    const seq = state.chain.length + 1;
    const previous = state.chain.at(-1)?.hash ?? AUDIT_GENESIS_HASH;
    const record = { seq, time: 1_800_000_000_000 + seq, kind: 'decision', fields: { command: 'unlock', result: 'allow', n: seq } };
    const entry = { ...record, hash: auditLinkHash(crypto, previous, record) };
    state.chain.push(entry);
    if (seq % CHECKPOINT_EVERY === 0) state.checkpoints.push(signCheckpoint(crypto, state.car.car.seed, seq, entry.hash));
    made.push(entry);
  }
  return made;
}

function pageBody(state: CarState, entries: readonly AuditEntry[]): Buffer {
  const first = entries[0]?.seq ?? 1;
  const last = entries.at(-1)?.seq ?? 0;
  return Buffer.from(encodeAuditPage({ entries, checkpoints: state.checkpoints.filter((c) => c.seq >= first && c.seq <= last), last }));
}

const box = (): string => encodeB64(random(120));

async function send(request: OutgoingRequest): Promise<Answer | undefined> {
  try {
    return await socketTransport(baseUrl).send(request);
  } catch {
    return undefined; // connection refused or reset: the process is dead
  }
}

/** One client loop: requests in sequence until `stop` or the first unanswered one. */
async function keyListLoop(state: CarState, stop: { now: boolean }, lost: InFlight[]): Promise<void> {
  const { car } = state;
  while (!stop.now) {
    const version = state.ackedVersion + 1;
    const list = listFor(car, car.owner, { version });
    state.lists.set(version, list.bytes);
    const again = (): OutgoingRequest => signedRequest(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: encodeB64(list.bytes) });
    const answer = await send(again());
    if (answer === undefined) {
      lost.push({ kind: 'key-list', car: state, again, detail: { version, bytes: list.bytes } });
      return;
    }
    expect(answer.status, answer.text).toBe(200);
    state.ackedVersion = version;
  }
}

async function auditLoop(state: CarState, stop: { now: boolean }, lost: InFlight[], pick: () => number): Promise<void> {
  while (!stop.now) {
    const entries = grow(state, 1 + Math.floor(pick() * 6));
    const body = pageBody(state, entries);
    const again = (): OutgoingRequest => signedRequest(state.car.car, 'POST', `/v1/vehicles/${state.car.id}/audit`, body);
    const answer = await send(again());
    const lastSeq = entries.at(-1)?.seq ?? 0;
    if (answer === undefined) {
      lost.push({ kind: 'audit', car: state, again, detail: { lastSeq } });
      return;
    }
    expect(answer.status, answer.text).toBe(200);
    state.ackedSeq = lastSeq;
    for (const c of state.checkpoints) if (c.seq <= lastSeq) state.ackedCheckpoints.add(c.seq);
  }
}

async function commandLoop(state: CarState, stop: { now: boolean }, lost: InFlight[]): Promise<void> {
  while (!stop.now) {
    // Answer what waits first (the cloud holds at most 64 unanswered commands per car).
    const waiting = state.toAnswer.shift();
    if (waiting !== undefined) {
      const result = box();
      const again = (): OutgoingRequest => signedRequest(state.car.car, 'PUT', `/v1/vehicles/${state.car.id}/commands/${waiting}/result`, { box: result });
      const answer = await send(again());
      if (answer === undefined) {
        lost.push({ kind: 'result', car: state, again, detail: { commandId: waiting, box: result } });
        return;
      }
      expect(answer.status, answer.text).toBe(204);
      state.ackedResults.set(waiting, result);
      continue;
    }
    const commandId = toHex(random(16));
    const commandBox = box();
    const expiresAt = Date.now() + 10 * 60_000;
    const again = (): OutgoingRequest => signedRequest(state.phone, 'POST', `/v1/vehicles/${state.car.id}/commands`, { commandId, expiresAt, box: commandBox });
    const answer = await send(again());
    if (answer === undefined) {
      lost.push({ kind: 'command', car: state, again, detail: { commandId, box: commandBox } });
      return;
    }
    expect(answer.status, answer.text).toBe(202);
    state.ackedCommands.add(commandId);
    state.toAnswer.push(commandId);
  }
}

async function mailboxLoop(state: CarState, stop: { now: boolean }, lost: InFlight[]): Promise<void> {
  while (!stop.now) {
    const item = box();
    const again = (): OutgoingRequest => signedRequest(state.car.owner, 'POST', `/v1/mailbox/${state.friend.hex}`, { vehicleId: state.car.id, box: item, expiresAt: Date.now() + 86_400_000 });
    const answer = await send(again());
    state.mailboxBoxes.set(item, 0);
    if (answer === undefined) {
      lost.push({ kind: 'mailbox', car: state, again, detail: { box: item } });
      return;
    }
    expect(answer.status, answer.text).toBe(201);
    state.ackedMailbox.add((answer.json() as { id: string }).id);
  }
}

function readDb<T>(fn: (db: Database.Database) => T): T {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

function checkStored(state: CarState, where: string): void {
  const id = state.car.id;
  readDb((db) => {
    const vehicle = db.prepare('SELECT version, key_list FROM vehicles WHERE vehicle_id = ?').get(id) as { version: number; key_list: Buffer } | undefined;
    expect(vehicle, `${where}: car ${id} is registered`).toBeDefined();
    const version = vehicle?.version ?? 0;
    expect(version, `${where}: key list version`).toBeGreaterThanOrEqual(state.ackedVersion);
    expect(toHex(vehicle?.key_list ?? Buffer.alloc(0)), `${where}: the stored list is the one sent for version ${version}`).toBe(toHex(state.lists.get(version) ?? new Uint8Array(0)));

    const seqs = db.prepare('SELECT seq, hash FROM audit_entries WHERE vehicle_id = ? ORDER BY seq').all(id) as { seq: number; hash: Buffer }[];
    seqs.forEach((row, i) => {
      if (row.seq !== i + 1) expect.fail(`${where}: audit seq ${row.seq} at position ${i + 1} (a gap or a duplicate)`);
      if (toHex(row.hash) !== toHex(state.chain[i]?.hash ?? new Uint8Array(0))) expect.fail(`${where}: audit entry ${row.seq} is not the one sent`);
    });
    expect(seqs.length, `${where}: audit head`).toBeGreaterThanOrEqual(state.ackedSeq);
    const checkpoints = new Set((db.prepare('SELECT seq FROM audit_checkpoints WHERE vehicle_id = ?').all(id) as { seq: number }[]).map((r) => r.seq));
    for (const seq of state.ackedCheckpoints) expect(checkpoints.has(seq), `${where}: checkpoint ${seq}`).toBe(true);

    const commands = new Map((db.prepare('SELECT command_id, result FROM commands WHERE vehicle_id = ?').all(id) as { command_id: string; result: Buffer | null }[]).map((r) => [r.command_id, r.result]));
    for (const commandId of state.ackedCommands) expect(commands.has(commandId), `${where}: command ${commandId}`).toBe(true);
    for (const [commandId, result] of state.ackedResults) expect(encodeB64(new Uint8Array(commands.get(commandId) ?? Buffer.alloc(0))), `${where}: result of ${commandId}`).toBe(result);

    const items = db.prepare('SELECT item_id, box FROM mailbox WHERE recipient = ?').all(state.friend.hex) as { item_id: string; box: Buffer }[];
    const ids = new Set(items.map((r) => r.item_id));
    for (const item of state.ackedMailbox) expect(ids.has(item), `${where}: mailbox item ${item}`).toBe(true);
    const perBox = new Map<string, number>();
    for (const row of items) {
      const key = encodeB64(new Uint8Array(row.box));
      perBox.set(key, (perBox.get(key) ?? 0) + 1);
    }
    for (const [key, count] of perBox) {
      if (!state.mailboxBoxes.has(key)) expect.fail(`${where}: a mailbox item nobody sent`);
      state.mailboxBoxes.set(key, count);
    }
  });
}

const tally = { retriesStoredBefore: 0, retriesFresh: 0, mailboxDuplicates: 0, restartsMs: [] as number[] };

/** Send an unanswered request again; the answer must be what an idempotent retry gives. */
async function retry(lost: InFlight, where: string): Promise<void> {
  const answer = await send(lost.again());
  if (answer === undefined) throw new Error(`${where}: the restarted service does not answer`);
  const what = `${where}: retry of ${lost.kind}: ${answer.status} ${answer.text}`;
  const state = lost.car;
  switch (lost.kind) {
    case 'key-list': {
      if (answer.status === 200) {
        tally.retriesFresh++;
        expect(answer.json(), what).toEqual({ epoch: 0, version: lost.detail.version });
      } else {
        tally.retriesStoredBefore++;
        expect([answer.status, codeOf(answer), reasonOf(answer)], what).toEqual([409, 'CK_CLOUD_CONFLICT', 'CK_KEYLIST_ROLLBACK']);
        const stored = readDb((db) => db.prepare('SELECT version, key_list FROM vehicles WHERE vehicle_id = ?').get(state.car.id) as { version: number; key_list: Buffer });
        expect([stored.version, toHex(stored.key_list)], `${what}: the first attempt was stored`).toEqual([lost.detail.version, toHex(lost.detail.bytes ?? new Uint8Array(0))]);
      }
      state.ackedVersion = lost.detail.version ?? state.ackedVersion;
      return;
    }
    case 'audit': {
      expect(answer.status, what).toBe(200);
      const body = answer.json() as { stored: number; lastSeq: number };
      expect(body.lastSeq, what).toBeGreaterThanOrEqual(lost.detail.lastSeq ?? 0);
      if (body.stored === 0) tally.retriesStoredBefore++;
      else tally.retriesFresh++;
      state.ackedSeq = lost.detail.lastSeq ?? state.ackedSeq;
      for (const c of state.checkpoints) if (c.seq <= state.ackedSeq) state.ackedCheckpoints.add(c.seq);
      return;
    }
    case 'command': {
      const commandId = lost.detail.commandId ?? '';
      if (answer.status === 202) tally.retriesFresh++;
      else {
        tally.retriesStoredBefore++;
        expect([answer.status, codeOf(answer), reasonOf(answer)], what).toEqual([409, 'CK_CLOUD_CONFLICT', 'CK_PROTO_REPLAY']);
      }
      const rows = readDb((db) => db.prepare('SELECT box FROM commands WHERE vehicle_id = ? AND command_id = ?').all(state.car.id, commandId) as { box: Buffer }[]);
      expect(rows.map((r) => encodeB64(new Uint8Array(r.box))), `${what}: stored once, as sent`).toEqual([lost.detail.box]);
      state.ackedCommands.add(commandId);
      state.toAnswer.push(commandId);
      return;
    }
    case 'result': {
      expect(answer.status, what).toBe(204);
      const commandId = lost.detail.commandId ?? '';
      const stored = readDb((db) => db.prepare('SELECT result FROM commands WHERE vehicle_id = ? AND command_id = ?').get(state.car.id, commandId) as { result: Buffer | null });
      // The first result stored wins: the retry carries the same box, so either way it is this one.
      expect(encodeB64(new Uint8Array(stored.result ?? Buffer.alloc(0))), what).toBe(lost.detail.box);
      state.ackedResults.set(commandId, lost.detail.box ?? '');
      return;
    }
    case 'mailbox': {
      expect(answer.status, what).toBe(201);
      state.ackedMailbox.add((answer.json() as { id: string }).id);
      const key = lost.detail.box ?? '';
      const copies = readDb((db) => (db.prepare('SELECT box FROM mailbox WHERE recipient = ?').all(state.friend.hex) as { box: Buffer }[]).filter((r) => encodeB64(new Uint8Array(r.box)) === key).length);
      expect(copies, `${what}: the first attempt and the retry at most`).toBeGreaterThanOrEqual(1);
      expect(copies, `${what}: the first attempt and the retry at most`).toBeLessThanOrEqual(2);
      if (copies === 2) tally.mailboxDuplicates++;
      return;
    }
  }
}

const SERVE_ARGS = ['serve', '--port', '0', '--host', '127.0.0.1', '--data', dataDir, '--rate-key', '0', '--rate-ip', '0', '--no-app', '--log-level', 'error'];

async function startServer(): Promise<Started> {
  const t0 = performance.now();
  const started = await startProgram('src/cli/carkey-cloud.js', SERVE_ARGS, { env: { DATABASE_URL: '' } });
  tally.restartsMs.push(performance.now() - t0);
  server = started;
  baseUrl = String(started.ready.url);
  return started;
}

/** SIGKILL the serving process and wait until it is gone. */
async function killServer(): Promise<void> {
  const started = server;
  // Forgotten first: rig.ts's stopProgram waits for an exit that already happened if it gets a killed child.
  server = undefined;
  if (started === undefined || started.child.exitCode !== null || started.child.signalCode !== null) return;
  const exited = new Promise((resolve) => started.child.once('exit', resolve));
  started.child.kill('SIGKILL');
  await exited;
}

describe('carkey-cloud (SQLite) SIGKILLed while clients write', () => {
  it(`every acknowledged request is stored exactly once over ${plan.length} seeded kill points`, async () => {
    process.stdout.write(`cloud crash: seed ${settings.seed}, ${plan.length} kill points (CARKEY_CRASH_SEED=${settings.seed} CARKEY_CRASH_POINTS=${plan.length} to replay)\n${describePlan(plan)}\n`);
    const pick = seededRandom(settings.seed ^ 0x51ee7);
    const cars = Array.from({ length: CARS }, (_, i) => makeCar(i));
    let startKills = 0;
    let killsWithLost = 0;
    // The very first start (creating the database, migrations) is killed too.
    for (const point of [{ index: -1, kind: 'starting', delayMs: 60, pick: 0 } as KillPoint<Kind>, ...plan]) {
      const where = `seed ${settings.seed} point ${point.index} (${point.kind} @${point.delayMs} ms)`;
      if (point.kind === 'starting') {
        // Kill while it starts: spawned, opening and migrating the store, maybe already listening.
        // (The one serving since the last point goes first: one process on the data at a time.)
        await killServer();
        const child = spawn(process.execPath, [join(DIST, 'src/cli/carkey-cloud.js'), ...SERVE_ARGS], { stdio: 'ignore', env: { ...process.env, DATABASE_URL: '' } });
        const exited = new Promise((resolve) => child.once('exit', resolve));
        await new Promise((r) => setTimeout(r, point.delayMs));
        child.kill('SIGKILL');
        await exited;
        startKills++;
      } else {
        const stop = { now: false };
        const lost: InFlight[] = [];
        const loops = cars.flatMap((state) => [keyListLoop(state, stop, lost), auditLoop(state, stop, lost, pick), commandLoop(state, stop, lost), mailboxLoop(state, stop, lost)]);
        await new Promise((r) => setTimeout(r, point.delayMs));
        stop.now = true;
        await killServer();
        await Promise.all(loops);
        if (lost.length > 0) killsWithLost++;
        // The database opens read-only straight after the kill (WAL not yet recovered).
        readDb((db) => expect(db.pragma('quick_check', { simple: true }), `${where}: quick_check`).toBe('ok'));
        await startServer();
        for (const state of cars) checkStored(state, where);
        for (const request of lost) await retry(request, where);
        for (const state of cars) checkStored(state, `${where} after the retries`);
        continue;
      }
      // After a kill during start-up: it starts, and the cars are (again) registered.
      await startServer();
      for (const state of cars) {
        const answer = await send(signedRequest(state.car.car, 'PUT', `/v1/vehicles/${state.car.id}`, { statement: statementFor(state.car) }));
        // Registered before (200 with the stored version, a later one is never rolled back) or first time.
        expect([200, 409], `${where}: register ${answer?.text ?? 'no answer'}`).toContain(answer?.status);
        if (state.chain.length > 0 || state.ackedVersion > 1) checkStored(state, where);
      }
    }
    const totals = cars.reduce(
      (t, s) => ({ versions: t.versions + s.ackedVersion, seqs: t.seqs + s.ackedSeq, commands: t.commands + s.ackedCommands.size, results: t.results + s.ackedResults.size, mailbox: t.mailbox + s.ackedMailbox.size }),
      { versions: 0, seqs: 0, commands: 0, results: 0, mailbox: 0 },
    );
    process.stdout.write(
      `cloud crash: seed ${settings.seed}: ${plan.length + 1} SIGKILLs (${startKills} during start-up, ${killsWithLost} with requests in flight); acknowledged over ${CARS} cars: ${totals.versions} key-list versions, ${totals.seqs} audit entries, ${totals.commands} commands, ${totals.results} results, ${totals.mailbox} mailbox items; ` +
        `retries of unanswered requests: ${tally.retriesStoredBefore} found the first attempt stored, ${tally.retriesFresh} stored by the retry, ${tally.mailboxDuplicates} mailbox items stored twice (not idempotent); restart to ready p50 ${[...tally.restartsMs].sort((a, b) => a - b)[Math.floor(tally.restartsMs.length / 2)]?.toFixed(0) ?? '?'} ms\n`,
    );
    expect(killsWithLost, 'kills that cut requests in flight').toBeGreaterThan(plan.length / 4);
    expect(totals.seqs).toBeGreaterThan(0);
  }, Math.max(600_000, plan.length * 6000));
});

describe('regression: the audit page after a prune', () => {
  it('the cloud takes a page that carries the anchor of a pruned log (it answered 400: body must NOT have additional properties)', async () => {
    const backend = sqliteBackend();
    const harness = await startHarness(await backend.open(), 'inject');
    try {
      const state = makeCar(9);
      expect((await harness.client.register(state.car)).status).toBe(200);
      const entries = grow(state, 2 * CHECKPOINT_EVERY + 3);
      const firstPart = entries.slice(0, CHECKPOINT_EVERY);
      const upload = (body: Buffer): Promise<Answer> => harness.client.transport.send(signedRequest(state.car.car, 'POST', `/v1/vehicles/${state.car.id}/audit`, body));
      expect((await upload(pageBody(state, firstPart))).status).toBe(200);
      // The car pruned through the checkpoint at seq 8: its next page starts at 9 and names that anchor.
      const anchor = state.checkpoints[0];
      if (anchor === undefined) throw new Error('no checkpoint');
      const rest = entries.slice(CHECKPOINT_EVERY);
      const withAnchor = Buffer.from(encodeAuditPage({ entries: rest, checkpoints: state.checkpoints.filter((c) => c.seq > CHECKPOINT_EVERY), last: rest.at(-1)?.seq ?? 0, anchor }));
      const answer = await upload(withAnchor);
      expect(answer.status, answer.text).toBe(200);
      expect(answer.json()).toEqual({ stored: rest.length, lastSeq: entries.length });
    } finally {
      await harness.close();
      await backend.cleanup();
    }
  });

  it("the cloud's copy, which keeps what the car pruned, verifies from seq 1 with the car's pruning records in it (it failed: 'not the log the car pruned')", async () => {
    const backend = sqliteBackend();
    const harness = await startHarness(await backend.open(), 'inject');
    try {
      const state = makeCar(10);
      expect((await harness.client.register(state.car)).status).toBe(200);
      grow(state, CHECKPOINT_EVERY);
      // The car pruned through its checkpoint at seq 8 and recorded it, as store.pruneAudit does.
      const seq = state.chain.length + 1;
      const record = { seq, time: 1_800_000_000_000 + seq, kind: 'audit-pruned', fields: { fromSeq: 1, throughSeq: CHECKPOINT_EVERY, entries: CHECKPOINT_EVERY, maxEntries: 100 } };
      state.chain.push({ ...record, hash: auditLinkHash(crypto, state.chain.at(-1)?.hash ?? AUDIT_GENESIS_HASH, record) });
      grow(state, CHECKPOINT_EVERY - 1);
      const upload = await harness.client.transport.send(signedRequest(state.car.car, 'POST', `/v1/vehicles/${state.car.id}/audit`, pageBody(state, state.chain)));
      expect(upload.status, upload.text).toBe(200);
      // What the owner reads back from the cloud verifies against the car key, from genesis.
      const read = await harness.client.call(state.car.owner, 'GET', `/v1/vehicles/${state.car.id}/audit?from=1&limit=64`);
      const page = decodeAuditPage(new TextEncoder().encode(read.text));
      if (!page.ok) throw page.error;
      expect(page.value.entries.map((e) => e.seq)).toEqual(state.chain.map((e) => e.seq));
      const verified = verifyAudit(page.value.entries, page.value.checkpoints, state.car.car.publicKey, crypto);
      expect(verified.ok ? 'ok' : verified.error.message).toBe('ok');
      // A pruned copy (starting after the anchor) still needs the matching pruning record.
      const anchor = state.checkpoints[0];
      const retained = page.value.entries.filter((e) => e.seq > CHECKPOINT_EVERY);
      expect(verifyAudit(retained, page.value.checkpoints.filter((c) => c.seq > CHECKPOINT_EVERY), state.car.car.publicKey, crypto, anchor === undefined ? {} : { anchor }).ok).toBe(true);
      const forgedRecord = { ...record, fields: { ...record.fields, throughSeq: 2 * CHECKPOINT_EVERY } };
      const relinked = retained.map((e) => (e.seq === seq ? { ...forgedRecord, hash: e.hash } : e));
      expect(verifyAudit(relinked, [], state.car.car.publicKey, crypto, anchor === undefined ? {} : { anchor }).ok).toBe(false);
    } finally {
      await harness.close();
      await backend.cleanup();
    }
  });
});
