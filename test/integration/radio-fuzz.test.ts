/**
 * Radio fuzz into a running carkeyd (issue 12): genuine owner sessions are
 * recorded over the sim radio against the real car process, then attacker
 * links send mutations of those frames (byte, sequence and chunk edits from
 * test/helpers/frame-mutator.ts, replays of whole recorded sessions, the
 * car's own frames reflected, pure random frames) through the sim radio
 * broker into carkeyd, a few links at a time, with one owner `carkey unlock`
 * in the middle of the storm.
 *
 * Asserted per link: the car said nothing but the generic REFUSE and at most
 * one CHALLENGE (its answer to a first, well-formed HELLO) — never a RESULT,
 * never a pairing message — and the car itself closed the link (refusal or
 * idle drop). After the storm: carkeyd is still running, its status server
 * answers /health and /metrics (with the refusals counted), the owner
 * unlocks with the real CLI, and its stderr holds no unhandled rejection,
 * uncaught exception or "link handler error".
 *
 * Size: CARKEY_RADIO_FUZZ_LINKS links (90 in `npm test`, 1,500 in `npm run
 * soak`); case i uses seed CARKEY_FUZZ_SEED + i (printed on failure).
 * Needs `npm run build`.
 */
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hardwareCtl, runCli, startDaemonProcess, startRig, stopRig, type CarRig, type CliResult } from '../../firmware-sim/rig.js';
import { equalBytes, fromHex } from '../../src/core/bytes.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { CLEAR_LENGTH, MessageType, REFUSE_BYTES } from '../../src/core/messages.js';
import { KeyStore } from '../../src/phone/keystore.js';
import { PROPERTY_SEED } from '../helpers/core-harness.js';
import { FuzzRandom, mutateChunks, mutateSequence, randomFrame } from '../helpers/frame-mutator.js';
import { Attackers, recordSession, type RecordedSession } from '../helpers/radio-attacker.js';

const LINKS = Math.max(1, Number(process.env.CARKEY_RADIO_FUZZ_LINKS ?? '90'));
const SEED = Number(process.env.CARKEY_FUZZ_SEED ?? String(PROPERTY_SEED));
const WORKERS = 3;
const crypto = createCrypto('node');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let rig: CarRig;
let ownerSeed: Uint8Array = new Uint8Array(32);
let attackers: Attackers;

function carkey(...args: string[]): Promise<CliResult> {
  return runCli('src/cli/carkey.js', ['--home', join(rig.dir, 'owner'), '--transport', 'sim', '--radio', rig.radio, '--quiet', ...args]);
}

const carKey = (): Uint8Array => fromHex(String(rig.daemon?.ready.vehicleKey)) ?? new Uint8Array(32);
const status = (): string => String(rig.daemon?.ready.status);

function isChallenge(message: Uint8Array): boolean {
  return message[0] === 1 && message[1] === MessageType.challenge && message.length === CLEAR_LENGTH[MessageType.challenge];
}

