/**
 * Denial of service (issue 12), against real processes: carkeyd syncing with
 * a real `carkey-cloud serve` (test/integration/chaos-rig.ts), the sim radio
 * broker, the body controller and the owner's `carkey unlock` CLI.
 *
 * Attacks, each held for a whole block of owner unlocks, each taking every
 * slot but the owner's (the car has 4) and coming back the moment it is
 * dropped:
 * - idle: links that connect and say nothing;
 * - junk: links that write random chunks and random framed messages as fast
 *   as the radio takes them;
 * - slot pressure: attackers that send a genuine HELLO (a fresh key the car
 *   does not know), take their CHALLENGE and hold the link mid-handshake;
 * - cloud flood: concurrent clients flooding carkey-cloud with correctly
 *   signed requests from one valid identity;
 * - all at once, one link of each kind, with the flood.
 * - churn: more reconnecting attackers than the free slots (idle, mid-
 *   handshake, junk, and a mix); held off by the car's handshake grace and
 *   the phone's retries within its deadline (docs/testing.md). Skipped with
 *   CARKEY_DOS_CHURN=0.
 *
 * Asserted: every owner unlock exits 0; each attack really ran (links
 * opened, chunks written, signed requests answered) and the car's metrics
 * show its defences acting (idle drops, evictions, refusals); under the
 * flood the cloud answers 429 with a catalog error body, never a 5xx, and
 * /health stays 200; carkeyd is still running at the end. Reported, not
 * asserted: the owner's unlock latency under each attack against a baseline
 * measured in the same run (p50, max, ratio), printed as a table.
 *
 * Size: CARKEY_DOS_RUNS unlocks per block (5 in `npm test`, 25 in
 * `npm run soak`). Needs `npm run build`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRequest } from '../../src/core/cloud-auth.js';
import { PhoneSession } from '../../src/core/phone-session.js';
import { Attackers, type AttackLink } from '../helpers/radio-attacker.js';
import { crypto, pct, random, startCloudCar, type CloudCar } from './chaos-rig.js';

const RUNS = Math.max(1, Number(process.env.CARKEY_DOS_RUNS ?? '5'));
/** The rig's car has 4 slots (config default); the attacks in `npm test` take all but the owner's. */
const FREE_SLOTS = 3;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let car: CloudCar;
let attackers: Attackers;
const rows: { attack: string; runs: number[]; detail: string }[] = [];

