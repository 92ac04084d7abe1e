/**
 * Wire messages of protocol version 1: fixed formats, exact lengths.
 *
 * Every message starts with `version u8 = 0x01 ‖ type u8`. Cleartext messages
 * (HELLO, CHALLENGE, REFUSE, PAIR_HELLO, PAIR_CHALLENGE, PAIR_REVEAL) have fixed
 * lengths checked before any crypto. Sealed messages (REQUEST, RESULT,
 * COMMAND, PAIR_READY, PAIR_CONFIRM, PAIR_RESULT) are `version ‖ type ‖ seq u32
 * ‖ secretbox`, with the box at least 16 bytes and the whole message within
 * MAX_MESSAGE. The plaintexts inside boxes are encoded/decoded here too.
 * docs/protocol.md describes each byte; test/vectors/protocol.json holds examples.
 */
import { Reader, Writer, decodeWith } from './codec.js';
import { SECRETBOX_OVERHEAD } from './crypto/policy.js';
import { CarkeyError, fail, type Result } from './errors.js';
import { MAX_KEY_LIST_LENGTH } from './credentials.js';

export const PROTOCOL_VERSION = 0x01;
export const MAX_MESSAGE = 8192;
export const NONCE_LENGTH = 16;
export const KEY_LENGTH = 32;

export const MessageType = {
  hello: 0x01,
  challenge: 0x02,
  request: 0x03,
  result: 0x04,
  command: 0x05,
  refuse: 0x0f,
  pairHello: 0x10,
  pairChallenge: 0x11,
  pairReveal: 0x12,
  pairReady: 0x13,
  pairConfirm: 0x14,
  pairResult: 0x15,
} as const;
export type MessageTypeName = keyof typeof MessageType;

export const SEALED_TYPES: ReadonlySet<number> = new Set([
  MessageType.request,
  MessageType.result,
  MessageType.command,
  MessageType.pairReady,
  MessageType.pairConfirm,
  MessageType.pairResult,
]);

/** Fixed lengths of cleartext messages, header included. */
export const CLEAR_LENGTH: Readonly<Record<number, number>> = {
  [MessageType.hello]: 2 + 32 + NONCE_LENGTH, // 50
  [MessageType.challenge]: 2 + 32 + NONCE_LENGTH + 8 + 2 + 4 + 64, // 128
  [MessageType.refuse]: 2,
  [MessageType.pairHello]: 2 + 32 + 32, // 66
  [MessageType.pairChallenge]: 2 + 32 + NONCE_LENGTH + 32 + 64, // 146
  [MessageType.pairReveal]: 2 + NONCE_LENGTH, // 18
};

/** Peek at version and type with the length rules of that type. Never throws. */
export function classify(bytes: Uint8Array): Result<number> {
  if (bytes.length > MAX_MESSAGE) return fail('CK_CODEC_TOO_LARGE', `${bytes.length} bytes`);
  if (bytes.length < 2) return fail('CK_CODEC_TRUNCATED', 'no header');
  if (bytes[0] !== PROTOCOL_VERSION) return fail('CK_CODEC_BAD_VERSION', `version ${bytes[0]}`);
  const type = bytes[1] ?? 0;
  const fixed = CLEAR_LENGTH[type];
  if (fixed !== undefined) {
    return bytes.length === fixed ? { ok: true, value: type } : fail('CK_CODEC_BAD_VALUE', `type ${type} must be ${fixed} bytes, got ${bytes.length}`);
  }
  if (SEALED_TYPES.has(type)) {
    return bytes.length >= 6 + SECRETBOX_OVERHEAD ? { ok: true, value: type } : fail('CK_CODEC_TRUNCATED', 'sealed message too short');
  }
  return fail('CK_CODEC_BAD_TYPE', `type ${type}`);
}

function header(type: number): Writer {
  return new Writer().u8(PROTOCOL_VERSION).u8(type);
}

function expectHeader(r: Reader, type: number): void {
  const version = r.u8('version');
  if (version !== PROTOCOL_VERSION) throw new CarkeyError('CK_CODEC_BAD_VERSION', `version ${version}`);
  const actual = r.u8('type');
  if (actual !== type) throw new CarkeyError('CK_CODEC_BAD_TYPE', `expected type ${type}, got ${actual}`);
}

