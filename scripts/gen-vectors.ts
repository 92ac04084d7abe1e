/**
 * Generates test/vectors/protocol.json: machine-readable protocol vectors for
 * phone-side implementers, produced by the reference core (src/core) alone.
 *
 * Guarantees: `generateVectors()` is pure and deterministic (fixed seeds, a
 * recording SHA-512 counter-mode RNG, fixed clocks): the same code gives the
 * same bytes, and both crypto backends give the same vectors. Every session
 * runs through the real VehicleSession / PhoneSession / PhonePairing state
 * machines; every derived value listed (ephemeral keys, shared secrets,
 * transcript hashes, session keys, nonces, plaintexts) is recomputed here and
 * checked against the bytes the state machines produced, so the file cannot
 * describe a construction the code does not use. Importing this module writes
 * nothing; only `main` (run as `node dist/scripts/gen-vectors.js`) does.
 *
 * Usage: npm run vectors [-- --out PATH] [-- --check]
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decide, revealOf, type Credential, type DenyCategory } from '../src/core/authorize.js';
import { concatBytes, toHex } from '../src/core/bytes.js';
import { Writer } from '../src/core/codec.js';
import { deriveSessionKeys, sealNonce } from '../src/core/channel-keys.js';
import {
  acceptKeyList,
  decodeGrant,
  decodeKeyList,
  signGrant,
  signKeyList,
  type Grant,
  type KeyList,
} from '../src/core/credentials.js';
import { createCrypto, type Crypto } from '../src/core/crypto/index.js';
import { CarkeyError, isCarkeyError, type Result } from '../src/core/errors.js';
import { DEFAULT_INTER_CHUNK_TIMEOUT_MS, DEFAULT_MAX_MESSAGE, MAX_MTU, MIN_MTU, ATT_OVERHEAD, splitMessage } from '../src/core/framing.js';
import {
  ADV_EPOCH_MS,
  ADV_FLAG_PAIRING,
  ADV_FORMAT,
  advertisingId,
  encodeServiceData,
  keyIdOf,
  vehicleIdOf,
} from '../src/core/identity.js';
import { LABELS, LABEL_STRINGS, type LabelName } from '../src/core/labels.js';
import {
  DenyCategoryCode,
  MessageType,
  PROTOCOL_VERSION,
  REFUSE_BYTES,
  ResultStatus,
  decodeChallenge,
  decodeCommandPlain,
  decodeHello,
  decodePairChallenge,
  decodePairConfirmPlain,
  decodePairHello,
  decodePairReadyPlain,
  decodePairResultPlain,
  decodePairReveal,
  decodeRequestPlain,
  decodeResultPlain,
  decodeSealed,
  type MessageTypeName,
} from '../src/core/messages.js';
import { pairingCode, pairingCommitment } from '../src/core/pairing-code.js';
import { encodeStatus, encodeVersion } from '../src/core/payloads.js';
import { PhonePairing, PhoneSession } from '../src/core/phone-session.js';
import { Command, Permission, Role, commandName, permissionNames } from '../src/core/roles.js';
import { DEFAULT_CHALLENGE_TTL_MS, VehicleSession, type Outcome, type VehicleContext, type VehicleEvent } from '../src/core/vehicle-session.js';
import { GATT } from '../src/transport/types.js';
import { RecordingRandom, SEED_DERIVATION, vectorSeed } from './vector-rng.js';
import { auditSection, cloudSection } from './gen-vectors-docs.js';

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** Bump when the layout of protocol.json changes (not the protocol itself). */
export const VECTORS_FORMAT_VERSION = 1;
export const DEFAULT_VECTORS_PATH = 'test/vectors/protocol.json';
/** The framings every message is shown at: the BLE minimum and a common phone MTU. */
export const VECTOR_MTUS = [23, 185] as const;

/** Wall time used by the car in every session: 2026-01-01T00:00:00.000Z. */
const CAR_TIME = Date.UTC(2026, 0, 1);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** Local policy the car decides with in these vectors. */
const POLICY = { relayBoundMs: 500, startPinRequired: false } as const;
const VEHICLE_NAME = 'carkey test car';
const OWNER_DEVICE_NAME = 'owner phone';

const PHONE_TO_CAR = 1;
const CAR_TO_PHONE = 2;

type Party = 'phone' | 'car';
interface SessionKeys {
  readonly phoneToCar: Uint8Array;
  readonly carToPhone: Uint8Array;
}

// --- small helpers ---------------------------------------------------------------

function internal(detail: string): CarkeyError {
  return new CarkeyError('CK_INTERNAL', `vector generation: ${detail}`);
}

function must<T>(result: Result<T>, what: string): T {
  if (!result.ok) throw internal(`${what}: ${result.error.message}`);
  return result.value;
}

function failureCode<T>(result: Result<T>, what: string): string {
  if (result.ok) throw internal(`${what} should have failed`);
  return result.error.code;
}

function expectEvent<K extends VehicleEvent['kind']>(event: VehicleEvent, kind: K, what: string): Extract<VehicleEvent, { kind: K }> {
  if (event.kind !== kind) {
    const detail = event.kind === 'refuse' ? ` (${event.error.code}: ${event.error.message})` : '';
    throw internal(`${what}: expected ${kind}, got ${event.kind}${detail}`);
  }
  return event as Extract<VehicleEvent, { kind: K }>;
}

function sameBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  if (toHex(a) !== toHex(b)) throw internal(`${what}: recomputed value differs from the session's bytes`);
}

const hex = toHex;

function typeName(code: number): MessageTypeName {
  const entry = (Object.entries(MessageType) as [MessageTypeName, number][]).find(([, value]) => value === code);
  if (entry === undefined) throw internal(`unknown message type ${code}`);
  return entry[0];
}

const WIRE_NAME: Readonly<Record<MessageTypeName, string>> = {
  hello: 'HELLO',
  challenge: 'CHALLENGE',
  request: 'REQUEST',
  result: 'RESULT',
  command: 'COMMAND',
  refuse: 'REFUSE',
  pairHello: 'PAIR_HELLO',
  pairChallenge: 'PAIR_CHALLENGE',
  pairReveal: 'PAIR_REVEAL',
  pairReady: 'PAIR_READY',
  pairConfirm: 'PAIR_CONFIRM',
  pairResult: 'PAIR_RESULT',
};

function chunksOf(message: Uint8Array): JsonObject {
  const out: JsonObject = {};
  for (const mtu of VECTOR_MTUS) out[`mtu${mtu}`] = splitMessage(message, mtu).map(hex);
  return out;
}

function nameOfCategory(code: number): string {
  const entry = Object.entries(DenyCategoryCode).find(([, value]) => value === code);
  return entry === undefined ? `unknown(${code})` : entry[0];
}

function nameOfStatus(code: number): string {
  const entry = Object.entries(ResultStatus).find(([, value]) => value === code);
  return entry === undefined ? `unknown(${code})` : entry[0];
}

