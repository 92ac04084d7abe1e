/**
 * Session-layer fuzz (issue 12): mutations of recorded valid sessions fed to
 * the car's session layer — `VehicleSession` behind the GATT `Reassembler`
 * (core/framing.ts), driven the way the daemon drives them (answer each
 * authenticated request, confirm each pairing).
 *
 * Recorded by running the real `PhoneSession` / `PhonePairing` against the
 * real `VehicleSession` in memory: owner unlock + lock, every command kind as
 * REQUEST or COMMAND, a guest with a grant, status, pairing on a new car and
 * a second owner's pairing. A fuzz case (one seed → `FuzzRandom`) takes one
 * recording and applies byte edits (bit flips, byte replacement, truncation,
 * extension, splices, header and seq-field edits), sequence edits (replay of
 * a frame from another session, reorder, duplicate, drop, cut, the car's own
 * frames reflected, pure random frames) and, for a third of the cases, chunk
 * edits of the framing (START length field, counter, dropped/duplicated/random
 * chunks); some cases are pure random, some the exact recording, some against
 * a car with other randomness (every recorded REQUEST is then a replay).
 *
 * Properties, per delivered message: `handle` never throws and never reports
 * CK_INTERNAL; every refusal is the one generic REFUSE and closes the session;
 * the only other answers to a peer that has not authenticated are a CHALLENGE
 * or PAIR_CHALLENGE to a first HELLO/PAIR_HELLO and a PAIR_READY to a PAIR_REVEAL
 * matching its commitment; an authenticated request (what reaches the decision
 * and the actuator) or a pairing confirmation happens only when the messages
 * so far are exactly a recorded valid session for this car, and then with the
 * recorded command and byte-identical answers; a case that delivers an exact
 * recording gets exactly its recorded requests. Afterwards fresh valid
 * sessions still work.
 *
 * Size: CARKEY_FUZZ_FRAMES frames (100,000 in `npm test`; `npm run soak`
 * uses 1,000,000). Rerun: fast-check prints the seed and the failing case's
 * trial seed; CARKEY_FUZZ_SEED=<seed> reruns the run, CARKEY_FUZZ_TRIAL=<n>
 * only that case (CARKEY_FUZZ_DEBUG=1 also prints its frames). frames/s are printed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { equalBytes } from '../../src/core/bytes.js';
import { Catalog } from '../../src/core/errors.js';
import { splitMessage, Reassembler } from '../../src/core/framing.js';
import { CLEAR_LENGTH, MAX_MESSAGE, MessageType } from '../../src/core/messages.js';
import { encodeAuditRead, encodePin } from '../../src/core/payloads.js';
import type { CommandName } from '../../src/core/roles.js';
import type { VehicleContext, VehicleEvent } from '../../src/core/vehicle-session.js';
import { FuzzRandom, mutateChunks, mutateSequence, randomFrame } from '../helpers/frame-mutator.js';
import { grantFor, isRefuseBytes, newCar, pairedWorld, party, PROPERTY_SEED, runPairing, runUnlock, type UnlockOptions } from '../helpers/core-harness.js';

const FRAMES = Math.max(1, Number(process.env.CARKEY_FUZZ_FRAMES ?? '100000'));
const RUN_SEED = Number(process.env.CARKEY_FUZZ_SEED ?? String(PROPERTY_SEED));
const ONE_TRIAL = process.env.CARKEY_FUZZ_TRIAL;
const CODES = new Set(Object.keys(Catalog));
const world = pairedWorld();

// --- recordings ------------------------------------------------------------------------------

interface Recording {
  readonly name: string;
  /** the seed label of the car that answered (same label → same car randomness) */
  readonly label: string;
  readonly kind: 'unlock' | 'pairing';
  readonly context: VehicleContext;
  /** what the phone sent, in order */
  readonly phone: readonly Uint8Array[];
  /** the car's answer to each phone frame */
  readonly car: readonly Uint8Array[];
  /** the command of each REQUEST/COMMAND frame (undefined for other frames) */
  readonly commands: readonly (CommandName | undefined)[];
}

