/**
 * Connection slots against holders of credentials that are not valid now,
 * through real processes (carkeyd, the sim radio, the body controller, the
 * `carkey` CLI): only a credential valid now holds a session; an expired
 * grant gets its sealed "expired" RESULT and loses the link; denied commands
 * do not keep a session alive; one link per key; a revocation ends an open
 * session at once; four phones with expired guest grants that keep coming
 * back and keep sending commands cannot keep the owner out.
 *
 * The owner's unlock latency is measured before and during the attack in
 * this test (same machine, same rig) and printed; the assertions are that
 * every owner unlock succeeds, with only a generous absolute bound on time.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex } from '../../src/core/bytes.js';
import { signGrant } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { ExitCode, isCarkeyError } from '../../src/core/errors.js';
import { KeyStore } from '../../src/phone/keystore.js';
import { decodeShare, encodeShare } from '../../src/phone/share.js';
import { hardwareCtl, runCli, startDaemonProcess, startRig, stopRig, type CarRig, type CliResult } from '../../firmware-sim/rig.js';
import { rawRequest, type RawOutcome } from '../helpers/raw-phone.js';
import { openRawSession, type RawSession } from '../helpers/raw-session.js';

const crypto = createCrypto('node');
const SESSION_IDLE_MS = 5000;
let rig: CarRig;
let ownerSeed: Uint8Array = new Uint8Array(32);

function carkey(home: string, ...args: string[]): Promise<CliResult> {
  return runCli('src/cli/carkey.js', ['--home', join(rig.dir, home), '--transport', 'sim', '--radio', rig.radio, '--quiet', ...args]);
}

const carKey = (): Uint8Array => fromHex(String(rig.daemon?.ready.vehicleKey)) ?? new Uint8Array(32);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function metrics(): Promise<string> {
  return (await fetch(`${String(rig.daemon?.ready.status)}/metrics`)).text();
}

function counter(text: string, event: string): number {
  const match = new RegExp(`carkey_connections_total\\{event="${event}"\\} (\\d+)`).exec(text);
  return match === null ? 0 : Number(match[1]);
}

/** A fresh phone key and a guest grant for it from the owner (via `carkey share`). */
/** A guest grant from the owner; a window that is already over (which `carkey share` refuses) is signed with the owner's key directly. */
async function guestGrant(from: string | undefined, until: string): Promise<{ seed: Uint8Array; grant: Uint8Array; serial: string; share: string }> {
  const seed = new Uint8Array(randomBytes(32));
  const publicKey = Buffer.from(crypto.publicKeyFromSeed(seed)).toString('hex');
  const over = Date.parse(until) <= Date.now();
  const share = await carkey('owner', 'share', '--role', 'guest', ...(from === undefined || over ? [] : ['--from', from]), '--until', over ? '+1d' : until, '--to', publicKey, '--json');
  expect(share.code, share.stderr).toBe(0);
  const bundle = decodeShare(crypto, (JSON.parse(share.stdout) as { share: string }).share);
  if (!bundle.ok) throw bundle.error;
  const old = bundle.value.grant;
  const grant = over
    ? signGrant(crypto, ownerSeed, { vehicleId: old.vehicleId, epoch: old.epoch, serial: new Uint8Array(randomBytes(8)), subject: old.subject, role: 'guest', permissions: old.permissions, notBefore: Date.parse(from ?? until) - (from === undefined ? 86_400_000 : 0), notAfter: Date.parse(until) })
    : old;
  return { seed, grant: grant.bytes, serial: Buffer.from(grant.serial).toString('hex'), share: encodeShare({ ...bundle.value, grant }) };
}

/** A guest grant for an existing phone key (its `carkey whoami` public key). */
async function guestGrantFor(publicKey: string, from: string, until: string): Promise<string> {
  const made = await guestGrant(from, until);
  const bundle = decodeShare(crypto, made.share);
  if (!bundle.ok) throw bundle.error;
  const old = bundle.value.grant;
  const subject = fromHex(publicKey);
  if (subject === undefined) throw new Error('bad public key');
  const grant = signGrant(crypto, ownerSeed, { vehicleId: old.vehicleId, epoch: old.epoch, serial: new Uint8Array(randomBytes(8)), subject, role: 'guest', permissions: old.permissions, notBefore: old.notBefore, notAfter: old.notAfter });
  return encodeShare({ ...bundle.value, grant });
}

function session(seed: Uint8Array, credential: { kind: 'owner' } | { kind: 'grant'; bytes: Uint8Array }, command: 'unlock' | 'status' = 'unlock'): Promise<RawSession> {
  return openRawSession({ crypto, radio: rig.radio, carIdentityKey: carKey(), identitySeed: seed, credential, command });
}

/** Connects the car turned away (every slot held a handshake in its grace), over all owner unlocks. */
let ownerConnectRetries = 0;