describe('radio fuzz: mutated recorded frames over the sim radio into a running carkeyd', () => {
  const recordings: RecordedSession[] = [];

  beforeAll(async () => {
    rig = await startRig({ config: { slots: 4, idleTimeoutMs: 1000 } });
    await startDaemonProcess(rig);
    expect((await carkey('keygen')).code).toBe(0);
    await hardwareCtl(rig, 'press-button');
    const pairing = carkey('pair', '--yes');
    for (let i = 0; i < 100; i++) {
      const state = JSON.parse((await hardwareCtl(rig, 'state', '--json')).stdout) as { display: string[] };
      if (state.display.join(' ').includes('Hold button')) break;
      await sleep(100);
    }
    await hardwareCtl(rig, 'long-press');
    expect((await pairing).code).toBe(0);
    const store = new KeyStore(join(rig.dir, 'owner'), { crypto, random: (n) => new Uint8Array(randomBytes(n)), clock: () => Date.now(), sleep });
    ownerSeed = await store.unlockSeed(() => Promise.resolve(undefined));
    attackers = new Attackers(rig.radio);
    const record = (commands: Parameters<typeof recordSession>[0]['commands']): Promise<RecordedSession> =>
      recordSession({ crypto, radio: rig.radio, carIdentityKey: carKey(), identitySeed: ownerSeed, credential: { kind: 'owner' }, commands });
    recordings.push(await record(['unlock', 'lock', 'status']));
    recordings.push(await record(['status']));
    recordings.push(await record(['honk', 'flash', 'trunk']));
  }, 90_000);

  afterAll(async () => {
    ownerSeed.fill(0);
    await attackers?.closeAll();
    await stopRig(rig);
  });

  it('the recordings are genuine (the car answered every command ok)', () => {
    expect(recordings.map((r) => r.statuses)).toEqual([['ok', 'ok', 'ok'], ['ok'], ['ok', 'ok', 'ok']]);
  });

  it(`${LINKS} attacker links: only REFUSE or a first CHALLENGE back, every link dropped by the car; carkeyd up, owner unlocks, no unhandled rejection`, async () => {
    const phoneFrames = recordings.flatMap((r) => r.sent);
    const carFrames = recordings.flatMap((r) => r.received);
    const stats = { links: 0, unreachable: 0, frames: 0, chunks: 0, refusals: 0, challenges: 0, failedWrites: 0 };
    const problems: string[] = [];
    let next = 0;
    let ownerDuring: CliResult | undefined;

    const runLink = async (index: number, central: ReturnType<Attackers['central']>): Promise<void> => {
      const seed = SEED + index;
      const r = new FuzzRandom(seed);
      const base = r.pick(recordings);
      const mode = r.below(100);
      const frames = mode < 5 ? [...base.sent] : mode < 15 ? Array.from({ length: 1 + r.below(4) }, () => randomFrame(r)) : mutateSequence(r, base.sent, 1 + r.below(3), phoneFrames, carFrames).frames;
      const attack = await attackers.connect(central, r.pick([23, 64, 185, 247]));
      if (attack === undefined) {
        stats.unreachable++;
        return;
      }
      stats.links++;
      for (const frame of frames) {
        let chunks = frame.length === 0 ? [Uint8Array.of(0x80, 0, 0)] : attack.chunksOf(frame);
        if (r.chance(0.3)) chunks = mutateChunks(r, chunks).chunks;
        stats.frames++;
        stats.chunks += chunks.length;
        await attack.writeChunks(chunks);
      }
      const end = await attack.waitClosed(6000);
      stats.failedWrites += attack.failedWrites;
      const said = attack.fromCar;
      const where = `link ${index} (rerun with CARKEY_FUZZ_SEED=${SEED} CARKEY_RADIO_FUZZ_LINKS=${index + 1}; case seed ${seed})`;
      said.forEach((message, i) => {
        if (equalBytes(message, REFUSE_BYTES)) stats.refusals++;
        else if (isChallenge(message) && i === 0) stats.challenges++;
        else problems.push(`${where}: the car sent ${Buffer.from(message.subarray(0, 8)).toString('hex')}… (${message.length} bytes) as message ${i}`);
      });
      if (end !== 'remote') problems.push(`${where}: link not dropped by the car (${end})`);
      await attack.close();
    };

    const worker = async (): Promise<void> => {
      const central = attackers.central();
      while (next < LINKS) {
        const index = next++;
        if (index === Math.floor(LINKS / 2) && ownerDuring === undefined) ownerDuring = await carkey('unlock');
        await runLink(index, central);
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: WORKERS }, worker));
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(`\nradio fuzz: ${JSON.stringify({ ...stats, seconds: Math.round(seconds), framesPerSecond: Math.round(stats.frames / seconds) })}\n`);

    expect(problems).toEqual([]);
    expect(stats.links).toBeGreaterThan(LINKS / 2);
    expect(stats.refusals).toBeGreaterThan(0);
    expect(ownerDuring?.code, ownerDuring?.stderr).toBe(0);

    // carkeyd is still up and serving.
    expect(rig.daemon?.child.exitCode).toBe(null);
    expect((await fetch(`${status()}/health`)).status).toBe(200);
    const metrics = await (await fetch(`${status()}/metrics`)).text();
    expect(metrics).toMatch(/carkey_refusals_total\{code="CK_[A-Z_]+"\} [1-9]/);
    const unlock = await carkey('unlock');
    expect(unlock.code, unlock.stderr).toBe(0);
    const stderr = rig.daemon?.stderr() ?? '';
    expect(stderr).not.toMatch(/unhandled|uncaught|triggerUncaughtException/i);
    expect(stderr).not.toMatch(/link handler error/);
  }, Math.max(600_000, LINKS * 1000));
});