// --- cleartext ---------------------------------------------------------------

export interface Hello {
  readonly ephemeral: Uint8Array;
  readonly nonce: Uint8Array;
}
export function encodeHello(m: Hello): Uint8Array {
  return header(MessageType.hello).fixed(m.ephemeral, 32, 'ephemeral').fixed(m.nonce, NONCE_LENGTH, 'nonce').finish();
}
export function decodeHello(bytes: Uint8Array): Result<Hello> {
  return decodeWith(bytes, (r) => {
    expectHeader(r, MessageType.hello);
    return { ephemeral: r.bytesOf(32), nonce: r.bytesOf(NONCE_LENGTH) };
  });
}

export interface ChallengeBody {
  readonly ephemeral: Uint8Array;
  readonly challenge: Uint8Array;
  readonly carTime: number;
  readonly ttlMs: number;
  readonly keyListVersion: number;
}
export interface Challenge extends ChallengeBody {
  readonly signature: Uint8Array;
}
export function encodeChallengeBody(m: ChallengeBody): Uint8Array {
  return header(MessageType.challenge)
    .fixed(m.ephemeral, 32, 'ephemeral')
    .fixed(m.challenge, NONCE_LENGTH, 'challenge')
    .time(m.carTime)
    .u16(m.ttlMs)
    .u32(m.keyListVersion)
    .finish();
}
export function encodeChallenge(m: Challenge): Uint8Array {
  return new Writer().raw(encodeChallengeBody(m)).fixed(m.signature, 64, 'signature').finish();
}
export function decodeChallenge(bytes: Uint8Array): Result<Challenge> {
  return decodeWith(bytes, (r) => {
    expectHeader(r, MessageType.challenge);
    return {
      ephemeral: r.bytesOf(32),
      challenge: r.bytesOf(NONCE_LENGTH),
      carTime: r.time('car time'),
      ttlMs: r.u16('ttl'),
      keyListVersion: r.u32('key list version'),
      signature: r.bytesOf(64),
    };
  });
}

export const REFUSE_BYTES = Uint8Array.of(PROTOCOL_VERSION, MessageType.refuse);

export interface PairHello {
  readonly ephemeral: Uint8Array;
  readonly commitment: Uint8Array;
}
export function encodePairHello(m: PairHello): Uint8Array {
  return header(MessageType.pairHello).fixed(m.ephemeral, 32, 'ephemeral').fixed(m.commitment, 32, 'commitment').finish();
}
export function decodePairHello(bytes: Uint8Array): Result<PairHello> {
  return decodeWith(bytes, (r) => {
    expectHeader(r, MessageType.pairHello);
    return { ephemeral: r.bytesOf(32), commitment: r.bytesOf(32) };
  });
}

export interface PairChallengeBody {
  readonly ephemeral: Uint8Array;
  readonly nonce: Uint8Array;
  readonly carIdentity: Uint8Array;
}
export interface PairChallenge extends PairChallengeBody {
  readonly signature: Uint8Array;
}
export function encodePairChallengeBody(m: PairChallengeBody): Uint8Array {
  return header(MessageType.pairChallenge)
    .fixed(m.ephemeral, 32, 'ephemeral')
    .fixed(m.nonce, NONCE_LENGTH, 'nonce')
    .fixed(m.carIdentity, 32, 'car identity')
    .finish();
}
export function encodePairChallenge(m: PairChallenge): Uint8Array {
  return new Writer().raw(encodePairChallengeBody(m)).fixed(m.signature, 64, 'signature').finish();
}
export function decodePairChallenge(bytes: Uint8Array): Result<PairChallenge> {
  return decodeWith(bytes, (r) => {
    expectHeader(r, MessageType.pairChallenge);
    return { ephemeral: r.bytesOf(32), nonce: r.bytesOf(NONCE_LENGTH), carIdentity: r.bytesOf(32), signature: r.bytesOf(64) };
  });
}

export function encodePairReveal(nonce: Uint8Array): Uint8Array {
  return header(MessageType.pairReveal).fixed(nonce, NONCE_LENGTH, 'nonce').finish();
}
export function decodePairReveal(bytes: Uint8Array): Result<Uint8Array> {
  return decodeWith(bytes, (r) => {
    expectHeader(r, MessageType.pairReveal);
    return r.bytesOf(NONCE_LENGTH);
  });
}