// --- field descriptions ------------------------------------------------------------

function grantFields(grant: Grant): JsonObject {
  return {
    format: grant.bytes[0] ?? 0,
    vehicleId: hex(grant.vehicleId),
    serial: hex(grant.serial),
    issuer: hex(grant.issuer),
    subject: hex(grant.subject),
    role: { name: grant.role, code: Role[grant.role] },
    permissions: { mask: grant.permissions, names: permissionNames(grant.permissions) },
    notBefore: grant.notBefore,
    notAfter: grant.notAfter,
    signature: hex(grant.signature),
  };
}

function describeGrant(grant: Grant): JsonObject {
  return {
    hex: hex(grant.bytes),
    length: grant.bytes.length,
    fields: grantFields(grant),
    signatureInput: hex(concatBytes(LABELS.grant, grant.bytes.subarray(0, grant.bytes.length - 64))),
  };
}

function describeKeyList(list: KeyList): JsonObject {
  return {
    hex: hex(list.bytes),
    length: list.bytes.length,
    fields: {
      format: list.bytes[0] ?? 0,
      vehicleId: hex(list.vehicleId),
      version: list.version,
      issuedAt: list.issuedAt,
      owners: list.owners.map(hex),
      revokedSerials: list.revokedSerials.map(hex),
      revokedKeys: list.revokedKeys.map(hex),
      signer: hex(list.signer),
      signature: hex(list.signature),
    },
    signatureInput: hex(concatBytes(LABELS.keyList, list.bytes.subarray(0, list.bytes.length - 64))),
  };
}

function describeClear(type: number, bytes: Uint8Array, context: { readonly hello?: Uint8Array }): JsonObject {
  switch (type) {
    case MessageType.hello: {
      const m = must(decodeHello(bytes), 'HELLO');
      return { version: PROTOCOL_VERSION, type, ephemeral: hex(m.ephemeral), nonce: hex(m.nonce) };
    }
    case MessageType.challenge: {
      const m = must(decodeChallenge(bytes), 'CHALLENGE');
      const hello = context.hello;
      if (hello === undefined) throw internal('CHALLENGE needs its HELLO');
      return {
        version: PROTOCOL_VERSION,
        type,
        ephemeral: hex(m.ephemeral),
        challenge: hex(m.challenge),
        carTime: m.carTime,
        ttlMs: m.ttlMs,
        keyListVersion: m.keyListVersion,
        signature: hex(m.signature),
        signatureInput: hex(concatBytes(LABELS.challenge, hello, bytes.subarray(0, bytes.length - 64))),
      };
    }
    case MessageType.pairHello: {
      const m = must(decodePairHello(bytes), 'PAIR_HELLO');
      return { version: PROTOCOL_VERSION, type, ephemeral: hex(m.ephemeral), commitment: hex(m.commitment) };
    }
    case MessageType.pairChallenge: {
      const m = must(decodePairChallenge(bytes), 'PAIR_CHALLENGE');
      const hello = context.hello;
      if (hello === undefined) throw internal('PAIR_CHALLENGE needs its PAIR_HELLO');
      return {
        version: PROTOCOL_VERSION,
        type,
        ephemeral: hex(m.ephemeral),
        nonce: hex(m.nonce),
        carIdentity: hex(m.carIdentity),
        signature: hex(m.signature),
        signatureInput: hex(concatBytes(LABELS.pairChallenge, hello, bytes.subarray(0, bytes.length - 64))),
      };
    }
    case MessageType.pairReveal:
      return { version: PROTOCOL_VERSION, type, nonce: hex(must(decodePairReveal(bytes), 'PAIR_REVEAL')) };
    case MessageType.refuse:
      return { version: PROTOCOL_VERSION, type };
    default:
      throw internal(`type ${type} is not a cleartext message`);
  }
}

function describePlain(type: number, plaintext: Uint8Array, transcriptHash: Uint8Array): JsonObject {
  switch (type) {
    case MessageType.request: {
      const m = must(decodeRequestPlain(plaintext), 'REQUEST plaintext');
      const body = plaintext.subarray(0, plaintext.length - 64);
      return {
        identity: hex(m.identity),
        credentialKind: m.credentialKind,
        credential: hex(m.credential),
        command: { code: m.command, name: commandName(m.command) ?? null },
        args: hex(m.args),
        signature: hex(m.signature),
        signatureInput: hex(concatBytes(LABELS.request, transcriptHash, body)),
      };
    }
    case MessageType.command: {
      const m = must(decodeCommandPlain(plaintext), 'COMMAND plaintext');
      return { command: { code: m.command, name: commandName(m.command) ?? null }, args: hex(m.args) };
    }
    case MessageType.result: {
      const m = must(decodeResultPlain(plaintext), 'RESULT plaintext');
      return {
        requestSeq: m.requestSeq,
        status: { code: m.status, name: nameOfStatus(m.status) },
        category: { code: m.category, name: nameOfCategory(m.category) },
        payload: hex(m.payload),
      };
    }
    case MessageType.pairReady:
    {
      const m = must(decodePairReadyPlain(plaintext), 'PAIR_READY plaintext');
      return { status: m.status, epoch: m.epoch, requiredVersion: m.requiredVersion, keyList: hex(m.keyList) };
    }
    case MessageType.pairConfirm: {
      const m = must(decodePairConfirmPlain(plaintext), 'PAIR_CONFIRM plaintext');
      const body = plaintext.subarray(0, plaintext.length - 64);
      return {
        identity: hex(m.identity),
        name: m.name,
        keyList: hex(m.keyList),
        signature: hex(m.signature),
        signatureInput: hex(concatBytes(LABELS.pairConfirm, transcriptHash, body)),
      };
    }
    case MessageType.pairResult: {
      const m = must(decodePairResultPlain(plaintext), 'PAIR_RESULT plaintext');
      return { status: m.status, advSecret: hex(m.advSecret), vehicleName: m.vehicleName };
    }
    default:
      throw internal(`type ${type} is not sealed`);
  }
}

/**
 * Records the messages of one session in order. Cleartext messages are
 * described field by field; sealed ones are opened with the session keys
 * derived here (not by the state machines), which checks the derivation.
 */
class SessionLog {
  readonly messages: JsonObject[] = [];
  private keys: SessionKeys | undefined;
  private transcriptHash: Uint8Array | undefined;
  private hello: Uint8Array | undefined;

  constructor(private readonly crypto: Crypto) {}

  useKeys(keys: SessionKeys, transcriptHash: Uint8Array): void {
    this.keys = keys;
    this.transcriptHash = transcriptHash;
  }

