/**
 * Tests of the vehicle state store (src/vehicle/store.ts, state-dir.ts,
 * identity-file.ts): layout and permissions, identity file format and
 * refusals, key-list rollback refusal and atomicity, the time floor, metadata,
 * factory reset, audit checkpoints, tamper detection on the database, schema
 * and corruption refusals, and the single-instance lock (in-process, held by
 * a live child process, and recovered after that child is SIGKILLed).
 *
 * The lock tests spawn dist/test/helpers/crash-writer.js: run `npm run build` first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/core/bytes.js';
import { createCrypto, type RandomSource } from '../../src/core/crypto/index.js';
import { isCarkeyError, type ErrorCode } from '../../src/core/errors.js';
import { STORE_SCHEMA_VERSION, verifyAuditDatabase, VehicleStore, type VehicleStoreOptions } from '../../src/vehicle/store.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const WRITER = join(REPO_ROOT, 'dist/test/helpers/crash-writer.js');
const crypto = createCrypto('node');

/** Deterministic RandomSource: bytes counting up from `start`. */
function countingRandom(start = 1): RandomSource {
  let next = start;
  return (length) => Uint8Array.from({ length }, () => next++ & 0xff);
}

let root: string;
let dir: string;
let clock: number;
const children = new Set<ChildProcess>();
const openStores = new Set<VehicleStore>();

function options(extra: Partial<VehicleStoreOptions> = {}): VehicleStoreOptions {
  return { crypto, now: () => clock, random: countingRandom(), ...extra };
}

function openStore(extra: Partial<VehicleStoreOptions> = {}): VehicleStore {
  const store = VehicleStore.open(dir, options(extra));
  openStores.add(store);
  return store;
}

function expectCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(isCarkeyError(thrown, code), `expected ${code}, got ${String(thrown)}`).toBe(true);
  if (message !== undefined && thrown instanceof Error) expect(thrown.message).toMatch(message);
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'carkey-store-'));
  dir = join(root, 'state');
  clock = 1_700_000_000_000;
});

afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  for (const store of openStores) store.close();
  openStores.clear();
  rmSync(root, { recursive: true, force: true });
});

