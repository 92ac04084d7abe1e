/**
 * The sync worker's small parts: backoff with injected jitter, the circuit
 * breaker on an injected clock, pauses and wakers, sync.db (durable, private,
 * bounded), the `cloud` config section, and MQTT notice parsing.
 */
import { getEventListeners } from 'node:events';
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { CarkeyError } from '../../../src/core/errors.js';
import { CLOUD_DEFAULTS, resolveConfig } from '../../../src/vehicle/config.js';
import { Backoff, CircuitBreaker } from '../../../src/vehicle/sync/backoff.js';
import { parseNotice } from '../../../src/vehicle/sync/mqtt-notices.js';
import { pause, Waker } from '../../../src/vehicle/sync/pause.js';
import { MAX_SEEN_COMMANDS, SyncDb } from '../../../src/vehicle/sync/sync-db.js';
import { openCar, random, removeCar, type TestCar } from './car-fixture.js';

describe('backoff', () => {
  it('doubles its ceiling up to the cap and draws the delay with the injected jitter', () => {
    const draws = [0.5, 0.999, 0, 0.25, 0.5, 0.5, 0.5];
    const backoff = new Backoff({ baseMs: 100, capMs: 1000, random: () => draws.shift() ?? 0.5 });
    const delays = Array.from({ length: 7 }, () => backoff.next());
    expect(delays).toEqual([50, 199, 0, 200, 500, 500, 500]);
    backoff.reset();
    expect(backoff.ceilingMs).toBe(100);
  });

  it('a broken random source cannot produce a negative or endless delay', () => {
    expect(new Backoff({ baseMs: 100, capMs: 1000, random: () => Number.NaN }).next()).toBe(50);
    expect(new Backoff({ baseMs: 100, capMs: 1000, random: () => 7 }).next()).toBe(100);
    expect(new Backoff({ baseMs: 100, capMs: 1000, random: () => -3 }).next()).toBe(0);
  });
});

describe('circuit breaker', () => {
  it('opens after the threshold, lets one probe through after the cool-down, doubles it on a failed probe, closes on success', () => {
    let now = 0;
    const breaker = new CircuitBreaker({ threshold: 3, openMs: 1000, maxOpenMs: 3000, monotonic: () => now });
    for (let i = 0; i < 2; i++) breaker.failure();
    expect(breaker.state).toBe('closed');
    breaker.failure();
    expect(breaker.state).toBe('open');
    expect(breaker.allow()).toBe(false);
    expect(breaker.waitMs()).toBe(1000);
    now = 1000;
    expect(breaker.state).toBe('half-open');
    expect(breaker.allow()).toBe(true);
    expect(breaker.allow()).toBe(false); // one probe at a time
    breaker.failure();
    expect(breaker.state).toBe('open');
    expect(breaker.waitMs()).toBe(2000);
    now = 3000;
    expect(breaker.allow()).toBe(true);
    breaker.failure();
    expect(breaker.waitMs()).toBe(3000); // capped
    now = 6000;
    expect(breaker.allow()).toBe(true);
    breaker.success();
    expect(breaker.state).toBe('closed');
    expect(breaker.allow()).toBe(true);
  });

  it('a success in between resets the count', () => {
    const breaker = new CircuitBreaker({ threshold: 2, openMs: 1000, maxOpenMs: 1000, monotonic: () => 0 });
    breaker.failure();
    breaker.success();
    breaker.failure();
    expect(breaker.state).toBe('closed');
  });
});

describe('pause', () => {
  it('ends on a wake, on stop, and keeps a wake that came while nobody waited', async () => {
    const waker = new Waker();
    const stop = new AbortController();
    const waiting = pause(60_000, stop.signal, waker);
    waker.notify();
    expect(await waiting).toBe('woken');
    waker.notify();
    expect(await pause(60_000, stop.signal, waker)).toBe('woken');
    const stopped = pause(60_000, stop.signal, waker);
    stop.abort();
    expect(await stopped).toBe('stopped');
    expect(await pause(1, new AbortController().signal)).toBe('timeout');
  });

  it('leaves no listener behind', async () => {
    const stop = new AbortController();
    const waker = new Waker();
    for (let i = 0; i < 50; i++) await pause(0, stop.signal, waker);
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(0);
    // Had a finished pause left its waiter on the waker, this notification would go to it, not to the next pause.
    waker.notify();
    expect(await pause(5_000, stop.signal, waker)).toBe('woken');
  });
});