// --- sealed envelope ---------------------------------------------------------

export interface Sealed {
  readonly type: number;
  readonly seq: number;
  readonly box: Uint8Array;
}
export function encodeSealed(m: Sealed): Uint8Array {
  return header(m.type).u32(m.seq).raw(m.box).finish();
}
export function decodeSealed(bytes: Uint8Array): Result<Sealed> {
  return decodeWith(bytes, (r) => {
    const version = r.u8('version');
    if (version !== PROTOCOL_VERSION) throw new CarkeyError('CK_CODEC_BAD_VERSION', `version ${version}`);
    const type = r.u8('type');
    if (!SEALED_TYPES.has(type)) throw new CarkeyError('CK_CODEC_BAD_TYPE', `type ${type} is not sealed`);
    const seq = r.u32('seq');
    const box = r.rest();
    if (box.length < SECRETBOX_OVERHEAD) throw new CarkeyError('CK_CODEC_TRUNCATED', 'box shorter than its tag');
    return { type, seq, box };
  });
}

/** The header bytes of a sealed message: authenticated as associated data via the nonce. */
export function sealedHeader(type: number, seq: number): Uint8Array {
  return header(type).u32(seq).finish();
}

// --- sealed plaintexts -------------------------------------------------------

export const CredentialKind = { owner: 0, grant: 1 } as const;
export const MAX_CREDENTIAL = 512;
export const MAX_ARGS = MAX_KEY_LIST_LENGTH + 64;
export const MAX_PAYLOAD = MAX_MESSAGE - 64;

export interface RequestBody {
  readonly identity: Uint8Array;
  readonly credentialKind: number;
  readonly credential: Uint8Array;
  readonly command: number;
  readonly args: Uint8Array;
}
export interface RequestPlain extends RequestBody {
  readonly signature: Uint8Array;
}
export function encodeRequestBody(m: RequestBody): Uint8Array {
  return new Writer()
    .fixed(m.identity, 32, 'identity')
    .u8(m.credentialKind)
    .vbytes(m.credential, MAX_CREDENTIAL, 'credential')
    .u8(m.command)
    .vbytes(m.args, MAX_ARGS, 'args')
    .finish();
}
export function decodeRequestPlain(bytes: Uint8Array): Result<RequestPlain> {
  return decodeWith(bytes, (r) => ({
    identity: r.bytesOf(32, 'identity'),
    credentialKind: r.u8('credential kind'),
    credential: r.vbytes(MAX_CREDENTIAL, 'credential'),
    command: r.u8('command'),
    args: r.vbytes(MAX_ARGS, 'args'),
    signature: r.bytesOf(64, 'signature'),
  }));
}

export interface CommandPlain {
  readonly command: number;
  readonly args: Uint8Array;
}
export function encodeCommandPlain(m: CommandPlain): Uint8Array {
  return new Writer().u8(m.command).vbytes(m.args, MAX_ARGS, 'args').finish();
}
export function decodeCommandPlain(bytes: Uint8Array): Result<CommandPlain> {
  return decodeWith(bytes, (r) => ({ command: r.u8('command'), args: r.vbytes(MAX_ARGS, 'args') }));
}

export const ResultStatus = { ok: 0, denied: 1, failed: 2 } as const;
export const DenyCategoryCode = { none: 0, 'not-permitted': 1, expired: 2, proximity: 3, pin: 4, busy: 5, 'locked-out': 6 } as const;
export type DenyCategoryName = keyof typeof DenyCategoryCode;

/** RESULT denied / locked-out payload (§6.4): the seconds until the lockout ends, u32. Other denials carry none. */
export function encodeLockoutPayload(retryAfterSeconds: number): Uint8Array {
  return new Writer().u32(retryAfterSeconds).finish();
}
export function decodeLockoutPayload(bytes: Uint8Array): Result<number> {
  return decodeWith(bytes, (r) => r.u32('retry after seconds'));
}

