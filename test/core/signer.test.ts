// The Signer widening (for the web app's non-extractable WebCrypto key): every
// `…With(signer)` variant produces exactly the bytes of its seed-based twin
// (Ed25519 is deterministic), the car accepts what it signs, and a signer that
// returns a wrong signature is caught before anything is sent.
import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { signGrant, signGrantWith, signKeyListWith } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { CarkeyError } from '../../src/core/errors.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { PhonePairing, PhoneSession } from '../../src/core/phone-session.js';
import { Permission } from '../../src/core/roles.js';
import { checkedSign, seedSigner, type Signer } from '../../src/core/signer.js';
import { VehicleSession, type VehicleEvent } from '../../src/core/vehicle-session.js';
import { pairingKeyListBody, buildPairingKeyList, buildRevocation, revocationBody, rebaseBody, rebaseRevocations } from '../../src/phone/key-lists.js';
import { fixedSeed, seededRandom } from '../helpers/core-fixtures.js';

const crypto = createCrypto('node');
const carSeed = fixedSeed('car');
const ownerSeed = fixedSeed('owner');
const carKey = crypto.publicKeyFromSeed(carSeed);
const vehicleId = vehicleIdOf(crypto, carKey);
const friendKey = crypto.publicKeyFromSeed(fixedSeed('friend'));

/** A signer that signs with another key: what a broken backend would look like. */
const wrongSigner: Signer = { publicKey: crypto.publicKeyFromSeed(ownerSeed), sign: (message) => Promise.resolve(crypto.sign(fixedSeed('other'), message)) };

function expectKind<K extends VehicleEvent['kind']>(event: VehicleEvent, kind: K): Extract<VehicleEvent, { kind: K }> {
  expect(event.kind).toBe(kind);
  return event as Extract<VehicleEvent, { kind: K }>;
}

describe('Signer variants', () => {
  it('sign grants and key lists byte-identically to the seed versions', async () => {
    const signer = seedSigner(crypto, ownerSeed);
    const body = { vehicleId, serial: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), subject: friendKey, role: 'guest' as const, permissions: Permission.unlock, notBefore: 1000, notAfter: 2000 };
    expect(toHex((await signGrantWith(crypto, signer, body)).bytes)).toBe(toHex(signGrant(crypto, ownerSeed, body).bytes));
    const input = { vehicleId, current: undefined, epoch: 0, requiredVersion: 1, issuedAt: 5000 };
    const list = await signKeyListWith(crypto, signer, pairingKeyListBody(signer.publicKey, input));
    expect(toHex(list.bytes)).toBe(toHex(buildPairingKeyList(crypto, ownerSeed, input).bytes));
    const target = { kind: 'key' as const, key: friendKey };
    const revoked = await signKeyListWith(crypto, signer, revocationBody(crypto, signer.publicKey, list, target, 6000));
    expect(toHex(revoked.bytes)).toBe(toHex(buildRevocation(crypto, ownerSeed, list, target, 6000).bytes));
    const rebased = rebaseBody(list, [revoked], 7000);
    expect(rebased).toBeDefined();
    if (rebased !== undefined) expect(toHex((await signKeyListWith(crypto, signer, rebased)).bytes)).toBe(toHex(rebaseRevocations(crypto, ownerSeed, list, [revoked], 7000)?.bytes ?? new Uint8Array(0)));
  });

  it('refuse a signature that does not verify under the signer key', async () => {
    await expect(checkedSign(crypto, wrongSigner, Uint8Array.of(1))).rejects.toMatchObject({ code: 'CK_CRYPTO_BAD_SIGNATURE' });
    await expect(signKeyListWith(crypto, wrongSigner, { vehicleId, version: 1, issuedAt: 1, owners: [wrongSigner.publicKey], revokedSerials: [], revokedKeys: [] })).rejects.toBeInstanceOf(CarkeyError);
  });

  it('pair and unlock through requestWith/confirmWith; the car accepts them', async () => {
    const signer = seedSigner(crypto, ownerSeed);
    const car = new VehicleSession({ crypto, identitySeed: carSeed, random: seededRandom('car') });
    const ctx = { now: 1000, carTime: 1_700_000_000_000, keyListVersion: 0, pairingOpen: true, pairReady: { status: 'ready' as const, epoch: 0, requiredVersion: 1, keyList: new Uint8Array(0) } };
    const pairing = new PhonePairing({ crypto, random: seededRandom('phone'), signer });
    expect(pairing.onChallenge(expectKind(car.handle(pairing.start(), ctx), 'reply').reply).ok).toBe(true);
    const reveal = pairing.reveal();
    if (!reveal.ok) throw reveal.error;
    expect(pairing.onReady(expectKind(car.handle(reveal.value.message, ctx), 'pair-code').reply).ok).toBe(true);
    const list = await signKeyListWith(crypto, signer, pairingKeyListBody(signer.publicKey, { vehicleId, current: undefined, epoch: 0, requiredVersion: 1, issuedAt: ctx.carTime }));
    expect(() => pairing.confirm(list.bytes, 'web')).toThrow(CarkeyError); // no seed: only the signer path
    expectKind(car.handle(await pairing.confirmWith(list.bytes, 'web'), ctx), 'pair-confirm');

    const car2 = new VehicleSession({ crypto, identitySeed: carSeed, random: seededRandom('car2') });
    const phone = new PhoneSession({ crypto, random: seededRandom('p2'), signer, carIdentityKey: carKey });
    const challenge = expectKind(car2.handle(phone.start(), { ...ctx, pairingOpen: false, keyListVersion: 1 }), 'reply');
    expect(phone.onChallenge(challenge.reply).ok).toBe(true);
    const request = expectKind(car2.handle(await phone.requestWith({ kind: 'owner' }, 'unlock'), { ...ctx, now: 1010 }), 'request');
    expect(request.command).toBe('unlock');
    expect(toHex(request.peerKey)).toBe(toHex(signer.publicKey));
  });

  it('a session whose signer lies is stopped before the REQUEST leaves', async () => {
    const car = new VehicleSession({ crypto, identitySeed: carSeed, random: seededRandom('car3') });
    const phone = new PhoneSession({ crypto, random: seededRandom('p3'), signer: wrongSigner, carIdentityKey: carKey });
    const challenge = expectKind(car.handle(phone.start(), { now: 0, carTime: 1, keyListVersion: 1, pairingOpen: false, pairReady: { status: 'ready' as const, epoch: 0, requiredVersion: 1, keyList: new Uint8Array(0) } }), 'reply');
    expect(phone.onChallenge(challenge.reply).ok).toBe(true);
    await expect(phone.requestWith({ kind: 'owner' }, 'unlock')).rejects.toMatchObject({ code: 'CK_CRYPTO_BAD_SIGNATURE' });
  });
});
