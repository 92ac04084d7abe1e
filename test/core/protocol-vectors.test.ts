/**
 * test/vectors/protocol.json against the reference code and against an
 * independent re-derivation.
 *
 * Guarantees:
 * - The committed file is byte-for-byte what `generateVectors()` produces now
 *   (so code and vectors cannot drift), and both crypto backends produce it.
 * - A "third-party implementation" built here from raw tweetnacl, SHA-512 and
 *   hand-written parsing at the offsets docs/protocol.md gives — never the
 *   carkey core codecs or session code — re-derives every key part from the
 *   JSON alone: identities, labels, CHALLENGE/REQUEST/pairing/grant/key-list
 *   signatures, X25519 secrets, transcript hashes, session keys, nonces and
 *   plaintexts of every sealed message, the pairing commitment and code, the
 *   advertising id, and the framing at both MTUs; and confirms the negative
 *   cases fail for the documented reason.
 * - Every value quoted in docs/protocol.md under a `<!-- vector: PATH -->`
 *   marker equals the value at PATH in the vectors, so the worked example
 *   cannot go stale.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { createCrypto } from '../../src/core/crypto/index.js';
import { DEFAULT_VECTORS_PATH, generateVectors, renderVectors } from '../../scripts/gen-vectors.js';

const protocolDoc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
const committedText = readFileSync(new URL(`../../${DEFAULT_VECTORS_PATH}`, import.meta.url), 'utf8');
const vectors: unknown = JSON.parse(committedText);

// --- JSON access without `any` ----------------------------------------------------

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Value at a dotted path ("a.b.0.c"); throws when any step is missing. */
function at(root: unknown, path: string): unknown {
  let node = root;
  for (const key of path.split('.')) {
    if (Array.isArray(node)) node = (node as unknown[])[Number(key)];
    else if (isRecord(node)) node = node[key];
    else node = undefined;
    if (node === undefined) throw new Error(`vector field missing: ${path}`);
  }
  return node;
}

function str(root: unknown, path: string): string {
  const value = at(root, path);
  if (typeof value !== 'string') throw new Error(`${path} is not a string`);
  return value;
}

function num(root: unknown, path: string): number {
  const value = at(root, path);
  if (typeof value !== 'number') throw new Error(`${path} is not a number`);
  return value;
}

function list(root: unknown, path: string): unknown[] {
  const value = at(root, path);
  if (!Array.isArray(value)) throw new Error(`${path} is not an array`);
  return value as unknown[];
}

function bytes(root: unknown, path: string): Uint8Array {
  const text = str(root, path);
  if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error(`${path} is not lowercase hex`);
  return new Uint8Array(Buffer.from(text, 'hex'));
}

// --- an independent implementation of the pieces a phone needs ------------------------

const hex = (value: Uint8Array): string => Buffer.from(value).toString('hex');
const cat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));
const sha512 = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(createHash('sha512').update(cat(...parts)).digest());
/** ASCII label followed by one 0x00 byte. */
const label = (text: string): Uint8Array => cat(new TextEncoder().encode(text), Uint8Array.of(0));
const u16 = (b: Uint8Array, at: number): number => ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
const u32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset + at, 4).getUint32(0);
const u64 = (b: Uint8Array, at: number): number => Number(new DataView(b.buffer, b.byteOffset + at, 8).getBigUint64(0));

/** L little-endian; a signature's S (bytes 32..64, little-endian) must be below it. */
const L = Uint8Array.from([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
]);
function sBelowL(signature: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const s = signature[32 + i] ?? 0;
    const l = L[i] ?? 0;
    if (s !== l) return s < l;
  }
  return false;
}

/** What a careful phone does: S < L, then the Ed25519 equation. */
function verifyStrict(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  return signature.length === 64 && sBelowL(signature) && nacl.sign.detached.verify(message, signature, publicKey);
}

function nonceFor(header: Uint8Array, direction: number): Uint8Array {
  const nonce = new Uint8Array(24);
  nonce.set(header.subarray(0, 6));
  nonce[6] = direction;
  return nonce;
}

