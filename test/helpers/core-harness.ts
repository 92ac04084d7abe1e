/**
 * Shared builders for the core protocol tests: named parties, a paired car and
 * owner ("world"), grants and key lists, and drivers that run a complete
 * unlock or pairing exchange between the real `VehicleSession` and
 * `PhoneSession` / `PhonePairing`, recording every message sent.
 *
 * Guarantees: everything is deterministic (seeded RNG, fixed seeds, fixed
 * times), so two runs with the same seed label produce identical messages up
 * to the first mutation; a driver never throws for a rejected message — it
 * reports where the exchange stopped, who refused and with which catalog
 * code. It throws only when the state machines do something no test expects
 * (an event of the wrong kind), which fails the calling test loudly.
 */
import { concatBytes, equalBytes } from '../../src/core/bytes.js';
import { deriveSessionKeys, SealedChannel } from '../../src/core/channel-keys.js';
import { Writer } from '../../src/core/codec.js';
import {
  acceptKeyList,
  containsKey,
  CREDENTIAL_FORMAT,
  decodeKeyList,
  signGrant,
  signKeyList,
  type Grant,
  type GrantBody,
  type KeyList,
  type KeyListBody,
} from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { CarkeyError, type ErrorCode } from '../../src/core/errors.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { LABELS } from '../../src/core/labels.js';
import {
  CredentialKind,
  decodeChallenge,
  decodePairChallenge,
  encodePairConfirmBody,
  encodeRequestBody,
  MessageType,
  REFUSE_BYTES,
  type PairConfirmBody,
  type RequestBody,
} from '../../src/core/messages.js';
import { PhonePairing, PhoneSession, type CommandResult, type PairingOutcome, type PhoneCredential } from '../../src/core/phone-session.js';
import { Command, Permission, Role, type CommandName } from '../../src/core/roles.js';
import { VehicleSession, type Outcome, type VehicleContext, type VehicleEvent } from '../../src/core/vehicle-session.js';
import { fixedSeed, seededRandom } from './core-fixtures.js';

/** The fast (OpenSSL) backend: same bytes as tweetnacl, much faster for the big tables. */
export const crypto = createCrypto('node');

/** A fixed trusted wall time for documents and decisions (2023-11-14). */
export const T0 = 1_700_000_000_000;
export const DAY_MS = 86_400_000;

export interface Party {
  readonly name: string;
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
}

export function party(name: string): Party {
  const seed = fixedSeed(name);
  return { name, seed, publicKey: crypto.publicKeyFromSeed(seed) };
}

export interface World {
  readonly car: Party;
  readonly owner: Party;
  readonly vehicleId: Uint8Array;
  /** Version 1, signed by the owner, naming the owner. */
  readonly keyList: KeyList;
  readonly advSecret: Uint8Array;
}

/** A car already paired with one owner (`owner` in key list version 1). */
export function pairedWorld(names: { readonly car?: string; readonly owner?: string } = {}): World {
  const car = party(names.car ?? 'car');
  const owner = party(names.owner ?? 'owner');
  const vehicleId = vehicleIdOf(crypto, car.publicKey);
  const keyList = signKeyList(crypto, owner.seed, {
    vehicleId,
    version: 1,
    issuedAt: T0,
    owners: [owner.publicKey],
    revokedSerials: [],
    revokedKeys: [],
  });
  return { car, owner, vehicleId, keyList, advSecret: new Uint8Array(32).fill(0xa5) };
}

/** Sign a key list for `world`'s vehicle; unspecified fields default to version 1 naming the owner. */
export function signList(world: World, signer: Party, body: Partial<KeyListBody> = {}): KeyList {
  return signKeyList(crypto, signer.seed, {
    vehicleId: world.vehicleId,
    version: 1,
    issuedAt: T0,
    owners: [world.owner.publicKey],
    revokedSerials: [],
    revokedKeys: [],
    ...body,
  });
}

export type GrantFields = Partial<Omit<GrantBody, 'issuer' | 'subject'>>;

