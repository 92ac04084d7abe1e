/**
 * Crash safety of the vehicle store (DESIGN invariant 5).
 *
 * A child (dist/test/helpers/crash-writer.js; run `npm run build` first)
 * opens the store and commits key-list updates, time-floor raises and audit
 * appends as fast as it can, acknowledging each committed operation on
 * stdout. The parent SIGKILLs it at seeded random points — while it starts,
 * while it creates the store the first time, or after a random number of
 * acks — then checks, every round:
 *   - the audit log verifies read-only straight after the kill (WAL not yet
 *     recovered) with `verifyAuditDatabase`;
 *   - the store opens (a dead holder's lock does not block it) with the same
 *     vehicle identity as in every earlier round;
 *   - the key-list version is >= the last acknowledged one and its bytes are
 *     exactly keyListBytesFor(version); the time floor is >= the last ack;
 *   - the audit chain verifies and its seqs are 1..n with no gap, n >= the
 *     last acknowledged seq;
 *   - every change sits with its audit entry: the key-list version equals the
 *     last 'key-list' entry's version, and the writer's multi-statement
 *     atomically() block (a meta value + two entries) is all there or absent.
 * A second test sweeps the kill across the very first start (identity file
 * and schema creation) on fresh directories.
 * The rounds share one state directory, so each restart builds on the
 * previous crash. SIGKILL keeps the page cache, so this covers process
 * crashes; surviving power loss additionally rests on synchronous=FULL
 * (fsync per commit) and the fsynced atomic identity write.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { verifyAuditDatabase, VehicleStore } from '../../src/vehicle/store.js';
import { keyListBytesFor, seededRandom } from '../helpers/crash-writer.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const WRITER = join(REPO_ROOT, 'dist/test/helpers/crash-writer.js');
const ROUNDS = 20;
const CHECKPOINT_INTERVAL = 8;
const crypto = createCrypto('node');

interface Acks {
  keylist: number;
  audit: number;
  floor: number;
  total: number;
}

type KillPlan = { readonly after: 'delay'; readonly ms: number } | { readonly after: 'acks'; readonly count: number };

const children = new Set<ChildProcess>();
const root = mkdtempSync(join(tmpdir(), 'carkey-crash-'));
const stateDir = join(root, 'state');
let firstIdentity: string | undefined;

afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

/** Run the writer until the plan says kill; resolve once it is dead and its output drained. */
function runRound(seed: number, plan: KillPlan, acks: Acks): Promise<{ signal: NodeJS.Signals | null; code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [WRITER, stateDir, 'churn', String(seed), String(CHECKPOINT_INTERVAL)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let roundAcks = 0;
  let pending = '';
  let stderr = '';
  const kill = (): void => {
    child.kill('SIGKILL');
  };
  if (plan.after === 'delay') setTimeout(kill, plan.ms);
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const match = /^ack (keylist|audit|floor) (\d+)$/.exec(line);
      if (match === null) continue;
      const value = Number(match[2]);
      if (match[1] === 'keylist') acks.keylist = Math.max(acks.keylist, value);
      else if (match[1] === 'audit') acks.audit = Math.max(acks.audit, value);
      else acks.floor = Math.max(acks.floor, value);
      acks.total++;
      roundAcks++;
      if (plan.after === 'acks' && roundAcks === plan.count) kill();
    }
  });
  return new Promise((done) => {
    child.once('close', (code, signal) => {
      children.delete(child);
      done({ signal, code, stderr });
    });
  });
}