async function metric(name: string, label: string): Promise<number> {
  const text = await (await fetch(`${String(car.rig.daemon?.ready.status)}/metrics`)).text();
  const escaped = label.replace(/[{}"=]/g, (c) => `\\${c}`);
  let total = 0;
  for (const line of text.split('\n')) if (new RegExp(`^${name}${escaped}`).test(line)) total += Number(line.split(' ').at(-1));
  return total;
}

interface AttackStats {
  links: number;
  unreachable: number;
  chunks: number;
  challenges: number;
  dropped: number;
}

/** Run `workers` copies of `body` (each with its own radio) until stopped. */
function radioAttack(workers: number, body: (link: AttackLink, stats: AttackStats, stopped: () => boolean) => Promise<void>): { stats: AttackStats; stop: () => Promise<void> } {
  const stats: AttackStats = { links: 0, unreachable: 0, chunks: 0, challenges: 0, dropped: 0 };
  let stop = false;
  const worker = async (): Promise<void> => {
    const central = attackers.central();
    while (!stop) {
      const link = await attackers.connect(central);
      if (link === undefined) {
        stats.unreachable++;
        await sleep(50);
        continue;
      }
      stats.links++;
      await body(link, stats, () => stop);
      if ((await link.waitClosed(stop ? 0 : 10_000)) === 'remote') stats.dropped++;
      await link.close();
    }
  };
  const running = Array.from({ length: workers }, worker);
  return {
    stats,
    stop: async () => {
      stop = true;
      await Promise.all(running);
    },
  };
}

/** Wait until the car drops the link (or the attack stops). */
async function hold(link: AttackLink, stopped: () => boolean): Promise<void> {
  while (!stopped() && (await link.waitClosed(200)) === 'timeout');
}

const idleBody = (link: AttackLink, _stats: AttackStats, stopped: () => boolean): Promise<void> => hold(link, stopped);

async function junkBody(link: AttackLink, stats: AttackStats, stopped: () => boolean): Promise<void> {
  while (!stopped() && !link.isClosed) {
    const junk = new Uint8Array(randomBytes(1 + (randomBytes(1)[0] ?? 0)));
    const chunks = (junk[0] ?? 0) % 2 === 0 ? link.chunksOf(junk) : [junk.subarray(0, Math.max(1, link.link.mtu() - 3))];
    stats.chunks += chunks.length;
    await link.writeChunks(chunks);
  }
}

async function slotBody(link: AttackLink, stats: AttackStats, stopped: () => boolean): Promise<void> {
  const session = new PhoneSession({ crypto, random, identitySeed: random(32), carIdentityKey: crypto.publicKeyFromSeed(random(32)) });
  const hello = link.chunksOf(session.start());
  stats.chunks += hello.length;
  await link.writeChunks(hello);
  for (let i = 0; i < 20 && link.fromCar.length === 0 && !link.isClosed; i++) await sleep(25);
  if (link.fromCar[0]?.[1] === 0x02) stats.challenges++;
  await hold(link, stopped);
}

interface FloodStats {
  sent: number;
  ok: number;
  limited: number;
  serverErrors: number;
  otherErrors: number;
  badBodies: number;
  healthFailures: number;
}

/** Concurrent loops of signed GET /v1/mailbox from one valid identity, plus a /health probe. */
function cloudFlood(clients: number): { stats: FloodStats; stop: () => Promise<void> } {
  const stats: FloodStats = { sent: 0, ok: 0, limited: 0, serverErrors: 0, otherErrors: 0, badBodies: 0, healthFailures: 0 };
  const seed = random(32);
  let stop = false;
  const loop = async (): Promise<void> => {
    while (!stop) {
      const headers = signRequest(crypto, random, seed, { method: 'GET', path: '/v1/mailbox', query: '', body: new Uint8Array(0) }, Date.now());
      stats.sent++;
      try {
        const response = await fetch(`${car.cloudUrl}/v1/mailbox`, { headers });
        const text = await response.text();
        if (response.status === 200) stats.ok++;
        else if (response.status === 429) {
          stats.limited++;
          if (!/"code":"CK_[A-Z_]+"/.test(text)) stats.badBodies++;
        } else if (response.status >= 500) stats.serverErrors++;
        else stats.otherErrors++;
      } catch {
        stats.otherErrors++;
      }
    }
  };
  const health = async (): Promise<void> => {
    while (!stop) {
      const response = await fetch(`${car.cloudUrl}/health`).catch(() => undefined);
      if (response?.status !== 200) stats.healthFailures++;
      await response?.text();
      await sleep(250);
    }
  };
  const running = [...Array.from({ length: clients }, loop), health()];
  return {
    stats,
    stop: async () => {
      stop = true;
      await Promise.all(running);
    },
  };
}

async function ownerUnlocks(attack: string, detail: () => string): Promise<number[]> {
  const runs: number[] = [];
  const failures: string[] = [];
  for (let i = 0; i < RUNS; i++) {
    const run = await car.unlock();
    runs.push(run.ms);
    if (run.code !== 0) failures.push(`${attack} run ${i} (${Math.round(run.ms)} ms): exit ${run.code} ${run.stderr.trim().split('\n').join(' | ')}`);
  }
  rows.push({ attack, runs, detail: detail() });
  expect(failures).toEqual([]);
  return runs;
}

describe('DoS: the owner still unlocks while the car and the cloud are attacked', () => {
  beforeAll(async () => {
    car = await startCloudCar();
    attackers = new Attackers(car.rig.radio);
  }, 120_000);

  afterAll(async () => {
    await attackers?.closeAll();
    await car?.stop();
    if (rows.length > 0) {
      const base = pct(rows[0]?.runs ?? [], 0.5);
      const table = rows.map((row) => {
        const p50 = pct(row.runs, 0.5);
        return `  ${row.attack.padEnd(16)} p50 ${p50.toFixed(0).padStart(5)} ms  max ${Math.max(...row.runs).toFixed(0).padStart(5)} ms  ×${(p50 / base).toFixed(2)} vs baseline (n=${row.runs.length})  ${row.detail}`;
      });
      process.stdout.write(`\ncarkey unlock (process start → exit) under each attack vs baseline, same run:\n${table.join('\n')}\n`);
    }
  });

  it('baseline: the owner unlocks with nothing attacking', async () => {
    await car.unlock(); // warm-up
    await ownerUnlocks('baseline', () => '');
  }, 120_000);

  it('idle links: three links (every slot but the owner\'s) connect, say nothing, come back when dropped', async () => {
    const before = await metric('carkey_connections_total', '{event="idle-dropped"}');
    const attack = radioAttack(FREE_SLOTS, idleBody);
    try {
      await sleep(1000);
      await ownerUnlocks('idle links', () => JSON.stringify(attack.stats));
    } finally {
      await attack.stop();
    }
    expect(attack.stats.links).toBeGreaterThan(FREE_SLOTS);
    expect((await metric('carkey_connections_total', '{event="idle-dropped"}')) + (await metric('carkey_connections_total', '{event="evicted"}'))).toBeGreaterThan(before);
  }, 240_000);

  it('junk floods on three links that come back when dropped', async () => {
    const before = await metric('carkey_refusals_total', '');
    const attack = radioAttack(FREE_SLOTS, junkBody);
    try {
      await sleep(1000);
      await ownerUnlocks('junk flood', () => JSON.stringify(attack.stats));
    } finally {
      await attack.stop();
    }
    expect(attack.stats.links).toBeGreaterThan(3);
    expect(attack.stats.chunks).toBeGreaterThanOrEqual(attack.stats.links);
    expect(attack.stats.dropped).toBeGreaterThan(0);
    expect(await metric('carkey_refusals_total', '')).toBeGreaterThan(before);
  }, 240_000);

  it('slot pressure: three attackers hold links mid-handshake (a fresh key, a genuine HELLO) and come back when dropped', async () => {
    const before = (await metric('carkey_connections_total', '{event="evicted"}')) + (await metric('carkey_connections_total', '{event="idle-dropped"}'));
    const attack = radioAttack(FREE_SLOTS, slotBody);
    try {
      await sleep(1500);
      await ownerUnlocks('slot pressure', () => JSON.stringify(attack.stats));
    } finally {
      await attack.stop();
    }
    expect(attack.stats.challenges).toBeGreaterThan(0);
    expect((await metric('carkey_connections_total', '{event="evicted"}')) + (await metric('carkey_connections_total', '{event="idle-dropped"}'))).toBeGreaterThan(before);
  }, 240_000);

  it('cloud flood: signed requests from one valid identity get 429, never a 5xx; /health stays up', async () => {
    const flood = cloudFlood(8);
    try {
      await sleep(1000);
      await ownerUnlocks('cloud flood', () => JSON.stringify(flood.stats));
      // On a slow machine the block may end before the key's budget (600 a minute) is spent: keep flooding until it is.
      for (let i = 0; i < 600 && flood.stats.limited === 0; i++) await sleep(100);
    } finally {
      await flood.stop();
    }
    expect(flood.stats.ok).toBeGreaterThan(0);
    expect(flood.stats.limited).toBeGreaterThan(0);
    expect(flood.stats.serverErrors).toBe(0);
    expect(flood.stats.badBodies).toBe(0);
    expect(flood.stats.healthFailures).toBe(0);
    expect((await fetch(`${car.cloudUrl}/health`)).status).toBe(200);
  }, 240_000);

  it('everything at once (one idle link, one junk link, one slot holder, the cloud flood)', async () => {
    const radio = [radioAttack(1, idleBody), radioAttack(1, junkBody), radioAttack(1, slotBody)];
    const flood = cloudFlood(4);
    try {
      await sleep(1500);
      await ownerUnlocks('all at once', () => `links ${radio.reduce((n, a) => n + a.stats.links, 0)}, cloud 429s ${flood.stats.limited}, 5xx ${flood.stats.serverErrors}`);
    } finally {
      await Promise.all([...radio.map((a) => a.stop()), flood.stop()]);
    }
    expect(flood.stats.serverErrors).toBe(0);
    expect(car.rig.daemon?.child.exitCode).toBe(null);
    expect(car.cloud.child.exitCode).toBe(null);
    expect(car.rig.daemon?.stderr() ?? '').not.toMatch(/unhandled|uncaught/i);
  }, 240_000);

  // More reconnecting attackers than the slots left free beside the owner (docs/testing.md). Before
  // the handshake grace (src/vehicle/daemon.ts HANDSHAKE_GRACE_MS) a chain of evictions reached the
  // owner's link within a few connects, often after its REQUEST went out; now a link mid-handshake
  // keeps its slot, a newcomer that finds only such links is turned away, and the phone retries
  // that within its deadline.
  const churn = [
    { name: 'churn: six idle links', idle: 6, junk: 0, slot: 0 },
    { name: 'churn: six links held mid-handshake', idle: 0, junk: 0, slot: 6 },
    { name: 'churn: four junk links', idle: 0, junk: 4, slot: 0 },
    { name: 'churn: junk links beside slot holders', idle: 3, junk: 2, slot: 3 },
  ];
  for (const c of churn) {
    it.skipIf(process.env.CARKEY_DOS_CHURN === '0')(c.name, async () => {
      const radio = [radioAttack(c.idle, idleBody), radioAttack(c.junk, junkBody), radioAttack(c.slot, slotBody)];
      try {
        await sleep(1500);
        await ownerUnlocks(c.name.replace('churn: ', 'churn '), () => `links ${radio.reduce((n, a) => n + a.stats.links, 0)}`);
      } finally {
        await Promise.all(radio.map((a) => a.stop()));
      }
    }, 240_000);
  }
});