function recordUnlock(name: string, options: UnlockOptions): Recording {
  const label = `fuzz-${name}`;
  const run = runUnlock(world, { ...options, seedLabel: label });
  if (!run.ok) throw new Error(`recording ${name} failed at ${run.stage}: ${run.code}`);
  const m = run.messages;
  const phone = [m.HELLO, m.REQUEST, m.COMMAND].filter((b): b is Uint8Array => b !== undefined);
  const car = [m.CHALLENGE, m.RESULT, m.COMMAND_RESULT].filter((b): b is Uint8Array => b !== undefined);
  return { name, label, kind: 'unlock', context: run.context, phone, car, commands: [undefined, ...run.requests.map((r) => r.command)] };
}

function recordPairing(name: string, second: boolean): Recording {
  const label = `fuzz-${name}`;
  const run = runPairing(world, second ? { seedLabel: label, phone: party('second owner'), current: world.keyList } : { seedLabel: label });
  if (!run.ok) throw new Error(`recording ${name} failed at ${run.stage}: ${run.code}`);
  const m = run.messages;
  const phone = [m.PAIR_HELLO, m.PAIR_REVEAL, m.PAIR_CONFIRM].filter((b): b is Uint8Array => b !== undefined);
  const car = [m.PAIR_CHALLENGE, m.PAIR_READY, m.PAIR_RESULT].filter((b): b is Uint8Array => b !== undefined);
  return { name, label, kind: 'pairing', context: run.context, phone, car, commands: [] };
}

const guest = party('fuzz guest');
const RECORDINGS: readonly Recording[] = [
  recordUnlock('owner-unlock-lock', { command: 'unlock', followUp: 'lock' }),
  recordUnlock('owner-status', { command: 'status' }),
  recordUnlock('start-trunk', { command: 'start', args: encodePin('1234'), followUp: 'trunk' }),
  recordUnlock('passive-status', { command: 'passiveUnlock', followUp: 'status' }),
  recordUnlock('keylist-push-get', { command: 'keyListPush', args: world.keyList.bytes, followUp: 'keyListGet' }),
  recordUnlock('audit-statement', { command: 'auditRead', args: encodeAuditRead({ fromSeq: 0, limit: 16 }), followUp: 'vehicleStatement' }),
  recordUnlock('honk-flash', { command: 'honk', followUp: 'flash' }),
  recordUnlock('guest-grant', { phone: guest, credential: { kind: 'grant', bytes: grantFor(world, guest).bytes }, command: 'unlock', followUp: 'lock' }),
  recordPairing('pair-new-car', false),
  recordPairing('pair-second-owner', true),
];
const ALL_PHONE = RECORDINGS.flatMap((r) => r.phone);
const ALL_CAR = RECORDINGS.flatMap((r) => r.car);

/**
 * Whether a recorded session stays valid on a car in `context`: an unlock's
 * REQUEST signs the CHALLENGE, which states the car time and key-list
 * version; a pairing needs pairing mode (PAIR_READY's contents are sealed to
 * the phone but not in the PAIR_CONFIRM transcript).
 */
function stillValid(r: Recording, context: VehicleContext): boolean {
  if (r.kind === 'unlock') return r.context.carTime === context.carTime && r.context.keyListVersion === context.keyListVersion;
  return context.pairingOpen;
}

/** Whether the car's answers in `context` must be byte-identical to the recording's. */
function sameAnswers(r: Recording, context: VehicleContext): boolean {
  if (r.kind === 'unlock') return stillValid(r, context);
  const a = r.context.pairReady;
  const b = context.pairReady;
  return context.pairingOpen && a.status === b.status && a.epoch === b.epoch && a.requiredVersion === b.requiredVersion && equalBytes(a.keyList, b.keyList);
}

