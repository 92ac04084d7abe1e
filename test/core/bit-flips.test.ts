/**
 * Every single-bit flip of every message of a full unlock exchange (HELLO,
 * CHALLENGE, REQUEST, RESULT, COMMAND, its RESULT) and of a full owner pairing
 * (all six messages) is rejected, by the side the threat model says, with the
 * catalog code of the check that caught it. Exhaustive: a table of message ×
 * every bit position, not a sample.
 *
 * Each tampered copy is delivered to a receiver put in the right state by
 * replaying the recorded exchange (fast); a sample of bits is also run through
 * the whole exchange driver to show both paths agree. Phone-side receivers are
 * shared by all flips of one message and must still accept the genuine
 * message afterwards: a rejected forgery leaves the session usable.
 */
import { describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../src/core/errors.js';
import type { PhonePairing, PhoneSession } from '../../src/core/phone-session.js';
import type { VehicleEvent } from '../../src/core/vehicle-session.js';
import {
  carBeforePairing,
  carBeforeUnlock,
  flipBit,
  isRefuseBytes,
  PAIRING_MESSAGES,
  pairedWorld,
  party,
  phoneBeforePairing,
  phoneBeforeUnlock,
  requestTime,
  runPairing,
  runUnlock,
  UNLOCK_MESSAGES,
  vehicleContext,
  type PairingMessage,
  type PairingOptions,
  type UnlockMessage,
  type UnlockOptions,
} from '../helpers/core-harness.js';

const world = pairedWorld();

// --- what each flip must produce ------------------------------------------------------

const HEADER_TYPE_CODES: ErrorCode[] = ['CK_CODEC_BAD_TYPE', 'CK_CODEC_BAD_VALUE', 'CK_CODEC_TRUNCATED', 'CK_PROTO_UNEXPECTED_MESSAGE'];

/** Codes for a flipped sealed message: version, type, seq (bytes 2..5), then the box. */
function sealedFlipCodes(byte: number): ErrorCode[] {
  if (byte === 0) return ['CK_CODEC_BAD_VERSION'];
  if (byte === 1) return HEADER_TYPE_CODES;
  if (byte < 6) return ['CK_PROTO_REPLAY'];
  return ['CK_CRYPTO_DECRYPT_FAILED'];
}

function headerFlipCodes(byte: number): ErrorCode[] | undefined {
  if (byte === 0) return ['CK_CODEC_BAD_VERSION'];
  if (byte === 1) return HEADER_TYPE_CODES;
  return undefined;
}

interface Expectation<N extends string> {
  readonly stage: N;
  readonly rejectedBy: 'car' | 'phone';
  readonly codes: ErrorCode[];
}

function expectedUnlock(name: UnlockMessage, bit: number): Expectation<UnlockMessage> {
  const byte = Math.floor(bit / 8);
  const header = headerFlipCodes(byte);
  switch (name) {
    case 'HELLO':
      // The car refuses a bad header. A flipped body changes the transcript the car
      // signs, so the phone's check of the CHALLENGE fails: the exchange fails as a whole.
      return header !== undefined ? { stage: 'HELLO', rejectedBy: 'car', codes: header } : { stage: 'CHALLENGE', rejectedBy: 'phone', codes: ['CK_PROTO_BAD_CAR_SIGNATURE'] };
    case 'CHALLENGE': {
      if (header !== undefined) return { stage: name, rejectedBy: 'phone', codes: header };
      // car time (bytes 50..57) is a u64 limited to 2^53 - 1: its top 11 bits are range-checked.
      const timeOverflow = byte === 50 || (byte === 51 && bit % 8 < 3);
      return { stage: name, rejectedBy: 'phone', codes: timeOverflow ? ['CK_CODEC_BAD_VALUE'] : ['CK_PROTO_BAD_CAR_SIGNATURE'] };
    }
    case 'REQUEST':
    case 'COMMAND':
      return { stage: name, rejectedBy: 'car', codes: sealedFlipCodes(byte) };
    case 'RESULT':
    case 'COMMAND_RESULT':
      return { stage: name, rejectedBy: 'phone', codes: sealedFlipCodes(byte) };
  }
}

function expectedPairing(name: PairingMessage, bit: number): Expectation<PairingMessage> {
  const byte = Math.floor(bit / 8);
  const header = headerFlipCodes(byte);
  switch (name) {
    case 'PAIR_HELLO':
      return header !== undefined ? { stage: name, rejectedBy: 'car', codes: header } : { stage: 'PAIR_CHALLENGE', rejectedBy: 'phone', codes: ['CK_PROTO_BAD_CAR_SIGNATURE'] };
    case 'PAIR_CHALLENGE': {
      if (header !== undefined) return { stage: name, rejectedBy: 'phone', codes: header };
      // bytes 50..81 carry the car identity key, checked for validity before the signature.
      const identity = byte >= 50 && byte < 82;
      return { stage: name, rejectedBy: 'phone', codes: identity ? ['CK_PROTO_BAD_CAR_SIGNATURE', 'CK_CRYPTO_NONCANONICAL_KEY', 'CK_CRYPTO_SMALL_ORDER_KEY'] : ['CK_PROTO_BAD_CAR_SIGNATURE'] };
    }
    case 'PAIR_REVEAL':
      // A flipped nonce no longer matches the commitment sent in PAIR_HELLO.
      return { stage: name, rejectedBy: 'car', codes: header ?? ['CK_PROTO_PAIRING_COMMITMENT'] };
    case 'PAIR_CONFIRM':
      return { stage: name, rejectedBy: 'car', codes: sealedFlipCodes(byte) };
    case 'PAIR_READY':
    case 'PAIR_RESULT':
      return { stage: name, rejectedBy: 'phone', codes: sealedFlipCodes(byte) };
  }
}

// --- what each flip did -------------------------------------------------------------------

type Verdict<N extends string> =
  | { readonly accepted: true }
  | { readonly accepted: false; readonly stage: N; readonly rejectedBy: 'car' | 'phone' | 'person'; readonly code: ErrorCode; readonly carReply?: Uint8Array; readonly phoneSaw?: ErrorCode };

const ACCEPTED = { accepted: true } as const;

function rejected<N extends string>(stage: N, rejectedBy: 'car' | 'phone', result: { ok: boolean; error?: { code: ErrorCode } }): Verdict<N> {
  return result.ok || result.error === undefined ? ACCEPTED : { accepted: false, stage, rejectedBy, code: result.error.code };
}

/** The car refused: record its wire reply and what the phone made of it. */
function carRefused<N extends string>(stage: N, event: VehicleEvent & { kind: 'refuse' }, phoneSaw: { ok: boolean; error?: { code: ErrorCode } }): Verdict<N> {
  return { accepted: false, stage, rejectedBy: 'car', code: event.error.code, carReply: event.reply, phoneSaw: phoneSaw.ok ? undefined : phoneSaw.error?.code };
}

function mismatch<N extends string>(verdict: Verdict<N>, expected: Expectation<N>, refusedPhoneCode: ErrorCode): string | undefined {
  if (verdict.accepted) return 'accepted';
  if (verdict.stage !== expected.stage || verdict.rejectedBy !== expected.rejectedBy || !expected.codes.includes(verdict.code)) {
    return `stopped at ${verdict.stage} by ${verdict.rejectedBy} with ${verdict.code}; expected ${expected.stage} by ${expected.rejectedBy} with ${expected.codes.join('|')}`;
  }
  // A car refusal is the one generic REFUSE on the wire, and the phone reports it as such.
  if (verdict.rejectedBy === 'car' && (!isRefuseBytes(verdict.carReply) || verdict.phoneSaw !== refusedPhoneCode)) {
    return `car refusal was not the generic REFUSE (phone saw ${verdict.phoneSaw ?? 'nothing'})`;
  }
  return undefined;
}

/** Run `deliver` for every bit of `original` and return every flip that was not rejected as expected. */
function everyBit<N extends string>(original: Uint8Array, deliver: (flipped: Uint8Array) => Verdict<N>, expected: (bit: number) => Expectation<N>, refusedPhoneCode: ErrorCode): string[] {
  const problems: string[] = [];
  for (let bit = 0; bit < original.length * 8; bit++) {
    const problem = mismatch(deliver(flipBit(original, bit)), expected(bit), refusedPhoneCode);
    if (problem !== undefined) problems.push(`bit ${bit}: ${problem}`);
  }
  return problems;
}

function sampleBits(length: number): number[] {
  const bits = length * 8;
  return [...new Set([0, 7, 8, 15, 16, 40, Math.floor(bits / 2), bits - 8, bits - 1])].filter((bit) => bit < bits);
}

function sameVerdict<N extends string>(full: Verdict<N>, fast: Verdict<N>): boolean {
  if (full.accepted || fast.accepted) return full.accepted === fast.accepted;
  return full.stage === fast.stage && full.rejectedBy === fast.rejectedBy && full.code === fast.code;
}

// --- unlock ------------------------------------------------------------------------------------

describe('unlock exchange: every bit flip of every message is rejected', () => {
  const options: UnlockOptions = { seedLabel: 'flips', command: 'unlock', followUp: 'lock' };
  const baseline = runUnlock(world, options);
  const messages = baseline.messages;
  const context = vehicleContext(world, options.context);

  function message(name: UnlockMessage): Uint8Array {
    const bytes = messages[name];
    if (bytes === undefined) throw new Error(`no ${name} recorded`);
    return bytes;
  }

  /** Phone receivers shared by all flips of one message (a rejected forgery must not change them). */
  const phones = new Map<UnlockMessage, PhoneSession>();
  function phoneAt(stage: 'CHALLENGE' | 'RESULT' | 'COMMAND_RESULT'): PhoneSession {
    let phone = phones.get(stage);
    if (phone === undefined) {
      phone = phoneBeforeUnlock(world, options, messages, stage);
      phones.set(stage, phone);
    }
    return phone;
  }

  function deliver(name: UnlockMessage, bytes: Uint8Array): Verdict<UnlockMessage> {
    switch (name) {
      case 'HELLO': {
        const event = carBeforeUnlock(world, options, messages, 'HELLO').handle(bytes, context);
        if (event.kind === 'refuse') return carRefused(name, event, phoneAt('CHALLENGE').onChallenge(event.reply));
        if (event.kind !== 'reply') throw new Error(`unexpected ${event.kind}`);
        return rejected('CHALLENGE', 'phone', phoneAt('CHALLENGE').onChallenge(event.reply));
      }
      case 'CHALLENGE':
        return rejected(name, 'phone', phoneAt('CHALLENGE').onChallenge(bytes));
      case 'REQUEST':
      case 'COMMAND': {
        const car = carBeforeUnlock(world, options, messages, name);
        const event = car.handle(bytes, { ...context, now: requestTime(context, options) });
        if (event.kind !== 'refuse') return ACCEPTED;
        // The car's REFUSE is a genuine, final answer: it ends the phone's session, so it goes to a fresh phone.
        return carRefused(name, event, phoneBeforeUnlock(world, options, messages, name === 'REQUEST' ? 'RESULT' : 'COMMAND_RESULT').onResult(event.reply));
      }
      case 'RESULT':
      case 'COMMAND_RESULT':
        return rejected(name, 'phone', phoneAt(name).onResult(bytes));
    }
  }

  it('the unmodified exchange succeeds and records all six messages', () => {
    expect(baseline.ok).toBe(true);
    if (!baseline.ok) return;
    expect(baseline.results.map((r) => r.status)).toEqual(['ok', 'ok']);
    for (const name of UNLOCK_MESSAGES) expect(message(name).length).toBeGreaterThan(0);
  });

  it.each(UNLOCK_MESSAGES)('%s: every bit position is rejected', (name) => {
    const original = message(name);
    expect(everyBit(original, (flipped) => deliver(name, flipped), (bit) => expectedUnlock(name, bit), 'CK_PROTO_REFUSED')).toEqual([]);
    // The genuine message still goes through on the shared phone receiver.
    if (name === 'CHALLENGE' || name === 'HELLO') expect(phoneAt('CHALLENGE').onChallenge(message('CHALLENGE')).ok).toBe(true);
    if (name === 'RESULT' || name === 'REQUEST') expect(phoneAt('RESULT').onResult(message('RESULT')).ok).toBe(true);
    if (name === 'COMMAND_RESULT' || name === 'COMMAND') expect(phoneAt('COMMAND_RESULT').onResult(message('COMMAND_RESULT')).ok).toBe(true);
    phones.clear();
  });

  it.each(UNLOCK_MESSAGES)('%s: sampled flips fail the same way through the whole exchange', (name) => {
    for (const bit of sampleBits(message(name).length)) {
      const end = runUnlock(world, { ...options, mutate: (n, bytes) => (n === name ? flipBit(bytes, bit) : bytes) });
      expect(end.ok).toBe(false);
      const full: Verdict<UnlockMessage> = end.ok ? ACCEPTED : { accepted: false, stage: end.stage, rejectedBy: end.rejectedBy, code: end.code };
      const fast = deliver(name, flipBit(message(name), bit));
      phones.clear();
      expect(sameVerdict(full, fast), `bit ${bit}`).toBe(true);
    }
  });
});

// --- pairing ---------------------------------------------------------------------------------------

describe('owner pairing: every bit flip of every message is rejected', () => {
  // A second owner pairs with a car that already has a key list, so PAIR_READY carries one.
  const options: PairingOptions = { seedLabel: 'pair-flips', phone: party('second owner'), current: world.keyList };
  const baseline = runPairing(world, options);
  const messages = baseline.messages;
  const context = vehicleContext(world, { pairingOpen: true, pairReady: { status: 'ready', epoch: 0, requiredVersion: world.keyList.version + 1, keyList: world.keyList.bytes }, keyListVersion: world.keyList.version });

  function message(name: PairingMessage): Uint8Array {
    const bytes = messages[name];
    if (bytes === undefined) throw new Error(`no ${name} recorded`);
    return bytes;
  }

  const phones = new Map<PairingMessage, PhonePairing>();
  function phoneAt(stage: 'PAIR_CHALLENGE' | 'PAIR_READY' | 'PAIR_RESULT'): PhonePairing {
    let phone = phones.get(stage);
    if (phone === undefined) {
      phone = phoneBeforePairing(world, options, messages, stage);
      phones.set(stage, phone);
    }
    return phone;
  }

  function deliver(name: PairingMessage, bytes: Uint8Array): Verdict<PairingMessage> {
    switch (name) {
      case 'PAIR_HELLO': {
        const event = carBeforePairing(world, options, messages, name).handle(bytes, context);
        if (event.kind === 'refuse') return carRefused(name, event, phoneAt('PAIR_CHALLENGE').onChallenge(event.reply));
        if (event.kind !== 'reply') throw new Error(`unexpected ${event.kind}`);
        return rejected('PAIR_CHALLENGE', 'phone', phoneAt('PAIR_CHALLENGE').onChallenge(event.reply));
      }
      case 'PAIR_CHALLENGE':
        return rejected(name, 'phone', phoneAt(name).onChallenge(bytes));
      case 'PAIR_REVEAL': {
        const event = carBeforePairing(world, options, messages, name).handle(bytes, context);
        if (event.kind !== 'refuse') return ACCEPTED;
        return carRefused(name, event, phoneAt('PAIR_READY').onReady(event.reply));
      }
      case 'PAIR_CONFIRM': {
        const event = carBeforePairing(world, options, messages, name).handle(bytes, context);
        if (event.kind !== 'refuse') return ACCEPTED;
        return carRefused(name, event, phoneAt('PAIR_RESULT').onResult(event.reply));
      }
      case 'PAIR_READY':
        return rejected(name, 'phone', phoneAt(name).onReady(bytes));
      case 'PAIR_RESULT':
        return rejected(name, 'phone', phoneAt(name).onResult(bytes));
    }
  }

  const refusedPhoneCode = (name: PairingMessage): ErrorCode => (name === 'PAIR_CONFIRM' ? 'CK_PROTO_PAIRING_NOT_CONFIRMED' : 'CK_PROTO_REFUSED');

  it('the unmodified pairing succeeds and records all six messages', () => {
    expect(baseline.ok).toBe(true);
    if (!baseline.ok) return;
    expect(baseline.keyList.version).toBe(2);
    expect(baseline.outcome.carIdentityKey).toEqual(world.car.publicKey);
    for (const name of PAIRING_MESSAGES) expect(message(name).length).toBeGreaterThan(0);
  });

  it.each(PAIRING_MESSAGES)('%s: every bit position is rejected', (name) => {
    const original = message(name);
    expect(everyBit(original, (flipped) => deliver(name, flipped), (bit) => expectedPairing(name, bit), refusedPhoneCode(name))).toEqual([]);
    if (name === 'PAIR_CHALLENGE' || name === 'PAIR_HELLO') expect(phoneAt('PAIR_CHALLENGE').onChallenge(message('PAIR_CHALLENGE')).ok).toBe(true);
    if (name === 'PAIR_READY' || name === 'PAIR_REVEAL') expect(phoneAt('PAIR_READY').onReady(message('PAIR_READY')).ok).toBe(true);
    if (name === 'PAIR_RESULT' || name === 'PAIR_CONFIRM') expect(phoneAt('PAIR_RESULT').onResult(message('PAIR_RESULT')).ok).toBe(true);
    phones.clear();
  });

  it.each(PAIRING_MESSAGES)('%s: sampled flips fail the same way through the whole pairing', (name) => {
    for (const bit of sampleBits(message(name).length)) {
      const end = runPairing(world, { ...options, mutate: (n, bytes) => (n === name ? flipBit(bytes, bit) : bytes) });
      expect(end.ok).toBe(false);
      const full: Verdict<PairingMessage> = end.ok ? ACCEPTED : { accepted: false, stage: end.stage, rejectedBy: end.rejectedBy, code: end.code };
      const fast = deliver(name, flipBit(message(name), bit));
      phones.clear();
      expect(sameVerdict(full, fast), `bit ${bit}`).toBe(true);
    }
  });
});
