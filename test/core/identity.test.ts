/**
 * Derived identifiers: vehicle id and key id, the rotating advertising id
 * (changes every epoch, matches with ±1 epoch of skew, only for holders of
 * the secret), service data encoding, and the pairing derivations
 * (commitment, 6-digit code).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isCarkeyError } from '../../src/core/errors.js';
import {
  ADV_EPOCH_MS,
  ADV_FLAG_PAIRING,
  ADV_FORMAT,
  ADV_ID_LENGTH,
  advertisingId,
  decodeServiceData,
  encodeServiceData,
  keyIdOf,
  matchesAdvertisingId,
  PHONE_BEHIND_EPOCHS,
  vehicleIdOf,
  VEHICLE_ID_LENGTH,
} from '../../src/core/identity.js';
import { pairingCode, pairingCommitment } from '../../src/core/pairing-code.js';
import { crypto, party, propertyRuns } from '../helpers/core-harness.js';

const secret = fc.uint8Array({ minLength: 32, maxLength: 32 });
/** Times from the epoch to ~year 2300. */
const time = fc.integer({ min: 0, max: 10_000_000_000_000 });

describe('vehicle id and key id', () => {
  it('are deterministic, of fixed size, and differ between keys', () => {
    const a = party('car a').publicKey;
    const b = party('car b').publicKey;
    expect(vehicleIdOf(crypto, a)).toEqual(vehicleIdOf(crypto, a));
    expect(vehicleIdOf(crypto, a).length).toBe(VEHICLE_ID_LENGTH);
    expect(vehicleIdOf(crypto, a)).not.toEqual(vehicleIdOf(crypto, b));
    expect(keyIdOf(crypto, a)).toMatch(/^[0-9a-f]{16}$/);
    expect(keyIdOf(crypto, a)).not.toBe(keyIdOf(crypto, b));
    // Domain separation: the key id is not a prefix of the vehicle id.
    expect(Buffer.from(vehicleIdOf(crypto, a)).toString('hex').startsWith(keyIdOf(crypto, a))).toBe(false);
  });
});

describe('advertising id', () => {
  it('is 8 bytes, constant within an epoch and different in the next one', () => {
    fc.assert(
      fc.property(secret, fc.integer({ min: 1, max: 10_000_000 }), fc.integer({ min: 0, max: ADV_EPOCH_MS - 1 }), (s, epoch, offset) => {
        const start = epoch * ADV_EPOCH_MS;
        const id = advertisingId(crypto, s, start + offset);
        expect(id.length).toBe(ADV_ID_LENGTH);
        expect(advertisingId(crypto, s, start)).toEqual(id);
        expect(advertisingId(crypto, s, start + ADV_EPOCH_MS - 1)).toEqual(id);
        expect(advertisingId(crypto, s, start + ADV_EPOCH_MS)).not.toEqual(id);
        expect(advertisingId(crypto, s, start - 1)).not.toEqual(id);
      }),
      propertyRuns(200),
    );
  });

  it('matches an id from the same or an adjacent epoch, and no further', () => {
    fc.assert(
      fc.property(secret, fc.integer({ min: 4, max: 10_000_000 }), fc.integer({ min: 0, max: ADV_EPOCH_MS - 1 }), fc.integer({ min: 0, max: ADV_EPOCH_MS - 1 }), fc.integer({ min: -3, max: 3 }), (s, epoch, sentAt, checkedAt, skew) => {
        const id = advertisingId(crypto, s, epoch * ADV_EPOCH_MS + sentAt);
        const matched = matchesAdvertisingId(crypto, s, id, (epoch + skew) * ADV_EPOCH_MS + checkedAt);
        expect(matched).toBe(Math.abs(skew) <= 1);
      }),
      propertyRuns(300),
    );
  });

  it('does not match with another secret', () => {
    fc.assert(
      fc.property(secret, secret, time, (a, b, t) => {
        fc.pre(!a.every((byte, i) => byte === b[i]));
        expect(matchesAdvertisingId(crypto, b, advertisingId(crypto, a, t), t)).toBe(false);
      }),
      propertyRuns(200),
    );
  });

  it('answers (never throws) in the first epochs after time 0, where the earlier epoch does not exist', () => {
    const s = new Uint8Array(32).fill(1);
    for (const t of [0, 1, ADV_EPOCH_MS - 1, ADV_EPOCH_MS, 2 * ADV_EPOCH_MS - 1]) {
      expect(matchesAdvertisingId(crypto, s, advertisingId(crypto, s, t), t)).toBe(true);
      expect(matchesAdvertisingId(crypto, s, new Uint8Array(8), t)).toBe(false);
      expect(matchesAdvertisingId(crypto, new Uint8Array(32).fill(2), advertisingId(crypto, s, t), t)).toBe(false);
    }
    expect(matchesAdvertisingId(crypto, s, advertisingId(crypto, s, ADV_EPOCH_MS), 0)).toBe(true);
  });

  it('matches only an id of exactly 8 bytes', () => {
    const s = new Uint8Array(32).fill(1);
    const t = 1_700_000_000_000;
    const id = advertisingId(crypto, s, t);
    expect(matchesAdvertisingId(crypto, s, Uint8Array.of(...id, 0), t)).toBe(false);
    expect(matchesAdvertisingId(crypto, s, id.subarray(0, 7), t)).toBe(false);
    expect(matchesAdvertisingId(crypto, s, new Uint8Array(0), t)).toBe(false);
  });

  it('refuses a secret that is not 32 bytes', () => {
    expect(() => advertisingId(crypto, new Uint8Array(31), 0)).toThrow();
    try {
      advertisingId(crypto, new Uint8Array(33), 0);
    } catch (error) {
      expect(isCarkeyError(error, 'CK_CRYPTO_BAD_LENGTH')).toBe(true);
    }
  });
});

