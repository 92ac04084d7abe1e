/**
 * Replay, expiry and misbinding: recorded messages replayed into another or
 * the same session, late requests, spoofed cars, messages in the wrong state,
 * pairing without physical presence, weak identity keys and signatures over
 * the wrong transcript. Each case names the catalog code the core returns.
 */
import { describe, expect, it } from 'vitest';
import { concatBytes, fromHex } from '../../src/core/bytes.js';
import { CarkeyError } from '../../src/core/errors.js';
import { LABELS } from '../../src/core/labels.js';
import {
  CredentialKind,
  encodeChallengeBody,
  encodeHello,
  encodeResultPlain,
  MessageType,
  REFUSE_BYTES,
  ResultStatus,
} from '../../src/core/messages.js';
import { VehicleSession } from '../../src/core/vehicle-session.js';
import {
  carBeforePairing,
  craftPairConfirm,
  craftRequest,
  crypto,
  expectEvent,
  failureOf,
  grantFor,
  isRefuseBytes,
  newCar,
  newPhone,
  newPhonePairing,
  openPairing,
  openUnlock,
  ownerRequestBody,
  pairedWorld,
  party,
  runPairing,
  runUnlock,
  signList,
  T0,
  vehicleContext,
  type UnlockEnd,
} from '../helpers/core-harness.js';

const world = pairedWorld();
const stranger = party('stranger');

function hex(text: string): Uint8Array {
  const bytes = fromHex(text);
  if (bytes === undefined) throw new Error('bad hex');
  return bytes;
}

/** The Ed25519 identity point (order 1) and an encoding with y >= p. */
const SMALL_ORDER_KEY = hex('0100000000000000000000000000000000000000000000000000000000000000');
const NONCANONICAL_KEY = hex('f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f');

function completed(end: UnlockEnd): Extract<UnlockEnd, { ok: true }> {
  if (!end.ok) throw new Error(`exchange stopped at ${end.stage}: ${end.code}`);
  return end;
}

function stopped(end: UnlockEnd): Extract<UnlockEnd, { ok: false }> {
  if (end.ok) throw new Error('exchange unexpectedly succeeded');
  return end;
}