  add(from: Party, bytes: Uint8Array, note?: string): JsonObject {
    const type = bytes[1] ?? 0;
    const name = typeName(type);
    const entry: JsonObject = {
      step: this.messages.length + 1,
      message: WIRE_NAME[name],
      direction: from === 'phone' ? 'phone→car' : 'car→phone',
    };
    if (note !== undefined) entry.note = note;
    entry.length = bytes.length;
    entry.hex = hex(bytes);
    if (type === MessageType.hello || type === MessageType.pairHello) this.hello = bytes;
    const sealed = decodeSealed(bytes);
    if (sealed.ok) {
      const { keys, transcriptHash } = this;
      if (keys === undefined || transcriptHash === undefined) throw internal(`${WIRE_NAME[name]} before session keys`);
      const direction = from === 'phone' ? PHONE_TO_CAR : CAR_TO_PHONE;
      const key = from === 'phone' ? keys.phoneToCar : keys.carToPhone;
      const nonce = sealNonce(type, sealed.value.seq, direction);
      const plaintext = must(this.crypto.open(sealed.value.box, nonce, key), `open ${WIRE_NAME[name]}`);
      entry.fields = {
        version: PROTOCOL_VERSION,
        type,
        seq: sealed.value.seq,
        box: hex(sealed.value.box),
      };
      entry.sealed = {
        key: from === 'phone' ? 'phoneToCar' : 'carToPhone',
        direction,
        nonce: hex(nonce),
        plaintext: hex(plaintext),
        plaintextFields: describePlain(type, plaintext, transcriptHash),
      };
    } else {
      entry.fields = describeClear(type, bytes, this.hello === undefined ? {} : { hello: this.hello });
    }
    entry.chunks = chunksOf(bytes);
    this.messages.push(entry);
    return entry;
  }
}

// --- parties -------------------------------------------------------------------------

interface Parties {
  readonly carSeed: Uint8Array;
  readonly carKey: Uint8Array;
  readonly vehicleId: Uint8Array;
  readonly ownerSeed: Uint8Array;
  readonly ownerKey: Uint8Array;
  readonly friendSeed: Uint8Array;
  readonly friendKey: Uint8Array;
  readonly strangerSeed: Uint8Array;
  readonly strangerKey: Uint8Array;
  readonly impostorSeed: Uint8Array;
  readonly lostPhoneKey: Uint8Array;
}

function makeParties(crypto: Crypto): Parties {
  const carSeed = vectorSeed('car');
  const carKey = crypto.publicKeyFromSeed(carSeed);
  const ownerSeed = vectorSeed('owner');
  const friendSeed = vectorSeed('friend');
  const strangerSeed = vectorSeed('stranger');
  return {
    carSeed,
    carKey,
    vehicleId: vehicleIdOf(crypto, carKey),
    ownerSeed,
    ownerKey: crypto.publicKeyFromSeed(ownerSeed),
    friendSeed,
    friendKey: crypto.publicKeyFromSeed(friendSeed),
    strangerSeed,
    strangerKey: crypto.publicKeyFromSeed(strangerSeed),
    impostorSeed: vectorSeed('impostor car'),
    lostPhoneKey: crypto.publicKeyFromSeed(vectorSeed('lost phone')),
  };
}

function describeParty(crypto: Crypto, name: string, role: string, extra: JsonObject = {}): JsonObject {
  const seed = vectorSeed(name);
  const publicKey = crypto.publicKeyFromSeed(seed);
  return { seedName: name, role, seed: hex(seed), publicKey: hex(publicKey), keyId: keyIdOf(crypto, publicKey), ...extra };
}

// --- unlock sessions --------------------------------------------------------------------

interface UnlockRun {
  readonly log: SessionLog;
  readonly car: VehicleSession;
  readonly phone: PhoneSession;
  readonly phoneRng: RecordingRandom;
  readonly carRng: RecordingRandom;
  readonly hello: Uint8Array;
  readonly challenge: Uint8Array;
  readonly derived: JsonObject;
}

/** HELLO → CHALLENGE through the real state machines, with every derived value recomputed. */
function openUnlockSession(
  crypto: Crypto,
  parties: Parties,
  label: string,
  phoneSeed: Uint8Array,
  context: VehicleContext,
  carSeed: Uint8Array = parties.carSeed,
): UnlockRun {
  const phoneRng = new RecordingRandom(`carkey vectors v1: ${label}/phone`);
  const carRng = new RecordingRandom(`carkey vectors v1: ${label}/car`);
  const car = new VehicleSession({ crypto, identitySeed: carSeed, random: carRng.source, challengeTtlMs: DEFAULT_CHALLENGE_TTL_MS });
  const phone = new PhoneSession({ crypto, random: phoneRng.source, identitySeed: phoneSeed, carIdentityKey: parties.carKey });
  const log = new SessionLog(crypto);
  const hello = phone.start();
  log.add('phone', hello);
  const challenge = expectEvent(car.handle(hello, context), 'reply', `${label} HELLO`).reply;
  log.add('car', challenge);

  const phoneEphemeral = crypto.x25519KeyPair(phoneRng.bytesOf(0));
  const carEphemeral = crypto.x25519KeyPair(carRng.bytesOf(0));
  sameBytes(phoneEphemeral.publicKey, hello.subarray(2, 34), 'phone ephemeral public key');
  sameBytes(carEphemeral.publicKey, challenge.subarray(2, 34), 'car ephemeral public key');
  sameBytes(phoneRng.bytesOf(1), hello.subarray(34, 50), 'HELLO nonce');
  sameBytes(carRng.bytesOf(1), challenge.subarray(34, 50), 'challenge');
  const shared = must(crypto.sharedSecret(phoneEphemeral.secretKey, carEphemeral.publicKey), 'phone X25519');
  sameBytes(must(crypto.sharedSecret(carEphemeral.secretKey, phoneEphemeral.publicKey), 'car X25519'), shared, 'X25519 both ways');
  const transcriptHash = crypto.hash(hello, challenge);
  const okm = crypto.hash(LABELS.sessionKeys, shared, transcriptHash);
  const keys = deriveSessionKeys(crypto, LABELS.sessionKeys, shared, transcriptHash);
  log.useKeys(keys, transcriptHash);
  return {
    log,
    car,
    phone,
    phoneRng,
    carRng,
    hello,
    challenge,
    derived: {
      phoneEphemeralPublic: hex(phoneEphemeral.publicKey),
      carEphemeralPublic: hex(carEphemeral.publicKey),
      sharedSecret: hex(shared),
      transcriptHash: hex(transcriptHash),
      transcriptHashInput: 'SHA-512(HELLO ‖ CHALLENGE), both complete messages',
      sessionKeyMaterial: hex(okm),
      phoneToCarKey: hex(keys.phoneToCar),
      carToPhoneKey: hex(keys.carToPhone),
    },
  };
}

function unlockRng(run: UnlockRun): JsonObject {
  return {
    phone: run.phoneRng.describe([
      ['X25519 ephemeral secret (HELLO)', 32],
      ['HELLO nonce', 16],
    ]),
    car: run.carRng.describe([
      ['X25519 ephemeral secret (CHALLENGE)', 32],
      ['challenge', 16],
    ]),
  };
}