describe('service data', () => {
  it('round-trips flags and id; the pairing flag is bit 0', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xff }), fc.uint8Array({ minLength: 8, maxLength: 8 }), (flags, advId) => {
        const bytes = encodeServiceData(flags, advId);
        expect(bytes.length).toBe(2 + ADV_ID_LENGTH);
        expect(bytes[0]).toBe(ADV_FORMAT);
        expect(decodeServiceData(bytes)).toEqual({ flags, pairing: (flags & ADV_FLAG_PAIRING) !== 0, advId });
      }),
      propertyRuns(200),
    );
  });

  it('rejects wrong lengths, another format and missing data', () => {
    const good = encodeServiceData(ADV_FLAG_PAIRING, new Uint8Array(8).fill(9));
    expect(decodeServiceData(good.subarray(0, 9))).toBeUndefined();
    expect(decodeServiceData(Uint8Array.of(...good, 0))).toBeUndefined();
    expect(decodeServiceData(new Uint8Array(0))).toBeUndefined();
    expect(decodeServiceData(undefined)).toBeUndefined();
    expect(decodeServiceData(Uint8Array.from(good, (byte, i) => (i === 0 ? 2 : byte)))).toBeUndefined();
    expect(() => encodeServiceData(0, new Uint8Array(7))).toThrow();
  });
});

describe('pairing derivations', () => {
  it('the code is always 6 digits and depends on the transcript', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), (th) => {
        const code = pairingCode(crypto, th);
        expect(code).toMatch(/^\d{6}$/);
        expect(pairingCode(crypto, th)).toBe(code);
      }),
      propertyRuns(300),
    );
    const codes = new Set(Array.from({ length: 50 }, (_, i) => pairingCode(crypto, new Uint8Array(64).fill(i))));
    expect(codes.size).toBeGreaterThan(45);
  });

  it('the commitment binds both the ephemeral key and the nonce', () => {
    const key = new Uint8Array(32).fill(1);
    const nonce = new Uint8Array(16).fill(2);
    const commitment = pairingCommitment(crypto, key, nonce);
    expect(commitment.length).toBe(32);
    expect(pairingCommitment(crypto, key, Uint8Array.from(nonce, (b, i) => (i === 15 ? b ^ 1 : b)))).not.toEqual(commitment);
    expect(pairingCommitment(crypto, Uint8Array.from(key, (b, i) => (i === 0 ? b ^ 1 : b)), nonce)).not.toEqual(commitment);
  });
});

describe('advertising id with a lagging car clock', () => {
  it('matches up to behindEpochs behind and never further, and at most one epoch ahead', () => {
    const s = new Uint8Array(32).fill(9);
    const now = 1_000 * ADV_EPOCH_MS;
    const lagging = advertisingId(crypto, s, now - 600 * ADV_EPOCH_MS);
    expect(matchesAdvertisingId(crypto, s, lagging, now)).toBe(false);
    expect(matchesAdvertisingId(crypto, s, lagging, now, PHONE_BEHIND_EPOCHS)).toBe(true);
    const tooOld = advertisingId(crypto, s, now - (PHONE_BEHIND_EPOCHS + 1) * ADV_EPOCH_MS);
    expect(matchesAdvertisingId(crypto, s, tooOld, now, PHONE_BEHIND_EPOCHS)).toBe(false);
    const ahead2 = advertisingId(crypto, s, now + 2 * ADV_EPOCH_MS);
    expect(matchesAdvertisingId(crypto, s, ahead2, now, PHONE_BEHIND_EPOCHS)).toBe(false);
  });
});