describe('replay', () => {
  it('a REQUEST replayed into a new session (with its HELLO) is refused generically', () => {
    const recorded = completed(runUnlock(world, { seedLabel: 'victim' }));
    const hello = recorded.messages.HELLO;
    const request = recorded.messages.REQUEST;
    if (hello === undefined || request === undefined) throw new Error('missing messages');
    // The attacker replays both messages to the car later; the car picks a fresh challenge.
    const car = newCar(world, 'later');
    const context = vehicleContext(world);
    expectEvent(car.handle(hello, context), 'reply');
    const event = expectEvent(car.handle(request, { ...context, now: context.now + 5 }), 'refuse');
    expect(event.error.code).toBe('CK_CRYPTO_DECRYPT_FAILED');
    expect(event.reply).toEqual(REFUSE_BYTES);
    expect(car.closed).toBe(true);
  });

  it('a COMMAND replayed in the same session is refused with CK_PROTO_REPLAY', () => {
    const end = completed(runUnlock(world, { seedLabel: 'cmd-replay', followUp: 'lock' }));
    const command = end.messages.COMMAND;
    if (command === undefined) throw new Error('missing COMMAND');
    const event = expectEvent(end.car.handle(command, end.context), 'refuse');
    expect(event.error.code).toBe('CK_PROTO_REPLAY');
    expect(event.reply).toEqual(REFUSE_BYTES);
  });

  it('a COMMAND replayed before its RESULT was sent is refused (one request at a time)', () => {
    const end = completed(runUnlock(world, { seedLabel: 'cmd-pending' }));
    const command = end.phone.command('lock');
    expectEvent(end.car.handle(command, end.context), 'request');
    expect(expectEvent(end.car.handle(command, end.context), 'refuse').error.code).toBe('CK_PROTO_UNEXPECTED_MESSAGE');
  });

  it('the REQUEST replayed in its own session is refused (one REQUEST per challenge)', () => {
    const end = completed(runUnlock(world, { seedLabel: 'req-twice' }));
    const request = end.messages.REQUEST;
    if (request === undefined) throw new Error('missing REQUEST');
    expect(expectEvent(end.car.handle(request, end.context), 'refuse').error.code).toBe('CK_PROTO_UNEXPECTED_MESSAGE');
  });

  it('a second, freshly sealed and signed REQUEST in one session is refused', () => {
    const opened = openUnlock(world, 'second-request');
    const first = expectEvent(opened.car.handle(craftRequest(opened, ownerRequestBody(world.owner), world.owner), opened.context), 'request');
    opened.car.respond(first.seq, { status: 'ok' });
    const second = craftRequest(opened, ownerRequestBody(world.owner, 'start'), world.owner);
    const event = expectEvent(opened.car.handle(second, opened.context), 'refuse');
    expect(event.error.code).toBe('CK_PROTO_UNEXPECTED_MESSAGE');
    expect(isRefuseBytes(event.reply)).toBe(true);
  });

  it('a RESULT replayed to the phone is rejected, whether or not a command is outstanding', () => {
    const end = completed(runUnlock(world, { seedLabel: 'result-replay' }));
    const result = end.messages.RESULT;
    if (result === undefined) throw new Error('missing RESULT');
    failureOf(end.phone.onResult(result), 'CK_PROTO_UNEXPECTED_MESSAGE');
    end.phone.command('lock');
    failureOf(end.phone.onResult(result), 'CK_PROTO_REPLAY');
  });

  it('a RESULT from another session is rejected by the phone', () => {
    const other = completed(runUnlock(world, { seedLabel: 'other-session' }));
    const end = runUnlock(world, { seedLabel: 'this-session', mutate: (name, bytes) => (name === 'RESULT' ? (other.messages.RESULT ?? bytes) : bytes) });
    expect(stopped(end)).toMatchObject({ stage: 'RESULT', rejectedBy: 'phone', code: 'CK_CRYPTO_DECRYPT_FAILED' });
  });

  it('a RESULT answering another request sequence number is rejected', () => {
    const opened = openUnlock(world, 'wrong-seq-result');
    opened.phone.request({ kind: 'owner' }, 'unlock');
    const forged = opened.carSide.seal(MessageType.result, encodeResultPlain({ requestSeq: 7, status: ResultStatus.ok, category: 0, payload: new Uint8Array(0) }));
    failureOf(opened.phone.onResult(forged), 'CK_PROTO_REPLAY');
  });

  it('a RESULT with an unknown status is a typed error', () => {
    const opened = openUnlock(world, 'bad-status');
    opened.phone.request({ kind: 'owner' }, 'unlock');
    const forged = opened.carSide.seal(MessageType.result, encodeResultPlain({ requestSeq: 0, status: 9, category: 0, payload: new Uint8Array(0) }));
    failureOf(opened.phone.onResult(forged), 'CK_CODEC_BAD_VALUE');
  });

  it('pairing: a replayed PAIR_READY or PAIR_RESULT is rejected', () => {
    const end = runPairing(world, { seedLabel: 'pair-replay', current: undefined });
    if (!end.ok) throw new Error(`pairing failed: ${end.code}`);
    const { PAIR_READY: ready, PAIR_RESULT: result } = end.messages;
    if (ready === undefined || result === undefined) throw new Error('missing messages');
    failureOf(end.pairing.onReady(ready), 'CK_PROTO_REPLAY');
    failureOf(end.pairing.onResult(result), 'CK_PROTO_REPLAY');
  });
});

describe('expiry', () => {
  it('a REQUEST one millisecond after the challenge TTL is CK_PROTO_CHALLENGE_EXPIRED; at the TTL it is accepted', () => {
    expect(stopped(runUnlock(world, { seedLabel: 'ttl', requestDelayMs: 3001 }))).toMatchObject({ stage: 'REQUEST', rejectedBy: 'car', code: 'CK_PROTO_CHALLENGE_EXPIRED', phoneSaw: 'CK_PROTO_REFUSED' });
    expect(completed(runUnlock(world, { seedLabel: 'ttl', requestDelayMs: 3000 })).requests[0]?.responseTimeMs).toBe(3000);
  });

  it('honours a configured TTL and tells the phone in the CHALLENGE', () => {
    const end = stopped(runUnlock(world, { seedLabel: 'ttl-100', challengeTtlMs: 100, requestDelayMs: 101 }));
    expect(end.code).toBe('CK_PROTO_CHALLENGE_EXPIRED');
    const car = newCar(world, 'ttl-info', 100);
    const phone = newPhone(world, world.owner, 'ttl-info');
    const info = phone.onChallenge(expectEvent(car.handle(phone.start(), vehicleContext(world)), 'reply').reply);
    expect(info.ok && info.value).toEqual({ carTime: T0, ttlMs: 100, keyListVersion: 1 });
  });

  it('rejects a TTL outside 1..65535 ms at construction', () => {
    for (const ttl of [0, -1, 65_536, 1.5]) {
      expect(() => new VehicleSession({ crypto, identitySeed: world.car.seed, random: () => new Uint8Array(32), challengeTtlMs: ttl })).toThrow(CarkeyError);
    }
  });
});