/** A valid guest grant for `subject` issued by the world's owner, with overrides. */
export function grantFor(world: World, subject: Party, fields: GrantFields = {}, issuer: Party = world.owner): Grant {
  return signGrant(crypto, issuer.seed, {
    vehicleId: world.vehicleId,
    serial: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 1),
    subject: subject.publicKey,
    role: 'guest',
    permissions: Permission.unlock | Permission.lock,
    notBefore: T0 - DAY_MS,
    notAfter: T0 + DAY_MS,
    ...fields,
  });
}

/**
 * Encode and sign a grant body WITHOUT the shape check `signGrant` applies, to
 * build grants a careless or malicious issuer could produce (too long a
 * window, permissions beyond the role).
 */
export function signGrantUnchecked(issuer: Party, body: Omit<GrantBody, 'issuer'>): Uint8Array {
  const encoded = new Writer()
    .u8(CREDENTIAL_FORMAT)
    .fixed(body.vehicleId, 16)
    .u32(body.epoch ?? 0)
    .fixed(body.serial, 8)
    .fixed(issuer.publicKey, 32)
    .fixed(body.subject, 32)
    .u8(Role[body.role])
    .u16(body.permissions)
    .time(body.notBefore)
    .time(body.notAfter)
    .finish();
  const signature = crypto.sign(issuer.seed, new Writer().raw(LABELS.grant).raw(encoded).finish());
  return new Writer().raw(encoded).raw(signature).finish();
}

export function vehicleContext(world: World, overrides: Partial<VehicleContext> = {}): VehicleContext {
  return {
    now: 10_000,
    carTime: T0,
    keyListVersion: world.keyList.version,
    pairingOpen: false,
    pairReady: { status: 'ready', epoch: world.keyList.epoch, requiredVersion: world.keyList.version + 1, keyList: world.keyList.bytes },
    ...overrides,
  };
}

export function newCar(world: World, seedLabel: string, challengeTtlMs?: number): VehicleSession {
  return new VehicleSession({ crypto, identitySeed: world.car.seed, random: seededRandom(`${seedLabel}/car`), challengeTtlMs });
}

export function newPhone(world: World, who: Party, seedLabel: string, carIdentityKey: Uint8Array = world.car.publicKey): PhoneSession {
  return new PhoneSession({ crypto, random: seededRandom(`${seedLabel}/phone`), identitySeed: who.seed, carIdentityKey });
}

export function newPhonePairing(who: Party, seedLabel: string): PhonePairing {
  return new PhonePairing({ crypto, random: seededRandom(`${seedLabel}/phone`), identitySeed: who.seed });
}

/** Narrow a vehicle event to the expected kind, failing the test otherwise. */
export function expectEvent<K extends VehicleEvent['kind']>(event: VehicleEvent, kind: K): Extract<VehicleEvent, { kind: K }> {
  if (event.kind !== kind) {
    const detail = event.kind === 'refuse' ? `refuse ${event.error.code}: ${event.error.message}` : event.kind;
    throw new Error(`expected a ${kind} event, got ${detail}`);
  }
  return event as Extract<VehicleEvent, { kind: K }>;
}

/** The error of a failed Result, which must be one of `codes` (any code when none given). */
export function failureOf(result: { readonly ok: boolean; readonly error?: CarkeyError }, ...codes: ErrorCode[]): CarkeyError {
  const error = result.error;
  if (result.ok || !(error instanceof CarkeyError)) throw new Error('expected a failed Result carrying a CarkeyError');
  if (codes.length > 0 && !codes.includes(error.code)) throw new Error(`expected ${codes.join(' or ')}, got ${error.code}: ${error.message}`);
  return error;
}

/** A copy of `bytes` with bit `bit` (0 = most significant bit of byte 0) flipped. */
export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  const index = Math.floor(bit / 8);
  out[index] = (out[index] ?? 0) ^ (0x80 >>> (bit % 8));
  return out;
}

// --- unlock exchange driver ---------------------------------------------------