/** The framing rules of docs/protocol.md, written from the text. */
function frame(message: Uint8Array, mtu: number): Uint8Array[] {
  const room = mtu - 3;
  const first = message.subarray(0, room - 3);
  const chunks = [cat(Uint8Array.of(0x80, message.length >> 8, message.length & 0xff), first)];
  let counter = 1;
  for (let offset = first.length; offset < message.length; offset += room - 1) {
    chunks.push(cat(Uint8Array.of(counter & 0x3f), message.subarray(offset, offset + room - 1)));
    counter++;
  }
  return chunks;
}

function reassemble(chunks: readonly Uint8Array[]): Uint8Array {
  const [start, ...rest] = chunks;
  if (start === undefined || start[0] !== 0x80) throw new Error('no START chunk');
  const total = u16(start, 1);
  const parts = [start.subarray(3)];
  rest.forEach((chunk, index) => {
    if (chunk[0] !== ((index + 1) & 0x3f)) throw new Error('counter');
    parts.push(chunk.subarray(1));
  });
  const message = cat(...parts);
  if (message.length !== total) throw new Error('length');
  return message;
}

const LABEL_TEXT = {
  challenge: 'carkey/v1/challenge',
  request: 'carkey/v1/request',
  sessionKeys: 'carkey/v1/session-keys',
  grant: 'carkey/v1/grant',
  keyList: 'carkey/v1/key-list',
  vehicleId: 'carkey/v1/vehicle-id',
  advertising: 'carkey/v1/adv-id',
  pairCommit: 'carkey/v1/pair-commit',
  pairChallenge: 'carkey/v1/pair-challenge',
  pairCode: 'carkey/v1/pair-code',
  pairConfirm: 'carkey/v1/pair-confirm',
  pairKeys: 'carkey/v1/pair-keys',
  auditCheckpoint: 'carkey/v1/audit-checkpoint',
  auditEntry: 'carkey/v1/audit-entry',
  keyId: 'carkey/v1/key-id',
} as const;

const carKey = bytes(vectors, 'parties.car.publicKey');

interface Keys {
  readonly phoneToCar: Uint8Array;
  readonly carToPhone: Uint8Array;
}

/** Open every sealed message of a session in order, checking header, nonce, seq and plaintext. */
function openSealed(messages: readonly unknown[], keys: Keys): { from: 'phone' | 'car'; type: number; seq: number; plaintext: Uint8Array }[] {
  const nextSeq = { phone: 0, car: 0 };
  const opened: { from: 'phone' | 'car'; type: number; seq: number; plaintext: Uint8Array }[] = [];
  for (const message of messages) {
    const wire = bytes(message, 'hex');
    expect(wire.length).toBe(num(message, 'length'));
    expect(wire[0]).toBe(0x01);
    const type = wire[1] ?? 0;
    if (![0x03, 0x04, 0x05, 0x13, 0x14, 0x15].includes(type)) continue;
    const from = str(message, 'direction') === 'phone→car' ? 'phone' : 'car';
    const seq = u32(wire, 2);
    expect(seq).toBe(nextSeq[from]);
    nextSeq[from]++;
    const nonce = nonceFor(wire, from === 'phone' ? 1 : 2);
    expect(hex(nonce)).toBe(str(message, 'sealed.nonce'));
    const plaintext = nacl.secretbox.open(wire.subarray(6), nonce, from === 'phone' ? keys.phoneToCar : keys.carToPhone);
    if (plaintext === null) throw new Error(`step ${num(message, 'step')} does not open`);
    expect(hex(plaintext)).toBe(str(message, 'sealed.plaintext'));
    opened.push({ from, type, seq, plaintext });
  }
  return opened;
}