interface DecisionRecord {
  readonly json: JsonObject;
  readonly outcome: Outcome | 'refuse';
}

function credentialJson(credential: Credential): JsonObject {
  return credential.kind === 'owner' ? { kind: 'owner' } : { kind: 'grant', serial: hex(credential.grant.serial) };
}

/** Run the pure access decision for one request and turn it into what the car sends. */
function decideFor(
  crypto: Crypto,
  parties: Parties,
  event: Extract<VehicleEvent, { kind: 'request' }>,
  keyList: KeyList,
  now: number,
  okPayload: Uint8Array = new Uint8Array(0),
): DecisionRecord {
  const command = event.command;
  if (command === undefined) throw internal('request for an unknown command');
  const decision = decide(crypto, {
    vehicleId: parties.vehicleId,
    keyList,
    peerKey: event.peerKey,
    credential: event.credential,
    command,
    now,
    proximity: { rssi: -55, near: true, responseTimeMs: event.responseTimeMs },
    policy: POLICY,
    pin: undefined,
  });
  if (decision.allow) {
    const json: JsonObject = { allow: true, role: decision.role, credential: credentialJson(event.credential), command, responseTimeMs: event.responseTimeMs };
    return { json, outcome: { status: 'ok', payload: okPayload } };
  }
  const category: DenyCategory | undefined = revealOf(decision.reason);
  const json: JsonObject = {
    allow: false,
    reason: decision.reason,
    revealed: category ?? null,
    credential: credentialJson(event.credential),
    command,
    responseTimeMs: event.responseTimeMs,
  };
  return { json, outcome: category === undefined ? 'refuse' : { status: 'denied', category } };
}

// --- the document ------------------------------------------------------------------------

function constants(): JsonObject {
  const labels: JsonObject = {};
  for (const name of Object.keys(LABEL_STRINGS) as LabelName[]) labels[name] = { text: LABEL_STRINGS[name], hex: hex(LABELS[name]) };
  return {
    protocolVersion: PROTOCOL_VERSION,
    labels,
    messageTypes: Object.fromEntries((Object.keys(MessageType) as MessageTypeName[]).map((name) => [WIRE_NAME[name], MessageType[name]])),
    commands: { ...Command },
    permissions: { ...Permission },
    roles: { ...Role },
    resultStatus: { ...ResultStatus },
    denyCategory: { ...DenyCategoryCode },
    credentialKind: { owner: 0, grant: 1 },
    gatt: { service: GATT.service, write: GATT.write, notify: GATT.notify },
    framing: {
      attOverhead: ATT_OVERHEAD,
      minMtu: MIN_MTU,
      maxMtu: MAX_MTU,
      maxMessage: DEFAULT_MAX_MESSAGE,
      interChunkTimeoutMs: DEFAULT_INTER_CHUNK_TIMEOUT_MS,
      startFlag: 0x80,
      reservedBit: 0x40,
      counterMask: 0x3f,
    },
    challengeTtlMsDefault: DEFAULT_CHALLENGE_TTL_MS,
    advertising: { epochMs: ADV_EPOCH_MS, format: ADV_FORMAT, flagPairing: ADV_FLAG_PAIRING },
    nonce: 'version u8 ‖ type u8 ‖ seq u32 big-endian ‖ direction u8 (1 phone→car, 2 car→phone) ‖ 17 zero bytes',
    sessionKeys: 'okm = SHA-512(label ‖ X25519 shared secret ‖ transcript hash); phoneToCar = okm[0..32], carToPhone = okm[32..64]',
  };
}

/** S + L (little-endian): a second encoding of the same signature that raw tweetnacl accepts. */
function malleate(signature: Uint8Array): Uint8Array {
  const order = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
  ];
  const out = Uint8Array.from(signature);
  let carry = 0;
  for (let i = 0; i < 32; i++) {
    const sum = (out[32 + i] ?? 0) + (order[i] ?? 0) + carry;
    out[32 + i] = sum & 0xff;
    carry = sum >> 8;
  }
  if (carry !== 0) throw internal('S + L overflowed 256 bits');
  return out;
}

function flipLastBit(bytes: Uint8Array): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[out.length - 1] = (out[out.length - 1] ?? 0) ^ 0x01;
  return out;
}

