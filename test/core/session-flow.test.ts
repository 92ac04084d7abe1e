import { describe, expect, it } from 'vitest';
import { createCrypto } from '../../src/core/crypto/index.js';
import { VehicleSession, type VehicleEvent } from '../../src/core/vehicle-session.js';
import { PhonePairing, PhoneSession } from '../../src/core/phone-session.js';
import { acceptKeyList, decodeKeyList, signKeyList, signGrant } from '../../src/core/credentials.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { decide } from '../../src/core/authorize.js';
import { Permission } from '../../src/core/roles.js';
import { fixedSeed, seededRandom } from '../helpers/core-fixtures.js';

const crypto = createCrypto('node');
const carSeed = fixedSeed('car');
const ownerSeed = fixedSeed('owner');
const friendSeed = fixedSeed('friend');
const carKey = crypto.publicKeyFromSeed(carSeed);
const vehicleId = vehicleIdOf(crypto, carKey);

function expectKind<K extends VehicleEvent['kind']>(event: VehicleEvent, kind: K): Extract<VehicleEvent, { kind: K }> {
  expect(event.kind).toBe(kind);
  return event as Extract<VehicleEvent, { kind: K }>;
}

describe('session flow', () => {
  it('pairs the first owner, then unlocks as owner and as a friend with a grant', () => {
    const car = new VehicleSession({ crypto, identitySeed: carSeed, random: seededRandom('car') });
    const ctx = { now: 1000, carTime: 1_700_000_000_000, keyListVersion: 0, pairingOpen: true, pairReady: { status: 'ready' as const, epoch: 0, requiredVersion: 1, keyList: new Uint8Array(0) } };
    const pairing = new PhonePairing({ crypto, random: seededRandom('phone'), identitySeed: ownerSeed });
    const challenge = expectKind(car.handle(pairing.start(), ctx), 'reply');
    const checked = pairing.onChallenge(challenge.reply);
    expect(checked.ok).toBe(true);
    const reveal = pairing.reveal();
    if (!reveal.ok) throw reveal.error;
    const code = expectKind(car.handle(reveal.value.message, ctx), 'pair-code');
    expect(code.code).toBe(reveal.value.code);
    expect(code.code).toMatch(/^\d{6}$/);
    const ready = pairing.onReady(code.reply);
    expect(ready.ok && ready.value.keyList.length).toBe(0);
    const list = signKeyList(crypto, ownerSeed, { vehicleId, version: 1, issuedAt: ctx.carTime, owners: [crypto.publicKeyFromSeed(ownerSeed)], revokedSerials: [], revokedKeys: [] });
    const confirm = expectKind(car.handle(pairing.confirm(list.bytes, 'alice'), ctx), 'pair-confirm');
    const decoded = decodeKeyList(confirm.keyList);
    if (!decoded.ok) throw decoded.error;
    const accepted = acceptKeyList(crypto, decoded.value, undefined, vehicleId, { viaPairing: true });
    expect(accepted.ok).toBe(true);
    const result = pairing.onResult(car.finishPairing({ accepted: true, advSecret: new Uint8Array(32).fill(7), vehicleName: 'test car' }));
    expect(result.ok && result.value.vehicleName).toBe('test car');

    // Unlock as owner.
    const car2 = new VehicleSession({ crypto, identitySeed: carSeed, random: seededRandom('car2') });
    const phone = new PhoneSession({ crypto, random: seededRandom('p2'), identitySeed: ownerSeed, carIdentityKey: carKey });
    const ch = expectKind(car2.handle(phone.start(), { ...ctx, pairingOpen: false, keyListVersion: 1 }), 'reply');
    expect(phone.onChallenge(ch.reply).ok).toBe(true);
    const req = expectKind(car2.handle(phone.request({ kind: 'owner' }, 'unlock'), { ...ctx, now: 1010 }), 'request');
    expect(req.command).toBe('unlock');
    expect(req.responseTimeMs).toBe(10);
    const decision = decide(crypto, {
      vehicleId, keyList: decoded.value, peerKey: req.peerKey, credential: req.credential, command: 'unlock', now: ctx.carTime,
      proximity: { rssi: -50, near: true, responseTimeMs: req.responseTimeMs }, policy: { relayBoundMs: 50, startPinRequired: false }, pin: undefined,
    });
    expect(decision.allow).toBe(true);
    const res = phone.onResult(car2.respond(req.seq, { status: 'ok' }));
    expect(res.ok && res.value.status).toBe('ok');
    const lock = expectKind(car2.handle(phone.command('lock'), ctx), 'request');
    expect(lock.command).toBe('lock');
    expect(lock.first).toBe(false);

    // Friend with a guest grant.
    const grant = signGrant(crypto, ownerSeed, {
      vehicleId, serial: new Uint8Array(8).fill(1), subject: crypto.publicKeyFromSeed(friendSeed), role: 'guest',
      permissions: Permission.unlock | Permission.lock, notBefore: ctx.carTime - 1000, notAfter: ctx.carTime + 86_400_000,
    });
    const car3 = new VehicleSession({ crypto, identitySeed: carSeed, random: seededRandom('car3') });
    const friend = new PhoneSession({ crypto, random: seededRandom('f'), identitySeed: friendSeed, carIdentityKey: carKey });
    const ch3 = expectKind(car3.handle(friend.start(), ctx), 'reply');
    expect(friend.onChallenge(ch3.reply).ok).toBe(true);
    const req3 = expectKind(car3.handle(friend.request({ kind: 'grant', bytes: grant.bytes }, 'trunk'), ctx), 'request');
    const d3 = decide(crypto, {
      vehicleId, keyList: decoded.value, peerKey: req3.peerKey, credential: req3.credential, command: 'trunk', now: ctx.carTime,
      proximity: { rssi: -50, near: true, responseTimeMs: 0 }, policy: { relayBoundMs: 50, startPinRequired: false }, pin: undefined,
    });
    expect(d3).toMatchObject({ allow: false, reason: 'not-permitted' });
  });
});