export const UNLOCK_MESSAGES = ['HELLO', 'CHALLENGE', 'REQUEST', 'RESULT', 'COMMAND', 'COMMAND_RESULT'] as const;
export type UnlockMessage = (typeof UNLOCK_MESSAGES)[number];
export const PAIRING_MESSAGES = ['PAIR_HELLO', 'PAIR_CHALLENGE', 'PAIR_REVEAL', 'PAIR_READY', 'PAIR_CONFIRM', 'PAIR_RESULT'] as const;
export type PairingMessage = (typeof PAIRING_MESSAGES)[number];

/** Replace a message on the air (identity when the test does not tamper). */
export type Mutator<N extends string> = (name: N, bytes: Uint8Array) => Uint8Array;

/** Where an exchange stopped. `carReply` is what the car put on the wire when it refused. */
export interface Stopped<N extends string> {
  readonly ok: false;
  readonly stage: N;
  readonly rejectedBy: 'car' | 'phone' | 'person';
  readonly code: ErrorCode;
  readonly carReply?: Uint8Array;
  /** What the phone made of the car's refusal (CK_PROTO_REFUSED expected). */
  readonly phoneSaw?: ErrorCode;
  readonly messages: Partial<Record<N, Uint8Array>>;
}

export interface UnlockOptions {
  readonly phone?: Party;
  readonly credential?: PhoneCredential;
  readonly command?: CommandName;
  readonly args?: Uint8Array;
  /** A second command sent as COMMAND on the same session. */
  readonly followUp?: CommandName;
  readonly seedLabel?: string;
  readonly carIdentityKey?: Uint8Array;
  readonly context?: Partial<VehicleContext>;
  /** ms between CHALLENGE sent and REQUEST received. */
  readonly requestDelayMs?: number;
  readonly challengeTtlMs?: number;
  /** What the daemon answers to each request (default: ok, empty payload). */
  readonly respond?: (event: Extract<VehicleEvent, { kind: 'request' }>) => Outcome;
  readonly mutate?: Mutator<UnlockMessage>;
}

export interface UnlockDone {
  readonly ok: true;
  readonly messages: Record<UnlockMessage, Uint8Array | undefined>;
  readonly requests: Extract<VehicleEvent, { kind: 'request' }>[];
  readonly results: CommandResult[];
}

export interface UnlockSessions {
  readonly car: VehicleSession;
  readonly phone: PhoneSession;
  readonly context: VehicleContext;
}

export type UnlockEnd = (UnlockDone | Stopped<UnlockMessage>) & UnlockSessions;

/** When the car receives the REQUEST in `runUnlock` (the COMMAND comes 5 ms later). */
export function requestTime(context: VehicleContext, options: UnlockOptions): number {
  return context.now + (options.requestDelayMs ?? 5);
}

const keep = (_name: string, bytes: Uint8Array): Uint8Array => bytes;