describe('misbinding', () => {
  it('a CHALLENGE from a car with another identity key is CK_PROTO_BAD_CAR_SIGNATURE', () => {
    // The phone pinned `world.car`; a spoofing car signs with its own key.
    const spoof = pairedWorld({ car: 'spoofed car' });
    const end = stopped(runUnlock(world, { seedLabel: 'spoof', carIdentityKey: spoof.car.publicKey }));
    expect(end).toMatchObject({ stage: 'CHALLENGE', rejectedBy: 'phone', code: 'CK_PROTO_BAD_CAR_SIGNATURE' });
  });

  it('a CHALLENGE signed by the right car for another HELLO is CK_PROTO_BAD_CAR_SIGNATURE', () => {
    const a = completed(runUnlock(world, { seedLabel: 'hello-a' }));
    const phone = newPhone(world, world.owner, 'hello-b');
    phone.start();
    failureOf(phone.onChallenge(a.messages.CHALLENGE ?? new Uint8Array(0)), 'CK_PROTO_BAD_CAR_SIGNATURE');
  });

  it('a REQUEST signed over another transcript is CK_PROTO_BAD_PHONE_SIGNATURE', () => {
    const opened = openUnlock(world, 'wrong-th');
    const request = craftRequest(opened, ownerRequestBody(world.owner), world.owner, crypto.hash(Uint8Array.of(1, 2, 3)));
    expect(expectEvent(opened.car.handle(request, opened.context), 'refuse').error.code).toBe('CK_PROTO_BAD_PHONE_SIGNATURE');
  });

  it('a REQUEST naming one identity but signed by another key is CK_PROTO_BAD_PHONE_SIGNATURE', () => {
    const opened = openUnlock(world, 'wrong-signer');
    const request = craftRequest(opened, ownerRequestBody(world.owner), stranger);
    expect(expectEvent(opened.car.handle(request, opened.context), 'refuse').error.code).toBe('CK_PROTO_BAD_PHONE_SIGNATURE');
  });

  it('a small-order or non-canonical phone identity key is refused before the signature', () => {
    for (const [key, code] of [
      [SMALL_ORDER_KEY, 'CK_CRYPTO_SMALL_ORDER_KEY'],
      [NONCANONICAL_KEY, 'CK_CRYPTO_NONCANONICAL_KEY'],
    ] as const) {
      const opened = openUnlock(world, `weak-${code}`);
      const request = craftRequest(opened, { ...ownerRequestBody(world.owner), identity: key }, undefined);
      const event = expectEvent(opened.car.handle(request, opened.context), 'refuse');
      expect(event.error.code).toBe(code);
      expect(isRefuseBytes(event.reply)).toBe(true);
    }
  });

  it('pairing: a small-order or non-canonical identity in PAIR_CONFIRM is refused', () => {
    for (const [key, code] of [
      [SMALL_ORDER_KEY, 'CK_CRYPTO_SMALL_ORDER_KEY'],
      [NONCANONICAL_KEY, 'CK_CRYPTO_NONCANONICAL_KEY'],
    ] as const) {
      const opened = openPairing(world, `weak-pair-${code}`);
      const confirm = craftPairConfirm(opened, { identity: key, name: 'mallory', keyList: world.keyList.bytes }, undefined);
      expect(expectEvent(opened.car.handle(confirm, opened.context), 'refuse').error.code).toBe(code);
    }
  });

  it('pairing: PAIR_CONFIRM signed by another key than the identity it names is refused', () => {
    const opened = openPairing(world, 'pair-wrong-signer');
    const confirm = craftPairConfirm(opened, { identity: world.owner.publicKey, name: 'alice', keyList: world.keyList.bytes }, stranger);
    expect(expectEvent(opened.car.handle(confirm, opened.context), 'refuse').error.code).toBe('CK_PROTO_BAD_PHONE_SIGNATURE');
  });

  it('a HELLO with a low-order X25519 key is refused (all-zero shared secret)', () => {
    const car = newCar(world, 'low-order');
    const hello = encodeHello({ ephemeral: new Uint8Array(32), nonce: new Uint8Array(16) });
    expect(expectEvent(car.handle(hello, vehicleContext(world)), 'refuse').error.code).toBe('CK_CRYPTO_ZERO_SHARED_SECRET');
  });

  it('the phone refuses a correctly signed CHALLENGE carrying a low-order X25519 key', () => {
    const phone = newPhone(world, world.owner, 'low-order-challenge');
    const hello = phone.start();
    const body = encodeChallengeBody({ ephemeral: new Uint8Array(32), challenge: new Uint8Array(16), carTime: T0, ttlMs: 3000, keyListVersion: 1 });
    const challenge = concatBytes(body, crypto.sign(world.car.seed, concatBytes(LABELS.challenge, hello, body)));
    failureOf(phone.onChallenge(challenge), 'CK_CRYPTO_ZERO_SHARED_SECRET');
  });

  it('credential kinds: owner with a credential, unknown kinds and undecodable grants are refused', () => {
    const grant = grantFor(world, world.owner).bytes;
    const cases = [
      { credentialKind: CredentialKind.owner, credential: grant, code: 'CK_CODEC_BAD_VALUE' },
      { credentialKind: 7, credential: new Uint8Array(0), code: 'CK_CODEC_BAD_VALUE' },
      { credentialKind: CredentialKind.grant, credential: grant.subarray(1), code: 'CK_CODEC_BAD_VALUE' },
      { credentialKind: CredentialKind.grant, credential: new Uint8Array(0), code: 'CK_CODEC_BAD_VALUE' },
    ] as const;
    cases.forEach((c, index) => {
      const opened = openUnlock(world, `kind-${index}`);
      const request = craftRequest(opened, { ...ownerRequestBody(world.owner), credentialKind: c.credentialKind, credential: c.credential }, world.owner);
      expect(expectEvent(opened.car.handle(request, opened.context), 'refuse').error.code).toBe(c.code);
    });
  });

  it('an unknown command code reaches the daemon as undefined (it decides), with the phone authenticated', () => {
    const opened = openUnlock(world, 'unknown-command');
    const request = craftRequest(opened, { ...ownerRequestBody(world.owner), command: 200 }, world.owner);
    const event = expectEvent(opened.car.handle(request, opened.context), 'request');
    expect(event.command).toBeUndefined();
    expect(opened.car.authenticated).toBe(true);
  });
});