describe('state directory and identity file', () => {
  it('creates the directory 0700, identity.key and state.db 0600, identity as 64 hex + newline', () => {
    const store = openStore();
    expect(mode(dir)).toBe(0o700);
    expect(mode(join(dir, 'identity.key'))).toBe(0o600);
    expect(mode(join(dir, 'state.db'))).toBe(0o600);
    const text = readFileSync(join(dir, 'identity.key'), 'utf8');
    expect(text).toMatch(/^[0-9a-f]{64}\n$/);
    const seed = fromHex(text.trim()) ?? new Uint8Array();
    expect(toHex(store.identity.publicKey)).toBe(toHex(crypto.publicKeyFromSeed(seed)));
    expect(existsSync(join(dir, 'identity.key.tmp'))).toBe(false);
  });

  it('keeps the same identity and advertising secret across restarts', () => {
    const first = openStore();
    const publicKey = toHex(first.identity.publicKey);
    const secret = toHex(first.advertisingSecret());
    expect(first.advertisingSecret()).toHaveLength(32);
    first.close();
    const second = openStore({ random: countingRandom(100) });
    expect(toHex(second.identity.publicKey)).toBe(publicKey);
    expect(toHex(second.advertisingSecret())).toBe(secret);
  });

  it('never shows the seed in JSON or inspect output', () => {
    const store = openStore();
    const seedHex = readFileSync(join(dir, 'identity.key'), 'utf8').trim();
    expect(JSON.stringify(store.identity)).not.toContain(seedHex);
    expect(inspect(store.identity, { showHidden: true, depth: 5 })).not.toContain(seedHex);
    expect(toHex(store.identity.exportSeed())).toBe(seedHex);
  });

  it.each([0o644, 0o640, 0o604, 0o620])('refuses an identity.key with mode %o', (badMode) => {
    openStore().close();
    openStores.clear();
    chmodSync(join(dir, 'identity.key'), badMode);
    expectCode(() => openStore(), 'CK_STORE_INSECURE_PERMISSIONS', /identity\.key has mode 0\d{3}.*chmod 600/);
    // the failed open released the lock: fixing the mode is enough
    chmodSync(join(dir, 'identity.key'), 0o600);
    expect(() => openStore()).not.toThrow();
  });

  it('refuses a state directory that others can access', () => {
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o755);
    expectCode(() => openStore(), 'CK_STORE_INSECURE_PERMISSIONS', /chmod 700/);
  });

  it('refuses a state.db that others can read', () => {
    openStore().close();
    openStores.clear();
    chmodSync(join(dir, 'state.db'), 0o644);
    expectCode(() => openStore(), 'CK_STORE_INSECURE_PERMISSIONS', /state\.db/);
  });

  it('refuses a malformed identity.key without echoing it', () => {
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, 'identity.key'), 'ab'.repeat(31) + 'zz\n', { mode: 0o600 });
    let message = '';
    try {
      openStore();
    } catch (error) {
      expect(isCarkeyError(error, 'CK_STORE_CORRUPT')).toBe(true);
      message = String(error);
    }
    expect(message).toMatch(/64 hex characters/);
    expect(message).not.toContain('abab');
  });

  it('refuses an identity.key that is a symlink', () => {
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(root, 'elsewhere.key'), `${'11'.repeat(32)}\n`, { mode: 0o600 });
    symlinkSync(join(root, 'elsewhere.key'), join(dir, 'identity.key'));
    expectCode(() => openStore(), 'CK_STORE_IO');
  });

  it('refuses a missing or swapped identity.key once state.db exists', () => {
    openStore().close();
    openStores.clear();
    const identityPath = join(dir, 'identity.key');
    const original = readFileSync(identityPath);
    unlinkSync(identityPath);
    expectCode(() => openStore(), 'CK_STORE_CORRUPT', /identity\.key is missing/);
    expect(existsSync(identityPath)).toBe(false);
    writeFileSync(identityPath, `${'42'.repeat(32)}\n`, { mode: 0o600 });
    expectCode(() => openStore(), 'CK_STORE_CORRUPT', /does not belong/);
    writeFileSync(identityPath, original, { mode: 0o600 });
    expect(() => openStore()).not.toThrow();
  });

  it('uses WAL, synchronous=FULL and foreign keys', () => {
    openStore();
    const db = new Database(join(dir, 'state.db'), { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.prepare('SELECT max(version) AS v FROM schema_version').get()).toEqual({ v: STORE_SCHEMA_VERSION });
    } finally {
      db.close();
    }
  });
});