/** Build the whole vectors document. Pure and deterministic. */
export function generateVectors(crypto: Crypto = createCrypto('node')): JsonObject {
  const parties = makeParties(crypto);
  const { vehicleId } = parties;

  // (a) Owner pairing ------------------------------------------------------------------
  const pairPhoneRng = new RecordingRandom('carkey vectors v1: pairing/phone');
  const pairCarRng = new RecordingRandom('carkey vectors v1: pairing/car');
  const pairDaemonRng = new RecordingRandom('carkey vectors v1: pairing/daemon');
  const pairCar = new VehicleSession({ crypto, identitySeed: parties.carSeed, random: pairCarRng.source, challengeTtlMs: DEFAULT_CHALLENGE_TTL_MS });
  const pairPhone = new PhonePairing({ crypto, random: pairPhoneRng.source, identitySeed: parties.ownerSeed });
  const pairContext: VehicleContext = { now: 1_000, carTime: CAR_TIME, keyListVersion: 0, pairingOpen: true, pairReady: { status: 'ready', epoch: 0, requiredVersion: 1, keyList: new Uint8Array(0) } };
  const pairLog = new SessionLog(crypto);
  const pairHello = pairPhone.start();
  pairLog.add('phone', pairHello);
  const pairChallenge = expectEvent(pairCar.handle(pairHello, pairContext), 'reply', 'PAIR_HELLO').reply;
  pairLog.add('car', pairChallenge);
  const pinned = must(pairPhone.onChallenge(pairChallenge), 'phone checks PAIR_CHALLENGE');
  sameBytes(pinned.carIdentityKey, parties.carKey, 'car identity in PAIR_CHALLENGE');
  const reveal = must(pairPhone.reveal(), 'PAIR_REVEAL');
  const codeEvent = expectEvent(pairCar.handle(reveal.message, { ...pairContext, now: 1_200 }), 'pair-code', 'PAIR_REVEAL');
  if (codeEvent.code !== reveal.code) throw internal('pairing codes differ');

  const pairPhoneEphemeral = crypto.x25519KeyPair(pairPhoneRng.bytesOf(0));
  const pairCarEphemeral = crypto.x25519KeyPair(pairCarRng.bytesOf(0));
  const pairNonce = pairPhoneRng.bytesOf(1);
  const commitment = pairingCommitment(crypto, pairPhoneEphemeral.publicKey, pairNonce);
  sameBytes(commitment, pairHello.subarray(34, 66), 'commitment');
  sameBytes(pairPhoneEphemeral.publicKey, pairHello.subarray(2, 34), 'pairing phone ephemeral');
  sameBytes(pairCarEphemeral.publicKey, pairChallenge.subarray(2, 34), 'pairing car ephemeral');
  sameBytes(pairCarRng.bytesOf(1), pairChallenge.subarray(34, 50), 'pairing car nonce');
  const pairShared = must(crypto.sharedSecret(pairPhoneEphemeral.secretKey, pairCarEphemeral.publicKey), 'pairing X25519');
  const pairTh = crypto.hash(pairHello, pairChallenge, reveal.message);
  const pairKeys = deriveSessionKeys(crypto, LABELS.pairKeys, pairShared, pairTh);
  const code = pairingCode(crypto, pairTh);
  if (code !== reveal.code) throw internal('recomputed pairing code differs');
  const codeDigest = crypto.hash(LABELS.pairCode, pairTh);
  pairLog.useKeys(pairKeys, pairTh);
  pairLog.add('phone', reveal.message);
  pairLog.add('car', codeEvent.reply);
  const ready = must(pairPhone.onReady(codeEvent.reply), 'PAIR_READY');
  if (ready.keyList.length !== 0 || ready.requiredVersion !== 1) throw internal('an unpaired car sends an empty key list and asks for version 1');

  const keyListV1 = signKeyList(crypto, parties.ownerSeed, {
    vehicleId,
    version: 1,
    issuedAt: CAR_TIME,
    owners: [parties.ownerKey],
    revokedSerials: [],
    revokedKeys: [],
  });
  const pairConfirm = pairPhone.confirm(keyListV1.bytes, OWNER_DEVICE_NAME);
  pairLog.add('phone', pairConfirm);
  const confirmEvent = expectEvent(pairCar.handle(pairConfirm, { ...pairContext, now: 9_000 }), 'pair-confirm', 'PAIR_CONFIRM');
  const candidate = must(decodeKeyList(confirmEvent.keyList), 'key list in PAIR_CONFIRM');
  const installedV1 = must(acceptKeyList(crypto, candidate, undefined, vehicleId, { viaPairing: true }), 'accept key list v1');
  const advSecret = pairDaemonRng.source(32);
  const pairResult = pairCar.finishPairing({ accepted: true, advSecret, vehicleName: VEHICLE_NAME });
  pairLog.add('car', pairResult, 'sent after the person confirmed on the car (pairing button)');
  const pairing = must(pairPhone.onResult(pairResult), 'PAIR_RESULT');
  sameBytes(pairing.advSecret, advSecret, 'advertising secret');

  const pairingSection: JsonObject = {
    description:
      'First owner pairing of an unpaired car (pairing mode open, empty key list). The person compares the 6-digit code on phone and car, confirms on the phone (PAIR_CONFIRM), then confirms physically on the car (PAIR_RESULT).',
    context: { pairingOpen: true, pairReady: { status: 'ready', epoch: 0, requiredVersion: 1, keyList: '' }, keyListVersion: 0, carTime: CAR_TIME },
    rng: {
      phone: pairPhoneRng.describe([
        ['X25519 ephemeral secret (PAIR_HELLO)', 32],
        ['pairing nonce (committed in PAIR_HELLO, revealed in PAIR_REVEAL)', 16],
      ]),
      car: pairCarRng.describe([
        ['X25519 ephemeral secret (PAIR_CHALLENGE)', 32],
        ['PAIR_CHALLENGE nonce', 16],
      ]),
      daemon: pairDaemonRng.describe([['advertising secret (sent in PAIR_RESULT)', 32]]),
    },
    derived: {
      phoneEphemeralPublic: hex(pairPhoneEphemeral.publicKey),
      carEphemeralPublic: hex(pairCarEphemeral.publicKey),
      commitment: hex(commitment),
      commitmentInput: 'SHA-512(pair-commit label ‖ phone ephemeral public ‖ phone nonce)[0..32]',
      sharedSecret: hex(pairShared),
      transcriptHash: hex(pairTh),
      transcriptHashInput: 'SHA-512(PAIR_HELLO ‖ PAIR_CHALLENGE ‖ PAIR_REVEAL), complete messages',
      sessionKeyMaterial: hex(crypto.hash(LABELS.pairKeys, pairShared, pairTh)),
      phoneToCarKey: hex(pairKeys.phoneToCar),
      carToPhoneKey: hex(pairKeys.carToPhone),
      codeDigest: hex(codeDigest),
      codeValueU32: new DataView(codeDigest.buffer, codeDigest.byteOffset, 4).getUint32(0),
      code,
    },
    keyList: describeKeyList(installedV1),
    ownerDeviceName: OWNER_DEVICE_NAME,
    advSecret: hex(advSecret),
    vehicleName: VEHICLE_NAME,
    messages: pairLog.messages,
  };

  // (b) Owner unlock, then LOCK; (g) STATUS and (d) key-list push continue the same session ---------------
  const ownerContext: VehicleContext = { now: 20_000, carTime: CAR_TIME + MINUTE, keyListVersion: 1, pairingOpen: false, pairReady: { status: 'ready', epoch: 0, requiredVersion: 2, keyList: installedV1.bytes } };
  const owner = openUnlockSession(crypto, parties, 'owner-unlock', parties.ownerSeed, ownerContext);
  must(owner.phone.onChallenge(owner.challenge), 'owner phone checks CHALLENGE');
  const request = owner.phone.request({ kind: 'owner' }, 'unlock');
  owner.log.add('phone', request);
  const requestEvent = expectEvent(owner.car.handle(request, { ...ownerContext, now: 20_012 }), 'request', 'owner REQUEST');
  const unlockDecision = decideFor(crypto, parties, requestEvent, installedV1, CAR_TIME + MINUTE);
  if (unlockDecision.outcome === 'refuse') throw internal('owner unlock refused');
  const unlockResult = owner.car.respond(requestEvent.seq, unlockDecision.outcome);
  owner.log.add('car', unlockResult);
  if (must(owner.phone.onResult(unlockResult), 'owner RESULT').status !== 'ok') throw internal('owner unlock not ok');

  const lock = owner.phone.command('lock');
  owner.log.add('phone', lock);
  const lockEvent = expectEvent(owner.car.handle(lock, { ...ownerContext, now: 21_000 }), 'request', 'LOCK');
  const lockDecision = decideFor(crypto, parties, lockEvent, installedV1, CAR_TIME + MINUTE + 1_000);
  if (lockDecision.outcome === 'refuse') throw internal('lock refused');
  const lockResult = owner.car.respond(lockEvent.seq, lockDecision.outcome);
  owner.log.add('car', lockResult);
  must(owner.phone.onResult(lockResult), 'LOCK RESULT');
  const ownerUnlockMessages = owner.log.messages.slice();

  // (g) status
  const statusPayload = encodeStatus({
    locked: ['front-left', 'front-right', 'rear-left', 'rear-right'],
    doorCount: 4,
    drive: 'off',
    trunk: 'closed',
    keyListVersion: 1,
    carTime: CAR_TIME + MINUTE + 2_000,
    startNeedsPin: true,
  });
  const status = owner.phone.command('status');
  owner.log.add('phone', status);
  const statusEvent = expectEvent(owner.car.handle(status, { ...ownerContext, now: 22_000 }), 'request', 'STATUS');
  const statusDecision = decideFor(crypto, parties, statusEvent, installedV1, CAR_TIME + MINUTE + 2_000, statusPayload);
  if (statusDecision.outcome === 'refuse') throw internal('status refused');
  const statusResult = owner.car.respond(statusEvent.seq, statusDecision.outcome);
  owner.log.add('car', statusResult);
  must(owner.phone.onResult(statusResult), 'STATUS RESULT');
  const statusMessages = owner.log.messages.slice(ownerUnlockMessages.length);

  // (d) key-list update pushed over the same session
  const revokedSerial = new RecordingRandom('carkey vectors v1: key-list-v2/owner');
  const keyListV2 = signKeyList(crypto, parties.ownerSeed, {
    vehicleId,
    version: 2,
    issuedAt: CAR_TIME + 5 * MINUTE,
    owners: [parties.ownerKey],
    revokedSerials: [revokedSerial.source(8)],
    revokedKeys: [parties.lostPhoneKey],
  });
  const installedV2 = must(acceptKeyList(crypto, must(decodeKeyList(keyListV2.bytes), 'decode key list v2'), installedV1, vehicleId), 'accept key list v2');
  const push = owner.phone.command('keyListPush', keyListV2.bytes);
  owner.log.add('phone', push);
  const pushEvent = expectEvent(owner.car.handle(push, { ...ownerContext, now: 23_000 }), 'request', 'key list push');
  sameBytes(pushEvent.args, keyListV2.bytes, 'pushed key list');
  const pushDecision = decideFor(crypto, parties, pushEvent, installedV1, CAR_TIME + MINUTE + 3_000, encodeVersion(installedV2.version));
  if (pushDecision.outcome === 'refuse') throw internal('key list push refused');
  const pushResult = owner.car.respond(pushEvent.seq, pushDecision.outcome);
  owner.log.add('car', pushResult);
  must(owner.phone.onResult(pushResult), 'key list push RESULT');
  const pushMessages = owner.log.messages.slice(ownerUnlockMessages.length + statusMessages.length);

  const ownerUnlockSection: JsonObject = {
    description:
      'Owner unlock: HELLO, CHALLENGE, REQUEST (unlock, owner credential), RESULT ok; then LOCK as a COMMAND on the same session keys (no signature) and its RESULT. Sections status and keyListUpdate continue this session.',
    context: { now: ownerContext.now, carTime: ownerContext.carTime, keyListVersion: 1, pairingOpen: false, requestReceivedAt: 20_012 },
    rng: unlockRng(owner),
    derived: owner.derived,
    decisions: [unlockDecision.json, lockDecision.json],
    messages: ownerUnlockMessages,
  };

  const statusSection: JsonObject = {
    description: 'STATUS command continuing the ownerUnlock session (sequence numbers continue); RESULT payload is the status payload.',
    session: 'ownerUnlock',
    decision: statusDecision.json,
    payload: {
      hex: hex(statusPayload),
      fields: {
        lockedMask: statusPayload[0] ?? 0,
        doorCount: statusPayload[1] ?? 0,
        drive: statusPayload[2] ?? 0,
        trunk: statusPayload[3] ?? 0,
        keyListVersion: 1,
        carTime: CAR_TIME + MINUTE + 2_000,
      },
    },
    messages: statusMessages,
  };

  const keyListSection: JsonObject = {
    description:
      'Key-list update pushed by the owner as COMMAND keyListPush (args = the new key list) on the ownerUnlock session; the car accepts it (signer is an owner of the current list, version 2 > 1) and answers with the version now in force (u32).',
    session: 'ownerUnlock',
    rng: { owner: revokedSerial.describe([['revoked grant serial (example)', 8]]) },
    keyList: describeKeyList(installedV2),
    decision: pushDecision.json,
    resultPayload: hex(encodeVersion(installedV2.version)),
    messages: pushMessages,
  };

  // (c) guest unlock with a grant, then (e) a denied command ---------------------------------------
  const grantRng = new RecordingRandom('carkey vectors v1: grant/owner');
  const guestTime = CAR_TIME + HOUR;
  const grant = signGrant(crypto, parties.ownerSeed, {
    vehicleId,
    serial: grantRng.source(8),
    subject: parties.friendKey,
    role: 'guest',
    permissions: Permission.unlock | Permission.lock | Permission.status,
    notBefore: CAR_TIME,
    notAfter: CAR_TIME + 7 * 24 * HOUR,
  });
  sameBytes(must(decodeGrant(grant.bytes), 'decode grant').bytes, grant.bytes, 'grant round trip');
  const guestContext: VehicleContext = { now: 40_000, carTime: guestTime, keyListVersion: 2, pairingOpen: false, pairReady: { status: 'ready', epoch: 0, requiredVersion: 3, keyList: installedV2.bytes } };
  const guest = openUnlockSession(crypto, parties, 'guest-unlock', parties.friendSeed, guestContext);
  must(guest.phone.onChallenge(guest.challenge), 'guest phone checks CHALLENGE');
  const guestRequest = guest.phone.request({ kind: 'grant', bytes: grant.bytes }, 'unlock');
  guest.log.add('phone', guestRequest);
  const guestEvent = expectEvent(guest.car.handle(guestRequest, { ...guestContext, now: 40_015 }), 'request', 'guest REQUEST');
  const guestDecision = decideFor(crypto, parties, guestEvent, installedV2, guestTime);
  if (guestDecision.outcome === 'refuse') throw internal('guest unlock refused');
  const guestResult = guest.car.respond(guestEvent.seq, guestDecision.outcome);
  guest.log.add('car', guestResult);
  must(guest.phone.onResult(guestResult), 'guest RESULT');
  const guestUnlockMessages = guest.log.messages.slice();

  const trunk = guest.phone.command('trunk');
  guest.log.add('phone', trunk);
  const trunkEvent = expectEvent(guest.car.handle(trunk, { ...guestContext, now: 41_000 }), 'request', 'guest TRUNK');
  const trunkDecision = decideFor(crypto, parties, trunkEvent, installedV2, guestTime + 1_000);
  if (trunkDecision.outcome === 'refuse' || trunkDecision.outcome.status !== 'denied') throw internal('guest trunk should be denied with a category');
  const deniedResult = guest.car.respond(trunkEvent.seq, trunkDecision.outcome);
  guest.log.add('car', deniedResult);
  const denied = must(guest.phone.onResult(deniedResult), 'denied RESULT');
  if (denied.status !== 'denied') throw internal('phone did not read a denial');
  const deniedMessages = guest.log.messages.slice(guestUnlockMessages.length);

  const guestSection: JsonObject = {
    description:
      'Guest unlock: the friend presents an owner-signed guest grant (unlock, lock, status; 7 days) as the REQUEST credential (kind 1). Section deniedResult continues this session.',
    context: { now: guestContext.now, carTime: guestTime, keyListVersion: 2, pairingOpen: false, requestReceivedAt: 40_015 },
    rng: { ...unlockRng(guest), issuer: grantRng.describe([['grant serial', 8]]) },
    grant: describeGrant(grant),
    derived: guest.derived,
    decision: guestDecision.json,
    messages: guestUnlockMessages,
  };

  const deniedSection: JsonObject = {
    description:
      'The guest asks for TRUNK, which the guest role does not allow: the car answers a sealed RESULT with status denied (1) and category not-permitted (1). Recognised, authenticated peers get a category; everyone else gets REFUSE.',
    session: 'guestUnlock',
    decision: trunkDecision.json,
    status: { code: ResultStatus.denied, name: 'denied' },
    category: { code: DenyCategoryCode[denied.category], name: denied.category },
    messages: deniedMessages,
  };

  // (f) REFUSE: a stranger (valid signature, key not on the car's list) ---------------------------------
  const strangerContext: VehicleContext = { now: 60_000, carTime: CAR_TIME + 2 * HOUR, keyListVersion: 2, pairingOpen: false, pairReady: { status: 'ready', epoch: 0, requiredVersion: 3, keyList: installedV2.bytes } };
  const stranger = openUnlockSession(crypto, parties, 'stranger', parties.strangerSeed, strangerContext);
  must(stranger.phone.onChallenge(stranger.challenge), 'stranger checks CHALLENGE');
  const strangerRequest = stranger.phone.request({ kind: 'owner' }, 'unlock');
  stranger.log.add('phone', strangerRequest);
  const strangerEvent = expectEvent(stranger.car.handle(strangerRequest, { ...strangerContext, now: 60_020 }), 'request', 'stranger REQUEST');
  const strangerDecision = decideFor(crypto, parties, strangerEvent, installedV2, CAR_TIME + 2 * HOUR);
  if (strangerDecision.outcome !== 'refuse') throw internal('a stranger must get REFUSE');
  const refusal = stranger.car.refuse(new CarkeyError('CK_DENIED', 'unknown key')).reply;
  sameBytes(refusal, REFUSE_BYTES, 'REFUSE');
  stranger.log.add('car', refusal, 'the generic refusal; the car closes the session');
  const strangerRead = stranger.phone.onResult(refusal);
  const refuseSection: JsonObject = {
    description:
      'REFUSE (0x01 0x0f) is the only thing an unrecognised or misbehaving peer ever learns. Here a stranger with a valid Ed25519 key that is not on the key list asks to unlock as owner; the decision is unknown-key, which is not revealed.',
    hex: hex(REFUSE_BYTES),
    phoneReadsAs: failureCode(strangerRead, 'phone reading REFUSE'),
    rng: unlockRng(stranger),
    derived: stranger.derived,
    decision: strangerDecision.json,
    messages: stranger.log.messages,
  };

  // (h) advertising ---------------------------------------------------------------------------------------
  const advTime = CAR_TIME + 3 * HOUR + 7 * MINUTE + 30_000;
  const epoch = Math.floor(advTime / ADV_EPOCH_MS);
  const advId = advertisingId(crypto, advSecret, advTime);
  const advertisingSection: JsonObject = {
    description:
      'Rotating advertising identifier: SHA-512(adv-id label ‖ advertising secret ‖ epoch u64 big-endian)[0..8], epoch = floor(time ms / 900000). Service data (under the carkey service UUID) = format 0x01 ‖ flags ‖ id.',
    advSecret: hex(advSecret),
    timeMs: advTime,
    epoch,
    epochBytes: hex(new Writer().time(epoch).finish()),
    advId: hex(advId),
    serviceData: hex(encodeServiceData(0, advId)),
    serviceDataPairing: hex(encodeServiceData(ADV_FLAG_PAIRING, advId)),
    previousEpochAdvId: hex(advertisingId(crypto, advSecret, advTime - ADV_EPOCH_MS)),
    nextEpochAdvId: hex(advertisingId(crypto, advSecret, advTime + ADV_EPOCH_MS)),
  };

  // Negative cases: what each side must reject ------------------------------------------------------------
  const negatives: JsonObject[] = [];
  {
    // Phone side: a car that is not the pinned one answers the same HELLO.
    const spoof = openUnlockSession(crypto, parties, 'owner-unlock', parties.ownerSeed, ownerContext, parties.impostorSeed);
    negatives.push({
      name: 'spoofed-car-challenge',
      side: 'phone',
      description: 'CHALLENGE answering the ownerUnlock HELLO, signed by another identity key (impostor car); the phone must reject it (pinned car key).',
      after: 'ownerUnlock step 1 (same HELLO)',
      input: hex(spoof.challenge),
      expect: 'reject',
      errorCode: failureCode(spoof.phone.onChallenge(spoof.challenge), 'spoofed challenge'),
      impostorPublicKey: hex(crypto.publicKeyFromSeed(parties.impostorSeed)),
    });
    // Phone side: the genuine CHALLENGE with S replaced by S + L.
    const again = openUnlockSession(crypto, parties, 'owner-unlock', parties.ownerSeed, ownerContext);
    sameBytes(again.challenge, owner.challenge, 'replayed session');
    const malleated = concatBytes(owner.challenge.subarray(0, owner.challenge.length - 64), malleate(owner.challenge.subarray(owner.challenge.length - 64)));
    negatives.push({
      name: 'malleable-challenge-signature',
      side: 'phone',
      description: 'The ownerUnlock CHALLENGE with the signature scalar S replaced by S + L. The Ed25519 equation still holds (raw tweetnacl accepts it) but S >= L must be rejected.',
      after: 'ownerUnlock step 1 (same HELLO)',
      input: hex(malleated),
      expect: 'reject',
      errorCode: failureCode(again.phone.onChallenge(malleated), 'malleated challenge'),
    });
    // Phone side: a RESULT with one bit flipped in its tag/ciphertext.
    const tamper = openUnlockSession(crypto, parties, 'owner-unlock', parties.ownerSeed, ownerContext);
    must(tamper.phone.onChallenge(tamper.challenge), 'tamper CHALLENGE');
    sameBytes(tamper.phone.request({ kind: 'owner' }, 'unlock'), request, 'replayed REQUEST');
    const tamperedResult = flipLastBit(unlockResult);
    negatives.push({
      name: 'tampered-result',
      side: 'phone',
      description: 'The ownerUnlock RESULT (step 4) with the last bit flipped; secretbox authentication must fail.',
      after: 'ownerUnlock step 3',
      input: hex(tamperedResult),
      expect: 'reject',
      errorCode: failureCode(tamper.phone.onResult(tamperedResult), 'tampered result'),
    });
    // Phone side: the RESULT of the REQUEST replayed while the LOCK result is awaited.
    const replay = openUnlockSession(crypto, parties, 'owner-unlock', parties.ownerSeed, ownerContext);
    must(replay.phone.onChallenge(replay.challenge), 'replay CHALLENGE');
    replay.phone.request({ kind: 'owner' }, 'unlock');
    must(replay.phone.onResult(unlockResult), 'replay first RESULT');
    replay.phone.command('lock');
    negatives.push({
      name: 'replayed-result',
      side: 'phone',
      description: 'After step 5 (LOCK), the RESULT of step 4 (seq 0) is delivered again; the phone expects car seq 1 and must reject it.',
      after: 'ownerUnlock step 5',
      input: hex(unlockResult),
      expect: 'reject',
      errorCode: failureCode(replay.phone.onResult(unlockResult), 'replayed result'),
    });
    // Car side: REQUEST after the challenge TTL.
    const late = openUnlockSession(crypto, parties, 'owner-unlock', parties.ownerSeed, ownerContext);
    const lateEvent = expectEvent(late.car.handle(request, { ...ownerContext, now: ownerContext.now + DEFAULT_CHALLENGE_TTL_MS + 1 }), 'refuse', 'late REQUEST');
    negatives.push({
      name: 'expired-challenge',
      side: 'car',
      description: `The ownerUnlock REQUEST arriving ${DEFAULT_CHALLENGE_TTL_MS + 1} ms after the CHALLENGE was sent (TTL ${DEFAULT_CHALLENGE_TTL_MS} ms): the car answers REFUSE and closes the session.`,
      after: 'ownerUnlock step 2',
      input: hex(request),
      expect: 'REFUSE',
      reply: hex(lateEvent.reply),
      errorCode: lateEvent.error.code,
    });
    // Car side: tampered REQUEST.
    const flipped = openUnlockSession(crypto, parties, 'owner-unlock', parties.ownerSeed, ownerContext);
    const tamperedRequest = flipLastBit(request);
    const flippedEvent = expectEvent(flipped.car.handle(tamperedRequest, { ...ownerContext, now: 20_012 }), 'refuse', 'tampered REQUEST');
    negatives.push({
      name: 'tampered-request',
      side: 'car',
      description: 'The ownerUnlock REQUEST with its last bit flipped: the box does not open, the car answers REFUSE.',
      after: 'ownerUnlock step 2',
      input: hex(tamperedRequest),
      expect: 'REFUSE',
      reply: hex(flippedEvent.reply),
      errorCode: flippedEvent.error.code,
    });
  }

  return {
    generator: 'npm run vectors',
    formatVersion: VECTORS_FORMAT_VERSION,
    description:
      'carkey protocol v1 test vectors, generated by the reference implementation (src/core) with fixed seeds and a recorded deterministic RNG. All byte strings are lowercase hex; integers on the wire are big-endian; times are u64 milliseconds since the Unix epoch. See docs/protocol.md.',
    rngConstruction:
      'Each rng stream is SHA-512(UTF-8 label ‖ UTF-8 decimal block counter from 0) blocks, concatenated and consumed in order. You do not need it: every draw is listed in order under rng.',
    constants: constants(),
    parties: {
      seedDerivation: SEED_DERIVATION,
      car: { ...describeParty(crypto, 'car', 'vehicle identity (Ed25519)'), vehicleId: hex(vehicleId) },
      owner: describeParty(crypto, 'owner', 'owner phone identity (Ed25519)'),
      friend: describeParty(crypto, 'friend', 'guest phone identity (Ed25519)'),
      stranger: describeParty(crypto, 'stranger', 'a phone the car does not know'),
      impostorCar: describeParty(crypto, 'impostor car', 'a car that is not the pinned one'),
      lostPhone: describeParty(crypto, 'lost phone', 'a revoked key (in key list v2)'),
    },
    policy: { ...POLICY, note: 'local policy the car decided with in these vectors (proximity: rssi -55, near)' },
    pairing: pairingSection,
    ownerUnlock: ownerUnlockSection,
    status: statusSection,
    keyListUpdate: keyListSection,
    guestUnlock: guestSection,
    deniedResult: deniedSection,
    refuse: refuseSection,
    advertising: advertisingSection,
    audit: auditSection(crypto, parties),
    cloud: cloudSection(crypto, parties, installedV1),
    negative: negatives,
  };
}