/**
 * One owner unlock as the phone does it: a link the car closes during setup (before any
 * command was sent) is retried, up to 3 attempts with 250/500 ms backoff (src/phone/client.ts).
 */
async function ownerUnlock(): Promise<{ ms: number; outcome: RawOutcome }> {
  const started = performance.now();
  for (let attempt = 1; ; attempt++) {
    try {
      const outcome = await rawRequest({ crypto, radio: rig.radio, carIdentityKey: carKey(), identitySeed: ownerSeed, credential: { kind: 'owner' }, command: 'unlock' });
      return { ms: performance.now() - started, outcome };
    } catch (error) {
      if (attempt >= 3 || !isCarkeyError(error, 'CK_TRANSPORT_CONNECT_FAILED')) throw error;
      ownerConnectRetries++;
      await sleep(250 * 2 ** (attempt - 1));
    }
  }
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};

const expired = (outcome: RawOutcome): boolean => outcome.kind === 'result' && outcome.result.status === 'denied' && outcome.result.category === 'expired';

describe('connection slots and credentials that are not valid now', () => {
  beforeAll(async () => {
    rig = await startRig({ config: { slots: 4, sessionIdleMs: SESSION_IDLE_MS } });
    await startDaemonProcess(rig);
    expect((await carkey('owner', 'keygen')).code).toBe(0);
    await hardwareCtl(rig, 'press-button');
    const pairing = carkey('owner', 'pair', '--yes');
    for (let i = 0; i < 100; i++) {
      const state = JSON.parse((await hardwareCtl(rig, 'state', '--json')).stdout) as { display: string[] };
      if (state.display.join(' ').includes('Hold button')) break;
      await sleep(100);
    }
    await hardwareCtl(rig, 'long-press');
    expect((await pairing).code).toBe(0);
    const store = new KeyStore(join(rig.dir, 'owner'), { crypto, random: (n) => new Uint8Array(randomBytes(n)), clock: () => Date.now(), sleep });
    ownerSeed = await store.unlockSeed(() => Promise.resolve(undefined));
  }, 60_000);

  afterAll(async () => {
    await stopRig(rig);
  });

  it('an expired grant gets its sealed "expired" RESULT, then the car drops the link at once', async () => {
    const guest = await guestGrant('2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z');
    const s = await session(guest.seed, { kind: 'grant', bytes: guest.grant });
    try {
      expect(s.first).toMatchObject({ kind: 'result', result: { status: 'denied', category: 'expired' } });
      // Well before any idle timeout (unauthenticated 3 s, session 5 s): the car closes it right after the RESULT.
      const closedBy = await Promise.race([s.closed, sleep(2000).then(() => 'still open')]);
      expect(closedBy).toBe('remote');
    } finally {
      await s.close();
    }
    // The CLI of that guest sees the same answer: denied (expired), not a dropped link.
    const home = 'late-guest';
    expect((await carkey(home, 'keygen')).code).toBe(0);
    const who = JSON.parse((await carkey(home, 'whoami', '--json')).stdout) as { publicKey: string };
    const share = await guestGrantFor(who.publicKey, '2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z');
    expect((await carkey(home, 'accept', share)).code).toBe(0);
    const unlock = await carkey(home, 'unlock', '--json');
    expect(unlock.code, unlock.stderr).toBe(ExitCode.denied);
    expect(unlock.stdout + unlock.stderr).toMatch(/expired/i);
  });

  it('denied commands do not keep a session alive', async () => {
    const guest = await guestGrant(undefined, '+1d');
    const s = await session(guest.seed, { kind: 'grant', bytes: guest.grant });
    try {
      expect(s.first).toMatchObject({ kind: 'result', result: { status: 'ok' } });
      // A guest may not open the trunk: every command below is denied (not-permitted) and must not re-arm the idle timer.
      const started = performance.now();
      let denied = 0;
      while (!s.isClosed() && performance.now() - started < SESSION_IDLE_MS + 5000) {
        const answer = await s.command('trunk');
        if (answer.kind === 'result' && answer.result.status === 'denied') denied++;
        await sleep(250);
      }
      expect(denied).toBeGreaterThan(5);
      expect(s.isClosed()).toBe(true);
      expect(await s.closed).toBe('remote');
    } finally {
      await s.close();
    }
  }, 30_000);

  it('one link per key: a second session of the same key replaces the first', async () => {
    const first = await session(ownerSeed, { kind: 'owner' }, 'status');
    const before = counter(await metrics(), 'replaced');
    try {
      expect(first.first).toMatchObject({ kind: 'result', result: { status: 'ok' } });
      const second = await session(ownerSeed, { kind: 'owner' }, 'status');
      try {
        expect(second.first).toMatchObject({ kind: 'result', result: { status: 'ok' } });
        expect(await first.closed).toBe('remote');
        expect(await second.command('status')).toMatchObject({ kind: 'result', result: { status: 'ok' } });
      } finally {
        await second.close();
      }
    } finally {
      await first.close();
    }
    expect(counter(await metrics(), 'replaced')).toBe(before + 1);
  });

  it('revoking a grant ends its open session at once (not at its next command)', async () => {
    const guest = await guestGrant(undefined, '+1d');
    const s = await session(guest.seed, { kind: 'grant', bytes: guest.grant }, 'status');
    const before = counter(await metrics(), 'credential-dropped');
    try {
      expect(s.first).toMatchObject({ kind: 'result', result: { status: 'ok' } });
      const revoke = await carkey('owner', 'revoke', guest.serial);
      expect(revoke.code, revoke.stderr).toBe(0);
      expect(await s.closed).toBe('remote');
    } finally {
      await s.close();
    }
    expect(counter(await metrics(), 'credential-dropped')).toBe(before + 1);
  }, 30_000);

  it('four phones with expired guest grants that keep sending commands cannot keep the owner out', async () => {
    const attackers = await Promise.all([0, 1, 2, 3].map(() => guestGrant('2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z')));
    // Baseline: the owner alone (one warm-up, then five measured unlocks).
    await ownerUnlock();
    const baseline: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { ms, outcome } = await ownerUnlock();
      expect(outcome).toMatchObject({ kind: 'result', result: { status: 'ok' } });
      baseline.push(ms);
    }
    const cliBaselineStarted = performance.now();
    expect((await carkey('owner', 'unlock')).code).toBe(0);
    const cliBaselineMs = performance.now() - cliBaselineStarted;
    const before = await metrics();
    const evictedBefore = counter(before, 'evicted') + counter(before, 'refused-full');

    let stop = false;
    const stats = { sessions: 0, expiredAnswers: 0, commandsSent: 0, longestHoldMs: 0 };
    const attack = async (attacker: { seed: Uint8Array; grant: Uint8Array }): Promise<void> => {
      while (!stop) {
        let s: RawSession;
        try {
          s = await session(attacker.seed, { kind: 'grant', bytes: attacker.grant });
        } catch {
          continue; // the car evicted us before we got anywhere; come straight back
        }
        stats.sessions++;
        const heldFrom = performance.now();
        if (expired(s.first)) stats.expiredAnswers++;
        // Hold on: keep the link busy with commands for as long as the car lets us.
        while (!stop && !s.isClosed()) {
          stats.commandsSent++;
          const answer = await s.command('status');
          if (expired(answer)) stats.expiredAnswers++;
          await sleep(200);
        }
        stats.longestHoldMs = Math.max(stats.longestHoldMs, performance.now() - heldFrom);
        await s.close();
      }
    };
    const running = attackers.map(attack);
    try {
      await sleep(1500); // let the four attackers take the slots
      const underAttack: number[] = [];
      for (let i = 0; i < 5; i++) {
        const { ms, outcome } = await ownerUnlock();
        expect(outcome, `owner unlock ${i} under attack`).toMatchObject({ kind: 'result', result: { status: 'ok' } });
        underAttack.push(ms);
      }
      const cliStarted = performance.now();
      const cli = await carkey('owner', 'unlock');
      const cliMs = performance.now() - cliStarted;
      expect(cli.code, cli.stderr).toBe(0);

      const report = {
        baselineMs: baseline.map(Math.round),
        underAttackMs: underAttack.map(Math.round),
        baselineMedianMs: Math.round(median(baseline)),
        underAttackMedianMs: Math.round(median(underAttack)),
        ratio: Math.round((median(underAttack) / median(baseline)) * 100) / 100,
        cliUnlockBaselineMs: Math.round(cliBaselineMs),
        cliUnlockUnderAttackMs: Math.round(cliMs),
        ownerConnectRetries,
        attacker: { ...stats, longestHoldMs: Math.round(stats.longestHoldMs) },
      };
      process.stdout.write(`owner unlock latency, baseline vs four expired-grant attackers: ${JSON.stringify(report)}\n`);
      // Generous absolute bound only (the ratio is reported above, not asserted: it depends on the machine's load).
      expect(Math.max(...underAttack)).toBeLessThan(10_000);
    } finally {
      stop = true;
      await Promise.all(running);
    }
    // The attackers were told "expired" (sealed RESULTs reached them) and never held a link for long.
    expect(stats.expiredAnswers).toBeGreaterThan(0);
    expect(stats.longestHoldMs).toBeLessThan(3000);
    const after = await metrics();
    // The slot rules acted on the attackers: displaced (evicted), or turned away while every
    // slot held a handshake in its grace (refused-full); every owner unlock above still succeeded.
    expect(counter(after, 'evicted') + counter(after, 'refused-full')).toBeGreaterThan(evictedBefore);
    expect(rig.daemon?.child.exitCode).toBe(null);
  }, 120_000);
});