export interface ResultPlain {
  readonly requestSeq: number;
  readonly status: number;
  readonly category: number;
  readonly payload: Uint8Array;
}
export function encodeResultPlain(m: ResultPlain): Uint8Array {
  return new Writer().u32(m.requestSeq).u8(m.status).u8(m.category).vbytes(m.payload, MAX_PAYLOAD, 'payload').finish();
}
export function decodeResultPlain(bytes: Uint8Array): Result<ResultPlain> {
  return decodeWith(bytes, (r) => ({
    requestSeq: r.u32('request seq'),
    status: r.u8('status'),
    category: r.u8('category'),
    payload: r.vbytes(MAX_PAYLOAD, 'payload'),
  }));
}

export interface PairConfirmBody {
  readonly identity: Uint8Array;
  readonly name: string;
  readonly keyList: Uint8Array;
}
export interface PairConfirmPlain extends PairConfirmBody {
  readonly signature: Uint8Array;
}
export const MAX_NAME_BYTES = 32;
export function encodePairConfirmBody(m: PairConfirmBody): Uint8Array {
  return new Writer()
    .fixed(m.identity, 32, 'identity')
    .vbytes(new TextEncoder().encode(m.name), MAX_NAME_BYTES, 'name')
    .vbytes(m.keyList, MAX_KEY_LIST_LENGTH, 'key list')
    .finish();
}
export function decodePairConfirmPlain(bytes: Uint8Array): Result<PairConfirmPlain> {
  return decodeWith(bytes, (r) => ({
    identity: r.bytesOf(32, 'identity'),
    name: decodeName(r.vbytes(MAX_NAME_BYTES, 'name')),
    keyList: r.vbytes(MAX_KEY_LIST_LENGTH, 'key list'),
    signature: r.bytesOf(64, 'signature'),
  }));
}

function decodeName(bytes: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CarkeyError('CK_CODEC_BAD_VALUE', 'name is not UTF-8');
  }
}

/**
 * Whether the car can take a pairing, stated in PAIR_READY before the
 * person is asked to compare codes or press anything (docs/protocol.md §12).
 */
export const PAIR_READY_STATUS = { ready: 0, busy: 1, ownersFull: 2, versionExhausted: 3 } as const;
export type PairReadyStatus = keyof typeof PAIR_READY_STATUS;

/**
 * PAIR_READY plaintext: status u8 ‖ epoch u32 ‖ required version u32 ‖
 * the car's current key list vbytes (empty when it has none). The pairing
 * phone's new list must carry exactly `epoch` and `requiredVersion`.
 */
export interface PairReadyPlain {
  readonly status: PairReadyStatus;
  readonly epoch: number;
  readonly requiredVersion: number;
  readonly keyList: Uint8Array;
}
export function encodePairReadyPlain(m: PairReadyPlain): Uint8Array {
  return new Writer().u8(PAIR_READY_STATUS[m.status]).u32(m.epoch).u32(m.requiredVersion).vbytes(m.keyList, MAX_KEY_LIST_LENGTH, 'key list').finish();
}
export function decodePairReadyPlain(bytes: Uint8Array): Result<PairReadyPlain> {
  return decodeWith(bytes, (r) => {
    const code = r.u8('status');
    const status = (Object.keys(PAIR_READY_STATUS) as PairReadyStatus[]).find((name) => PAIR_READY_STATUS[name] === code);
    if (status === undefined) throw new CarkeyError('CK_CODEC_BAD_VALUE', `pair-ready status ${code}`);
    return { status, epoch: r.u32('epoch'), requiredVersion: r.u32('required version'), keyList: r.vbytes(MAX_KEY_LIST_LENGTH, 'key list') };
  });
}

export interface PairResultPlain {
  readonly status: number;
  readonly advSecret: Uint8Array;
  readonly vehicleName: string;
}
export function encodePairResultPlain(m: PairResultPlain): Uint8Array {
  return new Writer()
    .u8(m.status)
    .fixed(m.advSecret, 32, 'advertising secret')
    .vbytes(new TextEncoder().encode(m.vehicleName), MAX_NAME_BYTES, 'vehicle name')
    .finish();
}
export function decodePairResultPlain(bytes: Uint8Array): Result<PairResultPlain> {
  return decodeWith(bytes, (r) => ({ status: r.u8('status'), advSecret: r.bytesOf(32), vehicleName: decodeName(r.vbytes(MAX_NAME_BYTES, 'vehicle name')) }));
}