/** Run HELLO → CHALLENGE → REQUEST → RESULT (→ COMMAND → RESULT) between a real car and phone. */
export function runUnlock(world: World, options: UnlockOptions = {}): UnlockEnd {
  const label = options.seedLabel ?? 'unlock';
  const mutate = options.mutate ?? keep;
  const car = newCar(world, label, options.challengeTtlMs);
  const phone = newPhone(world, options.phone ?? world.owner, label, options.carIdentityKey);
  const context = vehicleContext(world, options.context);
  const respond = options.respond ?? ((): Outcome => ({ status: 'ok' }));
  const messages: Record<UnlockMessage, Uint8Array | undefined> = {
    HELLO: undefined,
    CHALLENGE: undefined,
    REQUEST: undefined,
    RESULT: undefined,
    COMMAND: undefined,
    COMMAND_RESULT: undefined,
  };
  const sessions = { car, phone, context };
  const stop = (stage: UnlockMessage, rejectedBy: 'car' | 'phone', code: ErrorCode, extra: Partial<Stopped<UnlockMessage>> = {}): UnlockEnd => ({
    ok: false,
    stage,
    rejectedBy,
    code,
    messages: { ...messages },
    ...extra,
    ...sessions,
  });
  const send = (name: UnlockMessage, bytes: Uint8Array): Uint8Array => {
    const sent = mutate(name, bytes);
    messages[name] = sent;
    return sent;
  };

  const hello = send('HELLO', phone.start());
  const helloEvent = car.handle(hello, context);
  if (helloEvent.kind === 'refuse') {
    const phoneSaw = phone.onChallenge(helloEvent.reply);
    return stop('HELLO', 'car', helloEvent.error.code, { carReply: helloEvent.reply, phoneSaw: phoneSaw.ok ? undefined : phoneSaw.error.code });
  }
  const challenge = send('CHALLENGE', expectEvent(helloEvent, 'reply').reply);
  const checked = phone.onChallenge(challenge);
  if (!checked.ok) return stop('CHALLENGE', 'phone', checked.error.code);

  const requests: Extract<VehicleEvent, { kind: 'request' }>[] = [];
  const results: CommandResult[] = [];
  const exchange = (name: 'REQUEST' | 'COMMAND', bytes: Uint8Array, now: number): UnlockEnd | undefined => {
    const sent = send(name, bytes);
    const event = car.handle(sent, { ...context, now });
    if (event.kind === 'refuse') {
      const phoneSaw = phone.onResult(event.reply);
      return stop(name, 'car', event.error.code, { carReply: event.reply, phoneSaw: phoneSaw.ok ? undefined : phoneSaw.error.code });
    }
    const request = expectEvent(event, 'request');
    requests.push(request);
    const resultName = name === 'REQUEST' ? 'RESULT' : 'COMMAND_RESULT';
    const result = phone.onResult(send(resultName, car.respond(request.seq, respond(request))));
    if (!result.ok) return stop(resultName, 'phone', result.error.code);
    results.push(result.value);
    return undefined;
  };
  const requestAt = requestTime(context, options);
  const first = exchange('REQUEST', phone.request(options.credential ?? { kind: 'owner' }, options.command ?? 'unlock', options.args), requestAt);
  if (first !== undefined) return first;
  if (options.followUp !== undefined) {
    const second = exchange('COMMAND', phone.command(options.followUp), requestAt + 5);
    if (second !== undefined) return second;
  }
  return { ok: true, messages, requests, results, ...sessions };
}

// --- pairing exchange driver ----------------------------------------------------

export interface PairingOptions {
  readonly phone?: Party;
  /** The car's key list before pairing (undefined: a factory-new car). */
  readonly current?: KeyList;
  readonly name?: string;
  readonly seedLabel?: string;
  readonly pairingOpen?: boolean;
  readonly mutate?: Mutator<PairingMessage>;
}

export interface PairingDone {
  readonly ok: true;
  readonly messages: Record<PairingMessage, Uint8Array | undefined>;
  readonly outcome: PairingOutcome;
  readonly keyList: KeyList;
  readonly code: string;
}

export type PairingEnd = (PairingDone | Stopped<PairingMessage>) & { readonly car: VehicleSession; readonly pairing: PhonePairing; readonly context: VehicleContext };

function pairingContext(world: World, options: PairingOptions): VehicleContext {
  return vehicleContext(world, {
    pairingOpen: options.pairingOpen ?? true,
    pairReady: { status: 'ready', epoch: options.current?.epoch ?? 0, requiredVersion: (options.current?.version ?? 0) + 1, keyList: options.current?.bytes ?? new Uint8Array(0) },
    keyListVersion: options.current?.version ?? 0,
  });
}

/**
 * Run owner pairing. The phone proposes the next key list: the current owners
 * plus itself, version current + 1, signed by itself. The car side applies
 * what the daemon applies (acceptKeyList via pairing, and the pairing phone
 * must be an owner in it) and confirms as if the button was pressed.
 */
