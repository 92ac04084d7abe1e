/**
 * The core pieces the cloud path rests on: sealed boxes to Ed25519
 * identities (Montgomery conversion checked against X25519 of the seed's
 * scalar), request signatures (every signed field matters, replay window,
 * malformed headers), and the signed cloud documents (vehicle statement,
 * remote command, remote result): round trips, every bit flip refused.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { CLOUD_HEADERS, signRequest, verifyRequestSignature, type RequestToSign } from '../../src/core/cloud-auth.js';
import { signRemoteCommand, signRemoteResult, verifyRemoteCommand, verifyRemoteResult } from '../../src/core/cloud-docs.js';
import { signVehicleStatement, verifyVehicleStatement } from '../../src/core/vehicle-statement.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { montgomeryFromEdwards, openSealedBox, sealTo, x25519SecretFromSeed } from '../../src/core/sealed-box.js';
import { crypto as harnessCrypto, flipBit, pairedWorld, party, propertyRuns, T0 } from '../helpers/core-harness.js';

const backends = [createCrypto('node'), createCrypto('tweetnacl')];
let counter = 0;
const random = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 73 + counter++ * 31 + 7) & 0xff);

describe('sealed boxes to an Ed25519 identity', () => {
  for (const crypto of backends) {
    it(`${crypto.backendName}: the Montgomery form of the public key is X25519 of the seed's scalar (property)`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
          const viaSecret = crypto.x25519KeyPair(x25519SecretFromSeed(crypto, seed)).publicKey;
          expect(toHex(montgomeryFromEdwards(crypto.publicKeyFromSeed(seed)))).toBe(toHex(viaSecret));
        }),
        propertyRuns(40),
      );
    });
  }

  it('round-trips; a box for someone else, a flipped bit or a truncated box does not open', () => {
    const crypto = harnessCrypto;
    const alice = party('alice');
    const bob = party('bob');
    const message = new TextEncoder().encode('carkey1:share bundle');
    const box = sealTo(crypto, random, alice.publicKey, message);
    const opened = openSealedBox(crypto, alice.seed, box);
    expect(opened.ok && new TextDecoder().decode(opened.value)).toBe('carkey1:share bundle');
    expect(openSealedBox(crypto, bob.seed, box).ok).toBe(false);
    for (let bit = 0; bit < box.length * 8; bit += 7) expect(openSealedBox(crypto, alice.seed, flipBit(box, bit)).ok).toBe(false);
    expect(openSealedBox(crypto, alice.seed, box.subarray(0, 47)).ok).toBe(false);
    // a box made with one backend opens with the other
    const other = backends[1];
    if (other === undefined) throw new Error('two backends expected');
    const crossed = openSealedBox(other, alice.seed, box);
    expect(crossed.ok).toBe(true);
  });

  it('refuses to seal to a small-order key', () => {
    expect(() => sealTo(harnessCrypto, random, new Uint8Array(32), Uint8Array.of(1))).toThrow();
  });
});

describe('request signatures', () => {
  const crypto = harnessCrypto;
  const caller = party('caller');
  const request: RequestToSign = { method: 'POST', path: '/v1/vehicles/00/key-list', query: 'wait=30', body: new TextEncoder().encode('{"keyList":"AA"}') };

  it('a signed request verifies; the caller key is reported', () => {
    const headers = signRequest(crypto, random, caller.seed, request, T0);
    const verified = verifyRequestSignature(crypto, headers, request, T0 + 1000);
    expect(verified.ok && toHex(verified.value.publicKey)).toBe(toHex(caller.publicKey));
  });

  it('every signed part matters: method, path, query, body, time, nonce', () => {
    const headers = signRequest(crypto, random, caller.seed, request, T0);
    const variants: RequestToSign[] = [
      { ...request, method: 'PUT' },
      { ...request, path: '/v1/vehicles/01/key-list' },
      { ...request, query: 'wait=31' },
      { ...request, body: new TextEncoder().encode('{"keyList":"AB"}') },
    ];
    for (const variant of variants) expect(verifyRequestSignature(crypto, headers, variant, T0)).toMatchObject({ ok: false, error: { code: 'CK_CLOUD_AUTH_BAD_SIGNATURE' } });
    const otherTime = { ...headers, [CLOUD_HEADERS.time]: String(T0 + 1) };
    expect(verifyRequestSignature(crypto, otherTime, request, T0)).toMatchObject({ ok: false, error: { code: 'CK_CLOUD_AUTH_BAD_SIGNATURE' } });
    const otherNonce = { ...headers, [CLOUD_HEADERS.nonce]: '00'.repeat(16) };
    expect(verifyRequestSignature(crypto, otherNonce, request, T0)).toMatchObject({ ok: false, error: { code: 'CK_CLOUD_AUTH_BAD_SIGNATURE' } });
  });

  it('outside the replay window: stale; missing or malformed headers: missing', () => {
    const headers = signRequest(crypto, random, caller.seed, request, T0);
    expect(verifyRequestSignature(crypto, headers, request, T0 + 120_001)).toMatchObject({ ok: false, error: { code: 'CK_CLOUD_AUTH_STALE' } });
    expect(verifyRequestSignature(crypto, headers, request, T0 - 120_001)).toMatchObject({ ok: false, error: { code: 'CK_CLOUD_AUTH_STALE' } });
    expect(verifyRequestSignature(crypto, {}, request, T0)).toMatchObject({ ok: false, error: { code: 'CK_CLOUD_AUTH_MISSING' } });
    for (const [name, value] of [
      [CLOUD_HEADERS.key, 'XYZ'],
      [CLOUD_HEADERS.time, '-5'],
      [CLOUD_HEADERS.time, '1e12'],
      [CLOUD_HEADERS.nonce, 'ab'],
      [CLOUD_HEADERS.signature, 'AB'.repeat(64)],
    ] as const) {
      expect(verifyRequestSignature(crypto, { ...headers, [name]: value }, request, T0)).toMatchObject({ ok: false, error: { code: 'CK_CLOUD_AUTH_MISSING' } });
    }
    expect(verifyRequestSignature(crypto, { ...headers, [CLOUD_HEADERS.key]: '00'.repeat(32) }, request, T0)).toMatchObject({ ok: false, error: { code: 'CK_CLOUD_AUTH_BAD_SIGNATURE' } });
  });

  it('never throws on arbitrary header values (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...Object.values(CLOUD_HEADERS)), fc.string({ maxLength: 200 })), (headers) => {
        expect(verifyRequestSignature(crypto, headers, request, T0).ok).toBe(false);
      }),
      propertyRuns(200),
    );
  });
});

describe('cloud documents', () => {
  const crypto = harnessCrypto;
  const world = pairedWorld();
  const car = world.car;
  const vehicleId = vehicleIdOf(crypto, car.publicKey);

  it('vehicle statement: verifies with the car key and names its key list; any bit flip is refused', () => {
    const statement = signVehicleStatement(crypto, car.seed, T0, world.keyList.bytes);
    const verified = verifyVehicleStatement(crypto, statement);
    expect(verified.ok && toHex(verified.value.vehicleId)).toBe(toHex(vehicleId));
    expect(verified.ok && verified.value.keyList?.version).toBe(world.keyList.version);
    for (let bit = 0; bit < statement.length * 8; bit += 5) expect(verifyVehicleStatement(crypto, flipBit(statement, bit)).ok).toBe(false);
    const foreign = pairedWorld({ car: 'other car' });
    expect(verifyVehicleStatement(crypto, signVehicleStatement(crypto, car.seed, T0, foreign.keyList.bytes))).toMatchObject({ ok: false, error: { code: 'CK_CRED_WRONG_VEHICLE' } });
    expect(verifyVehicleStatement(crypto, signVehicleStatement(crypto, car.seed, T0, new Uint8Array(0)))).toMatchObject({ ok: true, value: { keyList: undefined } });
  });

  it('remote command: verifies for its car until it expires; bit flips, other cars and bad lifetimes are refused', () => {
    const phone = world.owner;
    const body = { vehicleId, commandId: new Uint8Array(16).fill(9), issuedAt: T0, expiresAt: T0 + 60_000, credentialKind: 0, credential: new Uint8Array(0), command: 2, args: new Uint8Array(0) };
    const signed = signRemoteCommand(crypto, phone.seed, body);
    const verified = verifyRemoteCommand(crypto, signed, vehicleId, T0 + 1);
    expect(verified.ok && toHex(verified.value.identity)).toBe(toHex(phone.publicKey));
    expect(verifyRemoteCommand(crypto, signed, vehicleId, T0 + 60_000)).toMatchObject({ ok: false, error: { code: 'CK_REMOTE_EXPIRED' } });
    expect(verifyRemoteCommand(crypto, signed, new Uint8Array(16), T0)).toMatchObject({ ok: false, error: { code: 'CK_CRED_WRONG_VEHICLE' } });
    for (let bit = 0; bit < signed.length * 8; bit += 3) expect(verifyRemoteCommand(crypto, flipBit(signed, bit), vehicleId, T0 + 1).ok).toBe(false);
    expect(() => signRemoteCommand(crypto, phone.seed, { ...body, expiresAt: T0 + 11 * 60_000 })).toThrow();
    expect(() => signRemoteCommand(crypto, phone.seed, { ...body, expiresAt: T0 })).toThrow();
  });

  it('remote result: verifies with the pinned car key for the command sent; bit flips refused', () => {
    const commandId = new Uint8Array(16).fill(3);
    const signed = signRemoteResult(crypto, car.seed, { vehicleId, commandId, time: T0, status: 1, category: 2, payload: new Uint8Array(0) });
    expect(verifyRemoteResult(crypto, signed, car.publicKey, commandId)).toMatchObject({ ok: true, value: { status: 1, category: 2 } });
    expect(verifyRemoteResult(crypto, signed, car.publicKey, new Uint8Array(16))).toMatchObject({ ok: false, error: { code: 'CK_PROTO_UNEXPECTED_MESSAGE' } });
    expect(verifyRemoteResult(crypto, signed, world.owner.publicKey, commandId)).toMatchObject({ ok: false, error: { code: 'CK_PROTO_BAD_CAR_SIGNATURE' } });
    for (let bit = 0; bit < signed.length * 8; bit += 3) expect(verifyRemoteResult(crypto, flipBit(signed, bit), car.publicKey, commandId).ok).toBe(false);
  });
});