function checkAfterCrash(acks: Acks, round: number): void {
  const where = `round ${round}`;
  if (acks.total > 0) {
    const readOnly = verifyAuditDatabase(stateDir, crypto);
    expect(readOnly.ok ? 'ok' : readOnly.error.message, `${where}: read-only verify`).toBe('ok');
  }
  const store = VehicleStore.open(stateDir, {
    crypto,
    now: () => 1_800_000_000_000 + round,
    // Only used if the writer died before finishing the first-time creation.
    random: (length) => new Uint8Array(length).fill(round + 1),
    checkpointInterval: CHECKPOINT_INTERVAL,
  });
  try {
    const identity = toHex(store.identity.publicKey);
    expect(identity, `${where}: the vehicle identity never changes`).toBe(firstIdentity ?? identity);
    firstIdentity = identity;
    const version = store.keyListVersion();
    expect(version, `${where}: key-list version`).toBeGreaterThanOrEqual(acks.keylist);
    const keyList = store.keyList();
    if (version > 0) {
      expect(keyList?.version, where).toBe(version);
      expect(keyList?.bytes, `${where}: key-list bytes`).toEqual(keyListBytesFor(version));
    }
    expect(store.timeFloor(), `${where}: time floor`).toBeGreaterThanOrEqual(acks.floor);

    const verified = store.verifyAuditInStore();
    expect(verified.ok ? 'ok' : verified.error.message, `${where}: audit chain`).toBe('ok');
    const lastSeq = store.lastAuditSeq();
    expect(lastSeq, `${where}: audit seq`).toBeGreaterThanOrEqual(acks.audit);
    let expected = 1;
    let loggedKeyListVersion = 0;
    const kinds = new Map<number, string>();
    for (let from = 1; from <= lastSeq; from += 5000) {
      for (const entry of store.readAudit({ fromSeq: from, limit: 5000 })) {
        if (entry.seq !== expected) expect.fail(`${where}: audit seq gap at ${expected} (found ${entry.seq})`);
        if (entry.kind === 'key-list') loggedKeyListVersion = Number(entry.fields['version']);
        kinds.set(entry.seq, entry.kind);
        expected++;
      }
    }
    expect(expected - 1, `${where}: audit entries read`).toBe(lastSeq);
    // A change and the audit entry recording it commit together.
    expect(loggedKeyListVersion, `${where}: key list and its audit entry`).toBe(version);
    const counter = store.getMeta('crash.counter');
    if (counter !== undefined) {
      expect([kinds.get(Number(counter) + 1), kinds.get(Number(counter) + 2)], `${where}: atomically() block`).toEqual(['config', 'config']);
    }
  } finally {
    store.close();
  }
}

describe('crash safety', () => {
  it(`survives ${ROUNDS} SIGKILLs at random points`, async () => {
    if (!existsSync(WRITER)) throw new Error(`${WRITER} is missing: run npm run build`);
    const random = seededRandom(0xc0ffee);
    const acks: Acks = { keylist: 0, audit: 0, floor: 0, total: 0 };
    let killsDuringWork = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Round 0 and a few others die on a timer: during start-up or first-time creation of the store.
      const plan: KillPlan =
        round === 0 || random() < 0.15 ? { after: 'delay', ms: 20 + Math.floor(random() * 200) } : { after: 'acks', count: 1 + Math.floor(random() * 400) };
      const before = acks.total;
      const outcome = await runRound(round + 1, plan, acks);
      expect(outcome.signal, `round ${round}: the writer must die by SIGKILL, not by itself: ${outcome.stderr}`).toBe('SIGKILL');
      if (acks.total > before) killsDuringWork++;
      checkAfterCrash(acks, round);
    }
    // The test must have exercised the store, not only killed idle processes.
    expect(killsDuringWork).toBeGreaterThanOrEqual(ROUNDS / 2);
    expect(acks.keylist).toBeGreaterThan(20);
    expect(acks.audit).toBeGreaterThan(200);
  });

  it('survives a kill at any point of the very first start (identity and schema creation)', async () => {
    if (!existsSync(WRITER)) throw new Error(`${WRITER} is missing: run npm run build`);
    // Start-up to `ready` takes ~100 ms here; sweep the kill across it. Each attempt starts fresh.
    for (let ms = 40; ms <= 160; ms += 8) {
      const dir = join(root, `first-${ms}`);
      const child = spawn(process.execPath, [WRITER, dir, 'churn', '1', String(CHECKPOINT_INTERVAL)], { stdio: 'ignore' });
      children.add(child);
      const exited = new Promise<void>((done) => child.once('close', () => done()));
      setTimeout(() => child.kill('SIGKILL'), ms);
      await exited;
      children.delete(child);
      const identityPath = join(dir, 'identity.key');
      const identityBefore = existsSync(identityPath) ? readFileSync(identityPath, 'utf8') : undefined;
      const store = VehicleStore.open(dir, { crypto, now: () => 1_800_000_000_000, random: (length) => new Uint8Array(length).fill(9) });
      try {
        if (identityBefore !== undefined) expect(readFileSync(identityPath, 'utf8'), `kill at ${ms} ms: identity kept`).toBe(identityBefore);
        const verified = store.verifyAuditInStore();
        expect(verified.ok ? 'ok' : verified.error.message, `kill at ${ms} ms`).toBe('ok');
        const version = store.keyListVersion();
        if (version > 0) expect(store.keyList()?.bytes).toEqual(keyListBytesFor(version));
      } finally {
        store.close();
      }
    }
  });
});
