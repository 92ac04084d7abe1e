// Grant labels (issue 9): validation, the share bundle with and without the
// sharer's label (format 1 shares made before labels still decode), the
// vehicle record's optional label fields, and resolving audit entries to labels.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { concatBytes, fromBase64Url, toBase64Url, toHex } from '../../src/core/bytes.js';
import { GRANT_LENGTH, signGrant, type Grant } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { keyIdOf, vehicleIdOf } from '../../src/core/identity.js';
import { Permission } from '../../src/core/roles.js';
import { auditLabeler, checkLabel, MAX_LABEL_BYTES, MAX_LABEL_CHARS } from '../../src/phone/grant-label.js';
import { decodeShare, encodeShare, encodeShareBytes, MAX_SHARE_TEXT, SHARE_PREFIX } from '../../src/phone/share.js';
import { parseVehicleRecord, serializeVehicleRecord, type VehicleRecord } from '../../src/phone/vehicle-record.js';
import { fixedSeed } from '../helpers/core-fixtures.js';

const crypto = createCrypto('node');
const carKey = crypto.publicKeyFromSeed(fixedSeed('label car'));
const vehicleId = vehicleIdOf(crypto, carKey);
const owner = fixedSeed('label owner');
const friendKey = crypto.publicKeyFromSeed(fixedSeed('label friend'));
const otherKey = crypto.publicKeyFromSeed(fixedSeed('label other'));
const advSecret = new Uint8Array(32).fill(9);

function grant(serialByte: number, subject = friendKey): Grant {
  return signGrant(crypto, owner, { vehicleId, serial: new Uint8Array(8).fill(serialByte), subject, role: 'guest', permissions: Permission.unlock, notBefore: 1000, notAfter: 2000 });
}

describe('checkLabel', () => {
  it.each([
    ['Sam, weekend', 'Sam, weekend'],
    ['  Sam  ', 'Sam'],
    ['\tSam\n', 'Sam'],
    ['x', 'x'],
    ['a'.repeat(MAX_LABEL_CHARS), 'a'.repeat(MAX_LABEL_CHARS)],
    ['🚗'.repeat(MAX_LABEL_CHARS), '🚗'.repeat(MAX_LABEL_CHARS)],
    ['Zoë (NFD)'.normalize('NFD'), 'Zoë (NFD)'.normalize('NFC')],
    ['Анна, дача', 'Анна, дача'],
    ['内田さん', '内田さん'],
  ])('accepts %j as %j', (input, expected) => {
    const checked = checkLabel(input);
    if (!checked.ok) throw checked.error;
    expect(checked.value).toBe(expected);
  });

  it.each([
    ['', 'it is empty'],
    ['   ', 'it is only white space'],
    ['a'.repeat(MAX_LABEL_CHARS + 1), `it is ${MAX_LABEL_CHARS + 1} characters long; at most ${MAX_LABEL_CHARS}`],
    ['🚗'.repeat(MAX_LABEL_CHARS + 1), `${MAX_LABEL_CHARS + 1} characters long`],
    ['Sam\nweekend', 'a control character (U+000A at character 4)'],
    ['Sam\u0007', 'a control character (U+0007 at character 4)'],
    ['Sam\u007f', 'a control character (U+007F'],
    ['Sam\u0085x', 'a control character (U+0085'],
    ['Sam\u2028x', 'a line or paragraph separator'],
    ['Sam\u202ex', 'a bidirectional formatting character (U+202E'],
    ['Sam\u2066x', 'a bidirectional formatting character (U+2066'],
    ['Sam\ud800x', 'a lone surrogate'],
  ])('refuses %j with CK_PHONE_BAD_LABEL saying why', (input, why) => {
    const checked = checkLabel(input);
    expect(checked.ok).toBe(false);
    if (checked.ok) return;
    expect(checked.error.code).toBe('CK_PHONE_BAD_LABEL');
    expect(checked.error.message).toContain(why);
  });

  it('any accepted label is trimmed, normalised, 1..64 code points, at most MAX_LABEL_BYTES of UTF-8, and checks to itself', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (text) => {
        const checked = checkLabel(text);
        if (!checked.ok) {
          expect(checked.error.code).toBe('CK_PHONE_BAD_LABEL');
          return;
        }
        const label = checked.value;
        expect(label).toBe(label.trim());
        expect(label).toBe(label.normalize('NFC'));
        expect(Array.from(label).length).toBeGreaterThanOrEqual(1);
        expect(Array.from(label).length).toBeLessThanOrEqual(MAX_LABEL_CHARS);
        expect(new TextEncoder().encode(label).length).toBeLessThanOrEqual(MAX_LABEL_BYTES);
        expect(/[\p{Cc}\p{Cs}]/u.test(label)).toBe(false);
        expect(checkLabel(label)).toEqual({ ok: true, value: label });
      }),
      { numRuns: 300 },
    );
  });
});