/** Parse a REQUEST plaintext by offsets and verify the phone's signature over label ‖ th ‖ body. */
function checkRequest(plaintext: Uint8Array, transcriptHash: Uint8Array, expectedIdentity: Uint8Array): { kind: number; credential: Uint8Array; command: number } {
  const identity = plaintext.subarray(0, 32);
  const kind = plaintext[32] ?? -1;
  const credentialLength = u16(plaintext, 33);
  const credential = plaintext.subarray(35, 35 + credentialLength);
  let offset = 35 + credentialLength;
  const command = plaintext[offset] ?? -1;
  const argsLength = u16(plaintext, offset + 1);
  offset += 3 + argsLength;
  expect(plaintext.length).toBe(offset + 64);
  expect(hex(identity)).toBe(hex(expectedIdentity));
  const signature = plaintext.subarray(offset);
  expect(verifyStrict(identity, cat(label(LABEL_TEXT.request), transcriptHash, plaintext.subarray(0, offset)), signature)).toBe(true);
  return { kind, credential, command };
}

/** HELLO/CHALLENGE → keys, from the listed RNG draws only. */
function deriveUnlock(section: string, phoneIdentity: Uint8Array): { keys: Keys; th: Uint8Array } {
  const hello = bytes(vectors, `${section}.messages.0.hex`);
  const challenge = bytes(vectors, `${section}.messages.1.hex`);
  expect(hello.length).toBe(50);
  expect(challenge.length).toBe(128);
  expect([hello[0], hello[1], challenge[0], challenge[1]]).toEqual([1, 1, 1, 2]);
  const phoneSecret = bytes(vectors, `${section}.rng.phone.0.hex`);
  const carSecret = bytes(vectors, `${section}.rng.car.0.hex`);
  expect(hex(nacl.scalarMult.base(phoneSecret))).toBe(hex(hello.subarray(2, 34)));
  expect(hex(hello.subarray(34, 50))).toBe(str(vectors, `${section}.rng.phone.1.hex`));
  expect(hex(nacl.scalarMult.base(carSecret))).toBe(hex(challenge.subarray(2, 34)));
  expect(hex(challenge.subarray(34, 50))).toBe(str(vectors, `${section}.rng.car.1.hex`));
  expect(u64(challenge, 50)).toBe(num(vectors, `${section}.messages.1.fields.carTime`));
  expect(u16(challenge, 58)).toBe(3000);
  expect(u32(challenge, 60)).toBe(num(vectors, `${section}.messages.1.fields.keyListVersion`));
  // The car's signature over label ‖ HELLO ‖ CHALLENGE[0..64], by the pinned key.
  expect(verifyStrict(carKey, cat(label(LABEL_TEXT.challenge), hello, challenge.subarray(0, 64)), challenge.subarray(64))).toBe(true);
  const shared = nacl.scalarMult(phoneSecret, challenge.subarray(2, 34));
  expect(hex(nacl.scalarMult(carSecret, hello.subarray(2, 34)))).toBe(hex(shared));
  expect(shared.some((byte) => byte !== 0)).toBe(true);
  expect(hex(shared)).toBe(str(vectors, `${section}.derived.sharedSecret`));
  const th = sha512(hello, challenge);
  expect(hex(th)).toBe(str(vectors, `${section}.derived.transcriptHash`));
  const okm = sha512(label(LABEL_TEXT.sessionKeys), shared, th);
  const keys = { phoneToCar: okm.subarray(0, 32), carToPhone: okm.subarray(32, 64) };
  expect(hex(keys.phoneToCar)).toBe(str(vectors, `${section}.derived.phoneToCarKey`));
  expect(hex(keys.carToPhone)).toBe(str(vectors, `${section}.derived.carToPhoneKey`));
  const request = bytes(vectors, `${section}.messages.2.hex`);
  expect(request[1]).toBe(0x03);
  const plaintext = nacl.secretbox.open(request.subarray(6), nonceFor(request, 1), keys.phoneToCar);
  if (plaintext === null) throw new Error('REQUEST does not open');
  checkRequest(plaintext, th, phoneIdentity);
  return { keys, th };
}

function checkResult(plaintext: Uint8Array, requestSeq: number, status: number, category: number): Uint8Array {
  expect(u32(plaintext, 0)).toBe(requestSeq);
  expect(plaintext[4]).toBe(status);
  expect(plaintext[5]).toBe(category);
  const payloadLength = u16(plaintext, 6);
  expect(plaintext.length).toBe(8 + payloadLength);
  return plaintext.subarray(8);
}