describe('state discipline', () => {
  it('messages out of order are refused and the session closes', () => {
    const end = completed(runUnlock(world, { seedLabel: 'order' }));
    const hello = end.messages.HELLO ?? new Uint8Array(0);
    // HELLO again on an open session.
    expect(expectEvent(end.car.handle(hello, end.context), 'refuse').error.code).toBe('CK_PROTO_UNEXPECTED_MESSAGE');
    // Anything after the close.
    expect(expectEvent(end.car.handle(hello, end.context), 'refuse').error.code).toBe('CK_PROTO_SESSION_CLOSED');
    // A REQUEST before any CHALLENGE.
    const fresh = newCar(world, 'order-fresh');
    expect(expectEvent(fresh.handle(end.messages.REQUEST ?? new Uint8Array(0), end.context), 'refuse').error.code).toBe('CK_PROTO_UNEXPECTED_MESSAGE');
  });

  it('the phone API refuses local misuse with a CarkeyError', () => {
    const phone = newPhone(world, world.owner, 'misuse');
    expect(() => phone.request({ kind: 'owner' }, 'unlock')).toThrow(CarkeyError);
    expect(() => phone.command('lock')).toThrow(CarkeyError);
    failureOf(phone.onChallenge(new Uint8Array(128)), 'CK_PROTO_UNEXPECTED_MESSAGE');
    failureOf(phone.onResult(new Uint8Array(40)), 'CK_PROTO_UNEXPECTED_MESSAGE');
    phone.start();
    expect(() => phone.start()).toThrow(CarkeyError);
    const end = completed(runUnlock(world, { seedLabel: 'misuse-2' }));
    expect(() => end.phone.request({ kind: 'owner' }, 'unlock')).toThrow(CarkeyError);
    end.phone.command('lock');
    expect(() => end.phone.command('lock')).toThrow(CarkeyError);
  });

  it('a denied request is answered in a sealed RESULT with its category, and the session stays usable', () => {
    const end = completed(
      runUnlock(world, {
        seedLabel: 'denied',
        command: 'start',
        followUp: 'lock',
        respond: (event) => (event.command === 'start' ? { status: 'denied', category: 'pin' } : { status: 'ok', payload: Uint8Array.of(1) }),
      }),
    );
    expect(end.results).toEqual([
      { status: 'denied', category: 'pin' },
      { status: 'ok', payload: Uint8Array.of(1) },
    ]);
    expect(end.requests.map((r) => [r.command, r.first, r.seq])).toEqual([
      ['start', true, 0],
      ['lock', false, 1],
    ]);
  });

  it('respond without a pending request, and finishPairing without a confirmation, throw CarkeyError', () => {
    const car = newCar(world, 'respond');
    expect(() => car.respond(0, { status: 'ok' })).toThrow(CarkeyError);
    expect(() => car.finishPairing({ accepted: false, error: new CarkeyError('CK_PROTO_PAIRING_NOT_CONFIRMED') })).toThrow(CarkeyError);
  });
});