describe('share bundle with a sharer label', () => {
  const base = { grant: grant(1), carIdentityKey: carKey, advSecret, vehicleName: 'Blue Van' };

  /** The format-1 layout written by hand, as every carkey before labels wrote it. */
  function formatOneBytes(): Uint8Array {
    const name = new TextEncoder().encode(base.vehicleName);
    return concatBytes(Uint8Array.of(1), base.grant.bytes, carKey, advSecret, Uint8Array.of(name.length >> 8, name.length & 0xff), name);
  }

  it('a share without a label is byte for byte the format-1 bundle, and a format-1 share still decodes (no label)', () => {
    expect(toHex(encodeShareBytes(base))).toBe(toHex(formatOneBytes()));
    const decoded = decodeShare(crypto, SHARE_PREFIX + toBase64Url(formatOneBytes()));
    if (!decoded.ok) throw decoded.error;
    expect(decoded.value.sharerLabel).toBeUndefined();
    expect('sharerLabel' in decoded.value).toBe(false);
    expect(toHex(decoded.value.grant.bytes)).toBe(toHex(base.grant.bytes));
    expect(decoded.value.vehicleName).toBe('Blue Van');
  });

  it('round-trips a label as format 2: format-1 bytes with format 2 and the label appended; the grant bytes are unchanged', () => {
    for (const label of ['Sam, weekend', 'x', '🚗'.repeat(MAX_LABEL_CHARS), 'Zoë']) {
      const bytes = encodeShareBytes({ ...base, sharerLabel: label });
      const labelBytes = new TextEncoder().encode(label);
      const expected = concatBytes(Uint8Array.of(2), formatOneBytes().subarray(1), Uint8Array.of(labelBytes.length >> 8, labelBytes.length & 0xff), labelBytes);
      expect(toHex(bytes)).toBe(toHex(expected));
      const text = encodeShare({ ...base, sharerLabel: label });
      expect(text.length).toBeLessThanOrEqual(MAX_SHARE_TEXT);
      const decoded = decodeShare(crypto, text);
      if (!decoded.ok) throw decoded.error;
      expect(decoded.value.sharerLabel).toBe(label);
      expect(toHex(decoded.value.grant.bytes)).toBe(toHex(base.grant.bytes));
      expect(decoded.value.grant.bytes.length).toBe(GRANT_LENGTH);
    }
  });

  it('the longest possible share (32-byte name, 256-byte label) fits MAX_SHARE_TEXT', () => {
    const text = encodeShare({ ...base, vehicleName: 'v'.repeat(32), sharerLabel: '🚗'.repeat(MAX_LABEL_CHARS) });
    expect(text.length).toBe(MAX_SHARE_TEXT);
    expect(decodeShare(crypto, text).ok).toBe(true);
  });

  it('refuses to encode a label that is not valid and normalised (CK_PHONE_BAD_LABEL)', () => {
    for (const label of ['', ' Sam', 'a\nb', 'a'.repeat(65), 'Zoë'.normalize('NFD')]) {
      expect(() => encodeShareBytes({ ...base, sharerLabel: label }), label).toThrow(expect.objectContaining({ code: 'CK_PHONE_BAD_LABEL' }));
    }
  });

  function withLabelBytes(labelBytes: Uint8Array, declared = labelBytes.length): string {
    const body = concatBytes(Uint8Array.of(2), formatOneBytes().subarray(1), Uint8Array.of(declared >> 8, declared & 0xff), labelBytes);
    return SHARE_PREFIX + toBase64Url(body);
  }

  it.each([
    ['an empty label', new Uint8Array(0), undefined, 'sharer label'],
    ['a label with a control character', new TextEncoder().encode('Sam\u001b[2J'), undefined, 'control character'],
    ['a label that is not UTF-8', Uint8Array.of(0x53, 0xff, 0x61), undefined, 'sharer label is not UTF-8'],
    ['a label with white space around it', new TextEncoder().encode(' Sam'), undefined, 'not trimmed'],
    ['a label over 256 bytes', new Uint8Array(257).fill(0x61), undefined, 'sharer label'],
    ['a truncated label', new TextEncoder().encode('Sam'), 9, 'sharer label'],
  ])('refuses a format-2 share with %s (CK_PHONE_BAD_SHARE)', (_what, bytes, declared, why) => {
    const decoded = decodeShare(crypto, withLabelBytes(bytes, declared));
    expect(decoded.ok).toBe(false);
    if (decoded.ok) return;
    expect(decoded.error.code).toBe('CK_PHONE_BAD_SHARE');
    expect(decoded.error.message).toContain(why);
  });

  it('refuses a format-1 share with bytes after the vehicle name, and an unknown format 3', () => {
    const trailing = decodeShare(crypto, SHARE_PREFIX + toBase64Url(concatBytes(formatOneBytes(), Uint8Array.of(0, 1, 0x61))));
    expect(trailing.ok).toBe(false);
    const three = fromBase64Url(encodeShare({ ...base, sharerLabel: 'Sam' }).slice(SHARE_PREFIX.length));
    if (three === undefined) throw new Error('bad base64url');
    three[0] = 3;
    const decoded = decodeShare(crypto, SHARE_PREFIX + toBase64Url(three));
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) expect(decoded.error.message).toContain('format 3');
  });
});