export function runPairing(world: World, options: PairingOptions = {}): PairingEnd {
  const label = options.seedLabel ?? 'pairing';
  const mutate = options.mutate ?? keep;
  const who = options.phone ?? world.owner;
  const car = newCar(world, label);
  const pairing = newPhonePairing(who, label);
  const context = pairingContext(world, options);
  const messages: Record<PairingMessage, Uint8Array | undefined> = {
    PAIR_HELLO: undefined,
    PAIR_CHALLENGE: undefined,
    PAIR_REVEAL: undefined,
    PAIR_READY: undefined,
    PAIR_CONFIRM: undefined,
    PAIR_RESULT: undefined,
  };
  const sessions = { car, pairing, context };
  const stop = (stage: PairingMessage, rejectedBy: 'car' | 'phone' | 'person', code: ErrorCode, extra: Partial<Stopped<PairingMessage>> = {}): PairingEnd => ({
    ok: false,
    stage,
    rejectedBy,
    code,
    messages: { ...messages },
    ...extra,
    ...sessions,
  });
  const send = (name: PairingMessage, bytes: Uint8Array): Uint8Array => {
    const sent = mutate(name, bytes);
    messages[name] = sent;
    return sent;
  };

  const helloEvent = car.handle(send('PAIR_HELLO', pairing.start()), context);
  if (helloEvent.kind === 'refuse') {
    const phoneSaw = pairing.onChallenge(helloEvent.reply);
    return stop('PAIR_HELLO', 'car', helloEvent.error.code, { carReply: helloEvent.reply, phoneSaw: phoneSaw.ok ? undefined : phoneSaw.error.code });
  }
  const checked = pairing.onChallenge(send('PAIR_CHALLENGE', expectEvent(helloEvent, 'reply').reply));
  if (!checked.ok) return stop('PAIR_CHALLENGE', 'phone', checked.error.code);

  const reveal = pairing.reveal();
  if (!reveal.ok) return stop('PAIR_REVEAL', 'phone', reveal.error.code);
  const revealEvent = car.handle(send('PAIR_REVEAL', reveal.value.message), context);
  if (revealEvent.kind === 'refuse') {
    const phoneSaw = pairing.onReady(revealEvent.reply);
    return stop('PAIR_REVEAL', 'car', revealEvent.error.code, { carReply: revealEvent.reply, phoneSaw: phoneSaw.ok ? undefined : phoneSaw.error.code });
  }
  const codeEvent = expectEvent(revealEvent, 'pair-code');
  const ready = pairing.onReady(send('PAIR_READY', codeEvent.reply));
  if (!ready.ok) return stop('PAIR_READY', 'phone', ready.error.code);
  // The person compares the two screens and stops if they differ.
  if (codeEvent.code !== reveal.value.code) return stop('PAIR_READY', 'person', 'CK_PROTO_PAIRING_NOT_CONFIRMED');

  const carList = ready.value.keyList.length === 0 ? undefined : decodeKeyList(ready.value.keyList);
  if (carList !== undefined && !carList.ok) return stop('PAIR_READY', 'phone', carList.error.code);
  const previousOwners = carList?.value.owners ?? [];
  const owners = containsKey(previousOwners, who.publicKey) ? previousOwners : [...previousOwners, who.publicKey];
  const proposed = signList(world, who, { version: (carList?.value.version ?? 0) + 1, owners });
  const confirmEvent = car.handle(send('PAIR_CONFIRM', pairing.confirm(proposed.bytes, options.name ?? who.name)), context);
  if (confirmEvent.kind === 'refuse') {
    const phoneSaw = pairing.onResult(confirmEvent.reply);
    return stop('PAIR_CONFIRM', 'car', confirmEvent.error.code, { carReply: confirmEvent.reply, phoneSaw: phoneSaw.ok ? undefined : phoneSaw.error.code });
  }
  const confirm = expectEvent(confirmEvent, 'pair-confirm');
  const decoded = decodeKeyList(confirm.keyList);
  const accepted = decoded.ok ? acceptKeyList(crypto, decoded.value, options.current, world.vehicleId, { viaPairing: true }) : decoded;
  const peerIsOwner = accepted.ok && containsKey(accepted.value.owners, confirm.peerKey);
  if (!accepted.ok || !peerIsOwner) {
    const reply = car.finishPairing({ accepted: false, error: new CarkeyError('CK_KEYLIST_NOT_OWNER') });
    return stop('PAIR_CONFIRM', 'car', accepted.ok ? 'CK_KEYLIST_NOT_OWNER' : accepted.error.code, { carReply: reply });
  }
  const result = pairing.onResult(send('PAIR_RESULT', car.finishPairing({ accepted: true, advSecret: world.advSecret, vehicleName: 'test car' })));
  if (!result.ok) return stop('PAIR_RESULT', 'phone', result.error.code);
  return { ok: true, messages, outcome: result.value, keyList: accepted.value, code: codeEvent.code, ...sessions };
}