/** The recording that `delivered` is an exact prefix of, on a car with `label`'s randomness where it is still valid. */
function validPrefix(delivered: readonly Uint8Array[], label: string, context: VehicleContext): Recording | undefined {
  return RECORDINGS.find((r) => r.label === label && stillValid(r, context) && delivered.length <= r.phone.length && delivered.every((m, i) => equalBytes(m, r.phone[i] ?? new Uint8Array(0))));
}

// --- one fuzz case ------------------------------------------------------------------------------

interface Tally {
  trials: number;
  frames: number;
  messages: number;
  refusals: number;
  requests: number;
  pairConfirms: number;
  exactCases: number;
  readonly refusalCodes: Map<string, number>;
  readonly edits: Map<string, number>;
}

const tally: Tally = { trials: 0, frames: 0, messages: 0, refusals: 0, requests: 0, pairConfirms: 0, exactCases: 0, refusalCodes: new Map(), edits: new Map() };
const bump = (map: Map<string, number>, key: string): void => void map.set(key, (map.get(key) ?? 0) + 1);

function check(condition: boolean, trial: number, what: string): void {
  if (!condition) throw new Error(`fuzz case ${trial} (rerun: CARKEY_FUZZ_TRIAL=${trial}): ${what}`);
}

function runCase(trial: number): void {
  const r = new FuzzRandom(trial);
  const base = r.pick(RECORDINGS);
  const label = r.chance(0.85) ? base.label : r.chance(0.5) ? r.pick(RECORDINGS).label : `${base.label}/other`;
  // The car's situation: the recording's own, or pairing held open on a paired car.
  const context = r.chance(0.1) ? RECORDINGS.find((x) => x.name === 'pair-second-owner')?.context ?? base.context : base.context;
  const mode = r.below(100);
  let frames: Uint8Array[];
  if (mode < 6) {
    frames = [...base.phone];
    bump(tally.edits, 'exact');
  } else if (mode < 14) {
    frames = Array.from({ length: 1 + r.below(5) }, () => randomFrame(r));
    bump(tally.edits, 'pure-random');
  } else {
    const edited = mutateSequence(r, base.phone, 1 + r.below(3), ALL_PHONE, ALL_CAR);
    frames = edited.frames;
    for (const kind of edited.kinds) bump(tally.edits, kind);
  }
  const framed = r.chance(0.33);
  if (process.env.CARKEY_FUZZ_DEBUG !== undefined) process.stdout.write(`case ${trial}: base ${base.name} label ${label} mode ${mode} framed ${framed}\n${frames.map((f) => Buffer.from(f).toString('hex')).join('\n')}\nrecorded:\n${base.phone.map((f) => Buffer.from(f).toString('hex')).join('\n')}\n`);
  const reassembler = new Reassembler();
  const mtu = r.pick([23, 64, 185, 517]);
  const car = newCar(world, label);
  const delivered: Uint8Array[] = [];
  let closed = false;
  let requests = 0;

  const deliver = (message: Uint8Array): void => {
    delivered.push(message);
    tally.messages++;
    const now = context.now + 5 * (delivered.length - 1);
    let event: VehicleEvent;
    try {
      event = car.handle(message, { ...context, now });
    } catch (error) {
      throw new Error(`fuzz case ${trial} (rerun: CARKEY_FUZZ_TRIAL=${trial}): handle threw ${String(error)}`, { cause: error });
    }
    const prefix = validPrefix(delivered, label, context);
    const index = delivered.length - 1;
    switch (event.kind) {
      case 'refuse':
        check(isRefuseBytes(event.reply), trial, 'a refusal that is not the generic REFUSE');
        check(CODES.has(event.error.code) && event.error.code !== 'CK_INTERNAL', trial, `refusal code ${event.error.code}: ${event.error.message}`);
        check(car.closed, trial, 'a refusal left the session open');
        closed = true;
        tally.refusals++;
        bump(tally.refusalCodes, event.error.code);
        return;
      case 'reply': {
        check(!closed, trial, 'a closed session replied');
        check(index === 0, trial, `a cleartext reply to message ${index}`);
        const type = message[1];
        const expected = type === MessageType.hello ? MessageType.challenge : type === MessageType.pairHello ? MessageType.pairChallenge : -1;
        check(event.reply[1] === expected && event.reply.length === CLEAR_LENGTH[expected], trial, `reply of type ${event.reply[1]} to type ${type}`);
        if (prefix !== undefined && sameAnswers(prefix, context)) check(equalBytes(event.reply, prefix.car[0] ?? new Uint8Array(0)), trial, 'the answer to a recorded first message differs from the recording');
        return;
      }
      case 'pair-code': {
        check(!closed && index === 1, trial, `PAIR_READY to message ${index}`);
        // The commitment ties PAIR_REVEAL to its PAIR_HELLO: both must come from one recorded phone.
        const hello = delivered[0] ?? new Uint8Array(0);
        const samePhone = RECORDINGS.some((x) => x.kind === 'pairing' && equalBytes(x.phone[0] ?? new Uint8Array(0), hello) && equalBytes(x.phone[1] ?? new Uint8Array(0), message));
        check(samePhone, trial, 'a pairing code for a PAIR_REVEAL that is not the recorded partner of its PAIR_HELLO');
        check(event.reply[1] === MessageType.pairReady, trial, 'pair-code reply is not PAIR_READY');
        if (prefix !== undefined && sameAnswers(prefix, context)) check(equalBytes(event.reply, prefix.car[1] ?? new Uint8Array(0)), trial, 'PAIR_READY differs from the recording');
        return;
      }
      case 'request': {
        check(!closed, trial, 'a closed session took a request');
        check(prefix !== undefined, trial, `an authenticated ${event.command ?? 'unknown'} request from a sequence that is not a recorded valid session (message ${index})`);
        if (prefix === undefined) return;
        check(event.command === prefix.commands[index], trial, `request for ${event.command ?? '?'} where the recording has ${prefix.commands[index] ?? '?'}`);
        check(event.first === (index === 1), trial, 'first flag wrong');
        const answer = car.respond(event.seq, { status: 'ok' });
        check(equalBytes(answer, prefix.car[index] ?? new Uint8Array(0)), trial, 'RESULT differs from the recording');
        requests++;
        tally.requests++;
        return;
      }
      case 'pair-confirm': {
        check(prefix !== undefined && index === 2, trial, 'a pairing confirmation from a sequence that is not a recorded valid pairing');
        if (prefix === undefined) return;
        const answer = car.finishPairing({ accepted: true, advSecret: world.advSecret, vehicleName: 'test car' });
        if (sameAnswers(prefix, context)) check(equalBytes(answer, prefix.car[2] ?? new Uint8Array(0)), trial, 'PAIR_RESULT differs from the recording');
        tally.pairConfirms++;
        return;
      }
    }
  };

  for (const frame of frames) {
    tally.frames++;
    if (!framed || frame.length > MAX_MESSAGE || frame.length === 0) {
      deliver(frame);
      continue;
    }
    let chunks = splitMessage(frame, mtu);
    if (r.chance(0.5)) {
      const edit = mutateChunks(r, chunks);
      chunks = edit.chunks;
      bump(tally.edits, edit.kind);
    }
    for (const chunk of chunks) {
      const outcome = reassembler.push(chunk, context.now);
      // A framing error is logged by the link and the reassembler waits for the next START (transport/channel.ts).
      if (outcome.error !== undefined) check(CODES.has(outcome.error.code), trial, `framing code ${outcome.error.code}`);
      if (outcome.message !== undefined) deliver(outcome.message);
    }
  }

  tally.trials++;
  const exact = RECORDINGS.find((x) => x.label === label && stillValid(x, context) && x.phone.length === delivered.length && x.phone.every((m, i) => equalBytes(m, delivered[i] ?? new Uint8Array(0))));
  if (exact !== undefined) {
    tally.exactCases++;
    const expected = exact.kind === 'unlock' ? exact.phone.length - 1 : 0;
    check(requests === expected, trial, `an exact recording of ${exact.name} got ${requests} requests, expected ${expected}`);
    if (exact.kind === 'pairing') check(car.closed, trial, 'pairing did not finish');
  }
}