function record(overrides: Partial<VehicleRecord> = {}): VehicleRecord {
  return { name: 'van', vehicleName: 'Blue Van', carIdentityKey: carKey, vehicleId, advSecret, owner: true, grants: [], issued: [], keyList: undefined, pending: [], addedAt: 5, ...overrides };
}

describe('vehicle record labels', () => {
  it('keeps issued labels and sharer labels through serialise/parse; a record without them serialises as before', () => {
    const plain = record({ issued: [{ grant: grant(1), issuedAt: 7 }] });
    const plainText = serializeVehicleRecord(plain);
    expect(plainText).not.toContain('label');
    expect(parseVehicleRecord(crypto, plainText, 'v.json').issued[0]?.label).toBeUndefined();

    const held = grant(3);
    const labelled = record({ issued: [{ grant: grant(1), issuedAt: 7, label: 'Sam, weekend' }, { grant: grant(2), issuedAt: 8 }], grants: [held], sharerLabels: { [toHex(held.serial)]: 'from Bob' } });
    const parsed = parseVehicleRecord(crypto, serializeVehicleRecord(labelled), 'v.json');
    expect(parsed.issued.map((entry) => entry.label)).toEqual(['Sam, weekend', undefined]);
    expect(parsed.sharerLabels).toEqual({ [toHex(held.serial)]: 'from Bob' });
    expect(serializeVehicleRecord(parsed)).toBe(serializeVehicleRecord(labelled));
  });

  it('drops the sharer label of a grant it no longer holds', () => {
    const text = serializeVehicleRecord(record({ grants: [], sharerLabels: { '0101010101010101': 'gone' } }));
    expect(text).not.toContain('sharerLabels');
  });

  it.each([
    ['an issued label with a newline', (json: Record<string, unknown>) => ((json.issued as Record<string, unknown>[])[0] = { ...(json.issued as Record<string, unknown>[])[0], label: 'a\nb' }), 'issued[0].label'],
    ['an issued label that is a number', (json: Record<string, unknown>) => ((json.issued as Record<string, unknown>[])[0] = { ...(json.issued as Record<string, unknown>[])[0], label: 5 }), 'issued[0].label must be a string'],
    ['an untrimmed issued label', (json: Record<string, unknown>) => ((json.issued as Record<string, unknown>[])[0] = { ...(json.issued as Record<string, unknown>[])[0], label: ' a' }), 'not a normalised label'],
    ['sharerLabels that is a list', (json: Record<string, unknown>) => (json.sharerLabels = ['a']), 'sharerLabels must be an object'],
    ['a sharer label under a key that is no serial', (json: Record<string, unknown>) => (json.sharerLabels = { xyz: 'a' }), 'is not a grant serial'],
  ])('refuses %s as CK_PHONE_STORE_CORRUPT naming the field', (_what, damage, why) => {
    const json = JSON.parse(serializeVehicleRecord(record({ issued: [{ grant: grant(1), issuedAt: 7, label: 'ok' }] }))) as Record<string, unknown>;
    damage(json);
    expect(() => parseVehicleRecord(crypto, JSON.stringify(json), 'v.json')).toThrow(expect.objectContaining({ code: 'CK_PHONE_STORE_CORRUPT', message: expect.stringContaining(why) as unknown }));
  });
});