describe('sync.db', () => {
  let car: TestCar | undefined;
  afterEach(() => {
    if (car !== undefined) removeCar(car);
    car = undefined;
  });

  it('is its own file, mode 0600, WAL with synchronous=FULL, and keeps everything across a reopen', () => {
    car = openCar();
    const dir = car.store.layout.dir;
    const db = SyncDb.open(dir, { outboxMax: 4 });
    const id = random(16);
    const caller = random(32);
    expect(db.claimCommand(id, caller, Date.now() + 60_000, Date.now())).toBe('claimed');
    db.completeCommand(id, new Uint8Array([1, 2, 3]), Date.now());
    db.setUploadedSeq(42);
    db.setMeta('keyList.refused', 'abc');
    db.close();
    const path = join(dir, 'sync.db');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const raw = new Database(path, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
    const again = SyncDb.open(dir, { outboxMax: 4 });
    expect(again.uploadedSeq()).toBe(42);
    expect(again.getMeta('keyList.refused')).toBe('abc');
    expect(again.outbox().map((e) => [...e.box])).toEqual([[1, 2, 3]]);
    expect(again.claimCommand(id, caller, Date.now() + 60_000, Date.now())).toBe('seen');
    again.close();
  });

  it('bounds the outbox: running and undelivered commands count; nothing is dropped to make room', () => {
    car = openCar();
    const db = SyncDb.open(car.store.layout.dir, { outboxMax: 2 });
    const a = random(16);
    const b = random(16);
    expect(db.claimCommand(a, random(32), Date.now() + 1000, Date.now())).toBe('claimed');
    expect(db.claimCommand(b, random(32), Date.now() + 1000, Date.now())).toBe('claimed');
    expect(db.claimCommand(random(16), random(32), Date.now() + 1000, Date.now())).toBe('full');
    db.completeCommand(a, new Uint8Array([1]), Date.now());
    expect(db.claimCommand(random(16), random(32), Date.now() + 1000, Date.now())).toBe('full');
    db.removeResult(a);
    expect(db.claimCommand(random(16), random(32), Date.now() + 1000, Date.now())).toBe('claimed');
    db.close();
  });

  it('forgets a command id only well after its command expired', () => {
    car = openCar();
    const db = SyncDb.open(car.store.layout.dir, { outboxMax: 100 });
    const old = random(16);
    const t = Date.now();
    db.claimCommand(old, random(32), t - 3 * 3600_000, t - 3 * 3600_000);
    db.completeCommand(old, new Uint8Array([1]), t);
    db.removeResult(old);
    // a later claim prunes ids expired more than SEEN_RETENTION_MS ago
    db.claimCommand(random(16), random(32), t + 1000, t);
    expect(db.claimCommand(old, random(32), t - 3 * 3600_000, t)).toBe('claimed');
    const recent = random(16);
    db.claimCommand(recent, random(32), t - 60_000, t);
    db.completeCommand(recent, new Uint8Array([1]), t);
    db.removeResult(recent);
    db.claimCommand(random(16), random(32), t + 1000, t);
    expect(db.claimCommand(recent, random(32), t - 60_000, t)).toBe('seen');
    expect(MAX_SEEN_COMMANDS).toBeGreaterThan(1000);
    db.close();
  });

  it('a sync.db readable by others, or not a sync.db, is refused with a catalog error', () => {
    car = openCar();
    const path = join(car.store.layout.dir, 'sync.db');
    const raw = new Database(path);
    raw.pragma('user_version = 77');
    raw.close();
    const dir = car.store.layout.dir;
    expect(() => SyncDb.open(dir, { outboxMax: 1 })).toThrow(expect.objectContaining({ code: 'CK_STORE_INSECURE_PERMISSIONS' }) as Error);
    chmodSync(path, 0o600);
    expect(() => SyncDb.open(dir, { outboxMax: 1 })).toThrow(expect.objectContaining({ code: 'CK_STORE_CORRUPT' }) as Error);
  });
});

describe('the cloud config section', () => {
  it('absent means no cloud; present fills the documented defaults (remote unlock and start off)', () => {
    expect(resolveConfig({}, {}).cloud).toBeUndefined();
    const config = resolveConfig({ cloud: { url: 'https://cloud.example' } }, {});
    expect(config.cloud).toEqual({ ...CLOUD_DEFAULTS, url: 'https://cloud.example' });
    expect(config.cloud?.remote).toEqual({ lock: true, status: true, unlock: false, start: false, trunk: false });
  });

  it('takes every option', () => {
    const cloud = resolveConfig({ cloud: { url: 'http://127.0.0.1:8443', mode: 'mqtt', mqttUrl: 'mqtt://127.0.0.1:1883', pollIntervalMs: 5000, longPollSeconds: 60, requestTimeoutMs: 3000, auditUpload: false, auditUploadIntervalMs: 10_000, remote: { unlock: true, lock: false }, outboxMaxEntries: 10 } }, {}).cloud;
    expect(cloud).toMatchObject({ mode: 'mqtt', mqttUrl: 'mqtt://127.0.0.1:1883', longPollSeconds: 60, auditUpload: false, outboxMaxEntries: 10, remote: { unlock: true, lock: false, status: true, start: false, trunk: false } });
  });

  it.each([
    [{ url: 'ftp://x' }, 'cloud.url'],
    [{ url: 'https://user:pw@x' }, 'cloud.url'],
    [{}, 'cloud.url is required'],
    [{ url: 'https://x', mode: 'push' }, 'cloud.mode'],
    [{ url: 'https://x', mode: 'mqtt' }, 'cloud.mqttUrl is required'],
    [{ url: 'https://x', mqttUrl: 'mqtt://x' }, 'only used with'],
    [{ url: 'https://x', longPollSeconds: 61 }, 'cloud.longPollSeconds'],
    [{ url: 'https://x', longPollSeconds: 0 }, 'cloud.longPollSeconds'],
    [{ url: 'https://x', auditUpload: 'yes' }, 'cloud.auditUpload'],
    [{ url: 'https://x', outboxMaxEntries: 0 }, 'cloud.outboxMaxEntries'],
    [{ url: 'https://x', remote: { passiveUnlock: true } }, 'never carried out remotely'],
    [{ url: 'https://x', remote: { keyListPush: true } }, 'never carried out remotely'],
    [{ url: 'https://x', remote: { honk: true } }, 'unknown setting "cloud.remote.honk"'],
    [{ url: 'https://x', remote: { unlock: 1 } }, 'cloud.remote.unlock'],
    [{ url: 'https://x', pollIntervalMS: 5 }, 'unknown setting "cloud.pollIntervalMS"'],
    ['https://x', 'cloud'],
  ])('refuses %j (%s)', (cloud, message) => {
    try {
      resolveConfig({ cloud }, {});
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(CarkeyError);
      expect((error as CarkeyError).code).toBe('CK_CONFIG_INVALID');
      expect((error as CarkeyError).message).toContain(message);
    }
  });
});

describe('mqtt notices', () => {
  it('only the documented shapes wake the worker', () => {
    const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
    expect(parseNotice(enc('{"changed":"key-list"}'))).toBe('key-list');
    expect(parseNotice(enc('{"changed":"commands"}'))).toBe('commands');
    for (const bad of ['{"changed":"audit"}', '[]', 'null', 'not json', '{"changed":1}', `{"changed":"key-list","pad":"${'x'.repeat(2000)}"}`]) expect(parseNotice(enc(bad))).toBeUndefined();
    expect(parseNotice(new Uint8Array([0xff, 0xfe]))).toBeUndefined();
  });
});