function checkKeyList(list: Uint8Array, signer: Uint8Array): { epoch: number; version: number; owners: string[]; revokedSerials: string[]; revokedKeys: string[] } {
  expect(list[0]).toBe(1);
  expect(hex(list.subarray(1, 17))).toBe(str(vectors, 'parties.car.vehicleId'));
  const epoch = u32(list, 17);
  const version = u32(list, 21);
  let offset = 33;
  const ownerCount = list[offset] ?? 0;
  offset += 1;
  const owners = Array.from({ length: ownerCount }, (_, i) => hex(list.subarray(offset + 32 * i, offset + 32 * (i + 1))));
  offset += 32 * ownerCount;
  const serialCount = u16(list, offset);
  offset += 2;
  const revokedSerials = Array.from({ length: serialCount }, (_, i) => hex(list.subarray(offset + 8 * i, offset + 8 * (i + 1))));
  offset += 8 * serialCount;
  const keyCount = u16(list, offset);
  offset += 2;
  const revokedKeys = Array.from({ length: keyCount }, (_, i) => hex(list.subarray(offset + 32 * i, offset + 32 * (i + 1))));
  offset += 32 * keyCount;
  expect(hex(list.subarray(offset, offset + 32))).toBe(hex(signer));
  expect(list.length).toBe(offset + 32 + 64);
  expect(verifyStrict(signer, cat(label(LABEL_TEXT.keyList), list.subarray(0, offset + 32)), list.subarray(offset + 32))).toBe(true);
  return { epoch, version, owners, revokedSerials, revokedKeys };
}

// --- the tests -------------------------------------------------------------------------

describe('protocol vectors: generated by the reference code', () => {
  it('the committed file is exactly what generateVectors() produces', () => {
    expect(renderVectors(generateVectors())).toBe(committedText);
  });

  it('the tweetnacl backend generates the same bytes as the node backend', () => {
    expect(renderVectors(generateVectors(createCrypto('tweetnacl')))).toBe(committedText);
  });

  it('declares its generator and format', () => {
    expect(str(vectors, 'generator')).toBe('npm run vectors');
    expect(num(vectors, 'formatVersion')).toBe(1);
    expect(num(vectors, 'constants.protocolVersion')).toBe(1);
  });
});