/** Pretty-printed JSON with a trailing newline: the exact bytes of protocol.json. */
export function renderVectors(vectors: JsonObject): string {
  return `${JSON.stringify(vectors, null, 2)}\n`;
}

// --- command line ---------------------------------------------------------------------------

function findRepoRoot(start: string): string {
  let dir = start;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && /"name":\s*"carkey"/.test(readFileSync(manifest, 'utf8'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new CarkeyError('CK_USAGE', 'cannot find the carkey repository root; pass --out PATH');
    dir = parent;
  }
}

interface CliOptions {
  readonly out: string | undefined;
  readonly check: boolean;
}

function parseArgs(argv: readonly string[]): CliOptions {
  let out: string | undefined;
  let check = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--check') check = true;
    else if (arg === '--out') {
      const value = argv[++i];
      if (value === undefined || value.startsWith('--')) throw new CarkeyError('CK_USAGE', '--out needs a path');
      out = value;
    } else if (arg?.startsWith('--out=') === true) out = arg.slice('--out='.length);
    else throw new CarkeyError('CK_USAGE', `unknown argument ${String(arg)} (usage: gen-vectors [--out PATH] [--check])`);
  }
  return { out, check };
}

/** Write (or with --check, compare) the vectors. Returns the process exit code. */
export function main(argv: readonly string[]): number {
  try {
    const options = parseArgs(argv);
    const target = options.out === undefined ? join(findRepoRoot(dirname(fileURLToPath(import.meta.url))), DEFAULT_VECTORS_PATH) : resolve(options.out);
    const text = renderVectors(generateVectors());
    if (options.check) {
      const current = existsSync(target) ? readFileSync(target, 'utf8') : undefined;
      if (current === text) {
        process.stdout.write(`${target} is up to date\n`);
        return 0;
      }
      process.stderr.write(`${target} ${current === undefined ? 'is missing' : 'differs from what the code generates'}; run npm run vectors\n`);
      return 1;
    }
    writeFileSync(target, text);
    process.stdout.write(`wrote ${target} (${Buffer.byteLength(text)} bytes)\n`);
    return 0;
  } catch (error) {
    const wrapped = isCarkeyError(error) ? error : new CarkeyError('CK_INTERNAL', String(error));
    process.stderr.write(`gen-vectors: ${wrapped.message}\n`);
    return wrapped.exitCode;
  }
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  return entry !== undefined && resolve(entry) === fileURLToPath(import.meta.url);
}

if (isEntryPoint()) process.exitCode = main(process.argv.slice(2));