describe('auditLabeler', () => {
  const sam1 = grant(1);
  const sam2 = grant(2);
  const other = grant(4, otherKey);
  const unlabelled = grant(5, otherKey);
  const samKeyId = keyIdOf(crypto, friendKey);
  const otherKeyId = keyIdOf(crypto, otherKey);

  it('resolves a grant serial exactly, and a key id only when its labelled grants agree', () => {
    const label = auditLabeler(crypto, { issued: [{ grant: sam1, issuedAt: 1, label: 'Sam' }, { grant: sam2, issuedAt: 2, label: 'Sam' }, { grant: other, issuedAt: 3, label: 'Ann' }, { grant: unlabelled, issuedAt: 4 }] });
    expect(label({ subject: `grant:${toHex(sam2.serial)}`, key: samKeyId })).toEqual({ label: 'Sam', by: 'serial', serial: toHex(sam2.serial) });
    expect(label({ subject: `grant:${toHex(other.serial)}` })).toEqual({ label: 'Ann', by: 'serial', serial: toHex(other.serial) });
    // An unlabelled grant resolves to nothing, even though another grant to the same key has a label.
    expect(label({ subject: `grant:${toHex(unlabelled.serial)}`, key: otherKeyId })).toBeUndefined();
    // No subject (e.g. unknown-command): by the key id.
    expect(label({ key: samKeyId })).toMatchObject({ label: 'Sam', by: 'key' });
    expect(label({ key: otherKeyId })).toMatchObject({ label: 'Ann', by: 'key' });
    expect(label({ subject: `key:${samKeyId}` })).toMatchObject({ label: 'Sam', by: 'key' });
    expect(label({ key: 'ffffffffffffffff' })).toBeUndefined();
    expect(label({ subject: 'grant:ffffffffffffffff' })).toBeUndefined();
    expect(label({ kind: 'boot', subject: 5 })).toBeUndefined();
  });

  it('gives no label for a key whose grants carry different labels', () => {
    const label = auditLabeler(crypto, { issued: [{ grant: sam1, issuedAt: 1, label: 'Sam, weekend' }, { grant: sam2, issuedAt: 2, label: 'Sam, holiday' }] });
    expect(label({ key: samKeyId })).toBeUndefined();
    expect(label({ subject: `grant:${toHex(sam1.serial)}` })?.label).toBe('Sam, weekend');
  });
});