describe('protocol vectors: re-derived independently (raw tweetnacl, SHA-512, offsets from docs/protocol.md)', () => {
  it('labels are the ASCII text followed by one 0x00 byte', () => {
    for (const [name, text] of Object.entries(LABEL_TEXT)) {
      expect(str(vectors, `constants.labels.${name}.text`)).toBe(text);
      expect(str(vectors, `constants.labels.${name}.hex`)).toBe(hex(label(text)));
    }
  });

  it('identities, vehicle id and key ids follow from the seeds', () => {
    for (const party of ['car', 'owner', 'friend', 'stranger', 'impostorCar', 'lostPhone']) {
      const seed = bytes(vectors, `parties.${party}.seed`);
      expect(hex(seed)).toBe(hex(sha512(new TextEncoder().encode(`carkey vectors v1 seed: ${str(vectors, `parties.${party}.seedName`)}`)).subarray(0, 32)));
      const publicKey = nacl.sign.keyPair.fromSeed(seed).publicKey;
      expect(hex(publicKey)).toBe(str(vectors, `parties.${party}.publicKey`));
      expect(str(vectors, `parties.${party}.keyId`)).toBe(hex(sha512(label(LABEL_TEXT.keyId), publicKey).subarray(0, 8)));
    }
    expect(str(vectors, 'parties.car.vehicleId')).toBe(hex(sha512(label(LABEL_TEXT.vehicleId), carKey).subarray(0, 16)));
  });

  it('owner pairing: commitment, signatures, transcript, keys, code and every sealed message', () => {
    const messages = list(vectors, 'pairing.messages');
    expect(messages.map((m) => str(m, 'message'))).toEqual(['PAIR_HELLO', 'PAIR_CHALLENGE', 'PAIR_REVEAL', 'PAIR_READY', 'PAIR_CONFIRM', 'PAIR_RESULT']);
    const hello = bytes(vectors, 'pairing.messages.0.hex');
    const challenge = bytes(vectors, 'pairing.messages.1.hex');
    const reveal = bytes(vectors, 'pairing.messages.2.hex');
    expect([hello.length, challenge.length, reveal.length]).toEqual([66, 146, 18]);
    const phoneSecret = bytes(vectors, 'pairing.rng.phone.0.hex');
    const phoneNonce = bytes(vectors, 'pairing.rng.phone.1.hex');
    const phoneEphemeral = nacl.scalarMult.base(phoneSecret);
    expect(hex(hello.subarray(2, 34))).toBe(hex(phoneEphemeral));
    // Commitment before the car's nonce is known; the nonce revealed later matches it.
    expect(hex(hello.subarray(34, 66))).toBe(hex(sha512(label(LABEL_TEXT.pairCommit), phoneEphemeral, phoneNonce).subarray(0, 32)));
    expect(hex(reveal.subarray(2))).toBe(hex(phoneNonce));
    // PAIR_CHALLENGE: ephemeral ‖ nonce ‖ car identity, signed by that identity over label ‖ PAIR_HELLO ‖ body.
    expect(hex(challenge.subarray(2, 34))).toBe(hex(nacl.scalarMult.base(bytes(vectors, 'pairing.rng.car.0.hex'))));
    expect(hex(challenge.subarray(34, 50))).toBe(str(vectors, 'pairing.rng.car.1.hex'));
    expect(hex(challenge.subarray(50, 82))).toBe(hex(carKey));
    expect(verifyStrict(carKey, cat(label(LABEL_TEXT.pairChallenge), hello, challenge.subarray(0, 82)), challenge.subarray(82))).toBe(true);
    const shared = nacl.scalarMult(phoneSecret, challenge.subarray(2, 34));
    const th = sha512(hello, challenge, reveal);
    expect(hex(th)).toBe(str(vectors, 'pairing.derived.transcriptHash'));
    const okm = sha512(label(LABEL_TEXT.pairKeys), shared, th);
    const keys = { phoneToCar: okm.subarray(0, 32), carToPhone: okm.subarray(32, 64) };
    const digest = sha512(label(LABEL_TEXT.pairCode), th);
    const code = String(u32(digest, 0) % 1_000_000).padStart(6, '0');
    expect(code).toBe(str(vectors, 'pairing.derived.code'));
    expect(code).toMatch(/^\d{6}$/);

    const [ready, confirm, result] = openSealed(messages, keys);
    if (ready === undefined || confirm === undefined || result === undefined) throw new Error('three sealed pairing messages expected');
    expect([ready.type, ready.seq, confirm.type, confirm.seq, result.type, result.seq]).toEqual([0x13, 0, 0x14, 0, 0x15, 1]);
    // status 0 (ready) ‖ epoch 0 ‖ required version 1 ‖ empty key list: the car has no owner yet
    expect(hex(ready.plaintext)).toBe('00' + '00000000' + '00000001' + '0000');
    // PAIR_CONFIRM: identity ‖ name ‖ key list ‖ signature over label ‖ th ‖ body.
    const ownerKey = bytes(vectors, 'parties.owner.publicKey');
    const p = confirm.plaintext;
    expect(hex(p.subarray(0, 32))).toBe(hex(ownerKey));
    const nameLength = u16(p, 32);
    expect(new TextDecoder().decode(p.subarray(34, 34 + nameLength))).toBe(str(vectors, 'pairing.ownerDeviceName'));
    const listLength = u16(p, 34 + nameLength);
    const listStart = 36 + nameLength;
    const keyList = p.subarray(listStart, listStart + listLength);
    expect(p.length).toBe(listStart + listLength + 64);
    expect(verifyStrict(ownerKey, cat(label(LABEL_TEXT.pairConfirm), th, p.subarray(0, listStart + listLength)), p.subarray(listStart + listLength))).toBe(true);
    expect(hex(keyList)).toBe(str(vectors, 'pairing.keyList.hex'));
    expect(checkKeyList(keyList, ownerKey)).toEqual({ epoch: 0, version: 1, owners: [hex(ownerKey)], revokedSerials: [], revokedKeys: [] });
    // PAIR_RESULT: status 0 ‖ advertising secret ‖ vehicle name.
    expect(result.plaintext[0]).toBe(0);
    expect(hex(result.plaintext.subarray(1, 33))).toBe(str(vectors, 'pairing.advSecret'));
    expect(new TextDecoder().decode(result.plaintext.subarray(35))).toBe(str(vectors, 'pairing.vehicleName'));
    expect(u16(result.plaintext, 33)).toBe(result.plaintext.length - 35);
  });

  it('owner unlock, lock, status and key-list push on one session', () => {
    const ownerKey = bytes(vectors, 'parties.owner.publicKey');
    const { keys } = deriveUnlock('ownerUnlock', ownerKey);
    const messages = [...list(vectors, 'ownerUnlock.messages'), ...list(vectors, 'status.messages'), ...list(vectors, 'keyListUpdate.messages')];
    expect(messages.map((m) => str(m, 'message'))).toEqual(['HELLO', 'CHALLENGE', 'REQUEST', 'RESULT', 'COMMAND', 'RESULT', 'COMMAND', 'RESULT', 'COMMAND', 'RESULT']);
    const sealed = openSealed(messages, keys);
    expect(sealed.map((m) => `${m.from}:${m.type}:${m.seq}`)).toEqual(['phone:3:0', 'car:4:0', 'phone:5:1', 'car:4:1', 'phone:5:2', 'car:4:2', 'phone:5:3', 'car:4:3']);
    const [request, unlockResult, lock, lockResult, status, statusResult, push, pushResult] = sealed.map((m) => m.plaintext);
    if (request === undefined || unlockResult === undefined || lock === undefined || lockResult === undefined) throw new Error('messages missing');
    if (status === undefined || statusResult === undefined || push === undefined || pushResult === undefined) throw new Error('messages missing');
    // REQUEST: owner credential is kind 0 with an empty credential; command unlock (1), no args.
    expect(request[32]).toBe(0);
    expect(u16(request, 33)).toBe(0);
    expect(request[35]).toBe(1);
    expect(checkResult(unlockResult, 0, 0, 0).length).toBe(0);
    // COMMAND plaintext: command u8 ‖ args (u16 length). No signature.
    expect(hex(lock)).toBe('020000');
    expect(checkResult(lockResult, 1, 0, 0).length).toBe(0);
    expect(hex(status)).toBe('050000');
    const statusPayload = checkResult(statusResult, 2, 0, 0);
    expect(hex(statusPayload)).toBe(str(vectors, 'status.payload.hex'));
    expect(statusPayload.length).toBe(17);
    expect([statusPayload[0], statusPayload[1], statusPayload[2], statusPayload[3], u32(statusPayload, 4), u64(statusPayload, 8), statusPayload[16]]).toEqual([
      0x0f,
      4,
      0,
      0,
      1,
      num(vectors, 'status.payload.fields.carTime'),
      1, // flags: start needs a PIN
    ]);
    // keyListPush (7): args = the new key list; result payload = version now in force.
    expect(push[0]).toBe(7);
    const pushed = push.subarray(3);
    expect(u16(push, 1)).toBe(pushed.length);
    expect(hex(pushed)).toBe(str(vectors, 'keyListUpdate.keyList.hex'));
    const v2 = checkKeyList(pushed, ownerKey);
    expect(v2.version).toBe(2);
    expect(v2.revokedKeys).toEqual([str(vectors, 'parties.lostPhone.publicKey')]);
    expect(v2.revokedSerials).toEqual([str(vectors, 'keyListUpdate.rng.owner.0.hex')]);
    expect(u32(checkResult(pushResult, 3, 0, 0), 0)).toBe(2);
  });

  it('guest unlock with a grant, then a denied command with its category', () => {
    const friendKey = bytes(vectors, 'parties.friend.publicKey');
    const ownerKey = bytes(vectors, 'parties.owner.publicKey');
    const { keys, th } = deriveUnlock('guestUnlock', friendKey);
    const messages = [...list(vectors, 'guestUnlock.messages'), ...list(vectors, 'deniedResult.messages')];
    const [request, result, trunk, denied] = openSealed(messages, keys).map((m) => m.plaintext);
    if (request === undefined || result === undefined || trunk === undefined || denied === undefined) throw new Error('messages missing');
    const { kind, credential, command } = checkRequest(request, th, friendKey);
    expect([kind, command]).toEqual([1, 1]);
    // Grant: 176 bytes, signed by an owner over label ‖ the first 112 bytes.
    expect(credential.length).toBe(176);
    expect(hex(credential)).toBe(str(vectors, 'guestUnlock.grant.hex'));
    expect(credential[0]).toBe(1);
    expect(hex(credential.subarray(1, 17))).toBe(str(vectors, 'parties.car.vehicleId'));
    expect(u32(credential, 17)).toBe(0); // epoch
    expect(hex(credential.subarray(21, 29))).toBe(str(vectors, 'guestUnlock.rng.issuer.0.hex'));
    expect(hex(credential.subarray(29, 61))).toBe(hex(ownerKey));
    expect(hex(credential.subarray(61, 93))).toBe(hex(friendKey));
    expect(credential[93]).toBe(3); // guest
    expect(u16(credential, 94)).toBe(0x0001 | 0x0002 | 0x0010);
    expect(u64(credential, 104) - u64(credential, 96)).toBe(7 * 24 * 3600 * 1000);
    expect(verifyStrict(ownerKey, cat(label(LABEL_TEXT.grant), credential.subarray(0, 112)), credential.subarray(112))).toBe(true);
    expect(checkResult(result, 0, 0, 0).length).toBe(0);
    expect(hex(trunk)).toBe('040000');
    // Denied: status 1, category 1 (not-permitted), empty payload.
    expect(checkResult(denied, 1, 1, 1).length).toBe(0);
    expect(str(vectors, 'deniedResult.category.name')).toBe('not-permitted');
  });

  it('REFUSE is the two bytes 01 0f, sent to a stranger after a valid REQUEST', () => {
    expect(str(vectors, 'refuse.hex')).toBe('010f');
    deriveUnlock('refuse', bytes(vectors, 'parties.stranger.publicKey'));
    const last = list(vectors, 'refuse.messages').at(-1);
    expect(str(last, 'hex')).toBe('010f');
    expect(str(vectors, 'refuse.phoneReadsAs')).toBe('CK_PROTO_REFUSED');
  });

  it('advertising id and service data', () => {
    const secret = bytes(vectors, 'advertising.advSecret');
    const time = num(vectors, 'advertising.timeMs');
    const idAt = (ms: number): string => {
      const epoch = new Uint8Array(8);
      new DataView(epoch.buffer).setBigUint64(0, BigInt(Math.floor(ms / 900_000)));
      return hex(sha512(label(LABEL_TEXT.advertising), secret, epoch).subarray(0, 8));
    };
    expect(num(vectors, 'advertising.epoch')).toBe(Math.floor(time / 900_000));
    expect(str(vectors, 'advertising.advId')).toBe(idAt(time));
    expect(str(vectors, 'advertising.previousEpochAdvId')).toBe(idAt(time - 900_000));
    expect(str(vectors, 'advertising.nextEpochAdvId')).toBe(idAt(time + 900_000));
    expect(str(vectors, 'advertising.serviceData')).toBe(`0100${idAt(time)}`);
    expect(str(vectors, 'advertising.serviceDataPairing')).toBe(`0101${idAt(time)}`);
    expect(str(vectors, 'advertising.advSecret')).toBe(str(vectors, 'pairing.advSecret'));
  });

  it('every message is framed as documented at MTU 23 and 185', () => {
    let checked = 0;
    for (const section of ['pairing', 'ownerUnlock', 'status', 'keyListUpdate', 'guestUnlock', 'deniedResult', 'refuse']) {
      for (const message of list(vectors, `${section}.messages`)) {
        const wire = bytes(message, 'hex');
        for (const mtu of [23, 185]) {
          const chunks = list(message, `chunks.mtu${mtu}`).map((_, i) => bytes(message, `chunks.mtu${mtu}.${i}`));
          expect(chunks.map(hex)).toEqual(frame(wire, mtu).map(hex));
          expect(chunks.every((chunk) => chunk.length <= mtu - 3)).toBe(true);
          expect(hex(reassemble(chunks))).toBe(hex(wire));
          checked++;
        }
      }
    }
    expect(checked).toBe(2 * (6 + 6 + 2 + 2 + 4 + 2 + 4));
  });

  it('negative cases fail for the documented reason', () => {
    const byName = new Map(list(vectors, 'negative').map((n) => [str(n, 'name'), n]));
    expect([...byName.keys()]).toEqual(['spoofed-car-challenge', 'malleable-challenge-signature', 'tampered-result', 'replayed-result', 'expired-challenge', 'tampered-request']);
    const hello = bytes(vectors, 'ownerUnlock.messages.0.hex');
    const signedPart = (challenge: Uint8Array): Uint8Array => cat(label(LABEL_TEXT.challenge), hello, challenge.subarray(0, 64));

    const spoofed = bytes(byName.get('spoofed-car-challenge'), 'input');
    expect(verifyStrict(carKey, signedPart(spoofed), spoofed.subarray(64))).toBe(false);
    expect(verifyStrict(bytes(vectors, 'parties.impostorCar.publicKey'), signedPart(spoofed), spoofed.subarray(64))).toBe(true);
    expect(str(byName.get('spoofed-car-challenge'), 'errorCode')).toBe('CK_PROTO_BAD_CAR_SIGNATURE');

    const malleated = bytes(byName.get('malleable-challenge-signature'), 'input');
    expect(nacl.sign.detached.verify(signedPart(malleated), malleated.subarray(64), carKey)).toBe(true); // why S < L must be checked
    expect(sBelowL(malleated.subarray(64))).toBe(false);
    expect(verifyStrict(carKey, signedPart(malleated), malleated.subarray(64))).toBe(false);

    const carToPhone = bytes(vectors, 'ownerUnlock.derived.carToPhoneKey');
    const tampered = bytes(byName.get('tampered-result'), 'input');
    expect(nacl.secretbox.open(tampered.subarray(6), nonceFor(tampered, 2), carToPhone)).toBeNull();
    expect(str(byName.get('tampered-result'), 'errorCode')).toBe('CK_CRYPTO_DECRYPT_FAILED');

    const replayed = bytes(byName.get('replayed-result'), 'input');
    expect(u32(replayed, 2)).toBe(0); // the phone expects car seq 1 at this point
    expect(str(byName.get('replayed-result'), 'errorCode')).toBe('CK_PROTO_REPLAY');

    expect(str(byName.get('expired-challenge'), 'reply')).toBe('010f');
    expect(str(byName.get('expired-challenge'), 'errorCode')).toBe('CK_PROTO_CHALLENGE_EXPIRED');
    expect(str(byName.get('tampered-request'), 'reply')).toBe('010f');
    const tamperedRequest = bytes(byName.get('tampered-request'), 'input');
    expect(nacl.secretbox.open(tamperedRequest.subarray(6), nonceFor(tamperedRequest, 1), bytes(vectors, 'ownerUnlock.derived.phoneToCarKey'))).toBeNull();
  });
});

describe('docs/protocol.md quotes the vectors exactly', () => {
  it('every <!-- vector: PATH --> block equals the value at PATH', () => {
    const marker = /<!-- vector: ([A-Za-z0-9_.]+) -->\n```\n([\s\S]*?)\n```/g;
    const quoted = [...protocolDoc.matchAll(marker)];
    expect(quoted.length).toBeGreaterThanOrEqual(40);
    for (const [, path = '', block = ''] of quoted) {
      const value = at(vectors, path);
      if (Array.isArray(value)) {
        expect(block.split('\n'), path).toEqual(value);
      } else {
        expect(block.replace(/\s+/g, ''), path).toBe(typeof value === 'string' ? value : JSON.stringify(value));
      }
    }
    // No marker may be left without its block.
    expect(protocolDoc.split('<!-- vector:').length - 1).toBe(quoted.length);
  });
});