describe('key list', () => {
  it('stores a key list with its version and acceptance time', () => {
    const store = openStore();
    expect(store.keyList()).toBeUndefined();
    expect(store.keyListVersion()).toBe(0);
    clock += 5;
    const { keyList, auditEntry } = store.replaceKeyList(Uint8Array.of(1, 2, 3), 5, { source: 'ble' });
    expect(keyList).toEqual({ bytes: Uint8Array.of(1, 2, 3), version: 5, acceptedAt: clock });
    expect(auditEntry).toMatchObject({ seq: 1, kind: 'key-list', fields: { source: 'ble', version: 5, previousVersion: 0, size: 3 } });
    expect(store.keyList()).toEqual(keyList);
  });

  it.each([5, 4, 1])('refuses version %i after version 5, writing nothing', (version) => {
    const store = openStore();
    store.replaceKeyList(Uint8Array.of(5), 5);
    const seq = store.lastAuditSeq();
    expectCode(() => store.replaceKeyList(Uint8Array.of(9), version), 'CK_KEYLIST_ROLLBACK', /version \d is not newer than the current version 5/);
    expect(store.keyList()?.bytes).toEqual(Uint8Array.of(5));
    expect(store.keyListVersion()).toBe(5);
    expect(store.lastAuditSeq()).toBe(seq);
  });

  it('keeps refusing a rollback after a restart', () => {
    openStore().replaceKeyList(Uint8Array.of(7), 7);
    for (const store of openStores) store.close();
    openStores.clear();
    const store = openStore();
    expectCode(() => store.replaceKeyList(Uint8Array.of(6), 6), 'CK_KEYLIST_ROLLBACK');
    expect(store.replaceKeyList(Uint8Array.of(8), 8).keyList.version).toBe(8);
  });

  it.each([0, -1, 1.5, 2 ** 32, Number.NaN])('rejects the out-of-range version %s', (version) => {
    expectCode(() => openStore().replaceKeyList(Uint8Array.of(1), version), 'CK_CODEC_BAD_VALUE');
  });

  it('writes nothing when the audit entry cannot be recorded (one transaction)', () => {
    const store = openStore();
    const badFields = { nested: { not: 'flat' } } as unknown as Record<string, string>;
    expectCode(() => store.replaceKeyList(Uint8Array.of(1), 1, badFields), 'CK_CODEC_BAD_VALUE');
    expect(store.keyList()).toBeUndefined();
    expect(store.keyListVersion()).toBe(0);
    expect(store.lastAuditSeq()).toBe(0);
  });

  it('rolls back a whole atomically() block when a rollback is refused inside it', () => {
    const store = openStore();
    store.replaceKeyList(Uint8Array.of(3), 3);
    expectCode(
      () =>
        store.atomically(() => {
          store.appendAudit('sync', { step: 'received' });
          store.setMeta('sync.last', 'x');
          store.replaceKeyList(Uint8Array.of(2), 2);
        }),
      'CK_KEYLIST_ROLLBACK',
    );
    expect(store.lastAuditSeq()).toBe(1);
    expect(store.getMeta('sync.last')).toBeUndefined();
  });

  it('factory reset forgets the list and the advertising secret, starts the next epoch at version 0 and resets the time floor', () => {
    const store = openStore();
    store.replaceKeyList(Uint8Array.of(1), 0xffff_ffff);
    store.raiseTimeFloor(Date.UTC(2090, 0, 1));
    const secret = toHex(store.advertisingSecret());
    expect(store.keyListEpoch()).toBe(0);
    const entry = store.factoryReset({ trigger: 'keycard' }, Date.UTC(2026, 0, 1));
    expect(entry).toMatchObject({ kind: 'factory-reset', fields: { trigger: 'keycard', epoch: 1, previousEpoch: 0, previousVersion: 0xffff_ffff, hadKeyList: true } });
    expect(store.keyList()).toBeUndefined();
    expect(toHex(store.advertisingSecret())).not.toBe(secret);
    expect(store.keyListEpoch()).toBe(1);
    expect(store.keyListVersion()).toBe(0);
    expect(store.timeFloor()).toBe(Date.UTC(2026, 0, 1));
    // Lists of the old epoch can never come back; the new epoch starts at version 1.
    expectCode(() => store.replaceKeyList(Uint8Array.of(2), 5, {}, 0), 'CK_KEYLIST_WRONG_EPOCH');
    expect(store.replaceKeyList(Uint8Array.of(2), 1, {}, 1).keyList.version).toBe(1);
    expectCode(() => store.replaceKeyList(Uint8Array.of(2), 1, {}, 1), 'CK_KEYLIST_ROLLBACK');
    store.close();
    const reopened = openStore();
    expect([reopened.keyListEpoch(), reopened.keyListVersion()]).toEqual([1, 1]);
  });
});

