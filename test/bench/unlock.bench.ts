/**
 * Vehicle-side CPU cost of one complete unlock, per backend: everything the
 * car computes between receiving HELLO and sending RESULT — X25519 key pair
 * and shared secret, signing the CHALLENGE, opening the REQUEST, checking the
 * phone's key and signature over the transcript, the decision (for a guest:
 * verifying the owner's grant signature too), and sealing the RESULT.
 * Radio time and actuation are excluded (they are I/O, not CPU).
 *
 * How: the car's RNG is fixed for the benchmark, so every session issues the
 * same CHALLENGE and one precomputed REQUEST answers it; each op runs a fresh
 * VehicleSession through the full exchange. Setup checks the result is an
 * allow, so a failing path is never measured.
 */
import { signGrant, signKeyList } from '../../src/core/credentials.js';
import { createCrypto, type BackendName } from '../../src/core/crypto/index.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { PhoneSession, type PhoneCredential } from '../../src/core/phone-session.js';
import { Permission } from '../../src/core/roles.js';
import { VehicleSession, type VehicleContext } from '../../src/core/vehicle-session.js';
import { authorize } from '../../src/vehicle/authorizer.js';
import { registerBench } from './harness.js';

const NOW = 1_800_000_000_000;

function fixed(label: string, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (label.charCodeAt(i % label.length) * 31 + i * 7) & 0xff;
  return out;
}

function unlockBench(backend: BackendName, kind: 'owner' | 'guest'): () => () => void {
  return () => {
    const crypto = createCrypto(backend);
    const carSeed = fixed('car', 32);
    const ownerSeed = fixed('owner', 32);
    const guestSeed = fixed('guest', 32);
    const carKey = crypto.publicKeyFromSeed(carSeed);
    const vehicleId = vehicleIdOf(crypto, carKey);
    const keyList = signKeyList(crypto, ownerSeed, { vehicleId, version: 1, issuedAt: NOW, owners: [crypto.publicKeyFromSeed(ownerSeed)], revokedSerials: [], revokedKeys: [] });
    const phoneSeed = kind === 'owner' ? ownerSeed : guestSeed;
    const credential: PhoneCredential =
      kind === 'owner'
        ? { kind: 'owner' }
        : {
            kind: 'grant',
            bytes: signGrant(crypto, ownerSeed, {
              vehicleId,
              serial: fixed('serial', 8),
              subject: crypto.publicKeyFromSeed(guestSeed),
              role: 'guest',
              permissions: Permission.unlock | Permission.lock,
              notBefore: NOW - 1000,
              notAfter: NOW + 86_400_000,
            }).bytes,
          };
    const carRandom = (n: number): Uint8Array => fixed(`car-rng-${n}`, n);
    const context: VehicleContext = { now: 0, carTime: NOW, keyListVersion: 1, pairingOpen: false, pairReady: { status: 'ready', epoch: 0, requiredVersion: 2, keyList: keyList.bytes } };
    const phone = new PhoneSession({ crypto, random: (n) => fixed(`phone-rng-${n}`, n), identitySeed: phoneSeed, carIdentityKey: carKey });
    const hello = phone.start();
    const probe = new VehicleSession({ crypto, identitySeed: carSeed, random: carRandom });
    const challenge = probe.handle(hello, context);
    if (challenge.kind !== 'reply' || !phone.onChallenge(challenge.reply).ok) throw new Error('benchmark setup: challenge failed');
    const request = phone.request(credential, 'unlock');

    const unlockOnce = (): boolean => {
      const car = new VehicleSession({ crypto, identitySeed: carSeed, random: carRandom });
      car.handle(hello, context);
      const event = car.handle(request, { ...context, now: 5 });
      if (event.kind !== 'request' || event.command === undefined) return false;
      const decision = authorize(crypto, { relayBoundMs: 500, startPin: undefined }, {
        vehicleId,
        keyList,
        trustedNow: NOW,
        peerKey: event.peerKey,
        credential: event.credential,
        command: event.command,
        proximity: { rssi: -50, near: true, responseTimeMs: event.responseTimeMs },
        pin: undefined,
      });
      if (!decision.allow) return false;
      car.respond(event.seq, { status: 'ok' });
      return true;
    };
    if (!unlockOnce()) throw new Error(`benchmark setup: ${kind} unlock was not allowed`);
    return () => {
      unlockOnce();
    };
  };
}

for (const backend of ['node', 'tweetnacl'] as const) {
  for (const kind of ['owner', 'guest'] as const) {
    registerBench(`vehicle-side unlock, ${kind} (${backend})`, { setup: unlockBench(backend, kind) });
  }
}