// --- replaying a recorded exchange ------------------------------------------------
//
// Fresh sessions put in the state just before one message by replaying a
// recorded, unmodified exchange with the same options (same seed label, so the
// same randomness and byte-identical messages). Used to deliver thousands of
// tampered copies of one message without re-running the whole exchange.

function recorded<N extends string>(messages: Partial<Record<N, Uint8Array | undefined>>, name: N): Uint8Array {
  const bytes = messages[name];
  if (bytes === undefined) throw new Error(`the recorded exchange has no ${name}`);
  return bytes;
}

function sameBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  if (!equalBytes(a, b)) throw new Error(`replay diverged from the recording at ${what}`);
}

/** A car that has received the recorded messages before `stage` (and answered the REQUEST with ok). */
export function carBeforeUnlock(world: World, options: UnlockOptions, messages: Partial<Record<UnlockMessage, Uint8Array | undefined>>, stage: 'HELLO' | 'REQUEST' | 'COMMAND'): VehicleSession {
  const car = newCar(world, options.seedLabel ?? 'unlock', options.challengeTtlMs);
  const context = vehicleContext(world, options.context);
  if (stage === 'HELLO') return car;
  sameBytes(expectEvent(car.handle(recorded(messages, 'HELLO'), context), 'reply').reply, recorded(messages, 'CHALLENGE'), 'CHALLENGE');
  if (stage === 'REQUEST') return car;
  const request = expectEvent(car.handle(recorded(messages, 'REQUEST'), { ...context, now: requestTime(context, options) }), 'request');
  sameBytes(car.respond(request.seq, { status: 'ok' }), recorded(messages, 'RESULT'), 'RESULT');
  return car;
}

/** A phone that has sent/received the recorded messages before `stage`. */
export function phoneBeforeUnlock(world: World, options: UnlockOptions, messages: Partial<Record<UnlockMessage, Uint8Array | undefined>>, stage: 'CHALLENGE' | 'RESULT' | 'COMMAND_RESULT'): PhoneSession {
  const label = options.seedLabel ?? 'unlock';
  const phone = newPhone(world, options.phone ?? world.owner, label, options.carIdentityKey);
  sameBytes(phone.start(), recorded(messages, 'HELLO'), 'HELLO');
  if (stage === 'CHALLENGE') return phone;
  const checked = phone.onChallenge(recorded(messages, 'CHALLENGE'));
  if (!checked.ok) throw checked.error;
  sameBytes(phone.request(options.credential ?? { kind: 'owner' }, options.command ?? 'unlock', options.args), recorded(messages, 'REQUEST'), 'REQUEST');
  if (stage === 'RESULT') return phone;
  const result = phone.onResult(recorded(messages, 'RESULT'));
  if (!result.ok) throw result.error;
  if (options.followUp === undefined) throw new Error('COMMAND_RESULT needs a followUp command');
  sameBytes(phone.command(options.followUp), recorded(messages, 'COMMAND'), 'COMMAND');
  return phone;
}

/** A car that has received the recorded pairing messages before `stage`. */
export function carBeforePairing(world: World, options: PairingOptions, messages: Partial<Record<PairingMessage, Uint8Array | undefined>>, stage: 'PAIR_HELLO' | 'PAIR_REVEAL' | 'PAIR_CONFIRM'): VehicleSession {
  const car = newCar(world, options.seedLabel ?? 'pairing');
  const context = pairingContext(world, options);
  if (stage === 'PAIR_HELLO') return car;
  sameBytes(expectEvent(car.handle(recorded(messages, 'PAIR_HELLO'), context), 'reply').reply, recorded(messages, 'PAIR_CHALLENGE'), 'PAIR_CHALLENGE');
  if (stage === 'PAIR_REVEAL') return car;
  sameBytes(expectEvent(car.handle(recorded(messages, 'PAIR_REVEAL'), context), 'pair-code').reply, recorded(messages, 'PAIR_READY'), 'PAIR_READY');
  return car;
}