describe('pairing presence and confirmation', () => {
  it('a PAIR_HELLO while pairing mode is closed is refused with CK_PAIRING_NOT_ACTIVE', () => {
    const end = runPairing(world, { seedLabel: 'closed', pairingOpen: false });
    expect(end).toMatchObject({ ok: false, stage: 'PAIR_HELLO', rejectedBy: 'car', code: 'CK_PAIRING_NOT_ACTIVE', phoneSaw: 'CK_PROTO_REFUSED' });
    if (!end.ok) expect(end.carReply).toEqual(REFUSE_BYTES);
  });

  it('pairing mode closing before PAIR_REVEAL ends pairing with CK_PAIRING_NOT_ACTIVE', () => {
    const recorded = runPairing(world, { seedLabel: 'closing' });
    if (!recorded.ok) throw new Error('pairing failed');
    const car = carBeforePairing(world, { seedLabel: 'closing' }, recorded.messages, 'PAIR_REVEAL');
    const event = expectEvent(car.handle(recorded.messages.PAIR_REVEAL ?? new Uint8Array(0), vehicleContext(world, { pairingOpen: false })), 'refuse');
    expect(event.error.code).toBe('CK_PAIRING_NOT_ACTIVE');
  });

  it('a refusal after PAIR_CONFIRM is CK_PROTO_PAIRING_NOT_CONFIRMED on the phone', () => {
    const opened = openPairing(world, 'not-confirmed');
    const list = signList(world, world.owner);
    const confirm = opened.pairing.confirm(list.bytes, 'alice');
    expectEvent(opened.car.handle(confirm, opened.context), 'pair-confirm');
    const reply = opened.car.finishPairing({ accepted: false, error: new CarkeyError('CK_PROTO_PAIRING_NOT_CONFIRMED') });
    expect(reply).toEqual(REFUSE_BYTES);
    failureOf(opened.pairing.onResult(reply), 'CK_PROTO_PAIRING_NOT_CONFIRMED');
    expect(opened.car.closed).toBe(true);
  });

  it('a man in the middle with its own keys cannot make both screens show the same code', () => {
    const mallory = pairedWorld({ car: 'mallory car', owner: 'mallory phone' });
    const context = vehicleContext(world, { pairingOpen: true, pairReady: { status: 'ready', epoch: 0, requiredVersion: 1, keyList: new Uint8Array(0) } });
    const victim = newPhonePairing(world.owner, 'mitm-victim');
    const fakeCar = newCar(mallory, 'mitm-fake-car');
    const fakePhone = newPhonePairing(mallory.owner, 'mitm-fake-phone');
    const realCar = newCar(world, 'mitm-real-car');
    // Victim ↔ Mallory (acting as the car).
    const victimChallenge = victim.onChallenge(expectEvent(fakeCar.handle(victim.start(), context), 'reply').reply);
    expect(victimChallenge.ok && victimChallenge.value.carIdentityKey).toEqual(mallory.car.publicKey);
    const victimReveal = victim.reveal();
    if (!victimReveal.ok) throw victimReveal.error;
    const victimSide = expectEvent(fakeCar.handle(victimReveal.value.message, context), 'pair-code');
    // Mallory (acting as the phone) ↔ the real car.
    expect(fakePhone.onChallenge(expectEvent(realCar.handle(fakePhone.start(), context), 'reply').reply).ok).toBe(true);
    const fakeReveal = fakePhone.reveal();
    if (!fakeReveal.ok) throw fakeReveal.error;
    const carScreen = expectEvent(realCar.handle(fakeReveal.value.message, context), 'pair-code').code;
    expect(victimSide.code).toBe(victimReveal.value.code);
    expect(victimReveal.value.code).not.toBe(carScreen);
  });
});