// --- the suite ---------------------------------------------------------------------------------

describe('session-layer fuzz: mutated recorded sessions at VehicleSession behind the reassembler', () => {
  it('the recordings replay byte for byte on a fresh car (the oracle is sound)', () => {
    for (const recording of RECORDINGS) {
      const car = newCar(world, recording.label);
      recording.phone.forEach((message, i) => {
        const event = car.handle(message, { ...recording.context, now: recording.context.now + 5 * i });
        const answer =
          event.kind === 'reply' || event.kind === 'pair-code'
            ? event.reply
            : event.kind === 'request'
              ? car.respond(event.seq, { status: 'ok' })
              : event.kind === 'pair-confirm'
                ? car.finishPairing({ accepted: true, advSecret: world.advSecret, vehicleName: 'test car' })
                : undefined;
        expect(answer, `${recording.name} message ${i} (${event.kind})`).toEqual(recording.car[i]);
      });
    }
    // A recorded REQUEST on a car with other randomness is a replay: refused.
    const other = newCar(world, 'fuzz-owner-unlock-lock/other');
    const [hello, request] = RECORDINGS[0]?.phone ?? [];
    if (hello === undefined || request === undefined) throw new Error('no recording');
    const context = RECORDINGS[0]?.context;
    if (context === undefined) throw new Error('no context');
    expect(other.handle(hello, context).kind).toBe('reply');
    expect(other.handle(request, { ...context, now: context.now + 5 }).kind).toBe('refuse');
  });

  it(
    `${FRAMES.toLocaleString('en-US')} frames: no throw, only the generic refusal, no request unless the frames are a recorded valid session`,
    () => {
      const started = performance.now();
      if (ONE_TRIAL !== undefined) {
        runCase(Number(ONE_TRIAL));
      } else {
        for (let round = 0; tally.frames < FRAMES; round++) {
          fc.assert(
            fc.property(fc.integer({ min: 0, max: 0x7fffffff }), (trial) => {
              runCase(trial);
            }),
            { seed: RUN_SEED + round, numRuns: 2000, endOnFailure: true },
          );
        }
      }
      const seconds = (performance.now() - started) / 1000;
      const top = [...tally.refusalCodes.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8);
      process.stdout.write(
        `\nsession fuzz: ${tally.frames} frames (${tally.messages} messages reached the session) in ${tally.trials} cases, ${seconds.toFixed(1)} s, ${Math.round(tally.frames / seconds)} frames/s\n` +
          `  refusals ${tally.refusals}, authenticated requests ${tally.requests}, pairing confirmations ${tally.pairConfirms}, cases that were an exact recording ${tally.exactCases}\n` +
          `  refusal codes: ${top.map(([code, n]) => `${code} ${n}`).join(', ')}\n` +
          `  edits: ${[...tally.edits.entries()].map(([k, n]) => `${k} ${n}`).join(', ')}\n`,
      );
      expect(tally.frames).toBeGreaterThanOrEqual(ONE_TRIAL === undefined ? FRAMES : 1);
      if (ONE_TRIAL === undefined) {
        // The fuzz had teeth: it reached every kind of outcome.
        expect(tally.exactCases).toBeGreaterThan(0);
        expect(tally.requests).toBeGreaterThan(0);
        expect(tally.pairConfirms).toBeGreaterThan(0);
        expect(tally.refusalCodes.size).toBeGreaterThan(5);
      }
    },
    Math.max(120_000, FRAMES * 2),
  );

  it('fresh valid sessions still work afterwards', () => {
    const unlock = runUnlock(world, { seedLabel: 'after-fuzz', followUp: 'lock' });
    expect(unlock.ok).toBe(true);
    if (unlock.ok) expect(unlock.results.map((r) => r.status)).toEqual(['ok', 'ok']);
    const pairing = runPairing(world, { seedLabel: 'after-fuzz-pair', phone: party('after fuzz owner'), current: world.keyList });
    expect(pairing.ok).toBe(true);
  });
});