/** A pairing phone that has sent/received the recorded messages before `stage`. */
export function phoneBeforePairing(world: World, options: PairingOptions, messages: Partial<Record<PairingMessage, Uint8Array | undefined>>, stage: 'PAIR_CHALLENGE' | 'PAIR_READY' | 'PAIR_RESULT'): PhonePairing {
  const pairing = newPhonePairing(options.phone ?? world.owner, options.seedLabel ?? 'pairing');
  sameBytes(pairing.start(), recorded(messages, 'PAIR_HELLO'), 'PAIR_HELLO');
  if (stage === 'PAIR_CHALLENGE') return pairing;
  const checked = pairing.onChallenge(recorded(messages, 'PAIR_CHALLENGE'));
  if (!checked.ok) throw checked.error;
  const reveal = pairing.reveal();
  if (!reveal.ok) throw reveal.error;
  sameBytes(reveal.value.message, recorded(messages, 'PAIR_REVEAL'), 'PAIR_REVEAL');
  if (stage === 'PAIR_READY') return pairing;
  const ready = pairing.onReady(recorded(messages, 'PAIR_READY'));
  if (!ready.ok) throw ready.error;
  // PAIR_CONFIRM only advances the phone's send counter; onResult does not depend on it.
  return pairing;
}

// --- hand-made peers -------------------------------------------------------------

export type SessionKeys = ReturnType<typeof deriveSessionKeys>;

/**
 * An unlock session in state `challenged`, plus the phone's half of the
 * session keys built by hand, so a test can seal any REQUEST plaintext (e.g. a
 * small-order identity key no honest PhoneSession can produce).
 * `carSide` holds the car's keys, to seal arbitrary RESULTs to `phone`.
 */
export interface OpenedUnlock {
  readonly car: VehicleSession;
  readonly phone: PhoneSession;
  readonly context: VehicleContext;
  readonly hello: Uint8Array;
  readonly challenge: Uint8Array;
  /** Transcript hash the phone signs in REQUEST. */
  readonly th: Uint8Array;
  readonly keys: SessionKeys;
  readonly phoneSide: SealedChannel;
  readonly carSide: SealedChannel;
}

export function openUnlock(world: World, seedLabel: string, who: Party = world.owner): OpenedUnlock {
  const car = newCar(world, seedLabel);
  const phone = newPhone(world, who, seedLabel);
  const context = vehicleContext(world);
  const hello = phone.start();
  const challenge = expectEvent(car.handle(hello, context), 'reply').reply;
  const verified = phone.onChallenge(challenge);
  if (!verified.ok) throw verified.error;
  // PhoneSession.start draws its X25519 secret first from its RNG: replay the stream.
  const phoneEphemeralSecret = seededRandom(`${seedLabel}/phone`)(32);
  const decoded = decodeChallenge(challenge);
  if (!decoded.ok) throw decoded.error;
  const shared = crypto.sharedSecret(phoneEphemeralSecret, decoded.value.ephemeral);
  if (!shared.ok) throw shared.error;
  const th = crypto.hash(hello, challenge);
  const keys = deriveSessionKeys(crypto, LABELS.sessionKeys, shared.value, th);
  return { car, phone, context, hello, challenge, th, keys, phoneSide: new SealedChannel(crypto, 'phone', keys), carSide: new SealedChannel(crypto, 'car', keys) };
}

/**
 * A pairing after PAIR_REVEAL, with hand-built phone keys. By default the
 * phone has also opened PAIR_READY (car in `pair-revealed`, phone ready to
 * confirm); with `{ readyOpened: false }` PAIR_READY is returned unopened.
 */
export interface OpenedPairing {
  readonly car: VehicleSession;
  readonly pairing: PhonePairing;
  readonly context: VehicleContext;
  readonly th: Uint8Array;
  readonly ready: Uint8Array;
  readonly keys: SessionKeys;
  readonly phoneSide: SealedChannel;
  /** The car's keys; its send counter matches the car's (past PAIR_READY). */
  readonly carSide: SealedChannel;
}