describe('time floor and metadata', () => {
  it('never lowers the time floor, and keeps it across restarts', () => {
    const store = openStore();
    expect(store.timeFloor()).toBe(0);
    expect(store.raiseTimeFloor(1_000)).toBe(1_000);
    expect(store.raiseTimeFloor(500)).toBe(1_000);
    expect(store.raiseTimeFloor(1_000)).toBe(1_000);
    expect(store.raiseTimeFloor(2_000)).toBe(2_000);
    store.close();
    expect(openStore().timeFloor()).toBe(2_000);
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('rejects the time floor %s', (ms) => {
    expectCode(() => openStore().raiseTimeFloor(ms), 'CK_CODEC_BAD_VALUE');
  });

  it('round-trips typed metadata and refuses bad keys', () => {
    const store = openStore();
    const values = { 'pair.mode': true, 'pair.count': 3, 'pair.ratio': 0.5, 'owner.name': 'Ada', 'pair.nonce': Uint8Array.of(1, 2), 'pair.none': null };
    for (const [key, value] of Object.entries(values)) store.setMeta(key, value);
    store.close();
    const reopened = openStore();
    for (const [key, value] of Object.entries(values)) expect(reopened.getMeta(key)).toEqual(value);
    expect(reopened.getMeta('absent')).toBeUndefined();
    expect(reopened.deleteMeta('pair.mode')).toBe(true);
    expect(reopened.getMeta('pair.mode')).toBeUndefined();
    expectCode(() => reopened.setMeta('Bad Key', 1), 'CK_CODEC_BAD_VALUE');
    expectCode(() => reopened.setMeta('big', 'x'.repeat(5000)), 'CK_CODEC_BAD_VALUE');
  });
});

describe('audit log in the store', () => {
  it('checkpoints every N entries and at close, and verifies', () => {
    const store = openStore({ checkpointInterval: 4 });
    for (let i = 0; i < 10; i++) store.appendAudit('decision', { result: 'allow', n: i });
    expect(store.checkpoints().map((c) => c.seq)).toEqual([4, 8]);
    expect(store.verifyAuditInStore()).toMatchObject({ ok: true, value: { lastSeq: 10, lastCheckpointSeq: 8, uncovered: 2 } });
    store.close();
    const reopened = openStore({ checkpointInterval: 4 });
    expect(reopened.checkpoints().map((c) => c.seq)).toEqual([4, 8, 10]);
    reopened.appendAudit('boot', {});
    reopened.appendAudit('boot', {});
    expect(reopened.checkpoints().map((c) => c.seq)).toEqual([4, 8, 10, 12]);
    expect(reopened.verifyAuditInStore()).toMatchObject({ ok: true, value: { entries: 12, uncovered: 0 } });
    expect(verifyAuditDatabase(dir, crypto)).toMatchObject({ ok: true, value: { entries: 12 } });
  });

  it('reads entries by page', () => {
    const store = openStore();
    for (let i = 0; i < 7; i++) store.appendAudit('decision', { n: i });
    expect(store.readAudit({ fromSeq: 3, limit: 2 }).map((e) => [e.seq, e.fields['n']])).toEqual([
      [3, 2],
      [4, 3],
    ]);
    expect(store.readAudit().map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(store.readAudit({ fromSeq: 1 })[0]).toMatchObject({ time: clock, kind: 'decision' });
  });

  /** Write 10 entries (checkpoints at 4, 8, 10), close, apply raw SQL, verify read-only. */
  function tamperedVerification(sql: string): ReturnType<typeof verifyAuditDatabase> {
    const store = openStore({ checkpointInterval: 4 });
    for (let i = 0; i < 10; i++) store.appendAudit('decision', { result: 'allow', n: i });
    store.close();
    const db = new Database(join(dir, 'state.db'));
    try {
      db.pragma('foreign_keys = OFF'); // an attacker is not bound by our constraints
      db.exec(sql);
    } finally {
      db.close();
    }
    return verifyAuditDatabase(dir, crypto);
  }

  it.each([
    ['a changed field', `UPDATE audit_entry SET fields = '{"n":2,"result":"deny"}' WHERE seq = 3`, /entry seq 3: content/],
    ['a deleted entry', 'DELETE FROM audit_entry WHERE seq = 5', /entry seq 5 is missing/],
    ['a forged checkpoint', 'UPDATE audit_checkpoint SET signature = zeroblob(64) WHERE seq = 8', /checkpoint at seq 8: signature/],
    ['truncation below the last checkpoint', 'DELETE FROM audit_entry WHERE seq > 8', /checkpoint at seq 10 refers past the end/],
    ['non-JSON fields', `UPDATE audit_entry SET fields = 'nope' WHERE seq = 2`, /fields are not JSON/],
  ])('verifyAuditDatabase detects %s', (_name, sql, detail) => {
    const result = tamperedVerification(sql);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.message).toMatch(detail);
  });

  it('verifies against a pinned vehicle key when given one', () => {
    openStore().appendAudit('boot', {});
    for (const store of openStores) store.close();
    const otherKey = crypto.publicKeyFromSeed(new Uint8Array(32).fill(3));
    const result = verifyAuditDatabase(dir, crypto, { vehiclePublicKey: otherKey });
    expect(!result.ok && result.error.code).toBe('CK_AUDIT_CHAIN_BROKEN');
  });

  it('verifyAuditDatabase reports a missing store without creating it', () => {
    const result = verifyAuditDatabase(dir, crypto);
    expect(!result.ok && result.error.code).toBe('CK_STORE_IO');
    expect(existsSync(dir)).toBe(false);
  });
});

describe('schema and corruption', () => {
  it('refuses a database from a newer carkeyd', () => {
    openStore().close();
    openStores.clear();
    const db = new Database(join(dir, 'state.db'));
    db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (99, 0)').run();
    db.close();
    expectCode(() => openStore(), 'CK_STORE_CORRUPT', /schema version 99/);
  });

  it('refuses a state.db that is not a database, and releases the lock', () => {
    openStore().close();
    openStores.clear();
    writeFileSync(join(dir, 'state.db'), Buffer.alloc(8192, 0x5a), { mode: 0o600 });
    rmSync(join(dir, 'state.db-wal'), { force: true });
    rmSync(join(dir, 'state.db-shm'), { force: true });
    expectCode(() => openStore(), 'CK_STORE_CORRUPT');
    expectCode(() => openStore(), 'CK_STORE_CORRUPT');
  });
});

describe('single-instance lock', () => {
  interface Writer {
    readonly child: ChildProcess;
    readonly firstLine: Promise<string>;
    readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  }

  function startWriter(args: readonly string[]): Writer {
    if (!existsSync(WRITER)) throw new Error(`${WRITER} is missing: run npm run build`);
    const child = spawn(process.execPath, [WRITER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
      child.once('close', (code, signal) => {
        children.delete(child);
        done({ code, signal });
      });
    });
    const firstLine = new Promise<string>((done, reject) => {
      let buffered = '';
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.stdout?.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const newline = buffered.indexOf('\n');
        if (newline >= 0) done(buffered.slice(0, newline));
      });
      void exited.then(({ code }) => reject(new Error(`writer exited (${String(code)}) before a line: ${stderr}`)));
    });
    return { child, firstLine, exited };
  }

  it('refuses a second open in the same process, without dropping the first lock', async () => {
    const first = openStore();
    expectCode(() => VehicleStore.open(dir, options()), 'CK_STORE_LOCKED');
    // A refused attempt must not release the first holder's kernel lock.
    const other = startWriter([dir, 'hold']);
    expect(await other.firstLine).toBe('error CK_STORE_LOCKED');
    expect((await other.exited).code).toBe(4);
    first.appendAudit('boot', {});
    first.close();
    expect(() => openStore()).not.toThrow();
  });

  it('refuses while a live carkeyd holds the directory, recovers after it is SIGKILLed', async () => {
    const holder = startWriter([dir, 'hold']);
    expect(await holder.firstLine).toBe('ready 0 0');
    expectCode(() => openStore(), 'CK_STORE_LOCKED', /carkeyd\.lock/);
    // read-only verification works while the daemon runs
    expect(verifyAuditDatabase(dir, crypto).ok).toBe(true);
    holder.child.kill('SIGKILL');
    expect((await holder.exited).signal).toBe('SIGKILL');
    const store = openStore();
    expect(store.verifyAuditInStore().ok).toBe(true);
  });
});