export function openPairing(world: World, seedLabel: string, who: Party = world.owner, options: { readonly readyOpened?: boolean } = {}): OpenedPairing {
  const car = newCar(world, seedLabel);
  const pairing = newPhonePairing(who, seedLabel);
  const context = vehicleContext(world, { pairingOpen: true, pairReady: { status: 'ready', epoch: 0, requiredVersion: 1, keyList: new Uint8Array(0) }, keyListVersion: 0 });
  const hello = pairing.start();
  const challenge = expectEvent(car.handle(hello, context), 'reply').reply;
  const checked = pairing.onChallenge(challenge);
  if (!checked.ok) throw checked.error;
  const reveal = pairing.reveal();
  if (!reveal.ok) throw reveal.error;
  const ready = expectEvent(car.handle(reveal.value.message, context), 'pair-code').reply;
  // PhonePairing.start draws its X25519 secret first from its RNG: replay the stream.
  const phoneEphemeralSecret = seededRandom(`${seedLabel}/phone`)(32);
  const decoded = decodePairChallenge(challenge);
  if (!decoded.ok) throw decoded.error;
  const shared = crypto.sharedSecret(phoneEphemeralSecret, decoded.value.ephemeral);
  if (!shared.ok) throw shared.error;
  const th = crypto.hash(hello, challenge, reveal.value.message);
  const keys = deriveSessionKeys(crypto, LABELS.pairKeys, shared.value, th);
  const phoneSide = new SealedChannel(crypto, 'phone', keys);
  const carSide = new SealedChannel(crypto, 'car', keys);
  // The car already sealed PAIR_READY with seq 0: keep carSide's counter in step.
  carSide.seal(MessageType.pairReady, new Uint8Array(0));
  if (options.readyOpened ?? true) {
    const openedReady = phoneSide.open(ready, [MessageType.pairReady]);
    if (!openedReady.ok) throw openedReady.error;
    const readyForPairing = pairing.onReady(ready);
    if (!readyForPairing.ok) throw readyForPairing.error;
  }
  return { car, pairing, context, th, ready, keys, phoneSide, carSide };
}

export function isRefuseBytes(bytes: Uint8Array | undefined): boolean {
  return bytes !== undefined && equalBytes(bytes, REFUSE_BYTES);
}

/** Seal a REQUEST with the hand-built phone keys: `body` signed by `signer` over `th` (zero signature when no signer). */
export function craftRequest(opened: OpenedUnlock, body: RequestBody, signer: Party | undefined, th: Uint8Array = opened.th): Uint8Array {
  const encoded = encodeRequestBody(body);
  const signature = signer === undefined ? new Uint8Array(64) : crypto.sign(signer.seed, concatBytes(LABELS.request, th, encoded));
  return opened.phoneSide.seal(MessageType.request, concatBytes(encoded, signature));
}

/** Seal a PAIR_CONFIRM with the hand-built phone keys, signed by `signer` over the pairing transcript. */
export function craftPairConfirm(opened: OpenedPairing, body: PairConfirmBody, signer: Party | undefined): Uint8Array {
  const encoded = encodePairConfirmBody(body);
  const signature = signer === undefined ? new Uint8Array(64) : crypto.sign(signer.seed, concatBytes(LABELS.pairConfirm, opened.th, encoded));
  return opened.phoneSide.seal(MessageType.pairConfirm, concatBytes(encoded, signature));
}

/** The REQUEST body an honest owner sends for `command`. */
export function ownerRequestBody(who: Party, command: CommandName = 'unlock'): RequestBody {
  return { identity: who.publicKey, credentialKind: CredentialKind.owner, credential: new Uint8Array(0), command: Command[command], args: new Uint8Array(0) };
}

/** fast-check settings shared by the core property tests: fixed seed, so failures reproduce. */
export const PROPERTY_SEED = 0x00c0ffee;
export function propertyRuns(numRuns: number): { readonly seed: number; readonly numRuns: number } {
  return { seed: PROPERTY_SEED, numRuns };
}
